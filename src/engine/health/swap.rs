//! The swap state machine: drain, swap, resync and swap back.

use super::*;

impl Engine {
    pub(super) fn drain_step(&mut self, k: usize) -> Result<(), EngineError> {
        let key = self.health.swaps[k].saved.group.clone();
        let Some(g) = self.group_index(&key) else {
            return self.abandon_swap(k, "its replication group is gone");
        };
        if let Some(why) = self.cannot_swap(g) {
            return self.abandon_swap(k, &why);
        }
        let vms = self.group_vms(g);
        // Hold the guests: no new I/O is issued until the swap.
        for &i in &vms {
            self.vms[i].guest_gen += 1;
        }
        if let Some(tr) = &self.groups[g].transfer {
            let at = tr.ends_at;
            self.queue_health(k, at);
            return Ok(());
        }
        let published = self.groups[g].published.as_ref().map_or(0, |p| p.cycle);
        match self.health.swaps[k].drain_cycle {
            Some(c) if published >= c => {
                let late = vms
                    .iter()
                    .any(|&i| self.vms[i].image.tracker().is_some_and(|t| t.count() > 0));
                if late {
                    // Writes landed after the final cut (the guests were started again
                    // meanwhile): the replicas are behind, so one more cycle first.
                    self.health.swaps[k].drain_cycle = None;
                    return self.drain_step(k);
                }
                self.swap_now(k, g, vms)
            }
            // The final cycle was abandoned (the link went down, a publish failed).
            Some(c) => self.abandon_swap(k, &format!("final cycle {c} was not published")),
            None => {
                self.cut_now(g)?;
                let Some(tr) = &self.groups[g].transfer else {
                    return self.abandon_swap(k, "the final cycle could not be cut");
                };
                let at = tr.ends_at;
                self.health.swaps[k].drain_cycle = Some(self.groups[g].saved.cycles);
                self.queue_health(k, at);
                Ok(())
            }
        }
    }

    /// The drain is published: the replicas equal the primaries. Swap the VMs' I/O.
    pub(super) fn swap_now(
        &mut self,
        k: usize,
        g: usize,
        vms: Vec<usize>,
    ) -> Result<(), EngineError> {
        let pairs = self.groups[g].spec.pairs.clone();
        let mut swapped = Vec::new();
        for &i in &vms {
            match self.swap_vm(i, &pairs) {
                Ok(v) => swapped.push(v),
                Err(e) => {
                    // Undo the ones done: nothing was written on the replicas yet.
                    for v in swapped {
                        self.unswap_vm(v)?;
                    }
                    return self.abandon_swap(k, &e.to_string());
                }
            }
        }
        self.groups[g].saved.swapped = true;
        let s = &mut self.health.swaps[k];
        s.saved.phase = SwapPhase::Swapped;
        s.saved.swapped_at = Some(self.now);
        s.saved.copied = 0;
        s.saved.vms = swapped.iter().map(|v| self.vms[v.vm].id.clone()).collect();
        s.vms = swapped;
        let replicas = self.arrays_label(pairs.iter().map(|p| p.replica.clone()));
        let id = self.groups[g].spec.id.clone();
        let cycle = self.health.swaps[k].drain_cycle.unwrap_or(0);
        for &i in &vms {
            self.start_guest(i);
        }
        self.info(format!(
            "Array health: {id} swapped: I/O on {replicas}, replication suspended (final cycle {cycle} published; {} VM(s) moved their I/O)",
            vms.len()
        ));
        self.persist_state()
    }

    /// Puts VM I/O back on the primary image.
    pub(super) fn unswap_vm(&mut self, v: SwapVm) -> Result<(), EngineError> {
        let i = v.vm;
        let mut primary = v.primary;
        let ds = self.vms[i].datastore.clone();
        let t = self.tracker_for(&ds, primary.path())?;
        primary.set_tracker(t);
        let _replica = std::mem::replace(&mut self.vms[i].image, primary);
        self.vms[i].dir = v.primary_dir;
        self.trackers.remove(&v.replica_dir.join("disk0.img"));
        Ok(())
    }

    pub(super) fn abandon_swap(&mut self, k: usize, why: &str) -> Result<(), EngineError> {
        let s = self.health.swaps.remove(k);
        if let Some(g) = self.group_index(&s.saved.group) {
            for i in self.group_vms(g) {
                self.start_guest(i);
            }
        }
        let id = self.group_label(&s.saved.group);
        self.push_log(
            LogLevel::Warning,
            format!(
                "Array health: the swap of {id} off {} was abandoned ({why}); its I/O stays on {}",
                s.saved.array, s.saved.array
            ),
        );
        self.persist_state()
    }

