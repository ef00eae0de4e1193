//! The console's replication view and failover panel on a real workspace (a temp dir
//! passed as `--workspace`), driven through the UI with egui_kittest: replication groups,
//! the link, a disaster, then scanning the replicas and failing over.

use std::path::Path;
use std::time::Duration;

use crate::testkit::{app_in, click, open_modal, press, scanned_plan, step_until};
use drconsole::engine::{FailoverKind, FailoverState, GroupState, GroupView};
use drconsole::gui::failover::{
    CAPACITY_BY_HOST, CLEANUP, POINT, RUN, SCAN, failback_button, reprotect_button,
    reprotect_confirm, run_confirm,
};
use drconsole::gui::replication::{
    disaster_button, pause_name, replicate_now_name, resume_name, site_up_button,
};
use drconsole::gui::{DrApp, MainTab, Selection, SideTab};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

fn groups(app: &DrApp) -> &[GroupView] {
    app.live
        .snapshot
        .as_ref()
        .map(|s| s.groups.as_slice())
        .unwrap_or_default()
}

fn group<'a>(app: &'a DrApp, id: &str) -> &'a GroupView {
    groups(app)
        .iter()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("no group {id}"))
}

/// Opens a fresh workspace of the demo, shows the replication view and waits until every
/// group has published its first recovery point.
fn replicating(dir: &Path) -> Harness<'static, DrApp> {
    replicating_in(app_in(dir))
}

/// `replicating`, in a console opened at `size`: the panels take their widths from the
/// window they open in, so a window shrunk afterwards would show other widths.
fn replicating_sized(dir: &Path, size: [f32; 2]) -> Harness<'static, DrApp> {
    replicating_in(crate::testkit::app_sized(dir, &[], size))
}

fn replicating_in(mut h: Harness<'static, DrApp>) -> Harness<'static, DrApp> {
    step_until(
        &mut h,
        "the workspace to open",
        Duration::from_secs(30),
        |a| a.engine_ready(),
    );
    h.get_by_role_and_label(Role::Button, "Replication").click();
    h.run_steps(2);
    assert_eq!(h.state().side_tab, SideTab::Replication);
    step_until(
        &mut h,
        "every group's first recovery point",
        Duration::from_secs(15),
        |a| {
            !groups(a).is_empty()
                && groups(a)
                    .iter()
                    .all(|g| g.cycles >= 1 && g.last_published_at.is_some())
        },
    );
    let ids: Vec<&str> = groups(h.state()).iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        ["cg-gold-a", "cg-gold-b", "cg-silver", "ds-bronze-1"],
        "one group per CG, then the standalone replicated datastore"
    );
    h.get_by_label("Replication lag");
    h.get_by_label("Link down");
    h.get_by_label(&disaster_button("pa"));
    assert_eq!(
        h.query_all_by_label_contains("last point cut 00:00")
            .count(),
        4
    );
    h
}

#[test]
fn replicate_now_pause_and_the_link_change_the_group_states() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    h.check_accessibility();

    // With the clock paused, a forced cycle stays in flight where it can be seen.
    click(&mut h, "⏸ Pause");
    step_until(&mut h, "the clock to pause", Duration::from_secs(10), |a| {
        a.live.clock.paused
    });
    let before = group(h.state(), "cg-gold-a").cycles;
    let published = group(h.state(), "cg-gold-a").last_published_at;
    click(&mut h, &replicate_now_name("cg-gold-a"));
    // The log names what the button named: the group, not one of its datastores.
    assert!(
        h.state()
            .log
            .entries
            .iter()
            .any(|e| e.message == "Operator: Replicate cg-gold-a now"),
        "{:?}",
        h.state()
            .log
            .entries
            .iter()
            .map(|e| &e.message)
            .collect::<Vec<_>>()
    );
    step_until(
        &mut h,
        "cg-gold-a to transfer",
        Duration::from_secs(10),
        |a| group(a, "cg-gold-a").state == GroupState::Transferring,
    );
    h.get_by_label("transferring");
    h.get_by_label_contains(&format!("cycle {}: ", before + 1));
    assert!(group(h.state(), "cg-gold-a").transfer.is_some());

    click(&mut h, "▶ Resume");
    step_until(
        &mut h,
        "the cycle to publish",
        Duration::from_secs(10),
        |a| {
            let g = group(a, "cg-gold-a");
            g.last_published_at > published && g.state == GroupState::Idle
        },
    );
    assert_eq!(group(h.state(), "cg-gold-a").cycles, before + 1);
    assert!(h.query_by_label("transferring").is_none());
    h.get_by_label_contains(&format!("{} cycle(s)", before + 1));
    assert!(
        h.state()
            .live
            .lag
            .get("cg-gold-a")
            .is_some_and(|l| l.line().len() >= 2),
        "the lag history has the publish in it"
    );

    // Pause one group: its state and its button say so.
    click(&mut h, &pause_name("cg-gold-a"));
    step_until(&mut h, "cg-gold-a to pause", Duration::from_secs(10), |a| {
        group(a, "cg-gold-a").state == GroupState::Paused
    });
    h.get_by_label("paused");
    h.get_by_label(&resume_name("cg-gold-a"));
    assert!(h.query_by_label(&pause_name("cg-gold-a")).is_none());

    // Link down: every other group stops; the toolbar says so from any view.
    click(&mut h, "Link down");
    step_until(
        &mut h,
        "the link to go down",
        Duration::from_secs(10),
        |a| a.live.snapshot.as_ref().is_some_and(|s| !s.link_up),
    );
    let app = h.state();
    for g in groups(app).iter().filter(|g| g.id != "cg-gold-a") {
        assert_eq!(g.state, GroupState::LinkDown, "{}", g.id);
    }
    // Three groups' badges and the status bar.
    assert_eq!(h.query_all_by_label("link down").count(), 4);
    h.get_by_label("replication link down");
    h.get_by_label("Link up");
    assert!(h.query_by_label("Link down").is_none());
    assert!(
        h.get_by_label(&replicate_now_name("cg-gold-b"))
            .accesskit_node()
            .is_disabled(),
        "no cycle can ship while the link is down"
    );

    // And back.
    click(&mut h, "Link up");
    click(&mut h, &resume_name("cg-gold-a"));
    step_until(
        &mut h,
        "the groups to run again",
        Duration::from_secs(10),
        |a| {
            a.live.snapshot.as_ref().is_some_and(|s| s.link_up)
                && groups(a)
                    .iter()
                    .all(|g| matches!(g.state, GroupState::Idle | GroupState::Transferring))
        },
    );
    assert!(h.query_by_label("replication link down").is_none());
    assert!(h.query_by_label("paused").is_none());
    h.get_by_label(&pause_name("cg-gold-a"));
}

