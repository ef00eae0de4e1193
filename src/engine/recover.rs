//! Start and crash recovery: journals repaired and read, in-flight writes journaled,
//! interrupted migrations resumed or rolled back.

use super::*;

/// After a crash, a set bit may describe a write that never landed on the destination
/// (the bit is persisted first), and a roll-back write may have landed on the source before
/// its bit was cleared. For every set bit, keep the copy with the newer stamp: clear the bit
/// where the source is newer. Returns how many bits were cleared.
pub(super) fn reconcile_bits(m: &mut Migration) -> Result<u64, EngineError> {
    let seq = |img: &ImageFile, b: u64| -> Result<u64, EngineError> {
        let mut buf: Block = [0; BLOCK_SIZE];
        img.read_block_at(b, &mut buf)
            .map_err(io_err_at(img.path()))?;
        Ok(match disk::inspect(&buf) {
            BlockContent::Stamped(s) => s.seq,
            BlockContent::Zero | BlockContent::Torn => 0,
        })
    };
    let set: Vec<u64> = m.core.bits.ones().collect();
    let mut cleared = 0;
    for b in set {
        if seq(&m.src, b)? > seq(&m.dst, b)? {
            m.core.bits.clear(b);
            cleared += 1;
        }
    }
    if cleared > 0 {
        m.persist_bitmap()
            .map_err(io_err("writing the migration bitmap"))?;
    }
    Ok(cleared)
}

/// The first block of `img` stamped for `uuid` with `seq` at its own index, if any. Reads
/// in 1 MiB chunks and checks the cheap fields before the CRC.
pub(super) fn find_stamp(
    img: &ImageFile,
    uuid: &RawUuid,
    seq: u64,
) -> Result<Option<u64>, EngineError> {
    const CHUNK_BLOCKS: u64 = 256;
    let mut buf = vec![0u8; CHUNK_BLOCKS as usize * BLOCK_SIZE];
    let mut first = 0;
    while first < img.block_count() {
        let n = CHUNK_BLOCKS.min(img.block_count() - first);
        let bytes = &mut buf[..n as usize * BLOCK_SIZE];
        img.read_at(first * BLOCK_SIZE as u64, bytes)
            .map_err(io_err_at(img.path()))?;
        for (k, chunk) in bytes.chunks_exact(BLOCK_SIZE).enumerate() {
            let b = first + k as u64;
            if &chunk[0..8] == disk::MAGIC
                && chunk[8..24] == uuid[..]
                && chunk[24..32] == b.to_le_bytes()
                && chunk[32..40] == seq.to_le_bytes()
            {
                let block: &Block = chunk.try_into().expect("chunks_exact gives whole blocks");
                if matches!(disk::inspect(block), BlockContent::Stamped(_)) {
                    return Ok(Some(b));
                }
            }
        }
        first += n;
    }
    Ok(None)
}

/// Drops a journal's cut-short last line (no trailing newline) so appends start clean.
pub(super) fn repair_journal_tail(path: &Path) -> Result<(), EngineError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(path, b"").map_err(io_err_at(path))?;
            return Ok(());
        }
        Err(e) => return Err(io_err_at(path)(e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err_at(path))?;
    f.set_len(keep as u64)
        .and_then(|()| f.sync_all())
        .map_err(io_err_at(path))
}

