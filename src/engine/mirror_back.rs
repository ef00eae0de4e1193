//! Reverse replication's fan-out, shared by a group migration and a cross-site move: after
//! their switch, each guest write of a switched VM is also written to its source instance,
//! so the source stays a consistent fail-back until the destination is protected.

use std::collections::BTreeMap;

use super::{EngineError, alive, io_err_at};
use crate::disk::{Block, ImageFile};

/// The source images the switched VMs' writes are mirrored back to, by VM index.
#[derive(Default)]
pub(super) struct MirrorBack(BTreeMap<usize, ImageFile>);

impl MirrorBack {
    pub(super) fn insert(&mut self, i: usize, source: ImageFile) {
        self.0.insert(i, source);
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn contains(&self, i: usize) -> bool {
        self.0.contains_key(&i)
    }

    /// Writes `block` of VM `i` to its source too, if it has one: whether it did.
    pub(super) fn write(&self, i: usize, block: u64, buf: &Block) -> Result<bool, EngineError> {
        let Some(src) = self.0.get(&i) else {
            return Ok(false);
        };
        alive()?;
        src.write_block(block, buf).map_err(io_err_at(src.path()))?;
        Ok(true)
    }
}
