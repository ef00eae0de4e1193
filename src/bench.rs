//! The copy benchmark: `drconsole bench copy --size-mib N [--mode M] [--write-iops N] --json`.
//!
//! It copies a fresh, fully written N MiB image from one directory to another with the live
//! copy of SPEC §5, on real threads and at full speed (no simulated clock), while a real guest
//! thread writes stamped 4 KiB blocks at a paced rate; and it runs the system `cp` on the same
//! image in the same run as the yardstick.
//!
//! Threads and routing. The routing is the engine's [`CopyCore`], shared in a [`Mutex`]; each
//! thread has a [`Condvar`] to wait on, and is woken only when it waits:
//! - the *copier* takes the lock only to `begin_run`/`pieces` and to `finish_run`; it copies
//!   the run's pieces outside the lock with `copy_file_range`, as `cp` does (or, see
//!   [`CopyIo`], with large positional reads and writes through a buffer);
//! - the *guest* routes each write under the lock with `route_write` and does its 4 KiB write
//!   outside it. A write to the run in flight waits for the run to end. In mirror mode a write
//!   to the copied region is also queued for the *mirror* thread, which writes it to the
//!   destination; a write waits while more than [`MIRROR_MAX_PENDING`] mirrored writes are
//!   pending (the engine's rule,
//!   [`crate::engine::copy::mirror_must_wait`]). A write is acknowledged when its first copy (the one the
//!   guest itself makes) lands; its latency runs from issue to acknowledgement, and includes
//!   any wait. Writes are paced by real time from a seeded PRNG; one issued late (the guest
//!   fell behind its schedule) is issued at once and timed from then.
//! - A guest write routed to a block but not landed yet is *pending*: the copier does not read
//!   a run while a pending write lies in it (otherwise it could copy the old data after the
//!   write was routed to the source).
//!
//! The migration is complete (the *switch*) when the copy is done, the mirror queue has
//! drained and no guest write is half way. As in the engine, once the copy is done writes in
//! mirror mode wait for the switch; after it they go to the destination, and the guest stops.
//!
//! Afterwards the destination is verified against the guest's journal (kept in memory) with
//! [`disk::verify_set`], and in mirror mode the source too (mirror keeps it complete). A copy
//! that is not consistent is an error: a benchmark of a wrong copy is worthless.
//!
//! Fairness with `cp` (see [`bench_copy`] for details): both copies read the same source from
//! a warm page cache, neither is fsynced, and each output is deleted before the next timed
//! phase. The two alternate, `cp` then the live copy, for a number of rounds, so a change in
//! the machine's load hits both alike; the report gives medians and spreads, and the ratio is
//! the median of the rounds' ratios (each live copy against the `cp` just before it).
//!
//! The replication benchmark, `drconsole bench replicate --size-mib N --changed-pct P --json`
//! ([`bench_replicate`]), times one incremental replication cycle of an image with P % of its
//! blocks changed, exactly as the engine runs it per image (take the dirty blocks, write the
//! delta into staging, apply it to the replica; see [`crate::replica`]), against
//! `rsync --inplace --no-whole-file` of the same change. Without rsync (not on `PATH`, or
//! [`RSYNC_ENV`] names a program that is not there) it still times and checks the cycle and
//! reports the rsync figures as null with a note saying why.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::disk::{
    self, BLOCK_SIZE, Block, DirtyTracker, DiskError, Horizon, ImageFile, Journal, JournalEntry,
    RawUuid, VmDisk,
};
use crate::engine::copy::{CopyCore, CopyMode, WriteRoute};
use crate::replica::{self, ReplicaError};

/// New mirrored writes wait while more than this many are pending (SPEC §5 default).
pub const MIRROR_MAX_PENDING: usize = 16;
/// Rounds of `bench copy` (one `cp`, one live copy each) unless `--rounds` says otherwise.
pub const DEFAULT_ROUNDS: u32 = 5;

/// Bytes per copy run. Measured (1 GiB, ext4, idle mirror, 256 KiB I/Os, median ratio to `cp`
/// over six runs): 1 MiB 0.97, 4 MiB 0.96, 8 MiB 0.87 — within this machine's noise;
/// 4 MiB keeps few lock round trips per GiB while the wait of a guest write that hits the
/// run in flight stays short (about 2 ms at 2 GB/s; 8 MiB runs showed p99 spikes of 1 ms).
const RUN_BYTES: u64 = 4 << 20;
/// Largest single read or write of the buffered copier ([`CopyIo::Buffered`]). On the measuring machine (ext4 in a Linux 6.18
/// VM) 64 to 256 KiB I/Os copied at about `cp` speed, while 1 MiB I/Os fell to a quarter of
/// it (and so did `dd bs=1M`); a small bounce buffer also stays in the CPU's cache.
const IO_BYTES: usize = 256 << 10;
/// Bytes per write while filling the source image. The fill's write size sets the size of
/// the page-cache folios of the source, which the guest's 4 KiB writes pay for: measured
/// mirror p50 at 2000 IOPS was 18 us with a 256 KiB fill, 43 us with 1 MiB, 80 us with
/// 8 MiB, at the same copy throughput. 256 KiB matches the copier's writes.
const FILL_CHUNK_BYTES: usize = 256 << 10;
/// The benchmark VM's uuid (`d2c0be4c-0000-4000-8000-000000000001`).
const BENCH_UUID: RawUuid = [
    0xd2, 0xc0, 0xbe, 0x4c, 0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];
/// Seed of the guest's block choice.
const GUEST_SEED: u64 = 0x5EED_0000_0000_0001;
/// The seq of the fill: every block of the fresh source is stamped with it.
const FILL_SEQ: u64 = 1;