impl Engine {
    pub(super) fn start(ws: Workspace) -> Result<Engine, EngineError> {
        let state: EngineState = read_ron(&ws.state_dir().join("engine.ron"))?;
        let locations: Locations = read_ron(&ws.state_dir().join("locations.ron"))?;
        let topo = ws.topology().clone();
        let was_clean = Engine::clean_marker(&ws).exists();
        // The clock never goes back: the last time recorded ([`Engine::record_clock`]) may
        // be later than the state saved last (a crash between two saves).
        let recorded = std::fs::read(Engine::clock_path(&ws))
            .ok()
            .and_then(|b| read_clock_record(&b));
        let now = state.now.max(recorded.unwrap_or(0));

        // Journals: drop a cut-short last line, learn each site's last seq and each VM's
        // last write to every block (the guests' oracle).
        // Every site has a journal: a recovery site's fills after a failover.
        let mut journals = BTreeMap::new();
        for site in &topo.sites {
            let path = ws.journal_path(&site.id);
            repair_journal_tail(&path)?;
            journals.insert(site.id.clone(), disk::read_journal(&path)?);
        }
        let next_seq = journals.values().map(|j| j.last_seq).max().unwrap_or(0) + 1;
        // Split by VM once: each VM then finds its history without scanning the journal.
        let journals: BTreeMap<String, SiteJournal> = journals
            .into_iter()
            .map(|(site, j)| (site, SiteJournal::new(j)))
            .collect();

        let mut vms = Vec::new();
        for vm in &topo.vms {
            let ds = topo
                .datastore(&vm.datastore)
                .ok_or_else(|| EngineError::NoSuchVm(vm.id.clone()))?;
            let recovered = state.recovered.get(&vm.id).cloned();
            let (site, datastore, instance, host) = match &recovered {
                Some(r) => (
                    r.site.clone(),
                    r.datastore.clone(),
                    r.instance.clone(),
                    r.host.clone(),
                ),
                None => (
                    ds.site.clone(),
                    ds.id.clone(),
                    locations
                        .vms
                        .get(&vm.id)
                        .filter(|l| l.datastore == vm.datastore)
                        .map(|l| l.instance.clone())
                        .unwrap_or_else(|| vm.id.clone()),
                    vm.host.clone(),
                ),
            };
            let dir = ws.datastore_dir(&datastore)?.join(&instance);
            let uuid = disk::raw_uuid(&vm.uuid).ok_or_else(|| EngineError::State {
                file: "topology.ron".into(),
                message: format!("VM {:?}: bad uuid", vm.id),
            })?;
            let image = ImageFile::open(&dir.join("disk0.img"))?.without_readahead();
            let blocks = vm.disk_mib * 1024 * 1024 / BLOCK_SIZE as u64;
            if image.block_count() != blocks {
                return Err(EngineError::ImageSize {
                    vm: vm.id.clone(),
                    path: image.path().display().to_string(),
                    found: image.block_count(),
                    expected: blocks,
                });
            }
            let mut last_seq = vec![0; blocks as usize];
            let hist = state
                .history
                .get(&vm.id)
                .cloned()
                .or_else(|| recovered.as_ref().map(VmHistory::of_recovered))
                .unwrap_or_default();
            for e in history(&journals, &site, &hist, &uuid).entries {
                if let Some(s) = last_seq.get_mut(e.block as usize) {
                    *s = e.seq;
                }
            }
            let mut rt = VmRt::new(vm, uuid, (site, datastore, instance, host), dir, image);
            rt.rng = seed_for(state.options.seed, &uuid);
            rt.down = state.sites_down.contains_key(&rt.site) || state.stopped.contains(&vm.id);
            rt.recovered = recovered;
            rt.history = hist;
            rt.last_seq = last_seq;
            vms.push(rt);
        }

        let mut sites = BTreeMap::new();
        for site in journals.keys() {
            sites.insert(
                site.clone(),
                SiteIo {
                    journal: JournalWriter::open(&ws.journal_path(site))?,
                },
            );
        }

        let mut engine = Engine {
            ws,
            opts: state.options.clone(),
            now,
            workloads_on: false,
            next_migration: state.next_migration,
            vm_ix: vms
                .iter()
                .enumerate()
                .map(|(i, v)| (v.id.clone(), VmIx(i)))
                .collect(),
            vms,
            sites,
            next_seq,
            queue: BinaryHeap::new(),
            sched_seq: 0,
            log: Vec::new(),
            latencies: VecDeque::new(),
            groups: Vec::new(),
            trackers: BTreeMap::new(),
            link_up: state.link_up,
            sites_down: state.sites_down.clone(),
            failovers: state.failovers.clone(),
            pending_failover: state.pending_failover.clone(),
            test_dir: state.test_dir.clone(),
            metadata_gen: 0,
            throughput: throughput_of(&topo),
            stretch: Default::default(),
            health: Default::default(),
            hosts: Default::default(),
            group: Default::default(),
            placement: Default::default(),
            lifecycle: Default::default(),
            across: Default::default(),
        };
        engine.restore_stretch(state.stretch.clone())?;
        engine.restore_health(state.health.clone())?;
        engine.restore_hosts(state.hosts.clone())?;
        engine.restore_group(state.group.clone())?;
        engine.restore_placement(state.placement.clone())?;
        engine.restore_lifecycle(state.lifecycle.clone());
        // Removed only now that every image opened: a refused open changes nothing.
        if was_clean {
            std::fs::remove_file(Engine::clean_marker(&engine.ws))
                .map_err(io_err("removing the clean-shutdown marker"))?;
        }
        if now > state.now {
            engine.info(format!(
                "Recovery: the clock resumes at {}, the last time recorded (the state was saved at {})",
                format_time(now),
                format_time(state.now)
            ));
        }
        engine.recover_migrations()?;
        engine.roll_back_unsaved_group()?;
        if !was_clean {
            engine.journal_in_flight_writes()?;
        }
        engine.start_replication(&state.groups)?;
        engine.attach_trackers()?;
        // After the groups and trackers: a move one VM at a time goes on from them.
        engine.restore_across(state.across.clone())?;
        let first = engine.now + engine.opts.metadata_interval();
        engine.schedule(first, Ev::Metadata { gen_: 0 });
        if state.workloads_on {
            engine.start_workloads();
        }
        Ok(engine)
    }

