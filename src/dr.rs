//! Disaster-recovery knowledge: replication tag discovery (SPEC §2), the impact matrix of a
//! storage migration (SPEC §3) and plain-language explanations of each fault.

use std::fmt;

use serde::Serialize;

pub use crate::topology::datastore_cg;
use crate::topology::{Datastore, Topology};

mod placement;
pub use placement::{explain_placement, placement_summary, rate_placement};

/// The tags the recovery manager puts on one datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatastoreTags {
    pub datastore: String,
    pub replicated: bool,
    pub consistency_group: Option<String>,
    pub protection_group: Option<String>,
    pub tags: Vec<String>,
}

/// Discovers one datastore's tags from its LUNs' replication properties ("all or nothing").
pub fn tags_of(t: &Topology, ds: &Datastore) -> DatastoreTags {
    let replicated = t.is_replicated(ds);
    let consistency_group = datastore_cg(t, ds);
    let protection_group = t
        .protection_groups
        .iter()
        .find(|pg| pg.datastores.contains(&ds.id))
        .map(|pg| pg.id.clone());
    let mut tags = vec![if replicated {
        "replication:status=replicated".to_string()
    } else {
        "replication:status=not-replicated".to_string()
    }];
    if let Some(cg) = &consistency_group {
        tags.push(format!("replication:cg={cg}"));
    }
    if let Some(pg) = &protection_group {
        tags.push(format!("replication:pg={pg}"));
    }
    DatastoreTags {
        datastore: ds.id.clone(),
        replicated,
        consistency_group,
        protection_group,
        tags,
    }
}

/// Tags of every datastore of the topology, in topology order.
pub fn discover_tags(t: &Topology) -> Vec<DatastoreTags> {
    t.datastores.iter().map(|d| tags_of(t, d)).collect()
}

/// How much a migration threatens DR protection, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rating {
    None,
    Mild,
    HeightenedMild,
    Severe,
    HeightenedSevere,
}

