//! The live-copy core of a storage migration (SPEC §5, seed
//! `live-storage-migration-io-modes.txt`): where each guest read and write goes while a
//! disk is copied, which blocks the copier copies next, and which wait. It does no I/O and
//! knows no clock, so the simulated engine and the threaded benchmark drive the same logic.
//!
//! Blocks are the guest's 4 KiB blocks. The disk is split by a cursor into a *copied*
//! region (`< cursor`) and a *to-be-copied* region (`>= cursor`). The copier copies one
//! *run* at a time (a range starting at the cursor, at least 1 MiB unless the disk ends);
//! guest I/O to a block of the run in flight waits until the run ends.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// The three I/O modes of the seed patent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CopyMode {
    /// (a) Writes to the to-be-copied region go to the destination; the source freezes at
    /// the migration's start.
    Redirect,
    /// (b) The to-be-copied region uses the source; writes to the copied region go to the
    /// destination. A disaster mid-copy leaves the source inconsistent.
    Split,
    /// (c) Everything uses the source; writes to the copied region are mirrored to the
    /// destination. The source stays complete.
    Mirror,
}

impl CopyMode {
    pub const ALL: [CopyMode; 3] = [CopyMode::Redirect, CopyMode::Split, CopyMode::Mirror];

    pub fn as_str(self) -> &'static str {
        match self {
            CopyMode::Redirect => "redirect",
            CopyMode::Split => "split",
            CopyMode::Mirror => "mirror",
        }
    }

    pub fn parse(s: &str) -> Option<CopyMode> {
        CopyMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// What a disaster in mid-copy leaves at the source (SPEC §5), for the wizard.
    pub fn disaster_note(self) -> &'static str {
        match self {
            CopyMode::Mirror => {
                "Mirror keeps the source complete: every write lands on the source, and writes to the copied part are also sent to the destination. A disaster mid-copy leaves a complete, current source."
            }
            CopyMode::Redirect => {
                "Redirect freezes the source at the migration's start: new writes go to the destination only. A disaster mid-copy leaves a consistent but older source; every write since the start is lost with it."
            }
            CopyMode::Split => {
                "Split keeps writing the not-yet-copied part on the source but the copied part on the destination. A disaster mid-copy leaves a source that is neither old nor new: inconsistent."
            }
        }
    }
}

/// The mirror's back-pressure (SPEC §5, the patent's threshold): a new mirrored write waits
/// only when *more than* `max_pending` mirrored writes are pending. With `max_pending` = k a
/// write that finds k pending is accepted, so k + 1 may be pending before one waits. The
/// simulated engine and the threaded benchmark both ask this, so they cannot drift apart.
pub fn mirror_must_wait(pending: usize, max_pending: usize) -> bool {
    pending > max_pending
}

/// Where a guest write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRoute {
    /// The block is in the run being copied: wait for the run to end.
    Wait,
    Source,
    /// Write the destination (the block's bit is now set).
    Destination,
    /// Write the source and mirror the write to the destination.
    SourceAndMirror,
}

/// Where a guest read comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRoute {
    Wait,
    Source,
    Destination,
}

/// A bit per block; `true` = the block's newest data is on the destination only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Bitmap {
        Bitmap {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
    /// Sets bit `i`; returns true if it was clear.
    pub fn set(&mut self, i: u64) -> bool {
        let w = &mut self.words[(i / 64) as usize];
        let was = *w & (1 << (i % 64)) != 0;
        *w |= 1 << (i % 64);
        !was
    }
    pub fn clear(&mut self, i: u64) {
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
    }
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    /// Set bits in `range`.
    pub fn count_in(&self, range: Range<u64>) -> u64 {
        range.filter(|&i| self.get(i)).count() as u64
    }
    /// The set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let base = wi as u64 * 64;
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = u64::from(w.trailing_zeros());
                w &= w - 1;
                Some(base + b)
            })
        })
    }
    /// The byte that holds bit `i`, and that byte's index, for write-ahead persistence.
    pub fn byte_of(&self, i: u64) -> (u64, u8) {
        let byte = i / 8;
        let word = self.words[(byte / 8) as usize];
        (byte, (word >> ((byte % 8) * 8)) as u8)
    }
    /// Bytes in little-endian bit order (bit i is bit i%8 of byte i/8).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.len.div_ceil(8) as usize;
        self.words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(n)
            .collect()
    }
    pub fn from_bytes(bytes: &[u8], len: u64) -> Bitmap {
        let mut b = Bitmap::new(len);
        for (i, &byte) in bytes.iter().enumerate().take(len.div_ceil(8) as usize) {
            b.words[i / 8] |= u64::from(byte) << ((i % 8) * 8);
        }
        // Bits past `len` are meaningless; keep them clear.
        if !len.is_multiple_of(64)
            && let Some(last) = b.words.last_mut()
        {
            *last &= (1u64 << (len % 64)) - 1;
        }
        b
    }
}