    /// After a crash, the write in flight may be on disk but not in the journal: find a
    /// block stamped with the next seq and journal it, so the journal describes the disks.
    pub(super) fn journal_in_flight_writes(&mut self) -> Result<(), EngineError> {
        for i in 0..self.vms.len() {
            let site = self.vms[i].site.clone();
            let next = self.next_seq;
            if !self.sites.contains_key(&site) {
                continue;
            }
            let vm = &self.vms[i];
            let mut images: Vec<&ImageFile> = vec![&vm.image];
            if let Some(m) = &vm.migration {
                images = vec![&m.src, &m.dst];
            }
            let mut found = None;
            for img in images {
                if let Some(b) = find_stamp(img, &vm.uuid, next)? {
                    found = Some(b);
                    break;
                }
            }
            if let Some(block) = found {
                let uuid = self.vms[i].uuid;
                let io = self.sites.get_mut(&site).expect("site checked above");
                io.journal
                    .append(&JournalEntry {
                        seq: next,
                        uuid,
                        block,
                    })
                    .map_err(io_err("appending to the journal"))?;
                self.next_seq += 1;
                self.vms[i].last_seq[block as usize] = next;
                let id = self.vms[i].id.clone();
                self.info(format!(
                    "Recovery: the write in flight at the crash (seq {next}, VM {id}, block {block}) reached the disk; journaled it"
                ));
            }
        }
        Ok(())
    }

