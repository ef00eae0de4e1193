use std::path::Path;

use super::*;
use crate::engine::FailoverKind;
use crate::engine::copy::CopyMode;

/// Every command, as a scenario file writes it (the text the hand-written `Display` wrote
/// before `Command` carried the serde shape: recorded runs and saved files keep it), and
/// in the words the console says it.
fn every_command() -> Vec<(Command, &'static str, &'static str)> {
    let s = |x: &str| x.to_string();
    vec![
        (Command::StartWorkloads, "StartWorkloads", "Start workloads"),
        (Command::StopWorkloads, "StopWorkloads", "Stop workloads"),
        (
            Command::Migrate {
                vm: s("vm1"),
                to: s("ds-2"),
                mode: CopyMode::Mirror,
                confirm: true,
            },
            r#"Migrate(vm: "vm1", to: "ds-2", mode: Mirror, confirm: true)"#,
            "Migrate vm1 to ds-2 (mirror)",
        ),
        (
            Command::CancelMigration { vm: s("vm1") },
            r#"CancelMigration(vm: "vm1")"#,
            "Cancel the migration of vm1",
        ),
        (
            Command::RetryRollback { vm: s("vm1") },
            r#"RetryRollback(vm: "vm1")"#,
            "Retry the roll-back of vm1's migration",
        ),
        (
            Command::ReplicateNow {
                datastore: s("ds-1"),
            },
            r#"ReplicateNow(datastore: "ds-1")"#,
            "Replicate ds-1 now",
        ),
        (
            Command::PauseReplication {
                datastore: s("ds-1"),
            },
            r#"PauseReplication(datastore: "ds-1")"#,
            "Pause replication of ds-1",
        ),
        (
            Command::ResumeReplication {
                datastore: s("ds-1"),
            },
            r#"ResumeReplication(datastore: "ds-1")"#,
            "Resume replication of ds-1",
        ),
        (Command::LinkDown, "LinkDown", "Link down"),
        (Command::LinkUp, "LinkUp", "Link up"),
        (
            Command::Disaster { site: s("pa") },
            r#"Disaster(site: "pa")"#,
            "Disaster at pa",
        ),
        (
            Command::Failover {
                protection_groups: vec![s("pg-a"), s("pg-b")],
                kind: FailoverKind::Unplanned,
                point: None,
            },
            r#"Failover(protection_groups: ["pg-a", "pg-b"], kind: Unplanned)"#,
            "unplanned failover of pg-a, pg-b",
        ),
        (
            Command::Failover {
                protection_groups: vec![s("pg-a")],
                kind: FailoverKind::Unplanned,
                point: Some(95.0),
            },
            r#"Failover(protection_groups: ["pg-a"], kind: Unplanned, point: Some(95.0))"#,
            "unplanned failover of pg-a to the point at or before 95:00.0",
        ),
        (
            Command::CleanupTestFailover,
            "CleanupTestFailover",
            "Clean up the test failover",
        ),
        (
            Command::CreateDatastore {
                datastore: s("dd-1"),
            },
            r#"CreateDatastore(datastore: "dd-1")"#,
            "Create datastore dd-1",
        ),
        (
            Command::PartitionSite { site: s("ny") },
            r#"PartitionSite(site: "ny")"#,
            "Partition site ny away",
        ),
        (
            Command::HealPartition,
            "HealPartition",
            "Heal the partition",
        ),
        (
            Command::ArrayFault { array: s("arr-1") },
            r#"ArrayFault(array: "arr-1")"#,
            "Array arr-1 reports a fault",
        ),
        (
            Command::ArrayHealthy { array: s("arr-1") },
            r#"ArrayHealthy(array: "arr-1")"#,
            "Array arr-1 is healthy again",
        ),
        (
            Command::HostFault { host: s("esx-1") },
            r#"HostFault(host: "esx-1")"#,
            "Host esx-1 fails",
        ),
        (
            Command::HostHealthy { host: s("esx-1") },
            r#"HostHealthy(host: "esx-1")"#,
            "Host esx-1 is repaired",
        ),
        (
            Command::MigrateGroup {
                from: s("cg-a"),
                to: s("cg-b"),
                confirm: false,
            },
            r#"MigrateGroup(from: "cg-a", to: "cg-b", confirm: false)"#,
            "Migrate consistency group cg-a to cg-b",
        ),
        (
            Command::EnterMaintenance {
                datastore: s("ds-1"),
                confirm: true,
            },
            r#"EnterMaintenance(datastore: "ds-1", confirm: true)"#,
            "Enter maintenance mode on ds-1",
        ),
        (
            Command::ExitMaintenance {
                datastore: s("ds-1"),
            },
            r#"ExitMaintenance(datastore: "ds-1")"#,
            "Exit maintenance mode on ds-1",
        ),
        (
            Command::Balance {
                cluster: s("dsc-1"),
                confirm: true,
            },
            r#"Balance(cluster: "dsc-1", confirm: true)"#,
            "Balance datastore cluster dsc-1",
        ),
        (
            Command::SiteUp { site: s("pa") },
            r#"SiteUp(site: "pa")"#,
            "Site pa returns",
        ),
        (
            Command::Reprotect {
                protection_groups: vec![s("pg-1"), s("pg-2")],
            },
            r#"Reprotect(protection_groups: ["pg-1", "pg-2"])"#,
            "Reprotect pg-1, pg-2",
        ),
        (
            Command::Rescan {
                file: "topo.ron".into(),
            },
            r#"Rescan(file: "topo.ron")"#,
            "Rescan arrays from topo.ron",
        ),
        (
            Command::AddVm {
                vm: crate::topology::Vm {
                    id: s("vm9"),
                    uuid: s("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
                    host: s("h1"),
                    datastore: s("ds-1"),
                    disk_mib: 16,
                    vcpus: 1,
                    memory_gib: 2,
                    priority: 3,
                    workload: None,
                },
                protection_group: s("pg-1"),
                confirm: false,
            },
            r#"AddVm(vm: (id: "vm9", uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", host: "h1", datastore: "ds-1", disk_mib: 16, vcpus: 1, memory_gib: 2, priority: 3, workload: None), protection_group: "pg-1", confirm: false)"#,
            "Add VM vm9 (16 MiB) on ds-1 for pg-1",
        ),
        (
            Command::MigrateAcross {
                consistency_group: s("cg-1"),
                confirm: true,
                consistency: crate::engine::Consistency::Keep,
            },
            r#"MigrateAcross(consistency_group: "cg-1", confirm: true)"#,
            "Move consistency group cg-1 to the other site",
        ),
        (
            Command::MigrateAcross {
                consistency_group: s("cg-1"),
                confirm: true,
                consistency: crate::engine::Consistency::Break,
            },
            r#"MigrateAcross(consistency_group: "cg-1", confirm: true, consistency: Break)"#,
            "Move consistency group cg-1 to the other site, one VM at a time",
        ),
        (
            Command::CancelAcross {
                consistency_group: s("cg-1"),
            },
            r#"CancelAcross(consistency_group: "cg-1")"#,
            "Cancel the cross-site move of cg-1",
        ),
    ]
}

/// A scenario of one step with `action`, read as a file would be.
fn one_step(action: &str) -> Result<Action, ScenarioError> {
    let text = format!(
        r#"Scenario(name: "r", topology: "t.ron", seed: 1, steps: [Step(at: 1.0, action: {action})])"#
    );
    Ok(Scenario::from_ron_str(&text, "r.ron")?
        .steps
        .remove(0)
        .action)
}

#[test]
fn every_command_reads_and_writes_as_its_scenario_text_and_says_its_phrase() {
    let table = every_command();
    for (command, text, phrase) in &table {
        let action = Action::Command(command.clone());
        assert_eq!(action.to_string(), *text);
        assert_eq!(one_step(text).unwrap(), action, "{text}");
        assert_eq!(command.to_string(), *phrase);
        assert!(command.same_request(command), "{text}");
    }
    let mut named: Vec<&str> = table
        .iter()
        .map(|(_, text, _)| text.split('(').next().unwrap())
        .collect();
    named.sort();
    // A command may be listed in more than one shape (Failover with and without a point).
    named.dedup();
    let mut all = command_variants().to_vec();
    all.sort();
    assert_eq!(named, all, "the table lists every command");
}

#[test]
fn an_expectation_nests_in_expect() {
    let text = r#"Expect(Lost(vm: "vm1"))"#;
    let action = Action::Expect(Expectation::Lost { vm: "vm1".into() });
    assert_eq!(one_step(text).unwrap(), action);
    assert_eq!(action.to_string(), text);
    let rating = Action::Expect(Expectation::Rating {
        vm: "vm1".into(),
        to: "ds-2".into(),
        rating: "heightened-mild".into(),
    });
    let text = r#"Expect(Rating(vm: "vm1", to: "ds-2", rating: "heightened-mild"))"#;
    assert_eq!(rating.to_string(), text);
    assert_eq!(one_step(text).unwrap(), rating);
    let max = Action::Expect(Expectation::WritesLost {
        vm: "vm1".into(),
        max: 12,
    });
    assert_eq!(max.to_string(), r#"Expect(WritesLost(vm: "vm1", max: 12))"#);
}

#[test]
fn names_are_quoted_as_debug_quotes_them() {
    for vm in ["o'brien", r#"a"b\c"#, "tab\there", "é\u{301}", "\\'"] {
        let action = Action::Command(Command::CancelMigration { vm: vm.into() });
        let text = action.to_string();
        assert_eq!(text, format!("CancelMigration(vm: {vm:?})"));
        assert_eq!(one_step(&text).unwrap(), action, "{text}");
    }
}

#[test]
fn an_unknown_action_names_every_command_and_expect() {
    let e = one_step("Frobnicate").unwrap_err().to_string();
    assert!(e.contains("`Frobnicate` in enum `Action`"), "{e}");
    assert!(e.contains("`StartWorkloads`"), "{e}");
    assert!(e.contains("`CleanupTestFailover`"), "{e}");
    assert!(e.contains("`Expect`"), "{e}");
    let e = one_step(r#"Migrate(vm: "vm1", to: "ds-2", mode: Mirror)"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing field named `confirm` in `Migrate`"),
        "{e}"
    );
    let e = one_step(r#"Expect(Frob(vm: "vm1"))"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`Frob` in enum `Expectation`"), "{e}");
}

#[test]
fn every_sample_step_writes_back_as_it_reads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_scenarios");
    let mut steps = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario = Scenario::load(&path).unwrap();
        for step in &scenario.steps {
            assert_eq!(one_step(&step.action.to_string()).unwrap(), step.action);
            steps += 1;
        }
    }
    assert!(steps > 50, "{steps} steps");
}

#[test]
fn retry_rollback_is_a_scenario_action() {
    let a = one_step(r#"RetryRollback(vm: "vm1")"#).unwrap();
    assert_eq!(
        a.command(),
        Some(&Command::RetryRollback { vm: "vm1".into() })
    );
    assert_eq!(a.to_string(), r#"RetryRollback(vm: "vm1")"#);
}