#[test]
fn a_disaster_then_an_unplanned_failover_recovers_tier1_consistent() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());

    // Guests write for a while, and the gold groups ship a point with data in it.
    click(&mut h, "▶ Start workloads");
    click(&mut h, "60×");
    step_until(&mut h, "a minute of writes", Duration::from_secs(15), |a| {
        a.live.snapshot.as_ref().is_some_and(|s| s.now > 60_000_000)
    });
    for g in ["cg-gold-a", "cg-gold-b"] {
        click(&mut h, &replicate_now_name(g));
    }
    step_until(&mut h, "the forced cycles", Duration::from_secs(15), |a| {
        ["cg-gold-a", "cg-gold-b"].iter().all(|g| {
            let g = group(a, g);
            g.cycles >= 2 && g.transfer.is_none() && g.last_cut_at > Some(60_000_000)
        })
    });
    click(&mut h, "1×");

    // Disaster: the confirmation names what stops; Cancel changes nothing.
    open_modal(&mut h, &disaster_button("pa"));
    assert_eq!(h.state().disaster.as_deref(), Some("pa"));
    h.get_by_label("Are you sure? Lose site pa (Palo Alto)");
    h.get_by_label_contains("web-01, web-02, app-01, db-01");
    h.get_by_label_contains("cg-gold-a, cg-gold-b, cg-silver, ds-bronze-1 stop replicating");
    click(&mut h, "Cancel");
    assert!(h.state().disaster.is_none());
    assert!(
        h.state()
            .live
            .snapshot
            .as_ref()
            .unwrap()
            .sites_down
            .is_empty()
    );

    crate::testkit::declare_disaster(&mut h, "pa", Duration::from_secs(10));
    h.get_by_label("site pa down");
    assert!(h.query_all_by_label("site down").count() >= 1);
    let app = h.state();
    let snap = app.live.snapshot.as_ref().unwrap();
    assert!(
        snap.vms.iter().filter(|v| v.site == "pa").all(|v| v.down),
        "every VM at pa stopped"
    );
    assert!(groups(app).iter().all(|g| g.state == GroupState::SiteDown));
    assert!(
        app.log
            .entries
            .iter()
            .any(|e| e.message.starts_with("DISASTER: site pa lost")),
        "the disaster is in the event log"
    );

    // The failover panel: tick Tier 1, unplanned, scan.
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    assert_eq!(h.state().main_tab, MainTab::Failover);
    assert!(
        h.get_by_label(RUN).accesskit_node().is_disabled(),
        "nothing to run before a scan"
    );
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-tier1")
        .click();
    h.get_by_role_and_label(Role::RadioButton, "unplanned")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().failover.kind, FailoverKind::Unplanned);
    assert!(h.state().failover.selected.contains("pg-tier1"));
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    h.check_accessibility();

    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert!(plan.unplaced.is_empty());
    let winner = |vm: &str| {
        let v = plan
            .vms
            .iter()
            .find(|v| v.election.vm.as_deref() == Some(vm))
            .unwrap_or_else(|| panic!("{vm} in the plan"));
        let path = v.election.recover_from.as_ref().expect("a winner");
        v.election
            .instances
            .iter()
            .find(|c| &c.path == path)
            .unwrap()
            .datastore
            .clone()
    };
    assert_eq!(winner("web-01"), "ds-gold-1-r");
    assert_eq!(winner("db-01"), "ds-gold-3-r");
    assert_eq!(plan.vms.len(), 5, "Tier 1 holds five VMs");
    assert_eq!(
        plan.vms[0].election.vm.as_deref(),
        Some("db-01"),
        "priority 1 first"
    );
    // What the operator reads.
    h.get_by_label("✔ Capacity: all 5 VM(s) fit on recovery-site hosts");
    assert_eq!(h.query_all_by_label("recover from ds-gold-1-r").count(), 2);
    assert_eq!(h.query_all_by_label("✔ 🗀 ds-gold-1-r").count(), 2);
    h.get_by_label("recover from ds-gold-3-r");
    assert_eq!(h.query_all_by_label("no marks").count(), 5);
    assert!(h.query_all_by_label_contains("the only instance").count() >= 5);
    assert!(h.query_all_by_label_contains("🖥 esx-ny-").count() >= 5);

    // Run: an unplanned failover asks first.
    assert!(!h.get_by_label(RUN).accesskit_node().is_disabled());
    open_modal(&mut h, RUN);
    assert!(h.state().failover.confirming);
    h.get_by_label("Are you sure? Run an unplanned failover of pg-tier1");
    click(&mut h, &run_confirm(FailoverKind::Unplanned));
    wait_failover_done(&mut h, Duration::from_secs(15));

    let app = h.state();
    let snap = app.live.snapshot.as_ref().unwrap();
    let f = snap.failover.as_ref().unwrap();
    assert_eq!(f.kind, FailoverKind::Unplanned);
    assert_eq!(f.results.len(), 5);
    for r in &f.results {
        let vm = r.vm.as_deref().unwrap();
        assert!(r.recovered, "{vm}: {:?} {}", r.error, r.reason);
        assert_eq!(r.consistent, Some(true), "{vm}");
        assert!(r.writes_lost.is_some(), "{vm}");
        assert!(r.achieved_rpo_minutes.is_some(), "{vm}");
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert!(v.recovered && !v.down && v.site == "ny", "{vm} runs at ny");
    }
    assert_eq!(
        f.results
            .iter()
            .find(|r| r.vm.as_deref() == Some("web-01"))
            .unwrap()
            .datastore
            .as_deref(),
        Some("ds-gold-1-r")
    );
    let lost: u64 = f.results.iter().map(|r| r.writes_lost.unwrap()).sum();
    assert!(lost > 0, "the writes after the last points are lost");
    assert!(
        groups(app)
            .iter()
            .filter(|g| g.id.starts_with("cg-gold"))
            .all(|g| g.state == GroupState::FailedOver)
    );

    // The results with their verification badges.
    h.get_by_label("Latest failover #1");
    assert_eq!(h.query_all_by_label("consistent").count(), 5);
    assert!(h.query_by_label("NOT consistent").is_none());
    assert!(h.query_all_by_label_contains(" writes lost").count() >= 1);
    assert!(h.query_all_by_label_contains("RPO ").count() >= 5);
    assert!(
        h.query_all_by_label_contains("Plan (stale: a failover ran since this scan)")
            .count()
            == 1,
        "the plan is kept, folded"
    );
    assert!(h.get_by_label(RUN).accesskit_node().is_disabled());
    h.check_accessibility();

    // The site returns: what was not failed over restarts there, Tier 1's five instances
    // at pa are stale and stay off, and the site row says so.
    click(&mut h, &site_up_button("pa"));
    step_until(&mut h, "the site's return", Duration::from_secs(15), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.sites_down.is_empty())
    });
    let snap = h.state().live.snapshot.clone().unwrap();
    assert_eq!(snap.stale.len(), 5, "{:#?}", snap.stale);
    for v in &snap.vms {
        assert!(!v.down, "{} runs again", v.id);
    }
    assert!(
        snap.vms
            .iter()
            .filter(|v| snap.stale.iter().any(|s| s.vm == v.id))
            .all(|v| v.site == "ny"),
        "the failed-over VMs keep running at the recovery site"
    );
    h.get_by_label("5 stale");
    h.get_by_label(&disaster_button("pa"));
    assert!(
        h.state()
            .log
            .entries
            .iter()
            .any(|e| e.message.starts_with("Site pa returned")),
        "the return is in the event log"
    );

    // Reprotect: asked from the PG's round-trip line; refused with its reason while the
    // link is down, then done: Tier 1's groups replicate ny → pa.
    h.get_by_label_contains("round trip: failed over");
    click(&mut h, "Link down");
    open_modal(&mut h, &reprotect_button("pg-tier1"));
    h.get_by_label("Are you sure? Reprotect pg-tier1");
    h.get_by_label_contains("cg-gold-a reverses: ny becomes its protected site, pa its replica");
    click(&mut h, &reprotect_confirm("pg-tier1"));
    step_until(&mut h, "the refusal", Duration::from_secs(10), |a| {
        a.log
            .entries
            .iter()
            .any(|e| e.message == "Reprotect of pg-tier1 refused: the replication link is down")
    });
    h.run_steps(2);
    assert!(
        h.query_all_by_label_contains("refused: the replication link is down")
            .count()
            >= 1,
        "the refusal shows, with its reason"
    );
    click(&mut h, "Link up");
    open_modal(&mut h, &reprotect_button("pg-tier1"));
    click(&mut h, &reprotect_confirm("pg-tier1"));
    step_until(&mut h, "the reprotect", Duration::from_secs(10), |a| {
        ["cg-gold-a", "cg-gold-b"]
            .iter()
            .all(|g| group(a, g).reversed)
    });
    let g = group(h.state(), "cg-gold-a");
    assert_eq!(
        (g.source_site.as_str(), g.target_site.as_str()),
        ("ny", "pa")
    );
    h.run_steps(2);
    h.get_by_label_contains("round trip: reprotected: replicating ny ➡ pa");
    assert!(h.query_by_label(&reprotect_button("pg-tier1")).is_none());
    h.check_accessibility();

    // Fail back: the round trip's next button scans, then asks; confirmed, the final
    // cycle ships and the VMs come home to pa.
    step_until(
        &mut h,
        "the first reverse cycles",
        Duration::from_secs(20),
        |a| {
            ["cg-gold-a", "cg-gold-b"]
                .iter()
                .all(|g| group(a, g).last_cut_at.is_some())
        },
    );
    click(&mut h, &failback_button("pg-tier1"));
    step_until(
        &mut h,
        "the failback's confirmation",
        Duration::from_secs(15),
        |a| a.failover.confirming,
    );
    h.run_steps(2);
    h.get_by_label("Are you sure? Fail back pg-tier1: a planned failover from ny home to pa");
    click(&mut h, &run_confirm(FailoverKind::Planned));
    step_until(&mut h, "the failback", Duration::from_secs(30), |a| {
        a.live
            .snapshot
            .as_ref()
            .and_then(|s| s.failover.as_ref())
            .is_some_and(|f| f.id == 2 && f.state == FailoverState::Done)
    });
    let snap = h.state().live.snapshot.clone().unwrap();
    let f = snap.failover.as_ref().unwrap();
    assert_eq!(f.kind, FailoverKind::Planned);
    for r in &f.results {
        let vm = r.vm.as_deref().unwrap();
        assert!(r.recovered && r.consistent == Some(true), "{vm}: {r:?}");
        assert_eq!(r.writes_lost, Some(0), "{vm}: a planned leg loses nothing");
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert!(
            !v.recovered && !v.down && v.site == "pa",
            "{vm} is home: {v:?}"
        );
    }
    h.run_steps(2);
    h.get_by_label_contains("round trip: failed back: runs at pa, unprotected");

    // The second reprotect restores the original direction.
    open_modal(&mut h, &reprotect_button("pg-tier1"));
    click(&mut h, &reprotect_confirm("pg-tier1"));
    step_until(
        &mut h,
        "the second reprotect",
        Duration::from_secs(10),
        |a| {
            ["cg-gold-a", "cg-gold-b"]
                .iter()
                .all(|g| !group(a, g).reversed && group(a, g).state != GroupState::FailedOver)
        },
    );
    h.run_steps(2);
    assert_eq!(
        h.query_all_by_label_contains("round trip: protected: replicating pa ➡ ny")
            .count(),
        2,
        "both PGs are protected in the original direction again"
    );
    assert!(h.query_by_label(&failback_button("pg-tier1")).is_none());
    h.check_accessibility();
}