/// How the live copy's copier moves a run's bytes from the source to the destination
/// (ordered `Kernel` < `Buffered`: over several rounds, the most that any fell back to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CopyIo {
    /// `copy_file_range(2)`, as `cp` does: the kernel copies page cache to page cache (or
    /// shares extents, on a file system that can), without bouncing every byte through a
    /// user-space buffer. Where the kernel or file system refuses, the copier falls back to
    /// [`CopyIo::Buffered`] for the rest of the copy.
    Kernel,
    /// `pread` and `pwrite` of up to 256 KiB through a buffer: two copies of every byte by
    /// the CPU, in the copier's own time slice (the engine's way; kept to compare).
    Buffered,
}

impl CopyIo {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyIo::Kernel => "kernel",
            CopyIo::Buffered => "buffered",
        }
    }

    pub fn parse(s: &str) -> Option<CopyIo> {
        [CopyIo::Kernel, CopyIo::Buffered]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchCopyArgs {
    /// Image size in MiB (at least 1).
    pub size_mib: u64,
    pub mode: CopyMode,
    /// Guest 4 KiB writes per second during the copy; 0 = idle (no guest thread).
    pub write_iops: u32,
    /// Rounds of one `cp` and one live copy, interleaved (at least 1).
    pub rounds: u32,
    /// How the copier copies.
    pub copy_io: CopyIo,
    /// Where to put the images (in a fresh subdirectory, removed afterwards); default the
    /// system temporary directory. Put it on the filesystem you want to measure; on one that
    /// reflinks (btrfs, XFS) `cp` may clone instead of copy and its figure is meaningless.
    pub dir: Option<PathBuf>,
}

/// The benchmark's figures (the first four are the contract of `bench copy --json`). Each
/// figure in MiB/s is the image size over a wall time; the live copy's runs from its first
/// run to the switch, `cp`'s from its process start to its exit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchCopyReport {
    /// The live copy's MiB/s: median over the rounds.
    pub mib_per_s: f64,
    /// Median guest write latency, issue to acknowledgement, over every round's writes (0
    /// when idle).
    pub guest_write_p50_us: f64,
    /// 99th percentile guest write latency (0 when idle).
    pub guest_write_p99_us: f64,
    /// `cp`'s MiB/s: median over the rounds.
    pub cp_mib_per_s: f64,
    /// The median over the rounds of the round's live copy MiB/s ÷ its `cp` MiB/s.
    pub ratio: f64,
    /// The spread of the rounds' ratios.
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// The spread of the live copy's MiB/s.
    pub mib_per_s_min: f64,
    pub mib_per_s_max: f64,
    /// The spread of `cp`'s MiB/s.
    pub cp_mib_per_s_min: f64,
    pub cp_mib_per_s_max: f64,
    pub rounds: u32,
    /// How the copier copied: "kernel" (`copy_file_range`), or "buffered" (asked for, or
    /// the kernel refused it for these files).
    pub copy_io: String,
    pub size_mib: u64,
    pub mode: String,
    pub write_iops: u32,
    /// Guest writes acknowledged during the copies, all rounds.
    pub guest_writes: u64,
    /// Of those, writes that had to wait (run in flight, full mirror queue, switch-over).
    pub guest_waits: u64,
    pub guest_write_max_us: f64,
    /// Median CPU seconds (user and system) of a `cp` run, and of the live copy's copier
    /// thread: what each copy costs the machine, which the load does not change much.
    pub cp_cpu_seconds: f64,
    pub copier_cpu_seconds: f64,
    /// Every round, in the order run.
    pub per_round: Vec<CopyRound>,
    pub run_mib: f64,
    /// Every round's destination (and in mirror mode its source) matched the guest's journal;
    /// always true in a report, since a copy that does not is an error instead.
    pub consistent: bool,
}

/// One round of `bench copy`: `cp`, then the live copy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CopyRound {
    pub cp_mib_per_s: f64,
    pub mib_per_s: f64,
    /// `mib_per_s / cp_mib_per_s`.
    pub ratio: f64,
    /// CPU time (user and system) of the `cp` process.
    pub cp_cpu_seconds: f64,
    /// CPU time of the live copy's copier thread.
    pub copier_cpu_seconds: f64,
}

/// Median and range of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// The median (of an even count, the mean of the middle two), minimum and maximum;
    /// `None` for no figures or a NaN among them.
    fn of(figures: &[f64]) -> Option<Spread> {
        if figures.iter().any(|f| f.is_nan()) {
            return None;
        }
        let mut sorted = figures.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Spread { median, min, max })
    }
}

/// A timed phase of `bench copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Cp,
    Live,
}

/// The timed phases in the order they run: each round `cp`, then the live copy. Alternating
/// exposes both to the same changes of the machine's load; a round's ratio compares two
/// copies made back to back.
fn phases(rounds: u32) -> impl Iterator<Item = (u32, Phase)> {
    (0..rounds).flat_map(|round| [(round, Phase::Cp), (round, Phase::Live)])
}