/// Which way the copy runs: forward (migration) or back (cancel of redirect/split, which
/// copies every block whose newest data is on the destination back to the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Forward,
    Back,
}

/// The routing state of one disk's live copy.
#[derive(Debug, Clone)]
pub struct CopyCore {
    pub mode: CopyMode,
    pub blocks: u64,
    /// Blocks below the cursor are copied.
    pub cursor: u64,
    /// Blocks whose newest data is on the destination only (redirect and split).
    pub bits: Bitmap,
    /// The run being copied, if any.
    pub in_flight: Option<Range<u64>>,
    /// Blocks per copy run.
    pub run_blocks: u64,
    pub direction: Direction,
}

impl CopyCore {
    pub fn new(mode: CopyMode, blocks: u64, run_blocks: u64) -> CopyCore {
        CopyCore {
            mode,
            blocks,
            cursor: 0,
            bits: Bitmap::new(blocks),
            in_flight: None,
            run_blocks: run_blocks.max(1),
            direction: Direction::Forward,
        }
    }

    fn waits(&self, block: u64) -> bool {
        self.in_flight.as_ref().is_some_and(|r| r.contains(&block))
    }

    /// Routes a guest write to `block`. A `Destination` route sets the block's bit; the caller
    /// must persist that bit before the write lands (see `Bitmap::byte_of`).
    pub fn route_write(&mut self, block: u64) -> WriteRoute {
        if self.waits(block) {
            return WriteRoute::Wait;
        }
        if self.direction == Direction::Back {
            // Rolling back: the source becomes current again block by block.
            self.bits.clear(block);
            return WriteRoute::Source;
        }
        let copied = block < self.cursor;
        match (self.mode, copied) {
            (CopyMode::Redirect, _) | (CopyMode::Split, true) => {
                self.bits.set(block);
                WriteRoute::Destination
            }
            // A set bit past the cursor (the cursor lags after a crash) keeps the block on
            // the destination, where its newest data is.
            (CopyMode::Split, false) if self.bits.get(block) => WriteRoute::Destination,
            (CopyMode::Split, false) => WriteRoute::Source,
            (CopyMode::Mirror, true) => WriteRoute::SourceAndMirror,
            (CopyMode::Mirror, false) => WriteRoute::Source,
        }
    }

    /// Routes a guest read of `block`.
    pub fn route_read(&self, block: u64) -> ReadRoute {
        if self.waits(block) {
            return ReadRoute::Wait;
        }
        self.location(block)
    }

    /// Where the newest data of `block` is right now (a run in flight has not landed yet).
    pub fn location(&self, block: u64) -> ReadRoute {
        match (self.mode, self.direction) {
            (CopyMode::Mirror, _) => ReadRoute::Source,
            (_, Direction::Back) => {
                if self.bits.get(block) {
                    ReadRoute::Destination
                } else {
                    ReadRoute::Source
                }
            }
            (CopyMode::Redirect, Direction::Forward) => {
                if block < self.cursor || self.bits.get(block) {
                    ReadRoute::Destination
                } else {
                    ReadRoute::Source
                }
            }
            (CopyMode::Split, Direction::Forward) => {
                // Only copied blocks get bits; after a crash the cursor may lag behind them.
                if self.bits.get(block) {
                    ReadRoute::Destination
                } else {
                    ReadRoute::Source
                }
            }
        }
    }

    /// Starts the next run and returns it; None when nothing is left to copy.
    pub fn begin_run(&mut self) -> Option<Range<u64>> {
        debug_assert!(self.in_flight.is_none());
        let run = match self.direction {
            Direction::Forward => {
                if self.cursor >= self.blocks {
                    return None;
                }
                self.cursor..(self.cursor + self.run_blocks).min(self.blocks)
            }
            Direction::Back => {
                // Copy back from the first set bit, a run at a time.
                let first = self.bits.ones().next()?;
                first..(first + self.run_blocks).min(self.blocks)
            }
        };
        self.in_flight = Some(run.clone());
        Some(run)
    }

    /// The pieces of a run to actually copy: forward, every block whose bit is clear (a set
    /// bit means the destination already holds newer data); back, every block whose bit is
    /// set. Returned as maximal ranges so the caller copies in large I/Os.
    pub fn pieces(&self, run: &Range<u64>) -> Vec<Range<u64>> {
        let want = |b: u64| match self.direction {
            Direction::Forward => !self.bits.get(b),
            Direction::Back => self.bits.get(b),
        };
        let mut out: Vec<Range<u64>> = Vec::new();
        for b in run.clone() {
            if want(b) {
                match out.last_mut() {
                    Some(r) if r.end == b => r.end = b + 1,
                    _ => out.push(b..b + 1),
                }
            }
        }
        out
    }

