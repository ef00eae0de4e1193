//! The replication benchmark: one incremental cycle against `rsync --inplace`.

use super::*;

/// Seed of the replication benchmark's choice of changed blocks.
const REPLICATE_SEED: u64 = 0x5EED_0000_0000_0002;

/// What to benchmark: `bench replicate`.
#[derive(Debug, Clone)]
pub struct BenchReplicateArgs {
    /// Image size in MiB (at least 1).
    pub size_mib: u64,
    /// Percentage of the 4 KiB blocks changed since the last cycle: more than 0, at most 100.
    pub changed_pct: f64,
    /// Where to put the images (in a fresh subdirectory, removed afterwards); default the
    /// system temporary directory.
    pub dir: Option<PathBuf>,
}

/// The replication benchmark's figures (the first three are the contract of
/// `bench replicate --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReplicateReport {
    /// Wall time of one incremental cycle: take the dirty blocks, write the delta into
    /// staging (fsynced), apply it to the replica (fsynced).
    pub seconds: f64,
    /// Size of the delta file.
    pub bytes_shipped: u64,
    /// Wall time of `rsync --inplace --no-whole-file` of the same change, process included;
    /// null when rsync is not installed (see `rsync_note`).
    pub rsync_seconds: Option<f64>,
    pub changed_blocks: u64,
    /// `changed_blocks` × 4096.
    pub changed_bytes: u64,
    /// `bytes_shipped / changed_bytes`.
    pub shipped_ratio: f64,
    /// `rsync_seconds / seconds`; null without rsync.
    pub speedup: Option<f64>,
    pub size_mib: u64,
    pub changed_pct: f64,
    /// The parts of `seconds`.
    pub take_seconds: f64,
    pub write_delta_seconds: f64,
    pub apply_seconds: f64,
    /// The replica (and the rsync copy, when rsync ran) was byte-identical to the source
    /// afterwards.
    pub identical: bool,
    /// Why the rsync comparison was skipped (rsync not found); null when it ran.
    pub rsync_note: Option<String>,
}

/// Environment variable naming the rsync that `bench replicate` runs: a path, or a name
/// looked up on `PATH`. Unset or empty, `rsync` on `PATH`. Pointing it at a program that
/// does not exist (`DRCONSOLE_RSYNC=/nonexistent`) runs the benchmark as on a machine
/// without rsync.
pub const RSYNC_ENV: &str = "DRCONSOLE_RSYNC";

/// The rsync to compare with (see [`RSYNC_ENV`]), or why there is none: the comparison is
/// then skipped, not failed, so the benchmark and its tests run on a machine without rsync.
pub fn find_rsync() -> Result<PathBuf, String> {
    let chosen = std::env::var_os(RSYNC_ENV).filter(|v| !v.is_empty());
    let program = chosen.as_deref().unwrap_or(OsStr::new("rsync"));
    find_program(program, std::env::var_os("PATH").as_deref()).ok_or_else(|| match &chosen {
        Some(v) => format!(
            "{RSYNC_ENV}={} is not an executable file (nor found on PATH): the rsync comparison was skipped",
            Path::new(v).display()
        ),
        None => format!(
            "rsync is not installed (not found on PATH; {RSYNC_ENV} may name it): the rsync comparison was skipped"
        ),
    })
}

/// `program` as the shell would run it: a name with a `/` is taken as a path, any other name
/// is looked up in the directories of `path_var`; only an executable regular file counts.
pub(super) fn find_program(program: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let as_path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        return runnable(as_path).then(|| as_path.to_path_buf());
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(as_path))
        .find(|p| runnable(p))
}

/// Runs the replication benchmark.
///
/// Steps, in a fresh subdirectory of `args.dir` (removed afterwards, also on error), all
/// untimed but the two marked:
/// 1. `src/disk0.img`: every block stamped (seq 1), fsynced, as for `bench copy`.
/// 2. `dst/replica.img` (the last published replica) and `dst/rsync.img` (rsync's target):
///    byte copies of it, fsynced; the rsync copy's mtime is set in the past so that rsync's
///    quick check cannot skip it.
/// 3. `changed_pct` % of the blocks (at least one), distinct and chosen by a seeded
///    splitmix64, are stamped anew (seq 2) through the source [`ImageFile`] with a
///    [`DirtyTracker`] attached, then the source is fsynced.
/// 4. Fair warm-up: the source is compared with each copy in full, which reads all three
///    files into the page cache (and checks that exactly the changed blocks differ).
/// 5. Timed: one incremental cycle as the engine runs it per image: `tracker.take()`,
///    [`replica::write_delta`] into `dst/staging/`, [`replica::apply_delta`] onto the
///    replica. Both files are fsynced, as the engine must; rsync's output is not.
/// 6. Timed: `rsync --inplace --no-whole-file src/disk0.img dst/rsync.img`, wall clock,
///    process start included. Skipped, with a note, when there is no rsync ([`find_rsync`]).
/// 7. The replica and the rsync copy must both be byte-identical to the source: a wrong
///    copy is an error.
pub fn bench_replicate(args: &BenchReplicateArgs) -> Result<BenchReplicateReport, BenchError> {
    run_replicate(args, false, find_rsync())
}

