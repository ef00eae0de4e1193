//! The whole operator story on the built-in demo topology, in one run of the console and
//! only through what an operator clicks: open → migrate with an override → progress to
//! done → ship it → disaster → scan the replicas → fail over → verified badges → export
//! the event log. Real files in a temp workspace; the worker thread runs the engine.

use std::time::Duration;

use crate::testkit::{app_in, click, open_modal, press, scanned_plan, step_until, wait_ready};
use drconsole::engine::{FailoverKind, FailoverState, GroupView};
use drconsole::gui::failover::{RUN, SCAN, run_confirm};
use drconsole::gui::replication::replicate_now_name;
use drconsole::gui::wizard::{START, Step, TITLE};
use drconsole::gui::{DrApp, ExportedEntry, Kind, MainTab, TaskState};
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};

fn group<'a>(app: &'a DrApp, id: &str) -> &'a GroupView {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| s.groups.iter().find(|g| g.id == id))
        .unwrap_or_else(|| panic!("no group {id}"))
}

#[test]
fn the_operator_story_from_open_to_an_exported_log() {
    let dir = crate::testkit::scratch();
    let ws = dir.path().join("ws");
    let mut h = app_in(&ws);
    wait_ready(&mut h);
    click(&mut h, "▶ Start workloads");

    // Migrate web-01 to another consistency group of its protection group: rated, so the
    // wizard wants "Are you sure?" before Start.
    h.get_all_by_label("💻 web-01").next().unwrap().click();
    h.run_steps(2);
    open_modal(&mut h, "Migrate…");
    h.get_by_label(TITLE)
        .get_by_role_and_label(Role::Button, "🗀 ds-gold-3")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().wizard.step(), Step::Review);
    assert!(h.query_all_by_label("heightened-mild").count() >= 1);
    assert!(h.get_by_label(START).accesskit_node().is_disabled());
    // The wizard's own checkbox: a plot legend's entries are checkboxes too.
    h.get_by_label(TITLE).get_by_role(Role::CheckBox).click();
    h.run_steps(2);
    click(&mut h, START);
    assert!(!h.state().wizard.open);

    // Progress to done, faster.
    click(&mut h, "60×");
    step_until(
        &mut h,
        "the migration to finish",
        Duration::from_secs(90),
        |a| a.live.tasks.first().is_some_and(|t| t.finished()),
    );
    let task = &h.state().live.tasks[0];
    assert_eq!(task.state, TaskState::Completed, "{:?}", task.message);
    assert_eq!(
        h.state().doc.topology.vm("web-01").unwrap().datastore,
        "ds-gold-3"
    );
    h.get_by_label("✔ completed");

    // Ship the move: both consistency groups cut a point after it.
    let done_at = h.state().live.snapshot.as_ref().unwrap().now;
    h.get_by_role_and_label(Role::Button, "Replication").click();
    h.run_steps(2);
    for g in ["cg-gold-a", "cg-gold-b"] {
        // By its id, not its position: at 60× the cards above it grow and shrink as
        // cycles transfer, and a pointer click can land where the button was a frame ago.
        press(&mut h, &replicate_now_name(g));
    }
    step_until(
        &mut h,
        "both groups to publish",
        Duration::from_secs(30),
        |a| {
            ["cg-gold-a", "cg-gold-b"].iter().all(|g| {
                let g = group(a, g);
                g.transfer.is_none() && g.last_cut_at.is_some_and(|t| t >= done_at)
            })
        },
    );

    // Disaster at the protected site.
    crate::testkit::declare_disaster(&mut h, "pa", Duration::from_secs(10));

    // Scan the replicas of Tier 1: web-01 comes back from its new datastore's replica.
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    assert_eq!(h.state().main_tab, MainTab::Failover);
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-tier1")
        .click();
    h.get_by_role_and_label(Role::RadioButton, "unplanned")
        .click();
    h.run_steps(2);
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let web01 = plan
        .vms
        .iter()
        .find(|v| v.election.vm.as_deref() == Some("web-01"))
        .expect("web-01 is in the plan");
    let from = web01.election.recover_from.as_ref().expect("a winner");
    assert!(from.contains("ds-gold-3-r"), "{from}");
    assert_eq!(h.query_all_by_label("recover from ds-gold-3-r").count(), 2);

    // Fail over, confirmed, and read the verification badges.
    open_modal(&mut h, RUN);
    click(&mut h, &run_confirm(FailoverKind::Unplanned));
    step_until(&mut h, "the failover", Duration::from_secs(20), |a| {
        a.live
            .snapshot
            .as_ref()
            .and_then(|s| s.failover.as_ref())
            .is_some_and(|f| f.state == FailoverState::Done)
    });
    let f = h.state().live.snapshot.as_ref().unwrap().failover.clone();
    let f = f.unwrap();
    assert_eq!(f.results.len(), 5);
    for r in &f.results {
        assert!(r.recovered && r.consistent == Some(true), "{r:?}");
    }
    let web01 = f
        .results
        .iter()
        .find(|r| r.vm.as_deref() == Some("web-01"))
        .unwrap();
    assert_eq!(web01.datastore.as_deref(), Some("ds-gold-3-r"));
    assert_eq!(h.query_all_by_label("consistent").count(), 5);
    assert!(h.query_by_label("NOT consistent").is_none());

    // Export the event log and read it back.
    let out = dir.path().join("story.jsonl");
    h.state_mut().export_log_to(out.clone());
    step_until(&mut h, "the export", Duration::from_secs(10), |a| {
        !a.io_busy()
    });
    let text = std::fs::read_to_string(&out).unwrap();
    let entries: Vec<ExportedEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(entries.len() >= 10, "{} entries", entries.len());
    let has = |kind: Kind, start: &str| {
        entries
            .iter()
            .any(|e| e.kind == kind && e.message.starts_with(start) && e.sim_s.is_some())
    };
    assert!(has(Kind::Override, "Override: web-01 to ds-gold-3"));
    assert!(has(Kind::Command, "Operator: "));
    assert!(has(Kind::Alarm, "DISASTER: site pa lost"));
    assert!(
        entries
            .iter()
            .any(|e| e.kind == Kind::Result && e.message.contains("web-01")),
        "the migration's and the failover's results are there"
    );
    h.get_by_label_contains(&format!("Exported {} entries to", entries.len()));
}
