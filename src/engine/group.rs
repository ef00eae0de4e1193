//! Group migration: every VM of one CG moves to another CG as one operation, with the
//! destination's writes mirrored back so the source CG stays a valid fail-back until the
//! destination CG has published a recovery point holding all of them (seed
//! `live-migration-consistency-group-abstracts.txt`).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
#[allow(unused_imports)]
use super::{Outcome, SimTime};
#[allow(unused_imports)]
use crate::disk::Block;

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupMoveSaved {}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct GroupMoveRt {}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupMigrationView {}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn group_saved(&self) -> GroupMoveSaved {
        GroupMoveSaved::default()
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_group(&mut self, _saved: GroupMoveSaved) -> Result<(), EngineError> {
        Ok(())
    }

    /// A queued `Ev::Group` event fell due.
    pub(super) fn on_group_event(&mut self, _i: usize, _gen: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// The snapshot's view.
    pub(super) fn group_migration_views(&self) -> Vec<GroupMigrationView> {
        Vec::new()
    }

    /// Migrates every VM of consistency group `from` to datastores of CG `to`.
    pub(super) fn migrate_group(
        &mut self,
        _from: &str,
        _to: &str,
        _confirm: bool,
    ) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "MigrateGroup: not built yet".into(),
        })
    }

    /// A guest write landed on VM `i`'s image.
    pub(super) fn group_after_write(
        &mut self,
        _i: usize,
        _block: u64,
        _buf: &Block,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// VM `i`'s copy is done: true holds its switch-over (a group migration switches all
    /// of its VMs at once).
    pub(super) fn group_holds_completion(&mut self, _i: usize) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// VM `i`'s migration ended (completed or cancelled).
    pub(super) fn group_migration_ended(
        &mut self,
        _i: usize,
        _completed: bool,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    /// `Expect(GroupMigrated(from, to))`: the group migration declared success.
    pub fn expect_group_migrated(&self, from: &str, to: &str) -> (bool, String) {
        (false, format!("{from} {to}: not built yet"))
    }
}
