//! What the console and scenarios see of distributed datastores: legs, compliance.

use super::*;

/// A leg's state as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LegState {
    /// The datastore is not created yet.
    Planned,
    /// Not created yet (the datastore was created while its site was unreachable).
    Absent,
    InSync,
    /// Unreachable or not caught up: changes are tracked.
    Behind,
    /// Catching up from the tracked blocks.
    Rebuilding,
}

impl LegState {
    pub fn as_str(self) -> &'static str {
        match self {
            LegState::Planned => "planned",
            LegState::Absent => "absent",
            LegState::InSync => "in sync",
            LegState::Behind => "behind",
            LegState::Rebuilding => "rebuilding",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegView {
    pub site: String,
    pub lun: String,
    pub state: LegState,
}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributedView {
    pub datastore: String,
    pub created: bool,
    /// The leg VMs use (the datastore's own site).
    pub local: LegView,
    pub remote: LegView,
    pub witness: Option<String>,
    /// The site whose leg serves VM I/O.
    pub serving_site: String,
    pub compliant: bool,
    /// Blocks changed on the serving leg that the other leg lacks.
    pub tracked_blocks: u64,
    pub rebuilding: bool,
    pub rebuild_total: u64,
    pub rebuilt: u64,
    pub instances: Vec<String>,
    /// Sites partitioned away now (all of them, not only this datastore's).
    pub partitioned_sites: Vec<String>,
    pub reports: Vec<ComplianceReport>,
    /// With a witness: the polarization delay and the delay an unhealthy side adds, s.
    pub polarization_delay_s: Option<f64>,
    pub unhealthy_delay_s: Option<f64>,
    /// The legs lost touch and the sides wait for the witness: I/O held until then.
    pub polarizing_until: Option<SimTime>,
    /// The side that will win (the first to ask the witness), while polarizing.
    pub polarization_winner: Option<String>,
    /// Every incident from its failure to its repair, oldest first (claims 6 and 11).
    pub incidents: Vec<Incident>,
}

impl Engine {
    /// The snapshot's view.
    pub(in crate::engine) fn stretch_views(&self) -> Vec<DistributedView> {
        let t = self.topology();
        let partitioned: Vec<String> = self.stretch.partitioned.iter().cloned().collect();
        t.datastores
            .iter()
            .filter_map(|d| d.distributed.as_ref().map(|x| (d, x)))
            .map(|(d, dist)| {
                let rt = self.stretch.dists.get(&d.id);
                let reachable = self.st_legs_reachable(&d.id);
                let (remote_state, compliant, tracked) = match rt {
                    None => (LegState::Planned, false, 0),
                    Some(rt) => {
                        let tracked = rt.tracked();
                        let st = if !rt.saved.remote_present {
                            LegState::Absent
                        } else if rt.rebuilding && reachable {
                            LegState::Rebuilding
                        } else if tracked > 0 || !reachable {
                            LegState::Behind
                        } else {
                            LegState::InSync
                        };
                        (st, st == LegState::InSync, tracked)
                    }
                };
                let serving_remote = rt.is_some_and(|r| r.saved.serving_remote);
                // Leg states are computed for "the other leg"; while the second leg serves,
                // that is the local one.
                let (local_state, remote_state) = match rt {
                    None => (LegState::Planned, remote_state),
                    Some(_) if serving_remote => (remote_state, LegState::InSync),
                    Some(_) => (LegState::InSync, remote_state),
                };
                DistributedView {
                    datastore: d.id.clone(),
                    created: rt.is_some(),
                    serving_site: if serving_remote {
                        dist.remote_site.clone()
                    } else {
                        d.site.clone()
                    },
                    local: LegView {
                        site: d.site.clone(),
                        lun: d.luns.join(", "),
                        state: local_state,
                    },
                    remote: LegView {
                        site: dist.remote_site.clone(),
                        lun: dist.remote_lun.clone(),
                        state: remote_state,
                    },
                    witness: dist.witness.clone(),
                    compliant,
                    tracked_blocks: tracked,
                    rebuilding: rt.is_some_and(|r| r.rebuilding) && reachable,
                    rebuild_total: rt.map_or(0, |r| r.saved.rebuild_total),
                    rebuilt: rt.map_or(0, |r| r.saved.rebuilt),
                    instances: rt.map_or_else(Vec::new, |r| r.saved.instances.clone()),
                    partitioned_sites: partitioned.clone(),
                    reports: rt.map_or_else(Vec::new, |r| r.saved.reports.clone()),
                    polarization_delay_s: dist.witness.as_ref().map(|_| dist.polarization_delay()),
                    unhealthy_delay_s: dist.witness.as_ref().map(|_| dist.unhealthy_delay()),
                    polarizing_until: rt
                        .and_then(|r| r.saved.polarizing.as_ref())
                        .map(|p| p.decide_at),
                    polarization_winner: rt
                        .and_then(|r| r.saved.polarizing.as_ref())
                        .and_then(|p| p.winner.clone()),
                    incidents: rt.map_or_else(Vec::new, |r| r.saved.incidents.clone()),
                }
            })
            .collect()
    }

    /// Checks `ds` names a distributed datastore for an expectation.
    pub(super) fn st_dist_for_check(&self, ds: &str) -> Result<&DistRt, String> {
        match self.topology().datastore(ds) {
            None => Err(format!("datastore {ds:?} does not exist")),
            Some(d) if d.distributed.is_none() => {
                Err(format!("{ds} is not a distributed datastore"))
            }
            Some(_) => self
                .stretch
                .dists
                .get(ds)
                .ok_or_else(|| format!("{ds} is planned, not created yet")),
        }
    }

    /// `Expect(Compliant(datastore))`: both legs present, nothing left to rebuild, and the
    /// legs byte-identical.
    pub fn expect_compliant(&self, datastore: &str) -> (bool, String) {
        let rt = match self.st_dist_for_check(datastore) {
            Ok(rt) => rt,
            Err(e) => return (false, e),
        };
        if !rt.saved.remote_present {
            return (false, format!("{datastore}: the second leg does not exist"));
        }
        if !self.st_legs_reachable(datastore) {
            return (
                false,
                format!("{datastore}: a partition separates its legs"),
            );
        }
        let tracked = rt.tracked();
        if tracked > 0 {
            return (
                false,
                format!("{datastore}: {tracked} tracked block(s) still to rebuild"),
            );
        }
        match self.st_compare_legs(datastore, rt) {
            Ok((n, blocks)) => (
                true,
                format!(
                    "{datastore}: in compliance; {n} instance(s), {blocks} block(s) identical on both legs"
                ),
            ),
            Err(e) => (false, format!("{datastore}: {e}")),
        }
    }

    /// Compares every instance's image on both legs block for block.
    pub(super) fn st_compare_legs(&self, ds: &str, rt: &DistRt) -> Result<(usize, u64), String> {
        let leg = self.st_remote_leg_dir(ds).map_err(|e| e.to_string())?;
        let mut total = 0;
        for inst in &rt.saved.instances {
            let local_path = self
                .ws
                .datastore_dir(ds)
                .map_err(|e| e.to_string())?
                .join(inst)
                .join("disk0.img");
            let remote_path = leg.join(inst).join("disk0.img");
            let a = ImageFile::open_read_only(&local_path).map_err(|e| e.to_string())?;
            let b = ImageFile::open_read_only(&remote_path)
                .map_err(|e| format!("instance {inst}: no image on the second leg ({e})"))?;
            if a.block_count() != b.block_count() {
                return Err(format!(
                    "instance {inst}: {} blocks on the local leg, {} on the second",
                    a.block_count(),
                    b.block_count()
                ));
            }
            let mut first = 0;
            let mut ba = vec![0u8; COMPARE_CHUNK_BLOCKS as usize * BLOCK_SIZE];
            let mut bb = ba.clone();
            while first < a.block_count() {
                let n = COMPARE_CHUNK_BLOCKS.min(a.block_count() - first);
                let len = n as usize * BLOCK_SIZE;
                a.read_at(first * BLOCK_SIZE as u64, &mut ba[..len])
                    .map_err(|e| e.to_string())?;
                b.read_at(first * BLOCK_SIZE as u64, &mut bb[..len])
                    .map_err(|e| e.to_string())?;
                if ba[..len] != bb[..len] {
                    let k = ba[..len]
                        .chunks_exact(BLOCK_SIZE)
                        .zip(bb[..len].chunks_exact(BLOCK_SIZE))
                        .position(|(x, y)| x != y)
                        .unwrap_or(0);
                    return Err(format!(
                        "instance {inst}: block {} differs between the legs",
                        first + k as u64
                    ));
                }
                first += n;
            }
            total += a.block_count();
        }
        Ok((rt.saved.instances.len(), total))
    }

    /// `Expect(OutOfCompliance(datastore))`.
    pub fn expect_out_of_compliance(&self, datastore: &str) -> (bool, String) {
        let rt = match self.st_dist_for_check(datastore) {
            Ok(rt) => rt,
            Err(e) => return (false, e),
        };
        let tracked = rt.tracked();
        let reachable = self.st_legs_reachable(datastore);
        let why = if !rt.saved.remote_present {
            format!("only the local leg exists; {tracked} block(s) tracked")
        } else if !reachable {
            format!("a partition separates its legs; {tracked} block(s) tracked")
        } else if tracked > 0 {
            format!("{tracked} tracked block(s) still to rebuild")
        } else {
            return (
                false,
                format!("{datastore}: in compliance (both legs present and caught up)"),
            );
        };
        (true, format!("{datastore}: out of compliance: {why}"))
    }

    /// Blocks tracked for `datastore`'s second leg now, and (total, rebuilt) of the current
    /// or last rebuild. `None` if it is not a created distributed datastore.
    pub fn stretch_counts(&self, datastore: &str) -> Option<(u64, u64, u64)> {
        self.stretch
            .dists
            .get(datastore)
            .map(|rt| (rt.tracked(), rt.saved.rebuild_total, rt.saved.rebuilt))
    }
}