#[test]
fn a_test_failover_runs_without_asking_and_cleans_up() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-tier2")
        .click();
    h.run_steps(2);
    assert_eq!(
        h.state().failover.kind,
        FailoverKind::Test,
        "test by default"
    );
    click(&mut h, SCAN);
    step_until(&mut h, "the scan", Duration::from_secs(10), |a| {
        a.failover.scan.is_some()
    });
    h.get_by_label("✔ Capacity: all 2 VM(s) fit on recovery-site hosts");
    assert_eq!(
        h.query_all_by_label("recover from ds-silver-1-r").count(),
        2
    );

    // Changing the kind makes the plan stale: Run waits for a new scan.
    h.get_by_role_and_label(Role::RadioButton, "planned")
        .click();
    h.run_steps(2);
    assert!(h.get_by_label(RUN).accesskit_node().is_disabled());
    h.get_by_label_contains("Scan again: the kind changed since this scan.");
    h.get_by_role_and_label(Role::RadioButton, "test").click();
    h.run_steps(2);

    click(&mut h, RUN);
    assert!(
        !h.state().failover.confirming,
        "a test failover does not ask"
    );
    let f = test_failover_report(&mut h);
    let app = h.state();
    assert_eq!(f.kind, FailoverKind::Test);
    assert!(
        f.results
            .iter()
            .all(|r| r.recovered && r.consistent == Some(true))
    );
    let test_dir = f.test_dir.clone().expect("isolated copies");
    assert!(dir.path().join(&test_dir).join("erp-db").exists());
    h.get_by_label(&format!("Isolated copies in {test_dir}"));
    assert_eq!(h.query_all_by_label("isolated copy").count(), 2);
    assert_eq!(h.query_all_by_label("consistent").count(), 2);
    // Production goes on.
    assert!(
        groups(app)
            .iter()
            .all(|g| g.state != GroupState::FailedOver)
    );

    click(&mut h, CLEANUP);
    step_until(&mut h, "the clean-up", Duration::from_secs(10), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| !s.test_failover_up)
    });
    assert!(!dir.path().join(&test_dir).exists());
    assert!(h.query_by_label(CLEANUP).is_none());
}