/// [`bench_replicate`] with the rsync to run (or why there is none) and, for tests, a
/// replica to corrupt.
pub(super) fn run_replicate(
    args: &BenchReplicateArgs,
    corrupt_replica: bool,
    rsync: Result<PathBuf, String>,
) -> Result<BenchReplicateReport, BenchError> {
    let blocks = image_blocks(args)?;
    let pct = args.changed_pct;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent)?;
    let src_path = work.src.join("disk0.img");
    let replica_path = work.dst.join("replica.img");
    let rsync_path = work.dst.join("rsync.img");
    let staging = work.dst.join("staging");
    let delta_path = staging.join("disk0.delta");
    fs::create_dir(&staging).map_err(io_err("creating the staging directory", &staging))?;

    let mut src = make_source(&src_path, blocks, &BENCH_UUID)?;
    copy_synced(&src_path, &replica_path)?;
    copy_synced(&src_path, &rsync_path)?;
    fs::File::options()
        .write(true)
        .open(&rsync_path)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(1)))
        .map_err(io_err("setting the rsync copy's mtime", &rsync_path))?;

    let count = ((blocks as f64 * pct / 100.0).round() as u64).clamp(1, blocks);
    let (changed, tracker) = change_source(&mut src, &src_path, blocks, count)?;
    for (what, path) in [
        ("the replica", &replica_path),
        ("the rsync copy", &rsync_path),
    ] {
        let differ = compare_to_source(&src, path)?;
        if differ != changed {
            return Err(BenchError::Replicate(format!(
                "setting up {what}: {} blocks differ from the source instead of the {} changed",
                differ.len(),
                changed.len()
            )));
        }
    }

    let Cycle {
        took,
        written,
        seconds,
        shipped,
    } = time_cycle(&src, &tracker, &delta_path, &replica_path, blocks)?;
    let rsync_seconds = match &rsync {
        Ok(program) => Some(time_rsync(program, &src_path, &rsync_path)?),
        Err(_) => None,
    };

    if corrupt_replica {
        ImageFile::open(&replica_path)
            .map_err(disk_err("corrupting the replica"))?
            .write_block(blocks / 2, &[0u8; BLOCK_SIZE])
            .map_err(io_err("corrupting the replica", &replica_path))?;
    }
    let mut copies = vec![("replication cycle", replica_path.as_path())];
    if rsync_seconds.is_some() {
        copies.push(("rsync", rsync_path.as_path()));
    }
    check_copies(&src, &src_path, &copies)?;
    drop(src);
    drop(work);

    let changed_bytes = count * BLOCK_SIZE as u64;
    Ok(BenchReplicateReport {
        seconds,
        bytes_shipped: shipped.bytes,
        rsync_seconds,
        changed_blocks: count,
        changed_bytes,
        shipped_ratio: shipped.bytes as f64 / changed_bytes as f64,
        speedup: rsync_seconds.map(|r| r / seconds),
        size_mib: args.size_mib,
        changed_pct: pct,
        take_seconds: took.as_secs_f64(),
        write_delta_seconds: (written - took).as_secs_f64(),
        apply_seconds: seconds - written.as_secs_f64(),
        identical: true,
        rsync_note: rsync.err(),
    })
}

/// The image's size in blocks, or the error that `--size-mib` or `--changed-pct` is out of
/// range.
pub(super) fn image_blocks(args: &BenchReplicateArgs) -> Result<u64, BenchError> {
    let bytes = args
        .size_mib
        .checked_mul(1 << 20)
        .filter(|&b| b > 0 && b <= i64::MAX as u64)
        .ok_or_else(|| {
            BenchError::Replicate(format!(
                "--size-mib must be at least 1 and fit in a file (got {})",
                args.size_mib
            ))
        })?;
    let pct = args.changed_pct;
    if !(pct > 0.0 && pct <= 100.0) {
        return Err(BenchError::Replicate(format!(
            "--changed-pct must be more than 0 and at most 100 (got {pct})"
        )));
    }
    Ok(bytes / BLOCK_SIZE as u64)
}

