//! The replication data path (SPEC §6): delta files of changed blocks, written at a cut and
//! applied to the replica images at publish.
//!
//! At a cycle's cut the engine takes the changed blocks of each source image from its
//! [`DirtyTracker`](crate::disk::DirtyTracker) and [`write_delta`] copies them into a staging
//! *delta file* at the recovery site; at publish [`apply_delta`] writes each delta into its
//! replica image. A delta is fully validated before the image is touched, so a damaged or
//! half-written delta never reaches a replica; applying a delta twice gives the same image,
//! so a crash in mid-apply is rolled forward by applying it again. The initial full copy
//! ships the [`nonzero_blocks`] of an image into a replica created sparse; after a crash that
//! lost the tracking, [`differing_blocks`] against the last published replica rebuilds it.
//!
//! # Delta file format (version 1)
//!
//! Little-endian throughout:
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic, ASCII `DRCDELTA` |
//! | 4 | u32 format version, 1 |
//! | 8 | u64 block count of the image the delta belongs to |
//! | 8 | u64 number of runs |
//! | per run: 8 | u64 first block of the run |
//! | per run: 8 | u64 number of blocks in the run (at least 1) |
//! | per run: 4096 × count | the run's blocks |
//! | 4 | CRC-32 (IEEE, as zlib's `crc32`) of every byte before it |
//!
//! Runs are ascending and do not overlap, and lie inside the image. Writers put at most
//! [`RUN_MAX_BLOCKS`] blocks in one run (one read of at most 256 KiB each); readers accept
//! longer runs. The overhead is 32 bytes per delta and 16 bytes per run: a 1 % random
//! change of a 1 GiB image (about 2621 mostly isolated blocks) ships about 1.004× the
//! changed bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::disk::{BLOCK_SIZE, DiskError, ImageFile};
use crate::fsutil::Barrier;

/// The first 8 bytes of every delta file.
pub const DELTA_MAGIC: &[u8; 8] = b"DRCDELTA";
/// The delta format version this module writes and reads.
pub const DELTA_VERSION: u32 = 1;
/// Largest single read or write (see `bench::IO_BYTES` for why not larger).
const IO_BYTES: usize = 256 << 10;
/// Most blocks [`write_delta`] puts in one run: one positional read each.
pub const RUN_MAX_BLOCKS: u64 = (IO_BYTES / BLOCK_SIZE) as u64;
/// Magic, version, block count, run count.
const HEADER_BYTES: u64 = 8 + 4 + 8 + 8;
/// The size of a delta of no blocks: what a cycle counts as shipped for a new image that
/// holds no data yet, which it creates at the replica without a delta file.
pub const EMPTY_DELTA_BYTES: u64 = HEADER_BYTES + CRC_BYTES;
/// First block and block count.
const RUN_HEADER_BYTES: u64 = 16;
const CRC_BYTES: u64 = 4;
/// Bytes gathered before each write of the delta file.
const OUT_BYTES: usize = 1 << 20;

/// Why a delta could not be written or applied, or images not compared. Every variant names
/// the file and the rule broken or the OS error.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: String,
        /// What was being done ("reading the source image", ...).
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Opening or creating an image failed (the message names the image).
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// The block list given to [`write_delta`] breaks a rule.
    #[error("{path}: cannot write a delta of these blocks: {rule}")]
    BlockList { path: String, rule: String },
    #[error(
        "cannot compare {a} ({a_blocks} blocks) with {b} ({b_blocks} blocks): the images differ in size"
    )]
    SizeMismatch {
        a: String,
        a_blocks: u64,
        b: String,
        b_blocks: u64,
    },
    /// The delta file is not a valid delta for this image; nothing was written.
    #[error("{path}: not a valid delta: {rule}")]
    BadDelta { path: String, rule: String },
    #[error("{path}: the replica image has {found} blocks but the delta is for {expected} blocks")]
    ImageSize {
        path: String,
        found: u64,
        expected: u64,
    },
}

/// What a delta holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeltaStats {
    /// Blocks in the delta.
    pub blocks: u64,
    /// The delta file's size: the bytes shipped.
    pub bytes: u64,
}

