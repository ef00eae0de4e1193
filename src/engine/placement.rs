//! Datastore clusters: maintenance mode evacuates a datastore, Balance evens out space use;
//! moves that keep DR protection run at once, the others are recommendations with their
//! ratings that need the operator's override (seed `storage-migration-dr-tags-and-marks.txt`).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
#[allow(unused_imports)]
use super::{Outcome, SimTime};
#[allow(unused_imports)]
use crate::disk::Block;

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct PlacementSaved {}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct PlacementRt {}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlacementView {}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn placement_saved(&self) -> PlacementSaved {
        PlacementSaved::default()
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_placement(&mut self, _saved: PlacementSaved) -> Result<(), EngineError> {
        Ok(())
    }

    /// A queued `Ev::Placement` event fell due.
    pub(super) fn on_placement_event(&mut self, _i: usize, _gen: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// The snapshot's view.
    pub(super) fn placement_views(&self) -> Vec<PlacementView> {
        Vec::new()
    }

    /// Puts a datastore in maintenance mode and evacuates it.
    pub(super) fn enter_maintenance(
        &mut self,
        _datastore: &str,
        _confirm: bool,
    ) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "EnterMaintenance: not built yet".into(),
        })
    }

    /// Takes a datastore out of maintenance mode.
    pub(super) fn exit_maintenance(&mut self, _datastore: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "ExitMaintenance: not built yet".into(),
        })
    }

    /// Recommends (and with `confirm`, starts) moves that even out space use in a cluster.
    pub(super) fn balance(
        &mut self,
        _cluster: &str,
        _confirm: bool,
    ) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "Balance: not built yet".into(),
        })
    }

    /// VM `i`'s migration ended (completed or cancelled).
    pub(super) fn placement_migration_ended(
        &mut self,
        _i: usize,
        _completed: bool,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// `Expect(InMaintenance(datastore))`: in maintenance mode and holding no VM.
    pub fn expect_in_maintenance(&self, datastore: &str) -> (bool, String) {
        (false, format!("{datastore}: not built yet"))
    }
}