/// Stamps `count` distinct seeded blocks of the source anew (seq 2) through a
/// [`DirtyTracker`] attached to it, and fsyncs it; returns the changed blocks, sorted, and
/// the tracker.
fn change_source(
    src: &mut ImageFile,
    src_path: &Path,
    blocks: u64,
    count: u64,
) -> Result<(Vec<u64>, Arc<DirtyTracker>), BenchError> {
    let mut changed = distinct_blocks(blocks, count, REPLICATE_SEED);
    let tracker = Arc::new(DirtyTracker::new(blocks));
    src.set_tracker(Some(Arc::clone(&tracker)));
    let mut buf: Block = [0; BLOCK_SIZE];
    for &b in &changed {
        disk::stamp_block(&BENCH_UUID, b, FILL_SEQ + 1, &mut buf);
        src.write_block(b, &buf)
            .map_err(io_err("changing the source image", src_path))?;
    }
    src.sync()
        .map_err(io_err("syncing the source image", src_path))?;
    changed.sort_unstable();
    Ok((changed, tracker))
}

/// The timings of one replication cycle, from its start.
struct Cycle {
    /// When the dirty blocks were taken.
    took: Duration,
    /// When the delta file was written.
    written: Duration,
    /// The whole cycle, in seconds (never zero).
    seconds: f64,
    /// What the delta shipped.
    shipped: replica::DeltaStats,
}

/// Times one incremental cycle as the engine runs it per image: take the dirty blocks, write
/// the delta, apply it onto the replica.
fn time_cycle(
    src: &ImageFile,
    tracker: &DirtyTracker,
    delta_path: &Path,
    replica_path: &Path,
    blocks: u64,
) -> Result<Cycle, BenchError> {
    let replica_err = |step| move |source| BenchError::Replica { step, source };
    let start = Instant::now();
    let dirty = tracker.take();
    let took = start.elapsed();
    // Durable where the engine makes them durable: the delta before its cycle commits,
    // the replica before the point is published (one image: an fsync each).
    let synced = |barrier: crate::fsutil::Barrier| {
        barrier
            .commit()
            .map_err(|e| io_err("syncing", &e.path)(e.source))
    };
    let mut barrier = crate::fsutil::Barrier::new();
    let shipped = replica::write_delta(src, &dirty, delta_path, &mut barrier)
        .map_err(replica_err("writing the delta"))?;
    synced(barrier)?;
    let written = start.elapsed();
    let mut barrier = crate::fsutil::Barrier::new();
    replica::apply_delta(delta_path, replica_path, blocks, &mut barrier)
        .map_err(replica_err("applying the delta"))?;
    synced(barrier)?;
    let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    Ok(Cycle {
        took,
        written,
        seconds,
        shipped,
    })
}

/// Times `rsync --inplace --no-whole-file` of the source onto its copy, in seconds.
fn time_rsync(program: &Path, src_path: &Path, rsync_path: &Path) -> Result<f64, BenchError> {
    Ok(time_command(
        Command::new(program)
            .args(["--inplace", "--no-whole-file"])
            .arg(src_path)
            .arg(rsync_path),
    )
    .map_err(|message| BenchError::Rsync {
        from: src_path.display().to_string(),
        to: rsync_path.display().to_string(),
        message,
    })?
    .max(f64::MIN_POSITIVE))
}

/// Each copy (what it is, its path) must be byte-identical to the source: a wrong copy is an
/// error.
fn check_copies(
    src: &ImageFile,
    src_path: &Path,
    copies: &[(&'static str, &Path)],
) -> Result<(), BenchError> {
    for &(what, path) in copies {
        let differ = compare_to_source(src, path)?;
        if let Some(&first) = differ.first() {
            return Err(BenchError::WrongCopy {
                what,
                image: path.display().to_string(),
                source_image: src_path.display().to_string(),
                count: differ.len(),
                first,
            });
        }
    }
    Ok(())
}

/// Copies an image byte for byte and fsyncs the copy, so its writeback does not land in a
/// timed phase.
fn copy_synced(from: &Path, to: &Path) -> Result<(), BenchError> {
    fs::copy(from, to).map_err(io_err("copying the source image", to))?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(io_err("syncing the copy", to))
}

/// The blocks of the image at `path` that differ from `src` (reading both in full).
fn compare_to_source(src: &ImageFile, path: &Path) -> Result<Vec<u64>, BenchError> {
    let copy = ImageFile::open_read_only(path).map_err(disk_err("opening a copy"))?;
    replica::differing_blocks(src, &copy).map_err(|source| BenchError::Replica {
        step: "comparing a copy with the source",
        source,
    })
}

/// `count` distinct blocks of `0..blocks` in a seeded random order: a partial
/// Fisher-Yates shuffle driven by splitmix64.
pub(super) fn distinct_blocks(blocks: u64, count: u64, seed: u64) -> Vec<u64> {
    let mut all: Vec<u64> = (0..blocks).collect();
    let mut rng = seed;
    for i in 0..count.min(blocks) {
        let j = i + splitmix(&mut rng) % (blocks - i);
        all.swap(i as usize, j as usize);
    }
    all.truncate(count.min(blocks) as usize);
    all
}
