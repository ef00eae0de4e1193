use super::*;

fn args(mode: CopyMode, write_iops: u32, dir: &Path) -> BenchCopyArgs {
    BenchCopyArgs {
        size_mib: 8,
        mode,
        write_iops,
        rounds: 1,
        copy_io: CopyIo::Kernel,
        dir: Some(dir.to_path_buf()),
    }
}

fn check(r: &BenchCopyReport, mode: CopyMode, write_iops: u32) {
    assert!(r.consistent, "{r:?}");
    assert!(r.mib_per_s > 0.0 && r.mib_per_s.is_finite(), "{r:?}");
    assert!(r.cp_mib_per_s > 0.0 && r.cp_mib_per_s.is_finite(), "{r:?}");
    assert_eq!(r.mode, mode.as_str());
    assert_eq!(r.size_mib, 8);
    assert_eq!(r.write_iops, write_iops);
    if write_iops == 0 {
        assert_eq!(r.guest_writes, 0);
        assert_eq!(r.guest_write_p50_us, 0.0);
    }
    assert!(r.guest_write_p50_us <= r.guest_write_p99_us);
    assert!(r.guest_write_p99_us <= r.guest_write_max_us);
}

/// Two rounds each: the second round starts from the restored source (in redirect and
/// split modes the first round's writes went to a destination since deleted) and is
/// verified on its own journal.
#[test]
fn every_mode_idle_and_busy_is_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in CopyMode::ALL {
        for iops in [0, 2000] {
            let mut a = args(mode, iops, dir.path());
            a.rounds = 2;
            let r = bench_copy(&a).unwrap_or_else(|e| panic!("{} at {iops}: {e}", mode.as_str()));
            check(&r, mode, iops);
            assert_eq!((r.rounds, r.per_round.len()), (2, 2), "{r:?}");
            for round in &r.per_round {
                assert!((round.ratio - round.mib_per_s / round.cp_mib_per_s).abs() < 1e-9);
            }
            // Two rounds: each median is the mean of the two.
            let [one, two] = [r.per_round[0], r.per_round[1]];
            assert!(
                (r.ratio - (one.ratio + two.ratio) / 2.0).abs() < 1e-9,
                "{r:?}"
            );
            assert!((r.mib_per_s - (one.mib_per_s + two.mib_per_s) / 2.0).abs() < 1e-9);
            assert!((r.cp_mib_per_s - (one.cp_mib_per_s + two.cp_mib_per_s) / 2.0).abs() < 1e-9);
            assert_eq!(r.ratio_min, one.ratio.min(two.ratio));
            assert_eq!(r.cp_mib_per_s_max, one.cp_mib_per_s.max(two.cp_mib_per_s));
        }
    }
    // The work directories are gone.
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

#[test]
fn report_serializes_with_the_contract_fields_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = bench_copy(&args(CopyMode::Mirror, 2000, dir.path())).expect("bench");
    let json = serde_json::to_string(&r).expect("json");
    let keys = [
        "\"mib_per_s\":",
        "\"guest_write_p50_us\":",
        "\"guest_write_p99_us\":",
        "\"cp_mib_per_s\":",
        "\"consistent\":true",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| json.find(k).unwrap_or_else(|| panic!("{k} in {json}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(json.contains("\"mode\":\"mirror\""), "{json}");
}

/// Tiny runs, a slow copier and a slow mirror against a fast guest: writes hit the run
/// in flight and fill the mirror queue, and the copy must still be exact.
#[test]
fn contention_keeps_every_mode_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tuning = Tuning {
        run_bytes: 16 * BLOCK_SIZE as u64,
        io_bytes: 8 * BLOCK_SIZE,
        run_pause: Duration::from_millis(5),
        mirror_delay: Duration::from_micros(200),
        corrupt_destination: false,
    };
    for mode in CopyMode::ALL {
        for copy_io in [CopyIo::Kernel, CopyIo::Buffered] {
            let mut a = args(mode, 20_000, dir.path());
            a.size_mib = 1;
            a.copy_io = copy_io;
            let r = run_bench(&a, &tuning)
                .unwrap_or_else(|e| panic!("{} {}: {e}", mode.as_str(), copy_io.as_str()));
            assert!(r.consistent);
            assert!(r.guest_writes > 0, "{r:?}");
            assert!(r.guest_waits > 0, "{r:?}");
            if copy_io == CopyIo::Buffered {
                assert_eq!(r.copy_io, "buffered");
            }
        }
    }
}

