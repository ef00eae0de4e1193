//! The DR lifecycle on real files: a lost site's return.

use super::replication_tests::{opts, topology};
use super::*;

/// pa is lost; pg-a (cg-1: a1, a2, b1) fails over to ny, pg-b (c1) does not. When pa
/// returns, c1 restarts there and its group cuts again; a1, a2 and b1 keep running at ny,
/// and their instances at pa are named stale and stay off. All of it survives a reopen, and
/// a second return is refused.
#[test]
fn a_returned_site_restarts_what_was_not_failed_over_and_names_the_stale_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 50), opts(3)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(150 * SECOND).unwrap();
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    let lost_at = e.now;
    e.advance(e.now + 10 * MINUTE).unwrap();
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Unplanned,
    })
    .unwrap();
    let refused = e.apply(Command::SiteUp { site: "ny".into() }).unwrap();
    assert!(
        matches!(&refused, Outcome::Refused(why) if why.contains("ny is not down")),
        "{refused:?}"
    );
    let c1_writes = e
        .snapshot()
        .vms
        .iter()
        .find(|v| v.id == "c1")
        .unwrap()
        .writes;
    e.advance(e.now + 5 * MINUTE).unwrap();
    let out = e.apply(Command::SiteUp { site: "pa".into() }).unwrap();
    let Outcome::Done(msg) = out else {
        panic!("{out:?}")
    };
    assert!(
        msg.contains("1 VM(s) restarted") && msg.contains("3 stale instance(s)"),
        "{msg}"
    );
    let snap = e.snapshot();
    assert!(snap.sites_down.is_empty());
    let mut stale: Vec<&str> = snap.stale.iter().map(|s| s.vm.as_str()).collect();
    stale.sort();
    assert_eq!(stale, ["a1", "a2", "b1"]);
    for s in &snap.stale {
        assert!(s.path.starts_with("sites/pa/datastores/"), "{s:?}");
        assert!(e.workspace().root().join(&s.path).join("vm.ron").exists());
        let vm = snap.vms.iter().find(|v| v.id == s.vm).unwrap();
        assert_eq!(vm.site, "ny", "{vm:?}");
        assert!(!vm.down && vm.recovered);
    }
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    for vm in ["a1", "a2", "b1"] {
        assert!(
            log.iter()
                .any(|l| l.contains("is stale") && l.contains(&format!("({vm} was failed over"))),
            "{log:#?}"
        );
    }
    // c1 runs at pa again and its group ships cycles cut after the return.
    let c1 = snap.vms.iter().find(|v| v.id == "c1").unwrap();
    assert!(!c1.down && c1.site == "pa", "{c1:?}");
    let returned_at = e.now;
    e.advance(e.now + 5 * MINUTE).unwrap();
    let snap = e.snapshot();
    assert!(snap.vms.iter().find(|v| v.id == "c1").unwrap().writes > c1_writes);
    let g = snap.groups.iter().find(|g| g.id == "ds-3").unwrap();
    assert!(
        g.last_cut_at.is_some_and(|t| t >= returned_at),
        "{g:#?} (lost at {lost_at})"
    );
    assert!(e.verify_vm("c1").unwrap().consistent);
    // The failed-over group stays failed over: nothing ships into the running copies.
    let a = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert!(a.last_cut_at.is_some_and(|t| t < lost_at), "{a:#?}");

    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let mut e = Engine::open(&root).unwrap();
    assert_eq!(e.stale_instances().len(), 3);
    assert_eq!(e.site_returns().len(), 1);
    assert_eq!(e.site_returns()[0].restarted, ["c1"]);
    assert!(!e.snapshot().vms.iter().any(|v| v.down));
    let again = e.apply(Command::SiteUp { site: "pa".into() }).unwrap();
    assert!(matches!(again, Outcome::Refused(_)), "{again:?}");
}
