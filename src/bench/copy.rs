//! The copy benchmark: its arguments, report, rounds against `cp`, and the check of the copy.

use super::*;

mod live;

pub(crate) use live::*;

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
pub(super) struct Spread {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

impl Spread {
    /// The median (of an even count, the mean of the middle two), minimum and maximum;
    /// `None` for no figures or a NaN among them.
    pub(super) fn of(figures: &[f64]) -> Option<Spread> {
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
pub(super) enum Phase {
    Cp,
    Live,
}

/// The timed phases in the order they run: each round `cp`, then the live copy. Alternating
/// exposes both to the same changes of the machine's load; a round's ratio compares two
/// copies made back to back.
pub(super) fn phases(rounds: u32) -> impl Iterator<Item = (u32, Phase)> {
    (0..rounds).flat_map(|round| [(round, Phase::Cp), (round, Phase::Live)])
}

/// Knobs the public API fixes; tests turn them to provoke contention.
#[derive(Debug, Clone)]
pub(super) struct Tuning {
    pub(super) run_bytes: u64,
    pub(super) io_bytes: usize,
    /// Sleep of the copier after each run's I/O, with the run still in flight.
    pub(super) run_pause: Duration,
    /// Sleep of the mirror thread before each mirrored write.
    pub(super) mirror_delay: Duration,
    /// Zero one destination block before verifying (to prove the check bites).
    pub(super) corrupt_destination: bool,
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

pub(super) fn run_bench(
    args: &BenchCopyArgs,
    tuning: &Tuning,
) -> Result<BenchCopyReport, BenchError> {
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
                let live = live_round(&mut src, &dst_path, args, blocks, tuning)?;
                copy_io = copy_io.max(live.copy_io);
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
    Ok(report(
        args,
        tuning,
        per_round,
        latencies_ns,
        waits,
        copy_io,
    ))
}

/// One round's live copy into a fresh destination at `dst_path`: copies, verifies (after
/// corrupting the destination if the tuning says so), removes the destination and restores
/// the source to its fill.
fn live_round(
    src: &mut ImageFile,
    dst_path: &Path,
    args: &BenchCopyArgs,
    blocks: u64,
    tuning: &Tuning,
) -> Result<LiveResult, BenchError> {
    let dst =
        ImageFile::create(dst_path, blocks).map_err(disk_err("creating the destination image"))?;
    let live = live_copy(
        src,
        &dst,
        args.mode,
        args.write_iops,
        blocks,
        args.copy_io,
        tuning,
    )?;
    if tuning.corrupt_destination {
        dst.write_block(blocks / 2, &[0u8; BLOCK_SIZE])
            .map_err(io_err("corrupting the destination image", dst_path))?;
    }
    verify_copy(
        src,
        dst,
        args.mode,
        blocks,
        &live.journal,
        live.before_switch,
    )?;
    fs::remove_file(dst_path).map_err(io_err("removing the destination image", dst_path))?;
    restore_source(src, &live.journal)?;
    Ok(live)
}

/// The report of the rounds: medians and spreads of the figures, the guest's latencies.
fn report(
    args: &BenchCopyArgs,
    tuning: &Tuning,
    per_round: Vec<CopyRound>,
    mut latencies_ns: Vec<u64>,
    waits: u64,
    copy_io: CopyIo,
) -> BenchCopyReport {
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
    BenchCopyReport {
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
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in microseconds; 0 for no samples.
pub(super) fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1000.0
}

fn run_blocks(tuning: &Tuning) -> u64 {
    (tuning.run_bytes / BLOCK_SIZE as u64).max(1)
}

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
