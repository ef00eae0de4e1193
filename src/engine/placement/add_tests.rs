//! New VM on a running workspace of the built-in demo: Tier 2 is ds-silver-1 (cg-silver),
//! ds-local is not replicated.

use crate::engine::test_support::run_until;
use crate::engine::{Command, Engine, EngineError, EngineOptions, MINUTE, Outcome, SECOND};
use crate::topology::{Topology, Vm, Workload};

fn new_vm(id: &str, datastore: &str, disk_mib: u64) -> Vm {
    Vm {
        id: id.into(),
        uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
        host: "esx-pa-3".into(),
        datastore: datastore.into(),
        disk_mib,
        vcpus: 2,
        memory_gib: 4,
        priority: 3,
        workload: Some(Workload {
            write_iops: 100,
            read_iops: 50,
        }),
    }
}

fn add(e: &mut Engine, vm: Vm, pg: &str, confirm: bool) -> Result<Outcome, EngineError> {
    e.apply(Command::AddVm {
        vm,
        protection_group: pg.into(),
        confirm,
    })
}

#[test]
fn a_new_vm_runs_is_replicated_with_its_group_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let demo = Topology::builtin_default();
    let mut e = Engine::create(&root, &demo, EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    let out = add(
        &mut e,
        new_vm("new-01", "ds-silver-1", 32),
        "pg-tier2",
        false,
    )
    .unwrap();
    let Outcome::Done(msg) = out else {
        panic!("{out:?}")
    };
    assert!(msg.contains("placed on ds-silver-1"), "{msg}");
    assert!(e.topology().vm("new-01").is_some());
    let inst = root.join("sites/pa/datastores/ds-silver-1/new-01");
    assert!(inst.join("vm.ron").is_file() && inst.join("disk0.img").is_file());
    assert_eq!(
        std::fs::metadata(inst.join("disk0.img")).unwrap().len(),
        32 << 20
    );
    // Its guest writes, and cg-silver's next cycle ships it.
    e.apply(Command::ReplicateNow {
        datastore: "ds-silver-1".into(),
    })
    .unwrap();
    run_until(&mut e, 30 * MINUTE, "new-01 protected", |e| {
        e.expect_protected("new-01").0
    });
    let snap = e.snapshot();
    let v = snap.vms.iter().find(|v| v.id == "new-01").unwrap();
    assert!(v.running && v.datastore == "ds-silver-1");
    assert!(e.verify_vm("new-01").unwrap().consistent);
    e.close().unwrap();

    // The file without the VM opens over the workspace: it keeps the VM it added.
    let e = Engine::open_or_create(&root, &demo, EngineOptions::default()).unwrap();
    assert!(e.topology().vm("new-01").is_some());
    assert!(e.verify_vm("new-01").unwrap().consistent);
    e.close().unwrap();
}

#[test]
fn a_placement_that_loses_the_protection_needs_the_override_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(
        &dir.path().join("ws"),
        &Topology::builtin_default(),
        EngineOptions::default(),
    )
    .unwrap();
    let out = add(&mut e, new_vm("new-02", "ds-local", 16), "pg-tier2", false).unwrap();
    assert!(
        matches!(&out, Outcome::Refused(m) if m.contains("rated severe (loss-of-protection) and not confirmed")),
        "{out:?}"
    );
    assert!(e.topology().vm("new-02").is_none());
    let out = add(&mut e, new_vm("new-02", "ds-local", 16), "pg-tier2", true).unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.message.starts_with("Override: new VM new-02 on ds-local")),
        "{log:?}"
    );
    e.advance(SECOND).unwrap();
}

#[test]
fn a_bad_new_vm_is_refused_naming_the_object_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(
        &dir.path().join("ws"),
        &Topology::builtin_default(),
        EngineOptions::default(),
    )
    .unwrap();
    let err = |e: Result<Outcome, EngineError>| e.unwrap_err().to_string();
    // An id the topology has.
    let text = err(add(
        &mut e,
        new_vm("web-01", "ds-gold-1", 16),
        "pg-tier1",
        false,
    ));
    assert!(text.contains("web-01"), "{text}");
    let text = err(add(&mut e, new_vm("n", "ds-gold-1", 16), "pg-nope", false));
    assert!(
        text.contains("protection group \"pg-nope\" does not exist"),
        "{text}"
    );
    let text = err(add(&mut e, new_vm("n", "ds-gold-1", 0), "pg-tier1", false));
    assert!(text.contains("at least 1 MiB"), "{text}");
    let text = err(add(
        &mut e,
        new_vm("n", "ds-gold-1-r", 16),
        "pg-tier1",
        false,
    ));
    assert!(text.contains("not a protected-site datastore"), "{text}");
    let text = err(add(
        &mut e,
        new_vm("n", "ds-gold-1", 1 << 20),
        "pg-tier1",
        false,
    ));
    assert!(
        text.contains("no space on datastore \"ds-gold-1\""),
        "{text}"
    );
    assert_eq!(e.topology().vms.len(), 10, "nothing was added");
    let left = std::fs::read_dir(dir.path().join("ws/sites/pa/datastores/ds-gold-1"))
        .unwrap()
        .count();
    assert_eq!(left, 2, "no half-made instance on ds-gold-1");
    e.apply(Command::EnterMaintenance {
        datastore: "ds-gold-2".into(),
        confirm: false,
    })
    .unwrap();
    let text = err(add(&mut e, new_vm("n", "ds-gold-2", 16), "pg-tier1", false));
    assert!(text.contains("in maintenance mode"), "{text}");
    assert_eq!(
        e.snapshot()
            .unplaceable
            .get("ds-gold-2")
            .map(String::as_str),
        Some("in maintenance mode: no new VM may be placed on it")
    );
}
