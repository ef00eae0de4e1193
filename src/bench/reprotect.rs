//! The reprotect benchmark: `drconsole bench reprotect --size-mib N --changed-pct P --json`.
//!
//! One VM with an N MiB disk, fully written, in a replicated consistency group, through
//! the engine on real files: the initial full copy publishes; then half of P % of the
//! blocks change at the protected site after that point (the writes a disaster loses), the
//! site is lost, the VM fails over (unplanned), the other half of the changed blocks are
//! written at the recovery site, the site returns and the PG is reprotected. Timed: the
//! reprotect and its first reverse cycle, cut to publish (the transfer is simulated time,
//! so what is timed is the engine's work: comparing the two images, staging the delta,
//! applying it). Reported against the blocks that really differ and against `cp` of the
//! running image in the same run; afterwards the old image must equal the running one
//! byte for byte. The changes are written into the images directly (stamped as a guest
//! would, without the journal: no guest runs, so nothing else writes).

use super::*;
use crate::engine::{Command as EngineCommand, Engine, EngineOptions, FailoverKind, SECOND};

/// Seed of the changed blocks.
const REPROTECT_SEED: u64 = 0x5EED_0000_0000_0003;

/// What to benchmark: `bench reprotect`.
#[derive(Debug, Clone)]
pub struct BenchReprotectArgs {
    pub size_mib: u64,
    /// Percentage of the blocks changed, half on each side: more than 0, at most 100.
    pub changed_pct: f64,
    /// Where to put the workspace (removed afterwards); default the system temp directory.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReprotectReport {
    /// Wall time of the reprotect and its first reverse cycle, cut to publish.
    pub seconds: f64,
    /// What the first reverse cycle shipped (its published point's bytes).
    pub bytes_shipped: u64,
    /// Blocks that differed between the running image and the old one at reprotect.
    pub changed_blocks: u64,
    pub changed_bytes: u64,
    /// `bytes_shipped / changed_bytes`.
    pub shipped_ratio: f64,
    /// Wall time of `cp` of the running image, process included, in the same run.
    pub cp_seconds: f64,
    /// `cp_seconds / seconds`.
    pub speedup: f64,
    pub size_mib: u64,
    pub changed_pct: f64,
    /// The old image equalled the running one byte for byte after the cycle.
    pub identical: bool,
}

fn topology(size_mib: u64) -> String {
    one_vm_topology(
        "reprotect benchmark",
        size_mib,
        10000.0,
        15,
        "bbbbbbbb-0000-4000-8000-000000000001",
        "None",
    )
}

fn step_err(step: &'static str) -> impl FnOnce(crate::engine::EngineError) -> BenchError {
    move |e| BenchError::Reprotect(format!("{step}: {e}"))
}

/// The VM's image as the engine has it now.
fn image_of(e: &Engine) -> Result<PathBuf, BenchError> {
    let (ds, inst) = e
        .location("v1")
        .ok_or_else(|| BenchError::Reprotect("the benchmark VM is gone".into()))?;
    let site = e
        .topology()
        .datastore(&ds)
        .map(|d| d.site.clone())
        .unwrap_or_default();
    Ok(e.workspace()
        .root()
        .join(format!("sites/{site}/datastores/{ds}/{inst}/disk0.img")))
}

/// Stamps `blocks` of the image at `path` with `seq`, and fsyncs it.
fn stamp(path: &Path, blocks: &[u64], seq: u64) -> Result<(), BenchError> {
    let img = ImageFile::open(path).map_err(disk_err("opening the image to change it"))?;
    let mut buf: Block = [0; BLOCK_SIZE];
    for &b in blocks {
        disk::stamp_block(&BENCH_UUID, b, seq, &mut buf);
        img.write_block(b, &buf)
            .map_err(io_err("changing the image", path))?;
    }
    img.sync().map_err(io_err("syncing the image", path))
}

/// Runs the engine until the group has published a point cut at or after `after`.
fn until_published(e: &mut Engine, after: u64) -> Result<u64, BenchError> {
    for _ in 0..100_000 {
        let snap = e.snapshot();
        if let Some(g) = snap.groups.first()
            && g.transfer.is_none()
            && g.last_cut_at.is_some_and(|t| t >= after)
        {
            return Ok(g.last_cycle_bytes);
        }
        e.advance(e.now() + SECOND)
            .map_err(step_err("running the engine"))?;
    }
    Err(BenchError::Reprotect(
        "the replication group never published".into(),
    ))
}

