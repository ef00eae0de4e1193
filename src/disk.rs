//! Disk images, block stamps and the ground-truth journal (SPEC §4.2, §4.3).
//!
//! A simulated guest writes *stamped* 4 KiB blocks into raw image files and journals every
//! acknowledged write as `<seq> <uuid> <block>` in `journal/<site>.log`. This module writes
//! and inspects stamps, reads and writes image files and journals, and verifies that a set
//! of images is write-order consistent with the journal.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of one disk block in bytes.
pub const BLOCK_SIZE: usize = 4096;
/// One disk block.
pub type Block = [u8; BLOCK_SIZE];
/// The first 8 bytes of every stamped block.
pub const MAGIC: &[u8; 8] = b"DRCSTAMP";

/// A VM uuid as the 16 raw bytes stored in stamps.
pub type RawUuid = [u8; 16];

const UUID_AT: usize = 8;
const BLOCK_AT: usize = 24;
const SEQ_AT: usize = 32;
const PAYLOAD_AT: usize = 40;
const CRC_AT: usize = 4088;
const TAIL_AT: usize = 4092;

/// Errors of opening images and reading journals.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: truncated image: {len} bytes is not a whole number of 4096-byte blocks")]
    Truncated { path: String, len: u64 },
    #[error("{path}:{line}: {rule}")]
    Journal {
        path: String,
        line: usize,
        rule: String,
    },
    #[error("{path}: already exists")]
    Exists { path: String },
}

fn io_error(path: &Path, source: io::Error) -> DiskError {
    DiskError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Parses a hyphenated uuid string (`8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11`, either case)
/// into its raw bytes. Other forms (simple, braced, urn) are refused.
pub fn raw_uuid(s: &str) -> Option<RawUuid> {
    parse_uuid_ascii(s.as_bytes())
}

fn parse_uuid_ascii(s: &[u8]) -> Option<RawUuid> {
    if s.len() != uuid::fmt::Hyphenated::LENGTH {
        return None;
    }
    uuid::Uuid::try_parse_ascii(s).ok().map(|u| *u.as_bytes())
}

/// The standard hyphenated lowercase form of a raw uuid.
pub fn uuid_string(u: &RawUuid) -> String {
    uuid::Uuid::from_bytes(*u).hyphenated().to_string()
}

// ---------------------------------------------------------------------------------------
// Stamps
// ---------------------------------------------------------------------------------------

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The splitmix64 finalizer: a good 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

fn payload_seed(uuid: &RawUuid, block: u64, seq: u64) -> u64 {
    let lo = le_u64(uuid, 0);
    let hi = le_u64(uuid, 8);
    let mut s = mix64(lo ^ hi.rotate_left(32));
    s = mix64(s ^ block.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    mix64(s ^ seq.wrapping_mul(0xA076_1D64_78BD_642F))
}

fn fill_payload(uuid: &RawUuid, block: u64, seq: u64, payload: &mut [u8]) {
    let mut state = payload_seed(uuid, block, seq);
    for chunk in payload.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
}

/// Writes the stamp of (uuid, block index, seq) into `out` exactly as SPEC §4.2. The payload
/// (bytes 40..4088) is a splitmix64 stream seeded from the three values. `seq` should be at
/// least 1: a stamp with seq 0 is written as asked but [`inspect`] reports it as torn.
pub fn stamp_block(uuid: &RawUuid, block: u64, seq: u64, out: &mut Block) {
    out[..UUID_AT].copy_from_slice(MAGIC);
    out[UUID_AT..BLOCK_AT].copy_from_slice(uuid);
    out[BLOCK_AT..SEQ_AT].copy_from_slice(&block.to_le_bytes());
    out[SEQ_AT..PAYLOAD_AT].copy_from_slice(&seq.to_le_bytes());
    fill_payload(uuid, block, seq, &mut out[PAYLOAD_AT..CRC_AT]);
    let crc = crc32fast::hash(&out[..CRC_AT]);
    out[CRC_AT..TAIL_AT].copy_from_slice(&crc.to_le_bytes());
    out[TAIL_AT..].fill(0);
}

/// The identity of a stamped block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub uuid: RawUuid,
    pub block: u64,
    pub seq: u64,
}

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockContent {
    /// All zeros: never written.
    Zero,
    /// A valid stamp.
    Stamped(Stamp),
    /// Anything else.
    Torn,
}

fn is_zero(buf: &[u8]) -> bool {
    // No early exit: a branch-free OR over 4 KiB vectorizes well and is tiny anyway.
    buf.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// All zeros -> `Zero`. Otherwise `Stamped` if magic, CRC and the zero tail are right and
/// seq >= 1; anything else is `Torn`. The payload is not recomputed: the CRC covers it.
pub fn inspect(buf: &Block) -> BlockContent {
    if buf[..UUID_AT] != MAGIC[..] {
        return if is_zero(buf) {
            BlockContent::Zero
        } else {
            BlockContent::Torn
        };
    }
    if !is_zero(&buf[TAIL_AT..]) {
        return BlockContent::Torn;
    }
    let stored = u32::from_le_bytes([
        buf[CRC_AT],
        buf[CRC_AT + 1],
        buf[CRC_AT + 2],
        buf[CRC_AT + 3],
    ]);
    if stored != crc32fast::hash(&buf[..CRC_AT]) {
        return BlockContent::Torn;
    }
    let seq = le_u64(buf, SEQ_AT);
    if seq == 0 {
        return BlockContent::Torn;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&buf[UUID_AT..BLOCK_AT]);
    BlockContent::Stamped(Stamp {
        uuid,
        block: le_u64(buf, BLOCK_AT),
        seq,
    })
}

/// Deep check of a block that [`inspect`] calls `Stamped`: also recomputes the payload.
/// Slower than `inspect`; meant for diagnostics, not for whole-disk scans.
pub fn payload_is_genuine(buf: &Block) -> bool {
    let BlockContent::Stamped(s) = inspect(buf) else {
        return false;
    };
    let mut expected = [0u8; BLOCK_SIZE];
    stamp_block(&s.uuid, s.block, s.seq, &mut expected);
    expected[..] == buf[..]
}

// ---------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------

/// Something that yields a disk's 4 KiB blocks: a plain image file, or a migration's routed
/// read path.
pub trait BlockRead {
    fn block_count(&self) -> u64;
    fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()>;
}

/// A raw disk image file, read and written with positional I/O.
#[derive(Debug)]
pub struct ImageFile {
    file: File,
    path: PathBuf,
    blocks: u64,
    /// Marked by every successful write (replication's dirty tracking).
    tracker: Option<Arc<DirtyTracker>>,
}

impl ImageFile {
    /// Opens an existing image for reading and writing.
    pub fn open(path: &Path) -> Result<ImageFile, DiskError> {
        Self::open_with(path, true)
    }

    /// Opens an existing image for reading only.
    pub fn open_read_only(path: &Path) -> Result<ImageFile, DiskError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, write: bool) -> Result<ImageFile, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let len = file.metadata().map_err(|e| io_error(path, e))?.len();
        if len % BLOCK_SIZE as u64 != 0 {
            return Err(DiskError::Truncated {
                path: path.display().to_string(),
                len,
            });
        }
        Ok(ImageFile {
            file,
            path: path.to_path_buf(),
            blocks: len / BLOCK_SIZE as u64,
            tracker: None,
        })
    }

    /// Creates a zero-filled (sparse) image of `blocks` blocks; an error if `path` exists.
    pub fn create(path: &Path, blocks: u64) -> Result<ImageFile, DiskError> {
        let len = blocks.checked_mul(BLOCK_SIZE as u64).ok_or_else(|| {
            io_error(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{blocks} blocks is too large an image"),
                ),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    DiskError::Exists {
                        path: path.display().to_string(),
                    }
                } else {
                    io_error(path, e)
                }
            })?;
        if let Err(e) = file.set_len(len) {
            drop(file);
            // Best effort: do not leave a half-made image behind.
            let _ = std::fs::remove_file(path);
            return Err(io_error(path, e));
        }
        Ok(ImageFile {
            file,
            path: path.to_path_buf(),
            blocks,
            tracker: None,
        })
    }

    /// Turns readahead off for this open image. The engine does this for every image it
    /// opens: guests do random 4 KiB I/O and its bulk readers (copy runs, replication
    /// scans, the verifier) ask for large ranges explicitly. Readahead on a sparse image
    /// fills the page cache with large folios, and every later 4 KiB guest write into such
    /// a folio costs the filesystem a walk over all of it: measured on ext4 (Linux 6.18),
    /// 63% of a scenario's time went to `ext4_block_write_begin` before this (70 s ▶ 21 s).
    /// A plain streaming copy (the copy benchmark) is faster with readahead, so it stays the
    /// default. Advisory: failure changes nothing but speed.
    pub fn without_readahead(self) -> ImageFile {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; posix_fadvise reads no memory of ours.
        unsafe {
            libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
        }
        self
    }

    /// The byte ranges of the image that may hold data, ascending; the rest are holes,
    /// which read as zeros. From the file system (`SEEK_DATA`/`SEEK_HOLE`); the whole
    /// image where it cannot tell. Images are read and written only at explicit offsets,
    /// so moving the descriptor's offset here disturbs nothing.
    pub fn data_ranges(&self) -> Vec<std::ops::Range<u64>> {
        use std::os::fd::AsRawFd;
        let len = self.blocks * BLOCK_SIZE as u64;
        let whole = std::iter::once(0..len).collect();
        let fd = self.file.as_raw_fd();
        let seek = |from: u64, whence| {
            let Ok(from) = libc::off_t::try_from(from) else {
                return Err(None);
            };
            // SAFETY: lseek on a valid open descriptor; it reads no memory of ours.
            let at = unsafe { libc::lseek(fd, from, whence) };
            u64::try_from(at).map_err(|_| std::io::Error::last_os_error().raw_os_error())
        };
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < len {
            let start = match seek(pos, libc::SEEK_DATA) {
                Ok(s) => s,
                // No data after `pos`.
                Err(Some(libc::ENXIO)) => break,
                Err(_) => return whole,
            };
            if start >= len {
                break;
            }
            let Ok(end) = seek(start, libc::SEEK_HOLE) else {
                return whole;
            };
            let end = end.min(len);
            out.push(start..end);
            pos = end;
        }
        out
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of 4 KiB blocks in the image.
    pub fn block_count(&self) -> u64 {
        self.blocks
    }

    /// Checks that bytes `offset..offset+len` lie inside the image.
    fn check_range(&self, offset: u64, len: usize) -> io::Result<()> {
        let size = self.blocks * BLOCK_SIZE as u64; // cannot overflow: it is a file length
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: {} bytes at offset {offset} lie outside the image ({size} bytes)",
                    self.path.display(),
                    len
                ),
            )),
        }
    }

    fn block_offset(&self, index: u64) -> io::Result<u64> {
        if index >= self.blocks {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: block {index} is outside the image ({} blocks)",
                    self.path.display(),
                    self.blocks
                ),
            ));
        }
        Ok(index * BLOCK_SIZE as u64) // index < blocks, so no overflow
    }

    /// Attaches a dirty tracker (or detaches it with `None`): from now on every successful
    /// write marks the blocks it touched.
    pub fn set_tracker(&mut self, t: Option<Arc<DirtyTracker>>) {
        self.tracker = t;
    }

    /// The attached dirty tracker, if any.
    pub fn tracker(&self) -> Option<&Arc<DirtyTracker>> {
        self.tracker.as_ref()
    }

    /// Writes block `index` (and marks it in the tracker once it is written).
    pub fn write_block(&self, index: u64, buf: &Block) -> io::Result<()> {
        let off = self.block_offset(index)?;
        self.file.write_all_at(buf, off)?;
        if let Some(t) = &self.tracker {
            t.mark(index);
        }
        Ok(())
    }

    /// Reads block `index`.
    pub fn read_block_at(&self, index: u64, buf: &mut Block) -> io::Result<()> {
        let off = self.block_offset(index)?;
        self.file.read_exact_at(buf, off)
    }

    /// Reads `buf.len()` bytes at byte `offset` (which must lie inside the image).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check_range(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    /// Writes `buf` at byte `offset` (which must lie inside the image: it never grows), and
    /// then marks in the tracker every block the bytes overlap.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check_range(offset, buf.len())?;
        self.file.write_all_at(buf, offset)?;
        if let Some(t) = &self.tracker
            && !buf.is_empty()
        {
            let first = offset / BLOCK_SIZE as u64;
            let last = (offset + buf.len() as u64 - 1) / BLOCK_SIZE as u64; // checked above
            t.mark_range(first, last - first + 1);
        }
        Ok(())
    }

    /// Flushes written data to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl BlockRead for ImageFile {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()> {
        self.read_block_at(index, buf)
    }
}

