//! The DR report (SPEC §11, *Reports*): every failover, failback, test and reprotect so
//! far, per protection group and VM, with the lag of each replication group against its
//! RPO, built from what the engine recorded in a workspace ([`crate::engine::Recorded`]).
//!
//! One [`Report`] holds the facts; it prints as text ([`Report::to_text`]), serializes as
//! JSON (the same facts), and renders as one self-contained HTML page with inline CSS and
//! SVG charts ([`html::render`]). `drconsole report` and the console's *Export report…*
//! both build it here. Times are simulated minutes from the workspace's start.

mod distributed;
mod events;
pub mod html;
mod lag;
mod text;

use lag::group_lag;

pub use distributed::{DistributedIncident, IncidentStepFact};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::engine::{
    FailoverKind, FailoverReport, FailoverState, GroupSpec, PublishRecord, Recorded,
    ReprotectRecord, SimTime, VmResult, format_time, to_minutes,
};
use crate::topology::Topology;
use events::{across_event, empty_event, failover_event, reprotect_event};

/// Why a report could not be made: the message names the path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(pub String);

/// What a report says the event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A site lost (context for the failovers that follow).
    Disaster,
    /// A lost site came back (`SiteUp`).
    SiteReturn,
    /// A test failover: isolated copies, production untouched.
    Test,
    Planned,
    Unplanned,
    /// A failover of reprotected PGs: their VMs come home.
    Failback,
    Reprotect,
    /// A consistency group moved to the other site while it ran (SPEC §12).
    CrossSiteMove,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Disaster => "Disaster",
            EventKind::SiteReturn => "Site return",
            EventKind::Test => "Test failover",
            EventKind::Planned => "Planned failover",
            EventKind::Unplanned => "Unplanned failover",
            EventKind::Failback => "Failback",
            EventKind::Reprotect => "Reprotect",
            EventKind::CrossSiteMove => "Cross-site move",
        }
    }

    /// A failover of any kind (test and failback included).
    pub fn is_failover(self) -> bool {
        matches!(
            self,
            EventKind::Test | EventKind::Planned | EventKind::Unplanned | EventKind::Failback
        )
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub workspace: String,
    /// The topology's name.
    pub topology: String,
    /// The simulated time the recorded history reaches (minutes).
    pub now: f64,
    pub summary: Summary,
    /// Failovers, failbacks, tests and reprotects, with the disasters and site returns
    /// around them, in the order they happened.
    pub events: Vec<Event>,
    /// Each replication group's lag against its RPO, from the publish log.
    pub groups: Vec<GroupLag>,
    /// Each VM that ever failed over: its hops and the writes lost over all of them.
    pub vms: Vec<VmHistoryFact>,
    /// The distributed datastores' incidents: each failure and every step performed (SPEC
    /// §8); left out of the JSON when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub distributed: Vec<DistributedIncident>,
    /// What the report could not read, in words.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Summary {
    pub disasters: usize,
    pub tests: usize,
    pub planned: usize,
    pub unplanned: usize,
    pub failbacks: usize,
    pub reprotects: usize,
    /// Cross-site moves of consistency groups (any outcome).
    pub cross_site_moves: usize,
    /// VM results of failovers that ran (tests included).
    pub vms_recovered: usize,
    pub vms_not_recovered: usize,
    /// Writes lost by failovers that moved VMs (tests excluded: they move nothing).
    pub writes_lost: u64,
    pub worst_achieved_rpo_minutes: Option<f64>,
    pub worst_rto_minutes: Option<f64>,
    /// VMs whose recovered copy failed the consistency check, as `vm (#failover)`.
    pub inconsistent: Vec<String>,
}

