//! Initial placement (seed `storage-migration-dr-tags-and-marks.txt`: "suggest an initial
//! placement of a virtual disk or a virtual machine during a virtual machine provisioning
//! workflow"): how a new VM placed on a datastore fares against the protection it is meant
//! to have, by the impact matrix of SPEC §3.
//!
//! A new VM has no source datastore; what it has is an *intended* protection group. Its
//! placement is rated as a move from a replicated datastore of that group (in no consistency
//! group of its own, since the VM has no write-order peers yet) to the candidate, so the
//! matrix's rows apply unchanged: another group's datastore is `severe`
//! (`replication-outside-group`), an unreplicated one `severe` (`loss-of-protection`), a
//! replicated one in no group `heightened-severe` (`replication-loss-of-protection`: it looks
//! replicated, yet no failover recovers it). One row changes meaning: landing in the
//! intended group itself is `none`, since no copy races a replica cut when nothing moves.

use super::{DatastoreTags, Fault, Rating, describe, pg_label, rate};
use crate::topology::Topology;

/// The tags a new VM's intended protection group `pg` stands for.
fn intended(pg: &str) -> DatastoreTags {
    DatastoreTags {
        datastore: String::new(),
        replicated: true,
        consistency_group: None,
        protection_group: Some(pg.to_string()),
        tags: Vec::new(),
    }
}

/// Rates placing a new VM meant for protection group `pg` on the datastore tagged `d`.
pub fn rate_placement(pg: &str, d: &DatastoreTags) -> (Rating, Option<Fault>) {
    match rate(&intended(pg), d) {
        (_, Some(Fault::ReplicationWithinGroup)) => (Rating::None, None),
        other => other,
    }
}

/// One plain-language paragraph: what a new VM meant for `pg` gets on `d` (rated `fault`).
pub fn explain_placement(
    t: &Topology,
    pg: &str,
    d: &DatastoreTags,
    fault: Option<Fault>,
) -> String {
    let dst = describe(t, d);
    let want = pg_label(t, pg);
    let other = d
        .protection_group
        .as_deref()
        .map(|p| pg_label(t, p))
        .unwrap_or_default();
    match fault {
        None => format!(
            "Placing it on {dst} gives it the protection intended: it is replicated from its first write \
             (the initial copy ships with the next cycle) and a failover of {want} recovers it."
        ),
        Some(Fault::ReplicationOutsideGroup) => format!(
            "Placing it on {dst} puts it in {other}, not {want}: it is replicated, but a failover of {want} \
             does not bring it up; it is recovered with {other} instead, with that group's order and priorities."
        ),
        Some(Fault::ReplicationLossOfProtection) => format!(
            "Placing it on {dst} replicates its data, but no protection group covers the datastore: \
             no failover recovers it, and the recovery plan of {want} leaves it behind although it looks replicated."
        ),
        Some(Fault::LossOfProtection) => format!(
            "Placing it on {dst} leaves it unreplicated and unprotected: none of its writes reach the recovery site, \
             and if the protected site is lost, so is this VM and all its data. A failover of {want} does not recover it."
        ),
        Some(f) => format!("Placing it on {dst} is rated {f}."),
    }
}

/// A few words for a table row: what the placement gives the VM.
pub fn placement_summary(
    t: &Topology,
    pg: &str,
    d: &DatastoreTags,
    fault: Option<Fault>,
) -> String {
    match fault {
        None => format!("protected by {pg}"),
        Some(Fault::ReplicationOutsideGroup) => format!(
            "protected by {}, not {pg}",
            d.protection_group.as_deref().unwrap_or("another group")
        ),
        Some(Fault::ReplicationLossOfProtection) => "replicated, but in no protection group".into(),
        Some(Fault::LossOfProtection) => "not replicated: no protection".into(),
        Some(f) => format!("{f} ({})", describe(t, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dr::{discover_tags, tags_of};

    fn demo() -> Topology {
        Topology::builtin_default()
    }

    #[test]
    fn the_intended_group_is_none_and_the_rest_follow_the_matrix() {
        let t = demo();
        let tags = discover_tags(&t);
        let pg = "pg-tier1";
        assert!(t.protection_group(pg).is_some(), "the demo has {pg}");
        let mut seen = std::collections::BTreeSet::new();
        for d in &tags {
            let ds = t.datastore(&d.datastore).unwrap();
            if !t.is_protected_datastore(ds) {
                continue;
            }
            let (rating, fault) = rate_placement(pg, d);
            let want = match (&d.protection_group, d.replicated) {
                (Some(p), _) if p == pg => (Rating::None, None),
                (Some(_), _) => (Rating::Severe, Some(Fault::ReplicationOutsideGroup)),
                (None, true) => (
                    Rating::HeightenedSevere,
                    Some(Fault::ReplicationLossOfProtection),
                ),
                (None, false) => (Rating::Severe, Some(Fault::LossOfProtection)),
            };
            assert_eq!((rating, fault), want, "{}", d.datastore);
            seen.insert(rating);
            let text = explain_placement(&t, pg, &tags_of(&t, ds), fault);
            assert!(text.contains(&d.datastore), "{text}");
        }
        assert!(seen.contains(&Rating::None) && seen.contains(&Rating::Severe));
    }
}
