//! The engine's command vocabulary: what an operator, a scenario or the GUI asks of it.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::copy::CopyMode;
use super::{FailoverKind, format_time, from_minutes};

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
    /// A site lost in a disaster returns as it was then (SPEC §11).
    SiteUp {
        site: String,
    },
    /// Reverses the replication of failed-over PGs (SPEC §11).
    Reprotect {
        protection_groups: Vec<String>,
    },
    Failover {
        protection_groups: Vec<String>,
        kind: FailoverKind,
        /// Recover each group from its latest retained point cut at or before this
        /// simulated minute (SPEC §11); none: the latest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        point: Option<f64>,
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
    /// Moves every VM of replicated consistency group `consistency_group` to the other
    /// site while it runs, on its replicas (SPEC §12).
    MigrateAcross {
        consistency_group: String,
        confirm: bool,
        /// `Break` moves the VMs one by one (SPEC §12); `Keep` is the default.
        #[serde(default, skip_serializing_if = "super::Consistency::is_keep")]
        consistency: super::Consistency,
    },
    /// Fails a running cross-site move back to its source.
    CancelAcross {
        consistency_group: String,
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
    /// Creates a new VM (initial placement): its instance on `vm.datastore` (vm.ron and a
    /// zeroed disk), the topology in use and the recovery manager's locations. The
    /// placement is rated against `protection_group`, the protection the VM is meant to
    /// have ([`crate::dr::rate_placement`]); above `none` it needs `confirm`.
    AddVm {
        vm: crate::topology::Vm,
        protection_group: String,
        confirm: bool,
    },
    /// Rescan arrays (SPEC §2): re-reads the topology file and adopts its arrays, LUNs,
    /// datastores, protection groups, hosts and links; tags and replication groups follow.
    Rescan {
        file: PathBuf,
    },
}

impl fmt::Display for Command {
    /// The command in a few words, as the console's messages and the demo's captions say
    /// it: "Migrate vm1 to ds-2 (mirror)". (A scenario file's RON spelling is
    /// `scenario::Action`'s `Display`.)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phrase = match self {
            Command::StartWorkloads => "Start workloads".into(),
            Command::StopWorkloads => "Stop workloads".into(),
            Command::Migrate { vm, to, mode, .. } => {
                format!("Migrate {vm} to {to} ({})", mode.as_str())
            }
            Command::CancelMigration { vm } => format!("Cancel the migration of {vm}"),
            Command::RetryRollback { vm } => format!("Retry the roll-back of {vm}'s migration"),
            Command::ReplicateNow { datastore } => format!("Replicate {datastore} now"),
            Command::PauseReplication { datastore } => format!("Pause replication of {datastore}"),
            Command::ResumeReplication { datastore } => {
                format!("Resume replication of {datastore}")
            }
            Command::LinkDown => "Link down".into(),
            Command::LinkUp => "Link up".into(),
            Command::Disaster { site } => format!("Disaster at {site}"),
            Command::SiteUp { site } => format!("Site {site} returns"),
            Command::Reprotect { protection_groups } => {
                format!("Reprotect {}", protection_groups.join(", "))
            }
            Command::Failover {
                protection_groups,
                kind,
                point,
            } => format!(
                "{} failover of {}{}",
                kind.as_str(),
                protection_groups.join(", "),
                point
                    .map(|m| format!(
                        " to the point at or before {}",
                        format_time(from_minutes(m))
                    ))
                    .unwrap_or_default()
            ),
            Command::CleanupTestFailover => "Clean up the test failover".into(),
            Command::CreateDatastore { datastore } => format!("Create datastore {datastore}"),
            Command::PartitionSite { site } => format!("Partition site {site} away"),
            Command::HealPartition => "Heal the partition".into(),
            Command::ArrayFault { array } => format!("Array {array} reports a fault"),
            Command::ArrayHealthy { array } => format!("Array {array} is healthy again"),
            Command::HostFault { host } => format!("Host {host} fails"),
            Command::HostHealthy { host } => format!("Host {host} is repaired"),
            Command::MigrateGroup { from, to, .. } => {
                format!("Migrate consistency group {from} to {to}")
            }
            Command::MigrateAcross {
                consistency_group,
                consistency,
                ..
            } => format!(
                "Move consistency group {consistency_group} to the other site{}",
                if consistency.is_keep() {
                    ""
                } else {
                    ", one VM at a time"
                }
            ),
            Command::CancelAcross { consistency_group } => {
                format!("Cancel the cross-site move of {consistency_group}")
            }
            Command::EnterMaintenance { datastore, .. } => {
                format!("Enter maintenance mode on {datastore}")
            }
            Command::ExitMaintenance { datastore } => {
                format!("Exit maintenance mode on {datastore}")
            }
            Command::Balance { cluster, .. } => format!("Balance datastore cluster {cluster}"),
            Command::Rescan { file } => format!("Rescan arrays from {}", file.display()),
            Command::AddVm {
                vm,
                protection_group,
                ..
            } => format!(
                "Add VM {} ({} MiB) on {} for {protection_group}",
                vm.id, vm.disk_mib, vm.datastore
            ),
        };
        f.write_str(&phrase)
    }
}

impl Command {
    /// Does `other` ask for what `self` asks? As a panel would send it: a migration's
    /// `confirm` (the wizard sends it only for a risky move) and the order of a failover's
    /// protection groups do not count.
    pub fn same_request(&self, other: &Command) -> bool {
        match (self, other) {
            (
                Command::Migrate { vm, to, mode, .. },
                Command::Migrate {
                    vm: v2,
                    to: t2,
                    mode: m2,
                    ..
                },
            ) => vm == v2 && to == t2 && mode == m2,
            (
                Command::Failover {
                    protection_groups,
                    kind,
                    ..
                },
                Command::Failover {
                    protection_groups: p2,
                    kind: k2,
                    ..
                },
            ) => {
                let mut a = protection_groups.clone();
                let mut b = p2.clone();
                a.sort();
                b.sort();
                kind == k2 && a == b
            }
            (own, other) => own == other,
        }
    }
}

/// How a command ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// Not carried out by rule (a migration needing an override without one).
    Refused(String),
}
