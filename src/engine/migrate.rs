//! The live migration state machine: start, copy runs, mirrored writes, completion,
//! cancel and roll-back (SPEC §5).

use super::*;

impl Engine {
    pub(super) fn migrate(
        &mut self,
        vm: &str,
        to: &str,
        mode: CopyMode,
        confirm: bool,
    ) -> Result<Outcome, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        self.check_up(i)?;
        if self.vms[i].migration.is_some() {
            return Err(EngineError::AlreadyMigrating(vm.into()));
        }
        if let Some(rule) = self.across_busy(i) {
            return Err(EngineError::Rule {
                object: format!("VM {vm}"),
                rule,
            });
        }
        if let Some(refused) = self.placement_refusal(vm, to) {
            return Ok(refused);
        }
        if let Some(refused) = self.health_refusal(i) {
            return Ok(refused);
        }
        self.stretch_check_move(i, to)?;
        // (1) Rate the impact; refuse unless `none` or overridden.
        let impact = self.impact(vm, to)?;
        if let Some(refused) = self.override_gate(
            &format!("Migration of {vm} to {to}"),
            &format!("{vm} to {to}"),
            &impact,
            confirm,
        ) {
            return Ok(refused);
        }
        let need = self.vms[i].blocks * BLOCK_SIZE as u64 / (1024 * 1024);
        let free = self.free_mib(to);
        if need > free {
            return Err(EngineError::NoSpace {
                datastore: to.into(),
                vm: vm.into(),
                need_mib: need,
                free_mib: free,
            });
        }
        // The source must be whole before anything changes.
        let src_dir = self.vms[i].dir.clone();
        let src_img = src_dir.join("disk0.img");
        let src_check = ImageFile::open_read_only(&src_img)?;
        if src_check.block_count() != self.vms[i].blocks {
            return Err(EngineError::ImageSize {
                vm: vm.into(),
                path: src_img.display().to_string(),
                found: src_check.block_count(),
                expected: self.vms[i].blocks,
            });
        }
        let mut src_config = Workspace::read_config(&src_dir)?;

        let id = format!("m-{:04}", self.next_migration);
        self.next_migration += 1;
        let target_instance = self.ws.free_instance_name(to, vm)?;
        let rec = MigrationRecord {
            id: id.clone(),
            vm: vm.into(),
            from: self.vms[i].datastore.clone(),
            to: to.into(),
            source_instance: self.vms[i].instance.clone(),
            target_instance: target_instance.clone(),
            mode,
            phase: Phase::Preparing,
            cursor: 0,
            blocks: self.vms[i].blocks,
            started_at: self.now,
            rating: impact.rating.as_str().into(),
            group: self.group_starting(),
            error: None,
        };
        std::fs::create_dir_all(Engine::migrations_dir(&self.ws))
            .map_err(io_err("creating state/migrations"))?;
        // A crash between removing a finished migration's record and its bitmap leaves the
        // bitmap; were the id reused, its stale bits would skip blocks of this copy.
        remove_file_if_exists(&Engine::migrations_dir(&self.ws).join(format!("{id}.bitmap")))?;
        self.write_record(&rec)?;
        fault_point("migrate.record-preparing")?;