/// One event of the DR history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// The failover's number (failovers, failbacks and tests).
    pub failover: Option<u64>,
    /// The kind it ran as (a failback is a planned or unplanned failover).
    pub failover_kind: Option<FailoverKind>,
    /// `done`, `failed` or `running` (failovers).
    pub state: Option<String>,
    pub protection_groups: Vec<String>,
    /// The site lost or returned (disasters and site returns).
    pub site: Option<String>,
    /// Where the VMs ran before and where they were recovered (failovers); the new
    /// direction's protected and replica sites (reprotects).
    pub from_site: Option<String>,
    pub to_site: Option<String>,
    pub started_at: f64,
    pub ended_at: Option<f64>,
    /// The engine's own one-line account.
    pub summary: String,
    /// Reprotects: the groups reversed, as `id: <from> to <to>`.
    pub groups_reversed: Vec<String>,
    /// Reprotects: instances deleted on the new replica side.
    pub deleted: Vec<String>,
    /// Failovers: each protection group in scope with its VMs.
    pub sections: Vec<PgSection>,
    /// Failovers to a point in time (minutes): each group recovered its latest point cut
    /// at or before it; none: the latest points.
    pub point: Option<f64>,
    /// Cross-site moves: the consistency group that moved (its replication group's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_group: Option<String>,
}

/// One protection group of a failover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PgSection {
    pub protection_group: String,
    pub name: String,
    pub vms: Vec<VmFact>,
}

/// One VM's outcome in one failover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmFact {
    /// The VM's id, or the uuid of an instance the topology does not know.
    pub vm: String,
    pub uuid: String,
    pub priority: Option<u8>,
    pub recovered: bool,
    /// `no-instance`, `ambiguous`, `incomplete`, `no-host`, `moved-out`, ...
    pub error: Option<String>,
    /// The cut time of the recovery point its instance came from.
    pub point_cut_at: Option<f64>,
    /// The instance elected (relative to the workspace) and its datastore.
    pub elected: Option<String>,
    pub datastore: Option<String>,
    /// Why that instance won, or what the error means.
    pub why: String,
    /// Instances the election deleted.
    pub deleted: Vec<String>,
    pub host: Option<String>,
    pub writes_lost: Option<u64>,
    pub achieved_rpo_minutes: Option<f64>,
    pub powered_on_at: Option<f64>,
    /// Time to power-on: from when the VM stopped serving (the site's loss, or the
    /// failover's start for a site that was up) to its power-on.
    pub rto_minutes: Option<f64>,
    /// What the RTO is measured from, in words.
    pub rto_from: Option<String>,
    /// The recovered copy passed the write-order check against the journal.
    pub consistent: Option<bool>,
}

/// One replication group's recovery points and its lag against its RPO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub rpo_minutes: u32,
    /// Its direction now, `<from> to <to>`.
    pub direction: String,
    pub protection_groups: Vec<String>,
    pub points: Vec<PointFact>,
    /// The worst lag the chart shows (minutes).
    pub worst_lag_minutes: Option<f64>,
    /// Publishes that ended a lag above the RPO, plus a lag above it now.
    pub over_rpo: usize,
    /// The chart: the lag (minutes) over simulated time (minutes), one run per stretch in
    /// which the group replicated in one direction; a break where it stopped (failed over,
    /// reversed).
    pub lag: Vec<Vec<(f64, f64)>>,
}

/// One published recovery point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointFact {
    pub cycle: u64,
    pub direction: String,
    pub cut_at: f64,
    pub published_at: f64,
    pub bytes: u64,
    /// The lag just before the publish (the previous point's age); none for a first point.
    pub lag_before_minutes: Option<f64>,
    /// The lag just after (this point's age at its publish).
    pub lag_after_minutes: f64,
}

/// A VM's history across failovers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmHistoryFact {
    pub vm: String,
    pub priority: Option<u8>,
    /// The sites it left, oldest first.
    pub left_sites: Vec<String>,
    /// Writes lost over all its hops.
    pub writes_lost: u64,
}

/// The report of the workspace at `root`, read without opening it for use.
pub fn from_workspace(root: &Path) -> Result<Report, ReportError> {
    if !root.exists() {
        return Err(ReportError(format!(
            "{}: no such directory (give a drconsole workspace)",
            root.display()
        )));
    }
    let recorded = crate::engine::read_recorded(root).map_err(|e| ReportError(e.to_string()))?;
    Ok(build(&recorded))
}

