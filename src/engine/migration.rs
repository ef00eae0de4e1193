//! One storage migration's persistent record and its disk-side I/O: the copy core plus
//! the two images, the write-ahead bitmap file and the mirror queue.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SimTime;
use super::copy::{CopyCore, CopyMode, Direction};
use crate::disk::{BLOCK_SIZE, Block, BlockRead, ImageFile};

/// Where a migration is in its life (SPEC §5 steps; cloud-hypervisor's phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The record exists; the target instance and the marks may be half made.
    Preparing,
    /// The disk is being copied while the guest runs.
    Copying,
    /// The copy is complete; marks, switch and source deletion are being done.
    Completing,
    /// Rolling back: blocks newer on the destination go back to the source.
    Cancelling,
    /// A roll-back hit an I/O error (`MigrationRecord::error`) and stopped: blocks whose bit
    /// is set exist only on the destination, so both instances and the bitmap stay and the
    /// guest's I/O keeps going through the bitmap. Retried on command and on reopen.
    RollbackFailed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Copying => "copying",
            Phase::Completing => "completing",
            Phase::Cancelling => "cancelling",
            Phase::RollbackFailed => "roll-back failed",
        }
    }
}

/// What is persisted in `state/migrations/<id>.ron` (atomically replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub id: String,
    pub vm: String,
    pub from: String,
    pub to: String,
    pub source_instance: String,
    pub target_instance: String,
    pub mode: CopyMode,
    pub phase: Phase,
    /// Copied blocks below this (a lower bound of the real cursor after a crash).
    pub cursor: u64,
    pub blocks: u64,
    pub started_at: SimTime,
    /// Whether an override was needed and given.
    pub rating: String,
    /// The group migration that started it (`group.rs`): a reopen rolls back a member whose
    /// group operation was never saved (a crash while the group was starting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
    /// Why the roll-back stopped (phase `RollbackFailed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A migration in memory.
pub struct Migration {
    pub rec: MigrationRecord,
    pub core: CopyCore,
    pub src: ImageFile,
    pub dst: ImageFile,
    pub src_dir: PathBuf,
    pub dst_dir: PathBuf,
    /// Write-ahead copy of the bitmap: a bit is written here before the data it covers.
    bitmap_file: File,
    /// Mirrored writes not yet landed on the destination: (lands at, block, seq).
    pub mirror_pending: VecDeque<(SimTime, u64, u64)>,
    /// When the destination device is next free (copy runs and mirrored writes queue).
    pub dst_busy_until: SimTime,
    /// When the run in flight ends.
    pub run_ends_at: Option<SimTime>,
    /// Bytes actually copied (forward or back), for throughput figures.
    pub bytes_copied: u64,
    /// Cursor value last written to the record.
    persisted_cursor: u64,
    /// Test fault point: copy I/O fails as a dead disk's would.
    #[cfg(test)]
    pub fail_copy_io: bool,
}

/// Persist the cursor after this many blocks of progress (64 MiB): a lower cursor after a
/// crash only means re-copying, never losing data.
const CURSOR_PERSIST_BLOCKS: u64 = 64 * 1024 * 1024 / BLOCK_SIZE as u64;

impl Migration {
    pub fn new(
        rec: MigrationRecord,
        core: CopyCore,
        src_dir: PathBuf,
        dst_dir: PathBuf,
        bitmap_path: &Path,
    ) -> std::io::Result<Migration> {
        let src = ImageFile::open(&src_dir.join("disk0.img"))
            .map_err(std::io::Error::other)?
            .without_readahead();
        let dst = ImageFile::open(&dst_dir.join("disk0.img"))
            .map_err(std::io::Error::other)?
            .without_readahead();
        let bitmap_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(bitmap_path)?;
        bitmap_file.set_len(core.blocks.div_ceil(8))?;
        let persisted_cursor = rec.cursor;
        Ok(Migration {
            rec,
            core,
            src,
            dst,
            src_dir,
            dst_dir,
            bitmap_file,
            mirror_pending: VecDeque::new(),
            dst_busy_until: 0,
            run_ends_at: None,
            bytes_copied: 0,
            persisted_cursor,
            #[cfg(test)]
            fail_copy_io: false,
        })
    }

    /// Writes the byte holding bit `block` to the bitmap file (before the data lands).
    pub fn persist_bit(&self, block: u64) -> std::io::Result<()> {
        let (index, byte) = self.core.bits.byte_of(block);
        self.bitmap_file.write_all_at(&[byte], index)
    }

    /// Writes the whole bitmap (after a roll-back run cleared bits).
    pub fn persist_bitmap(&self) -> std::io::Result<()> {
        self.bitmap_file.write_all_at(&self.core.bits.to_bytes(), 0)
    }

    /// Reads the bitmap file (crash recovery).
    pub fn load_bitmap(path: &Path, blocks: u64) -> std::io::Result<super::copy::Bitmap> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(super::copy::Bitmap::from_bytes(&bytes, blocks))
    }

    /// Whether the record's cursor lags enough to be worth rewriting.
    pub fn cursor_needs_persist(&self) -> bool {
        self.core.cursor >= self.persisted_cursor + CURSOR_PERSIST_BLOCKS
    }

    pub fn mark_cursor_persisted(&mut self) {
        self.persisted_cursor = self.core.cursor;
        self.rec.cursor = self.core.cursor;
    }

    /// Copies `pieces` (block ranges) from one image to the other in runs of large I/Os.
    /// The fault point stands for the run's I/O: a crash test kills the process there, and
    /// `fault::fail_next` makes it fail once as a disk's transient error would.
    pub fn copy_pieces(&mut self, pieces: &[std::ops::Range<u64>]) -> std::io::Result<u64> {
        #[cfg(test)]
        if self.fail_copy_io {
            return Err(std::io::Error::other("injected I/O error"));
        }
        crate::fault::point("copy.run-io")?;
        let (from, to) = match self.core.direction {
            Direction::Forward => (&self.src, &self.dst),
            Direction::Back => (&self.dst, &self.src),
        };
        let mut buf = Vec::new();
        let mut bytes = 0;
        for p in pieces {
            let len = ((p.end - p.start) as usize) * BLOCK_SIZE;
            buf.resize(len, 0);
            let off = p.start * BLOCK_SIZE as u64;
            from.read_at(off, &mut buf)?;
            to.write_at(off, &buf)?;
            bytes += len as u64;
        }
        self.bytes_copied += bytes;
        Ok(bytes)
    }

    /// Reads the newest data of `block` (the guest's view; a run in flight has not landed).
    pub fn read_routed(&self, block: u64, buf: &mut Block) -> std::io::Result<()> {
        match self.core.location(block) {
            super::copy::ReadRoute::Destination => self.dst.read_block_at(block, buf),
            _ => self.src.read_block_at(block, buf),
        }
    }

    pub fn mode(&self) -> CopyMode {
        self.rec.mode
    }
}

/// A migrating disk as its guest sees it, for the verifier.
pub struct RoutedReader<'a> {
    pub migration: &'a Migration,
}

impl BlockRead for RoutedReader<'_> {
    fn block_count(&self) -> u64 {
        self.migration.core.blocks
    }
    fn read_block(&mut self, index: u64, buf: &mut Block) -> std::io::Result<()> {
        self.migration.read_routed(index, buf)
    }
}
