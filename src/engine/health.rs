//! Array health events: a fault swaps host I/O of a replicated or distributed pair to its
//! healthy side; when health returns the changes are mirrored back and replication
//! restarts in its original direction only after that resync (seed
//! `related-ha-and-replication-abstracts.txt`).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
#[allow(unused_imports)]
use super::{Outcome, SimTime};
#[allow(unused_imports)]
use crate::disk::Block;

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct HealthSaved {}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct HealthRt {}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArrayView {}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn health_saved(&self) -> HealthSaved {
        HealthSaved::default()
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_health(&mut self, _saved: HealthSaved) -> Result<(), EngineError> {
        Ok(())
    }

    /// A queued `Ev::Health` event fell due.
    pub(super) fn on_health_event(&mut self, _i: usize, _gen: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// The snapshot's view.
    pub(super) fn health_views(&self) -> Vec<ArrayView> {
        Vec::new()
    }

    /// An array reports a health condition: swap host I/O of its pairs to the healthy side.
    pub(super) fn array_fault(&mut self, _array: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "ArrayFault: not built yet".into(),
        })
    }

    /// The array is healthy again: mirror the changes back, then restart replication in
    /// its original direction.
    pub(super) fn array_healthy(&mut self, _array: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "ArrayHealthy: not built yet".into(),
        })
    }

    /// A guest write landed on VM `i`'s image.
    pub(super) fn health_after_write(
        &mut self,
        _i: usize,
        _block: u64,
        _buf: &Block,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// `Expect(ServedBy(vm, array))`: the VM's I/O goes to a LUN of this array now.
    pub fn expect_served_by(&self, vm: &str, array: &str) -> (bool, String) {
        (false, format!("{vm} {array}: not built yet"))
    }

    /// `Expect(Replicating(datastore))`: its group replicates in its original direction
    /// and has published a point since the last swap back.
    pub fn expect_replicating(&self, datastore: &str) -> (bool, String) {
        (false, format!("{datastore}: not built yet"))
    }
}
