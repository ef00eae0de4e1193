//! Migrations on real files in temp dirs, checked with the stamp verifier.

use super::*;

/// ds-a and ds-b are not replicated (moves between them rate `none`); ds-slow is a slow
/// non-replicated target; ds-tiny is full; ds-rep is replicated in a PG.
fn topology(write_iops: u32, disk_mib: u64) -> Topology {
    let workload = if write_iops == 0 {
        "None".to_string()
    } else {
        format!("Some(Workload(write_iops: {write_iops}, read_iops: {write_iops}))")
    };
    let text = format!(
        r#"Topology(
    name: "engine test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    hosts: [Host(id: "h", site: "pa", cpus: 8, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "la", capacity_gib: 10), Lun(id: "lb", capacity_gib: 10),
            Lun(id: "ls", capacity_gib: 10), Lun(id: "lt", capacity_gib: 1),
            Lun(id: "lr", capacity_gib: 10, replication: Some(LunReplication(target: "lr-r", rpo_minutes: 15))),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "lr-r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-a", site: "pa", luns: ["la"], throughput_mib_s: 4),
        Datastore(id: "ds-b", site: "pa", luns: ["lb"], throughput_mib_s: 4),
        Datastore(id: "ds-slow", site: "pa", luns: ["ls"], throughput_mib_s: 0.25),
        Datastore(id: "ds-tiny", site: "pa", luns: ["lt"]),
        Datastore(id: "ds-rep", site: "pa", luns: ["lr"]),
        Datastore(id: "ds-rep-r", site: "ny", luns: ["lr-r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg", name: "PG", datastores: ["ds-rep"])],
    vms: [
        Vm(id: "vm1", uuid: "11111111-2222-4333-8444-555555555555", host: "h", datastore: "ds-a",
           disk_mib: {disk_mib}, vcpus: 1, memory_gib: 1, priority: 1, workload: {workload}),
        Vm(id: "big", uuid: "11111111-2222-4333-8444-666666666666", host: "h", datastore: "ds-tiny",
           disk_mib: 1024, vcpus: 1, memory_gib: 1, priority: 2),
    ],
)"#
    );
    Topology::from_ron_str(&text, "engine-test.ron").unwrap()
}

fn engine(dir: &Path, write_iops: u32, disk_mib: u64, opts: EngineOptions) -> Engine {
    Engine::create(&dir.join("ws"), &topology(write_iops, disk_mib), opts).unwrap()
}

fn migrate(e: &mut Engine, to: &str, mode: CopyMode) -> Outcome {
    e.apply(Command::Migrate {
        vm: "vm1".into(),
        to: to.into(),
        mode,
        confirm: true,
    })
    .unwrap()
}

fn assert_clean(e: &Engine) {
    let v = e.verify_vm("vm1").unwrap();
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.writes_lost, 0);
    let snap = e.snapshot();
    let vm = snap.vms.iter().find(|v| v.id == "vm1").unwrap();
    assert_eq!(
        vm.read_errors, 0,
        "every guest read returned its last write"
    );
}

/// Exactly one instance that is not an in-progress target.
fn complete_instances(e: &Engine) -> Vec<crate::workspace::Instance> {
    e.instances_of("vm1")
        .unwrap()
        .into_iter()
        .filter(|i| {
            !i.config
                .migration
                .as_ref()
                .is_some_and(|m| m.target && !m.completed)
        })
        .collect()
}

#[test]
fn every_mode_idle_and_busy_ends_on_the_target() {
    for mode in CopyMode::ALL {
        for iops in [0, 2000] {
            let dir = tempfile::tempdir().unwrap();
            let mut e = engine(dir.path(), iops, 8, EngineOptions::default());
            e.apply(Command::StartWorkloads).unwrap();
            e.advance(SECOND).unwrap();
            assert!(matches!(migrate(&mut e, "ds-b", mode), Outcome::Done(_)));
            assert!(e.is_migrating("vm1"));
            // 8 MiB at 4 MiB/s: about two simulated seconds.
            e.advance(e.now() + SECOND).unwrap();
            assert!(e.is_migrating("vm1"), "{mode:?} still copying after 1 s");
            assert_clean(&e);
            assert!(e.run_until_migrated("vm1", e.now() + 60 * SECOND).unwrap());
            e.advance(e.now() + SECOND).unwrap();
            assert_eq!(e.location("vm1").unwrap(), ("ds-b".into(), "vm1".into()));
            let ws = e.workspace().root().to_path_buf();
            assert!(
                !ws.join("sites/pa/datastores/ds-a/vm1").exists(),
                "source deleted"
            );
            let inst = e.instances_of("vm1").unwrap();
            assert_eq!(inst.len(), 1, "{mode:?}");
            assert_eq!(inst[0].datastore, "ds-b");
            let marks = inst[0].config.migration.clone().unwrap();
            assert!(marks.target && marks.completed && !marks.source);
            assert_eq!(e.topology().vm("vm1").unwrap().datastore, "ds-b");
            assert_eq!(
                Topology::load(&ws.join("topology.ron"))
                    .unwrap()
                    .vm("vm1")
                    .unwrap()
                    .datastore,
                "ds-b"
            );
            assert_clean(&e);
            if iops > 0 {
                assert!(e.snapshot().vms[0].writes > 4000, "the guest kept writing");
            }
        }
    }
}