#[test]
fn a_planned_failover_asks_first_and_loses_no_write() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    click(&mut h, "▶ Start workloads");
    step_until(&mut h, "some writes", Duration::from_secs(10), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.vms.iter().any(|v| v.id == "erp-db" && v.writes > 100))
    });
    scan_failover(&mut h, "pg-tier2", "planned");
    step_until(&mut h, "the scan", Duration::from_secs(10), |a| {
        a.failover.scan.is_some()
    });

    // The confirmation says what happens; Cancel runs nothing.
    open_modal(&mut h, RUN);
    h.get_by_label("Are you sure? Run a planned failover of pg-tier2");
    h.get_by_label("Replication of cg-silver stops: the group fails over.");
    click(&mut h, "Cancel");
    assert!(!h.state().failover.confirming);
    h.run_steps(4);
    assert!(h.state().live.snapshot.as_ref().unwrap().failover.is_none());

    open_modal(&mut h, RUN);
    click(&mut h, &run_confirm(FailoverKind::Planned));
    step_until(
        &mut h,
        "the planned failover",
        Duration::from_secs(15),
        |a| {
            a.live
                .snapshot
                .as_ref()
                .and_then(|s| s.failover.as_ref())
                .is_some_and(|f| f.state == FailoverState::Done)
        },
    );
    let app = h.state();
    let f = app
        .live
        .snapshot
        .as_ref()
        .unwrap()
        .failover
        .clone()
        .unwrap();
    assert_eq!(f.kind, FailoverKind::Planned);
    assert_eq!(f.results.len(), 2);
    for r in &f.results {
        assert!(r.recovered && r.consistent == Some(true), "{r:?}");
        assert_eq!(r.writes_lost, Some(0), "a planned failover loses no write");
    }
    assert_eq!(group(app, "cg-silver").state, GroupState::FailedOver);
    assert_eq!(h.query_all_by_label("no writes lost").count(), 2);
    assert_eq!(h.query_all_by_label("consistent").count(), 2);
    h.get_by_label("the VMs run on the replicas");
}

