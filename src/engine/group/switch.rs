//! The end of a group migration: switch, resync, succeed, roll back or interrupt.

use super::*;

pub(super) fn done_marks(id: &str, source: bool, target: bool) -> MigrationMarks {
    MigrationMarks {
        id: id.into(),
        source,
        target,
        completed: true,
    }
}

impl Engine {
    /// Every member's copy is done, no run in flight, no mirrored write pending.
    pub(super) fn group_all_copied(&self, k: usize) -> bool {
        self.group.saved.ops[k].members.iter().all(|m| {
            self.vm_index(&m.vm).is_some_and(|i| {
                self.vms[i].migration.as_ref().is_some_and(|mg| {
                    mg.core.direction == Direction::Forward
                        && mg.core.done()
                        && mg.core.in_flight.is_none()
                        && mg.mirror_pending.is_empty()
                })
            })
        })
    }

    /// The destination CG's replication group.
    pub(super) fn dest_group(&self, cg: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.spec.consistency_group.as_deref() == Some(cg))
    }

    /// The destination CG's published point, if it was cut after the switch.
    pub(super) fn group_point(&self, k: usize) -> Option<PointSeen> {
        let op = &self.group.saved.ops[k];
        let switched = op.switched_at?;
        let g = self.dest_group(&op.to)?;
        let p = self.groups[g].published.as_ref()?;
        (p.cycle > op.cycles_at_switch && p.cut_at >= switched).then_some(PointSeen {
            cycle: p.cycle,
            cut_at: p.cut_at,
            published_at: p.published_at,
        })
    }

    /// Every member moves to its target at this instant; writes are mirrored back.
    pub(super) fn switch_group(&mut self, k: usize) -> Result<(), EngineError> {
        let now = self.now;
        let to = self.group.saved.ops[k].to.clone();
        let cycles = self
            .dest_group(&to)
            .map_or(0, |g| self.groups[g].saved.cycles);
        {
            let op = &mut self.group.saved.ops[k];
            op.phase = GroupPhase::Switched;
            op.switched_at = Some(now);
            op.cycles_at_switch = cycles;
        }
        // The phase first: a reopen from here on switches (marks, records) again.
        self.persist_state()?;
        fault_point("group.switched")?;
        let members = self.group.saved.ops[k].members.clone();
        let mut switched = Vec::new();
        for m in &members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let Some(mg) = self.vms[i].migration.take() else {
                continue;
            };
            mg.dst.sync().map_err(io_err("syncing the target image"))?;
            let (src_dir, dst_dir) = (mg.src_dir.clone(), mg.dst_dir.clone());
            drop(mg);
            self.set_marks(&dst_dir, Some(done_marks(&m.migration, false, true)))?;
            self.set_marks(&src_dir, Some(done_marks(&m.migration, true, false)))?;
            self.remove_record(&m.migration)?;
            let mut image = ImageFile::open(&dst_dir.join("disk0.img"))?.without_readahead();
            let tracker = self.tracker_for(&m.to, image.path())?;
            image.set_tracker(tracker);
            let vm = &mut self.vms[i];
            vm.datastore = m.to.clone();
            vm.instance = m.target_instance.clone();
            vm.dir = dst_dir;
            // The VM's own image was the source all along (mirror mode writes it).
            let source = std::mem::replace(&mut vm.image, image);
            self.group.sources.insert(i, source);
            switched.push(i);
        }
        for &i in &switched {
            self.release_waiting(i, now)?;
        }
        let op = &self.group.saved.ops[k];
        let (id, from, n) = (op.id, op.from.clone(), switched.len());
        self.info(format!(
            "Group migration #{id} {from} ▶ {to}: {n} VMs switched at {} to their targets; every write is mirrored back to the sources in {from} until {to} publishes a recovery point",
            format_time(now)
        ));
        let ds = self
            .dest_group(&to)
            .and_then(|g| self.groups[g].spec.pairs.first())
            .map(|p| p.datastore.clone());
        if let Some(ds) = ds {
            match self.replicate_now(&ds)? {
                Outcome::Done(msg) => self.info(format!("Group migration #{id}: {msg}")),
                Outcome::Refused(msg) => self.push_log(
                    LogLevel::Warning,
                    format!("Group migration #{id}: {msg}; waiting for {to}'s next cycle"),
                ),
            }
        }
        self.persist_state()
    }

    /// After a reopen in the switched phase: copy what differs from each target to its
    /// source (a write in flight at a crash may have missed the source) and resume the
    /// reverse mirroring.
    pub(super) fn resync_sources(&mut self, k: usize) -> Result<(), EngineError> {
        self.group.resync = false;
        if self.group.saved.ops[k].phase != GroupPhase::Switched {
            return Ok(());
        }
        let members = self.group.saved.ops[k].members.clone();
        let mut fixed = 0u64;
        for m in &members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let (src_dir, _) = self.member_dirs(m)?;
            let path = src_dir.join("disk0.img");
            if !path.exists() {
                continue;
            }
            let mut src = ImageFile::open(&path)?.without_readahead();
            let tracker = self.tracker_for(&m.from, src.path())?;
            src.set_tracker(tracker);
            let dst = &self.vms[i].image;
            let (mut a, mut b): (Block, Block) = ([0; BLOCK_SIZE], [0; BLOCK_SIZE]);
            for block in 0..dst.block_count().min(src.block_count()) {
                dst.read_block_at(block, &mut a)
                    .map_err(io_err_at(dst.path()))?;
                src.read_block_at(block, &mut b)
                    .map_err(io_err_at(src.path()))?;
                if a != b {
                    src.write_block(block, &a).map_err(io_err_at(src.path()))?;
                    fixed += 1;
                }
            }
            self.group.sources.insert(i, src);
        }
        let id = self.group.saved.ops[k].id;
        self.info(format!(
            "Recovery: group migration #{id}: {fixed} block(s) copied from the targets to the sources; reverse mirroring resumes"
        ));
        Ok(())
    }

    /// The destination CG published point `p` (cut after the switch): success.
    pub(super) fn succeed_group(&mut self, k: usize, p: PointSeen) -> Result<(), EngineError> {
        let op = self.group.saved.ops[k].clone();
        // Reverse mirroring stops.
        self.group.sources.clear();
        // The recovery manager's locations and the topology in use follow the VMs.
        let loc_path = self.ws.state_dir().join("locations.ron");
        let mut locations: Locations = read_ron(&loc_path).unwrap_or_default();
        for m in &op.members {
            locations.vms.insert(
                m.vm.clone(),
                Location {
                    datastore: m.to.clone(),
                    instance: m.target_instance.clone(),
                },
            );
        }
        write_ron(&loc_path, &locations)?;
        fault_point("group.locations-written")?;
        let mut topo = self.topology().clone();
        for m in &op.members {
            if let Some(v) = topo.vms.iter_mut().find(|v| v.id == m.vm) {
                v.datastore = m.to.clone();
            }
        }
        self.ws.save_topology(&topo)?;
        fault_point("group.topology-saved")?;
        // Only now, with the point published, the sources go.
        for m in &op.members {
            let (src_dir, _) = self.member_dirs(m)?;
            if src_dir.exists() {
                self.remove_instance_dir(&src_dir)?;
            }
            if let Some(i) = self.vm_index(&m.vm) {
                self.vms[i].migrations_done += 1;
            }
        }
        let now = self.now;
        let msg = format!(
            "Group migration {} ▶ {} succeeded: {} VMs, point published at {} (cycle {}, cut at {}); {} write(s) were mirrored back; sources deleted",
            op.from,
            op.to,
            op.members.len(),
            format_time(p.published_at),
            p.cycle,
            format_time(p.cut_at),
            op.reverse_writes
        );
        {
            let o = &mut self.group.saved.ops[k];
            o.point = Some(p);
            o.sources_deleted_at = Some(now);
            o.phase = GroupPhase::Succeeded;
            o.ended_at = Some(now);
            o.message = msg.clone();
        }
        self.info(msg);
        self.persist_state()?;
        for m in &op.members {
            if let Some(i) = self.vm_index(&m.vm) {
                self.migration_ended(i, true)?;
            }
        }
        Ok(())
    }

    /// Before the switch: every VM stays on its complete source.
    pub(super) fn roll_back_group(&mut self, k: usize, why: &str) -> Result<(), EngineError> {
        let now = self.now;
        let op = self.group.saved.ops[k].clone();
        let msg = format!(
            "Group migration {} ▶ {} rolled back ({why}): every VM stays on its complete source in {}",
            op.from, op.to, op.from
        );
        {
            let o = &mut self.group.saved.ops[k];
            o.phase = GroupPhase::RolledBack;
            o.ended_at = Some(now);
            o.message = msg.clone();
        }
        for m in &op.members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let ours = self.vms[i]
                .migration
                .as_ref()
                .is_some_and(|mg| mg.rec.id == m.migration);
            if ours && !self.vms[i].down {
                self.cancel(&m.vm)?;
            }
        }
        self.push_log(LogLevel::Warning, msg);
        self.persist_state()
    }

    /// A disaster or a failover stopped members: nothing more is done here.
    pub(super) fn interrupt_group(
        &mut self,
        k: usize,
        stopped: &[String],
    ) -> Result<(), EngineError> {
        let now = self.now;
        self.group.sources.clear();
        let op = &mut self.group.saved.ops[k];
        let fallback = match op.phase {
            GroupPhase::Copying => format!(
                "the copies were in progress, so the recovery points of {} hold the complete sources",
                op.from
            ),
            _ => format!(
                "the VMs had switched; until {} published a point after the switch, the sources in {} are the fail-back",
                op.to, op.from
            ),
        };
        let msg = format!(
            "Group migration {} ▶ {} interrupted ({} stopped): {fallback}",
            op.from,
            op.to,
            stopped.join(", ")
        );
        op.phase = GroupPhase::Interrupted;
        op.ended_at = Some(now);
        op.message = msg.clone();
        self.push_log(LogLevel::Error, msg);
        self.persist_state()
    }
}