#[test]
fn cancel_in_every_mode_leaves_a_consistent_source() {
    for mode in CopyMode::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 2000, 8, EngineOptions::default());
        e.apply(Command::StartWorkloads).unwrap();
        migrate(&mut e, "ds-b", mode);
        e.advance(e.now() + SECOND).unwrap();
        let v = e.snapshot().vms[0].migration.clone().unwrap();
        assert!(v.copied_blocks > 0 && v.copied_blocks < v.blocks, "{v:?}");
        e.apply(Command::CancelMigration { vm: "vm1".into() })
            .unwrap();
        assert!(e.run_until_migrated("vm1", e.now() + 60 * SECOND).unwrap());
        e.advance(e.now() + SECOND).unwrap();
        assert_eq!(e.location("vm1").unwrap().0, "ds-a", "{mode:?}");
        let inst = e.instances_of("vm1").unwrap();
        assert_eq!(inst.len(), 1, "{mode:?}: target deleted");
        assert_eq!(inst[0].datastore, "ds-a");
        assert_eq!(inst[0].config.migration, None, "marks cleared");
        assert_clean(&e);
    }
}

#[test]
fn data_block_that_does_not_divide_the_disk() {
    // 768 KiB data blocks against a 1 MiB disk: runs of 1.5 MiB, the last run partial.
    let opts = EngineOptions {
        data_block_bytes: 768 * 1024,
        ..EngineOptions::default()
    };
    assert_eq!(opts.run_blocks(), 384);
    for mode in CopyMode::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 2000, 1, opts.clone());
        e.apply(Command::StartWorkloads).unwrap();
        migrate(&mut e, "ds-b", mode);
        assert!(e.run_until_migrated("vm1", 60 * SECOND).unwrap());
        e.advance(e.now() + SECOND).unwrap();
        assert_eq!(e.location("vm1").unwrap().0, "ds-b");
        assert_clean(&e);
    }
}

#[test]
fn slow_target_caps_pending_mirror_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path(), 3000, 2, EngineOptions::default());
    e.apply(Command::StartWorkloads).unwrap();
    migrate(&mut e, "ds-slow", CopyMode::Mirror);
    let mut max_pending = 0;
    while e.is_migrating("vm1") {
        let t = e.now() + SECOND / 10;
        e.advance(t).unwrap();
        if let Some(m) = e.snapshot().vms[0].migration.clone() {
            max_pending = max_pending.max(m.mirror_pending);
        }
        assert!(e.now() < 120 * SECOND, "the slow copy finishes");
    }
    // SPEC §5: writes wait only when more than the cap are pending, so the queue holds one
    // more than the cap and no more.
    let cap = EngineOptions::default().mirror_max_pending;
    assert_eq!(
        max_pending,
        cap + 1,
        "the queue fills past its cap by one and no further"
    );
    e.advance(e.now() + SECOND).unwrap();
    assert_eq!(e.location("vm1").unwrap().0, "ds-slow");
    assert_clean(&e);
    // Writes waited for the mirror queue: latencies grew well past the device time.
    let worst = e.snapshot().latencies.iter().map(|l| l.2).max().unwrap();
    assert!(worst > 10_000, "worst write latency {worst} µs");
}

#[test]
fn full_destination_is_refused_with_the_source_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path(), 200, 8, EngineOptions::default());
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(SECOND).unwrap();
    let err = e
        .apply(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-tiny".into(),
            mode: CopyMode::Mirror,
            confirm: true,
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no space on datastore \"ds-tiny\""),
        "{err}"
    );
    assert!(!e.is_migrating("vm1"));
    assert_eq!(e.instances_of("vm1").unwrap().len(), 1);
    assert!(
        !e.workspace()
            .root()
            .join("sites/pa/datastores/ds-tiny/vm1")
            .exists()
    );
    assert_clean(&e);
}

