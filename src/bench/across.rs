//! The cross-site move benchmark (SPEC §12): `drconsole bench across --size-mib N
//! --changed-pct P --write-iops W --json`.
//!
//! One VM with an N MiB disk in a replicated consistency group, through the engine on real
//! files. Its first point publishes; then its guest writes (W 4 KiB writes per simulated
//! second, no reads) until about P % of the disk changed since that point, and the group
//! moves to the other site. Reported, each against a baseline of the same run:
//! - the bytes the move shipped before the switch against the changed bytes it found;
//! - the guest's write latency (simulated) p50/p99 while synchronous against before;
//! - the switch pause: the longest gap between two of the guest's writes around the switch,
//!   against its write interval;
//! - the wall time of the whole move against `cp` of the image.
//!
//! Afterwards the VM must run at the other site, consistent, with no write lost.

use super::*;
use crate::engine::{
    AcrossPhase, Command as EngineCommand, Consistency, Engine, EngineOptions, MINUTE, Outcome,
    SECOND, SimTime,
};

/// What to benchmark: `bench across`.
#[derive(Debug, Clone)]
pub struct BenchAcrossArgs {
    pub size_mib: u64,
    /// Percentage of the disk changed since the last point when the move starts.
    pub changed_pct: f64,
    /// The guest's 4 KiB writes per simulated second.
    pub write_iops: u32,
    /// Keep (synchronous, one switch) or Break (one VM at a time).
    pub consistency: Consistency,
    /// Where to put the workspace (removed afterwards); default the system temp directory.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchAcrossReport {
    /// `keep` or `break`.
    pub consistency: &'static str,
    pub size_mib: u64,
    pub changed_pct: f64,
    pub write_iops: u32,
    pub link_mbps: f64,
    /// Blocks not at the destination when the move started, and their bytes.
    pub changed_blocks: u64,
    pub changed_bytes: u64,
    /// What replication shipped from the start to the switch (the catch-up cycle).
    pub bytes_shipped: u64,
    /// `bytes_shipped / changed_bytes`.
    pub shipped_ratio: f64,
    /// Writes replicated synchronously during the catch-up, and their bytes: they crossed
    /// the link one by one, on top of `bytes_shipped`.
    pub sync_writes: u64,
    pub sync_bytes: u64,
    /// Guest write latency (simulated µs) before the move and from its start to the
    /// switch (synchronous with `keep`; with `break` the record's copy-on-write shows).
    pub latency_before_p50_us: f64,
    pub latency_before_p99_us: f64,
    pub latency_sync_p50_us: f64,
    pub latency_sync_p99_us: f64,
    /// `latency_sync_p50_us / latency_before_p50_us`.
    pub latency_ratio_p50: f64,
    /// The longest gap between two guest writes around the switch (simulated µs), and the
    /// guest's write interval.
    pub switch_gap_us: f64,
    pub write_interval_us: f64,
    /// Simulated time from the start to the switch, and to success.
    pub catchup_seconds_sim: f64,
    pub move_seconds_sim: f64,
    /// Wall time of the whole move, `cp` of the image in the same run, and their ratio.
    pub seconds: f64,
    pub cp_seconds: f64,
    pub cp_ratio: f64,
    pub consistent: bool,
    pub writes_lost: u64,
}

const LINK_MBPS: f64 = 1000.0;

fn topology(size_mib: u64, write_iops: u32) -> String {
    one_vm_topology(
        "cross-site move benchmark",
        size_mib,
        LINK_MBPS,
        60,
        "bbbbbbbb-0000-4000-8000-000000000002",
        &format!("Some(Workload(write_iops: {write_iops}, read_iops: 0))"),
    )
}

fn fail(step: &str) -> impl FnOnce(crate::engine::EngineError) -> BenchError + '_ {
    move |e| BenchError::Across(format!("{step}: {e}"))
}

/// p50 and p99 of latencies in µs.
fn p50_p99(mut us: Vec<u64>) -> (f64, f64) {
    us.sort_unstable();
    let ns: Vec<u64> = us.iter().map(|u| u * 1000).collect();
    (
        copy::percentile_us(&ns, 50.0),
        copy::percentile_us(&ns, 99.0),
    )
}