    pub(super) fn recover_migrations(&mut self) -> Result<(), EngineError> {
        let dir = Engine::migrations_dir(&self.ws);
        let mut records = Vec::new();
        if dir.exists() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(io_err_at(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ron"))
                .collect();
            paths.sort();
            for p in paths {
                records.push(read_ron::<MigrationRecord>(&p)?);
            }
        }
        // The id counter lives in engine.ron, which a migration's start does not rewrite: after
        // a crash it may lag the records on disk, and a new migration would take a running
        // one's id (and overwrite its record and bitmap). Move it past every record.
        for rec in &records {
            if let Some(n) = rec
                .id
                .strip_prefix("m-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                self.next_migration = self.next_migration.max(n + 1);
            }
        }
        for rec in records {
            let Some(i) = self.vm_index(&rec.vm) else {
                continue;
            };
            let vm = &self.vms[i];
            if vm.recovered.is_some() || (vm.down && !self.ha_down_for_host(&vm.id)) {
                // Its site is lost (or a failover stopped it): the migration stays frozen
                // where the disaster left it. A VM down only because its host failed
                // still has its storage: its migration carries on.
                continue;
            }
            let src_dir = self.ws.datastore_dir(&rec.from)?.join(&rec.source_instance);
            let dst_dir = self.ws.datastore_dir(&rec.to)?.join(&rec.target_instance);
            match rec.phase {
                Phase::Preparing => {
                    // Half made: undo it. The source was never written elsewhere.
                    if dst_dir.exists() {
                        self.remove_instance_dir(&dst_dir)?;
                    }
                    self.set_marks(&src_dir, None)?;
                    self.remove_record(&rec.id)?;
                    self.info(format!(
                        "Recovery: migration {} of {} had not started copying; undone",
                        rec.id, rec.vm
                    ));
                }
                Phase::Completing => {
                    self.finish_completion(i, &rec, &src_dir, &dst_dir)?;
                    self.info(format!(
                        "Recovery: migration {} of {} had finished copying; completed it",
                        rec.id, rec.vm
                    ));
                }
                Phase::Copying | Phase::Cancelling | Phase::RollbackFailed
                    if Workspace::read_config(&src_dir).is_ok_and(|c| c.migration.is_none()) =>
                {
                    // Only the end of a cancel clears the source's marks while the record
                    // lives: the crash fell in it (the target maybe gone already, which
                    // made the open fail). The source is current: finish the cancel.
                    if dst_dir.exists() {
                        self.remove_instance_dir(&dst_dir)?;
                    }
                    self.remove_record(&rec.id)?;
                    self.info(format!(
                        "Recovery: migration {} of {} was being cancelled; finished the cancel",
                        rec.id, rec.vm
                    ));
                }
                Phase::Copying | Phase::Cancelling | Phase::RollbackFailed => {
                    let mut m = self.load_migration(rec.clone(), src_dir, dst_dir)?;
                    let cleared = reconcile_bits(&mut m)?;
                    if cleared > 0 {
                        self.info(format!(
                            "Recovery: {cleared} block(s) of {} were marked newer on the destination but the write had not landed; the source copy stands",
                            rec.vm
                        ));
                    }
                    if rec.phase == Phase::RollbackFailed {
                        // A reopen retries a roll-back that an I/O error stopped.
                        m.core.start_rollback();
                        self.record_rollback_retried(&mut m)?;
                    } else if rec.phase == Phase::Cancelling {
                        m.core.start_rollback();
                    } else if rec.mode == CopyMode::Mirror {
                        // Mirrored writes in flight at the crash may be missing on the
                        // destination: copy again from the start (the source is complete).
                        m.core.cursor = 0;
                    }
                    let what = if rec.phase == Phase::RollbackFailed {
                        "retries its failed roll-back"
                    } else if rec.phase == Phase::Cancelling {
                        "resumes its roll-back"
                    } else {
                        "resumes copying"
                    };
                    self.info(format!(
                        "Recovery: migration {} of {} {what} at block {} of {}",
                        rec.id, rec.vm, m.core.cursor, m.core.blocks
                    ));
                    self.vms[i].migration = Some(Box::new(m));
                    let now = self.now;
                    self.start_next_run(i, now)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn load_migration(
        &self,
        rec: MigrationRecord,
        src_dir: PathBuf,
        dst_dir: PathBuf,
    ) -> Result<Migration, EngineError> {
        let bitmap_path = Engine::migrations_dir(&self.ws).join(format!("{}.bitmap", rec.id));
        let mut core = CopyCore::new(rec.mode, rec.blocks, self.opts.run_blocks());
        core.cursor = rec.cursor.min(rec.blocks);
        core.bits =
            Migration::load_bitmap(&bitmap_path, rec.blocks).map_err(io_err_at(&bitmap_path))?;
        Migration::new(rec, core, src_dir, dst_dir, &bitmap_path)
            .map_err(io_err("reopening a migration's images"))
    }
}