/// The failover's Scan and Run sit in a footer: scrolled to the end of a long plan, Run is
/// still in the window (it sat above the plan and scrolled away with it).
#[test]
fn run_stays_in_view_below_a_long_plan_at_1024x700() {
    let dir = crate::testkit::scratch();
    let mut h = crate::testkit::app_sized(dir.path(), &[], [1024.0, 700.0]);
    crate::testkit::wait_ready(&mut h);
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    for pg in ["🛡 pg-tier1", "🛡 pg-tier2"] {
        h.get_by_role_and_label(Role::CheckBox, pg).click();
        h.run_steps(2);
    }
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    assert_eq!(plan.vms.len(), 7);
    // Down to the plan's last VM: the plan is taller than the view.
    let last = plan.vms.last().unwrap().election.vm.clone().unwrap();
    let row = |h: &Harness<'static, DrApp>| {
        let central = h.state().regions.central;
        h.query_all_by_label_contains(&last)
            .filter_map(|n| n.accesskit_node().bounding_box().map(|_| n.rect()))
            .filter(|r| central.x_range().contains(r.left()))
            .max_by(|a, b| a.top().total_cmp(&b.top()))
            .unwrap()
    };
    let top_before = row(&h).top();
    assert!(
        top_before > 700.0,
        "the plan fits the window ({top_before}): not long enough to test"
    );
    // Nodes without a box (laid out but clipped away) are not rows on screen.
    h.query_all_by_label_contains(&last)
        .filter(|n| n.accesskit_node().bounding_box().is_some())
        .filter(|n| {
            h.state()
                .regions
                .central
                .x_range()
                .contains(n.rect().left())
        })
        .last()
        .unwrap()
        .scroll_to_me();
    h.run_steps(4);
    assert!(row(&h).top() < 700.0, "scrolled down to the last VM");
    crate::testkit::assert_inside(&mut h, RUN, crate::testkit::Region::Central);
    crate::testkit::assert_inside(&mut h, SCAN, crate::testkit::Region::Central);
    assert!(
        !h.get_by_label(RUN).accesskit_node().is_disabled(),
        "the plan can run"
    );
}

/// Once the protected site is lost, the Failover tab offers the failover that recovers its
/// VMs: unplanned (the operator can still choose another).
#[test]
fn a_lost_protected_site_preselects_an_unplanned_failover() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    assert_eq!(h.state().failover.kind, FailoverKind::Test);
    crate::testkit::declare_disaster(&mut h, "pa", Duration::from_secs(10));
    assert_eq!(h.state().failover.kind, FailoverKind::Unplanned);
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    assert_eq!(
        h.get_by_role_and_label(Role::RadioButton, "unplanned")
            .accesskit_node()
            .toggled(),
        Some(egui::accesskit::Toggled::True),
        "the unplanned radio is chosen"
    );
    // The operator's choice stands on later updates.
    h.get_by_role_and_label(Role::RadioButton, "test").click();
    h.run_steps(10);
    assert_eq!(h.state().failover.kind, FailoverKind::Test);
}

/// A group over its RPO leads the Replication tab's list and its protection group's
/// recovery points in the Failover tab.
#[test]
fn groups_violating_their_rpo_come_first() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    // cg-gold-b (second of four, RPO 20 min) stops shipping and falls behind.
    click(&mut h, &pause_name("cg-gold-b"));
    click(&mut h, "600×");
    step_until(
        &mut h,
        "cg-gold-b over its RPO",
        Duration::from_secs(30),
        |a| group(a, "cg-gold-b").rpo_violation,
    );
    click(&mut h, "1×");
    assert!(
        groups(h.state())
            .iter()
            .filter(|g| g.id != "cg-gold-b")
            .all(|g| !g.rpo_violation)
    );
    let top =
        |h: &Harness<'static, DrApp>, g: &str| h.get_by_label(&replicate_now_name(g)).rect().top();
    for other in ["cg-gold-a", "cg-silver", "ds-bronze-1"] {
        assert!(
            top(&h, "cg-gold-b") < top(&h, other),
            "cg-gold-b is not above {other}"
        );
    }
    // In the failover tab, pg-tier1's recovery points: cg-gold-b, then cg-gold-a.
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    let left = |h: &Harness<'static, DrApp>, g: &str| {
        let central = h.state().regions.central;
        h.query_all_by_label_contains(g)
            .map(|n| n.rect())
            .find(|r| central.contains_rect(*r))
            .unwrap_or_else(|| panic!("no {g} in the failover tab"))
            .left()
    };
    assert!(left(&h, "cg-gold-b") < left(&h, "cg-gold-a"));
}

/// The right edge of what the central panel shows: the window's, or the side panel's left
/// edge (its first tab, less its margin) while it is open, less the central panel's margin.
fn central_right(h: &Harness<'static, DrApp>) -> f32 {
    const MARGIN: f32 = 8.0;
    h.query_by_role_and_label(Role::Button, "Migrations")
        .map_or(1024.0, |n| n.rect().left() - MARGIN)
        .min(1024.0)
        - MARGIN
}