pub fn bench_across(args: &BenchAcrossArgs) -> Result<BenchAcrossReport, BenchError> {
    if args.size_mib == 0 || !(args.changed_pct > 0.0 && args.changed_pct <= 100.0) {
        return Err(BenchError::Across(
            "--size-mib must be more than 0 and --changed-pct more than 0, at most 100".into(),
        ));
    }
    if args.write_iops == 0 || args.write_iops > 1_000_000 {
        return Err(BenchError::Across(
            "--write-iops must be between 1 and 1000000".into(),
        ));
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent)?;
    let topo =
        crate::topology::Topology::from_ron_str(&topology(args.size_mib, args.write_iops), "bench")
            .map_err(|e| BenchError::Across(format!("the benchmark topology: {e}")))?;
    let mut e = Engine::create(&work.root.join("ws"), &topo, EngineOptions::default())
        .map_err(fail("creating the workspace"))?;
    // The first point (the image is empty), then the guest writes about P % of the disk.
    e.advance(SECOND).map_err(fail("the first point"))?;
    e.apply(EngineCommand::StartWorkloads)
        .map_err(fail("starting the guest"))?;
    let blocks = args.size_mib * 1024 * 1024 / BLOCK_SIZE as u64;
    let want = ((blocks as f64 * args.changed_pct / 100.0).round() as u64).max(1);
    // Distinct blocks after n random writes: blocks·(1 − e^(−n/blocks)); solve for n.
    let frac = (want as f64 / blocks as f64).min(0.999);
    let writes = (-(1.0 - frac).ln() * blocks as f64).ceil();
    let run_for = (writes / f64::from(args.write_iops) * SECOND as f64).ceil() as SimTime;
    e.advance(e.now() + run_for.max(SECOND))
        .map_err(fail("the guest writing"))?;
    let start = e.now();
    let wall = Instant::now();
    match e
        .apply(EngineCommand::MigrateAcross {
            consistency: args.consistency,
            consistency_group: "cg-1".into(),
            // Breaking consistency is rated heightened-mild: the benchmark confirms it.
            confirm: !args.consistency.is_keep(),
        })
        .map_err(fail("starting the move"))?
    {
        Outcome::Done(_) => {}
        Outcome::Refused(why) => return Err(BenchError::Across(format!("refused: {why}"))),
    }
    let limit = start + 60 * MINUTE;
    loop {
        let op = e.across_ops().last().cloned().expect("the move");
        if op.phase == AcrossPhase::Succeeded {
            break;
        }
        if !op.phase.active() {
            return Err(BenchError::Across(format!(
                "the move ended: {}",
                op.message
            )));
        }
        let Some(t) = e.next_event_time().filter(|&t| t <= limit) else {
            return Err(BenchError::Across(
                "the move did not finish in an hour".into(),
            ));
        };
        e.advance(t).map_err(fail("running the move"))?;
    }
    let seconds = wall.elapsed().as_secs_f64();
    let op = e.across_ops().last().cloned().expect("the move");
    let switched = op.switched_at.unwrap_or(start);
    let ended = op.ended_at.unwrap_or(switched);
    // The engine keeps the latest latency samples: before and during the move now, then
    // the guest's writes at the destination after a little more time.
    let mut samples: Vec<(SimTime, u64)> =
        e.snapshot().latencies.iter().map(|l| (l.0, l.2)).collect();
    let seen = samples.last().map_or(0, |s| s.0);
    e.advance(e.now() + SECOND / 10)
        .map_err(fail("running on"))?;
    samples.extend(
        e.snapshot()
            .latencies
            .iter()
            .filter(|l| l.0 > seen)
            .map(|l| (l.0, l.2)),
    );
    let before: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 < start)
        .map(|s| s.1)
        .collect();
    let sync: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= start && s.0 < switched)
        .map(|s| s.1)
        .collect();
    let (b50, b99) = p50_p99(before);
    let (s50, s99) = p50_p99(sync);
    let times: Vec<SimTime> = samples.iter().map(|s| s.0).collect();
    let gap = times
        .windows(2)
        .filter(|w| w[0] <= switched && w[1] >= switched)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);
    let v = e.verify_vm("v1").map_err(fail("verifying the VM"))?;
    let at_ny = e.location("v1").is_some_and(|(ds, _)| ds == "ds-1r");
    if !at_ny || !v.consistent || v.writes_lost > 0 {
        return Err(BenchError::Across(format!(
            "after the move the VM is on {:?}, consistent: {}, {} write(s) lost",
            e.location("v1"),
            v.consistent,
            v.writes_lost
        )));
    }
    let image = e
        .workspace()
        .root()
        .join("sites/ny/datastores/ds-1r/v1/disk0.img");
    let (cp_seconds, _) = run_cp(&image, &work.dst.join("cp.img"))?;
    e.close().map_err(fail("closing the workspace"))?;
    let changed_bytes = op.changed_blocks * BLOCK_SIZE as u64;
    Ok(BenchAcrossReport {
        consistency: args.consistency.as_str(),
        size_mib: args.size_mib,
        changed_pct: args.changed_pct,
        write_iops: args.write_iops,
        link_mbps: LINK_MBPS,
        changed_blocks: op.changed_blocks,
        changed_bytes,
        bytes_shipped: op.catchup_bytes,
        shipped_ratio: op.catchup_bytes as f64 / changed_bytes.max(1) as f64,
        sync_writes: op.sync_writes,
        sync_bytes: op.sync_writes * BLOCK_SIZE as u64,
        latency_before_p50_us: b50,
        latency_before_p99_us: b99,
        latency_sync_p50_us: s50,
        latency_sync_p99_us: s99,
        latency_ratio_p50: s50 / b50.max(1e-9),
        switch_gap_us: gap as f64,
        write_interval_us: SECOND as f64 / f64::from(args.write_iops),
        catchup_seconds_sim: (switched - start) as f64 / SECOND as f64,
        move_seconds_sim: (ended - start) as f64 / SECOND as f64,
        seconds,
        cp_seconds,
        cp_ratio: seconds / cp_seconds.max(1e-9),
        consistent: v.consistent,
        writes_lost: v.writes_lost,
    })
}