        let undo = |eng: &mut Engine, e: EngineError| -> EngineError {
            // Best effort: the record says Preparing, so a crash here is undone on reopen too.
            let dst = eng.ws.datastore_dir(to).map(|d| d.join(&target_instance));
            if let Ok(dst) = dst
                && dst.exists()
            {
                let _ = eng.remove_instance_dir(&dst);
            }
            let _ = eng.set_marks(&src_dir, None);
            let _ = eng.remove_record(&id);
            e
        };
        // (2) Create the target with marks target, not completed.
        let mut target_config = src_config.clone();
        target_config.migration = Some(MigrationMarks {
            id: id.clone(),
            source: false,
            target: true,
            completed: false,
        });
        if let Err(e) = self
            .ws
            .create_instance(to, &target_instance, &target_config, need.max(1))
            .map_err(EngineError::from)
            .and_then(|_| fault_point("migrate.target-created"))
        {
            return Err(undo(self, e));
        }
        // (3) Mark the source.
        src_config.migration = Some(MigrationMarks {
            id: id.clone(),
            source: true,
            target: false,
            completed: false,
        });
        if let Err(e) = Workspace::write_config(&src_dir, &src_config)
            .map_err(EngineError::from)
            .and_then(|()| fault_point("migrate.source-marked"))
        {
            return Err(undo(self, e));
        }
        let dst_dir = match self.ws.datastore_dir(to) {
            Ok(d) => d.join(&target_instance),
            Err(e) => return Err(undo(self, e.into())),
        };
        let mut rec = rec;
        rec.phase = Phase::Copying;
        if let Err(e) = self
            .write_record(&rec)
            .and_then(|()| fault_point("migrate.record-copying"))
        {
            return Err(undo(self, e));
        }
        let m = match self.load_migration(rec, src_dir.clone(), dst_dir) {
            Ok(m) => m,
            Err(e) => return Err(undo(self, e)),
        };
        self.vms[i].migration = Some(Box::new(m));
        self.attach_trackers()?;
        let now = self.now;
        self.start_next_run(i, now)?;
        let msg = format!(
            "Migration {id} of {vm} from {} to {to} started ({} mode, rating {})",
            self.vms[i].datastore,
            mode.as_str(),
            impact.rating
        );
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// The index of VM `vm`, which must exist, be up and be migrating (for the commands on
    /// its migration).
    pub(super) fn migrating_vm(&self, vm: &str) -> Result<usize, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        self.check_up(i)?;
        if self.vms[i].migration.is_none() {
            return Err(EngineError::NotMigrating(vm.into()));
        }
        Ok(i)
    }

    pub(super) fn cancel(&mut self, vm: &str) -> Result<Outcome, EngineError> {
        let i = self.migrating_vm(vm)?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        if m.rec.phase == Phase::RollbackFailed {
            return Ok(Outcome::Done(format!(
                "{vm}: the roll-back of migration {} failed ({}); retry it",
                m.rec.id,
                m.rec.error.as_deref().unwrap_or("I/O error")
            )));
        }
        if m.core.direction == Direction::Back {
            return Ok(Outcome::Done(format!("{vm}: already cancelling")));
        }
        let id = m.rec.id.clone();
        // Abandon the run in flight: nothing of it has landed.
        self.vms[i].run_gen += 1;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        m.run_ends_at = None;
        if m.mode() == CopyMode::Mirror {
            // The source is complete: drop the target.
            self.finish_cancel(i)?;
            let msg = format!("Migration {id} of {vm} cancelled; the source was complete");
            self.info(msg.clone());
            return Ok(Outcome::Done(msg));
        }
        m.core.start_rollback();
        m.rec.phase = Phase::Cancelling;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("cancel.record-cancelling")?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.start_next_run(i, now)?;
        let msg = format!(
            "Migration {id} of {vm} cancelling: copying the blocks written on the destination back to the source"
        );
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// Commands on a VM need it running.
    pub(super) fn check_up(&self, i: usize) -> Result<(), EngineError> {
        if self.vms[i].down {
            return Err(EngineError::VmDown {
                vm: self.vms[i].id.clone(),
                why: self.down_reason(i),
            });
        }
        Ok(())
    }

    /// Why VM `i` is down, in words.
    pub(super) fn down_reason(&self, i: usize) -> String {
        let vm = &self.vms[i];
        if self.ha_down_for_host(&vm.id) {
            format!(
                "its host {} failed; it restarts where capacity is reserved (Resilience tab)",
                vm.host
            )
        } else if self.sites_down.contains_key(&vm.site) {
            format!(
                "its site {} was lost; recover it from the Failover tab",
                vm.site
            )
        } else {
            format!(
                "it was stopped at site {} for a failover; see the Failover tab",
                vm.site
            )
        }
    }

    pub(super) fn write_record(&self, rec: &MigrationRecord) -> Result<(), EngineError> {
        write_ron(
            &Engine::migrations_dir(&self.ws).join(format!("{}.ron", rec.id)),
            rec,
        )
    }

    pub(super) fn remove_record(&self, id: &str) -> Result<(), EngineError> {
        let dir = Engine::migrations_dir(&self.ws);
        for ext in ["ron", "bitmap"] {
            remove_file_if_exists(&dir.join(format!("{id}.{ext}")))?;
            fault_point(if ext == "ron" {
                "migration.record-removed"
            } else {
                "migration.bitmap-removed"
            })?;
        }
        Ok(())
    }

    pub(super) fn set_marks(
        &self,
        dir: &Path,
        marks: Option<MigrationMarks>,
    ) -> Result<(), EngineError> {
        if !dir.join("vm.ron").exists() {
            return Ok(());
        }
        let mut c = Workspace::read_config(dir)?;
        if c.migration != marks {
            c.migration = marks;
            Workspace::write_config(dir, &c)?;
            fault_point("migration.marks-written")?;
        }
        Ok(())
    }

    /// Deletes an instance directory (a fault point after it).
    pub(super) fn remove_instance_dir(&self, dir: &Path) -> Result<(), EngineError> {
        alive()?;
        self.ws.remove_instance(dir)?;
        fault_point("instance.removed")
    }

    /// Starts the next copy run of VM `i`'s migration, or finishes the migration.
    pub(super) fn start_next_run(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let rate = self.copy_rate(i);
        let run_gen = self.vms[i].run_gen;
        let Some(m) = self.vms[i].migration.as_mut() else {
            return Ok(());
        };
        if let Some(run) = m.core.begin_run() {
            let bytes: u64 = m
                .core
                .pieces(&run)
                .iter()
                .map(|p| (p.end - p.start) * BLOCK_SIZE as u64)
                .sum();
            let ends = t.max(m.dst_busy_until) + duration_for(bytes, rate);
            m.dst_busy_until = ends;
            m.run_ends_at = Some(ends);
            self.schedule(
                ends,
                Ev::RunDone {
                    vm: VmIx(i),
                    run_gen,
                },
            );
            return Ok(());
        }
        match m.core.direction {
            Direction::Forward if m.mirror_pending.is_empty() => {
                if self.group_holds_completion(i)? {
                    Ok(())
                } else {
                    self.complete_migration(i)
                }
            }
            // Wait for the mirrored writes to land.
            Direction::Forward => Ok(()),
            Direction::Back => {
                let id = m.rec.id.clone();
                self.finish_cancel(i)?;
                let vm = self.vms[i].id.clone();
                self.info(format!(
                    "Migration {id} of {vm} cancelled: the source is current again"
                ));
                Ok(())
            }
        }
    }

    /// The simulated copy rate of VM `i`'s migration: the slower datastore's throughput.
    pub(super) fn copy_rate(&self, i: usize) -> f64 {
        let tp = |id: &str| self.throughput.get(id).copied().unwrap_or(400.0);
        match &self.vms[i].migration {
            Some(m) => tp(&m.rec.from).min(tp(&m.rec.to)),
            None => tp(&self.vms[i].datastore),
        }
    }

    pub(super) fn on_run_done(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let Some(m) = self.vms[i].migration.as_mut() else {
            return Ok(());
        };
        let Some(run) = m.core.in_flight.clone() else {
            return Ok(());
        };
        m.run_ends_at = None;
        let pieces = m.core.pieces(&run);
        alive()?;
        if let Err(e) = m.copy_pieces(&pieces) {
            return self.copy_failed(i, e);
        }
        fault_point("copy.run-landed")?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        m.core.finish_run(run);
        match m.core.direction {
            Direction::Back => {
                m.persist_bitmap()
                    .map_err(io_err("writing the migration bitmap"))?;
                fault_point("copy.bitmap-written")?;
            }
            Direction::Forward => {
                if m.cursor_needs_persist() {
                    m.mark_cursor_persisted();
                    let rec = m.rec.clone();
                    self.write_record(&rec)?;
                    fault_point("copy.cursor-written")?;
                }
            }
        }
        self.release_waiting(i, t)?;
        self.start_next_run(i, t)
    }

    /// A copy I/O failed. Mirror: the source is complete, so drop the target. Redirect and
    /// split copying forward: roll back to the source. A roll-back (a cancel's, or this
    /// one's) that fails must not drop the target, which holds the only copy of the blocks
    /// whose bit is set: it stops in `RollbackFailed` (see [`Engine::rollback_failed`]).
    pub(super) fn copy_failed(&mut self, i: usize, e: std::io::Error) -> Result<(), EngineError> {
        // After an injected crash there is no one left to handle the error.
        alive()?;
        let vm = self.vms[i].id.clone();
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        let id = m.rec.id.clone();
        m.core.in_flight = None;
        if m.core.direction == Direction::Back {
            return self.rollback_failed(i, &e);
        }
        if m.mode() == CopyMode::Mirror {
            self.finish_cancel(i)?;
            self.push_log(
                LogLevel::Error,
                format!("Migration {id} of {vm} aborted by an I/O error ({e}); the VM stays on its source"),
            );
            return Ok(());
        }
        self.push_log(
            LogLevel::Error,
            format!("Migration {id} of {vm}: I/O error ({e}); rolling back to the source"),
        );
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        m.core.start_rollback();
        m.rec.phase = Phase::Cancelling;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("cancel.record-cancelling")?;
        let now = self.now;
        self.start_next_run(i, now)
    }

    /// A roll-back's copy failed: stop in `RollbackFailed` with the error, keeping both
    /// instances, the bitmap and the routing (reads of a set bit's block still go to the
    /// destination, writes land on the source and clear the bit). The VM keeps running with
    /// nothing lost; `RetryRollback` or a reopen resumes the roll-back (SPEC §5: never a VM
    /// without a complete instance).
    pub(super) fn rollback_failed(
        &mut self,
        i: usize,
        e: &std::io::Error,
    ) -> Result<(), EngineError> {
        let vm = self.vms[i].id.clone();
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        debug_assert_eq!(m.core.direction, Direction::Back);
        debug_assert!(m.core.in_flight.is_none());
        let (id, to) = (m.rec.id.clone(), m.rec.to.clone());
        let only_on_dst = m.core.bits.count();
        m.rec.phase = Phase::RollbackFailed;
        m.rec.error = Some(e.to_string());
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("rollback.record-failed")?;
        self.push_log(
            LogLevel::Error,
            format!(
                "Migration {id} of {vm}: roll-back failed ({e}); {only_on_dst} block(s) exist only on the destination {to}, so both instances and the bitmap are kept and the VM runs on them. Retry the roll-back"
            ),
        );
        // Guest I/O that waited for the failed run goes on, through the bitmap.
        let now = self.now;
        self.release_waiting(i, now)
    }

    /// `RetryRollback`: resumes a roll-back that stopped on an I/O error.
    pub(super) fn retry_rollback(&mut self, vm: &str) -> Result<Outcome, EngineError> {
        let i = self.migrating_vm(vm)?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        if m.rec.phase != Phase::RollbackFailed {
            return Err(EngineError::Rule {
                object: format!("migration {} of {vm}", m.rec.id),
                rule: format!(
                    "only a failed roll-back can be retried; it is {}",
                    m.rec.phase.as_str()
                ),
            });
        }
        let id = m.rec.id.clone();
        let left = m.core.bits.count();
        let mut m = self.vms[i].migration.take().expect("checked above");
        let recorded = self.record_rollback_retried(&mut m);
        self.vms[i].migration = Some(m);
        recorded?;
        let msg = format!(
            "Migration {id} of {vm}: retrying the roll-back ({left} block(s) to copy back to the source)"
        );
        self.info(msg.clone());
        let now = self.now;
        self.start_next_run(i, now)?;
        Ok(Outcome::Done(msg))
    }

    /// A failed roll-back is retried: the record says `Cancelling` again (a crash from here on
    /// resumes the roll-back), its error is cleared.
    pub(super) fn record_rollback_retried(&self, m: &mut Migration) -> Result<(), EngineError> {
        m.rec.phase = Phase::Cancelling;
        m.rec.error = None;
        self.write_record(&m.rec)?;
        fault_point("retry.record-cancelling")
    }

    /// (5)–(7): mark completed, switch the VM to the target, delete the source.
    pub(super) fn complete_migration(&mut self, i: usize) -> Result<(), EngineError> {
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        m.rec.phase = Phase::Completing;
        m.rec.cursor = m.core.blocks;
        m.dst.sync().map_err(io_err("syncing the target image"))?;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("complete.record-completing")?;
        let m = self.vms[i].migration.take().expect("set");
        let (src_dir, dst_dir) = (m.src_dir.clone(), m.dst_dir.clone());
        drop(m);
        self.finish_completion(i, &rec, &src_dir, &dst_dir)
    }

    /// The rest of a completion, from the `Completing` record on. Idempotent, so recovery
    /// runs it again after a crash at any point (the source may already be gone).
    pub(super) fn finish_completion(
        &mut self,
        i: usize,
        rec: &MigrationRecord,
        src_dir: &Path,
        dst_dir: &Path,
    ) -> Result<(), EngineError> {
        let done = |source, target| MigrationMarks {
            id: rec.id.clone(),
            source,
            target,
            completed: true,
        };
        self.set_marks(dst_dir, Some(done(false, true)))?;
        self.set_marks(src_dir, Some(done(true, false)))?;
        // (6) Switch: the recovery manager's location metadata first, then the topology
        // in use (a crash between them reopens on the source, which still exists).
        let loc_path = self.ws.state_dir().join("locations.ron");
        let mut locations: Locations = read_ron(&loc_path).unwrap_or_default();
        locations.vms.insert(
            rec.vm.clone(),
            Location {
                datastore: rec.to.clone(),
                instance: rec.target_instance.clone(),
            },
        );
        write_ron(&loc_path, &locations)?;
        fault_point("complete.locations-written")?;
        let mut topo = self.topology().clone();
        if let Some(v) = topo.vms.iter_mut().find(|v| v.id == rec.vm) {
            v.datastore = rec.to.clone();
        }
        self.ws.save_topology(&topo)?;
        fault_point("complete.topology-saved")?;
        let mut image = ImageFile::open(&dst_dir.join("disk0.img"))?.without_readahead();
        let tracker = self.tracker_for(&rec.to, image.path())?;
        image.set_tracker(tracker);
        let vm = &mut self.vms[i];
        vm.datastore = rec.to.clone();
        vm.instance = rec.target_instance.clone();
        vm.dir = dst_dir.to_path_buf();
        vm.image = image;
        vm.migrations_done += 1;
        // (7) Delete the source.
        if src_dir.exists() {
            self.remove_instance_dir(src_dir)?;
        }
        self.remove_record(&rec.id)?;
        let secs = (self.now.saturating_sub(rec.started_at)) as f64 / SECOND as f64;
        self.info(format!(
            "Migration {} of {} to {} completed in {secs:.1} s ({} mode); source deleted",
            rec.id,
            rec.vm,
            rec.to,
            rec.mode.as_str()
        ));
        self.persist_state()?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.migration_ended(i, true)
    }

    /// Ends a cancel: delete the target, clear the source's marks. Only when no block's
    /// newest data is on the destination alone: the source must be complete.
    pub(super) fn finish_cancel(&mut self, i: usize) -> Result<(), EngineError> {
        let m = self.vms[i].migration.take().expect("caller checked");
        debug_assert_eq!(
            m.core.bits.count(),
            0,
            "migration {}: the target still holds the only copy of some blocks",
            m.rec.id
        );
        let id = m.rec.id.clone();
        let (src_dir, dst_dir) = (m.src_dir.clone(), m.dst_dir.clone());
        drop(m);
        self.set_marks(&src_dir, None)?;
        if dst_dir.exists() {
            self.remove_instance_dir(&dst_dir)?;
        }
        self.remove_record(&id)?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.migration_ended(i, false)
    }

    /// Step (1) of every move (one VM, a group): a rating above `none` is refused unless
    /// the operator confirmed it, and a confirmed one is logged as an override with its
    /// rating and fault. `refused` and `overridden` name the move in the two messages.
    pub(super) fn override_gate(
        &mut self,
        refused: &str,
        overridden: &str,
        impact: &dr::Impact,
        confirm: bool,
    ) -> Option<Outcome> {
        self.rating_gate(refused, overridden, (impact.rating, impact.fault), confirm)
    }

    /// [`Engine::override_gate`] on a rating and fault (a new VM's placement has no source
    /// datastore, so no [`dr::Impact`]).
    pub(super) fn rating_gate(
        &mut self,
        refused: &str,
        overridden: &str,
        (rating, fault): (Rating, Option<dr::Fault>),
        confirm: bool,
    ) -> Option<Outcome> {
        if rating == Rating::None {
            return None;
        }
        let fault = fault.map(|f| f.as_str()).unwrap_or("none");
        if !confirm {
            let msg = format!("{refused} refused: rated {rating} ({fault}) and not confirmed");
            self.push_log(LogLevel::Warning, msg.clone());
            return Some(Outcome::Refused(msg));
        }
        self.push_log(
            LogLevel::Warning,
            format!(
                "Override: {overridden} confirmed by the operator despite rating {rating} ({fault})"
            ),
        );
        None
    }

    /// Re-runs guest I/O that waited for a copy run or the mirror queue.
    pub(super) fn release_waiting(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let ops: Vec<GuestOp> = self.vms[i].waiting.drain(..).collect();
        for op in ops {
            self.guest_op(i, op, t)?;
        }
        Ok(())
    }

    pub(super) fn on_mirror_land(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let vm = &mut self.vms[i];
        let uuid = vm.uuid;
        let Some(m) = vm.migration.as_mut() else {
            return Ok(());
        };
        let mut buf: Block = [0; BLOCK_SIZE];
        while let Some(&(at, block, seq)) = m.mirror_pending.front() {
            if at > t {
                break;
            }
            alive()?;
            m.mirror_pending.pop_front();
            disk::stamp_block(&uuid, block, seq, &mut buf);
            m.dst
                .write_block(block, &buf)
                .map_err(io_err_at(m.dst.path()))?;
        }
        self.release_waiting(i, t)?;
        let m = self.vms[i].migration.as_ref();
        if m.is_some_and(|m| m.core.done() && m.mirror_pending.is_empty())
            && !self.group_holds_completion(i)?
        {
            self.complete_migration(i)?;
        }
        Ok(())
    }
}