/// At 1024×700 the capacity check reads one line per host with its Free value in view and
/// lists a host's reservations on demand, and no plan decision is cut off at the panel's
/// edge (the grid of old wrapped each host over 3–4 lines and pushed Free out of view).
#[test]
fn capacity_by_host_and_the_plan_fit_a_small_window() {
    use drconsole::gui::capacity_table::{reservation_text, reservations_toggle};
    let dir = crate::testkit::scratch();
    let mut h = replicating_sized(dir.path(), [1024.0, 700.0]);
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-tier1")
        .click();
    h.run_steps(2);
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    h.run_steps(4);
    let right = central_right(&h);
    assert!(plan.capacity.len() >= 2, "{:?}", plan.capacity);
    let line = h.get_by_label("Host").rect().height();
    for c in &plan.capacity {
        let host = h.get_by_label(&c.host).rect();
        assert!(
            host.height() < 1.5 * line,
            "{}: one line, not {host:?}",
            c.host
        );
        let free = format!("{} / {}", c.free_vcpus(), c.free_memory_gib());
        // The rightmost label with that text on the host's line is its Free cell.
        let cell = h
            .query_all_by_label(&free)
            .map(|n| n.rect())
            .filter(|r| (r.center().y - host.center().y).abs() < 4.0)
            .max_by(|a, b| a.left().total_cmp(&b.left()))
            .unwrap_or_else(|| panic!("{}: no Free {free} on its line", c.host));
        assert!(
            cell.right() <= right,
            "{}: Free {free} ends at {} beyond {right}",
            c.host,
            cell.right()
        );
    }
    h.get_by_label("Total");

    // The reservations are one toggle away, a line each.
    let held = plan
        .capacity
        .iter()
        .find(|c| !c.reserved.is_empty())
        .expect("the plan reserves capacity");
    let first = reservation_text(&held.reserved[0]);
    assert!(h.query_by_label(&first).is_none(), "folded at first");
    let toggle = reservations_toggle(&held.host);
    // The table's rows into view (a pointer clicks there).
    h.get_by_label(CAPACITY_BY_HOST).scroll_to_me();
    h.run_steps(3);
    h.get_by_label(&toggle).click();
    h.run_steps(2);
    for r in &held.reserved {
        let text = reservation_text(r);
        let node = h.get_by_label(&text);
        assert!(node.rect().height() < 1.5 * line, "{text}: one line");
    }
    h.get_by_label(&toggle).click();
    h.run_steps(2);
    assert!(h.query_by_label(&first).is_none(), "folded again");

    // Every decision is inside the panel.
    for v in &plan.vms {
        let d = v
            .election
            .recover_from
            .as_ref()
            .and_then(|p| v.election.instances.iter().find(|c| &c.path == p))
            .expect("a winner");
        for n in h.query_all_by_label(&format!("recover from {}", d.datastore)) {
            assert!(
                n.rect().right() <= right,
                "{:?}: decision ends at {} beyond {right}",
                v.election.vm,
                n.rect().right()
            );
        }
    }
}

/// Waits until the test failover Run started is up, and returns its report.
fn test_failover_report(h: &mut Harness<'static, DrApp>) -> drconsole::engine::FailoverReport {
    step_until(h, "the test failover", Duration::from_secs(15), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.test_failover_up && s.failover.is_some())
    });
    h.state()
        .live
        .snapshot
        .as_ref()
        .and_then(|s| s.failover.clone())
        .expect("a failover report")
}

/// Presses group `id`'s Replicate now (by its id: the cards move while time runs) and
/// waits until `done` holds of the group.
fn replicate_now_until(
    h: &mut Harness<'static, DrApp>,
    id: &str,
    done: impl Fn(&GroupView) -> bool,
) {
    press(h, &replicate_now_name(id));
    step_until(
        h,
        &format!("a cycle of {id}"),
        Duration::from_secs(60),
        |a| done(group(a, id)),
    );
}

