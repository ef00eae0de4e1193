//! The topology model (SPEC §1): serde types, RON load and save, and validation with
//! errors that name the file, the object and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod load;
mod lookup;
mod validate;

pub use load::*;
pub use lookup::datastore_cg;

/// The longest id the contract allows.
pub const MAX_ID_LEN: usize = 64;
/// The largest VM disk: 16 TiB, the largest file ext4 holds. Disk sizes are multiplied into
/// bytes and blocks; an absurd one would overflow that arithmetic.
pub const MAX_DISK_MIB: u64 = 16 * 1024 * 1024;
/// The largest LUN: 1 EiB. Capacities are summed in MiB per datastore.
pub const MAX_CAPACITY_GIB: u64 = 1 << 30;

/// The built-in demo topology, compiled in.
pub const DEFAULT_TOPOLOGY_RON: &str = include_str!("../sample_topologies/two_site_demo.ron");
/// The name shown for the built-in topology where a file name would stand.
pub const DEFAULT_TOPOLOGY_SOURCE: &str = "<built-in two_site_demo.ron>";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: String,
    pub sites: Vec<Site>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub arrays: Vec<Array>,
    #[serde(default)]
    pub datastores: Vec<Datastore>,
    #[serde(default)]
    pub protection_groups: Vec<ProtectionGroup>,
    #[serde(default)]
    pub vms: Vec<Vm>,
    /// Datastore clusters: datastores balanced and evacuated together (maintenance mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datastore_clusters: Vec<DatastoreCluster>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteRole {
    Protected,
    Recovery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub id: String,
    pub name: String,
    pub role: SiteRole,
}

fn default_mbps() -> f64 {
    1000.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub from: String,
    pub to: String,
    /// Replication bandwidth in megabits per second (simulated).
    #[serde(default = "default_mbps")]
    pub mbps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub id: String,
    pub site: String,
    pub cpus: u32,
    pub memory_gib: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Array {
    pub id: String,
    pub site: String,
    #[serde(default)]
    pub luns: Vec<Lun>,
    /// When I/O that a fault of this array swapped to the replicas swaps back before the
    /// resync ends (seed `related-ha-and-replication-abstracts.txt`); none: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_back: Option<SwapBack>,
}

/// The early swap-back of an array's pairs after a fault (SPEC §8's array health): while the
/// tracked blocks are copied back, the expected latency of I/O on this array (its service
/// time plus the wait for the blocks still to copy back) is compared with the latency
/// recorded on the replicas; once it exceeds it by at most `latency_ms` for `hold_s`
/// seconds on end (simulated), I/O swaps back without waiting for the resync to end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapBack {
    /// The largest latency penalty (expected here − recorded on the replicas), ms.
    #[serde(default = "default_swap_back_latency_ms")]
    pub latency_ms: f64,
    /// How long the penalty must stay within `latency_ms`, simulated seconds.
    #[serde(default = "default_swap_back_hold_s")]
    pub hold_s: f64,
}

/// Default [`SwapBack::latency_ms`].
pub const SWAP_BACK_LATENCY_MS: f64 = 50.0;
/// Default [`SwapBack::hold_s`].
pub const SWAP_BACK_HOLD_S: f64 = 5.0;
/// The longest hold period or polarization delay a topology may set: one hour.
pub const MAX_DELAY_S: f64 = 3600.0;
/// The largest swap-back latency threshold: one minute.
pub const MAX_SWAP_BACK_LATENCY_MS: f64 = 60_000.0;

fn default_swap_back_latency_ms() -> f64 {
    SWAP_BACK_LATENCY_MS
}

fn default_swap_back_hold_s() -> f64 {
    SWAP_BACK_HOLD_S
}

impl Default for SwapBack {
    fn default() -> SwapBack {
        SwapBack {
            latency_ms: SWAP_BACK_LATENCY_MS,
            hold_s: SWAP_BACK_HOLD_S,
        }
    }
}