/// Writes `report` as one HTML page to `path`, atomically.
pub fn write_html(report: &Report, path: &Path) -> Result<(), ReportError> {
    crate::fsutil::write_atomic(path, html::render(report).as_bytes()).map_err(|e| {
        ReportError(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    })
}

fn minutes(t: SimTime) -> f64 {
    to_minutes(t)
}

/// The datastore of an instance path `sites/<site>/datastores/<ds>/<instance>`.
fn datastore_of_path(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next()? == "sites").then_some(())?;
    parts.next()?;
    (parts.next()? == "datastores").then_some(())?;
    parts.next()
}

/// The topology's protected and recovery sites of a PG (its datastores' site, their
/// replicas' site).
fn pg_sites(t: &Topology, pg: &str) -> Option<(String, String)> {
    let p = t.protection_group(pg)?;
    p.datastores.iter().find_map(|d| {
        let ds = t.datastore(d)?;
        let r = t.replica_of(ds)?;
        Some((ds.site.clone(), r.site.clone()))
    })
}

/// The site of datastore `ds`.
fn site_of(t: &Topology, ds: &str) -> Option<String> {
    t.datastore(ds).map(|d| d.site.clone())
}

/// The datastore's partner across the link: its replica, or what it replicates.
fn partner_site(t: &Topology, ds: &str) -> Option<String> {
    let d = t.datastore(ds)?;
    t.replica_of(d)
        .or_else(|| t.replica_source(d))
        .map(|x| x.site.clone())
}

/// Groups that replicate a datastore of PG `pg` (in either direction).
fn pg_covers(t: &Topology, pg: &str, g: &GroupSpec) -> bool {
    t.protection_group(pg).is_some_and(|p| {
        g.pairs.iter().any(|pair| {
            p.datastores.contains(&pair.datastore) || p.datastores.contains(&pair.replica)
        })
    })
}

/// Builds the report from what the engine recorded.
pub fn build(r: &Recorded) -> Report {
    let t = &r.topology;
    let mut events: Vec<(SimTime, u8, Event)> = Vec::new();
    let mut notes = Vec::new();
    for d in &r.disasters {
        events.push((
            d.lost_at,
            0,
            Event {
                kind: EventKind::Disaster,
                site: Some(d.site.clone()),
                started_at: minutes(d.lost_at),
                ended_at: d.returned_at.map(minutes),
                summary: match d.returned_at {
                    Some(back) => format!(
                        "site {} lost at {}; it returned at {}",
                        d.site,
                        format_time(d.lost_at),
                        format_time(back)
                    ),
                    None => format!(
                        "site {} lost at {}; it is still down",
                        d.site,
                        format_time(d.lost_at)
                    ),
                },
                ..empty_event(EventKind::Disaster)
            },
        ));
        if let Some(back) = d.returned_at {
            events.push((
                back,
                1,
                Event {
                    site: Some(d.site.clone()),
                    started_at: minutes(back),
                    ended_at: Some(minutes(back)),
                    summary: format!(
                        "site {} returned as it was when lost at {}; the instances of VMs failed over away from it are stale",
                        d.site,
                        format_time(d.lost_at)
                    ),
                    ..empty_event(EventKind::SiteReturn)
                },
            ));
        }
    }
    for f in &r.failovers {
        let e = failover_event(t, r, f);
        let rank = if e.kind == EventKind::Failback { 4 } else { 2 };
        events.push((f.started_at, rank, e));
    }
    for rp in &r.reprotects {
        events.push((rp.at, 3, reprotect_event(t, rp)));
    }
    for op in &r.across {
        events.push((op.started_at, 3, across_event(t, op)));
    }
    events.sort_by_key(|e| (e.0, e.1));
    let events: Vec<Event> = events.into_iter().map(|(_, _, e)| e).collect();

    let groups: Vec<GroupLag> = r.groups.iter().map(|g| group_lag(t, r, g)).collect();
    if r.publishes.skipped > 0 {
        notes.push(format!(
            "{} line(s) of {} were not a record (torn by a crash?) and were skipped",
            r.publishes.skipped,
            crate::engine::publish_log_path(&r.root).display()
        ));
    }
    let known: BTreeSet<&str> = r.groups.iter().map(|g| g.id.as_str()).collect();
    let unknown: BTreeSet<&str> = r
        .publishes
        .records
        .iter()
        .map(|p| p.group.as_str())
        .filter(|g| !known.contains(g))
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "the publish log names group(s) the topology no longer has: {}",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let vms = r
        .vms
        .iter()
        .map(|v| VmHistoryFact {
            vm: v.vm.clone(),
            priority: t.vm(&v.vm).map(|x| x.priority),
            left_sites: v.left_sites.clone(),
            writes_lost: v.writes_lost,
        })
        .collect();
    Report {
        workspace: r.root.display().to_string(),
        topology: t.name.clone(),
        now: minutes(r.now),
        summary: summarize(&events),
        events,
        groups,
        vms,
        distributed: distributed::facts(&r.incidents),
        notes,
    }
}

