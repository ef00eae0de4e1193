//! What the console and scenarios see of arrays and swapped pairs.

use super::*;

/// A pair (a replication group with a datastore on the array) as the console shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthPairView {
    /// The replication group's id (CG or datastore).
    pub group: String,
    /// (protected datastore, replica datastore).
    pub datastores: Vec<(String, String)>,
    /// The array serving the pair's host I/O now.
    pub serving: String,
    /// None (normal), or "draining", "swapped", "resyncing".
    pub phase: Option<String>,
    /// Blocks still to copy back (resync) — or written and tracked (swapped).
    pub tracked_blocks: u64,
    pub blocks_left: u64,
    /// 0..=1 (resync progress; 1 when nothing is to be done).
    pub progress: f32,
    /// "array-pa ▶ array-ny".
    pub direction: String,
    /// The state in words.
    pub state: String,
    /// The faulted array's early swap-back settings: the largest latency difference, ms,
    /// and how long it must hold, s (set while the pair is swapped or resyncing).
    pub swap_back_threshold_ms: Option<f64>,
    pub swap_back_hold_s: Option<f64>,
    /// While resyncing: the latency expected on the primaries if I/O swapped back now, and
    /// the one recorded on the replicas, ms.
    pub expected_latency_ms: Option<f64>,
    pub recorded_latency_ms: Option<f64>,
    /// While resyncing: how long the difference has stayed within the threshold, s.
    pub within_for_s: Option<f64>,
    /// The early swap-back is under way: guests held while the last blocks go back.
    pub swapping_back_early: bool,
}

/// An array as the console shows it (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArrayView {
    pub id: String,
    pub site: String,
    pub faulted: bool,
    /// A protected-site array with replicated or distributed LUNs: the operator may fault it.
    pub can_fault: bool,
    pub pairs: Vec<HealthPairView>,
}

impl Engine {
    /// The snapshot's view.
    pub(in crate::engine) fn health_views(&self) -> Vec<ArrayView> {
        let t = self.topology();
        // Every snapshot builds this: which array holds each LUN, looked up once (the
        // topology's lookups are linear).
        let array_of: HashMap<&str, &str> = t
            .arrays
            .iter()
            .flat_map(|a| a.luns.iter().map(|l| (l.id.as_str(), a.id.as_str())))
            .collect();
        let arrays_of_ds: HashMap<&str, BTreeSet<&str>> = t
            .datastores
            .iter()
            .map(|d| {
                let arrays = d
                    .luns
                    .iter()
                    .filter_map(|l| array_of.get(l.as_str()).copied())
                    .collect();
                (d.id.as_str(), arrays)
            })
            .collect();
        t.arrays
            .iter()
            .map(|a| {
                let protected = t.site_role(&a.site) == Some(SiteRole::Protected);
                let distributed = t.datastores.iter().any(|d| {
                    d.distributed.is_some()
                        && arrays_of_ds
                            .get(d.id.as_str())
                            .is_some_and(|arrays| arrays.contains(a.id.as_str()))
                });
                let replicated = a.luns.iter().any(|l| l.replication.is_some());
                let pairs = (0..self.groups.len())
                    .filter(|&g| {
                        self.groups[g].spec.pairs.iter().any(|p| {
                            arrays_of_ds
                                .get(p.datastore.as_str())
                                .is_some_and(|arrays| arrays.contains(a.id.as_str()))
                        })
                    })
                    .map(|g| self.pair_view(g))
                    .collect();
                ArrayView {
                    id: a.id.clone(),
                    site: a.site.clone(),
                    faulted: self.health.faulted.contains(&a.id),
                    can_fault: protected && (replicated || distributed),
                    pairs,
                }
            })
            .collect()
    }