/// Why the benchmark could not run or its copy was wrong. Messages name the step and file.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench copy: the image size must be at least 1 MiB and fit in a file (got {0} MiB)")]
    Size(u64),
    #[error("bench copy: --rounds must be at least 1 (got 0)")]
    Rounds,
    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {source}")]
    Disk {
        step: &'static str,
        #[source]
        source: DiskError,
    },
    #[error("running `cp {from} {to}`: {message}")]
    Cp {
        from: String,
        to: String,
        message: String,
    },
    #[error("{mode} copy: {image} is not consistent with the guest's journal: {detail}")]
    Inconsistent {
        mode: &'static str,
        image: String,
        detail: String,
    },
    #[error("bench copy: the {0} thread panicked")]
    Panicked(&'static str),
    #[error("bench replicate: {0}")]
    Replicate(String),
    #[error("{step}: {source}")]
    Replica {
        step: &'static str,
        #[source]
        source: ReplicaError,
    },
    #[error("running `rsync --inplace --no-whole-file {from} {to}`: {message}")]
    Rsync {
        from: String,
        to: String,
        message: String,
    },
    #[error(
        "{what}: {image} differs from the source {source_image} in {count} blocks (first: block {first})"
    )]
    WrongCopy {
        what: &'static str,
        image: String,
        source_image: String,
        count: usize,
        first: u64,
    },
}

fn io_err<'p>(step: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> BenchError + 'p {
    move |source| BenchError::Io {
        step,
        path: path.display().to_string(),
        source,
    }
}

fn disk_err(step: &'static str) -> impl FnOnce(DiskError) -> BenchError {
    move |source| BenchError::Disk { step, source }
}

/// Knobs the public API fixes; tests turn them to provoke contention.
#[derive(Debug, Clone)]
struct Tuning {
    run_bytes: u64,
    io_bytes: usize,
    /// Sleep of the copier after each run's I/O, with the run still in flight.
    run_pause: Duration,
    /// Sleep of the mirror thread before each mirrored write.
    mirror_delay: Duration,
    /// Zero one destination block before verifying (to prove the check bites).
    corrupt_destination: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            run_bytes: RUN_BYTES,
            io_bytes: IO_BYTES,
            run_pause: Duration::ZERO,
            mirror_delay: Duration::ZERO,
            corrupt_destination: false,
        }
    }
}

/// Runs the copy benchmark.
///
/// Steps, in a fresh subdirectory of `args.dir` (removed afterwards, also on error):
/// 1. `src/disk0.img`: every block stamped (seq 1) with large writes, then fsynced, so the
///    source is really written (not sparse), clean and in the page cache.
/// 2. `args.rounds` rounds (see [`phases`]), each:
///    a. baseline: `cp src/disk0.img dst/cp.img`, wall clock, process start included;
///    b. the live copy of the source as it is (the fill and every earlier round's guest
///    writes) into a new sparse `dst/disk0.img`, with the guest writing (see the module
///    documentation); then the destination (and in mirror mode the source) is verified.
/// 3. Medians and spreads; the ratio is the median of the rounds' ratios, so a round's live
///    copy is only ever compared with the `cp` run just before it, under the same load.
///
/// Fairness: no cache is dropped, so both copies read the source from a warm page cache.
/// Neither copy is fsynced: both are timed into the page cache, as `cp` returns. So that no
/// timed phase pays for another's writeback, each output is deleted (which discards its
/// dirty pages unwritten) before the next timed phase; the live copy's destination is
/// deleted after its verification.
pub fn bench_copy(args: &BenchCopyArgs) -> Result<BenchCopyReport, BenchError> {
    run_bench(args, &Tuning::default())
}

fn run_bench(args: &BenchCopyArgs, tuning: &Tuning) -> Result<BenchCopyReport, BenchError> {
    let bytes = args
        .size_mib
        .checked_mul(1 << 20)
        .filter(|&b| b > 0 && b <= i64::MAX as u64)
        .ok_or(BenchError::Size(args.size_mib))?;
    if args.rounds == 0 {
        return Err(BenchError::Rounds);
    }
    let blocks = bytes / BLOCK_SIZE as u64;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent)?;
    let src_path = work.src.join("disk0.img");
    let dst_path = work.dst.join("disk0.img");
    let cp_path = work.dst.join("cp.img");

    let mut src = make_source(&src_path, blocks, &BENCH_UUID)?;
    let size = args.size_mib as f64;
    let mib_per_s = |seconds: f64| size / seconds.max(f64::MIN_POSITIVE);
    let mut latencies_ns = Vec::new();
    let mut waits = 0;
    let mut per_round = Vec::with_capacity(args.rounds as usize);
    // Buffered if any round fell back.
    let mut copy_io = args.copy_io;
    let (mut cp_figure, mut cp_cpu) = (0.0, 0.0);
    for (_, phase) in phases(args.rounds) {
        match phase {
            Phase::Cp => {
                let (seconds, cpu) = run_cp(&src_path, &cp_path)?;
                (cp_figure, cp_cpu) = (mib_per_s(seconds), cpu);
            }
            Phase::Live => {
                let dst = ImageFile::create(&dst_path, blocks)
                    .map_err(disk_err("creating the destination image"))?;
                let live = live_copy(
                    &src,
                    &dst,
                    args.mode,
                    args.write_iops,
                    blocks,
                    args.copy_io,
                    tuning,
                )?;
                copy_io = copy_io.max(live.copy_io);
                if tuning.corrupt_destination {
                    dst.write_block(blocks / 2, &[0u8; BLOCK_SIZE])
                        .map_err(io_err("corrupting the destination image", &dst_path))?;
                }
                verify_copy(
                    &mut src,
                    dst,
                    args.mode,
                    blocks,
                    &live.journal,
                    live.before_switch,
                )?;
                fs::remove_file(&dst_path)
                    .map_err(io_err("removing the destination image", &dst_path))?;
                restore_source(&src, &live.journal)?;
                latencies_ns.extend(live.latencies_ns);
                waits += live.waits;
                let live_figure = mib_per_s(live.seconds);
                per_round.push(CopyRound {
                    cp_mib_per_s: cp_figure,
                    mib_per_s: live_figure,
                    ratio: live_figure / cp_figure,
                    cp_cpu_seconds: cp_cpu,
                    copier_cpu_seconds: live.copier_cpu_seconds,
                });
            }
        }
    }
    drop(src);
    drop(work);

    let spread = |figure: fn(&CopyRound) -> f64| {
        let figures: Vec<f64> = per_round.iter().map(figure).collect();
        Spread::of(&figures).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        })
    };
    let (live, cp, ratio) = (
        spread(|r| r.mib_per_s),
        spread(|r| r.cp_mib_per_s),
        spread(|r| r.ratio),
    );
    latencies_ns.sort_unstable();
    Ok(BenchCopyReport {
        mib_per_s: live.median,
        guest_write_p50_us: percentile_us(&latencies_ns, 50.0),
        guest_write_p99_us: percentile_us(&latencies_ns, 99.0),
        cp_mib_per_s: cp.median,
        ratio: ratio.median,
        ratio_min: ratio.min,
        ratio_max: ratio.max,
        mib_per_s_min: live.min,
        mib_per_s_max: live.max,
        cp_mib_per_s_min: cp.min,
        cp_mib_per_s_max: cp.max,
        rounds: args.rounds,
        copy_io: copy_io.as_str().to_string(),
        size_mib: args.size_mib,
        mode: args.mode.as_str().to_string(),
        write_iops: args.write_iops,
        guest_writes: latencies_ns.len() as u64,
        guest_waits: waits,
        guest_write_max_us: latencies_ns.last().map_or(0.0, |&ns| ns as f64 / 1000.0),
        cp_cpu_seconds: spread(|r| r.cp_cpu_seconds).median,
        copier_cpu_seconds: spread(|r| r.copier_cpu_seconds).median,
        per_round,
        run_mib: run_blocks(tuning) as f64 * BLOCK_SIZE as f64 / f64::from(1 << 20),
        consistent: true,
    })
}

