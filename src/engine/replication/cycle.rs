//! One replication cycle: cut, transfer, commit and publish (or abandon).

use super::*;

impl Engine {
    /// The cut event of group `g`.
    pub(in crate::engine) fn on_cut(&mut self, g: usize, gen_: u64) -> Result<(), EngineError> {
        if self.groups[g].generation != gen_ || self.groups[g].transfer.is_some() {
            return Ok(());
        }
        if self.group_blocked(g).is_some() {
            // Stays due: it runs when the group can ship again.
            return Ok(());
        }
        self.cut_now(g)
    }

    /// Starts a cycle of group `g` now. An error abandons the cycle: the blocks it took
    /// from the trackers are given back (the next cycle ships them), it is logged, the
    /// group tries again one RPO later, and a planned failover waiting for this group's
    /// final cycle stops (SPEC §7: stop on any error).
    pub(in crate::engine) fn cut_now(&mut self, g: usize) -> Result<(), EngineError> {
        self.groups[g].saved.now_requested = false;
        let mut taken = Vec::new();
        match self.try_cut(g, &mut taken) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.give_back(&taken);
                // Failing after the transfer was set up (saving the state) drops it too.
                if let Some(tr) = self.groups[g].transfer.take() {
                    self.groups[g].generation += 1;
                    self.give_back(&tr.taken);
                }
                let spec = self.groups[g].spec.clone();
                // A committed cycle whose re-apply failed keeps its staging: the commit
                // record needs it to finish the publish (at the next cut or open).
                if !self.commit_path(&spec).exists() {
                    remove_dir_if_exists(&self.staging_dir(&spec))?;
                }
                let msg = format!("Replication of {}: cycle abandoned: {e}", spec.id);
                self.push_log(LogLevel::Error, msg.clone());
                self.groups[g].last_error = Some(e.to_string());
                // Try again one RPO later.
                self.groups[g].saved.next_cut = Some(self.now + spec.rpo());
                self.queue_cut(g);
                self.fail_pending_failover_of(
                    g,
                    &format!(
                        "the final replication cycle of {} could not be cut: {e}",
                        spec.id
                    ),
                )
            }
        }
    }

    /// Marks blocks taken from trackers dirty again (a cycle that will not publish them).
    pub(super) fn give_back(&self, taken: &[(PathBuf, Vec<u64>)]) {
        for (path, blocks) in taken {
            if let Some(t) = self.trackers.get(path) {
                t.mark_all(blocks);
            }
        }
    }

    /// Stops the planned failover waiting for group `g`'s final cycle, if one is.
    pub(super) fn fail_pending_failover_of(
        &mut self,
        g: usize,
        why: &str,
    ) -> Result<(), EngineError> {
        let key = &self.groups[g].spec.key;
        if self
            .pending_failover
            .as_ref()
            .is_some_and(|p| p.groups.contains(key))
        {
            self.fail_pending_failover(why)?;
        }
        Ok(())
    }

    /// Cuts a cycle of group `g` into its staging; every block taken from a tracker is
    /// listed in `taken` as soon as it is taken, so that a failure can give it back.
    pub(super) fn try_cut(
        &mut self,
        g: usize,
        taken: &mut Vec<(PathBuf, Vec<u64>)>,
    ) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        // A publish committed but not applied (an I/O error in mid-apply) is finished
        // first: this cycle's deltas are relative to it.
        self.finish_committed_publish(g)?;
        let staging = self.staging_dir(&spec);
        remove_dir_if_exists(&staging)?;
        std::fs::create_dir_all(&staging).map_err(io_err_at(&staging))?;
        let cycle = self.groups[g].saved.cycles + 1;
        let mut entries = Vec::new();
        let mut barrier = Barrier::new();
        let mut bytes = 0u64;
        for pair in &spec.pairs {
            let instances = self.ws.list_instances(&pair.datastore)?;
            let replicas = self.ws.list_instances(&pair.replica)?;
            let rep_dir = self.ws.datastore_dir(&pair.replica)?;
            let names: BTreeSet<&str> = instances.iter().map(|i| i.name.as_str()).collect();
            // Forget trackers of images that are gone.
            let ds_dir = self.ws.datastore_dir(&pair.datastore)?;
            let gone: Vec<PathBuf> = self
                .trackers
                .range(ds_dir.clone()..)
                .map(|(p, _)| p)
                .take_while(|p| p.starts_with(&ds_dir))
                .filter(|p| !p.exists())
                .cloned()
                .collect();
            for p in gone {
                self.trackers.remove(&p);
            }
            for inst in &instances {
                // The instance's staging directory, made when it first gets a delta.
                let stage = staging.join(&pair.replica).join(&inst.name);
                let mut entry = Entry {
                    replica: pair.replica.clone(),
                    instance: inst.name.clone(),
                    delete: false,
                    config: false,
                    config_text: None,
                    disks: Vec::new(),
                    empty_disks: Vec::new(),
                };
                let cfg_src = inst.dir.join(crate::workspace::VM_CONFIG_FILE);
                let cfg = std::fs::read_to_string(&cfg_src).map_err(io_err_at(&cfg_src))?;
                let rep_inst = rep_dir.join(&inst.name);
                if read_bytes(&rep_inst.join(crate::workspace::VM_CONFIG_FILE)).as_deref()
                    != Some(cfg.as_bytes())
                {
                    bytes += cfg.len() as u64;
                    entry.config_text = Some(cfg);
                }
                for disk in &inst.config.disks {
                    let path = inst.dir.join(disk);
                    let src = ImageFile::open_read_only(&path)?.without_readahead();
                    let tracker = self.tracker_for(&pair.datastore, &path)?;
                    let rep_img = rep_inst.join(disk);
                    let replica_blocks = ImageFile::open_read_only(&rep_img)
                        .ok()
                        .map(|r| r.block_count());
                    let same_size = replica_blocks == Some(src.block_count());
                    let tracked = tracker.as_ref().map(|t| t.take()).unwrap_or_default();
                    // Listed before anything else can fail, to be given back then.
                    if !tracked.is_empty() {
                        taken.push((path.clone(), tracked.clone()));
                    }
                    let blocks = if same_size {
                        tracked
                    } else {
                        // A new instance: the whole image (its data ranges' non-zero blocks).
                        replica::nonzero_blocks(&src)?
                    };
                    if blocks.is_empty() && same_size {
                        continue;
                    }
                    if blocks.is_empty() && replica_blocks.is_none() {
                        // A new image holding no data yet: the publish creates it sparse.
                        // It ships what its empty delta would (the replica learns its size).
                        bytes += replica::EMPTY_DELTA_BYTES;
                        entry.empty_disks.push((disk.clone(), src.block_count()));
                        continue;
                    }
                    if entry.disks.is_empty() {
                        std::fs::create_dir_all(&stage).map_err(io_err_at(&stage))?;
                        barrier.dir(&stage);
                        barrier.dir(stage.parent().unwrap_or(&staging));
                    }
                    let delta = stage.join(format!("{disk}.delta"));
                    super::super::alive()?;
                    let stats = replica::write_delta(&src, &blocks, &delta, &mut barrier)?;
                    bytes += stats.bytes;
                    entry.disks.push((disk.clone(), src.block_count()));
                }
                if entry.config_text.is_some()
                    || !entry.disks.is_empty()
                    || !entry.empty_disks.is_empty()
                {
                    entries.push(entry);
                }
            }
            for rep in replicas.iter().filter(|r| !names.contains(r.name.as_str())) {
                entries.push(Entry {
                    replica: pair.replica.clone(),
                    instance: rep.name.clone(),
                    delete: true,
                    config: false,
                    config_text: None,
                    disks: Vec::new(),
                    empty_disks: Vec::new(),
                });
            }
        }
        // Every staged file durable before the manifest that lists them (one barrier,
        // not an fsync per file: an initial copy stages every instance of the group).
        barrier
            .commit()
            .map_err(crate::workspace::WorkspaceError::from)?;
        let manifest = Manifest {
            group: spec.key.clone(),
            cycle,
            cut_at: self.now,
            cut_seq: self.next_seq - 1,
            bytes,
            entries,
        };
        write_ron(&staging.join("manifest.ron"), &manifest)?;
        super::super::fault_point("publish.staging-written")?;
        let bytes_per_s = spec.mbps * 1_000_000.0 / 8.0;
        let secs = bytes as f64 / bytes_per_s;
        let ends_at = self.now + ((secs * SECOND as f64).ceil() as SimTime).max(1);
        let grp = &mut self.groups[g];
        grp.saved.cycles = cycle;
        grp.saved.next_cut = None;
        grp.generation += 1;
        let gen_ = grp.generation;
        grp.transfer = Some(Transfer {
            manifest,
            ends_at,
            taken: std::mem::take(taken),
        });
        self.schedule(
            ends_at,
            Ev::Publish {
                group: GroupIx(g),
                gen_,
            },
        );
        self.persist_state()?;
        Ok(())
    }

    /// Gives an abandoned cycle's blocks back to their trackers and drops its staging.
    pub(in crate::engine) fn abandon_transfer(
        &mut self,
        g: usize,
        why: &str,
    ) -> Result<(), EngineError> {
        let Some(tr) = self.groups[g].transfer.take() else {
            return Ok(());
        };
        self.groups[g].generation += 1;
        self.give_back(&tr.taken);
        let spec = self.groups[g].spec.clone();
        remove_dir_if_exists(&self.staging_dir(&spec))?;
        self.push_log(
            LogLevel::Warning,
            format!(
                "Replication of {}: cycle {} (cut at {}) abandoned ({why}); the previous recovery point stands",
                spec.id,
                tr.manifest.cycle,
                format_time(tr.manifest.cut_at)
            ),
        );
        // Due again as soon as it can ship.
        self.groups[g].saved.next_cut = Some(self.now);
        Ok(())
    }

    /// The publish event of group `g`.
    pub(in crate::engine) fn on_publish(&mut self, g: usize, gen_: u64) -> Result<(), EngineError> {
        if self.groups[g].generation != gen_ {
            return Ok(());
        }
        let Some(tr) = self.groups[g].transfer.take() else {
            return Ok(());
        };
        let spec = self.groups[g].spec.clone();
        if let Err(e) = self.publish(g, &tr.manifest) {
            return self.publish_failed(g, tr, e);
        }
        let m = &tr.manifest;
        let grp = &mut self.groups[g];
        grp.saved.bytes_shipped += m.bytes;
        grp.last_error = None;
        let next = if grp.saved.now_requested {
            self.now
        } else {
            (m.cut_at + spec.rpo()).max(self.now)
        };
        grp.saved.next_cut = Some(next);
        self.info(format!(
            "Replication of {}: recovery point {} published (cut at {}, {} shipped)",
            spec.id,
            m.cycle,
            format_time(m.cut_at),
            human_bytes(m.bytes)
        ));
        self.queue_cut(g);
        self.persist_state()?;
        self.after_publish()
    }

    /// A publish of group `g` failed with `e`. The commit record decides (RELIABILITY.md,
    /// invariant 4): once it is written the cycle is published, and the next cut (or open,
    /// or failover) finishes applying it from its staging; before it, the cycle is
    /// abandoned, its blocks go back to the trackers and the previous point stands. Either
    /// way the group tries again one RPO later, and a planned failover waiting for this
    /// group's final cycle stops (SPEC §7: stop on any error).
    pub(super) fn publish_failed(
        &mut self,
        g: usize,
        tr: Transfer,
        e: EngineError,
    ) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let committed =
            committed_cycle(self.ws.root(), &spec).is_ok_and(|c| c == Some(tr.manifest.cycle));
        let what = if committed {
            "it is committed and is finished before the next cycle"
        } else {
            self.give_back(&tr.taken);
            remove_dir_if_exists(&self.staging_dir(&spec))?;
            "the previous recovery point stands"
        };
        self.push_log(
            LogLevel::Error,
            format!(
                "Replication of {}: publish of cycle {} failed: {e}; {what}",
                spec.id, tr.manifest.cycle
            ),
        );
        self.groups[g].last_error = Some(e.to_string());
        self.groups[g].saved.next_cut = Some(self.now + spec.rpo());
        self.queue_cut(g);
        self.persist_state()?;
        self.fail_pending_failover_of(
            g,
            &format!(
                "the final replication cycle of {} could not be published: {e}",
                spec.id
            ),
        )
    }

    pub(super) fn publish(&mut self, g: usize, m: &Manifest) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        // The point published now stays recoverable: what this cycle overwrites is kept
        // before anything is committed (a group keeping one point keeps nothing).
        self.keep_undo(g, m)?;
        write_ron(&self.commit_path(&spec), &m.cycle)?;
        super::super::fault_point("publish.commit-written")?;
        self.apply_manifest(g, m)
    }

    /// Applies a committed manifest to the replica datastores, records the published point,
    /// removes staging and commit record. Idempotent.
    pub(super) fn apply_manifest(&mut self, g: usize, m: &Manifest) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let staging = self.staging_dir(&spec);
        // Deletions first (an entry deletes or writes an instance, never both names).
        for e in m.entries.iter().filter(|e| e.delete) {
            let dir = self.ws.datastore_dir(&e.replica)?.join(&e.instance);
            if dir.exists() {
                self.remove_instance_dir(&dir)?;
            }
        }
        // The writes, spread over the cores: an initial copy writes every instance.
        let writes: Vec<&Entry> = m.entries.iter().filter(|e| !e.delete).collect();
        let ws = &self.ws;
        let write = |e: &&Entry, barrier: &mut Barrier| -> Result<(), EngineError> {
            let dir = ws.datastore_dir(&e.replica)?.join(&e.instance);
            super::super::alive()?;
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(io_err_at(&dir))?;
                barrier.dir(&dir);
            }
            let stage = staging.join(&e.replica).join(&e.instance);
            for (disk, blocks) in &e.disks {
                let delta = stage.join(format!("{disk}.delta"));
                replica::apply_delta(&delta, &dir.join(disk), *blocks, barrier)?;
                super::super::fault_point("publish.replica-disk-applied")?;
            }
            for (disk, blocks) in &e.empty_disks {
                replica::create_empty_replica(&dir.join(disk), *blocks, barrier)?;
                super::super::fault_point("publish.replica-disk-applied")?;
            }
            if let Some(text) = e.new_config(&staging)? {
                let path = dir.join(crate::workspace::VM_CONFIG_FILE);
                if path.exists() {
                    // Replacing a replica's config is atomic (SPEC §4).
                    crate::fsutil::write_atomic(&path, &text).map_err(io_err_at(&dir))?;
                } else {
                    // A new one needs no temp file: until the barrier below the publish
                    // is only committed, and a crash rolls it forward, rewriting it.
                    super::super::alive()?;
                    std::fs::write(&path, &text).map_err(io_err_at(&path))?;
                    barrier.file(&path);
                }
            }
            super::super::fault_point("publish.replica-applied")?;
            Ok(())
        };
        let barrier = crate::fsutil::spread(&writes, write, &mut |_| {})?;
        // Every replica written durable before the point says it is published.
        barrier
            .commit()
            .map_err(crate::workspace::WorkspaceError::from)?;
        let point = PublishedPoint {
            group: spec.key.clone(),
            cycle: m.cycle,
            cut_at: m.cut_at,
            cut_seq: m.cut_seq,
            published_at: self.now,
            bytes: m.bytes,
        };
        write_ron(&self.published_path(&spec), &point)?;
        super::super::fault_point("publish.published-written")?;
        self.record_publish(g, &point);
        self.groups[g].published = Some(point);
        // The point is published: the commit record goes first, so that no crash can leave
        // a commit record over a staging area already partly removed.
        remove_file_if_exists(&self.commit_path(&spec))?;
        super::super::fault_point("publish.commit-removed")?;
        remove_dir_if_exists(&staging)?;
        super::super::fault_point("publish.staging-removed")?;
        self.settle_points(g, m.cycle)
    }
}
