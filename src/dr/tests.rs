use super::*;
use crate::topology::Topology;

fn tour() -> Topology {
    Topology::from_ron_str(
        include_str!("../../sample_topologies/impact_tour.ron"),
        "impact_tour.ron",
    )
    .unwrap()
}

fn hazard() -> Topology {
    Topology::from_ron_str(
        include_str!("../../sample_topologies/patent_hazard.ron"),
        "patent_hazard.ron",
    )
    .unwrap()
}

/// The impact matrix of SPEC §3, one row a case: the VM, the destination, the rating and
/// the fault the tour topology must give.
const MATRIX: [(&str, &str, &str, Rating, Option<Fault>); 11] = [
    (
        "neither replicated",
        "vm-plain",
        "ds-plain-2",
        Rating::None,
        None,
    ),
    (
        "within one consistency group",
        "vm-gold",
        "ds-pg1-a2",
        Rating::None,
        None,
    ),
    (
        "not replicated to replicated, outside a PG",
        "vm-plain",
        "ds-rep",
        Rating::Mild,
        Some(Fault::ReplicationOverhead),
    ),
    (
        "not replicated to replicated, in a PG",
        "vm-plain",
        "ds-pg1-a",
        Rating::Mild,
        Some(Fault::ProtectionOverhead),
    ),
    (
        "replicated to not replicated, outside a PG",
        "vm-rep",
        "ds-plain",
        Rating::HeightenedMild,
        Some(Fault::LossOfReplication),
    ),
    (
        "replicated to not replicated, in a PG",
        "vm-gold",
        "ds-plain",
        Rating::Severe,
        Some(Fault::LossOfProtection),
    ),
    (
        "other CG, same PG",
        "vm-gold",
        "ds-pg1-b",
        Rating::HeightenedMild,
        Some(Fault::ReplicationWithinGroup),
    ),
    (
        "other CG, different PGs",
        "vm-gold",
        "ds-pg2",
        Rating::Severe,
        Some(Fault::ReplicationOutsideGroup),
    ),
    (
        "only the source in a PG",
        "vm-gold",
        "ds-rep",
        Rating::HeightenedSevere,
        Some(Fault::ReplicationLossOfProtection),
    ),
    (
        "only the destination in a PG",
        "vm-rep",
        "ds-pg1-a",
        Rating::Mild,
        Some(Fault::ReplicationProtectionOverhead),
    ),
    // ds-rep has no CG, ds-rep-2 is in cg-x: "other CG or none".
    (
        "neither in a PG",
        "vm-rep",
        "ds-rep-2",
        Rating::Mild,
        Some(Fault::ReplicationNoProtection),
    ),
];

#[test]
fn the_impact_matrix_row_by_row() {
    let t = tour();
    for (row, vm, to, rating, fault) in MATRIX {
        let i = impact_for_vm(&t, vm, to).unwrap();
        assert_eq!((i.rating, i.fault), (rating, fault), "{row}: {vm} -> {to}");
        assert_eq!(i.allowed, rating == Rating::None, "{row}: {vm} -> {to}");
        assert!(!i.explanation.is_empty(), "{row}");
    }
    let i = impact(&t, "ds-pg1-a", "ds-pg1-a2").unwrap();
    assert!(
        i.explanation.contains("same consistency group"),
        "{}",
        i.explanation
    );
}

#[test]
fn two_replicated_datastores_without_cg_are_not_the_same_cg() {
    // Both replicated, both without a CG: no write-order guarantee between them.
    let none = |id: &str, pg: Option<&str>| DatastoreTags {
        datastore: id.into(),
        replicated: true,
        consistency_group: None,
        protection_group: pg.map(Into::into),
        tags: vec![],
    };
    assert_eq!(
        rate(&none("a", None), &none("b", None)),
        (Rating::Mild, Some(Fault::ReplicationNoProtection))
    );
    assert_eq!(
        rate(&none("a", Some("p")), &none("b", Some("p"))),
        (Rating::HeightenedMild, Some(Fault::ReplicationWithinGroup))
    );
}

#[test]
fn ratings_are_ordered() {
    let mut sorted = Rating::ALL;
    sorted.sort();
    assert_eq!(sorted, Rating::ALL);
    assert!(Rating::HeightenedMild > Rating::Mild && Rating::Severe > Rating::HeightenedMild);
    for r in Rating::ALL {
        assert_eq!(Rating::parse(r.as_str()), Some(r));
    }
}

#[test]
fn explanation_names_the_real_rpos() {
    let t = hazard();
    let i = impact_for_vm(&t, "vm1", "ds-2").unwrap();
    assert_eq!(i.rating, Rating::HeightenedMild);
    assert!(i.explanation.contains("RPO 15 min"), "{}", i.explanation);
    assert!(i.explanation.contains("RPO 20 min"), "{}", i.explanation);
    assert!(
        i.explanation
            .contains("for up to 20 minutes neither replica may hold a complete copy"),
        "{}",
        i.explanation
    );
}

