//! Block stamps: writing and inspecting the self-describing 4 KiB blocks (SPEC §4.2).

use super::*;

pub(super) fn le_u64(bytes: &[u8], at: usize) -> u64 {
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