    pub(super) fn group_label(&self, key: &str) -> String {
        self.group_index(key)
            .map_or_else(|| key.to_string(), |g| self.groups[g].spec.id.clone())
    }

    pub(super) fn resync_step(&mut self, k: usize) -> Result<(), EngineError> {
        let key = self.health.swaps[k].saved.group.clone();
        let Some(g) = self.group_index(&key) else {
            return Ok(());
        };
        let spec = &self.groups[g].spec;
        if self.groups[g].saved.failed_over
            || self.sites_down.contains_key(&spec.source_site)
            || self.sites_down.contains_key(&spec.target_site)
        {
            // A lost site or a failover ends the story of this pair: the resync stops
            // where it is (the replicas hold the live data).
            return Ok(());
        }
        if !self.link_up {
            // The link is down: nothing crosses it; look again in a second, still tracking.
            self.abandon_early_swap_back(k)?;
            self.queue_health(k, self.now + SECOND);
            return Ok(());
        }
        let batch = self.opts.run_blocks() as usize;
        let mut copied = 0u64;
        let mut buf: Block = [0; BLOCK_SIZE];
        let s = &mut self.health.swaps[k];
        for v in &mut s.vms {
            while copied < batch as u64 {
                let Some(b) = v.tracked.pop_first() else {
                    break;
                };
                super::super::alive()?;
                self.vms[v.vm]
                    .image
                    .read_block_at(b, &mut buf)
                    .map_err(io_err_at(&v.replica_dir))?;
                v.primary
                    .write_block(b, &buf)
                    .map_err(io_err_at(v.primary.path()))?;
                copied += 1;
            }
        }
        s.saved.copied += copied;
        if copied > 0 {
            let bytes = copied * BLOCK_SIZE as u64;
            let secs = bytes as f64 / (self.groups[g].spec.mbps * 1_000_000.0 / 8.0);
            let d = ((secs * SECOND as f64).ceil() as SimTime).max(1);
            self.queue_health(k, self.now + d);
            return self.consider_early_swap_back(k, g);
        }
        self.swap_back(k, g)
    }

    /// Nothing left to copy: I/O back on the primaries, then replication restarts.
    pub(super) fn swap_back(&mut self, k: usize, g: usize) -> Result<(), EngineError> {
        let s = self.health.swaps.remove(k);
        debug_assert_eq!(
            s.tracked(),
            0,
            "I/O swaps back only with nothing left to copy"
        );
        let vms: Vec<usize> = s.vms.iter().map(|v| v.vm).collect();
        for v in s.vms {
            self.unswap_vm(v)?;
        }
        self.groups[g].saved.swapped = false;
        let why = match s.saved.early {
            Some(at) => {
                // The guests held for the last copies go on, on the primaries.
                for i in vms {
                    self.start_guest(i);
                }
                format!(
                    "swapped back before the resync's end on the latency comparison (guests held {} while the last block(s) went back; {} block(s) copied back in all)",
                    format_time(self.now - at),
                    s.saved.copied
                )
            }
            None => format!("resync complete ({} block(s) copied back)", s.saved.copied),
        };
        let id = self.groups[g].spec.id.clone();
        let label = self.swap_direction(g);
        let mut restarted = false;
        if self.group_blocked(g).is_none() {
            self.cut_now(g)?;
            restarted = self.groups[g].transfer.is_some();
        }
        let cycle = self.groups[g].saved.cycles;
        self.health.restarted.insert(s.saved.group.clone(), cycle);
        if restarted {
            self.info(format!(
                "Array health: {id} {why}; I/O back on the primaries; replication restarted {label} (cycle {cycle})"
            ));
        } else {
            self.queue_cut(g);
            self.push_log(
                LogLevel::Warning,
                format!(
                    "Array health: {id} {why}; I/O back on the primaries; replication cannot run now and restarts when it can"
                ),
            );
        }
        self.persist_state()
    }

    /// "array-pa ▶ array-ny" for group `g`.
    pub(super) fn swap_direction(&self, g: usize) -> String {
        let pairs = &self.groups[g].spec.pairs;
        format!(
            "{} ▶ {}",
            self.arrays_label(pairs.iter().map(|p| p.datastore.clone())),
            self.arrays_label(pairs.iter().map(|p| p.replica.clone()))
        )
    }
}