#[test]
fn a_rated_move_needs_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path(), 0, 1, EngineOptions::default());
    let out = e
        .apply(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-rep".into(),
            mode: CopyMode::Mirror,
            confirm: false,
        })
        .unwrap();
    assert!(
        matches!(out, Outcome::Refused(ref m) if m.contains("mild")),
        "{out:?}"
    );
    assert!(!e.is_migrating("vm1"));
    let log = e.take_log();
    assert!(log.iter().any(|l| l.message.contains("refused")));
    migrate(&mut e, "ds-rep", CopyMode::Mirror);
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.message.contains("Override") && l.message.contains("protection-overhead")),
        "{log:?}"
    );
}

#[test]
fn truncated_or_missing_source_image_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path(), 0, 2, EngineOptions::default());
    let img = e
        .workspace()
        .root()
        .join("sites/pa/datastores/ds-a/vm1/disk0.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let err = e
        .apply(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-b".into(),
            mode: CopyMode::Redirect,
            confirm: true,
        })
        .unwrap_err();
    assert!(err.to_string().contains("truncated image"), "{err}");
    std::fs::remove_file(&img).unwrap();
    let err = e
        .apply(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-b".into(),
            mode: CopyMode::Redirect,
            confirm: true,
        })
        .unwrap_err();
    assert!(err.to_string().contains("disk0.img"), "{err}");
    assert!(
        !e.workspace()
            .root()
            .join("sites/pa/datastores/ds-b/vm1")
            .exists()
    );
}

#[test]
fn crash_mid_copy_resumes_on_reopen() {
    for mode in CopyMode::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 2000, 8, EngineOptions::default());
        e.apply(Command::StartWorkloads).unwrap();
        migrate(&mut e, "ds-b", mode);
        e.advance(e.now() + SECOND).unwrap();
        drop(e); // a crash: no close
        let mut e = Engine::open(&dir.path().join("ws")).unwrap();
        assert!(e.is_migrating("vm1"), "{mode:?}");
        assert_eq!(complete_instances(&e).len(), 1);
        assert_clean(&e);
        assert!(e.run_until_migrated("vm1", e.now() + 60 * SECOND).unwrap());
        e.advance(e.now() + SECOND).unwrap();
        assert_eq!(e.location("vm1").unwrap().0, "ds-b");
        assert_clean(&e);
        e.close().unwrap();
        let e = Engine::open(&dir.path().join("ws")).unwrap();
        assert_clean(&e);
    }
}

/// The clock after a reopen is never earlier than before: after a clean close, and after
/// a crash long after the state was last saved (the console records the clock as it runs).
#[test]
fn the_clock_never_goes_back_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let mut e = engine(dir.path(), 200, 4, EngineOptions::default());
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(e.now() + 90 * SECOND).unwrap();
    let before = e.now();
    e.close().unwrap();
    let mut e = Engine::open(&root).unwrap();
    assert!(e.now() >= before, "clean close: {} < {before}", e.now());

    // Saved by the command, then the clock runs on for minutes with nothing saving the
    // state; the console records the clock after each slice, as the worker does.
    e.apply(Command::StartWorkloads).unwrap();
    let saved = e.now();
    for _ in 0..30 {
        e.advance(e.now() + 10 * SECOND).unwrap();
        e.record_clock().unwrap();
    }
    let before = e.now();
    assert!(before >= saved + 300 * SECOND);
    drop(e); // a crash: no close
    let mut e = Engine::open(&root).unwrap();
    assert!(
        e.now() >= before,
        "after a crash: {} < {before}",
        format_time(e.now())
    );
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.message.contains("the clock resumes at")),
        "{log:?}"
    );
    // Recovered as usual, and running on from there.
    assert_clean(&e);
    e.advance(e.now() + 5 * SECOND).unwrap();
    assert_clean(&e);

    // A torn or foreign record is ignored: the saved state's time stands.
    e.close().unwrap();
    let state_now = Engine::open(&root).unwrap().now();
    std::fs::write(root.join("state").join(CLOCK_FILE), b"garbage, not a clock").unwrap();
    let e = Engine::open(&root).unwrap();
    assert_eq!(e.now(), state_now);
}