impl Rating {
    pub const ALL: [Rating; 5] = [
        Rating::None,
        Rating::Mild,
        Rating::HeightenedMild,
        Rating::Severe,
        Rating::HeightenedSevere,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::None => "none",
            Rating::Mild => "mild",
            Rating::HeightenedMild => "heightened-mild",
            Rating::Severe => "severe",
            Rating::HeightenedSevere => "heightened-severe",
        }
    }
    pub fn parse(s: &str) -> Option<Rating> {
        Rating::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fault raised with a rating above `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    ReplicationOverhead,
    ProtectionOverhead,
    LossOfReplication,
    LossOfProtection,
    ReplicationWithinGroup,
    ReplicationOutsideGroup,
    ReplicationLossOfProtection,
    ReplicationProtectionOverhead,
    ReplicationNoProtection,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::ReplicationOverhead => "replication-overhead",
            Fault::ProtectionOverhead => "protection-overhead",
            Fault::LossOfReplication => "loss-of-replication",
            Fault::LossOfProtection => "loss-of-protection",
            Fault::ReplicationWithinGroup => "replication-within-group",
            Fault::ReplicationOutsideGroup => "replication-outside-group",
            Fault::ReplicationLossOfProtection => "replication-loss-of-protection",
            Fault::ReplicationProtectionOverhead => "replication-protection-overhead",
            Fault::ReplicationNoProtection => "replication-no-protection",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The impact matrix of SPEC §3 on the tags of source `s` and destination `d`.
pub fn rate(s: &DatastoreTags, d: &DatastoreTags) -> (Rating, Option<Fault>) {
    use Fault::*;
    match (s.replicated, d.replicated) {
        (false, false) => (Rating::None, None),
        (true, true)
            if s.consistency_group.is_some() && s.consistency_group == d.consistency_group =>
        {
            (Rating::None, None)
        }
        (false, true) => match d.protection_group {
            None => (Rating::Mild, Some(ReplicationOverhead)),
            Some(_) => (Rating::Mild, Some(ProtectionOverhead)),
        },
        (true, false) => match s.protection_group {
            None => (Rating::HeightenedMild, Some(LossOfReplication)),
            Some(_) => (Rating::Severe, Some(LossOfProtection)),
        },
        (true, true) => match (&s.protection_group, &d.protection_group) {
            (Some(a), Some(b)) if a == b => (Rating::HeightenedMild, Some(ReplicationWithinGroup)),
            (Some(_), Some(_)) => (Rating::Severe, Some(ReplicationOutsideGroup)),
            (Some(_), None) => (Rating::HeightenedSevere, Some(ReplicationLossOfProtection)),
            (None, Some(_)) => (Rating::Mild, Some(ReplicationProtectionOverhead)),
            (None, None) => (Rating::Mild, Some(ReplicationNoProtection)),
        },
    }
}

/// The rated impact of moving a VM's disk from one datastore to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub from: String,
    pub to: String,
    pub allowed: bool,
    pub rating: Rating,
    pub fault: Option<Fault>,
    pub explanation: String,
}

/// Why an impact could not be rated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpactError {
    #[error("datastore {0:?} does not exist")]
    NoSuchDatastore(String),
    #[error("VM {0:?} does not exist")]
    NoSuchVm(String),
    #[error(
        "datastore {0:?} is at recovery site {1:?}; a migration moves between protected-site datastores"
    )]
    NotProtected(String, String),
    #[error(
        "datastore {0:?} is the replica datastore of {1:?}; it cannot be a migration destination"
    )]
    ReplicaDestination(String, String),
    #[error("source and destination are the same datastore {0:?}")]
    SameDatastore(String),
}

/// Rates moving from datastore `from` to datastore `to` (SPEC §3), with the explanation.
pub fn impact(t: &Topology, from: &str, to: &str) -> Result<Impact, ImpactError> {
    let s = t
        .datastore(from)
        .ok_or_else(|| ImpactError::NoSuchDatastore(from.to_string()))?;
    let d = t
        .datastore(to)
        .ok_or_else(|| ImpactError::NoSuchDatastore(to.to_string()))?;
    if let Some(p) = t.replica_source(d) {
        return Err(ImpactError::ReplicaDestination(d.id.clone(), p.id.clone()));
    }
    for ds in [s, d] {
        if !t.is_protected_datastore(ds) {
            return Err(ImpactError::NotProtected(ds.id.clone(), ds.site.clone()));
        }
    }
    if s.id == d.id {
        return Err(ImpactError::SameDatastore(s.id.clone()));
    }
    let st = tags_of(t, s);
    let dt = tags_of(t, d);
    let (rating, fault) = rate(&st, &dt);
    let explanation = explain(t, &st, &dt, fault);
    Ok(Impact {
        from: s.id.clone(),
        to: d.id.clone(),
        allowed: rating == Rating::None,
        rating,
        fault,
        explanation,
    })
}

/// Rates moving VM `vm` from where it lives to datastore `to`.
pub fn impact_for_vm(t: &Topology, vm: &str, to: &str) -> Result<Impact, ImpactError> {
    let v = t
        .vm(vm)
        .ok_or_else(|| ImpactError::NoSuchVm(vm.to_string()))?;
    impact(t, &v.datastore, to)
}

/// Every other protected-site datastore a VM could move to, rated, safest first
/// (ties by datastore id). Replica datastores are never destinations.
pub fn destinations_for_vm(t: &Topology, vm: &str) -> Result<Vec<Impact>, ImpactError> {
    let v = t
        .vm(vm)
        .ok_or_else(|| ImpactError::NoSuchVm(vm.to_string()))?;
    let mut out: Vec<Impact> = t
        .datastores
        .iter()
        .filter(|d| d.id != v.datastore && t.is_protected_datastore(d))
        .filter_map(|d| impact(t, &v.datastore, &d.id).ok())
        .collect();
    out.sort_by(|a, b| a.rating.cmp(&b.rating).then_with(|| a.to.cmp(&b.to)));
    Ok(out)
}

/// Describes one datastore's replication for a sentence: "ds-1 (CG cg-1, RPO 15 min)".
fn describe(t: &Topology, tags: &DatastoreTags) -> String {
    let ds = t.datastore(&tags.datastore);
    let rpo = ds.and_then(|d| t.datastore_rpo_minutes(d));
    let mut parts = Vec::new();
    if tags.replicated {
        match &tags.consistency_group {
            Some(cg) => parts.push(format!("consistency group {cg}")),
            None => parts.push("no consistency group".to_string()),
        }
        if let Some(rpo) = rpo {
            parts.push(format!("RPO {rpo} min"));
        }
    } else {
        parts.push("not replicated".to_string());
    }
    match &tags.protection_group {
        Some(pg) => parts.push(format!("protection group {}", pg_label(t, pg))),
        None if tags.replicated => parts.push("no protection group".to_string()),
        None => {}
    }
    format!("{} ({})", tags.datastore, parts.join(", "))
}

fn pg_label(t: &Topology, pg: &str) -> String {
    match t.protection_group(pg) {
        Some(p) if !p.name.is_empty() && p.name != p.id => format!("{} \"{}\"", p.id, p.name),
        _ => pg.to_string(),
    }
}

fn rpo_of(t: &Topology, tags: &DatastoreTags) -> Option<u32> {
    t.datastore(&tags.datastore)
        .and_then(|d| t.datastore_rpo_minutes(d))
}

/// The window during which, after a move between independently replicated datastores,
/// neither replica may hold a complete copy: the larger of the two RPOs.
fn exposure_window(t: &Topology, s: &DatastoreTags, d: &DatastoreTags) -> String {
    match rpo_of(t, s).max(rpo_of(t, d)) {
        Some(m) => format!("{m} minutes"),
        None => "one replication cycle".to_string(),
    }
}

/// A one-paragraph, plain-language account of what the move could lose.
pub fn explain(t: &Topology, s: &DatastoreTags, d: &DatastoreTags, fault: Option<Fault>) -> String {
    let src = describe(t, s);
    let dst = describe(t, d);
    let window = exposure_window(t, s, d);
    let d_rpo = rpo_of(t, d).map_or("its RPO".to_string(), |m| format!("{m} minutes"));
    let pg = |tags: &DatastoreTags| {
        tags.protection_group
            .as_deref()
            .map(|p| pg_label(t, p))
            .unwrap_or_default()
    };
    let race = format!(
        "The two datastores are replicated independently, so their replicas are cut at different moments: \
         while the disk moves and until the destination publishes a recovery point that holds the whole disk, \
         for up to {window} neither replica may hold a complete copy, and a disaster in that window can lose the VM."
    );
    match fault {
        None if !s.replicated => format!(
            "Moving from {src} to {dst}: neither datastore is replicated, so disaster-recovery protection does not change. \
             The VM was not recoverable at the recovery site before the move and is not after it."
        ),
        None => format!(
            "Moving from {src} to {dst}: both datastores are in the same consistency group, whose write order is preserved together, \
             so every recovery point holds a complete, consistent copy of the VM throughout the move. Nothing is put at risk."
        ),
        Some(Fault::ReplicationOverhead) => format!(
            "Moving from {src} to {dst}: the VM will start being replicated. Its whole disk is shipped to the recovery site \
             (an initial copy, then its changes every {d_rpo}), which adds link traffic and replica space. \
             No protection group covers the destination, so a failover would still not recover this VM. Nothing is lost."
        ),
        Some(Fault::ProtectionOverhead) => format!(
            "Moving from {src} to {dst}: the VM will be replicated and protected by {}. Its whole disk is shipped to the \
             recovery site, and a failover of that group will now also reserve capacity for it and power it on. \
             Nothing is lost, but check that the recovery site has room for it.",
            pg(d)
        ),
        Some(Fault::LossOfReplication) => format!(
            "Moving from {src} to {dst}: the VM leaves replication. From the moment it moves, none of its writes reach the \
             recovery site and its replica is removed at the next cycle; if the protected site is lost, so is this VM and all its data. \
             No protection group covered it, so no recovery plan changes."
        ),
        Some(Fault::LossOfProtection) => format!(
            "Moving from {src} to {dst}: the VM leaves replication and protection. A failover of {} will no longer recover it: \
             if the protected site is lost, this VM and all its data are lost with it, even though its recovery plan still lists the group.",
            pg(s)
        ),
        Some(Fault::ReplicationWithinGroup) => format!(
            "Moving from {src} to {dst}: both are protected by {} but sit in different consistency groups. {race} \
             Afterwards the VM fails over with the same group but is no longer write-order consistent with its former consistency-group peers.",
            pg(s)
        ),
        Some(Fault::ReplicationOutsideGroup) => format!(
            "Moving from {src} to {dst}: the VM changes protection group, from {} to {}. {race} \
             Afterwards a failover of {} no longer brings it up; it is recovered with {} instead, with that group's order and priorities.",
            pg(s),
            pg(d),
            pg(s),
            pg(d)
        ),
        Some(Fault::ReplicationLossOfProtection) => format!(
            "Moving from {src} to {dst}: the VM stays replicated but leaves {}. {race} \
             After the move its data still reaches the recovery site, but no failover recovers it: the recovery plan of {} leaves it behind.",
            pg(s),
            pg(s)
        ),
        Some(Fault::ReplicationProtectionOverhead) => format!(
            "Moving from {src} to {dst}: the VM becomes protected by {}. {race} \
             Afterwards a failover of that group also reserves capacity for this VM and recovers it.",
            pg(d)
        ),
        Some(Fault::ReplicationNoProtection) => format!(
            "Moving from {src} to {dst}: no protection group covers either datastore, so no recovery plan changes. {race}"
        ),
    }
}

#[cfg(test)]
mod tests;
