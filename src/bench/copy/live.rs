//! The live copy: copier, guest and mirror threads around the engine's [`CopyCore`].

use super::*;

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

impl<'a> Live<'a> {
    /// The shared state of a live copy from `src` to `dst` of `blocks` blocks.
    fn new(
        src: &'a ImageFile,
        dst: &'a ImageFile,
        mode: CopyMode,
        blocks: u64,
        tuning: &Tuning,
    ) -> Live<'a> {
        Live {
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
        }
    }

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
pub(super) struct LiveResult {
    pub(super) seconds: f64,
    /// The guest's writes, in order: (seq, block).
    pub(super) journal: Vec<(u64, u64)>,
    /// How many of `journal` were written before the switch (the rest went to the
    /// destination after it).
    pub(super) before_switch: usize,
    pub(super) latencies_ns: Vec<u64>,
    pub(super) waits: u64,
    /// How the copier copied (`Buffered` also when the kernel refused).
    pub(super) copy_io: CopyIo,
    /// CPU time of the copier thread.
    pub(super) copier_cpu_seconds: f64,
}

/// What the guest thread hands back.
#[derive(Default)]
struct GuestLog {
    journal: Vec<(u64, u64)>,
    before_switch: usize,
    latencies_ns: Vec<u64>,
    waits: u64,
}

pub(super) fn live_copy(
    src: &ImageFile,
    dst: &ImageFile,
    mode: CopyMode,
    write_iops: u32,
    blocks: u64,
    copy_io: CopyIo,
    tuning: &Tuning,
) -> Result<LiveResult, BenchError> {
    let live = Live::new(src, dst, mode, blocks, tuning);
    let guest_runs = write_iops > 0;
    let start_line = Barrier::new(if guest_runs { 2 } else { 1 });
    let ((started, copy_io, copier_cpu_seconds), guest) = thread::scope(|s| {
        let copier = s.spawn(|| {
            let _guard = PanicGuard {
                live: &live,
                thread: "copier",
            };
            copier_thread(&live, tuning, copy_io, &start_line)
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

/// The copier thread, after its panic guard: opens what `copy_io` needs (untimed), waits at
/// the start line, copies; returns when it started, the I/O it used and its CPU seconds.
fn copier_thread(
    live: &Live<'_>,
    tuning: &Tuning,
    copy_io: CopyIo,
    start_line: &Barrier,
) -> (Instant, CopyIo, f64) {
    // Untimed: the descriptors `copy_file_range` needs.
    let files = match copy_io {
        CopyIo::Kernel => kernel_copy_files(live.src, live.dst).map(Some),
        CopyIo::Buffered => Ok(None),
    };
    start_line.wait();
    let started = Instant::now();
    let cpu = cpu_seconds(libc::RUSAGE_THREAD);
    let used = match files {
        Ok(files) => copier(live, tuning, files.as_ref()),
        Err(e) => {
            live.fail(e);
            copy_io
        }
    };
    (started, used, cpu_seconds(libc::RUSAGE_THREAD) - cpu)
}

/// The source opened for reading and the destination for writing, for `copy_file_range`
/// (an [`ImageFile`] keeps its descriptor to itself).
pub(crate) fn kernel_copy_files(
    src: &ImageFile,
    dst: &ImageFile,
) -> Result<(fs::File, fs::File), BenchError> {
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
pub(crate) fn copy_pieces_in_kernel(
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

/// Sleeps until `next` in steps of at most 5 ms; false if the copy finished meanwhile.
fn wait_until(live: &Live<'_>, next: Instant) -> bool {
    loop {
        if live.finished.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= next {
            return true;
        }
        thread::sleep((next - now).min(Duration::from_millis(5)));
    }
}

/// Routes the guest's write `seq` to `block` under the lock, waiting while it must (and
/// setting `waited`): the image to write it to, and whether it is pending (before the
/// switch). None after an error.
fn route_guest_write<'a>(
    live: &Live<'a>,
    block: u64,
    seq: u64,
    waited: &mut bool,
) -> Option<(&'a ImageFile, bool)> {
    let mut st = live.lock();
    loop {
        if st.error.is_some() {
            return None;
        }
        if st.switched_at.is_some() {
            // The VM runs on the destination now.
            break Some((live.dst, false));
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
                && crate::engine::copy::mirror_must_wait(st.mirror_pending, MIRROR_MAX_PENDING))
                || st.core.done());
        let route = if hold {
            WriteRoute::Wait
        } else {
            st.core.route_write(block)
        };
        let image = match route {
            WriteRoute::Wait => {
                *waited = true;
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
        break Some((image, true));
    }
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
        if !wait_until(live, next) {
            return log;
        }
        next += interval;
        let issued = Instant::now();
        let block = splitmix(&mut rng) % blocks;
        let mut waited = false;
        let Some((image, pending)) = route_guest_write(live, block, seq, &mut waited) else {
            return log;
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