/// Nearest-rank percentile of sorted nanoseconds, in microseconds; 0 for no samples.
fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1000.0
}

fn run_blocks(tuning: &Tuning) -> u64 {
    (tuning.run_bytes / BLOCK_SIZE as u64).max(1)
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// A fresh directory with `src/` and `dst/`, removed with everything in it when dropped.
struct WorkDir {
    root: PathBuf,
    src: PathBuf,
    dst: PathBuf,
}

impl WorkDir {
    fn create(parent: &Path) -> Result<WorkDir, BenchError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "drconsole-bench-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let root = parent.join(name);
        fs::create_dir(&root).map_err(io_err("creating the benchmark directory", &root))?;
        let work = WorkDir {
            src: root.join("src"),
            dst: root.join("dst"),
            root,
        };
        for dir in [&work.src, &work.dst] {
            fs::create_dir(dir).map_err(io_err("creating the benchmark directory", dir))?;
        }
        Ok(work)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Best effort: nothing useful to do about a failure here.
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Creates the fresh source: every block stamped with seq 1, written in large chunks, fsynced.
fn make_source(path: &Path, blocks: u64, uuid: &RawUuid) -> Result<ImageFile, BenchError> {
    let img = ImageFile::create(path, blocks).map_err(disk_err("creating the source image"))?;
    let chunk_blocks = (FILL_CHUNK_BYTES / BLOCK_SIZE) as u64;
    let mut buf = vec![0u8; FILL_CHUNK_BYTES];
    let mut first = 0;
    while first < blocks {
        let n = chunk_blocks.min(blocks - first);
        let bytes = &mut buf[..n as usize * BLOCK_SIZE];
        let (stamps, _) = bytes.as_chunks_mut::<BLOCK_SIZE>();
        for (b, stamp) in (first..).zip(stamps.iter_mut()) {
            disk::stamp_block(uuid, b, FILL_SEQ, stamp);
        }
        img.write_at(first * BLOCK_SIZE as u64, bytes)
            .map_err(io_err("writing the source image", path))?;
        first += n;
    }
    img.sync()
        .map_err(io_err("syncing the source image", path))?;
    Ok(img)
}

/// Gives every block the guest wrote its fill stamp back, and fsyncs the source: each round
/// starts from the same clean, fully stamped image (in redirect and split modes some of
/// the round's writes went to the destination only, now deleted).
fn restore_source(src: &ImageFile, guest_journal: &[(u64, u64)]) -> Result<(), BenchError> {
    let mut buf: Block = [0; BLOCK_SIZE];
    for &(_, block) in guest_journal {
        disk::stamp_block(&BENCH_UUID, block, FILL_SEQ, &mut buf);
        src.write_block(block, &buf)
            .map_err(io_err("restoring the source image", src.path()))?;
    }
    src.sync()
        .map_err(io_err("syncing the source image", src.path()))
}

/// Runs `cp from to` and returns its wall time in seconds; deletes `to` afterwards (untimed).
/// Also returns the CPU time `cp` used (user and system).
fn run_cp(from: &Path, to: &Path) -> Result<(f64, f64), BenchError> {
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let seconds =
        time_command(Command::new("cp").arg(from).arg(to)).map_err(|message| BenchError::Cp {
            from: from.display().to_string(),
            to: to.display().to_string(),
            message,
        })?;
    let cpu = cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before;
    fs::remove_file(to).map_err(io_err("removing the cp copy", to))?;
    Ok((seconds, cpu))
}

/// CPU time, user and system, in seconds: of the calling thread (`RUSAGE_THREAD`) or of the
/// children waited for (`RUSAGE_CHILDREN`). CPU time does not depend on the machine's load
/// the way wall time does, so it shows what a copy costs on a busy machine. 0 if the
/// kernel cannot tell.
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct it is given, which we own.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Runs a baseline command to its end and returns its wall time in seconds, process start
/// included; a failure to start it or an unsuccessful exit is the message (with its stderr).
fn time_command(cmd: &mut Command) -> Result<f64, String> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "{:?} is not installed (not found on PATH): {e}",
                    cmd.get_program()
                )
            } else {
                e.to_string()
            }
        })?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(seconds)
}

