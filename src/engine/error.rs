//! The engine's errors.

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    Replica(#[from] crate::replica::ReplicaError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VM {0:?} does not exist")]
    NoSuchVm(String),
    #[error("VM {vm:?} cannot move to {to:?}: {reason}")]
    Impact {
        vm: String,
        to: String,
        reason: dr::ImpactError,
    },
    #[error("VM {0:?} is already migrating; cancel it or wait for it to finish")]
    AlreadyMigrating(String),
    #[error("VM {0:?} is not migrating")]
    NotMigrating(String),
    #[error(
        "no space on datastore {datastore:?}: VM {vm:?} needs {need_mib} MiB, {free_mib} MiB are free"
    )]
    NoSpace {
        datastore: String,
        vm: String,
        need_mib: u64,
        free_mib: u64,
    },
    #[error("VM {vm:?}: image {path} holds {found} blocks, the topology says {expected}")]
    ImageSize {
        vm: String,
        path: String,
        found: u64,
        expected: u64,
    },
    #[error("{file}: {message}")]
    State { file: String, message: String },
    #[error("datastore {0:?} does not exist")]
    NoSuchDatastore(String),
    #[error("datastore {0:?} is not replicated (no replication group)")]
    NotReplicated(String),
    #[error("replication: {0}")]
    Replication(String),
    #[error("failover: {0}")]
    Failover(String),
    #[error("VM {vm:?} is down: {why}")]
    VmDown { vm: String, why: String },
    /// A command that breaks a rule: the object and the rule, in words.
    #[error("{object}: {rule}")]
    Rule { object: String, rule: String },
}

/// Like [`io_err`] naming a path, but the name is only made when an error happens: for the
/// hot paths (every guest read and write, every block of a scan).
pub(super) fn io_err_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        what: path.display().to_string(),
        source,
    }
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let what = what.into();
    move |source| EngineError::Io { what, source }
}
