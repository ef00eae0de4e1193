//! The topology model (SPEC §1): serde types, RON load and save, and validation with
//! errors that name the file, the object and the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// False: planned, not created yet (`CreateDatastore` creates it; no VM may live on
    /// it until then).
    #[serde(default = "default_true")]
    pub created: bool,
}

fn default_true() -> bool {
    true
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

impl Topology {
    /// Parses RON text; `file` names the source in errors. Validates.
    pub fn from_ron_str(text: &str, file: &str) -> Result<Topology, TopologyError> {
        let topo: Topology = crate::fsutil::parse_ron(text, file)?;
        topo.validate().map_err(|mut v| {
            let first = v.remove(0);
            TopologyError::Invalid {
                file: file.to_string(),
                first,
                rest: v,
            }
        })?;
        Ok(topo)
    }

    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            file: file.clone(),
            source,
        })?;
        Topology::from_ron_str(&text, &file)
    }

    /// The compiled-in demo topology.
    pub fn builtin_default() -> Topology {
        Topology::from_ron_str(DEFAULT_TOPOLOGY_RON, DEFAULT_TOPOLOGY_SOURCE)
            .expect("the built-in topology is checked by the test suite")
    }

    /// Pretty RON in the contract's shape (struct names included).
    pub fn to_ron_string(&self) -> String {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .indentor("    ".to_string());
        // Serializing plain structs, strings and numbers cannot fail.
        ron::ser::to_string_pretty(self, config).expect("topology serializes") + "\n"
    }

    /// Writes the topology atomically: a temp file beside it, fsync, rename, fsync the directory.
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        crate::fsutil::write_atomic(path, self.to_ron_string().as_bytes()).map_err(|source| {
            TopologyError::Write {
                file: path.display().to_string(),
                source,
            }
        })
    }

    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }
    pub fn host(&self, id: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }
    pub fn datastore_cluster(&self, id: &str) -> Option<&DatastoreCluster> {
        self.datastore_clusters.iter().find(|c| c.id == id)
    }
    /// The cluster a datastore belongs to, if any.
    pub fn cluster_of(&self, datastore: &str) -> Option<&DatastoreCluster> {
        self.datastore_clusters
            .iter()
            .find(|c| c.datastores.iter().any(|d| d == datastore))
    }
    pub fn datastore(&self, id: &str) -> Option<&Datastore> {
        self.datastores.iter().find(|d| d.id == id)
    }
    pub fn vm(&self, id: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.id == id)
    }
    pub fn protection_group(&self, id: &str) -> Option<&ProtectionGroup> {
        self.protection_groups.iter().find(|p| p.id == id)
    }
    /// A LUN and the array it is on.
    pub fn lun(&self, id: &str) -> Option<(&Array, &Lun)> {
        self.arrays
            .iter()
            .flat_map(|a| a.luns.iter().map(move |l| (a, l)))
            .find(|(_, l)| l.id == id)
    }
    pub fn site_role(&self, site: &str) -> Option<SiteRole> {
        self.site(site).map(|s| s.role)
    }
    /// Is this datastore at a protected site?
    pub fn is_protected_datastore(&self, ds: &Datastore) -> bool {
        self.site_role(&ds.site) == Some(SiteRole::Protected)
    }
    /// The LUNs backing a datastore (those that resolve).
    pub fn datastore_luns<'a>(&'a self, ds: &'a Datastore) -> impl Iterator<Item = &'a Lun> + 'a {
        ds.luns.iter().filter_map(|id| self.lun(id).map(|(_, l)| l))
    }
    /// The RPO of a datastore whose LUNs are all replicated (validation makes them agree).
    pub fn datastore_rpo_minutes(&self, ds: &Datastore) -> Option<u32> {
        let mut rpo = None;
        for lun in self.datastore_luns(ds) {
            rpo = Some(lun.replication.as_ref()?.rpo_minutes);
        }
        rpo
    }
    /// The recovery-site datastore whose LUNs are exactly the replication targets of `ds`'s
    /// LUNs, if `ds` is replicated and there is exactly one such datastore.
    pub fn replica_of(&self, ds: &Datastore) -> Option<&Datastore> {
        match self.replica_candidates(ds)[..] {
            [only] => Some(only),
            _ => None,
        }
    }
    /// Every recovery-site datastore whose LUNs are exactly the replication targets of
    /// `ds`'s LUNs (empty if `ds` is not replicated). Valid topologies have exactly one.
    fn replica_candidates(&self, ds: &Datastore) -> Vec<&Datastore> {
        let Some(targets) = self.replication_targets(ds) else {
            return Vec::new();
        };
        self.datastores
            .iter()
            .filter(|r| self.site_role(&r.site) == Some(SiteRole::Recovery))
            .filter(|r| r.luns.iter().cloned().collect::<BTreeSet<_>>() == targets)
            .collect()
    }
    /// The protected datastore whose replica datastore `ds` is, if any.
    pub fn replica_source(&self, ds: &Datastore) -> Option<&Datastore> {
        // Replicas live at recovery sites; anything else is no one's replica, and asking
        // every protected datastore for its replica is the costly part at scale.
        if self.site_role(&ds.site) != Some(SiteRole::Recovery) {
            return None;
        }
        self.datastores
            .iter()
            .filter(|p| self.is_protected_datastore(p))
            .find(|p| self.replica_of(p).is_some_and(|r| r.id == ds.id))
    }
    /// Is every LUN of `ds` replicated (SPEC §2, "all or nothing")?
    pub fn is_replicated(&self, ds: &Datastore) -> bool {
        self.replication_targets(ds).is_some()
    }
    /// The replication targets of every LUN of `ds`, or None if some LUN is not replicated.
    fn replication_targets(&self, ds: &Datastore) -> Option<BTreeSet<String>> {
        if ds.luns.is_empty() {
            return None;
        }
        ds.luns
            .iter()
            .map(|id| {
                let (_, lun) = self.lun(id)?;
                Some(lun.replication.as_ref()?.target.clone())
            })
            .collect()
    }

    /// Checks every rule of SPEC §1; returns all violations found, in a stable order.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut v = Validator::default();
        v.check(self);
        if v.out.is_empty() { Ok(()) } else { Err(v.out) }
    }
}