// ---------------------------------------------------------------------------------------
// The live copy
// ---------------------------------------------------------------------------------------

/// What the copy threads share under the lock.
struct State {
    core: CopyCore,
    /// Blocks of guest writes routed but not landed yet (the copier must not read them).
    guest_pending: Vec<u64>,
    /// Mirrored writes waiting for the mirror thread: (block, seq).
    mirror_queue: VecDeque<(u64, u64)>,
    /// Mirrored writes not landed yet: queued plus the one being written.
    mirror_pending: usize,
    /// When the migration completed (copy done, mirror drained, no guest write half way).
    switched_at: Option<Instant>,
    /// The first error of any thread; everyone stops.
    error: Option<BenchError>,
    /// Which threads sleep on their condvar: only those are woken (a wake-up nobody waits
    /// for still costs a syscall, and waking an idle thread each run costs cross-CPU
    /// wake-ups that measurably slow the copier).
    waiting: [bool; 3],
}

/// The threads of a live copy, each with its own condvar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Waits for guest writes pending in its run to land.
    Copier = 0,
    /// Waits for the run in flight to end, a mirror slot, or the switch.
    Guest = 1,
    /// Waits for a mirrored write to do, or the switch.
    Mirror = 2,
}

struct Live<'a> {
    state: Mutex<State>,
    cvs: [Condvar; 3],
    /// Set with the switch or an error: lets the pacing guest stop without the lock.
    finished: AtomicBool,
    src: &'a ImageFile,
    dst: &'a ImageFile,
    uuid: RawUuid,
    mode: CopyMode,
}

impl Live<'_> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread records an error (see `PanicGuard`); the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps as `who` until woken (the caller re-checks its condition).
    fn wait<'g>(&self, who: Who, mut st: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        st.waiting[who as usize] = true;
        let mut st = self.cvs[who as usize]
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner);
        st.waiting[who as usize] = false;
        st
    }

    /// Wakes `who` if it sleeps (called with the lock held).
    fn wake(&self, st: &State, who: Who) {
        if st.waiting[who as usize] {
            self.cvs[who as usize].notify_one();
        }
    }

    fn wake_all(&self, st: &State) {
        for who in [Who::Copier, Who::Guest, Who::Mirror] {
            self.wake(st, who);
        }
    }

    /// Completes the migration if nothing is left in flight, and wakes everyone then.
    fn try_switch(&self, st: &mut State) {
        if st.switched_at.is_none()
            && st.core.done()
            && st.mirror_pending == 0
            && st.guest_pending.is_empty()
        {
            st.switched_at = Some(Instant::now());
            self.finished.store(true, Ordering::Release);
            self.wake_all(st);
        }
    }

    fn fail(&self, error: BenchError) {
        let mut st = self.lock();
        if st.error.is_none() {
            st.error = Some(error);
        }
        self.finished.store(true, Ordering::Release);
        self.wake_all(&st);
    }
}

/// Records a panic of the thread it lives in as an error, so no other thread waits forever.
struct PanicGuard<'l, 'a> {
    live: &'l Live<'a>,
    thread: &'static str,
}

impl Drop for PanicGuard<'_, '_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.live.fail(BenchError::Panicked(self.thread));
        }
    }
}

/// The outcome of a live copy.
struct LiveResult {
    seconds: f64,
    /// The guest's writes, in order: (seq, block).
    journal: Vec<(u64, u64)>,
    /// How many of `journal` were written before the switch (the rest went to the
    /// destination after it).
    before_switch: usize,
    latencies_ns: Vec<u64>,
    waits: u64,
    /// How the copier copied (`Buffered` also when the kernel refused).
    copy_io: CopyIo,
    /// CPU time of the copier thread.
    copier_cpu_seconds: f64,
}

/// What the guest thread hands back.
#[derive(Default)]
struct GuestLog {
    journal: Vec<(u64, u64)>,
    before_switch: usize,
    latencies_ns: Vec<u64>,
    waits: u64,
}