#[test]
fn same_seed_same_journal() {
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 500, 2, EngineOptions::default());
        e.apply(Command::StartWorkloads).unwrap();
        migrate(&mut e, "ds-b", CopyMode::Split);
        e.advance(3 * SECOND).unwrap();
        std::fs::read(dir.path().join("ws/journal/pa.log")).unwrap()
    };
    let a = run();
    assert!(a.len() > 1000);
    assert_eq!(a, run());
}

#[test]
fn crash_between_bit_and_data_keeps_the_newer_copy() {
    for mode in [CopyMode::Redirect, CopyMode::Split] {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), 2000, 8, EngineOptions::default());
        e.apply(Command::StartWorkloads).unwrap();
        e.advance(SECOND / 2).unwrap();
        migrate(&mut e, "ds-b", mode);
        e.advance(e.now() + SECOND).unwrap();
        // The crash window: a write's bit is on disk, its data is not. Pick a written block
        // in the region whose newest data is still on the source.
        let m = e.vms[0].migration.as_ref().unwrap();
        let cursor = m.core.cursor;
        let b = (0..m.core.blocks)
            .find(|&b| e.vms[0].last_seq[b as usize] > 0 && !m.core.bits.get(b) && b >= cursor)
            .unwrap();
        let m = e.vms[0].migration.as_mut().unwrap();
        m.core.bits.set(b);
        m.persist_bit(b).unwrap();
        drop(e);
        let e = Engine::open(&dir.path().join("ws")).unwrap();
        assert_clean(&e);
        assert!(
            !e.vms[0].migration.as_ref().unwrap().core.bits.get(b),
            "{mode:?}"
        );
    }
}

