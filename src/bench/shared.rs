//! What both benchmarks use: the work directory, the source image, timing `cp`/`rsync`.

use super::*;

/// A fresh directory with `src/` and `dst/`, removed with everything in it when dropped.
pub(super) struct WorkDir {
    pub(super) root: PathBuf,
    pub(super) src: PathBuf,
    pub(super) dst: PathBuf,
}

impl WorkDir {
    pub(super) fn create(parent: &Path) -> Result<WorkDir, BenchError> {
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
pub(super) fn make_source(
    path: &Path,
    blocks: u64,
    uuid: &RawUuid,
) -> Result<ImageFile, BenchError> {
    let img = ImageFile::create(path, blocks).map_err(disk_err("creating the source image"))?;
    fill_stamped(&img, uuid, FILL_SEQ)?;
    Ok(img)
}

/// Stamps every block of `img` for `uuid` with `seq`, in large writes, and fsyncs it.
pub(super) fn fill_stamped(img: &ImageFile, uuid: &RawUuid, seq: u64) -> Result<(), BenchError> {
    let path = img.path();
    let blocks = img.block_count();
    let chunk_blocks = (FILL_CHUNK_BYTES / BLOCK_SIZE) as u64;
    let mut buf = vec![0u8; FILL_CHUNK_BYTES];
    let mut first = 0;
    while first < blocks {
        let n = chunk_blocks.min(blocks - first);
        let bytes = &mut buf[..n as usize * BLOCK_SIZE];
        let (stamps, _) = bytes.as_chunks_mut::<BLOCK_SIZE>();
        for (b, stamp) in (first..).zip(stamps.iter_mut()) {
            disk::stamp_block(uuid, b, seq, stamp);
        }
        img.write_at(first * BLOCK_SIZE as u64, bytes)
            .map_err(io_err("writing the source image", path))?;
        first += n;
    }
    img.sync().map_err(io_err("syncing the source image", path))
}

/// Gives every block the guest wrote its fill stamp back, and fsyncs the source: each round
/// starts from the same clean, fully stamped image (in redirect and split modes some of
/// the round's writes went to the destination only, now deleted).
pub(super) fn restore_source(
    src: &ImageFile,
    guest_journal: &[(u64, u64)],
) -> Result<(), BenchError> {
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
pub(super) fn run_cp(from: &Path, to: &Path) -> Result<(f64, f64), BenchError> {
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
pub(super) fn cpu_seconds(who: libc::c_int) -> f64 {
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
pub(super) fn time_command(cmd: &mut Command) -> Result<f64, String> {
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

/// splitmix64: the guest's seeded block choice.
pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The benchmarks' two-site topology: one VM `v1` (uuid `uuid`) with an N MiB disk on ds-1,
/// replicated in cg-1 (pg-1) to ds-1r over a link of `mbps`, with `workload` (a RON
/// `Workload(..)` or `None`).
pub(super) fn one_vm_topology(
    name: &str,
    size_mib: u64,
    mbps: f64,
    rpo_minutes: u32,
    uuid: &str,
    workload: &str,
) -> String {
    let gib = size_mib.div_ceil(1024) + 1;
    format!(
        r#"Topology(
    name: "{name}",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: {mbps})],
    hosts: [Host(id: "h", site: "pa", cpus: 8, memory_gib: 32),
            Host(id: "r", site: "ny", cpus: 8, memory_gib: 32)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: {gib}, replication: Some(LunReplication(target: "l1r", rpo_minutes: {rpo_minutes}, consistency_group: Some("cg-1")))),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: {gib})]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"]),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-1", name: "PG", datastores: ["ds-1"])],
    vms: [
        Vm(id: "v1", uuid: "{uuid}", host: "h", datastore: "ds-1",
           disk_mib: {size_mib}, vcpus: 2, memory_gib: 4, priority: 1, workload: {workload}),
    ],
)"#
    )
}
