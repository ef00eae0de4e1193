//! Distributed (RAID-1) datastores whose legs sit at two sites, created and served during a
//! partition, rebuilt from a bitmap of tracked blocks on heal (SPEC §8, seed
//! `distributed-volume-during-partition.txt`).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
#[allow(unused_imports)]
use super::{Outcome, SimTime};
#[allow(unused_imports)]
use crate::disk::Block;

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct StretchSaved {}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct StretchRt {}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DistributedView {}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn stretch_saved(&self) -> StretchSaved {
        StretchSaved::default()
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_stretch(&mut self, _saved: StretchSaved) -> Result<(), EngineError> {
        Ok(())
    }

    /// A queued `Ev::Stretch` event fell due.
    pub(super) fn on_stretch_event(&mut self, _i: usize, _gen: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// The snapshot's view.
    pub(super) fn stretch_views(&self) -> Vec<DistributedView> {
        Vec::new()
    }

    /// Creates a planned distributed datastore: both legs, or the local leg only while
    /// the other site is partitioned away.
    pub(super) fn create_datastore(&mut self, _datastore: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "CreateDatastore: not built yet".into(),
        })
    }

    /// The site can no longer be reached from the others (inter-site network down).
    pub(super) fn partition_site(&mut self, _site: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "PartitionSite: not built yet".into(),
        })
    }

    /// The partition ends.
    pub(super) fn heal_partition(&mut self) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "HealPartition: not built yet".into(),
        })
    }

    /// A guest write landed on VM `i`'s image (block `block`, content `buf`).
    pub(super) fn stretch_after_write(
        &mut self,
        _i: usize,
        _block: u64,
        _buf: &Block,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// `Expect(Compliant(datastore))`: both legs present, nothing left to rebuild, and the
    /// legs byte-identical.
    pub fn expect_compliant(&self, datastore: &str) -> (bool, String) {
        (false, format!("{datastore}: not built yet"))
    }

    /// `Expect(OutOfCompliance(datastore))`.
    pub fn expect_out_of_compliance(&self, datastore: &str) -> (bool, String) {
        (false, format!("{datastore}: not built yet"))
    }

    /// An array holding a leg of a distributed datastore reports a fault: serve those
    /// datastores from their other leg. Returns what changed, one line per datastore
    /// (empty: the array holds no leg). Called by the health module's `array_fault`.
    pub(super) fn stretch_array_fault(&mut self, _array: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    /// The array is healthy again: rebuild its legs from the tracked blocks, then serve
    /// from the preferred leg again. Called by the health module's `array_healthy`.
    pub(super) fn stretch_array_healthy(
        &mut self,
        _array: &str,
    ) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }
}