// ---------------------------------------------------------------------------------------
// Dirty tracking
// ---------------------------------------------------------------------------------------

/// Array-style change tracking of one image: one bit per 4 KiB block, set by every write
/// through an [`ImageFile`] it is attached to. Lock-free (AtomicU64 words): writers mark with
/// `fetch_or`, and [`DirtyTracker::take`] swaps each word with zero, so a write that lands
/// while a cycle takes its blocks is either taken now or left for the next cycle, never lost.
pub struct DirtyTracker {
    blocks: u64,
    words: Box<[AtomicU64]>,
}

impl std::fmt::Debug for DirtyTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirtyTracker")
            .field("blocks", &self.blocks)
            .field("dirty", &self.count())
            .finish()
    }
}

impl DirtyTracker {
    /// A tracker of `blocks` blocks, all clean.
    pub fn new(blocks: u64) -> DirtyTracker {
        let words = usize::try_from(blocks.div_ceil(64)).expect("a bitmap that fits in memory");
        DirtyTracker {
            blocks,
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Number of blocks tracked.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Marks one block dirty; a block out of range is ignored.
    pub fn mark(&self, block: u64) {
        if block < self.blocks {
            self.words[(block / 64) as usize].fetch_or(1 << (block % 64), Ordering::AcqRel);
        }
    }

    /// Marks `count` blocks from `first` dirty; the part out of range is ignored.
    pub fn mark_range(&self, first: u64, count: u64) {
        let end = first.saturating_add(count).min(self.blocks);
        let mut b = first;
        while b < end {
            let bit = b % 64;
            let n = (64 - bit).min(end - b);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            self.words[(b / 64) as usize].fetch_or(mask, Ordering::AcqRel);
            b += n;
        }
    }

    /// Marks every listed block dirty (merges back the blocks of an abandoned cycle).
    pub fn mark_all(&self, blocks: &[u64]) {
        for &b in blocks {
            self.mark(b);
        }
    }

    /// Number of dirty blocks.
    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
            .sum()
    }

    /// The dirty blocks, ascending, and clears them (one atomic swap per word).
    pub fn take(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.words.iter().enumerate() {
            if w.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = w.swap(0, Ordering::AcqRel);
            while bits != 0 {
                out.push(i as u64 * 64 + u64::from(bits.trailing_zeros()));
                bits &= bits - 1;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------

/// One line of `journal/<site>.log`: `<seq> <uuid> <block>\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    pub uuid: RawUuid,
    pub block: u64,
}

/// Longest line: 20 digits, space, 36-char uuid, space, 20 digits, newline.
const MAX_LINE: usize = 20 + 1 + 36 + 1 + 20 + 1;

fn push_u64(buf: &mut [u8], pos: &mut usize, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    buf[*pos..*pos + digits.len()].copy_from_slice(digits);
    *pos += digits.len();
}

fn format_entry(e: &JournalEntry, line: &mut [u8; MAX_LINE]) -> usize {
    let mut pos = 0;
    push_u64(line, &mut pos, e.seq);
    line[pos] = b' ';
    pos += 1;
    let len = uuid::fmt::Hyphenated::LENGTH;
    uuid::Uuid::from_bytes(e.uuid)
        .hyphenated()
        .encode_lower(&mut line[pos..pos + len]);
    pos += len;
    line[pos] = b' ';
    pos += 1;
    push_u64(line, &mut pos, e.block);
    line[pos] = b'\n';
    pos + 1
}

/// Appends lines to a journal file, one `write` of the whole line per entry, unbuffered.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> Result<JournalWriter, DiskError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as a single write of the whole line.
    pub fn append(&mut self, e: &JournalEntry) -> io::Result<()> {
        let mut line = [0u8; MAX_LINE];
        let n = format_entry(e, &mut line);
        self.file.write_all(&line[..n])
    }

    /// Flushes appended lines to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A whole journal, in increasing seq order.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    pub entries: Vec<JournalEntry>,
    /// Highest seq, 0 if empty.
    pub last_seq: u64,
}

impl Journal {
    /// The journal as it stood when `seq` was the last write: what a recovery point cut
    /// at `seq` must hold.
    pub fn up_to(&self, seq: u64) -> Journal {
        Journal {
            entries: self
                .entries
                .iter()
                .filter(|x| x.seq <= seq)
                .cloned()
                .collect(),
            last_seq: seq,
        }
    }
}

/// Parses a decimal u64: digits only, no sign, no overflow.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_line(line: &[u8]) -> Result<JournalEntry, String> {
    let mut fields = line.split(|&c| c == b' ');
    let (Some(seq), Some(uuid), Some(block), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "expected \"<seq> <uuid> <block>\" (three fields separated by single spaces), found {}",
            shown(line)
        ));
    };
    let seq = parse_u64(seq).ok_or_else(|| format!("seq {} is not a number", shown(seq)))?;
    let uuid = parse_uuid_ascii(uuid)
        .ok_or_else(|| format!("{} is not a hyphenated uuid", shown(uuid)))?;
    let block =
        parse_u64(block).ok_or_else(|| format!("block {} is not a number", shown(block)))?;
    Ok(JournalEntry { seq, uuid, block })
}

