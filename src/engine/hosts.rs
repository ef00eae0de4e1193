//! Proactive resource reservation: a protected-site host fault lists the impacted VMs,
//! reserves capacity for them on other hosts (or says what does not fit) and restarts them
//! there (seed `related-ha-and-replication-abstracts.txt`).

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError};
#[allow(unused_imports)]
use super::{Outcome, SimTime};
#[allow(unused_imports)]
use crate::disk::Block;

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct HostsSaved {}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct HostsRt {}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostView {}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn hosts_saved(&self) -> HostsSaved {
        HostsSaved::default()
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_hosts(&mut self, _saved: HostsSaved) -> Result<(), EngineError> {
        Ok(())
    }

    /// A queued `Ev::Hosts` event fell due.
    pub(super) fn on_hosts_event(&mut self, _i: usize, _gen: u64) -> Result<(), EngineError> {
        Ok(())
    }

    /// The snapshot's view.
    pub(super) fn hosts_views(&self) -> Vec<HostView> {
        Vec::new()
    }

    /// A protected-site host reports a failure that impacts its VMs.
    pub(super) fn host_fault(&mut self, _host: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "HostFault: not built yet".into(),
        })
    }

    /// The host is repaired: it takes VMs again, its reservations are released.
    pub(super) fn host_healthy(&mut self, _host: &str) -> Result<Outcome, EngineError> {
        Err(EngineError::State {
            file: "engine".into(),
            message: "HostHealthy: not built yet".into(),
        })
    }

    /// `Expect(OnHost(vm, host))`: the VM runs on this host now.
    pub fn expect_on_host(&self, vm: &str, host: &str) -> (bool, String) {
        (false, format!("{vm} {host}: not built yet"))
    }
}