impl Array {
    /// The array's early swap-back settings (the defaults if the file sets none).
    pub fn swap_back(&self) -> SwapBack {
        self.swap_back.unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    pub id: String,
    pub capacity_gib: u64,
    #[serde(default)]
    pub replication: Option<LunReplication>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunReplication {
    pub target: String,
    pub rpo_minutes: u32,
    #[serde(default)]
    pub consistency_group: Option<String>,
    /// How many published recovery points the replica keeps (SPEC §11): 1 to 24, the
    /// latest included; older ones cost the blocks later points overwrote.
    #[serde(default = "one_point", skip_serializing_if = "is_one_point")]
    pub retain_points: u32,
}

/// Most recovery points a replicated LUN keeps.
pub const MAX_RETAIN_POINTS: u32 = 24;

fn one_point() -> u32 {
    1
}

fn is_one_point(n: &u32) -> bool {
    *n == 1
}

fn default_throughput() -> f64 {
    400.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Datastore {
    pub id: String,
    pub site: String,
    pub luns: Vec<String>,
    /// Simulated copy throughput of this datastore in MiB/s.
    #[serde(default = "default_throughput")]
    pub throughput_mib_s: f64,
    /// A distributed (RAID-1) datastore: `luns` is the leg at `site`, this is the other
    /// site's leg (SPEC §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<Distributed>,
}

/// The second leg of a distributed datastore and its witness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distributed {
    /// The site of the second leg (not the datastore's own site).
    pub remote_site: String,
    /// The LUN backing the second leg, on an array at `remote_site`.
    pub remote_lun: String,
    /// A third-site witness that breaks ties on a partition; without one the
    /// datastore's own site (the preferred one) keeps serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<String>,
    /// With a witness: how long (simulated seconds) both sides hold the datastore's I/O
    /// after its legs separate before they ask the witness which one serves (seed
    /// `related-ha-and-replication-abstracts.txt`, polarization). None: 2 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polarization_delay_s: Option<f64>,
    /// With a witness: the delay an unhealthy side (its leg's array faulted) adds before it
    /// asks the witness, so that the healthy side wins. None: 5 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_delay_s: Option<f64>,
    /// False: planned, not created yet (`CreateDatastore` creates it; no VM may live on
    /// it until then).
    #[serde(default = "default_true")]
    pub created: bool,
}

fn default_true() -> bool {
    true
}

/// Default [`Distributed::polarization_delay_s`].
pub const POLARIZATION_DELAY_S: f64 = 2.0;
/// Default [`Distributed::unhealthy_delay_s`].
pub const UNHEALTHY_DELAY_S: f64 = 5.0;

impl Distributed {
    /// The polarization delay, seconds (the default if the file sets none).
    pub fn polarization_delay(&self) -> f64 {
        self.polarization_delay_s.unwrap_or(POLARIZATION_DELAY_S)
    }

    /// The delay an unhealthy side adds before asking the witness, seconds.
    pub fn unhealthy_delay(&self) -> f64 {
        self.unhealthy_delay_s.unwrap_or(UNHEALTHY_DELAY_S)
    }
}

/// Datastores managed together: space balancing and maintenance-mode evacuation prefer
/// destinations inside the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreCluster {
    pub id: String,
    pub name: String,
    pub datastores: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectionGroup {
    pub id: String,
    pub name: String,
    pub datastores: Vec<String>,
}

fn default_priority() -> u8 {
    3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    pub id: String,
    pub uuid: String,
    pub host: String,
    pub datastore: String,
    pub disk_mib: u64,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// Recovery priority, 1 first; 3 when left out (the one most operators leave as it is).
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default)]
    pub workload: Option<Workload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub write_iops: u32,
    pub read_iops: u32,
}

/// One broken rule: the object it concerns and the rule, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub object: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.rule)
    }
}

/// Why a topology could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] crate::fsutil::SyntaxError),
    #[error("{file}: {first}{}", more_suffix(.rest.len()))]
    Invalid {
        file: String,
        first: Violation,
        rest: Vec<Violation>,
    },
}

fn more_suffix(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " (and 1 more problem)".to_string(),
        n => format!(" (and {n} more problems)"),
    }
}

impl TopologyError {
    /// Every violation of a semantic error (empty for the other kinds).
    pub fn violations(&self) -> Vec<&Violation> {
        match self {
            TopologyError::Invalid { first, rest, .. } => {
                std::iter::once(first).chain(rest.iter()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Checks an id against the contract: `[a-z0-9][a-z0-9._-]*`, at most 64 bytes, no `..`.
/// Ids become directory and file names in the workspace, so the reason names what would
/// make one unsafe there (a path separator, `..`, a NUL or control character).
pub fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("id is empty".to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Some(format!(
            "id is {} bytes long; at most {MAX_ID_LEN} bytes are allowed (ids become directory names)",
            id.len()
        ));
    }
    let pattern = "does not match [a-z0-9][a-z0-9._-]* (lower-case letters, digits, '.', '_' and '-', starting with a letter or digit)";
    let why = if id.contains(['/', '\\']) {
        Some("it contains a path separator ('/' or '\\')")
    } else if id.contains('\0') {
        Some("it contains a NUL character")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if id.contains("..") {
        Some("it contains '..'")
    } else {
        None
    };
    if let Some(why) = why {
        return Some(format!(
            "id {id:?} {pattern}: {why}, and ids become directory names in the workspace"
        ));
    }
    let mut chars = id.chars();
    let first = chars.next().unwrap_or('-');
    let ok_first = first.is_ascii_lowercase() || first.is_ascii_digit();
    let ok_rest = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok_first || !ok_rest {
        return Some(format!("id {id:?} {pattern}"));
    }
    None
}

/// An id as error messages show it: quoted, and cut to its first 80 characters when longer
/// (an absurdly long id would otherwise fill the screen).
pub fn shown_id(id: &str) -> String {
    const SHOWN: usize = 80;
    match id.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &id[..cut], id.len()),
        None => format!("{id:?}"),
    }
}

#[cfg(test)]
mod tests;