/// A short, quoted, printable excerpt of raw bytes for error messages.
fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    let cut = bytes.len() > MAX;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    format!("{:?}{}", text, if cut { "..." } else { "" })
}

fn parse_from<R: BufRead>(
    mut reader: R,
    name: &str,
    capacity: usize,
) -> Result<Journal, DiskError> {
    let mut journal = Journal {
        entries: Vec::with_capacity(capacity),
        last_seq: 0,
    };
    let mut line = Vec::with_capacity(128);
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| DiskError::Io {
                path: name.to_string(),
                source,
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            // End of file, or a last line cut short by a crash: ignored whatever it holds.
            break;
        }
        number += 1;
        let text = &line[..line.len() - 1];
        let entry = parse_line(text).map_err(|rule| DiskError::Journal {
            path: name.to_string(),
            line: number,
            rule,
        })?;
        if entry.seq <= journal.last_seq {
            let rule = if journal.entries.is_empty() {
                "seq 0 is not allowed: sequence numbers start at 1".to_string()
            } else {
                format!(
                    "seq {} is not greater than the previous seq {}: sequence numbers must increase",
                    entry.seq, journal.last_seq
                )
            };
            return Err(DiskError::Journal {
                path: name.to_string(),
                line: number,
                rule,
            });
        }
        journal.last_seq = entry.seq;
        journal.entries.push(entry);
    }
    Ok(journal)
}

/// Reads a whole journal. A last line without a trailing newline was cut short by a crash and
/// is ignored. A complete line that does not parse, or a seq not greater than the previous
/// one, is an error naming the file and the line.
pub fn read_journal(path: &Path) -> Result<Journal, DiskError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    // A line is about 50 to 60 bytes; reserve accordingly to avoid regrowing a huge Vec.
    let capacity = file
        .metadata()
        .map(|m| usize::try_from(m.len() / 56).unwrap_or(0))
        .unwrap_or(0);
    let reader = BufReader::with_capacity(1 << 20, file);
    parse_from(reader, &path.display().to_string(), capacity)
}

/// Same as [`read_journal`], from bytes; `name` is used in errors.
pub fn parse_journal(bytes: &[u8], name: &str) -> Result<Journal, DiskError> {
    parse_from(bytes, name, bytes.len() / 56)
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

/// Which S (SPEC §4.3) to verify a set of images against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// S = the journal's last seq: a live VM must lose nothing.
    LastJournaled,
    /// S = the highest seq stamped in any image of the set (a recovered copy).
    FromImages,
}

/// One VM's disk in a verified set.
pub struct VmDisk<'a> {
    pub name: String,
    pub uuid: RawUuid,
    pub reader: &'a mut dyn BlockRead,
}

/// A verifiable set over (name, uuid, image) triples.
pub fn vm_disks(images: &mut [(String, RawUuid, ImageFile)]) -> Vec<VmDisk<'_>> {
    images
        .iter_mut()
        .map(|(name, uuid, img)| VmDisk {
            name: name.clone(),
            uuid: *uuid,
            reader: img,
        })
        .collect()
}

/// A block that does not hold what the journal says it should.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub block: u64,
    /// 0 = never written.
    pub expected_seq: u64,
    /// "zero", "torn", "seq N" or "foreign <uuid>/<block> seq N".
    pub found: String,
}