pub fn bench_reprotect(args: &BenchReprotectArgs) -> Result<BenchReprotectReport, BenchError> {
    let blocks = super::replicate::image_blocks(&BenchReplicateArgs {
        size_mib: args.size_mib,
        changed_pct: args.changed_pct,
        dir: None,
    })
    .map_err(|e| match e {
        BenchError::Replicate(m) => BenchError::Reprotect(m),
        e => e,
    })?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent)?;
    let topo = crate::topology::Topology::from_ron_str(&topology(args.size_mib), "bench")
        .map_err(|e| BenchError::Reprotect(format!("the benchmark topology: {e}")))?;
    let mut e = Engine::create(&work.root.join("ws"), &topo, EngineOptions::default())
        .map_err(step_err("creating the workspace"))?;
    // The initial full copy of a fully written image.
    let first = image_of(&e)?;
    fill_stamped(
        &ImageFile::open(&first).map_err(disk_err("opening the image to fill it"))?,
        &BENCH_UUID,
        FILL_SEQ,
    )?;
    until_published(&mut e, 0)?;

    let count = ((blocks as f64 * args.changed_pct / 100.0).round() as u64).clamp(2, blocks);
    let changed = super::replicate::distinct_blocks(blocks, count, REPROTECT_SEED);
    let (at_pa, at_ny) = changed.split_at(changed.len() / 2);
    stamp(&first, at_pa, FILL_SEQ + 1)?;
    let apply = |e: &mut Engine, c: EngineCommand| -> Result<(), BenchError> {
        let what = c.to_string();
        match e.apply(c) {
            Ok(crate::engine::Outcome::Done(_)) => Ok(()),
            Ok(crate::engine::Outcome::Refused(why)) => {
                Err(BenchError::Reprotect(format!("{what}: refused: {why}")))
            }
            Err(err) => Err(BenchError::Reprotect(format!("{what}: {err}"))),
        }
    };
    apply(&mut e, EngineCommand::Disaster { site: "pa".into() })?;
    apply(
        &mut e,
        EngineCommand::Failover {
            protection_groups: vec!["pg-1".into()],
            kind: FailoverKind::Unplanned,
            point: None,
        },
    )?;
    let running = image_of(&e)?;
    stamp(&running, at_ny, FILL_SEQ + 2)?;
    apply(&mut e, EngineCommand::SiteUp { site: "pa".into() })?;
    let differing = {
        let a = ImageFile::open_read_only(&running).map_err(disk_err("opening an image"))?;
        let b = ImageFile::open_read_only(&first).map_err(disk_err("opening an image"))?;
        crate::replica::differing_blocks(&a, &b).map_err(|source| BenchError::Replica {
            step: "comparing the two sides",
            source,
        })?
    };

    let start = Instant::now();
    let at = e.now();
    apply(
        &mut e,
        EngineCommand::Reprotect {
            protection_groups: vec!["pg-1".into()],
        },
    )?;
    let bytes_shipped = until_published(&mut e, at)?;
    let seconds = start.elapsed().as_secs_f64();

    let identical = fs::read(&running).map_err(io_err("reading the image", &running))?
        == fs::read(&first).map_err(io_err("reading the image", &first))?;
    if !identical {
        // A benchmark of a wrong result is worthless.
        return Err(BenchError::Reprotect(format!(
            "after the reprotect's first cycle {} differs from the running {}",
            first.display(),
            running.display()
        )));
    }
    let (cp_seconds, _) = run_cp(&running, &work.dst.join("cp.img"))?;
    e.close().map_err(step_err("closing the workspace"))?;
    let changed_blocks = differing.len() as u64;
    let changed_bytes = changed_blocks * BLOCK_SIZE as u64;
    Ok(BenchReprotectReport {
        seconds,
        bytes_shipped,
        changed_blocks,
        changed_bytes,
        shipped_ratio: bytes_shipped as f64 / changed_bytes.max(1) as f64,
        cp_seconds,
        speedup: cp_seconds / seconds.max(1e-9),
        size_mib: args.size_mib,
        changed_pct: args.changed_pct,
        identical,
    })
}
