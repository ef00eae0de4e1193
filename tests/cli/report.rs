//! `drconsole report` (SPEC §11, *Reports*) on a workspace the round-trip sample ran in:
//! the facts it reports are the ones the run recorded, as text, JSON and one HTML page.

use std::path::Path;

use serde_json::Value;

use std::sync::Arc;

use crate::testkit::process::{SampleRun, drconsole, drconsole_ok, sample_run};

/// The events of kind `kind` in a report's JSON.
fn events<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// The facts of `vm` in a failover event of a report's JSON.
fn vm_fact<'a>(event: &'a Value, vm: &str) -> &'a Value {
    event["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["vms"].as_array().unwrap())
        .find(|v| v["vm"] == vm)
        .unwrap_or_else(|| panic!("no {vm} in {event:#}"))
}

/// The detail the headless run gave the step whose action starts with `action`.
fn step_detail(run: &Value, action: &str) -> String {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"].as_str().unwrap().starts_with(action))
        .unwrap_or_else(|| panic!("no step {action}"))["detail"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The headless run of `sample_scenarios/<name>.ron` (shared with the other tests of this
/// binary), checked to have passed: its workspace and its JSON.
fn run_sample(name: &str) -> (Arc<SampleRun>, Value) {
    let r = sample_run(name);
    assert_eq!(
        r.code,
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let run: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(run["passed"], true, "{name}");
    (r, run)
}

fn report_json(ws: &Path) -> Value {
    let o = drconsole_ok(&["report", &ws.display().to_string(), "--json"]);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn the_round_trip_reports_every_hop_with_what_the_run_recorded() {
    let (shared, run) = run_sample("round_trip");
    let ws = shared.ws.clone();
    let dir = crate::testkit::scratch();

    let r = report_json(&ws);
    assert!(
        r.get("distributed").is_none(),
        "no distributed datastore: the report has no section for it"
    );
    let kinds: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "disaster",
            "unplanned",
            "site-return",
            "reprotect",
            "failback",
            "reprotect"
        ]
    );

    // The unplanned failover: db-01 from its replica in New York, with the writes the run
    // said it lost, measured from the disaster.
    let unplanned = events(&r, "unplanned")[0];
    assert_eq!(
        unplanned["protection_groups"],
        serde_json::json!(["pg-tier1"])
    );
    assert_eq!(
        (
            unplanned["from_site"].as_str(),
            unplanned["to_site"].as_str()
        ),
        (Some("pa"), Some("ny"))
    );
    assert_eq!(unplanned["started_at"], 2.5);
    let db = vm_fact(unplanned, "db-01");
    assert_eq!(db["elected"], "sites/ny/datastores/ds-gold-3-r/db-01");
    assert_eq!(db["datastore"], "ds-gold-3-r");
    assert_eq!(db["recovered"], true);
    assert_eq!(db["consistent"], true);
    assert_eq!(db["priority"], 1);
    assert!(db["host"].as_str().unwrap().starts_with("esx-ny"), "{db:#}");
    assert!(!db["why"].as_str().unwrap().is_empty());
    let lost = db["writes_lost"].as_u64().unwrap();
    let said = step_detail(&run, "Expect(Recovered(vm: \"db-01\"");
    assert!(
        lost > 0 && said.contains(&format!("{lost} write(s) lost")),
        "report says {lost}, the run said {said:?}"
    );
    // The point it came from was cut before the disaster; it was up 30 s after the loss.
    let cut = db["point_cut_at"].as_f64().unwrap();
    assert!(cut <= 2.0, "{cut}");
    assert_eq!(db["achieved_rpo_minutes"].as_f64().unwrap(), 2.0 - cut);
    assert_eq!(db["rto_minutes"], 0.5);
    assert!(db["rto_from"].as_str().unwrap().contains("site pa"));

    // The failback: a planned failover home, no write lost, every VM consistent.
    let back = events(&r, "failback")[0];
    assert_eq!(back["failover_kind"], "Planned");
    assert_eq!(
        (back["from_site"].as_str(), back["to_site"].as_str()),
        (Some("ny"), Some("pa"))
    );
    assert!(back["ended_at"].as_f64().unwrap() > back["started_at"].as_f64().unwrap());
    let db = vm_fact(back, "db-01");
    assert_eq!(db["elected"], "sites/pa/datastores/ds-gold-3/db-01");
    assert_eq!(db["writes_lost"], 0);
    assert_eq!(db["consistent"], true);
    for e in events(&r, "reprotect") {
        assert_eq!(e["groups_reversed"].as_array().unwrap().len(), 2, "{e:#}");
    }
    assert_eq!(r["summary"]["inconsistent"], serde_json::json!([]));
    assert!(r["summary"]["writes_lost"].as_u64().unwrap() >= lost);

    // History across hops: the disaster's loss stays counted.
    let hist = r["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vm"] == "db-01")
        .unwrap();
    assert_eq!(hist["left_sites"], serde_json::json!(["pa", "ny"]));
    assert_eq!(hist["writes_lost"].as_u64(), Some(lost));

    // Lag against RPO from the publish log: one point per published cycle, both directions.
    let log = std::fs::read_to_string(ws.join("state/publishes.log")).unwrap();
    let gold_a = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "cg-gold-a")
        .unwrap();
    let points = gold_a["points"].as_array().unwrap();
    assert_eq!(
        points.len(),
        log.lines()
            .filter(|l| l.contains("\"group\":\"cg-gold-a\""))
            .count()
    );
    let dirs: Vec<&str> = points
        .iter()
        .map(|p| p["direction"].as_str().unwrap())
        .collect();
    assert!(
        dirs.contains(&"pa to ny") && dirs.contains(&"ny to pa"),
        "{dirs:?}"
    );
    assert_eq!(gold_a["rpo_minutes"], 15);
    assert!(!gold_a["lag"].as_array().unwrap().is_empty());

    // Text: the same story for a terminal.
    let text =
        String::from_utf8(drconsole_ok(&["report", &ws.display().to_string()]).stdout).unwrap();
    assert!(text.contains("Failback #2 of pg-tier1, ny to pa"), "{text}");
    assert!(
        text.contains("sites/ny/datastores/ds-gold-3-r/db-01"),
        "{text}"
    );

    // HTML: one page, its charts inline, nothing fetched.
    let html = dir.path().join("report.html");
    let o = drconsole_ok(&[
        "report",
        &ws.display().to_string(),
        "--html",
        &html.display().to_string(),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&html.display().to_string()));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    for want in [
        "pg-tier1",
        "Tier 1 (customer facing)",
        "cg-gold-a",
        "db-01",
        "<svg",
    ] {
        assert!(page.contains(want), "{want} not in the page");
    }
    assert!(
        page.matches("<svg").count() >= 5,
        "a lag chart per group and RTO charts"
    );
    for never in ["<script", "src=", "href=", "http://", "https://"] {
        assert!(!page.contains(never), "{never} in a self-contained page");
    }
}

/// Every name from the workspace is escaped in the page: a protection group named with
/// markup shows as text. The report reads only topology.ron and state/, so a copy of those
/// is a workspace to report on.
#[test]
fn names_are_escaped_and_bad_paths_are_errors_naming_them() {
    let dir = crate::testkit::scratch();
    let (shared, _) = run_sample("planned_failover");
    let ws = &shared.ws;
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(copy.join("state")).unwrap();
    for f in ["engine.ron", "publishes.log"] {
        std::fs::copy(ws.join("state").join(f), copy.join("state").join(f)).unwrap();
    }
    let topo = std::fs::read_to_string(ws.join("topology.ron")).unwrap();
    let renamed = topo.replacen(
        "name: \"Tier 1 (customer facing)\"",
        "name: \"Tier 1 <script>alert('x')</script> & co\"",
        1,
    );
    assert_ne!(renamed, topo, "the sample names pg-tier1 so");
    std::fs::write(copy.join("topology.ron"), renamed).unwrap();
    let html = dir.path().join("r.html");
    drconsole_ok(&[
        "report",
        &copy.display().to_string(),
        "--html",
        &html.display().to_string(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("<script"),
        "markup from a name must not reach the page"
    );
    assert!(page.contains("Tier 1 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
    let r = report_json(&copy);
    assert_eq!(
        events(&r, "planned").len(),
        1,
        "the sample's planned failover: {:#}",
        r["events"]
    );

    // No such directory, a directory that is not a workspace, a page that cannot be written.
    let missing = dir.path().join("nowhere");
    let o = drconsole(&["report", &missing.display().to_string(), "--json"]);
    crate::fails_with(&o, &[&missing.display().to_string(), "no such directory"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = drconsole(&["report", &empty.display().to_string()]);
    crate::fails_with(
        &o,
        &[&empty.display().to_string(), "not a drconsole workspace"],
    );
    let bad = dir.path().join("no-dir/r.html");
    let o = drconsole(&[
        "report",
        &copy.display().to_string(),
        "--html",
        &bad.display().to_string(),
    ]);
    crate::fails_with(&o, &[&bad.display().to_string()]);
}

/// A failover to a point in time reports the point asked for and, per VM, the older cut
/// it came from and the writes that gave up (the point-in-time sample: a test, then an
/// unplanned failover of Tier 2 to the point at or before 05:00).
#[test]
fn a_failover_to_an_older_point_reports_the_point_and_what_it_gave_up() {
    let (shared, _) = run_sample("point_in_time");
    let ws = &shared.ws;
    let r = report_json(ws);
    let test = events(&r, "test");
    let unplanned = events(&r, "unplanned");
    assert_eq!((test.len(), unplanned.len()), (1, 1), "{r:#}");
    for e in [test[0], unplanned[0]] {
        assert_eq!(e["point"], 5.0, "{e:#}");
        assert!(
            e["summary"]
                .as_str()
                .unwrap()
                .contains("to the points at or before 05:00.0"),
            "{e:#}"
        );
        let v = vm_fact(e, "erp-db");
        // Recovered from the point cut at 04:00, before the 05:00 corruption, consistent.
        assert_eq!(v["point_cut_at"], 4.0, "{v:#}");
        assert_eq!(v["consistent"], true, "{v:#}");
    }
    let v = vm_fact(unplanned[0], "erp-db");
    assert_eq!(v["achieved_rpo_minutes"], 4.0, "{v:#}");
    assert!(v["writes_lost"].as_u64().unwrap() > 0, "{v:#}");
    let text = drconsole_ok(&["report", &ws.display().to_string()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("to the points at or before 05:00.0"),
        "{text}"
    );
}

#[test]
fn a_distributed_datastore_reports_each_failure_and_every_step_performed() {
    let (shared, run) = run_sample("partition_create_and_heal");
    let ws = shared.ws.clone();
    let dir = crate::testkit::scratch();
    let r = report_json(&ws);
    let incidents = r["distributed"].as_array().expect("a distributed section");
    assert_eq!(
        incidents.len(),
        2,
        "created during a partition, then partitioned again"
    );
    let first = &incidents[0];
    assert_eq!(first["datastore"], "ds-stretch");
    assert_eq!(first["state"], "repaired");
    assert!(
        first["failure"]
            .as_str()
            .unwrap()
            .contains("created while site ny was partitioned away"),
        "{first:#}"
    );
    let steps: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "local leg created",
            "out of compliance",
            "remote leg created",
            "rebuild started",
            "blocks rebuilt",
            "repaired"
        ]
    );
    // The blocks the run's heal said it would rebuild are the ones reported.
    let heal = step_detail(&run, "HealPartition");
    let n = first["tracked_blocks"].as_u64().unwrap();
    assert!(
        heal.contains(&format!("rebuilding {n} tracked block(s)")),
        "{heal}"
    );
    assert_eq!(first["rebuilt_blocks"].as_u64().unwrap(), n);
    assert!(
        incidents[1]["failure"]
            .as_str()
            .unwrap()
            .contains("site ny partitioned away")
    );

    let text = drconsole_ok(&["report", &ws.display().to_string()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("Distributed datastores: each failure and every step performed:"),
        "{text}"
    );
    assert!(text.contains("blocks rebuilt: "), "{text}");
    let page = dir.path().join("r.html");
    drconsole_ok(&[
        "report",
        &ws.display().to_string(),
        "--html",
        &page.display().to_string(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h2>Distributed datastores</h2>"));
    assert!(html.contains("remote leg created"));
}
