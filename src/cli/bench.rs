//! `drconsole bench …`: the benchmarks' command lines and their text output.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{CliError, emit, emit_json};
use crate::engine::copy::CopyMode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Live-copy a fresh image between two directories while a real guest thread writes,
    /// and `cp` the same image as the baseline.
    Copy(BenchCopyCli),
    /// Time one incremental replication cycle (dirty blocks -> delta file -> replica) of an
    /// image with some blocks changed, and `rsync --inplace --no-whole-file` of the same
    /// change as the baseline.
    Replicate(BenchReplicateCli),
    /// Reprotect a 1-VM group after an unplanned failover with some blocks changed on
    /// either side (through the engine, on real files): what its first reverse cycle ships
    /// against what differs, and its time against `cp` of the image.
    Reprotect(BenchReprotectCli),
    /// A consistency group moved to the other site live (SPEC §12): bytes shipped against
    /// the changed bytes, guest write latency while synchronous against before, the switch.
    Across(BenchAcrossCli),
    /// Run the whole console headless (engine, workspace in a temp dir, guests writing)
    /// with the inventory expanded and a VM selected, and time N frames (logic, drawing,
    /// tessellation) at 60 Hz; the built-in demo is the baseline.
    Ui(BenchUiCli),
}

#[derive(Debug, Args)]
pub struct BenchUiCli {
    /// The topology file (e.g. from `drconsole generate`).
    #[arg(long, value_name = "FILE")]
    pub topology: PathBuf,
    /// Frames to time.
    #[arg(long, value_name = "N", default_value_t = 600)]
    pub frames: usize,
    /// Where to put the temporary workspaces (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON: {"frame_ms_p50", "frame_ms_p99", ..., "baseline_frame_ms_p50", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchAcrossCli {
    /// The VM's disk in MiB.
    #[arg(long, value_name = "N")]
    pub size_mib: u64,
    /// Percentage of the disk changed since the last recovery point when the move starts.
    #[arg(long, value_name = "P")]
    pub changed_pct: f64,
    /// The guest's 4 KiB writes per simulated second.
    #[arg(long, value_name = "W", default_value_t = 2000)]
    pub write_iops: u32,
    /// `keep` (synchronous, one switch) or `break` (one VM at a time, SPEC §12).
    #[arg(long, value_enum, default_value_t = AcrossWay::Keep)]
    pub consistency: AcrossWay,
    /// Where to put the workspace (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON: {"bytes_shipped", "changed_bytes", "shipped_ratio",
    /// "latency_sync_p50_us", "latency_before_p50_us", "switch_gap_us", ...}.
    #[arg(long)]
    pub json: bool,
}

/// `--consistency` of `bench across`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcrossWay {
    Keep,
    Break,
}

#[derive(Debug, Args)]
pub struct BenchReprotectCli {
    /// The VM's disk in MiB.
    #[arg(long, value_name = "N")]
    pub size_mib: u64,
    /// Percentage of the 4 KiB blocks changed, half on each side (more than 0, at most 100).
    #[arg(long, value_name = "P")]
    pub changed_pct: f64,
    /// Where to put the workspace (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON: {"seconds", "bytes_shipped", "changed_bytes", "shipped_ratio",
    /// "cp_seconds", "speedup", ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchReplicateCli {
    /// Image size in MiB.
    #[arg(long, value_name = "N")]
    pub size_mib: u64,
    /// Percentage of the 4 KiB blocks changed since the last cycle (more than 0, at most 100).
    #[arg(long, value_name = "P")]
    pub changed_pct: f64,
    /// Where to put the images (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON: {"seconds", "bytes_shipped", "rsync_seconds", ...}; without rsync (not on
    /// PATH, or not where DRCONSOLE_RSYNC says) the rsync figures are null and
    /// "rsync_note" says why.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchCopyCli {
    /// Image size in MiB.
    #[arg(long, value_name = "N")]
    pub size_mib: u64,
    /// Copy mode: redirect, split or mirror.
    #[arg(long, default_value = "mirror", value_parser = parse_mode)]
    pub mode: CopyMode,
    /// Guest 4 KiB writes per second during the copy (0 = idle).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub write_iops: u32,
    /// Rounds of one `cp` and one live copy, interleaved; the figures are medians over them.
    #[arg(long, value_name = "N", default_value_t = crate::bench::DEFAULT_ROUNDS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// How the copier copies a run: kernel (copy_file_range, as cp does; falls back to
    /// buffered where the file system refuses) or buffered (pread/pwrite through a buffer).
    #[arg(long, value_name = "HOW", default_value = "kernel", value_parser = parse_copy_io)]
    pub copy_io: crate::bench::CopyIo,
    /// Where to put the images (default: the system temp directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON: {"mib_per_s", "guest_write_p50_us", "guest_write_p99_us", "cp_mib_per_s",
    /// "ratio", ...}: medians over the rounds, "ratio" the median of the rounds' ratios, with
    /// their spreads ("..._min", "..._max") and every round ("per_round").
    #[arg(long)]
    pub json: bool,
}

fn parse_copy_io(s: &str) -> Result<crate::bench::CopyIo, String> {
    crate::bench::CopyIo::parse(s)
        .ok_or_else(|| format!("{s:?} is not a way to copy: use kernel or buffered"))
}