#[derive(Default)]
struct Validator {
    out: Vec<Violation>,
}

impl Validator {
    fn err(&mut self, object: impl Into<String>, rule: impl Into<String>) {
        self.out.push(Violation {
            object: object.into(),
            rule: rule.into(),
        });
    }

    fn ids<'a>(&mut self, kind: &str, ids: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        for id in ids {
            if let Some(p) = id_problem(id) {
                self.err(format!("{kind} {}", shown_id(id)), p);
            }
            if !seen.insert(id) {
                self.err(
                    format!("{kind} {}", shown_id(id)),
                    format!("{kind} ids must be unique; {id:?} is used twice"),
                );
            }
        }
        seen
    }

    fn check(&mut self, t: &Topology) {
        if t.name.trim().is_empty() {
            self.err("topology", "the topology needs a non-empty name");
        }
        let sites = self.ids("site", t.sites.iter().map(|s| s.id.as_str()));
        self.ids("host", t.hosts.iter().map(|h| h.id.as_str()));
        self.ids("array", t.arrays.iter().map(|a| a.id.as_str()));
        let luns = self.ids(
            "LUN",
            t.arrays
                .iter()
                .flat_map(|a| a.luns.iter().map(|l| l.id.as_str())),
        );
        let datastores = self.ids("datastore", t.datastores.iter().map(|d| d.id.as_str()));
        self.ids(
            "protection group",
            t.protection_groups.iter().map(|p| p.id.as_str()),
        );
        self.ids("VM", t.vms.iter().map(|v| v.id.as_str()));
        if t.sites.is_empty() {
            self.err("topology", "a topology needs at least one site");
        }

        let role = |site: &str| t.site_role(site);
        self.check_links(t, &sites);
        for h in &t.hosts {
            let obj = format!("host {:?}", h.id);
            if !sites.contains(h.site.as_str()) {
                self.err(&obj, format!("site {:?} does not exist", h.site));
            }
            if h.cpus == 0 || h.memory_gib == 0 {
                self.err(&obj, "a host needs at least 1 cpu and 1 GiB of memory");
            }
        }
        self.check_arrays(t, &sites, &luns);
        self.check_datastores(t, &sites, &luns);
        self.check_consistency_groups(t);
        self.check_protection_groups(t, &datastores);
        self.check_clusters(t, &datastores);
        for vm in &t.vms {
            let obj = format!("VM {:?}", vm.id);
            if uuid::Uuid::parse_str(&vm.uuid).is_err() || vm.uuid.len() != 36 {
                self.err(
                    &obj,
                    format!(
                        "uuid {:?} is not a standard UUID (8-4-4-4-12 hex digits)",
                        vm.uuid
                    ),
                );
            }
            match t.host(&vm.host) {
                None => self.err(&obj, format!("host {:?} does not exist", vm.host)),
                Some(h) if role(&h.site) != Some(SiteRole::Protected) => self.err(
                    &obj,
                    format!(
                        "VMs live on protected-site hosts; host {:?} is at site {:?}, which is not protected",
                        h.id, h.site
                    ),
                ),
                _ => {}
            }
            match t.datastore(&vm.datastore) {
                None => self.err(&obj, format!("datastore {:?} does not exist", vm.datastore)),
                Some(d) => {
                    if role(&d.site) != Some(SiteRole::Protected) {
                        self.err(
                            &obj,
                            format!(
                                "VMs live on protected-site datastores; datastore {:?} is at site {:?}, which is not protected",
                                d.id, d.site
                            ),
                        );
                    } else if let Some(h) = t.host(&vm.host)
                        && h.site != d.site
                    {
                        self.err(
                            &obj,
                            format!(
                                "host {:?} (site {:?}) and datastore {:?} (site {:?}) must be at the same site",
                                h.id, h.site, d.id, d.site
                            ),
                        );
                    }
                }
            }
            if !(1..=5).contains(&vm.priority) {
                self.err(&obj, format!("priority must be 1..=5, not {}", vm.priority));
            }
            if vm.disk_mib < 1 {
                self.err(&obj, "disk_mib must be at least 1");
            }
            if vm.disk_mib > MAX_DISK_MIB {
                self.err(
                    &obj,
                    format!(
                        "disk_mib must be at most {MAX_DISK_MIB} (16 TiB), not {}",
                        vm.disk_mib
                    ),
                );
            }
            if vm.vcpus == 0 || vm.memory_gib == 0 {
                self.err(&obj, "a VM needs at least 1 vcpu and 1 GiB of memory");
            }
        }
        let mut uuids = BTreeMap::new();
        for vm in &t.vms {
            if let Some(other) = uuids.insert(vm.uuid.to_ascii_lowercase(), &vm.id) {
                self.err(
                    format!("VM {:?}", vm.id),
                    format!(
                        "uuid {} is also the uuid of VM {other:?}; uuids must be unique",
                        vm.uuid
                    ),
                );
            }
        }
    }

    fn check_links(&mut self, t: &Topology, sites: &BTreeSet<&str>) {
        for l in &t.links {
            let obj = format!("link {:?} -> {:?}", l.from, l.to);
            for end in [&l.from, &l.to] {
                if !sites.contains(end.as_str()) {
                    self.err(&obj, format!("site {end:?} does not exist"));
                }
            }
            if l.from == l.to {
                self.err(&obj, "a link joins two different sites");
            }
            if !(l.mbps.is_finite() && l.mbps > 0.0) {
                self.err(
                    &obj,
                    format!("mbps must be a positive number, not {}", l.mbps),
                );
            }
        }
    }

    fn check_arrays(&mut self, t: &Topology, sites: &BTreeSet<&str>, luns: &BTreeSet<&str>) {
        let mut targeted: BTreeMap<&str, &str> = BTreeMap::new();
        for a in &t.arrays {
            if !sites.contains(a.site.as_str()) {
                self.err(
                    format!("array {:?}", a.id),
                    format!("site {:?} does not exist", a.site),
                );
            }
            for l in &a.luns {
                let obj = format!("LUN {:?} on array {:?}", l.id, a.id);
                if l.capacity_gib == 0 {
                    self.err(&obj, "capacity_gib must be at least 1");
                }
                if l.capacity_gib > MAX_CAPACITY_GIB {
                    self.err(
                        &obj,
                        format!(
                            "capacity_gib must be at most {MAX_CAPACITY_GIB} (1 EiB), not {}",
                            l.capacity_gib
                        ),
                    );
                }
                let Some(r) = &l.replication else { continue };
                if r.rpo_minutes == 0 {
                    self.err(&obj, "rpo_minutes must be at least 1");
                }
                if let Some(cg) = &r.consistency_group
                    && let Some(p) = id_problem(cg)
                {
                    self.err(&obj, format!("consistency group: {p}"));
                }
                if !luns.contains(r.target.as_str()) {
                    self.err(
                        &obj,
                        format!("replication target LUN {:?} does not exist", r.target),
                    );
                    continue;
                }
                if r.target == l.id {
                    self.err(&obj, "a LUN cannot replicate to itself");
                    continue;
                }
                let (tarr, _) = t.lun(&r.target).expect("target resolved above");
                if t.site_role(&tarr.site) != Some(SiteRole::Recovery) {
                    self.err(
                        &obj,
                        format!(
                            "replication target LUN {:?} is on array {:?} at site {:?}; a target must be at a recovery site",
                            r.target, tarr.id, tarr.site
                        ),
                    );
                }
                if let Some(prev) = targeted.insert(&r.target, &l.id) {
                    self.err(
                        &obj,
                        format!(
                            "replication target LUN {:?} is already the target of LUN {prev:?}; a LUN is targeted once",
                            r.target
                        ),
                    );
                }
            }
        }
    }

    fn check_datastores(&mut self, t: &Topology, sites: &BTreeSet<&str>, luns: &BTreeSet<&str>) {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for d in &t.datastores {
            let obj = format!("datastore {:?}", d.id);
            if !sites.contains(d.site.as_str()) {
                self.err(&obj, format!("site {:?} does not exist", d.site));
            }
            if d.luns.is_empty() {
                self.err(&obj, "a datastore is backed by at least one LUN");
            }
            if !(d.throughput_mib_s.is_finite() && d.throughput_mib_s > 0.0) {
                self.err(
                    &obj,
                    format!(
                        "throughput_mib_s must be a positive number, not {}",
                        d.throughput_mib_s
                    ),
                );
            }
            let mut rpos = BTreeSet::new();
            for lun_id in &d.luns {
                if !luns.contains(lun_id.as_str()) {
                    self.err(&obj, format!("LUN {lun_id:?} does not exist"));
                    continue;
                }
                if let Some(prev) = owner.insert(lun_id, &d.id) {
                    self.err(
                        &obj,
                        format!(
                            "LUN {lun_id:?} already backs datastore {prev:?}; a LUN belongs to one datastore at most"
                        ),
                    );
                }
                let (arr, lun) = t.lun(lun_id).expect("resolved above");
                if arr.site != d.site {
                    self.err(
                        &obj,
                        format!(
                            "LUN {lun_id:?} is on array {:?} at site {:?}; a datastore's LUNs must be on arrays of its own site {:?}",
                            arr.id, arr.site, d.site
                        ),
                    );
                }
                if let Some(r) = &lun.replication {
                    rpos.insert(r.rpo_minutes);
                }
            }
            if rpos.len() > 1 {
                self.err(
                    &obj,
                    format!(
                        "all replicated LUNs of one datastore must have the same rpo_minutes; found {}",
                        join(rpos.iter())
                    ),
                );
            }
            if let Some(targets) = t.replication_targets(d)
                && t.is_protected_datastore(d)
            {
                let n = t.replica_candidates(d).len();
                if n != 1 {
                    let what = if n == 0 {
                        "none exists"
                    } else {
                        "several exist"
                    };
                    self.err(
                        &obj,
                        format!(
                            "a replicated datastore needs exactly one replica datastore at a recovery site whose LUNs are exactly its targets ({}); {what}",
                            join(targets.iter())
                        ),
                    );
                }
            }
            if let Some(dist) = &d.distributed {
                self.check_distributed(t, d, dist, sites, &mut owner);
            }
        }
    }

    /// A distributed datastore: its second leg is one LUN at another site, used by nothing
    /// else; it is not array-replicated (its legs are the copies).
    fn check_distributed<'a>(
        &mut self,
        t: &'a Topology,
        d: &'a Datastore,
        dist: &'a Distributed,
        sites: &BTreeSet<&str>,
        owner: &mut BTreeMap<&'a str, &'a str>,
    ) {
        let obj = format!("datastore {:?}", d.id);
        if !sites.contains(dist.remote_site.as_str()) {
            self.err(
                &obj,
                format!("remote site {:?} does not exist", dist.remote_site),
            );
        } else if dist.remote_site == d.site {
            self.err(
                &obj,
                format!(
                    "a distributed datastore's second leg must be at another site than its own ({:?})",
                    d.site
                ),
            );
        }
        match t.lun(&dist.remote_lun) {
            None => self.err(&obj, format!("LUN {:?} does not exist", dist.remote_lun)),
            Some((arr, lun)) => {
                if arr.site != dist.remote_site {
                    self.err(
                        &obj,
                        format!(
                            "remote LUN {:?} is on array {:?} at site {:?}; it must be at the remote site {:?}",
                            lun.id, arr.id, arr.site, dist.remote_site
                        ),
                    );
                }
                if lun.replication.is_some() {
                    self.err(
                        &obj,
                        format!(
                            "remote LUN {:?} is array-replicated; the legs of a distributed datastore are its copies",
                            lun.id
                        ),
                    );
                }
                if let Some(prev) = owner.insert(&dist.remote_lun, &d.id) {
                    self.err(
                        &obj,
                        format!(
                            "LUN {:?} already backs datastore {prev:?}; a LUN belongs to one datastore at most",
                            dist.remote_lun
                        ),
                    );
                }
            }
        }
        if t.datastore_luns(d).any(|l| l.replication.is_some()) {
            self.err(
                &obj,
                "a distributed datastore is not array-replicated: its two legs are the copies",
            );
        }
        if let Some(w) = &dist.witness
            && let Some(p) = id_problem(w)
        {
            self.err(&obj, format!("witness {}: {p}", shown_id(w)));
        }
        if !dist.created
            && let Some(vm) = t.vms.iter().find(|v| v.datastore == d.id)
        {
            self.err(
                format!("VM {:?}", vm.id),
                format!(
                    "datastore {:?} is planned but not created yet (created: false); no VM may live on it",
                    d.id
                ),
            );
        }
    }

    fn check_clusters(&mut self, t: &Topology, datastores: &BTreeSet<&str>) {
        self.ids(
            "datastore cluster",
            t.datastore_clusters.iter().map(|c| c.id.as_str()),
        );
        let mut member: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &t.datastore_clusters {
            let obj = format!("datastore cluster {:?}", c.id);
            if c.datastores.is_empty() {
                self.err(&obj, "a datastore cluster lists at least one datastore");
            }
            let mut site = None;
            for ds in &c.datastores {
                if !datastores.contains(ds.as_str()) {
                    self.err(&obj, format!("datastore {ds:?} does not exist"));
                    continue;
                }
                if let Some(prev) = member.insert(ds, &c.id) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is already in cluster {prev:?}; a datastore is in one cluster at most"
                        ),
                    );
                }
                let d = t.datastore(ds).expect("resolved above");
                if !t.is_protected_datastore(d) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is at site {:?}; clusters hold protected-site datastores only",
                            d.site
                        ),
                    );
                }
                match site {
                    None => site = Some(d.site.as_str()),
                    Some(s) if s != d.site => self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is at site {:?}, the others at {s:?}; a cluster is at one site",
                            d.site
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }

    fn check_consistency_groups(&mut self, t: &Topology) {
        let mut cg_rpo: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        for lun in t.arrays.iter().flat_map(|a| a.luns.iter()) {
            if let Some(r) = &lun.replication
                && let Some(cg) = &r.consistency_group
            {
                cg_rpo.entry(cg).or_default().insert(r.rpo_minutes);
            }
        }
        for (cg, rpos) in cg_rpo {
            if rpos.len() > 1 {
                self.err(
                    format!("consistency group {cg:?}"),
                    format!(
                        "all LUNs of one consistency group must have the same rpo_minutes; found {}",
                        join(rpos.iter())
                    ),
                );
            }
        }
    }

    fn check_protection_groups(&mut self, t: &Topology, datastores: &BTreeSet<&str>) {
        let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
        for pg in &t.protection_groups {
            let obj = format!("protection group {:?}", pg.id);
            for ds_id in &pg.datastores {
                if !datastores.contains(ds_id.as_str()) {
                    self.err(&obj, format!("datastore {ds_id:?} does not exist"));
                    continue;
                }
                if let Some(prev) = member_of.insert(ds_id, &pg.id) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is already in protection group {prev:?}; a datastore is in one protection group at most"
                        ),
                    );
                }
                let ds = t.datastore(ds_id).expect("resolved above");
                if !t.is_protected_datastore(ds) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is at site {:?}; a protection group lists only protected-site datastores",
                            ds.site
                        ),
                    );
                } else if !t.is_replicated(ds) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is not replicated; a protection group lists only replicated datastores"
                        ),
                    );
                }
            }
        }
        // A CG's datastores are all in the same PG or all in none.
        let mut cg_members: BTreeMap<String, Vec<&Datastore>> = BTreeMap::new();
        for d in &t.datastores {
            if let Some(cg) = crate::dr::datastore_cg(t, d) {
                cg_members.entry(cg).or_default().push(d);
            }
        }
        for (cg, members) in cg_members {
            let pgs: BTreeSet<Option<&str>> = members
                .iter()
                .map(|d| member_of.get(d.id.as_str()).copied())
                .collect();
            if pgs.len() > 1 {
                let detail = members
                    .iter()
                    .map(|d| match member_of.get(d.id.as_str()) {
                        Some(pg) => format!("{} in {pg}", d.id),
                        None => format!("{} in none", d.id),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    format!("consistency group {cg:?}"),
                    format!(
                        "a consistency group's datastores must all be in the same protection group or all in none; found {detail}"
                    ),
                );
            }
        }
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Where a topology came from, for titles and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologySource {
    BuiltIn,
    File(PathBuf),
}

impl fmt::Display for TopologySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologySource::BuiltIn => f.write_str(DEFAULT_TOPOLOGY_SOURCE),
            TopologySource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests;