#[test]
fn tags_in_contract_order() {
    let t = tour();
    let tags = discover_tags(&t);
    let by = |id: &str| {
        tags.iter()
            .find(|x| x.datastore == id)
            .unwrap()
            .tags
            .clone()
    };
    assert_eq!(by("ds-plain"), vec!["replication:status=not-replicated"]);
    assert_eq!(by("ds-rep"), vec!["replication:status=replicated"]);
    assert_eq!(
        by("ds-rep-2"),
        vec!["replication:status=replicated", "replication:cg=cg-x"]
    );
    assert_eq!(
        by("ds-pg1-a"),
        vec![
            "replication:status=replicated",
            "replication:cg=cg-a",
            "replication:pg=pg-1"
        ]
    );
}

/// A datastore backed by two LUNs: `a` and `b` give each LUN's replication line.
fn two_lun_topology(a: &str, b: &str) -> Topology {
    let text = format!(
        r#"Topology(name: "multi", sites: [Site(id: "p", name: "P", role: Protected), Site(id: "r", name: "R", role: Recovery)],
        arrays: [
            Array(id: "ap", site: "p", luns: [Lun(id: "l1", capacity_gib: 1{a}), Lun(id: "l2", capacity_gib: 1{b})]),
            Array(id: "ar", site: "r", luns: [Lun(id: "l1r", capacity_gib: 1), Lun(id: "l2r", capacity_gib: 1)]),
        ],
        datastores: [Datastore(id: "ds", site: "p", luns: ["l1", "l2"]), Datastore(id: "ds-r", site: "r", luns: ["l1r", "l2r"])])"#
    );
    Topology::from_ron_str(&text, "multi.ron").unwrap()
}

#[test]
fn all_or_nothing_for_multi_lun_datastores() {
    let rep = |target: &str, cg: Option<&str>| {
        let cg = cg.map_or("None".to_string(), |c| format!("Some({c:?})"));
        format!(
            ", replication: Some(LunReplication(target: {target:?}, rpo_minutes: 5, consistency_group: {cg}))"
        )
    };
    // One LUN replicated, the other not: the datastore is not replicated.
    let t = two_lun_topology(&rep("l1r", Some("cg")), "");
    let tg = tags_of(&t, t.datastore("ds").unwrap());
    assert!(!tg.replicated);
    assert_eq!(tg.consistency_group, None, "a CG needs every LUN in it");
    assert_eq!(tg.tags, vec!["replication:status=not-replicated"]);

    // Both replicated, both in the CG: replicated and in the CG.
    let t = two_lun_topology(&rep("l1r", Some("cg")), &rep("l2r", Some("cg")));
    let tg = tags_of(&t, t.datastore("ds").unwrap());
    assert!(tg.replicated);
    assert_eq!(tg.consistency_group.as_deref(), Some("cg"));

    // Both replicated, in different CGs: replicated, but in no CG.
    let t = two_lun_topology(&rep("l1r", Some("cg")), &rep("l2r", Some("cg2")));
    let tg = tags_of(&t, t.datastore("ds").unwrap());
    assert!(tg.replicated);
    assert_eq!(tg.consistency_group, None);

    // Both replicated, one without a CG: replicated, in no CG.
    let t = two_lun_topology(&rep("l1r", Some("cg")), &rep("l2r", None));
    let tg = tags_of(&t, t.datastore("ds").unwrap());
    assert!(tg.replicated);
    assert_eq!(tg.consistency_group, None);
}

#[test]
fn bad_destinations_are_errors() {
    let t = tour();
    assert_eq!(
        impact(&t, "ds-pg1-a", "ds-pg1-a-r"),
        Err(ImpactError::ReplicaDestination(
            "ds-pg1-a-r".into(),
            "ds-pg1-a".into()
        ))
    );
    assert_eq!(
        impact(&t, "ds-plain", "ds-plain"),
        Err(ImpactError::SameDatastore("ds-plain".into()))
    );
    assert_eq!(
        impact(&t, "ds-plain", "nope"),
        Err(ImpactError::NoSuchDatastore("nope".into()))
    );
    assert_eq!(
        impact_for_vm(&t, "ghost", "ds-plain"),
        Err(ImpactError::NoSuchVm("ghost".into()))
    );
}

#[test]
fn destinations_are_sorted_safest_first_and_skip_replicas() {
    let t = tour();
    let d = destinations_for_vm(&t, "vm-gold").unwrap();
    assert_eq!(d.len(), 7, "every other protected datastore");
    assert!(d.windows(2).all(|w| w[0].rating <= w[1].rating));
    assert_eq!(d[0].to, "ds-pg1-a2");
    assert_eq!(d.last().unwrap().rating, Rating::HeightenedSevere);
    assert!(d.iter().all(|i| !i.to.ends_with("-r")));
}

#[test]
fn every_row_of_the_table_is_reachable_in_the_tour() {
    let t = tour();
    let mut faults = std::collections::BTreeSet::new();
    for vm in &t.vms {
        for i in destinations_for_vm(&t, &vm.id).unwrap() {
            faults.insert(i.fault.map(|f| f.as_str()).unwrap_or("allowed"));
        }
    }
    assert_eq!(faults.len(), 10, "{faults:?}");
}