    /// Ends the run: forward, the cursor moves past it; back, its bits are cleared.
    pub fn finish_run(&mut self, run: Range<u64>) {
        match self.direction {
            Direction::Forward => self.cursor = self.cursor.max(run.end),
            Direction::Back => {
                for b in run {
                    self.bits.clear(b);
                }
            }
        }
        self.in_flight = None;
    }

    /// Turns a forward copy into a roll-back (cancel of redirect or split).
    pub fn start_rollback(&mut self) {
        self.direction = Direction::Back;
        self.in_flight = None;
    }

    /// Blocks the copier still has to copy (the "dirty blocks left" of the task list).
    pub fn blocks_left(&self) -> u64 {
        match self.direction {
            Direction::Forward => {
                let rest = self.blocks.saturating_sub(self.cursor);
                rest - self.bits.count_in(self.cursor..self.blocks)
            }
            Direction::Back => self.bits.count(),
        }
    }

    pub fn done(&self) -> bool {
        self.in_flight.is_none()
            && match self.direction {
                Direction::Forward => self.cursor >= self.blocks,
                Direction::Back => self.bits.count() == 0,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_bytes_round_trip() {
        let mut b = Bitmap::new(130);
        for i in [0, 7, 8, 63, 64, 129] {
            b.set(i);
        }
        let back = Bitmap::from_bytes(&b.to_bytes(), 130);
        assert_eq!(back, b);
        assert_eq!(back.ones().collect::<Vec<_>>(), vec![0, 7, 8, 63, 64, 129]);
        assert_eq!(b.byte_of(129), (16, 0b10));
        assert_eq!(b.count(), 6);
    }

    #[test]
    fn redirect_routes() {
        let mut c = CopyCore::new(CopyMode::Redirect, 10, 4);
        assert_eq!(c.route_write(7), WriteRoute::Destination);
        assert_eq!(c.route_read(7), ReadRoute::Destination);
        assert_eq!(c.route_read(6), ReadRoute::Source);
        let run = c.begin_run().unwrap();
        assert_eq!(run, 0..4);
        assert_eq!(c.route_write(2), WriteRoute::Wait);
        assert_eq!(c.route_read(3), ReadRoute::Wait);
        c.finish_run(run);
        assert_eq!(c.route_read(2), ReadRoute::Destination);
        let run = c.begin_run().unwrap();
        assert_eq!(c.pieces(&run), vec![4..7]);
        c.finish_run(run);
        let run = c.begin_run().unwrap();
        assert_eq!(run, 8..10);
        c.finish_run(run);
        assert!(c.done());
        assert!(c.begin_run().is_none());
    }

    #[test]
    fn split_routes() {
        let mut c = CopyCore::new(CopyMode::Split, 8, 4);
        assert_eq!(c.route_write(6), WriteRoute::Source);
        let run = c.begin_run().unwrap();
        c.finish_run(run);
        assert_eq!(c.route_read(1), ReadRoute::Source);
        assert_eq!(c.route_write(1), WriteRoute::Destination);
        assert_eq!(c.route_read(1), ReadRoute::Destination);
        assert_eq!(c.route_read(5), ReadRoute::Source);
        assert_eq!(c.blocks_left(), 4);
    }

    #[test]
    fn mirror_routes() {
        let mut c = CopyCore::new(CopyMode::Mirror, 8, 4);
        assert_eq!(c.route_write(1), WriteRoute::Source);
        let run = c.begin_run().unwrap();
        c.finish_run(run);
        assert_eq!(c.route_write(1), WriteRoute::SourceAndMirror);
        assert_eq!(c.route_read(1), ReadRoute::Source);
        assert_eq!(c.bits.count(), 0);
    }

    #[test]
    fn rollback_copies_set_bits_back() {
        let mut c = CopyCore::new(CopyMode::Redirect, 300, 16);
        for b in [5, 6, 7, 200] {
            c.route_write(b);
        }
        c.start_rollback();
        assert_eq!(c.blocks_left(), 4);
        // A write during the roll-back goes to the source and clears the bit.
        assert_eq!(c.route_write(200), WriteRoute::Source);
        assert_eq!(c.route_read(6), ReadRoute::Destination);
        let run = c.begin_run().unwrap();
        assert_eq!(run, 5..21);
        assert_eq!(c.pieces(&run), vec![5..8]);
        c.finish_run(run);
        assert!(c.done());
        assert_eq!(c.route_read(6), ReadRoute::Source);
    }
}
