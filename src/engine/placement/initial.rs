//! Initial placement (pure): where a new VM could go, ranked by the impact rules
//! ([`dr::rate_placement`]: does it keep the protection group it is meant for?), then by
//! whether it fits and how full the datastore would be (the spread Balance evens out).

use super::*;
use crate::engine::human_bytes;

/// A new VM's disk may not be larger than this (1 PiB): its image size in bytes must fit.
pub const MAX_NEW_DISK_MIB: u64 = 1 << 30;

/// One datastore a new VM could be placed on, rated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementOption {
    pub datastore: String,
    pub rating: Rating,
    pub fault: Option<Fault>,
    /// A failover of the intended protection group would recover the VM there.
    pub keeps_protection: bool,
    pub replicated: bool,
    pub consistency_group: Option<String>,
    pub protection_group: Option<String>,
    pub capacity_mib: u64,
    /// Free before the VM is placed.
    pub free_mib: u64,
    /// The disk fits in the free space.
    pub fits: bool,
    /// Free after the VM is placed (none if it does not fit).
    pub free_after_mib: Option<u64>,
    /// Used fraction after the VM is placed, basis points (10000 = full; over if it does
    /// not fit).
    pub used_after_bp: u64,
    /// Why no new VM may go there now (maintenance mode, a lost site, ...), if so.
    pub unavailable: Option<String>,
    /// Fits and available: the operator may pick it (with "Are you sure?" above `none`).
    pub placeable: bool,
    /// What the VM gets there, in a few words ("protected by pg-a").
    pub gets: String,
    /// A line for a table: what the VM gets there and the room left (or why it cannot go).
    pub reason: String,
    /// The rating's plain-language paragraph.
    pub explanation: String,
}

/// Why a placement could not be ranked: the object and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "protection group {pg:?} does not exist in the topology; a new VM's intended protection must be one of its protection groups ({known})"
    )]
    NoSuchProtectionGroup { pg: String, known: String },
    #[error("disk size {mib} MiB: a VM's disk must be at least 1 MiB (disk_mib >= 1)")]
    EmptyDisk { mib: u64 },
    #[error("disk size {mib} MiB: a new VM's disk may be at most {MAX_NEW_DISK_MIB} MiB (1 PiB)")]
    DiskTooLarge { mib: u64 },
}

/// Checks a new VM's intended protection group and disk size.
pub fn check_placement_request(
    t: &Topology,
    pg: &str,
    disk_mib: u64,
) -> Result<(), PlacementError> {
    if t.protection_group(pg).is_none() {
        let known: Vec<&str> = t.protection_groups.iter().map(|p| p.id.as_str()).collect();
        return Err(PlacementError::NoSuchProtectionGroup {
            pg: pg.to_string(),
            known: if known.is_empty() {
                "it has none".into()
            } else {
                known.join(", ")
            },
        });
    }
    if disk_mib == 0 {
        return Err(PlacementError::EmptyDisk { mib: disk_mib });
    }
    if disk_mib > MAX_NEW_DISK_MIB {
        return Err(PlacementError::DiskTooLarge { mib: disk_mib });
    }
    Ok(())
}

/// Ranks every protected-site datastore for a new VM of `disk_mib` MiB meant for
/// protection group `pg`, safest first: by rating ([`dr::rate_placement`]), then those it
/// may go to (fits in `free`, not in `unavailable`) before the others, then the emptiest
/// after placement, then by id. `free` holds each datastore's free MiB (a datastore it
/// lacks counts as the topology's capacity less its disks); `unavailable` says why a
/// datastore takes no new VM now. A planned distributed datastore not created yet is
/// listed as unavailable.
pub fn rank_initial_placement(
    t: &Topology,
    pg: &str,
    disk_mib: u64,
    free: &BTreeMap<String, u64>,
    unavailable: &BTreeMap<String, String>,
) -> Result<Vec<PlacementOption>, PlacementError> {
    check_placement_request(t, pg, disk_mib)?;
    let mut out: Vec<PlacementOption> = t
        .datastores
        .iter()
        .filter(|d| t.is_protected_datastore(d))
        .map(|d| {
            let tags = dr::tags_of(t, d);
            let (rating, fault) = dr::rate_placement(pg, &tags);
            let capacity = t.datastore_capacity_mib(d);
            let free_mib = free
                .get(&d.id)
                .copied()
                .unwrap_or_else(|| capacity.saturating_sub(t.datastore_used_mib(&d.id)));
            let fits = free_mib >= disk_mib;
            let used_after = capacity.saturating_sub(free_mib).saturating_add(disk_mib);
            let unavailable = unavailable.get(&d.id).cloned().or_else(|| {
                d.distributed
                    .as_ref()
                    .filter(|x| !x.created)
                    .map(|_| "a planned distributed datastore, not created yet".to_string())
            });
            let summary = dr::placement_summary(t, pg, &tags, fault);
            let room = if fits {
                format!(
                    "{} free after, {} used",
                    human_bytes((free_mib - disk_mib) << 20),
                    percent(used_bp(used_after, capacity))
                )
            } else {
                format!(
                    "no room: {} free, the VM needs {}",
                    human_bytes(free_mib << 20),
                    human_bytes(disk_mib << 20)
                )
            };
            let reason = match &unavailable {
                Some(why) => format!("{why}; {summary}"),
                None => format!("{summary}; {room}"),
            };
            let gets = summary;
            PlacementOption {
                datastore: d.id.clone(),
                rating,
                fault,
                keeps_protection: fault.is_none(),
                replicated: tags.replicated,
                consistency_group: tags.consistency_group.clone(),
                protection_group: tags.protection_group.clone(),
                capacity_mib: capacity,
                free_mib,
                fits,
                free_after_mib: fits.then(|| free_mib - disk_mib),
                used_after_bp: used_bp(used_after, capacity),
                placeable: fits && unavailable.is_none(),
                unavailable,
                gets,
                reason,
                explanation: dr::explain_placement(t, pg, &tags, fault),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.rating
            .cmp(&b.rating)
            .then_with(|| b.placeable.cmp(&a.placeable))
            .then_with(|| a.used_after_bp.cmp(&b.used_after_bp))
            .then_with(|| a.datastore.cmp(&b.datastore))
    });
    Ok(out)
}

/// The option to preselect: the first the VM may go to.
pub fn recommended(options: &[PlacementOption]) -> Option<&PlacementOption> {
    options.iter().find(|o| o.placeable)
}

#[cfg(test)]
#[path = "initial_tests.rs"]
mod tests;