/// Verification result of one VM's disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmVerify {
    pub name: String,
    /// Hyphenated.
    pub uuid: String,
    /// No torn block and no mismatch.
    pub consistent: bool,
    pub blocks: u64,
    /// Blocks holding a valid stamp (of any VM).
    pub written_blocks: u64,
    pub torn_blocks: u64,
    /// Blocks that are not torn but do not hold the expected content.
    pub mismatched_blocks: u64,
    /// At most 8 bad blocks (torn or mismatched), lowest block first.
    pub examples: Vec<Mismatch>,
    /// Journaled writes of this VM with seq > S.
    pub writes_lost: u64,
    /// Highest valid stamp seq in this image (0 if none).
    pub last_seq_found: u64,
}

/// Verification result of a set of images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetVerify {
    pub horizon_seq: u64,
    pub consistent: bool,
    pub vms: Vec<VmVerify>,
}

const MAX_EXAMPLES: usize = 8;

/// What one block of a scanned image holds, compactly.
#[derive(Clone, Copy)]
enum Found {
    Zero,
    Torn,
    /// A valid stamp of this disk's VM and this block, with its seq.
    Own(u64),
    /// A valid stamp of another VM or another block.
    Foreign,
}

struct Scan {
    found: Vec<Found>,
    /// The first foreign stamps with their block: enough for the examples, since a foreign
    /// stamp is a mismatch whatever S is.
    foreign: Vec<(u64, Stamp)>,
    written: u64,
    torn: u64,
    max_seq: u64,
}

fn scan_disk(disk: &mut VmDisk<'_>) -> io::Result<Scan> {
    let blocks = disk.reader.block_count();
    let mut scan = Scan {
        found: Vec::with_capacity(usize::try_from(blocks).unwrap_or(0)),
        foreign: Vec::new(),
        written: 0,
        torn: 0,
        max_seq: 0,
    };
    let mut buf = [0u8; BLOCK_SIZE];
    for b in 0..blocks {
        disk.reader.read_block(b, &mut buf).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: reading block {b}: {e}", disk.name))
        })?;
        let found = match inspect(&buf) {
            BlockContent::Zero => Found::Zero,
            BlockContent::Torn => {
                scan.torn += 1;
                Found::Torn
            }
            BlockContent::Stamped(s) => {
                scan.written += 1;
                scan.max_seq = scan.max_seq.max(s.seq);
                if s.uuid == disk.uuid && s.block == b {
                    Found::Own(s.seq)
                } else {
                    if scan.foreign.len() < MAX_EXAMPLES {
                        scan.foreign.push((b, s));
                    }
                    Found::Foreign
                }
            }
        };
        scan.found.push(found);
    }
    Ok(scan)
}