fn summarize(events: &[Event]) -> Summary {
    let mut s = Summary::default();
    let max = |m: &mut Option<f64>, v: Option<f64>| {
        if let Some(v) = v {
            *m = Some(m.map_or(v, |x: f64| x.max(v)));
        }
    };
    for e in events {
        match e.kind {
            EventKind::Disaster => s.disasters += 1,
            EventKind::SiteReturn => {}
            EventKind::Test => s.tests += 1,
            EventKind::Planned => s.planned += 1,
            EventKind::Unplanned => s.unplanned += 1,
            EventKind::Failback => s.failbacks += 1,
            EventKind::Reprotect => s.reprotects += 1,
            EventKind::CrossSiteMove => s.cross_site_moves += 1,
        }
        for v in e.sections.iter().flat_map(|sec| &sec.vms) {
            if v.recovered {
                s.vms_recovered += 1;
            } else {
                s.vms_not_recovered += 1;
            }
            if e.kind != EventKind::Test {
                s.writes_lost += v.writes_lost.unwrap_or(0);
                max(&mut s.worst_achieved_rpo_minutes, v.achieved_rpo_minutes);
            }
            max(&mut s.worst_rto_minutes, v.rto_minutes);
            if v.consistent == Some(false) {
                s.inconsistent
                    .push(format!("{} (#{})", v.vm, e.failover.unwrap_or(0)));
            }
        }
    }
    s
}

/// A time as the logs show it, `mm:ss.s`.
pub fn clock(minutes: f64) -> String {
    format_time(crate::engine::from_minutes(minutes))
}

/// A duration in minutes, in seconds below one minute.
pub fn span(minutes: f64) -> String {
    if minutes < 1.0 {
        format!("{:.1} s", minutes * 60.0)
    } else {
        format!("{minutes:.1} min")
    }
}

impl Event {
    /// "Unplanned failover #1 of pg-tier1, pa to ny", and the like.
    pub fn title(&self) -> String {
        let mut t = self.kind.label().to_string();
        if let Some(n) = self.failover {
            let _ = write!(t, " #{n}");
        }
        if let Some(site) = &self.site {
            let _ = write!(t, " of site {site}");
        }
        if let Some(cg) = &self.consistency_group {
            let _ = write!(t, " of {cg}");
        } else if !self.protection_groups.is_empty() {
            let _ = write!(t, " of {}", self.protection_groups.join(", "));
        }
        if let (Some(a), Some(b)) = (&self.from_site, &self.to_site) {
            let _ = write!(t, ", {a} to {b}");
        }
        t
    }

    /// "02:30.0" or "08:00.0 to 08:02.1".
    pub fn when(&self) -> String {
        match self.ended_at {
            Some(end) if (end - self.started_at).abs() > 1e-9 => {
                format!("{} to {}", clock(self.started_at), clock(end))
            }
            _ => clock(self.started_at),
        }
    }
}

impl VmFact {
    /// "consistent", "NOT consistent" or "not checked".
    pub fn verdict(&self) -> &'static str {
        match self.consistent {
            Some(true) => "consistent",
            Some(false) => "NOT consistent",
            None => "not checked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths_name_their_datastore() {
        assert_eq!(
            datastore_of_path("sites/ny/datastores/ds-gold-3-r/db-01"),
            Some("ds-gold-3-r")
        );
        assert_eq!(datastore_of_path("elsewhere/ds/x"), None);
    }

    #[test]
    fn spans_read_in_seconds_below_a_minute() {
        assert_eq!(span(0.5), "30.0 s");
        assert_eq!(span(2.0), "2.0 min");
        assert_eq!(clock(2.5), "02:30.0");
    }
}