    pub(super) fn pair_view(&self, g: usize) -> HealthPairView {
        let grp = &self.groups[g];
        let swap = self
            .health
            .swaps
            .iter()
            .find(|s| s.saved.group == grp.spec.key);
        let primaries = self.arrays_label(grp.spec.pairs.iter().map(|p| p.datastore.clone()));
        let replicas = self.arrays_label(grp.spec.pairs.iter().map(|p| p.replica.clone()));
        let tracked = swap.map_or(0, |s| s.tracked());
        let phase = swap.map(|s| s.saved.phase);
        let serving = match phase {
            Some(SwapPhase::Swapped | SwapPhase::Resyncing) => replicas.clone(),
            _ => primaries.clone(),
        };
        let repl = match self.group_blocked(g) {
            Some(_) if grp.saved.swapped => "suspended".to_string(),
            Some(st) => st.as_str().to_string(),
            None if grp.transfer.is_some() => "transferring".into(),
            None => "replicating".into(),
        };
        let state = match (phase, swap) {
            (Some(SwapPhase::Draining), Some(s)) => format!(
                "draining: guests held while the final cycle ships to {replicas}{}",
                grp.transfer
                    .as_ref()
                    .filter(|_| s.drain_cycle.is_some())
                    .map_or(String::new(), |t| format!(
                        " ({} KiB, ends at {})",
                        t.manifest.bytes / 1024,
                        format_time(t.ends_at)
                    ))
            ),
            (Some(SwapPhase::Swapped), _) => {
                format!("swapped: I/O on {replicas}, replication suspended")
            }
            (Some(SwapPhase::Resyncing), _) => format!(
                "resyncing {replicas} ▶ {primaries}: {tracked} block(s) left; replication restarts after"
            ),
            _ => match self.health.restarted.get(&grp.spec.key) {
                Some(c) => format!(
                    "resync complete; replication restarted {primaries} ▶ {replicas} (cycle {c}); {repl}"
                ),
                None => format!("I/O on {primaries}; {repl}"),
            },
        };
        let (left, progress) = match (phase, swap) {
            (Some(SwapPhase::Resyncing), Some(s)) => {
                let total = s.resync_total.max(s.saved.copied + tracked).max(1);
                (tracked, s.saved.copied as f32 / total as f32)
            }
            (Some(SwapPhase::Draining), _) => (
                grp.transfer
                    .as_ref()
                    .map_or(0, |t| t.manifest.bytes / BLOCK_SIZE as u64),
                0.0,
            ),
            _ => (0, 1.0),
        };
        let k = self
            .health
            .swaps
            .iter()
            .position(|s| s.saved.group == grp.spec.key);
        let settings = k
            .filter(|_| phase != Some(SwapPhase::Draining))
            .map(|k| self.swap_back_settings(k));
        let lat = k
            .filter(|_| phase == Some(SwapPhase::Resyncing))
            .map(|k| self.swap_latencies(k, g));
        let secs = |t: SimTime| t as f64 / SECOND as f64;
        HealthPairView {
            swap_back_threshold_ms: settings.map(|s| s.latency_ms),
            swap_back_hold_s: settings.map(|s| s.hold_s),
            expected_latency_ms: lat.map(|l| swap_back::us_to_ms(l.expected_us)),
            recorded_latency_ms: lat.map(|l| swap_back::us_to_ms(l.recorded_us)),
            // Sampled at each resync step: shown up to the hold period.
            within_for_s: lat
                .and(swap)
                .and_then(|s| s.within_since)
                .zip(settings)
                .map(|(t, sb)| secs(self.now - t).min(sb.hold_s)),
            swapping_back_early: swap.is_some_and(|s| s.saved.early.is_some()),
            group: grp.spec.id.clone(),
            datastores: grp
                .spec
                .pairs
                .iter()
                .map(|p| (p.datastore.clone(), p.replica.clone()))
                .collect(),
            serving,
            phase: phase.map(|p| p.as_str().to_string()),
            tracked_blocks: tracked,
            blocks_left: left,
            progress,
            direction: if grp.saved.swapped {
                format!("{primaries} ▶ {replicas} (suspended)")
            } else {
                format!("{primaries} ▶ {replicas}")
            },
            state,
        }
    }

    /// `Expect(ServedBy(vm, array))`: the VM's I/O goes to a LUN of this array now.
    pub fn expect_served_by(&self, vm: &str, array: &str) -> (bool, String) {
        let Some(i) = self.vm_index(vm) else {
            return (false, format!("VM {vm:?} does not exist"));
        };
        if self.check_array(array).is_err() {
            return (false, format!("array {array:?} does not exist"));
        }
        let (arrays, how) = match self.served_arrays(i) {
            (a, true) => (a, "swapped to the replica"),
            (a, false) => (a, "its own datastore"),
        };
        (
            arrays.iter().any(|a| a == array),
            format!("{vm}'s I/O goes to {} ({how})", arrays.join("+")),
        )
    }

    /// The arrays serving VM `i` now, and whether that is a swap.
    pub(super) fn served_arrays(&self, i: usize) -> (Vec<String>, bool) {
        let swapped = self
            .health
            .swaps
            .iter()
            .any(|s| s.vms.iter().any(|v| v.vm == i));
        if swapped
            && let Some(g) = self.group_of(&self.vms[i].datastore)
            && let Some(p) = self.groups[g]
                .spec
                .pairs
                .iter()
                .find(|p| p.datastore == self.vms[i].datastore)
        {
            return (self.arrays_of(&p.replica), true);
        }
        (self.arrays_of(&self.vms[i].datastore), false)
    }

    /// `Expect(Replicating(datastore))`: its group replicates in its original direction
    /// and has published a point since the last swap back.
    pub fn expect_replicating(&self, datastore: &str) -> (bool, String) {
        if self.topology().datastore(datastore).is_none() {
            return (false, format!("datastore {datastore:?} does not exist"));
        }
        let Some(g) = self.group_of(datastore) else {
            return (false, format!("{datastore} is not replicated"));
        };
        let grp = &self.groups[g];
        let id = &grp.spec.id;
        if let Some(s) = self
            .health
            .swaps
            .iter()
            .find(|s| s.saved.group == grp.spec.key)
        {
            return (false, format!("{id} is {}", s.saved.phase.as_str()));
        }
        if let Some(st) = self.group_blocked(g) {
            return (false, format!("{id} cannot replicate ({})", st.as_str()));
        }
        let dir = self.swap_direction(g);
        let published = grp.published.as_ref().map(|p| p.cycle);
        match (self.health.restarted.get(&grp.spec.key), published) {
            (_, None) => (false, format!("{id} has published no point yet")),
            (Some(&c), Some(p)) if p < c => (
                false,
                format!("{id} restarted {dir} with cycle {c}; last published point is cycle {p}"),
            ),
            (Some(&c), Some(p)) => (
                true,
                format!("{id} replicates {dir}; point {p} published since the restart (cycle {c})"),
            ),
            (None, Some(p)) => (true, format!("{id} replicates {dir}; last point cycle {p}")),
        }
    }
}