fn io_err<'p>(path: &'p Path, op: &'static str) -> impl FnOnce(io::Error) -> ReplicaError + 'p {
    move |source| ReplicaError::Io {
        path: path.display().to_string(),
        op,
        source,
    }
}

fn bad(path: &Path, rule: String) -> ReplicaError {
    ReplicaError::BadDelta {
        path: path.display().to_string(),
        rule,
    }
}

/// Splits an ascending, duplicate-free block list into runs of adjacent blocks of at most
/// [`RUN_MAX_BLOCKS`]; an error names the first block that breaks the rules.
fn runs_of(src: &ImageFile, blocks: &[u64]) -> Result<Vec<(u64, u64)>, ReplicaError> {
    let fail = |rule: String| ReplicaError::BlockList {
        path: src.path().display().to_string(),
        rule,
    };
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut prev: Option<u64> = None;
    for (i, &b) in blocks.iter().enumerate() {
        if b >= src.block_count() {
            return Err(fail(format!(
                "block {b} (entry {i}) is outside the image ({} blocks)",
                src.block_count()
            )));
        }
        if let Some(p) = prev
            && b <= p
        {
            return Err(fail(format!(
                "block {b} (entry {i}) follows block {p}: blocks must be ascending and distinct"
            )));
        }
        prev = Some(b);
        match runs.last_mut() {
            Some((first, count)) if *first + *count == b && *count < RUN_MAX_BLOCKS => *count += 1,
            _ => runs.push((b, 1)),
        }
    }
    Ok(runs)
}

/// The delta file being written: bytes gathered in a buffer, CRC'd as they are written.
struct DeltaOut<'p> {
    file: File,
    path: &'p Path,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    written: u64,
}