#[test]
fn io_error_mid_copy_aborts_onto_the_source() {
    // Mirror with a busy guest (the source is always complete), and redirect with an idle
    // guest (nothing was written on the destination only).
    for (mode, iops) in [(CopyMode::Mirror, 2000), (CopyMode::Redirect, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(dir.path(), iops, 8, EngineOptions::default());
        e.apply(Command::StartWorkloads).unwrap();
        migrate(&mut e, "ds-b", mode);
        e.advance(e.now() + SECOND).unwrap();
        e.take_log();
        // The destination disk fails: every further copy I/O errors.
        let dst = e
            .workspace()
            .root()
            .join("sites/pa/datastores/ds-b/vm1/disk0.img");
        e.vms[0].migration.as_mut().unwrap().fail_copy_io = true;
        assert!(e.run_until_migrated("vm1", e.now() + 60 * SECOND).unwrap());
        e.advance(e.now() + SECOND).unwrap();
        let log = e.take_log();
        assert!(
            log.iter()
                .any(|l| l.level == LogLevel::Error && l.message.contains("I/O error")),
            "{mode:?}: {log:?}"
        );
        assert_eq!(e.location("vm1").unwrap().0, "ds-a", "{mode:?}");
        assert_eq!(complete_instances(&e).len(), 1);
        assert!(!dst.exists(), "the failed target is removed");
        assert_clean(&e);
    }
}

/// Blocks of vm1 whose last write is on the migration's destination and not on its source:
/// the target holds the only copy of them (read from the two image files).
fn only_on_destination(e: &Engine) -> u64 {
    let vm = &e.vms[0];
    let m = vm.migration.as_ref().expect("vm1 is migrating");
    let seq = |img: &ImageFile, b: u64| {
        let mut buf: Block = [0; BLOCK_SIZE];
        img.read_block_at(b, &mut buf).unwrap();
        match disk::inspect(&buf) {
            BlockContent::Stamped(s) => s.seq,
            _ => 0,
        }
    };
    (0..m.core.blocks)
        .filter(|&b| {
            let want = vm.last_seq[b as usize];
            want > 0 && seq(&m.dst, b) == want && seq(&m.src, b) != want
        })
        .count() as u64
}

/// Runs vm1's events one at a time until `stop` holds or its migration ends.
fn step_until(e: &mut Engine, stop: impl Fn(&Engine) -> bool) {
    let limit = e.now() + 60 * SECOND;
    while e.is_migrating("vm1") && !stop(e) {
        let t = e.next_event_time().expect("the guest keeps writing");
        assert!(t <= limit, "gave up waiting at {}", format_time(t));
        e.advance(t).unwrap();
    }
}

/// How a redirect/split copy comes to copy back to the source.
#[derive(Debug, Clone, Copy)]
enum RollBack {
    /// The operator cancels.
    Cancel,
    /// A forward copy run fails with an I/O error.
    ForwardError,
}

/// vm1 (guest writing) in a redirect/split copy to ds-b that goes back to ds-a (`how`),
/// whose first copy-back run fails with a transient I/O error. Returns the engine with the
/// roll-back stopped, after checking that nothing was lost and nothing deleted.
fn failed_roll_back(dir: &Path, mode: CopyMode, how: RollBack) -> Engine {
    let mut e = engine(dir, 2000, 8, EngineOptions::default());
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(SECOND / 2).unwrap();
    migrate(&mut e, "ds-b", mode);
    e.advance(e.now() + SECOND).unwrap();
    let ws = e.workspace().root().to_path_buf();
    match how {
        RollBack::Cancel => {
            e.apply(Command::CancelMigration { vm: "vm1".into() })
                .unwrap();
        }
        RollBack::ForwardError => {
            crate::fault::fail_next("copy.run-io", 1);
            step_until(&mut e, |e| {
                e.migration_phase("vm1") == Some(Phase::Cancelling)
            });
            assert_eq!(
                e.migration_phase("vm1"),
                Some(Phase::Cancelling),
                "{mode:?}: the forward error starts the roll-back"
            );
        }
    }
    let only_dst = only_on_destination(&e);
    assert!(only_dst > 0, "{mode:?}: some writes are on the target only");
    crate::fault::fail_next("copy.run-io", 1);
    e.take_log();
    step_until(&mut e, |e| {
        e.migration_phase("vm1") != Some(Phase::Cancelling)
    });
    crate::fault::disarm();
    // Nothing lost: the guest's disk is whole, both instances and the bitmap are kept.
    let inst = e.instances_of("vm1").unwrap();
    assert_eq!(
        inst.iter()
            .map(|i| i.datastore.as_str())
            .collect::<Vec<_>>(),
        ["ds-a", "ds-b"],
        "{mode:?} {how:?}: both instances are kept"
    );
    assert_clean(&e);
    assert_eq!(
        e.migration_phase("vm1"),
        Some(Phase::RollbackFailed),
        "{mode:?} {how:?}"
    );
    assert!(
        only_on_destination(&e) > 0,
        "{mode:?}: the target still holds them"
    );
    let bitmap = ws.join("state/migrations/m-0001.bitmap");
    let bits = Migration::load_bitmap(&bitmap, e.vms[0].blocks).unwrap();
    assert_eq!(bits, e.vms[0].migration.as_ref().unwrap().core.bits);
    assert!(bits.count() > 0, "the bitmap is kept");
    // Persisted, and shown: the record, the snapshot and the log.
    let rec = std::fs::read_to_string(ws.join("state/migrations/m-0001.ron")).unwrap();
    assert!(
        rec.contains("phase: RollbackFailed") && rec.contains("copy.run-io#1"),
        "{rec}"
    );
    let view = e.snapshot().vms[0].migration.clone().unwrap();
    assert_eq!(view.phase, Phase::RollbackFailed);
    assert!(
        view.error
            .as_deref()
            .is_some_and(|m| m.contains("injected")),
        "{view:?}"
    );
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.level == LogLevel::Error && l.message.contains("roll-back failed")),
        "{log:?}"
    );
    // It stays so, the guest writing through the bitmap, until retried.
    let writes = e.snapshot().vms[0].writes;
    e.advance(e.now() + SECOND).unwrap();
    assert_eq!(e.migration_phase("vm1"), Some(Phase::RollbackFailed));
    assert!(e.snapshot().vms[0].writes > writes + 1000);
    assert_eq!(e.instances_of("vm1").unwrap().len(), 2);
    assert_clean(&e);
    // A cancel does not drop it either.
    e.apply(Command::CancelMigration { vm: "vm1".into() })
        .unwrap();
    assert_eq!(e.migration_phase("vm1"), Some(Phase::RollbackFailed));
    e
}

/// The retried roll-back ends with one complete instance, on the source, consistent.
fn assert_rolled_back(e: &mut Engine) {
    assert!(e.run_until_migrated("vm1", e.now() + 60 * SECOND).unwrap());
    e.advance(e.now() + SECOND).unwrap();
    assert_eq!(e.location("vm1").unwrap().0, "ds-a");
    let inst = e.instances_of("vm1").unwrap();
    assert_eq!(
        inst.len(),
        1,
        "the target is deleted once every block is back"
    );
    assert_eq!(inst[0].datastore, "ds-a");
    assert_eq!(inst[0].config.migration, None, "marks cleared");
    assert_clean(e);
    let migrations = e.workspace().root().join("state/migrations");
    assert_eq!(std::fs::read_dir(migrations).unwrap().count(), 0);
}