fn parse_mode(s: &str) -> Result<CopyMode, String> {
    CopyMode::parse(s)
        .ok_or_else(|| format!("{s:?} is not a copy mode: use redirect, split or mirror"))
}

pub(super) fn bench_copy(a: &BenchCopyCli, out: &mut dyn Write) -> Result<(), CliError> {
    if a.size_mib == 0 {
        return Err(CliError("--size-mib must be at least 1".into()));
    }
    let report = crate::bench::bench_copy(&crate::bench::BenchCopyArgs {
        size_mib: a.size_mib,
        mode: a.mode,
        write_iops: a.write_iops,
        rounds: a.rounds,
        copy_io: a.copy_io,
        dir: a.dir.clone(),
    })
    .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &report);
    }
    let r = &report;
    emit(
        out,
        &format!(
            "{} MiB, {} mode, {} write IOPS, {} copy, medians of {} interleaved rounds: {:.0} MiB/s \
             ({:.0}-{:.0}), {:.2}x cp ({:.2}-{:.2}) at {:.0} MiB/s ({:.0}-{:.0}); \
             guest write p50 {:.0} us, p99 {:.0} us; consistent: {}",
            r.size_mib,
            r.mode,
            r.write_iops,
            r.copy_io,
            r.rounds,
            r.mib_per_s,
            r.mib_per_s_min,
            r.mib_per_s_max,
            r.ratio,
            r.ratio_min,
            r.ratio_max,
            r.cp_mib_per_s,
            r.cp_mib_per_s_min,
            r.cp_mib_per_s_max,
            r.guest_write_p50_us,
            r.guest_write_p99_us,
            r.consistent
        ),
    )
}

pub(super) fn bench_across(a: &BenchAcrossCli, out: &mut dyn Write) -> Result<(), CliError> {
    let r = crate::bench::bench_across(&crate::bench::BenchAcrossArgs {
        size_mib: a.size_mib,
        changed_pct: a.changed_pct,
        write_iops: a.write_iops,
        consistency: match a.consistency {
            AcrossWay::Keep => crate::engine::Consistency::Keep,
            AcrossWay::Break => crate::engine::Consistency::Break,
        },
        dir: a.dir.clone(),
    })
    .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &r);
    }
    emit(
        out,
        &format!(
            "consistency {}: {} MiB, {}% changed, {} writes/s over {} Mbit/s: shipped {} bytes for {} changed ({:.3}x) plus {} synchronous writes; guest write p50/p99 {:.1}/{:.1} µs during the move against {:.1}/{:.1} µs before ({:.2}x); switch gap {:.0} µs against a write interval of {:.0} µs; the move took {:.3} s wall ({:.2}x cp of the image), {:.2} s simulated; consistent: {}, writes lost: {}",
            r.consistency,
            r.size_mib,
            r.changed_pct,
            r.write_iops,
            r.link_mbps,
            r.bytes_shipped,
            r.changed_bytes,
            r.shipped_ratio,
            r.sync_writes,
            r.latency_sync_p50_us,
            r.latency_sync_p99_us,
            r.latency_before_p50_us,
            r.latency_before_p99_us,
            r.latency_ratio_p50,
            r.switch_gap_us,
            r.write_interval_us,
            r.seconds,
            r.cp_ratio,
            r.move_seconds_sim,
            r.consistent,
            r.writes_lost
        ),
    )
}

pub(super) fn bench_reprotect(a: &BenchReprotectCli, out: &mut dyn Write) -> Result<(), CliError> {
    let r = crate::bench::bench_reprotect(&crate::bench::BenchReprotectArgs {
        size_mib: a.size_mib,
        changed_pct: a.changed_pct,
        dir: a.dir.clone(),
    })
    .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &r);
    }
    emit(
        out,
        &format!(
            "{} MiB, {}% of blocks changed on either side ({} blocks differ, {} bytes): the reprotect and its first reverse cycle took {:.3} s and shipped {} bytes ({:.4}x the changed bytes); cp of the image took {:.3} s ({:.1}x); identical afterwards: {}",
            r.size_mib,
            r.changed_pct,
            r.changed_blocks,
            r.changed_bytes,
            r.seconds,
            r.bytes_shipped,
            r.shipped_ratio,
            r.cp_seconds,
            r.speedup,
            r.identical
        ),
    )
}

pub(super) fn bench_replicate(a: &BenchReplicateCli, out: &mut dyn Write) -> Result<(), CliError> {
    let r = crate::bench::bench_replicate(&crate::bench::BenchReplicateArgs {
        size_mib: a.size_mib,
        changed_pct: a.changed_pct,
        dir: a.dir.clone(),
    })
    .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &r);
    }
    let rsync = match (r.rsync_seconds, r.speedup, &r.rsync_note) {
        (Some(s), Some(x), _) => {
            format!("rsync --inplace --no-whole-file took {s:.3} s ({x:.1}x slower)")
        }
        (_, _, note) => note.clone().unwrap_or_default(),
    };
    emit(
        out,
        &format!(
            "{} MiB, {}% of blocks changed ({} blocks, {} bytes): one replication cycle took {:.3} s \
             and shipped {} bytes ({:.4}x the changed bytes); {rsync}; identical to the source: {}",
            r.size_mib,
            r.changed_pct,
            r.changed_blocks,
            r.changed_bytes,
            r.seconds,
            r.bytes_shipped,
            r.shipped_ratio,
            r.identical
        ),
    )
}
