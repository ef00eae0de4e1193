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

mod across;
mod copy;
mod replicate;
mod reprotect;
mod shared;

pub use across::*;
pub use copy::*;
pub use replicate::*;
pub use reprotect::*;
use shared::*;

#[cfg(test)]
mod tests;

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
    #[error("bench reprotect: {0}")]
    Reprotect(String),
    #[error("bench across: {0}")]
    Across(String),
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