/// Simulated time as "mm:ss", as the console writes a point in time.
fn mm_ss(t: u64) -> String {
    let s = t / 1_000_000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// A span of simulated time, as the console writes it.
fn span(t: u64) -> String {
    drconsole::gui::style::sim_duration(t)
}

/// The simulated time now.
fn now(app: &DrApp) -> u64 {
    app.live.snapshot.as_ref().map_or(0, |s| s.now)
}

/// Lets simulated time run on by at least `secs` seconds at 60×, then stops it again.
fn let_time_pass(h: &mut Harness<'static, DrApp>, secs: u64) {
    let from = now(h.state());
    click(h, "60×");
    step_until(h, "time to pass", Duration::from_secs(60), |a| {
        now(a) > from + secs * 1_000_000
    });
    click(h, "1×");
}

/// The top of the first (highest) widget labelled exactly `label`.
fn top_of(h: &Harness<'static, DrApp>, label: &str) -> f64 {
    h.query_all_by_label(label)
        .filter_map(|n| n.accesskit_node().bounding_box())
        .map(|b| b.y0)
        .reduce(f64::min)
        .unwrap_or_else(|| panic!("no {label} on screen"))
}

#[test]
fn after_a_disaster_and_a_failover_every_view_shows_where_things_run_now() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    click(&mut h, "▶ Start workloads");
    click(&mut h, "60×");
    step_until(&mut h, "a minute of writes", Duration::from_secs(60), |a| {
        now(a) > 60_000_000
    });
    replicate_now_until(&mut h, "cg-gold-a", |g| {
        g.transfer.is_none() && g.last_cut_at > Some(60_000_000)
    });
    // Writes go on past the point, then the site is lost.
    let cut = group(h.state(), "cg-gold-a").last_cut_at.unwrap();
    step_until(
        &mut h,
        "writes after the point",
        Duration::from_secs(60),
        |a| now(a) > cut + 30_000_000,
    );
    click(&mut h, "1×");
    crate::testkit::declare_disaster(&mut h, "pa", Duration::from_secs(60));
    let lost_at = h.state().live.snapshot.as_ref().unwrap().sites_lost_at["pa"];
    assert!(lost_at > cut);
    let window = lost_at - cut;

    // The link shows down everywhere, and cannot be switched with one end gone.
    h.get_by_label("down: site pa lost");
    assert!(h.query_by_label("up").is_none(), "the link badge says down");
    h.get_by_label("replication link down");
    h.get_by_label("link down");
    assert!(
        h.get_by_label("Link down").accesskit_node().is_disabled(),
        "no link to take down with the site gone"
    );
    assert!(
        h.query_by_label(&disaster_button("pa")).is_none(),
        "a lost site cannot be lost again: its row offers its return instead"
    );
    h.get_by_label(&site_up_button("pa"));
    assert!(
        h.get_by_label(&replicate_now_name("cg-silver"))
            .accesskit_node()
            .is_disabled(),
        "a lost site's group cannot replicate"
    );
    assert!(h.query_by_label(&pause_name("cg-silver")).is_none());
    h.get_by_label("DR").click();
    h.run_steps(4);
    assert!(
        h.get_by_label("Take the link down")
            .accesskit_node()
            .is_disabled(),
        "DR ▶ Take the link down is disabled with the site gone"
    );
    h.key_press(egui::Key::Escape);
    h.run_steps(4);
    // A lost group's lag is what the disaster lost: it stops growing.
    let_time_pass(&mut h, 30);
    assert_eq!(group(h.state(), "cg-gold-a").lag, Some(window));
    assert!(!group(h.state(), "cg-gold-a").rpo_violation);
    h.get_by_label(&format!("lag {} at the disaster", span(window)));

    // The lost site's arrays are lost, not healthy.
    h.get_by_role_and_label(Role::Button, "Resilience").click();
    h.run_steps(4);
    h.get_by_label("Array health");
    assert!(
        h.query_all_by_label("lost").count() >= 1,
        "array-pa is lost"
    );
    assert!(h.query_all_by_label("lost: no I/O, no replication").count() >= 1);
    assert!(
        h.get_by_label("Fault array-pa")
            .accesskit_node()
            .is_disabled()
    );

    // The plan ages its points to the disaster, and the confirmation names the window the
    // disaster lost: disaster − point, however long after the disaster it runs.
    scan_failover(&mut h, "pg-tier1", "unplanned");
    scanned_plan(&mut h);
    let age = format!(
        "recovery point cut at {} ({} before the disaster)",
        mm_ss(cut),
        span(window)
    );
    assert!(h.query_all_by_label(&age).count() >= 1, "{age}");
    let_time_pass(&mut h, 60);
    assert!(h.query_all_by_label(&age).count() >= 1, "the age is frozen");
    open_modal(&mut h, RUN);
    let lost_writes = format!(
        "cg-gold-a (the writes of the last {} before the disaster are lost)",
        span(window)
    );
    h.get_by_label_contains(&lost_writes);
    click(&mut h, &run_confirm(FailoverKind::Unplanned));
    wait_failover_done(&mut h, Duration::from_secs(60));
    let app = h.state();
    let snap = app.live.snapshot.as_ref().unwrap();
    let web = snap.vms.iter().find(|v| v.id == "web-01").unwrap();
    assert!(web.recovered && web.site == "ny");
    let host = web.host.clone();
    let r = snap.failover.as_ref().unwrap().results.iter();
    let rpo = r
        .filter(|r| r.vm.as_deref() == Some("web-01"))
        .find_map(|r| r.achieved_rpo_minutes)
        .unwrap();
    assert!(
        (rpo - window as f64 / 60_000_000.0).abs() < 1e-6,
        "the confirmation's window is the achieved RPO: {rpo} min"
    );

    // The tree lists it under the recovery host it runs on; the lost site stays, marked.
    h.get_by_label("🏢 pa — Palo Alto (protected, lost)");
    h.get_by_label("🖥 esx-pa-1 (lost)");
    h.get_by_label(&format!("💻 web-01 — failed over to {host}"));
    assert!(h.query_all_by_label("💻 build-01 — not running").count() >= 1);
    let recovered = top_of(&h, "💻 web-01 — recovered from pa");
    assert!(top_of(&h, &format!("🖥 {host}")) < recovered);
    let next_host = h
        .state()
        .doc
        .topology
        .hosts
        .iter()
        .skip_while(|x| x.id != host)
        .nth(1)
        .map(|x| x.id.clone());
    if let Some(next) = next_host {
        assert!(recovered < top_of(&h, &format!("🖥 {next}")));
    }
    // The VM's details say where it runs now.
    h.state_mut().selection = Some(Selection::Vm("web-01".into()));
    h.get_by_role_and_label(Role::Button, "Details").click();
    h.run_steps(4);
    h.get_by_label("Runs on");
    assert!(
        h.query_all_by_label(&format!("🖥 {host}")).count() >= 1,
        "details link to {host}"
    );
    assert!(
        h.query_by_label("🖥 esx-pa-1").is_none(),
        "no link says it runs on esx-pa-1"
    );
    assert!(
        h.get_by_label("Migrate…").accesskit_node().is_disabled(),
        "a failed-over VM does not migrate"
    );
    h.get_by_label_contains("web-01 failed over: it runs from a replica at site ny");
}

/// Steps the console until the latest failover is done.
fn wait_failover_done(h: &mut Harness<'static, DrApp>, limit: Duration) {
    step_until(h, "the failover", limit, |a| {
        a.live
            .snapshot
            .as_ref()
            .and_then(|s| s.failover.as_ref())
            .is_some_and(|f| f.state == FailoverState::Done)
    });
}

/// On the Failover tab, ticks protection group `pg`, picks the kind labelled `kind` and
/// presses Scan.
fn scan_failover(h: &mut Harness<'static, DrApp>, pg: &str, kind: &str) {
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::CheckBox, &format!("🛡 {pg}"))
        .click();
    h.get_by_role_and_label(Role::RadioButton, kind).click();
    h.run_steps(2);
    click(h, SCAN);
}