#[test]
fn a_wrong_copy_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tuning = Tuning {
        corrupt_destination: true,
        ..Tuning::default()
    };
    for mode in CopyMode::ALL {
        let err = run_bench(&args(mode, 0, dir.path()), &tuning).expect_err("corrupt");
        let msg = err.to_string();
        assert!(matches!(err, BenchError::Inconsistent { .. }), "{msg}");
        assert!(msg.contains("dst/disk0.img"), "{msg}");
        assert!(
            msg.contains("block 1024 expected seq 1, found zero"),
            "{msg}"
        );
    }
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

#[test]
fn bad_size_and_missing_dir_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = args(CopyMode::Redirect, 0, dir.path());
    a.size_mib = 0;
    assert!(matches!(bench_copy(&a), Err(BenchError::Size(0))));
    a.size_mib = u64::MAX;
    assert!(matches!(bench_copy(&a), Err(BenchError::Size(_))));
    let missing = dir.path().join("nope");
    let err = bench_copy(&args(CopyMode::Redirect, 0, &missing)).expect_err("missing");
    let msg = err.to_string();
    assert!(
        msg.starts_with("creating the benchmark directory: "),
        "{msg}"
    );
    assert!(msg.contains("nope"), "{msg}");
}

fn replicate_args(dir: &Path, size_mib: u64, changed_pct: f64) -> BenchReplicateArgs {
    BenchReplicateArgs {
        size_mib,
        changed_pct,
        dir: Some(dir.to_path_buf()),
    }
}

/// Compares with rsync where it is installed (CI installs it); without it (see
/// [`find_rsync`]) the comparison is skipped, the test says so, and the replication
/// cycle is still timed and checked.
#[test]
fn replicate_ships_about_the_changed_bytes_and_both_copies_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsync = find_rsync();
    let r = bench_replicate(&replicate_args(dir.path(), 8, 5.0)).expect("bench");
    // 5 % of 2048 blocks.
    assert_eq!(r.changed_blocks, 102);
    assert_eq!(r.changed_bytes, 102 * 4096);
    assert!(r.bytes_shipped > r.changed_bytes, "{r:?}");
    assert!(r.bytes_shipped * 10 <= r.changed_bytes * 11, "{r:?}");
    assert!((r.shipped_ratio - r.bytes_shipped as f64 / r.changed_bytes as f64).abs() < 1e-12);
    assert!(r.identical);
    assert!(r.seconds > 0.0, "{r:?}");
    match &rsync {
        Ok(_) => {
            assert!(r.rsync_seconds.is_some_and(|s| s > 0.0), "{r:?}");
            assert!(r.speedup.is_some_and(|s| s > 0.0), "{r:?}");
            assert_eq!(r.rsync_note, None);
        }
        Err(why) => {
            eprintln!("replicate: skipped the rsync comparison: {why}");
            assert_eq!((r.rsync_seconds, r.speedup), (None, None), "{r:?}");
            assert_eq!(r.rsync_note.as_deref(), Some(why.as_str()));
        }
    }
    assert!(r.take_seconds + r.write_delta_seconds + r.apply_seconds <= r.seconds * 1.0001);
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);

    let json = serde_json::to_string(&r).expect("json");
    let keys = ["\"seconds\":", "\"bytes_shipped\":", "\"rsync_seconds\":"];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| json.find(k).unwrap_or_else(|| panic!("{k} in {json}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert!(json.starts_with("{\"seconds\":"), "{json}");
    for k in [
        "changed_blocks",
        "changed_bytes",
        "shipped_ratio",
        "speedup",
        "size_mib",
    ] {
        assert!(json.contains(&format!("\"{k}\":")), "{k} in {json}");
    }

    // Every block changed: one long run per 64 blocks, still exact.
    let r = bench_replicate(&replicate_args(dir.path(), 1, 100.0)).expect("all");
    assert_eq!(r.changed_blocks, 256);
    assert_eq!(r.bytes_shipped, 28 + 4 * 16 + 256 * 4096 + 4);
}

