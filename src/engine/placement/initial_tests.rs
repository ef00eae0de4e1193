//! The initial-placement ranking on the built-in demo: Tier 1 is ds-gold-1..3 (two CGs),
//! Tier 2 ds-silver-1, ds-bronze-1 is replicated in no group, ds-local is not replicated.

use super::*;

fn demo() -> Topology {
    Topology::builtin_default()
}

fn rank(
    pg: &str,
    mib: u64,
    free: &BTreeMap<String, u64>,
    unavailable: &BTreeMap<String, String>,
) -> Vec<PlacementOption> {
    rank_initial_placement(&demo(), pg, mib, free, unavailable).expect("a valid request")
}

fn ids(options: &[PlacementOption]) -> Vec<&str> {
    options.iter().map(|o| o.datastore.as_str()).collect()
}

#[test]
fn the_intended_group_comes_first_emptiest_first_then_the_matrix() {
    let t = demo();
    let free = t.free_mib_by_datastore();
    let options = rank("pg-tier1", 64, &free, &BTreeMap::new());
    // Every protected-site datastore, none of the recovery site's.
    assert_eq!(options.len(), 6, "{:?}", ids(&options));
    let ratings: Vec<Rating> = options.iter().map(|o| o.rating).collect();
    let mut sorted = ratings.clone();
    sorted.sort();
    assert_eq!(ratings, sorted, "safest first");
    // Tier 1's three datastores keep the protection; among them the emptiest after
    // placement first (ds-gold-1 holds 128 MiB, ds-gold-2 160 MiB, ds-gold-3 128 MiB, all 512 GiB).
    assert_eq!(ids(&options[..3]), ["ds-gold-1", "ds-gold-3", "ds-gold-2"]);
    assert!(
        options[..3]
            .iter()
            .all(|o| o.keeps_protection && o.fault.is_none())
    );
    let by_id = |id: &str| options.iter().find(|o| o.datastore == id).unwrap();
    assert_eq!(
        (by_id("ds-silver-1").rating, by_id("ds-silver-1").fault),
        (Rating::Severe, Some(Fault::ReplicationOutsideGroup))
    );
    assert_eq!(
        (by_id("ds-local").rating, by_id("ds-local").fault),
        (Rating::Severe, Some(Fault::LossOfProtection))
    );
    let bronze = options.last().unwrap();
    assert_eq!(
        (bronze.datastore.as_str(), bronze.rating, bronze.fault),
        (
            "ds-bronze-1",
            Rating::HeightenedSevere,
            Some(Fault::ReplicationLossOfProtection)
        )
    );
    let first = &options[0];
    assert_eq!(
        recommended(&options).map(|o| o.datastore.as_str()),
        Some("ds-gold-1")
    );
    assert_eq!(first.free_after_mib, Some(first.free_mib - 64));
    assert!(
        first.reason.starts_with("protected by pg-tier1;"),
        "{}",
        first.reason
    );
    assert!(
        first.explanation.contains("a failover of pg-tier1"),
        "{}",
        first.explanation
    );
    assert!(
        bronze.reason.contains("no protection group"),
        "{}",
        bronze.reason
    );
}

#[test]
fn no_room_and_unavailable_rank_below_their_rating_peers_and_say_why() {
    let t = demo();
    let mut free = t.free_mib_by_datastore();
    free.insert("ds-gold-1".into(), 10);
    let unavailable =
        BTreeMap::from([("ds-gold-3".to_string(), "in maintenance mode".to_string())]);
    let options = rank("pg-tier1", 64, &free, &unavailable);
    assert_eq!(ids(&options[..3]), ["ds-gold-2", "ds-gold-3", "ds-gold-1"]);
    let full = &options[2];
    assert!(!full.fits && !full.placeable && full.free_after_mib.is_none());
    assert!(
        full.reason.contains("no room: 10.0 MiB free"),
        "{}",
        full.reason
    );
    let maint = &options[1];
    assert!(maint.fits && !maint.placeable);
    assert!(
        maint.reason.starts_with("in maintenance mode;"),
        "{}",
        maint.reason
    );
    assert_eq!(
        recommended(&options).map(|o| o.datastore.as_str()),
        Some("ds-gold-2")
    );
    // Only unprotected room left: the safest the VM may go to is what gets preselected.
    let mut tight = free.clone();
    for d in ["ds-gold-2", "ds-gold-3"] {
        tight.insert(d.into(), 0);
    }
    let options = rank("pg-tier1", 64, &tight, &BTreeMap::new());
    let pick = recommended(&options).unwrap();
    assert_eq!(pick.rating, Rating::Severe, "{}", pick.datastore);
}

#[test]
fn a_bad_request_names_the_object_and_the_rule() {
    let t = demo();
    let free = BTreeMap::new();
    let none = BTreeMap::new();
    let e = rank_initial_placement(&t, "pg-nope", 64, &free, &none).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("\"pg-nope\"") && text.contains("pg-tier1, pg-tier2"),
        "{text}"
    );
    let e = rank_initial_placement(&t, "pg-tier1", 0, &free, &none).unwrap_err();
    assert_eq!(e, PlacementError::EmptyDisk { mib: 0 });
    assert!(e.to_string().contains("at least 1 MiB"));
    let e = rank_initial_placement(&t, "pg-tier1", u64::MAX, &free, &none).unwrap_err();
    assert!(matches!(e, PlacementError::DiskTooLarge { .. }), "{e}");
}

#[test]
fn a_planned_distributed_datastore_is_listed_as_not_created() {
    let mut t = demo();
    let local = t
        .datastores
        .iter_mut()
        .find(|d| d.id == "ds-local")
        .unwrap();
    local.distributed = Some(crate::topology::Distributed {
        remote_site: "ny".into(),
        remote_lun: "lun-x".into(),
        witness: None,
        created: false,
        polarization_delay_s: None,
        unhealthy_delay_s: None,
    });
    let options =
        rank_initial_placement(&t, "pg-tier2", 16, &BTreeMap::new(), &BTreeMap::new()).unwrap();
    let local = options.iter().find(|o| o.datastore == "ds-local").unwrap();
    assert!(local.fits && !local.placeable);
    assert!(
        local
            .reason
            .starts_with("a planned distributed datastore, not created yet"),
        "{}",
        local.reason
    );
    assert_eq!(
        recommended(&options).map(|o| o.datastore.as_str()),
        Some("ds-silver-1")
    );
}
