//! The Resilience tab's distributed datastore section on a real workspace of
//! `stretched.ron`: partition New York away, create the planned ds-stretch (the Palo Alto
//! leg only, out of compliance), heal (the New York leg is created, in compliance), driven
//! through the UI with egui_kittest.

use std::time::Duration;

use crate::testkit::{app_with, click, sample, step_until, wait_ready};
use drconsole::engine::DistributedView;
use drconsole::gui::{DrApp, MainTab};
use egui_kittest::kittest::Queryable;

fn dist<'a>(app: &'a DrApp, id: &str) -> &'a DistributedView {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| s.distributed.iter().find(|d| d.datastore == id))
        .unwrap_or_else(|| panic!("no distributed datastore {id}"))
}

#[test]
fn create_during_a_partition_then_heal() {
    let dir = crate::testkit::scratch();
    let topo = sample("stretched.ron");
    let mut h = app_with(dir.path(), &["--topology", topo.to_str().unwrap()]);
    wait_ready(&mut h);
    click(&mut h, "Resilience");
    assert_eq!(h.state().main_tab, MainTab::Resilience);
    h.get_by_label("Distributed datastores");
    let d = dist(h.state(), "ds-stretch");
    assert!(!d.created);
    assert_eq!(d.remote.state.as_str(), "planned");
    assert_eq!(
        h.query_all_by_label("planned").count(),
        3,
        "the datastore and both legs"
    );
    let local = dir.path().join("sites/pa/datastores/ds-stretch");
    let remote = dir.path().join("sites/ny/datastores/ds-stretch");
    assert!(!local.exists(), "a planned datastore has no directory");

    click(&mut h, "Partition ny");
    step_until(&mut h, "ny partitioned", Duration::from_secs(10), |a| {
        dist(a, "ds-stretch").partitioned_sites == ["ny"]
    });
    h.get_by_label("ny partitioned");

    click(&mut h, "Create ds-stretch");
    step_until(&mut h, "ds-stretch created", Duration::from_secs(10), |a| {
        dist(a, "ds-stretch").created
    });
    let d = dist(h.state(), "ds-stretch");
    assert!(!d.compliant);
    assert_eq!(d.remote.state.as_str(), "absent");
    assert_eq!(d.local.state.as_str(), "in sync");
    assert!(d.reports[0].message.contains("created during a partition"));
    h.get_by_label("out of compliance");
    assert!(
        h.query_all_by_label_contains("created during a partition")
            .count()
            >= 1
    );
    assert!(local.is_dir(), "the local leg exists");
    assert!(!remote.exists(), "no remote leg during the partition");

    click(&mut h, "Heal the partition");
    step_until(
        &mut h,
        "ds-stretch repaired",
        Duration::from_secs(10),
        |a| dist(a, "ds-stretch").compliant,
    );
    let d = dist(h.state(), "ds-stretch");
    assert!(d.partitioned_sites.is_empty());
    assert_eq!(d.remote.state.as_str(), "in sync");
    assert!(d.reports.last().unwrap().message.contains("repaired"));
    h.get_by_label("in compliance");
    h.get_by_label("connected");
    assert!(remote.is_dir(), "the remote leg is created on heal");
}
