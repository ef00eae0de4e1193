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

mod dirty;
mod handles;
mod image;
mod journal;
mod stamp;
mod undo;
mod verify;

pub use dirty::*;
pub use handles::{OPEN_IMAGES_VAR, close_idle_images};
pub use image::*;
pub use journal::*;
pub use stamp::*;
pub use undo::UndoLog;
pub use verify::*;

#[cfg(test)]
mod tests;

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
