//! Pure placement planning: evacuation and balance plans from usage and ratings.

use super::*;

/// A VM the planners may move: where it lives and how big its disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movable {
    pub vm: String,
    pub from: String,
    pub mib: u64,
}

/// One planned move, rated (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub mib: u64,
    pub rating: Rating,
    pub fault: Option<Fault>,
    pub explanation: String,
}

/// Where each VM of an evacuated datastore goes, and the VMs that fit nowhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvacuationPlan {
    pub moves: Vec<Move>,
    /// (VM, why it has no destination).
    pub stuck: Vec<(String, String)>,
}

/// Balance's moves and the spread before and after all of them (basis points).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalancePlan {
    pub moves: Vec<Move>,
    pub before_bp: u64,
    pub after_bp: u64,
}

/// Where VMs of datastore `from` may go: the other datastores of its cluster, or (in no
/// cluster) every other protected-site datastore that can take a VM; never a datastore in
/// `unavailable` (maintenance mode). Topology order.
pub fn evacuation_candidates(
    t: &Topology,
    from: &str,
    unavailable: &BTreeSet<String>,
) -> Vec<String> {
    let usable = |id: &str| {
        id != from
            && !unavailable.contains(id)
            && t.datastore(id).is_some_and(|d| {
                d.distributed.as_ref().is_none_or(|x| x.created) && dr::impact(t, from, id).is_ok()
            })
    };
    match t.cluster_of(from) {
        Some(c) => c.datastores.iter().filter(|d| usable(d)).cloned().collect(),
        None => t
            .datastores
            .iter()
            .filter(|d| t.is_protected_datastore(d) && usable(&d.id))
            .map(|d| d.id.clone())
            .collect(),
    }
}

pub(super) fn rated(t: &Topology, m: &Movable, to: &str) -> Option<Move> {
    let i = dr::impact(t, &m.from, to).ok()?;
    Some(Move {
        vm: m.vm.clone(),
        from: m.from.clone(),
        to: to.to_string(),
        mib: m.mib,
        rating: i.rating,
        fault: i.fault,
        explanation: i.explanation,
    })
}

/// Plans the evacuation of datastore `from`: for each VM (largest first, then by id), the
/// candidate with rating `none` (same CG, or non-replicated to non-replicated) if one has
/// room, else the lowest rating, then the most free space, then the first in topology
/// order. `free` is each candidate's free MiB; planned moves use it up.
pub fn plan_evacuation(
    t: &Topology,
    from: &str,
    vms: &[Movable],
    unavailable: &BTreeSet<String>,
    free: &BTreeMap<String, u64>,
) -> EvacuationPlan {
    let candidates = evacuation_candidates(t, from, unavailable);
    let mut free = free.clone();
    let mut order: Vec<&Movable> = vms.iter().collect();
    order.sort_by(|a, b| b.mib.cmp(&a.mib).then_with(|| a.vm.cmp(&b.vm)));
    let mut plan = EvacuationPlan::default();
    for m in order {
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| free.get(*c).copied().unwrap_or(0) >= m.mib)
            .filter_map(|(k, c)| rated(t, m, c).map(|mv| (k, mv)))
            .min_by(|(ka, a), (kb, b)| {
                a.rating
                    .cmp(&b.rating)
                    .then_with(|| free[&b.to].cmp(&free[&a.to]))
                    .then_with(|| ka.cmp(kb))
            });
        match best {
            Some((_, mv)) => {
                *free.get_mut(&mv.to).expect("a candidate with room") -= m.mib;
                plan.moves.push(mv);
            }
            None => {
                let scope = match t.cluster_of(from) {
                    Some(c) => format!("in cluster {}", c.id),
                    None => "at the protected site".to_string(),
                };
                let why = if candidates.is_empty() {
                    format!(
                        "no other datastore {scope} can take VMs (all in maintenance mode or none at all)"
                    )
                } else {
                    let most = candidates
                        .iter()
                        .map(|c| (free.get(c).copied().unwrap_or(0), c))
                        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
                        .expect("not empty");
                    format!(
                        "no datastore {scope} has {} MiB free (the most is {} MiB on {})",
                        m.mib, most.0, most.1
                    )
                };
                plan.stuck.push((m.vm.clone(), why));
            }
        }
    }
    plan
}

