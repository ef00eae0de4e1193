//! Dirty tracking: one bit per block of an image, set by every write.

use super::*;

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