/// Verifies a set of images against the journal, per SPEC §4.3.
///
/// S is chosen by `horizon`. For every block b of every VM u the expected content is the last
/// journal entry (u, b) with seq <= S, or zeros if none. A block stamped (u, b) with seq ==
/// journal.last_seq + 1 is accepted as the write in flight at a crash (and with
/// [`Horizon::FromImages`] it may be what sets S). Journal entries of VMs outside the set, or
/// for blocks beyond an image's end, are ignored. Reading an image fails -> that error.
pub fn verify_set(
    disks: &mut [VmDisk<'_>],
    journal: &Journal,
    horizon: Horizon,
) -> io::Result<SetVerify> {
    // Pass 1: one sequential read of every image.
    let mut scans = Vec::with_capacity(disks.len());
    for disk in disks.iter_mut() {
        scans.push(scan_disk(disk)?);
    }
    let horizon_seq = match horizon {
        Horizon::LastJournaled => journal.last_seq,
        Horizon::FromImages => scans.iter().map(|s| s.max_seq).max().unwrap_or(0),
    };
    let in_flight = journal.last_seq.checked_add(1);

    // Pass 2: one pass over the journal, building the expected seq of every block.
    let mut by_uuid: HashMap<RawUuid, Vec<usize>> = HashMap::new();
    for (i, disk) in disks.iter().enumerate() {
        by_uuid.entry(disk.uuid).or_default().push(i);
    }
    let mut expected: Vec<Vec<u64>> = scans.iter().map(|s| vec![0; s.found.len()]).collect();
    let mut lost = vec![0u64; disks.len()];
    for e in &journal.entries {
        let Some(indices) = by_uuid.get(&e.uuid) else {
            continue;
        };
        for &i in indices {
            if e.seq > horizon_seq {
                lost[i] += 1;
            } else if let Some(slot) = usize::try_from(e.block)
                .ok()
                .and_then(|b| expected[i].get_mut(b))
            {
                // Entries are in increasing seq order, so the last one wins; max() keeps that
                // true even for a hand-built journal out of order.
                *slot = (*slot).max(e.seq);
            }
        }
    }

    // Pass 3: compare, in memory.
    let mut vms = Vec::with_capacity(disks.len());
    for (i, disk) in disks.iter().enumerate() {
        let scan = &scans[i];
        let mut mismatched = 0u64;
        let mut examples = Vec::new();
        for (b, (&found, &want)) in scan.found.iter().zip(&expected[i]).enumerate() {
            let b = b as u64;
            let bad = match found {
                Found::Zero if want == 0 => None,
                Found::Zero => Some("zero".to_string()),
                Found::Torn => Some("torn".to_string()),
                Found::Own(seq) if seq == want || Some(seq) == in_flight => None,
                Found::Own(seq) => Some(format!("seq {seq}")),
                Found::Foreign => Some(match scan.foreign.iter().find(|(fb, _)| *fb == b) {
                    Some((_, s)) => {
                        format!("foreign {}/{} seq {}", uuid_string(&s.uuid), s.block, s.seq)
                    }
                    // Unreachable for an example: the first foreign stamps are kept.
                    None => "foreign".to_string(),
                }),
            };
            let Some(text) = bad else { continue };
            if !matches!(found, Found::Torn) {
                mismatched += 1;
            }
            if examples.len() < MAX_EXAMPLES {
                examples.push(Mismatch {
                    block: b,
                    expected_seq: want,
                    found: text,
                });
            }
        }
        vms.push(VmVerify {
            name: disk.name.clone(),
            uuid: uuid_string(&disk.uuid),
            consistent: scan.torn == 0 && mismatched == 0,
            blocks: scan.found.len() as u64,
            written_blocks: scan.written,
            torn_blocks: scan.torn,
            mismatched_blocks: mismatched,
            examples,
            writes_lost: lost[i],
            last_seq_found: scan.max_seq,
        });
    }
    Ok(SetVerify {
        horizon_seq,
        consistent: vms.iter().all(|v| v.consistent),
        vms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// zlib.crc32(bytes(4088)), computed with Python.
    const ZLIB_CRC_OF_4088_ZEROS: u32 = 2763427718;

    const U0: &str = "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11";
    const U1: &str = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed";
    const U2: &str = "00000000-0000-4000-8000-0000000000ff";

    fn uuid(s: &str) -> RawUuid {
        raw_uuid(s).expect("test uuid")
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    /// A simulated guest: VMs with image files in a temp dir and one site journal.
    struct Guest {
        dir: TempDir,
        uuids: Vec<RawUuid>,
        images: Vec<ImageFile>,
        journal: JournalWriter,
        seq: u64,
        /// Writes with a seq above this are journaled but not applied to the images
        /// (the images are a replica frozen at that point).
        apply_upto: u64,
        rng: Lcg,
    }

    impl Guest {
        fn new(uuids: &[&str], blocks: u64, seed: u64) -> Guest {
            let dir = tempfile::tempdir().expect("tempdir");
            let uuids: Vec<RawUuid> = uuids.iter().map(|s| uuid(s)).collect();
            let images = (0..uuids.len())
                .map(|i| {
                    ImageFile::create(&dir.path().join(format!("vm{i}.img")), blocks)
                        .expect("create image")
                })
                .collect();
            let journal = JournalWriter::open(&dir.path().join("site.log")).expect("journal");
            Guest {
                dir,
                uuids,
                images,
                journal,
                seq: 0,
                apply_upto: u64::MAX,
                rng: Lcg(seed),
            }
        }

        fn journal_path(&self) -> PathBuf {
            self.dir.path().join("site.log")
        }

        /// One guest write: take the seq, stamp the block, journal it. Returns the seq.
        fn write(&mut self, vm: usize, block: u64) -> u64 {
            self.seq += 1;
            let seq = self.seq;
            if seq <= self.apply_upto {
                self.stamp(vm, vm, block, block, seq);
            }
            self.journal
                .append(&JournalEntry {
                    seq,
                    uuid: self.uuids[vm],
                    block,
                })
                .expect("append");
            seq
        }

        fn random_writes(&mut self, n: u64) {
            let blocks = self.images[0].block_count();
            for _ in 0..n {
                let vm = (self.rng.next() % self.uuids.len() as u64) as usize;
                let block = self.rng.next() % blocks;
                self.write(vm, block);
            }
        }

        /// Writes into image `image` at `at` the stamp of (uuid of `vm`, `block`, `seq`),
        /// without journaling anything.
        fn stamp(&self, image: usize, vm: usize, at: u64, block: u64, seq: u64) {
            let mut buf = [0u8; BLOCK_SIZE];
            stamp_block(&self.uuids[vm], block, seq, &mut buf);
            self.images[image].write_block(at, &buf).expect("write");
        }

        fn verify(&mut self, horizon: Horizon) -> SetVerify {
            let journal = read_journal(&self.journal_path()).expect("read journal");
            let uuids = self.uuids.clone();
            let mut disks: Vec<VmDisk<'_>> = self
                .images
                .iter_mut()
                .enumerate()
                .map(|(i, img)| VmDisk {
                    name: format!("vm{i}"),
                    uuid: uuids[i],
                    reader: img,
                })
                .collect();
            verify_set(&mut disks, &journal, horizon).expect("verify")
        }
    }

    // ---- stamps ----

    #[test]
    fn stamp_round_trip() {
        let u = uuid(U0);
        let mut buf = [0u8; BLOCK_SIZE];
        stamp_block(&u, 12345, 678, &mut buf);
        assert_eq!(&buf[..8], MAGIC);
        assert_eq!(&buf[8..24], &u);
        assert_eq!(le_u64(&buf, 24), 12345);
        assert_eq!(le_u64(&buf, 32), 678);
        assert_eq!(&buf[4092..], &[0, 0, 0, 0]);
        assert_eq!(
            inspect(&buf),
            BlockContent::Stamped(Stamp {
                uuid: u,
                block: 12345,
                seq: 678
            })
        );
        assert!(payload_is_genuine(&buf));
    }

    #[test]
    fn stamp_crc_is_zlib_crc32_of_first_4088_bytes() {
        let mut buf = [0u8; BLOCK_SIZE];
        stamp_block(&uuid(U1), 7, 1, &mut buf);
        let stored = u32::from_le_bytes([buf[4088], buf[4089], buf[4090], buf[4091]]);
        assert_eq!(stored, crc32fast::hash(&buf[..4088]));
        // crc32fast is the same CRC as zlib's crc32: check against a value computed by zlib.
        assert_eq!(crc32fast::hash(&[0u8; 4088]), ZLIB_CRC_OF_4088_ZEROS);
    }

    #[test]
    fn payload_is_deterministic_and_depends_on_every_input() {
        let (u0, u1) = (uuid(U0), uuid(U1));
        let stamp = |u: &RawUuid, b, s| {
            let mut buf = [0u8; BLOCK_SIZE];
            stamp_block(u, b, s, &mut buf);
            buf
        };
        let a = stamp(&u0, 3, 9);
        assert_eq!(a, stamp(&u0, 3, 9));
        // Stamping over garbage gives the same bytes.
        let mut dirty = [0xAAu8; BLOCK_SIZE];
        stamp_block(&u0, 3, 9, &mut dirty);
        assert_eq!(a, dirty);
        for other in [stamp(&u1, 3, 9), stamp(&u0, 4, 9), stamp(&u0, 3, 10)] {
            assert_ne!(a[40..4088], other[40..4088]);
        }
        // The payload is not trivially zero or repetitive.
        assert!(a[40..4088].iter().filter(|&&b| b == 0).count() < 100);
        assert_ne!(a[40..48], a[48..56]);
    }

    #[test]
    fn flipped_byte_anywhere_is_torn() {
        let mut good = [0u8; BLOCK_SIZE];
        stamp_block(&uuid(U0), 42, 99, &mut good);
        for i in 0..BLOCK_SIZE {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good;
                bad[i] ^= flip;
                assert_eq!(inspect(&bad), BlockContent::Torn, "byte {i} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn zero_block_is_zero_and_partial_blocks_are_torn() {
        let zero = [0u8; BLOCK_SIZE];
        assert_eq!(inspect(&zero), BlockContent::Zero);
        let mut one = zero;
        one[4095] = 1;
        assert_eq!(inspect(&one), BlockContent::Torn);
        // A write cut after the first sector: stamp head, zero rest.
        let mut good = [0u8; BLOCK_SIZE];
        stamp_block(&uuid(U0), 1, 1, &mut good);
        let mut half = [0u8; BLOCK_SIZE];
        half[..512].copy_from_slice(&good[..512]);
        assert_eq!(inspect(&half), BlockContent::Torn);
        assert!(!payload_is_genuine(&half));
    }

    #[test]
    fn seq_zero_stamp_is_torn() {
        let mut buf = [0u8; BLOCK_SIZE];
        stamp_block(&uuid(U0), 1, 0, &mut buf);
        assert_eq!(inspect(&buf), BlockContent::Torn);
    }

    #[test]
    fn uuid_helpers() {
        let u = uuid(U0);
        assert_eq!(uuid_string(&u), U0);
        assert_eq!(raw_uuid(&U0.to_uppercase()), Some(u));
        assert_eq!(raw_uuid("8f0c6f4e3c1a4f7e9a510d2f6b7c9e11"), None);
        assert_eq!(raw_uuid("{8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11}"), None);
        assert_eq!(raw_uuid("8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e1x"), None);
        assert_eq!(raw_uuid(""), None);
    }

    // ---- image files ----

    #[test]
    fn image_create_write_read_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk0.img");
        let img = ImageFile::create(&path, 16).expect("create");
        assert_eq!(img.block_count(), 16);
        assert_eq!(img.path(), path.as_path());
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 16 * 4096);
        let mut buf = [0u8; BLOCK_SIZE];
        img.read_block_at(15, &mut buf).expect("read");
        assert_eq!(inspect(&buf), BlockContent::Zero);
        stamp_block(&uuid(U0), 5, 3, &mut buf);
        img.write_block(5, &buf).expect("write");
        img.sync().expect("sync");
        drop(img);

        let mut ro = ImageFile::open_read_only(&path).expect("open ro");
        assert_eq!(BlockRead::block_count(&ro), 16);
        let mut back = [0u8; BLOCK_SIZE];
        ro.read_block(5, &mut back).expect("read");
        assert_eq!(back, buf);
        assert!(
            ro.write_block(5, &buf).is_err(),
            "read-only image accepts writes"
        );

        let rw = ImageFile::open(&path).expect("open");
        let mut run = vec![0u8; 3 * BLOCK_SIZE];
        rw.read_at(4 * 4096, &mut run).expect("read_at");
        assert_eq!(run[4096..8192], buf[..]);
        run.fill(7);
        rw.write_at(10 * 4096 + 100, &run).expect("write_at");
        let mut check = [0u8; 10];
        rw.read_at(10 * 4096 + 95, &mut check).expect("read_at");
        assert_eq!(check, [0, 0, 0, 0, 0, 7, 7, 7, 7, 7]);
    }

    #[test]
    fn image_out_of_range_is_an_error_and_never_grows_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.img");
        let img = ImageFile::create(&path, 4).expect("create");
        let mut buf = [0u8; BLOCK_SIZE];
        assert!(img.read_block_at(4, &mut buf).is_err());
        assert!(img.write_block(4, &buf).is_err());
        assert!(img.read_block_at(u64::MAX, &mut buf).is_err());
        assert!(img.write_at(3 * 4096 + 1, &buf).is_err());
        assert!(img.write_at(u64::MAX - 10, &buf).is_err());
        let mut big = vec![0u8; 5 * 4096];
        assert!(img.read_at(0, &mut big).is_err());
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 4 * 4096);
    }

    #[test]
    fn image_create_existing_and_truncated_and_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.img");
        ImageFile::create(&path, 1).expect("create");
        let err = ImageFile::create(&path, 1).expect_err("exists");
        assert!(matches!(err, DiskError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("d.img: already exists"), "{err}");

        let odd = dir.path().join("odd.img");
        std::fs::write(&odd, vec![0u8; 4096 + 10]).expect("write");
        let err = ImageFile::open(&odd).expect_err("truncated");
        assert!(
            matches!(err, DiskError::Truncated { len: 4106, .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("odd.img") && msg.contains("truncated image"),
            "{msg}"
        );

        let err = ImageFile::open_read_only(&dir.path().join("none.img")).expect_err("missing");
        assert!(matches!(err, DiskError::Io { .. }), "{err}");
        assert!(err.to_string().contains("none.img"), "{err}");
    }

    // ---- dirty tracking ----

    #[test]
    fn tracker_marks_counts_and_take_clears_ascending() {
        let t = DirtyTracker::new(200);
        assert_eq!(t.blocks(), 200);
        assert_eq!(t.count(), 0);
        assert!(t.take().is_empty());
        for b in [130, 5, 63, 64, 5, 199, 200, u64::MAX] {
            t.mark(b);
        }
        assert_eq!(t.count(), 5);
        assert_eq!(t.take(), vec![5, 63, 64, 130, 199]);
        assert_eq!(t.count(), 0);
        assert!(t.take().is_empty());

        t.mark_range(60, 70);
        assert_eq!(t.take(), (60..130).collect::<Vec<_>>());
        t.mark_range(0, 64);
        t.mark_range(190, 1000);
        t.mark_range(u64::MAX - 1, 5);
        t.mark_range(3, 0);
        let mut expected: Vec<u64> = (0..64).collect();
        expected.extend(190..200);
        assert_eq!(t.count(), 74);
        assert_eq!(t.take(), expected);

        t.mark(7);
        t.mark_all(&[150, 2, 7, 500]);
        assert_eq!(t.take(), vec![2, 7, 150]);
        let dbg = format!("{t:?}");
        assert!(
            dbg.contains("blocks: 200") && dbg.contains("dirty: 0"),
            "{dbg}"
        );
    }

    #[test]
    fn tracker_concurrent_marks_are_never_lost() {
        let t = Arc::new(DirtyTracker::new(4096));
        let mut taken = Vec::new();
        std::thread::scope(|s| {
            for id in 0..2u64 {
                let t = &t;
                s.spawn(move || {
                    for b in (id..4096).step_by(2) {
                        t.mark(b);
                    }
                });
            }
            for _ in 0..50 {
                taken.extend(t.take());
            }
        });
        taken.extend(t.take());
        taken.sort_unstable();
        assert_eq!(taken, (0..4096).collect::<Vec<_>>());
    }

    #[test]
    fn image_writes_mark_the_tracker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut img = ImageFile::create(&dir.path().join("d.img"), 32).expect("create");
        assert!(img.tracker().is_none());
        let buf = [1u8; BLOCK_SIZE];
        img.write_block(1, &buf).expect("untracked write");
        let t = Arc::new(DirtyTracker::new(32));
        img.set_tracker(Some(Arc::clone(&t)));
        assert!(Arc::ptr_eq(img.tracker().expect("tracker"), &t));
        img.write_block(3, &buf).expect("write");
        // Bytes 4096*10 - 1 ..= 4096*12: blocks 9, 10, 11 and 12.
        img.write_at(10 * 4096 - 1, &vec![2u8; 2 * 4096 + 2])
            .expect("write_at");
        // Exactly one block.
        img.write_at(20 * 4096, &buf).expect("write_at");
        img.write_at(25 * 4096, &[]).expect("empty write");
        // Failed writes mark nothing.
        assert!(img.write_block(32, &buf).is_err());
        assert!(img.write_at(31 * 4096 + 1, &buf).is_err());
        assert_eq!(t.take(), vec![3, 9, 10, 11, 12, 20]);
        // Reads do not mark.
        let mut back = [0u8; BLOCK_SIZE];
        img.read_block_at(3, &mut back).expect("read");
        assert_eq!(t.count(), 0);
        img.set_tracker(None);
        img.write_block(4, &buf).expect("write");
        assert_eq!(t.count(), 0);
        assert!(format!("{img:?}").contains("tracker: None"));
    }

    // ---- journal ----

    #[test]
    fn journal_writer_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pa.log");
        let entries = [
            JournalEntry {
                seq: 1,
                uuid: uuid(U0),
                block: 0,
            },
            JournalEntry {
                seq: 2,
                uuid: uuid(U1),
                block: 262_143,
            },
            JournalEntry {
                seq: u64::MAX,
                uuid: uuid(U2),
                block: u64::MAX,
            },
        ];
        {
            let mut w = JournalWriter::open(&path).expect("open");
            w.append(&entries[0]).expect("append");
            w.sync().expect("sync");
        }
        // Reopening appends.
        let mut w = JournalWriter::open(&path).expect("reopen");
        assert_eq!(w.path(), path.as_path());
        w.append(&entries[1]).expect("append");
        w.append(&entries[2]).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            format!("1 {U0} 0\n2 {U1} 262143\n18446744073709551615 {U2} 18446744073709551615\n")
        );
        let j = read_journal(&path).expect("parse");
        assert_eq!(j.entries, entries);
        assert_eq!(j.last_seq, u64::MAX);
    }

    #[test]
    fn journal_cut_short_last_line_is_ignored() {
        for tail in [
            "",
            "3",
            "3 ",
            "3 8f0c6f4e-3c1a",
            &format!("3 {U0} 1"),
            "garbage \u{1}",
        ] {
            let text = format!("1 {U0} 5\n2 {U1} 6\n{tail}");
            let j = parse_journal(text.as_bytes(), "mem").expect("parse");
            assert_eq!(j.entries.len(), 2, "tail {tail:?}");
            assert_eq!(j.last_seq, 2);
            assert_eq!(
                j.entries[1],
                JournalEntry {
                    seq: 2,
                    uuid: uuid(U1),
                    block: 6
                }
            );
        }
        let j = parse_journal(b"", "empty").expect("empty");
        assert!(j.entries.is_empty());
        assert_eq!(j.last_seq, 0);
        let j = parse_journal(b"1 abc", "cut").expect("only cut line");
        assert!(j.entries.is_empty());
    }

    #[test]
    fn journal_bad_middle_line_names_the_line() {
        let bad_lines = [
            format!("x {U1} 6"),
            format!("3 {U1}"),
            format!("3 {U1} 6 7"),
            format!("3  {U1} 6"),
            format!("3 {U1} 6 "),
            format!("3 {U1} -6"),
            "3 8f0c6f4e3c1a4f7e9a510d2f6b7c9e11 6".to_string(),
            format!("3 {U1} 99999999999999999999999"),
            String::new(),
            format!("3 {U1} 6\r"),
        ];
        for bad in &bad_lines {
            let text = format!("1 {U0} 5\n2 {U0} 5\n{bad}\n4 {U0} 1\n");
            let err = parse_journal(text.as_bytes(), "journal/pa.log").expect_err(bad);
            match &err {
                DiskError::Journal { path, line, .. } => {
                    assert_eq!(path, "journal/pa.log");
                    assert_eq!(*line, 3, "{bad:?}: {err}");
                }
                other => panic!("{bad:?}: unexpected error {other}"),
            }
            assert!(err.to_string().starts_with("journal/pa.log:3: "), "{err}");
        }
    }

    #[test]
    fn journal_seq_must_increase() {
        let text = format!("1 {U0} 5\n2 {U0} 5\n2 {U1} 1\n");
        let err = parse_journal(text.as_bytes(), "j").expect_err("repeat");
        assert!(matches!(err, DiskError::Journal { line: 3, .. }), "{err}");
        assert!(
            err.to_string()
                .contains("not greater than the previous seq 2"),
            "{err}"
        );

        let text = format!("5 {U0} 5\n4 {U0} 5\n");
        let err = parse_journal(text.as_bytes(), "j").expect_err("decrease");
        assert!(matches!(err, DiskError::Journal { line: 2, .. }), "{err}");

        let text = format!("0 {U0} 5\n");
        let err = parse_journal(text.as_bytes(), "j").expect_err("zero");
        assert!(matches!(err, DiskError::Journal { line: 1, .. }), "{err}");

        // Gaps are fine (other sites' numbering is not ours to check).
        let text = format!("3 {U0} 5\n10 {U0} 5\n");
        assert_eq!(
            parse_journal(text.as_bytes(), "j").expect("gaps").last_seq,
            10
        );
    }

    #[test]
    fn read_journal_missing_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_journal(&dir.path().join("nope.log")).expect_err("missing");
        assert!(matches!(err, DiskError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope.log"), "{err}");
    }

    #[test]
    fn read_journal_error_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pa.log");
        std::fs::write(&path, format!("1 {U0} 5\nbad\n")).expect("write");
        let err = read_journal(&path).expect_err("bad");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: expected \"<seq> <uuid> <block>\" (three fields separated by single spaces), found \"bad\"",
                path.display()
            )
        );
    }

    // ---- verification ----

    #[test]
    fn verify_consistent_set() {
        let mut g = Guest::new(&[U0, U1, U2], 64, 1);
        g.random_writes(500);
        for horizon in [Horizon::LastJournaled, Horizon::FromImages] {
            let v = g.verify(horizon);
            assert!(v.consistent, "{v:#?}");
            assert_eq!(v.horizon_seq, 500);
            assert_eq!(v.vms.len(), 3);
            for (i, vm) in v.vms.iter().enumerate() {
                assert!(vm.consistent);
                assert_eq!(vm.name, format!("vm{i}"));
                assert_eq!(vm.uuid, [U0, U1, U2][i]);
                assert_eq!(vm.blocks, 64);
                assert!(vm.written_blocks > 30 && vm.written_blocks <= 64, "{vm:?}");
                assert_eq!(vm.torn_blocks, 0);
                assert_eq!(vm.mismatched_blocks, 0);
                assert!(vm.examples.is_empty());
                assert_eq!(vm.writes_lost, 0);
            }
            assert_eq!(v.vms.iter().map(|vm| vm.last_seq_found).max(), Some(500));
        }
    }

    #[test]
    fn verify_empty_journal_and_zero_images_is_consistent() {
        let mut g = Guest::new(&[U0], 8, 1);
        let v = g.verify(Horizon::FromImages);
        assert!(v.consistent);
        assert_eq!(v.horizon_seq, 0);
        assert_eq!(v.vms[0].written_blocks, 0);
    }

    #[test]
    fn verify_older_seq_than_journaled_is_a_mismatch() {
        let mut g = Guest::new(&[U0, U1], 32, 2);
        g.random_writes(100);
        let old = g.write(0, 5);
        g.random_writes(10);
        let new = g.write(0, 5);
        g.random_writes(10);
        // The block goes back to the older write: a lost write.
        g.stamp(0, 0, 5, 5, old);
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        assert!(!v.vms[0].consistent);
        assert!(v.vms[1].consistent);
        assert_eq!(v.vms[0].mismatched_blocks, 1);
        assert_eq!(v.vms[0].torn_blocks, 0);
        assert_eq!(
            v.vms[0].examples,
            vec![Mismatch {
                block: 5,
                expected_seq: new,
                found: format!("seq {old}"),
            }]
        );
    }

    #[test]
    fn verify_unexpected_zero_and_unexpected_write() {
        let mut g = Guest::new(&[U0], 32, 3);
        let s = g.write(0, 2);
        g.images[0]
            .write_block(2, &[0u8; BLOCK_SIZE])
            .expect("zero");
        // A stamp that was never journaled (and is not the in-flight one).
        g.stamp(0, 0, 9, 9, s + 5);
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        assert_eq!(
            v.vms[0].examples,
            vec![
                Mismatch {
                    block: 2,
                    expected_seq: s,
                    found: "zero".into()
                },
                Mismatch {
                    block: 9,
                    expected_seq: 0,
                    found: format!("seq {}", s + 5)
                },
            ]
        );
    }

    #[test]
    fn verify_torn_block() {
        let mut g = Guest::new(&[U0, U1], 32, 4);
        g.random_writes(200);
        let s = g.write(1, 7);
        let mut buf = [0u8; BLOCK_SIZE];
        g.images[1].read_block_at(7, &mut buf).expect("read");
        buf[2000] ^= 0x10;
        g.images[1].write_block(7, &buf).expect("write");
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        assert!(v.vms[0].consistent);
        let vm = &v.vms[1];
        assert!(!vm.consistent);
        assert_eq!(vm.torn_blocks, 1);
        assert_eq!(vm.mismatched_blocks, 0);
        assert_eq!(
            vm.examples,
            vec![Mismatch {
                block: 7,
                expected_seq: s,
                found: "torn".into()
            }]
        );
    }

    #[test]
    fn verify_prefix_image_counts_writes_lost_from_images() {
        let mut g = Guest::new(&[U0, U1], 16, 5);
        g.apply_upto = 50;
        g.random_writes(100);
        let journal = read_journal(&g.journal_path()).expect("journal");
        let lost_of = |u: &str| {
            journal
                .entries
                .iter()
                .filter(|e| e.seq > 50 && e.uuid == uuid(u))
                .count() as u64
        };

        // A recovered copy frozen at seq 50 is consistent and lost the rest.
        let v = g.verify(Horizon::FromImages);
        assert!(v.consistent, "{v:#?}");
        assert_eq!(v.horizon_seq, 50);
        assert_eq!(v.vms[0].writes_lost, lost_of(U0));
        assert_eq!(v.vms[1].writes_lost, lost_of(U1));
        assert_eq!(v.vms[0].writes_lost + v.vms[1].writes_lost, 50);

        // As a live VM, the same images lose writes: inconsistent.
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        assert_eq!(v.horizon_seq, 100);
        assert!(v.vms.iter().all(|vm| vm.writes_lost == 0));
        for vm in &v.vms {
            assert!(vm.examples.len() <= 8);
            assert!(vm.examples.windows(2).all(|w| w[0].block < w[1].block));
            assert!(vm.examples.iter().all(|m| m.expected_seq > 50));
            assert!(vm.mismatched_blocks >= vm.examples.len() as u64);
        }
        assert!(v.vms.iter().any(|vm| vm.mismatched_blocks > 0));
    }

    #[test]
    fn verify_examples_are_capped_at_eight_lowest_first() {
        let mut g = Guest::new(&[U0], 32, 6);
        g.apply_upto = 0;
        for b in 0..20 {
            g.write(0, b);
        }
        let v = g.verify(Horizon::LastJournaled);
        let vm = &v.vms[0];
        assert_eq!(vm.mismatched_blocks, 20);
        let blocks: Vec<u64> = vm.examples.iter().map(|m| m.block).collect();
        assert_eq!(blocks, (0..8).collect::<Vec<_>>());
        assert!(vm.examples.iter().all(|m| m.found == "zero"));
        // Nothing stamped: S = 0 and every write is lost.
        let v = g.verify(Horizon::FromImages);
        assert!(v.consistent);
        assert_eq!(v.vms[0].writes_lost, 20);
    }

    #[test]
    fn verify_in_flight_write_is_accepted() {
        let mut g = Guest::new(&[U0, U1], 32, 7);
        g.random_writes(300);
        // Crash: write 301 landed on the disk, its journal line was cut short.
        g.stamp(1, 1, 11, 11, 301);
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(g.journal_path())
                .expect("open");
            f.write_all(format!("301 {U1} 1").as_bytes())
                .expect("write");
        }
        let v = g.verify(Horizon::LastJournaled);
        assert!(v.consistent, "{v:#?}");
        assert_eq!(v.horizon_seq, 300);
        let v = g.verify(Horizon::FromImages);
        assert!(v.consistent, "{v:#?}");
        assert_eq!(v.horizon_seq, 301);
        assert_eq!(v.vms[1].last_seq_found, 301);
        assert!(v.vms.iter().all(|vm| vm.writes_lost == 0));

        // But not a stamp two past the journal.
        g.stamp(0, 0, 12, 12, 302);
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        assert_eq!(v.vms[0].examples[0].found, "seq 302");
        assert!(v.vms[1].consistent);
    }

    #[test]
    fn verify_foreign_stamp_is_a_mismatch() {
        let mut g = Guest::new(&[U0, U1], 32, 8);
        g.random_writes(100);
        let s = g.write(1, 2);
        let expected = g.write(0, 2);
        // vm1's block 2 lands in vm0's image: a write to the wrong disk.
        g.stamp(0, 1, 2, 2, s);
        // vm0's own stamp of block 9 lands at block 20.
        let s9 = g.write(0, 9);
        g.images[0]
            .write_block(20, &{
                let mut b = [0u8; BLOCK_SIZE];
                stamp_block(&uuid(U0), 9, s9, &mut b);
                b
            })
            .expect("write");
        let v = g.verify(Horizon::LastJournaled);
        assert!(!v.consistent);
        let vm = &v.vms[0];
        assert_eq!(vm.examples[0].block, 2);
        assert_eq!(vm.examples[0].expected_seq, expected);
        assert_eq!(vm.examples[0].found, format!("foreign {U1}/2 seq {s}"));
        let at20 = vm
            .examples
            .iter()
            .find(|m| m.block == 20)
            .expect("block 20");
        assert_eq!(at20.found, format!("foreign {U0}/9 seq {s9}"));
        assert!(vm.written_blocks >= 2);
        assert!(v.vms[1].consistent);
    }

    /// An in-memory disk, to check that any BlockRead works and read errors surface.
    struct MemDisk {
        blocks: Vec<Block>,
        fail_at: Option<u64>,
    }

    impl BlockRead for MemDisk {
        fn block_count(&self) -> u64 {
            self.blocks.len() as u64
        }
        fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()> {
            if self.fail_at == Some(index) {
                return Err(io::Error::other("injected failure"));
            }
            *buf = self.blocks[index as usize];
            Ok(())
        }
    }

    #[test]
    fn verify_through_any_block_reader_and_read_errors_surface() {
        let u = uuid(U2);
        let mut disk = MemDisk {
            blocks: vec![[0u8; BLOCK_SIZE]; 4],
            fail_at: None,
        };
        stamp_block(&u, 1, 1, &mut disk.blocks[1]);
        let journal =
            parse_journal(format!("1 {U2} 1\n2 {U0} 3\n").as_bytes(), "m").expect("journal");
        let v = verify_set(
            &mut [VmDisk {
                name: "mem".into(),
                uuid: u,
                reader: &mut disk,
            }],
            &journal,
            Horizon::LastJournaled,
        )
        .expect("verify");
        assert!(v.consistent, "{v:#?}");
        assert_eq!(v.horizon_seq, 2);

        disk.fail_at = Some(2);
        let err = verify_set(
            &mut [VmDisk {
                name: "mem".into(),
                uuid: u,
                reader: &mut disk,
            }],
            &journal,
            Horizon::LastJournaled,
        )
        .expect_err("read error");
        let msg = err.to_string();
        assert!(msg.contains("mem") && msg.contains("block 2"), "{msg}");
        assert!(msg.contains("injected failure"), "{msg}");
    }

    #[test]
    fn verify_result_serializes() {
        let mut g = Guest::new(&[U0], 4, 9);
        g.write(0, 1);
        let v = g.verify(Horizon::LastJournaled);
        let json = serde_json::to_string(&v).expect("json");
        assert!(json.contains("\"horizon_seq\":1"), "{json}");
        assert!(json.contains(U0), "{json}");
    }
}