/// A wrong replica is an error, with rsync or without it.
#[test]
fn replicate_wrong_replica_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for rsync in [find_rsync(), Err("no rsync in this test".to_string())] {
        let err =
            run_replicate(&replicate_args(dir.path(), 1, 1.0), true, rsync).expect_err("corrupt");
        let msg = err.to_string();
        assert!(matches!(err, BenchError::WrongCopy { .. }), "{msg}");
        assert!(
            msg.starts_with("replication cycle: ") && msg.contains("dst/replica.img"),
            "{msg}"
        );
        assert!(msg.contains("in 1 blocks (first: block 128)"), "{msg}");
    }
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

/// Without rsync the cycle is timed and checked as ever, and the rsync figures are null
/// with the reason.
#[test]
fn replicate_without_rsync_reports_null_rsync_figures_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let why = "rsync is not installed (test)".to_string();
    let r = run_replicate(&replicate_args(dir.path(), 4, 2.0), false, Err(why.clone()))
        .expect("bench without rsync");
    assert_eq!(r.changed_blocks, 20);
    assert!(r.bytes_shipped > r.changed_bytes, "{r:?}");
    assert!(r.identical && r.seconds > 0.0, "{r:?}");
    assert_eq!((r.rsync_seconds, r.speedup), (None, None));
    assert_eq!(r.rsync_note, Some(why));
    let json = serde_json::to_string(&r).expect("json");
    assert!(
        json.starts_with("{\"seconds\":") && json.contains("\"rsync_seconds\":null"),
        "{json}"
    );
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

/// `find_program` runs what the shell would: an executable file on PATH, in PATH's
/// order, or the path given.
#[test]
fn find_program_takes_executable_files_on_path_or_the_path_given() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let [exec, plain, folder] = ["exec", "plain", "folder"].map(|d| dir.path().join(d));
    for d in [&exec, &plain, &folder] {
        fs::create_dir(d).expect("mkdir");
    }
    for (d, mode) in [(&exec, 0o755), (&plain, 0o644)] {
        let f = d.join("rsync");
        fs::write(&f, "#!/bin/sh\n").expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    fs::create_dir(folder.join("rsync")).expect("mkdir");
    let path = |dirs: &[&PathBuf]| std::env::join_paths(dirs).expect("join");
    let rsync = OsStr::new("rsync");
    let found = exec.join("rsync");
    assert_eq!(
        find_program(rsync, Some(&path(&[&plain, &folder, &exec]))),
        Some(found.clone())
    );
    assert_eq!(find_program(rsync, Some(&path(&[&plain, &folder]))), None);
    assert_eq!(find_program(rsync, None), None);
    assert_eq!(
        find_program(found.as_os_str(), Some(&path(&[&plain]))),
        Some(found)
    );
    let not_exec = plain.join("rsync");
    assert_eq!(find_program(not_exec.as_os_str(), None), None);
    assert_eq!(find_program(OsStr::new("/nonexistent/rsync"), None), None);
}

#[test]
fn replicate_bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (size, pct, part) in [
        (0, 1.0, "--size-mib must be at least 1"),
        (u64::MAX, 1.0, "--size-mib must be at least 1"),
        (
            1,
            0.0,
            "--changed-pct must be more than 0 and at most 100 (got 0)",
        ),
        (1, -3.0, "--changed-pct must be more than 0"),
        (1, 100.5, "(got 100.5)"),
        (1, f64::NAN, "(got NaN)"),
    ] {
        let err = bench_replicate(&replicate_args(dir.path(), size, pct)).expect_err(part);
        let msg = err.to_string();
        assert!(matches!(err, BenchError::Replicate(_)), "{msg}");
        assert!(
            msg.starts_with("bench replicate: ") && msg.contains(part),
            "{msg}"
        );
    }
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

/// The command line: `drconsole bench replicate ... --json` prints the report, a bad
/// argument is an error for exit code 2.
#[test]
fn replicate_command_line() {
    use crate::cli::{self, BenchCommand, Cli, Command};
    use clap::Parser;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let parse = |pct: &str| {
        let argv = [
            "drconsole",
            "bench",
            "replicate",
            "--size-mib",
            "2",
            "--changed-pct",
            pct,
            "--dir",
            &d,
            "--json",
        ];
        Cli::try_parse_from(argv)
            .expect("parses")
            .command
            .expect("command")
    };
    let command = parse("2.5");
    assert!(
        matches!(&command, Command::Bench(BenchCommand::Replicate(a)) if a.json && a.changed_pct == 2.5)
    );
    let mut out = Vec::new();
    assert_eq!(cli::run(&command, &mut out).expect("runs"), 0);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["changed_blocks"], 13);
    assert_eq!(v["size_mib"], 2);
    assert_eq!(v["identical"], true);
    assert!(v["seconds"].as_f64().is_some_and(|s| s > 0.0), "{v}");

    let err = cli::run(&parse("0"), &mut Vec::new()).expect_err("zero");
    assert!(
        err.0.contains("--changed-pct must be more than 0"),
        "{}",
        err.0
    );
    assert!(Cli::try_parse_from(["drconsole", "bench", "replicate", "--size-mib", "1"]).is_err());
}