/// Points in time in the console: on the demo with every LUN keeping 3 points, two
/// forced cycles of cg-silver give pg-tier2 older points; the picker lists them, the plan
/// recovers from the one picked, and a test failover at it verifies consistent copies cut
/// then.
#[test]
fn the_recovery_point_picker_recovers_an_older_point() {
    let dir = crate::testkit::scratch();
    let topo_dir = crate::testkit::scratch();
    let topo = topo_dir.path().join("points.ron");
    let text = drconsole::topology::DEFAULT_TOPOLOGY_RON
        .replace("rpo_minutes: 30,", "rpo_minutes: 30, retain_points: 3,");
    assert_ne!(text, drconsole::topology::DEFAULT_TOPOLOGY_RON);
    std::fs::write(&topo, text).unwrap();
    let mut h = replicating_in(crate::testkit::app_sized(
        dir.path(),
        &["--topology", topo.to_str().unwrap()],
        [1400.0, 900.0],
    ));
    for _ in 0..2 {
        // Points cut a while apart, as an operator would see them.
        let_time_pass(&mut h, 30);
        let published = group(h.state(), "cg-silver").last_published_at;
        replicate_now_until(&mut h, "cg-silver", |g| {
            g.last_published_at > published && g.state == GroupState::Idle
        });
    }
    let points = group(h.state(), "cg-silver").points.clone();
    assert_eq!(points.len(), 3, "{points:?}");
    let older = points[1].cut_at;
    assert!(older < points[0].cut_at);

    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-tier2")
        .click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::ComboBox, POINT).click();
    h.run_steps(2);
    let pick = format!("at or before {}", drconsole::engine::format_time(older));
    h.get_by_label(&pick).click();
    h.run_steps(2);
    assert_eq!(h.state().failover.point, Some(older));
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert!(!plan.vms.is_empty());
    assert!(plan.vms.iter().all(|v| v.point_cut_at == Some(older)));
    assert_eq!(
        h.query_all_by_label_contains(&format!("recovery point cut at {}", mm_ss(older)))
            .count(),
        plan.vms.len(),
        "each VM's plan names the point picked"
    );

    click(&mut h, RUN);
    let f = test_failover_report(&mut h);
    assert_eq!(f.point, Some(older));
    assert!(!f.results.is_empty());
    for r in &f.results {
        assert!(r.recovered && r.consistent == Some(true), "{r:?}");
        assert_eq!(r.point_cut_at, Some(older), "{r:?}");
    }
    h.check_accessibility();
}

/// After a planned failover the console writes the DR report through its engine worker
/// (File ▶ Export report… without the dialog): one HTML page with the failover's facts, a
/// line in the event log and a toast.
#[test]
fn export_report_after_a_planned_failover_writes_the_page_and_says_so() {
    let dir = crate::testkit::scratch();
    let mut h = replicating(dir.path());
    scan_failover(&mut h, "pg-tier2", "planned");
    scanned_plan(&mut h);
    open_modal(&mut h, RUN);
    click(&mut h, &run_confirm(FailoverKind::Planned));
    wait_failover_done(&mut h, Duration::from_secs(15));

    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("dr report.html");
    h.state_mut().export_report_to(page.clone());
    crate::testkit::wait_for_io(&mut h);
    let said = format!("to {}", page.display());
    let entry = h
        .state()
        .log
        .entries
        .iter()
        .find(|e| e.message.starts_with("Exported the DR report") && e.message.ends_with(&said))
        .unwrap_or_else(|| panic!("no log line for the report"));
    assert!(entry.message.contains("(1 event(s))"), "{}", entry.message);
    assert!(
        h.state()
            .log
            .visible_toasts()
            .iter()
            .any(|t| t.starts_with("Exported the DR report")),
        "a toast says where it went"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for want in [
        "Planned failover #1 of pg-tier2",
        "erp-db",
        "Tier 2 (back office)",
        "<svg",
    ] {
        assert!(html.contains(want), "{want} not in the page");
    }
    assert!(html.contains("consistent"));

    // File ▶ Export report… on a system without a file chooser: the path field. A file
    // that cannot be written is an error naming it, in the field and a toast; the field
    // stays.
    h.state_mut().files.chooser = |_| None;
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label(drconsole::gui::EXPORT_REPORT).click();
    crate::testkit::wait_for_io(&mut h);
    h.run_steps(4);
    let label = drconsole::gui::open_path::REPORT_LABEL;
    assert_eq!(
        h.state().files.prompt.as_ref().map(|p| p.text.as_str()),
        Some(drconsole::gui::open_path::REPORT_FILE_NAME)
    );
    h.state_mut().files.prompt.as_mut().unwrap().text.clear();
    h.run_steps(2);
    let bad = out.path().join("missing/dir/report.html");
    let bad_text = bad.display().to_string();
    h.get_by_label(label).focus();
    h.get_by_label(label).type_text(&bad_text);
    h.run_steps(2);
    h.get_by_label("Export").click();
    step_until(
        &mut h,
        "the path field's error",
        Duration::from_secs(10),
        |a| a.files.prompt.as_ref().is_some_and(|p| p.error.is_some()),
    );
    let error = h
        .state()
        .files
        .prompt
        .as_ref()
        .unwrap()
        .error
        .clone()
        .unwrap();
    assert!(error.contains(&bad_text), "{error}");
    assert!(
        h.state()
            .log
            .visible_toasts()
            .iter()
            .any(|t| t.contains(&bad_text) && t.starts_with("Exporting the DR report")),
        "{:?}",
        h.state().log.visible_toasts()
    );
    assert!(!bad.exists());
}
