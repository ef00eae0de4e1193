//! What the engine has recorded in a workspace about its DR history (SPEC §11,
//! *Reports*): the failovers with each VM's result, the reprotects, the disasters and site
//! returns, each VM's hops and the publish log. [`Engine::recorded`] takes it from a
//! running engine; [`read_recorded`] reads it from a workspace on disk without starting
//! anything: no guest, no lock taken exclusively, nothing written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::failover::VmHistory;
use super::persist::read_clock_record;
use super::publog::{PublishLog, read_publish_log};
use super::replication::GroupSaved;
use super::stretch::StretchSaved;
use super::{
    Engine, EngineError, FailoverReport, GroupSpec, Incident, ReprotectRecord, SimTime, SiteReturn,
    groups_of, read_ron,
};
use crate::topology::Topology;
use crate::workspace::Workspace;

/// The recorded DR history of one workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    /// The workspace directory.
    pub root: PathBuf,
    /// The workspace's own topology (VMs where failbacks and migrations left them).
    pub topology: Topology,
    /// The simulated time the history reaches.
    pub now: SimTime,
    /// Every failover (test, planned, unplanned), oldest first.
    pub failovers: Vec<FailoverReport>,
    pub reprotects: Vec<ReprotectRecord>,
    /// Sites lost in a disaster, returned or still down, in the order they were lost.
    pub disasters: Vec<Disaster>,
    /// The replication groups in their current direction.
    pub groups: Vec<GroupSpec>,
    /// VMs that ever failed over: where their history went.
    pub vms: Vec<VmRecord>,
    /// One record per published recovery point.
    pub publishes: PublishLog,
    /// The distributed datastores' incidents, from each failure to its repair, oldest first.
    pub incidents: Vec<Incident>,
    /// The cross-site moves of consistency groups (SPEC §12), oldest first.
    pub across: Vec<super::AcrossOp>,
}

/// A site lost in a disaster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disaster {
    pub site: String,
    pub lost_at: SimTime,
    /// When it came back (`SiteUp`); none: still down.
    pub returned_at: Option<SimTime>,
}

/// One VM's history across failovers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmRecord {
    pub vm: String,
    /// The sites it left, oldest first (a site visited twice appears twice).
    pub left_sites: Vec<String>,
    /// Writes the failovers that moved it lost, all hops together: they stay lost.
    pub writes_lost: u64,
}

/// The parts of `state/engine.ron` a report reads; whatever else it holds is skipped, so
/// a report does not depend on the rest of the engine's state.
#[derive(Debug, Deserialize)]
#[serde(rename = "EngineState")]
struct SavedHistory {
    now: SimTime,
    #[serde(default)]
    groups: BTreeMap<String, GroupSaved>,
    #[serde(default)]
    sites_down: BTreeMap<String, SimTime>,
    #[serde(default)]
    history: BTreeMap<String, VmHistory>,
    #[serde(default)]
    failovers: Vec<FailoverReport>,
    #[serde(default)]
    lifecycle: SavedLifecycle,
    #[serde(default)]
    stretch: StretchSaved,
    #[serde(default)]
    across: super::across::AcrossSaved,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename = "LifecycleSaved")]
struct SavedLifecycle {
    #[serde(default)]
    returns: Vec<SiteReturn>,
    #[serde(default)]
    reprotects: Vec<ReprotectRecord>,
}

/// Site losses from the returns and the sites still down, in the order they were lost.
fn disasters(returns: &[SiteReturn], down: &BTreeMap<String, SimTime>) -> Vec<Disaster> {
    let mut out: Vec<Disaster> = returns
        .iter()
        .map(|r| Disaster {
            site: r.site.clone(),
            lost_at: r.lost_at,
            returned_at: Some(r.returned_at),
        })
        .chain(down.iter().map(|(site, &lost_at)| Disaster {
            site: site.clone(),
            lost_at,
            returned_at: None,
        }))
        .collect();
    out.sort_by(|a, b| (a.lost_at, &a.site).cmp(&(b.lost_at, &b.site)));
    out
}

fn vm_record(vm: &str, h: &VmHistory) -> VmRecord {
    VmRecord {
        vm: vm.to_string(),
        left_sites: h.hops.iter().map(|hop| hop.site.clone()).collect(),
        writes_lost: h.writes_lost,
    }
}

/// The groups of `t`, each in the direction its saved state says.
fn directed_groups(t: &Topology, reversed: impl Fn(&str) -> bool) -> Vec<GroupSpec> {
    groups_of(t)
        .into_iter()
        .map(|g| if reversed(&g.key) { g.reversed() } else { g })
        .collect()
}

/// Reads the recorded DR history of the workspace at `root` without opening it for use:
/// nothing runs and nothing is written. A workspace in use by a console is refused as
/// opening it would be (the console's *Export report…* reads its own). A workspace on which
/// nothing has run yet has an empty history.
pub fn read_recorded(root: &Path) -> Result<Recorded, EngineError> {
    let ws = Workspace::open_read_only(root)?;
    let state_dir = ws.state_dir();
    let engine_ron = state_dir.join("engine.ron");
    let saved = if engine_ron.exists() {
        Some(read_ron::<SavedHistory>(&engine_ron)?)
    } else {
        None
    };
    // The clock record may be ahead of engine.ron (the console records it every slice).
    let clock = std::fs::read(Engine::clock_path(&ws))
        .ok()
        .and_then(|b| read_clock_record(&b));
    let publishes = read_publish_log(root)?;
    let topology = ws.topology().clone();
    let Some(s) = saved else {
        return Ok(Recorded {
            root: root.to_path_buf(),
            groups: directed_groups(&topology, |_| false),
            topology,
            now: clock.unwrap_or(0),
            failovers: Vec::new(),
            reprotects: Vec::new(),
            disasters: Vec::new(),
            vms: Vec::new(),
            publishes,
            incidents: Vec::new(),
            across: Vec::new(),
        });
    };
    Ok(Recorded {
        root: root.to_path_buf(),
        groups: directed_groups(&topology, |key| {
            s.groups.get(key).is_some_and(|g| g.reversed)
        }),
        topology,
        now: s.now.max(clock.unwrap_or(0)),
        disasters: disasters(&s.lifecycle.returns, &s.sites_down),
        vms: s
            .history
            .iter()
            .filter(|(_, h)| !h.hops.is_empty())
            .map(|(vm, h)| vm_record(vm, h))
            .collect(),
        failovers: s.failovers,
        reprotects: s.lifecycle.reprotects,
        publishes,
        incidents: s.stretch.incidents(),
        across: s.across.ops,
    })
}

impl Engine {
    /// The DR history this engine has recorded, as [`read_recorded`] reads it from disk:
    /// from memory, with the publish log read from the workspace.
    pub fn recorded(&self) -> Result<Recorded, EngineError> {
        let mut vms: Vec<VmRecord> = self
            .vms
            .iter()
            .filter(|v| !v.history.hops.is_empty())
            .map(|v| vm_record(&v.id, &v.history))
            .collect();
        vms.sort_by(|a, b| a.vm.cmp(&b.vm));
        Ok(Recorded {
            root: self.ws.root().to_path_buf(),
            topology: self.topology().clone(),
            now: self.now,
            failovers: self.failovers.clone(),
            reprotects: self.reprotects().to_vec(),
            disasters: disasters(self.site_returns(), &self.sites_down),
            groups: self.groups.iter().map(|g| g.spec.clone()).collect(),
            vms,
            publishes: read_publish_log(self.ws.root())?,
            incidents: self.stretch_incidents(),
            across: self.across_ops().to_vec(),
        })
    }
}