#[test]
fn a_failed_roll_back_keeps_both_copies_and_retries_on_command() {
    for mode in [CopyMode::Redirect, CopyMode::Split] {
        for how in [RollBack::Cancel, RollBack::ForwardError] {
            let dir = tempfile::tempdir().unwrap();
            let mut e = failed_roll_back(dir.path(), mode, how);
            let out = e
                .apply(Command::RetryRollback { vm: "vm1".into() })
                .unwrap();
            assert!(
                matches!(&out, Outcome::Done(m) if m.contains("retrying the roll-back")),
                "{out:?}"
            );
            assert_eq!(e.migration_phase("vm1"), Some(Phase::Cancelling));
            // Only a failed roll-back can be retried.
            let err = e
                .apply(Command::RetryRollback { vm: "vm1".into() })
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "migration m-0001 of vm1: only a failed roll-back can be retried; it is cancelling"
            );
            assert_rolled_back(&mut e);
            e.close().unwrap();
            let e = Engine::open(&dir.path().join("ws")).unwrap();
            assert!(!e.is_migrating("vm1"));
            assert_clean(&e);
        }
    }
}

#[test]
fn a_failed_roll_back_is_retried_on_reopen() {
    for mode in [CopyMode::Redirect, CopyMode::Split] {
        for crash in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let e = failed_roll_back(dir.path(), mode, RollBack::Cancel);
            if crash {
                drop(e);
            } else {
                e.close().unwrap();
            }
            let mut e = Engine::open(&dir.path().join("ws")).unwrap();
            assert_eq!(
                e.migration_phase("vm1"),
                Some(Phase::Cancelling),
                "{mode:?}: the reopen retries the roll-back"
            );
            assert_eq!(e.instances_of("vm1").unwrap().len(), 2);
            assert_clean(&e);
            assert_rolled_back(&mut e);
        }
    }
}

#[test]
fn retry_rollback_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path(), 0, 1, EngineOptions::default());
    let err = e
        .apply(Command::RetryRollback { vm: "vm1".into() })
        .unwrap_err();
    assert_eq!(err.to_string(), "VM \"vm1\" is not migrating");
    let err = e
        .apply(Command::RetryRollback { vm: "nope".into() })
        .unwrap_err();
    assert_eq!(err.to_string(), "VM \"nope\" does not exist");
}

/// SPEC §5: new mirrored writes wait only when *more than* `mirror_max_pending` are
/// pending. With the cap at k, a write that finds k pending is accepted; one that finds
/// k + 1 waits.
#[test]
fn mirror_writes_wait_only_when_more_than_the_cap_are_pending() {
    for k in [0, 1, 3, 16] {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions {
            mirror_max_pending: k,
            ..EngineOptions::default()
        };
        // An idle guest: the only writes are the test's, issued at one instant so none lands.
        let mut e = engine(dir.path(), 0, 8, opts);
        migrate(&mut e, "ds-slow", CopyMode::Mirror);
        step_until(&mut e, |e| {
            e.vms[0].migration.as_ref().unwrap().core.cursor > 0
        });
        let write = |e: &mut Engine| {
            let now = e.now();
            let op = GuestOp {
                kind: OpKind::Write,
                block: 0,
                issued: now,
            };
            e.guest_write(0, op, now).unwrap();
            let pending = e.vms[0].migration.as_ref().unwrap().mirror_pending.len();
            (pending, e.vms[0].waiting.len())
        };
        for found in 0..=k {
            assert_eq!(
                write(&mut e),
                (found + 1, 0),
                "cap {k}: a write that found {found} pending was accepted and mirrored"
            );
        }
        assert_eq!(
            write(&mut e),
            (k + 1, 1),
            "cap {k}: a write that found {} pending waits",
            k + 1
        );
        // Once the mirror drains the waiting write goes on, and the copy completes.
        assert!(e.run_until_migrated("vm1", e.now() + 120 * SECOND).unwrap());
        assert!(e.vms[0].waiting.is_empty());
        assert_eq!(e.location("vm1").unwrap().0, "ds-slow");
        assert_clean(&e);
    }
}