#[test]
fn distinct_blocks_are_distinct_seeded_and_in_range() {
    let a = distinct_blocks(1000, 300, 7);
    assert_eq!(a, distinct_blocks(1000, 300, 7));
    assert_ne!(a, distinct_blocks(1000, 300, 8));
    let mut s = a.clone();
    s.sort_unstable();
    s.dedup();
    assert_eq!(s.len(), 300);
    assert!(s.iter().all(|&b| b < 1000));
    let mut all = distinct_blocks(50, 50, 1);
    all.sort_unstable();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
}

#[test]
fn missing_baseline_program_is_named() {
    let msg = time_command(&mut Command::new("drconsole-no-such-program")).expect_err("missing");
    assert!(
        msg.contains("\"drconsole-no-such-program\" is not installed"),
        "{msg}"
    );
    let msg =
        time_command(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).expect_err("fails");
    assert!(
        msg.contains("exit status: 3") && msg.contains("oops"),
        "{msg}"
    );
}

#[test]
fn spread_is_the_median_and_the_range() {
    let s = |m, lo, hi| {
        Some(Spread {
            median: m,
            min: lo,
            max: hi,
        })
    };
    assert_eq!(Spread::of(&[]), None);
    assert_eq!(Spread::of(&[1.0, f64::NAN]), None);
    assert_eq!(Spread::of(&[0.9]), s(0.9, 0.9, 0.9));
    assert_eq!(Spread::of(&[5.0, 1.0, 3.0]), s(3.0, 1.0, 5.0));
    assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]), s(2.5, 1.0, 4.0));
    assert_eq!(Spread::of(&[0.7, 1.1, 0.95, 0.2, 3.0]), s(0.95, 0.2, 3.0));
}

#[test]
fn rounds_interleave_cp_then_the_live_copy() {
    use Phase::{Cp, Live};
    let order: Vec<_> = phases(3).collect();
    assert_eq!(
        order,
        [(0, Cp), (0, Live), (1, Cp), (1, Live), (2, Cp), (2, Live)]
    );
    assert_eq!(phases(0).count(), 0);
    assert_eq!(phases(DEFAULT_ROUNDS).count(), 10);
}

/// The kernel copy copies exactly the pieces asked for; a failure (here a destination
/// descriptor not open for writing) names both images and the system call.
#[test]
fn kernel_copy_copies_the_pieces_and_names_the_files_on_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = make_source(&dir.path().join("a.img"), 16, &BENCH_UUID).expect("source");
    let dst = ImageFile::create(&dir.path().join("b.img"), 16).expect("destination");
    let (from, to) = kernel_copy_files(&src, &dst).expect("open");
    let read_only = fs::File::open(dst.path()).expect("open");
    let err = copy_pieces_in_kernel(&src, &dst, &from, &read_only, &[0..8, 8..16])
        .expect_err("a read-only destination");
    let msg = err.to_string();
    assert!(
        msg.contains("(copy_file_range)") && msg.contains("b.img") && msg.contains("a.img"),
        "{msg}"
    );
    if copy_pieces_in_kernel(&src, &dst, &from, &to, &[2..5, 9..16]).expect("copies") {
        let (mut a, mut b): (Block, Block) = ([0; BLOCK_SIZE], [0; BLOCK_SIZE]);
        for block in 0..16 {
            src.read_block_at(block, &mut a).expect("read");
            dst.read_block_at(block, &mut b).expect("read");
            let copied = (2..5).contains(&block) || (9..16).contains(&block);
            assert_eq!(a == b, copied, "block {block}");
        }
    } else {
        eprintln!("this file system refuses copy_file_range: the copier would fall back");
    }
}