/// Used fraction in basis points.
pub fn used_bp(used: u64, capacity: u64) -> u64 {
    if capacity == 0 {
        return if used == 0 { 0 } else { 10_000 };
    }
    used.saturating_mul(10_000) / capacity
}

/// max − min used fraction (basis points) over `datastores`.
pub(super) fn spread(
    datastores: &[String],
    used: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
) -> u64 {
    let fr: Vec<u64> = datastores
        .iter()
        .map(|d| used_bp(used[d], capacity[d]))
        .collect();
    match (fr.iter().max(), fr.iter().min()) {
        (Some(a), Some(b)) => a - b,
        _ => 0,
    }
}

/// Plans Balance on `datastores` (a cluster's, without those in maintenance): greedily,
/// while some move of a VM not yet moved lowers the spread by at least [`MIN_GAIN_BP`],
/// take the lowest-rated such move (a move that keeps DR protection beats one across CGs),
/// then the one leaving the smallest spread, then by VM and destination. `used` and
/// `capacity` hold every listed datastore (MiB); `vms` are the VMs that may move.
pub fn plan_balance(
    t: &Topology,
    datastores: &[String],
    vms: &[Movable],
    used: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
) -> BalancePlan {
    let mut used = used.clone();
    let before = spread(datastores, &used, capacity);
    let mut current = before;
    let mut moved: BTreeSet<&str> = BTreeSet::new();
    let mut where_: BTreeMap<&str, String> = vms
        .iter()
        .map(|m| (m.vm.as_str(), m.from.clone()))
        .collect();
    let mut plan = BalancePlan {
        before_bp: before,
        ..BalancePlan::default()
    };
    loop {
        let mut best: Option<(Rating, u64, Move)> = None;
        for m in vms.iter().filter(|m| !moved.contains(m.vm.as_str())) {
            let from = &where_[m.vm.as_str()];
            if !datastores.contains(from) {
                continue;
            }
            for to in datastores.iter().filter(|d| *d != from) {
                if used[to] + m.mib > capacity[to] {
                    continue;
                }
                let mut after = used.clone();
                *after.get_mut(from).expect("listed") -= m.mib.min(after[from]);
                *after.get_mut(to).expect("listed") += m.mib;
                let s = spread(datastores, &after, capacity);
                if s + MIN_GAIN_BP > current {
                    continue;
                }
                let Some(mv) = rated(t, m, to) else { continue };
                let key = (mv.rating, s);
                let better = match &best {
                    None => true,
                    Some((r, bs, b)) => {
                        key < (*r, *bs) || (key == (*r, *bs) && (&mv.vm, &mv.to) < (&b.vm, &b.to))
                    }
                };
                if better {
                    best = Some((mv.rating, s, mv));
                }
            }
        }
        let Some((_, s, mv)) = best else { break };
        let from = where_[mv.vm.as_str()].clone();
        *used.get_mut(&from).expect("listed") -= mv.mib.min(used[&from]);
        *used.get_mut(&mv.to).expect("listed") += mv.mib;
        current = s;
        let vm = vms
            .iter()
            .find(|m| m.vm == mv.vm)
            .map(|m| m.vm.as_str())
            .expect("planned from vms");
        moved.insert(vm);
        where_.insert(vm, mv.to.clone());
        plan.moves.push(mv);
    }
    plan.after_bp = current;
    plan
}

/// "12.5%" from basis points.
pub fn percent(bp: u64) -> String {
    format!("{}.{}%", bp / 100, (bp % 100) / 10)
}

pub(super) fn describe_move(m: &Move) -> String {
    match m.fault {
        Some(f) => format!("{} {} ▶ {} ({}, {f})", m.vm, m.from, m.to, m.rating),
        None => format!("{} {} ▶ {} ({})", m.vm, m.from, m.to, m.rating),
    }
}