fn live_copy(
    src: &ImageFile,
    dst: &ImageFile,
    mode: CopyMode,
    write_iops: u32,
    blocks: u64,
    copy_io: CopyIo,
    tuning: &Tuning,
) -> Result<LiveResult, BenchError> {
    let live = Live {
        state: Mutex::new(State {
            core: CopyCore::new(mode, blocks, run_blocks(tuning)),
            guest_pending: Vec::new(),
            mirror_queue: VecDeque::with_capacity(MIRROR_MAX_PENDING),
            mirror_pending: 0,
            switched_at: None,
            error: None,
            waiting: [false; 3],
        }),
        cvs: [Condvar::new(), Condvar::new(), Condvar::new()],
        finished: AtomicBool::new(false),
        src,
        dst,
        uuid: BENCH_UUID,
        mode,
    };
    let guest_runs = write_iops > 0;
    let start_line = Barrier::new(if guest_runs { 2 } else { 1 });
    let ((started, copy_io, copier_cpu_seconds), guest) = thread::scope(|s| {
        let copier = s.spawn(|| {
            let _guard = PanicGuard {
                live: &live,
                thread: "copier",
            };
            // Untimed: the descriptors `copy_file_range` needs.
            let files = match copy_io {
                CopyIo::Kernel => kernel_copy_files(live.src, live.dst).map(Some),
                CopyIo::Buffered => Ok(None),
            };
            start_line.wait();
            let started = Instant::now();
            let cpu = cpu_seconds(libc::RUSAGE_THREAD);
            let used = match files {
                Ok(files) => copier(&live, tuning, files.as_ref()),
                Err(e) => {
                    live.fail(e);
                    copy_io
                }
            };
            (started, used, cpu_seconds(libc::RUSAGE_THREAD) - cpu)
        });
        let mirror = (mode == CopyMode::Mirror).then(|| {
            s.spawn(|| {
                let _guard = PanicGuard {
                    live: &live,
                    thread: "mirror",
                };
                mirror(&live, tuning);
            })
        });
        let guest = guest_runs.then(|| {
            s.spawn(|| {
                let _guard = PanicGuard {
                    live: &live,
                    thread: "guest",
                };
                start_line.wait();
                guest(&live, write_iops, blocks)
            })
        });
        let started = copier.join().map_err(|_| BenchError::Panicked("copier"));
        if let Some(m) = mirror {
            m.join().map_err(|_| BenchError::Panicked("mirror"))?;
        }
        let guest = match guest {
            Some(g) => g.join().map_err(|_| BenchError::Panicked("guest"))?,
            None => GuestLog::default(),
        };
        Ok::<_, BenchError>((started?, guest))
    })?;
    let st = live
        .state
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(e) = st.error {
        return Err(e);
    }
    let Some(switched_at) = st.switched_at else {
        unreachable!("every thread ended without an error, so the migration switched");
    };
    Ok(LiveResult {
        seconds: switched_at.duration_since(started).as_secs_f64(),
        journal: guest.journal,
        before_switch: guest.before_switch,
        latencies_ns: guest.latencies_ns,
        waits: guest.waits,
        copy_io,
        copier_cpu_seconds,
    })
}

/// The source opened for reading and the destination for writing, for `copy_file_range`
/// (an [`ImageFile`] keeps its descriptor to itself).
fn kernel_copy_files(src: &ImageFile, dst: &ImageFile) -> Result<(fs::File, fs::File), BenchError> {
    let from =
        fs::File::open(src.path()).map_err(io_err("opening the source image", src.path()))?;
    let to = fs::File::options()
        .write(true)
        .open(dst.path())
        .map_err(io_err("opening the destination image", dst.path()))?;
    Ok((from, to))
}

/// The copier: runs of `run_bytes`, as fast as it can; the lock only to begin and finish.
/// With `files` it copies in the kernel (see [`CopyIo::Kernel`]) until the kernel refuses,
/// then through a buffer. Returns how it copied in the end.
fn copier(live: &Live<'_>, tuning: &Tuning, files: Option<&(fs::File, fs::File)>) -> CopyIo {
    let mut buf = vec![0u8; tuning.io_bytes.max(BLOCK_SIZE)];
    let mut in_kernel = files;
    loop {
        let (run, pieces) = {
            let mut st = live.lock();
            let Some(run) = st.core.begin_run() else {
                live.try_switch(&mut st);
                return in_kernel.map_or(CopyIo::Buffered, |_| CopyIo::Kernel);
            };
            let pieces = st.core.pieces(&run);
            // New guest writes to the run now wait; ones routed before must land first.
            while st.error.is_none() && st.guest_pending.iter().any(|b| run.contains(b)) {
                st = live.wait(Who::Copier, st);
            }
            if st.error.is_some() {
                return CopyIo::Buffered;
            }
            (run, pieces)
        };
        let copied = match in_kernel {
            Some((from, to)) => copy_pieces_in_kernel(live.src, live.dst, from, to, &pieces),
            None => Ok(false),
        };
        let copied = match copied {
            Ok(true) => Ok(()),
            Ok(false) => {
                in_kernel = None;
                copy_pieces(live.src, live.dst, &pieces, &mut buf)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            live.fail(e);
            return CopyIo::Buffered;
        }
        if !tuning.run_pause.is_zero() {
            thread::sleep(tuning.run_pause);
        }
        let mut st = live.lock();
        st.core.finish_run(run);
        live.wake(&st, Who::Guest);
    }
}

/// Copies block ranges from `src` to `dst` with reads and writes of up to `buf.len()` bytes.
fn copy_pieces(
    src: &ImageFile,
    dst: &ImageFile,
    pieces: &[Range<u64>],
    buf: &mut [u8],
) -> Result<(), BenchError> {
    for piece in pieces {
        let mut at = piece.start * BLOCK_SIZE as u64;
        let end = piece.end * BLOCK_SIZE as u64;
        while at < end {
            let len = buf.len().min((end - at) as usize);
            let chunk = &mut buf[..len];
            src.read_at(at, chunk)
                .map_err(io_err("reading the source image", src.path()))?;
            dst.write_at(at, chunk)
                .map_err(io_err("writing the destination image", dst.path()))?;
            at += len as u64;
        }
    }
    Ok(())
}

/// Copies block ranges from `src` to `dst` with `copy_file_range(2)` on `from` and `to`
/// (their descriptors). `Ok(false)`: the kernel cannot copy between these files (an old
/// kernel, different file systems, a file system without support), and it refused before
/// copying a byte, so the caller can copy the same pieces another way.
fn copy_pieces_in_kernel(
    src: &ImageFile,
    dst: &ImageFile,
    from: &fs::File,
    to: &fs::File,
    pieces: &[Range<u64>],
) -> Result<bool, BenchError> {
    use std::os::fd::AsRawFd;
    let mut first = true;
    for piece in pieces {
        let end = piece.end * BLOCK_SIZE as u64;
        // Image offsets fit in an i64 (the image size was checked), and so do these.
        let mut off_in = (piece.start * BLOCK_SIZE as u64) as libc::loff_t;
        let mut off_out = off_in;
        while (off_in as u64) < end {
            let len = usize::try_from(end - off_in as u64).unwrap_or(usize::MAX);
            // SAFETY: two open descriptors; the kernel reads and updates the two offsets,
            // which live on this stack frame for the call.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    &mut off_in,
                    to.as_raw_fd(),
                    &mut off_out,
                    len,
                    0,
                )
            };
            if n > 0 {
                first = false;
                continue;
            }
            let e = if n == 0 {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("copy_file_range copied nothing at byte {off_in}"),
                )
            } else {
                io::Error::last_os_error()
            };
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(
                    libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::EPERM,
                ) if first => return Ok(false),
                _ => {
                    return Err(io_err(
                        "copying the source image to the destination (copy_file_range)",
                        dst.path(),
                    )(io::Error::new(
                        e.kind(),
                        format!("{}: {e}", src.path().display()),
                    )));
                }
            }
        }
    }
    Ok(true)
}