#[test]
fn zero_rounds_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = args(CopyMode::Mirror, 0, dir.path());
    a.rounds = 0;
    let err = bench_copy(&a).expect_err("zero rounds");
    assert_eq!(
        err.to_string(),
        "bench copy: --rounds must be at least 1 (got 0)"
    );
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

#[test]
fn percentiles_are_nearest_rank() {
    assert_eq!(percentile_us(&[], 50.0), 0.0);
    let ns: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
    assert_eq!(percentile_us(&ns, 50.0), 50.0);
    assert_eq!(percentile_us(&ns, 99.0), 99.0);
    assert_eq!(percentile_us(&[7000], 99.0), 7.0);
}

/// `bench reprotect` through the engine on a small disk: the first reverse cycle ships the
/// blocks that differ (and hardly more), the old image ends byte for byte the running one,
/// and bad arguments are clear errors that leave nothing behind.
#[test]
fn reprotect_ships_what_differs_and_converges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = bench_reprotect(&BenchReprotectArgs {
        size_mib: 4,
        changed_pct: 5.0,
        dir: Some(dir.path().to_path_buf()),
    })
    .expect("bench reprotect");
    // 5 % of 1,024 blocks, half on each side, all distinct.
    assert_eq!(r.changed_blocks, 51, "{r:#?}");
    assert!(r.identical);
    assert!(
        r.bytes_shipped >= r.changed_bytes && r.shipped_ratio <= 1.1,
        "{r:#?}"
    );
    assert!(r.seconds > 0.0 && r.cp_seconds > 0.0);
    for (size, pct, part) in [
        (0, 1.0, "--size-mib must be at least 1"),
        (1, 0.0, "--changed-pct must be more than 0"),
    ] {
        let err = bench_reprotect(&BenchReprotectArgs {
            size_mib: size,
            changed_pct: pct,
            dir: Some(dir.path().to_path_buf()),
        })
        .expect_err(part);
        let msg = err.to_string();
        assert!(
            msg.starts_with("bench reprotect: ") && msg.contains(part),
            "{msg}"
        );
    }
    assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 0);
}

/// `bench across` through the engine on a small disk: the move ships about the changed
/// bytes, synchronous writes cost the link, the guest never stops longer than a few write
/// intervals, and the VM ends at the other site with nothing lost. Bad arguments are named.
#[test]
fn across_ships_the_changes_and_the_synchronous_writes_pay_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_across(&BenchAcrossArgs {
        size_mib: 8,
        changed_pct: 5.0,
        write_iops: 500,
        consistency: crate::engine::Consistency::Keep,
        dir: Some(dir.path().to_path_buf()),
    })
    .expect("bench across");
    assert!(r.changed_blocks > 0, "{r:?}");
    assert!(r.shipped_ratio >= 1.0 && r.shipped_ratio <= 1.1, "{r:?}");
    assert!(r.latency_sync_p50_us > r.latency_before_p50_us, "{r:?}");
    assert!(r.switch_gap_us <= 3.0 * r.write_interval_us, "{r:?}");
    assert!(r.consistent && r.writes_lost == 0, "{r:?}");
    // One VM at a time: no synchronous write; the pre-copy ships the changes and what the
    // guest rewrote meanwhile, and the pause stays a few write intervals.
    let r = bench_across(&BenchAcrossArgs {
        size_mib: 8,
        changed_pct: 5.0,
        write_iops: 500,
        consistency: crate::engine::Consistency::Break,
        dir: Some(dir.path().to_path_buf()),
    })
    .expect("bench across, break");
    assert_eq!(r.sync_writes, 0, "{r:?}");
    assert!(r.shipped_ratio >= 1.0 && r.shipped_ratio <= 1.5, "{r:?}");
    assert!(r.switch_gap_us <= 3.0 * r.write_interval_us, "{r:?}");
    assert!(r.consistent && r.writes_lost == 0, "{r:?}");
    for (args, part) in [
        ((0, 1.0, 10), "--size-mib"),
        ((8, 0.0, 10), "--changed-pct"),
        ((8, 1.0, 0), "--write-iops"),
    ] {
        let err = bench_across(&BenchAcrossArgs {
            size_mib: args.0,
            changed_pct: args.1,
            write_iops: args.2,
            consistency: crate::engine::Consistency::Keep,
            dir: Some(dir.path().to_path_buf()),
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("bench across: ") && err.contains(part),
            "{err}"
        );
    }
}