impl DeltaOut<'_> {
    fn flush(&mut self) -> Result<(), ReplicaError> {
        self.crc.update(&self.buf);
        self.file
            .write_all(&self.buf)
            .map_err(io_err(self.path, "writing the delta"))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a run: its header, then its blocks read straight from `src` into the buffer.
    fn put_run(&mut self, src: &ImageFile, first: u64, count: u64) -> Result<(), ReplicaError> {
        self.put(&first.to_le_bytes());
        self.put(&count.to_le_bytes());
        let at = self.buf.len();
        self.buf.resize(at + count as usize * BLOCK_SIZE, 0);
        src.read_at(first * BLOCK_SIZE as u64, &mut self.buf[at..])
            .map_err(io_err(src.path(), "reading the source image"))?;
        if self.buf.len() >= OUT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the CRC; returns the file's size.
    fn finish(mut self) -> Result<u64, ReplicaError> {
        self.flush()?;
        let crc = self.crc.clone().finalize();
        self.file
            .write_all(&crc.to_le_bytes())
            .map_err(io_err(self.path, "writing the delta"))?;
        Ok(self.written + CRC_BYTES)
    }
}

/// Writes the listed blocks (ascending, deduplicated; error otherwise) of `src` to a new
/// delta file at `path` (replacing any file there), recorded in `barrier`: the caller makes
/// it durable before it commits to the delta. Adjacent blocks are coalesced into runs, and
/// each run is read with one positional read of at most 256 KiB. On error the partial delta
/// is removed.
pub fn write_delta(
    src: &ImageFile,
    blocks: &[u64],
    path: &Path,
    barrier: &mut Barrier,
) -> Result<DeltaStats, ReplicaError> {
    let runs = runs_of(src, blocks)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err(path, "creating the delta"))?;
    let mut out = DeltaOut {
        file,
        path,
        buf: Vec::with_capacity(OUT_BYTES + IO_BYTES + RUN_HEADER_BYTES as usize),
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    let result = (|| {
        out.put(DELTA_MAGIC);
        out.put(&DELTA_VERSION.to_le_bytes());
        out.put(&src.block_count().to_le_bytes());
        out.put(&(runs.len() as u64).to_le_bytes());
        for &(first, count) in &runs {
            out.put_run(src, first, count)?;
        }
        out.finish()
    })();
    match result {
        Ok(bytes) => {
            barrier.file(path);
            Ok(DeltaStats {
                blocks: blocks.len() as u64,
                bytes,
            })
        }
        Err(e) => {
            // Best effort: a partial delta is invalid anyway (its CRC is missing).
            let _ = std::fs::remove_file(path);
            Err(e)
        }
    }
}

/// Reads a delta from start to end, checking every rule, and hands each run's blocks to
/// `on_data` in pieces of at most [`IO_BYTES`] as (first block of the piece, bytes). The CRC
/// is checked at the end, so a caller that must not act on a bad delta walks it twice.
fn walk_delta(
    path: &Path,
    blocks: u64,
    mut on_data: impl FnMut(u64, &[u8]) -> Result<(), ReplicaError>,
) -> Result<DeltaStats, ReplicaError> {
    let file = File::open(path).map_err(io_err(path, "opening the delta"))?;
    let len = file
        .metadata()
        .map_err(io_err(path, "reading the delta's size"))?
        .len();
    let mut r = DeltaIn {
        reader: BufReader::with_capacity(IO_BYTES, file),
        path,
        crc: crc32fast::Hasher::new(),
        pos: 0,
    };
    let runs = read_header(&mut r, len, blocks)?;
    let body_end = len - CRC_BYTES;
    let total = read_runs(&mut r, len, blocks, runs, &mut on_data)?;
    check_tail(&mut r, body_end)?;
    Ok(DeltaStats {
        blocks: total,
        bytes: len,
    })
}

/// Reads and checks a delta's header (magic, version, image size) up to its run count,
/// which it returns. `len` is the delta's size in bytes.
fn read_header(r: &mut DeltaIn<'_>, len: u64, blocks: u64) -> Result<u64, ReplicaError> {
    let path = r.path;
    if len < DELTA_MAGIC.len() as u64 {
        return Err(bad(path, format!("{len} bytes is too short for a delta")));
    }
    let mut magic = [0u8; 8];
    r.read(&mut magic)?;
    if &magic != DELTA_MAGIC {
        return Err(bad(
            path,
            format!(
                "magic {:?} is not \"DRCDELTA\"",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    if len < HEADER_BYTES + CRC_BYTES {
        return Err(bad(
            path,
            format!(
                "truncated: {len} bytes is shorter than a header and CRC ({} bytes)",
                HEADER_BYTES + CRC_BYTES
            ),
        ));
    }
    let version = r.u32()?;
    if version != DELTA_VERSION {
        return Err(bad(
            path,
            format!("version {version} is not supported (only {DELTA_VERSION})"),
        ));
    }
    let image_blocks = r.u64()?;
    if image_blocks != blocks {
        return Err(bad(
            path,
            format!(
                "it is for an image of {image_blocks} blocks, but the replica has {blocks} blocks"
            ),
        ));
    }
    r.u64()
}

/// Reads the delta's `runs` runs, checking each lies in the image after the previous one,
/// and hands their blocks to `on_data` in pieces; returns the blocks read.
fn read_runs(
    r: &mut DeltaIn<'_>,
    len: u64,
    blocks: u64,
    runs: u64,
    on_data: &mut impl FnMut(u64, &[u8]) -> Result<(), ReplicaError>,
) -> Result<u64, ReplicaError> {
    let path = r.path;
    let body_end = len - CRC_BYTES;
    let mut next_free = 0u64; // the lowest block the next run may start at
    let mut total = 0u64;
    let mut piece = vec![0u8; IO_BYTES];
    for i in 0..runs {
        if r.pos + RUN_HEADER_BYTES > body_end {
            return Err(bad(
                path,
                format!("truncated: {len} bytes ends inside the header of run {i} of {runs}"),
            ));
        }
        let first = r.u64()?;
        let count = r.u64()?;
        let end = first.checked_add(count).filter(|&e| e <= blocks);
        let Some(end) = end.filter(|_| count > 0) else {
            return Err(bad(
                path,
                format!(
                    "run {i} ({count} blocks from block {first}) is empty or outside the image ({blocks} blocks)"
                ),
            ));
        };
        if first < next_free {
            return Err(bad(
                path,
                format!(
                    "run {i} starts at block {first}, before the end of the previous run (block {next_free}): runs must be ascending and not overlap"
                ),
            ));
        }
        // count <= blocks, and the image's byte size fits in a u64.
        let data = count * BLOCK_SIZE as u64;
        if data > body_end - r.pos {
            return Err(bad(
                path,
                format!("truncated: {len} bytes ends inside the blocks of run {i} of {runs}"),
            ));
        }
        let mut at = first;
        while at < end {
            let n = (end - at).min(RUN_MAX_BLOCKS);
            let bytes = &mut piece[..n as usize * BLOCK_SIZE];
            r.read(bytes)?;
            on_data(at, bytes)?;
            at += n;
        }
        next_free = end;
        total += count;
    }
    Ok(total)
}

/// Checks that the runs end where the CRC begins (`body_end`) and that the CRC matches.
fn check_tail(r: &mut DeltaIn<'_>, body_end: u64) -> Result<(), ReplicaError> {
    let path = r.path;
    if r.pos != body_end {
        return Err(bad(
            path,
            format!(
                "{} bytes of garbage between the last run and the CRC",
                body_end - r.pos
            ),
        ));
    }
    let computed = r.crc.clone().finalize();
    let mut stored = [0u8; 4];
    r.reader
        .read_exact(&mut stored)
        .map_err(io_err(path, "reading the delta"))?;
    let stored = u32::from_le_bytes(stored);
    if stored != computed {
        return Err(bad(
            path,
            format!("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(())
}

/// The delta being read: every byte read goes into the CRC.
struct DeltaIn<'p> {
    reader: BufReader<File>,
    path: &'p Path,
    crc: crc32fast::Hasher,
    pos: u64,
}

impl DeltaIn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<(), ReplicaError> {
        self.reader.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad(
                    self.path,
                    format!("the file shrank while being read (at byte {})", self.pos),
                )
            } else {
                io_err(self.path, "reading the delta")(e)
            }
        })?;
        self.crc.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, ReplicaError> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, ReplicaError> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads and fully validates the delta at `delta` (magic, version, header, runs in range and
/// ascending, CRC) before touching the image, then writes its runs into the image at
/// `image_path`, creating it sparse with `blocks` blocks if it is missing (an error if it
/// exists with another size), and records it in `barrier`: the caller makes it durable
/// before it records the point as published. Idempotent: a crash in mid-apply is rolled
/// forward by applying the same delta again.
pub fn apply_delta(
    delta: &Path,
    image_path: &Path,
    blocks: u64,
    barrier: &mut Barrier,
) -> Result<DeltaStats, ReplicaError> {
    walk_delta(delta, blocks, |_, _| Ok(()))?;
    let image = replica_image(image_path, blocks)?;
    let stats = walk_delta(delta, blocks, |first, data| {
        image
            .write_at(first * BLOCK_SIZE as u64, data)
            .map_err(io_err(image_path, "writing the replica image"))
    })?;
    barrier.file(image_path);
    Ok(stats)
}

/// The blocks the delta at `delta` writes, ascending, after validating it whole (for an
/// image of `blocks` blocks).
pub fn delta_blocks(delta: &Path, blocks: u64) -> Result<Vec<u64>, ReplicaError> {
    let mut out = Vec::new();
    walk_delta(delta, blocks, |first, data| {
        out.extend(first..first + (data.len() / BLOCK_SIZE) as u64);
        Ok(())
    })?;
    Ok(out)
}

/// The replica of a new image that holds no data yet: created sparse with `blocks` blocks
/// and recorded in `barrier`. Idempotent like [`apply_delta`]: an image already there with
/// that size (a publish rolled forward after a crash) is left as it is; another size is an
/// error naming it.
pub fn create_empty_replica(
    image_path: &Path,
    blocks: u64,
    barrier: &mut Barrier,
) -> Result<(), ReplicaError> {
    replica_image(image_path, blocks)?;
    barrier.file(image_path);
    Ok(())
}

/// The replica image at `image_path`, opened for writing, or created sparse with `blocks`
/// blocks if it is missing; one of another size is an error naming it.
fn replica_image(image_path: &Path, blocks: u64) -> Result<ImageFile, ReplicaError> {
    let image = match ImageFile::open(image_path) {
        Ok(img) => img,
        Err(DiskError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            ImageFile::create(image_path, blocks)?
        }
        Err(e) => return Err(e.into()),
    };
    if image.block_count() != blocks {
        return Err(ReplicaError::ImageSize {
            path: image_path.display().to_string(),
            found: image.block_count(),
            expected: blocks,
        });
    }
    Ok(image)
}

fn is_zero(block: &[u8]) -> bool {
    // A written block nearly always differs from zero in its first bytes; a zero block is
    // ORed whole, which vectorizes.
    block[..16].iter().all(|&b| b == 0) && block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// Reads `img` front to back in reads of up to [`IO_BYTES`], handing each chunk to `f` with
/// its first block.
fn for_each_chunk(
    img: &ImageFile,
    op: &'static str,
    f: impl FnMut(u64, &[u8]) -> Result<(), ReplicaError>,
) -> Result<(), ReplicaError> {
    for_each_chunk_in(img, 0..img.block_count(), op, f)
}

/// [`for_each_chunk`] over the blocks `range` only.
fn for_each_chunk_in(
    img: &ImageFile,
    range: std::ops::Range<u64>,
    op: &'static str,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), ReplicaError>,
) -> Result<(), ReplicaError> {
    let mut buf = vec![0u8; IO_BYTES];
    let blocks = range.end.min(img.block_count());
    let mut first = range.start;
    while first < blocks {
        let n = (blocks - first).min(RUN_MAX_BLOCKS);
        let chunk = &mut buf[..n as usize * BLOCK_SIZE];
        img.read_at(first * BLOCK_SIZE as u64, chunk)
            .map_err(io_err(img.path(), op))?;
        f(first, chunk)?;
        first += n;
    }
    Ok(())
}

/// Every block of `img` that is not all zeros, ascending: what the initial full copy ships
/// (the replica image is created sparse). Only the ranges the file system holds data for
/// are read (a new guest's image is mostly holes), in chunks of 256 KiB.
pub fn nonzero_blocks(img: &ImageFile) -> Result<Vec<u64>, ReplicaError> {
    let mut out = Vec::new();
    let mut next = 0;
    for bytes in img.data_ranges() {
        let bs = BLOCK_SIZE as u64;
        // Whole blocks covering the range, none twice.
        let range = (bytes.start / bs).max(next)..bytes.end.div_ceil(bs);
        next = range.end;
        for_each_chunk_in(img, range, "reading the image", |first, chunk| {
            for (b, block) in (first..).zip(chunk.chunks_exact(BLOCK_SIZE)) {
                if !is_zero(block) {
                    out.push(b);
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The blocks whose content differs between `a` and `b`, ascending; the images must have
/// the same block count. Used after a crash to rebuild the tracking against the last
/// published replica. Read in chunks of 256 KiB.
pub fn differing_blocks(a: &ImageFile, b: &ImageFile) -> Result<Vec<u64>, ReplicaError> {
    if a.block_count() != b.block_count() {
        return Err(ReplicaError::SizeMismatch {
            a: a.path().display().to_string(),
            a_blocks: a.block_count(),
            b: b.path().display().to_string(),
            b_blocks: b.block_count(),
        });
    }
    let mut out = Vec::new();
    let mut other = vec![0u8; IO_BYTES];
    for_each_chunk(a, "reading the image", |first, chunk| {
        let theirs = &mut other[..chunk.len()];
        b.read_at(first * BLOCK_SIZE as u64, theirs)
            .map_err(io_err(b.path(), "reading the image"))?;
        let pairs = chunk
            .chunks_exact(BLOCK_SIZE)
            .zip(theirs.chunks_exact(BLOCK_SIZE));
        for (blk, (x, y)) in (first..).zip(pairs) {
            if x != y {
                out.push(blk);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
