//! The engine's command vocabulary: what an operator, a scenario or the GUI asks of it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::FailoverKind;
use super::copy::CopyMode;

/// What an operator (or a scenario) asks of the engine: the one list of commands. Its
/// serde shape is the scenario file's (SPEC §10): `Migrate(vm: "vm1", to: "ds-2", mode:
/// Mirror, confirm: true)`, `LinkDown` (`scenario::Action` writes and reads it). A new
/// command is added here (and carried out in `Engine::apply`); scenarios, the demo player and the
/// console's messages follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    StartWorkloads,
    StopWorkloads,
    Migrate {
        vm: String,
        to: String,
        mode: CopyMode,
        /// The operator's "Are you sure?" for a rating above `none`.
        confirm: bool,
    },
    CancelMigration {
        vm: String,
    },
    /// Retries a redirect/split roll-back that stopped on an I/O error (phase
    /// `RollbackFailed`): the blocks still newer on the destination are copied back.
    RetryRollback {
        vm: String,
    },
    /// A replication cycle of the datastore's group, at once.
    ReplicateNow {
        datastore: String,
    },
    PauseReplication {
        datastore: String,
    },
    ResumeReplication {
        datastore: String,
    },
    LinkDown,
    LinkUp,
    /// Everything at the site stops at once.
    Disaster {
        site: String,
    },
    Failover {
        protection_groups: Vec<String>,
        kind: FailoverKind,
    },
    /// Removes a test failover's isolated copies.
    CleanupTestFailover,
    /// Creates a planned distributed datastore (`distributed: Some(.., created: false)`).
    CreateDatastore {
        datastore: String,
    },
    /// The site is cut off from the others (inter-site network partition).
    PartitionSite {
        site: String,
    },
    HealPartition,
    /// An array reports a health condition (swap its pairs' I/O to the healthy side).
    ArrayFault {
        array: String,
    },
    ArrayHealthy {
        array: String,
    },
    /// A protected-site host fails: reserve capacity elsewhere, restart its VMs there.
    HostFault {
        host: String,
    },
    HostHealthy {
        host: String,
    },
    /// Moves every VM of consistency group `from` to CG `to`, as one operation.
    MigrateGroup {
        from: String,
        to: String,
        confirm: bool,
    },
    EnterMaintenance {
        datastore: String,
        confirm: bool,
    },
    ExitMaintenance {
        datastore: String,
    },
    /// Evens out space use in a datastore cluster.
    Balance {
        cluster: String,
        confirm: bool,
    },
    /// Rescan arrays (SPEC §2): re-reads the topology file and adopts its arrays, LUNs,
    /// datastores, protection groups, hosts and links; tags and replication groups follow.
    Rescan {
        file: PathBuf,
    },
}

/// How a command ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// Not carried out by rule (a migration needing an override without one).
    Refused(String),
}