/// The mirror thread: writes mirrored guest writes to the destination, in order.
fn mirror(live: &Live<'_>, tuning: &Tuning) {
    let mut buf: Block = [0; BLOCK_SIZE];
    loop {
        let (block, seq) = {
            let mut st = live.lock();
            loop {
                if st.error.is_some() {
                    return;
                }
                if let Some(next) = st.mirror_queue.pop_front() {
                    break next;
                }
                if st.switched_at.is_some() {
                    return;
                }
                st = live.wait(Who::Mirror, st);
            }
        };
        if !tuning.mirror_delay.is_zero() {
            thread::sleep(tuning.mirror_delay);
        }
        disk::stamp_block(&live.uuid, block, seq, &mut buf);
        if let Err(e) = live.dst.write_block(block, &buf) {
            live.fail(io_err(
                "writing a mirrored block to the destination",
                live.dst.path(),
            )(e));
            return;
        }
        let mut st = live.lock();
        st.mirror_pending -= 1;
        live.wake(&st, Who::Guest);
        live.try_switch(&mut st);
    }
}

/// splitmix64: the guest's seeded block choice.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The guest: `iops` stamped 4 KiB writes a second to random blocks, paced by real time
/// (a late write is issued at once, so the average rate holds), until the switch.
fn guest(live: &Live<'_>, iops: u32, blocks: u64) -> GuestLog {
    let mut log = GuestLog::default();
    let interval = Duration::from_secs_f64(1.0 / f64::from(iops.max(1)));
    let mut rng = GUEST_SEED;
    let mut seq = FILL_SEQ + 1;
    let mut next = Instant::now();
    let mut buf: Block = [0; BLOCK_SIZE];
    loop {
        loop {
            if live.finished.load(Ordering::Acquire) {
                return log;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            thread::sleep((next - now).min(Duration::from_millis(5)));
        }
        next += interval;
        let issued = Instant::now();
        let block = splitmix(&mut rng) % blocks;
        let mut waited = false;
        let (image, pending) = {
            let mut st = live.lock();
            loop {
                if st.error.is_some() {
                    return log;
                }
                if st.switched_at.is_some() {
                    // The VM runs on the destination now.
                    break (live.dst, false);
                }
                let in_run = st
                    .core
                    .in_flight
                    .as_ref()
                    .is_some_and(|r| r.contains(&block));
                // As in the engine: a mirrored write waits while the queue is full, and once
                // the copy is done every write waits for the switch-over.
                let hold = live.mode == CopyMode::Mirror
                    && !in_run
                    && ((block < st.core.cursor
                        && crate::engine::copy::mirror_must_wait(
                            st.mirror_pending,
                            MIRROR_MAX_PENDING,
                        ))
                        || st.core.done());
                let route = if hold {
                    WriteRoute::Wait
                } else {
                    st.core.route_write(block)
                };
                let image = match route {
                    WriteRoute::Wait => {
                        waited = true;
                        st = live.wait(Who::Guest, st);
                        continue;
                    }
                    WriteRoute::Source => live.src,
                    WriteRoute::Destination => live.dst,
                    WriteRoute::SourceAndMirror => {
                        st.mirror_queue.push_back((block, seq));
                        st.mirror_pending += 1;
                        live.wake(&st, Who::Mirror);
                        live.src
                    }
                };
                st.guest_pending.push(block);
                break (image, true);
            }
        };
        disk::stamp_block(&live.uuid, block, seq, &mut buf);
        if let Err(e) = image.write_block(block, &buf) {
            live.fail(io_err("writing a guest block", image.path())(e));
            return log;
        }
        // Acknowledged: its first copy landed.
        let latency = issued.elapsed();
        log.latencies_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        log.journal.push((seq, block));
        if pending {
            log.before_switch = log.journal.len();
        }
        log.waits += u64::from(waited);
        seq += 1;
        if pending {
            let mut st = live.lock();
            if let Some(i) = st.guest_pending.iter().position(|&b| b == block) {
                st.guest_pending.swap_remove(i);
            }
            live.wake(&st, Who::Copier);
            live.try_switch(&mut st);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The replication benchmark
// ---------------------------------------------------------------------------------------

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
fn find_program(program: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
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
fn run_replicate(
    args: &BenchReplicateArgs,
    corrupt_replica: bool,
    rsync: Result<PathBuf, String>,
) -> Result<BenchReplicateReport, BenchError> {
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
    let blocks = bytes / BLOCK_SIZE as u64;
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
    let mut changed = distinct_blocks(blocks, count, REPLICATE_SEED);
    let tracker = Arc::new(DirtyTracker::new(blocks));
    src.set_tracker(Some(Arc::clone(&tracker)));
    let mut buf: Block = [0; BLOCK_SIZE];
    for &b in &changed {
        disk::stamp_block(&BENCH_UUID, b, FILL_SEQ + 1, &mut buf);
        src.write_block(b, &buf)
            .map_err(io_err("changing the source image", &src_path))?;
    }
    src.sync()
        .map_err(io_err("syncing the source image", &src_path))?;
    changed.sort_unstable();
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

    let replica_err = |step| move |source| BenchError::Replica { step, source };
    let start = Instant::now();
    let dirty = tracker.take();
    let took = start.elapsed();
    let shipped = replica::write_delta(&src, &dirty, &delta_path)
        .map_err(replica_err("writing the delta"))?;
    let written = start.elapsed();
    replica::apply_delta(&delta_path, &replica_path, blocks)
        .map_err(replica_err("applying the delta"))?;
    let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);

    let rsync_seconds = match &rsync {
        Ok(program) => Some(
            time_command(
                Command::new(program)
                    .args(["--inplace", "--no-whole-file"])
                    .arg(&src_path)
                    .arg(&rsync_path),
            )
            .map_err(|message| BenchError::Rsync {
                from: src_path.display().to_string(),
                to: rsync_path.display().to_string(),
                message,
            })?
            .max(f64::MIN_POSITIVE),
        ),
        Err(_) => None,
    };

    if corrupt_replica {
        ImageFile::open(&replica_path)
            .map_err(disk_err("corrupting the replica"))?
            .write_block(blocks / 2, &[0u8; BLOCK_SIZE])
            .map_err(io_err("corrupting the replica", &replica_path))?;
    }
    let mut copies = vec![("replication cycle", &replica_path)];
    if rsync_seconds.is_some() {
        copies.push(("rsync", &rsync_path));
    }
    for (what, path) in copies {
        let differ = compare_to_source(&src, path)?;
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
fn distinct_blocks(blocks: u64, count: u64, seed: u64) -> Vec<u64> {
    let mut all: Vec<u64> = (0..blocks).collect();
    let mut rng = seed;
    for i in 0..count.min(blocks) {
        let j = i + splitmix(&mut rng) % (blocks - i);
        all.swap(i as usize, j as usize);
    }
    all.truncate(count.min(blocks) as usize);
    all
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// The fill (seq 1 on every block) followed by the guest's writes, as a journal.
fn journal_of(blocks: u64, guest_journal: &[(u64, u64)]) -> Journal {
    let uuid = BENCH_UUID;
    let mut entries = Vec::with_capacity(blocks as usize + guest_journal.len());
    entries.extend((0..blocks).map(|block| JournalEntry {
        seq: FILL_SEQ,
        uuid,
        block,
    }));
    entries.extend(
        guest_journal
            .iter()
            .map(|&(seq, block)| JournalEntry { seq, uuid, block }),
    );
    Journal {
        last_seq: entries.last().map_or(0, |e| e.seq),
        entries,
    }
}

/// Verifies the destination against the fill plus the guest's whole journal, and in mirror
/// mode the source (which mirror keeps complete) against the writes before the switch; an
/// inconsistent image is an error.
fn verify_copy(
    src: &mut ImageFile,
    mut dst: ImageFile,
    mode: CopyMode,
    blocks: u64,
    guest_journal: &[(u64, u64)],
    before_switch: usize,
) -> Result<(), BenchError> {
    let uuid = BENCH_UUID;
    let mut checks = vec![(&mut dst, journal_of(blocks, guest_journal))];
    if mode == CopyMode::Mirror {
        let journal = journal_of(blocks, &guest_journal[..before_switch]);
        checks.push((src, journal));
    }
    for (image, journal) in checks {
        let path = image.path().display().to_string();
        let v = disk::verify_set(
            &mut [VmDisk {
                name: path.clone(),
                uuid,
                reader: image,
            }],
            &journal,
            Horizon::LastJournaled,
        )
        .map_err(io_err("verifying the copy", Path::new(&path)))?;
        if let Some(vm) = v.vms.iter().find(|vm| !vm.consistent) {
            let first = vm.examples.first().map_or(String::new(), |m| {
                format!(
                    "; first: block {} expected seq {}, found {}",
                    m.block, m.expected_seq, m.found
                )
            });
            return Err(BenchError::Inconsistent {
                mode: mode.as_str(),
                image: path,
                detail: format!(
                    "{} mismatched and {} torn blocks{first}",
                    vm.mismatched_blocks, vm.torn_blocks
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
                let r =
                    bench_copy(&a).unwrap_or_else(|e| panic!("{} at {iops}: {e}", mode.as_str()));
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
                assert!(
                    (r.cp_mib_per_s - (one.cp_mib_per_s + two.cp_mib_per_s) / 2.0).abs() < 1e-9
                );
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
            let err = run_replicate(&replicate_args(dir.path(), 1, 1.0), true, rsync)
                .expect_err("corrupt");
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
        assert!(
            Cli::try_parse_from(["drconsole", "bench", "replicate", "--size-mib", "1"]).is_err()
        );
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
        let msg =
            time_command(&mut Command::new("drconsole-no-such-program")).expect_err("missing");
        assert!(
            msg.contains("\"drconsole-no-such-program\" is not installed"),
            "{msg}"
        );
        let msg = time_command(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .expect_err("fails");
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
}
