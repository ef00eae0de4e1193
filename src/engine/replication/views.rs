//! What the console sees of replication groups: state, lag, published points.

use super::*;

/// The state a group is in, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    Idle,
    Transferring,
    Paused,
    /// Host I/O runs on the replicas after an array fault (health.rs): suspended until the
    /// resync back completes.
    Swapped,
    LinkDown,
    SiteDown,
    FailedOver,
    /// Held by a cross-site move of its VMs one by one: it publishes nothing meanwhile.
    MovingAcross,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Idle => "idle",
            GroupState::Transferring => "transferring",
            GroupState::Paused => "paused",
            GroupState::Swapped => "swapped",
            GroupState::LinkDown => "link down",
            GroupState::SiteDown => "site down",
            GroupState::FailedOver => "failed over",
            GroupState::MovingAcross => "held by a cross-site move",
        }
    }
}

/// A group as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub id: String,
    pub consistency_group: Option<String>,
    pub pairs: Vec<Pair>,
    /// The site it replicates from, and to.
    pub source_site: String,
    pub target_site: String,
    /// Reprotected: it replicates from the topology's replicas back to its protected
    /// datastores (SPEC §11).
    pub reversed: bool,
    pub rpo_minutes: u32,
    pub state: GroupState,
    pub cycles: u64,
    pub last_cut_at: Option<SimTime>,
    pub last_published_at: Option<SimTime>,
    pub next_cut_at: Option<SimTime>,
    /// now − cut time of the last published point (None before the first); once the
    /// protected site is lost, the disaster's time − that cut: what the disaster lost.
    pub lag: Option<SimTime>,
    /// When its protected (source) site was lost, if it was.
    pub lost_at: Option<SimTime>,
    pub rpo_violation: bool,
    /// The cycle number of the last published point (`cycles` counts the one in flight).
    pub point_cycle: Option<u64>,
    pub bytes_shipped: u64,
    pub last_cycle_bytes: u64,
    /// The transfer in flight: (cut at, bytes, ends at).
    pub transfer: Option<(SimTime, u64, SimTime)>,
    pub last_error: Option<String>,
    /// Its retained recovery points, latest first, when it keeps more than one
    /// (`retain_points`, SPEC §11): what a failover to an earlier point can recover.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<RetainedPoint>,
}

/// "12.3 MiB".
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{b:.0} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

impl Engine {
    /// When group `g`'s protected site was lost, if it was.
    pub(super) fn source_lost_at(&self, g: usize) -> Option<SimTime> {
        self.sites_down
            .get(&self.groups[g].spec.source_site)
            .copied()
    }

    /// The time group `g`'s lag and RPO are measured to: now, or the loss of its protected
    /// site (no write is added to what is at risk after it).
    pub(super) fn measured_until(&self, g: usize) -> SimTime {
        self.source_lost_at(g).map_or(self.now, |t| t.min(self.now))
    }

    pub(in crate::engine) fn group_views(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, grp)| {
                // Once its protected site is lost no write is added to what is at risk:
                // the lag, and the RPO it is held to, are measured to the disaster.
                let lost_at = self.source_lost_at(g);
                let until = self.measured_until(g);
                let lag = grp
                    .published
                    .as_ref()
                    .map(|p| until.saturating_sub(p.cut_at));
                let state = match self.group_blocked(g) {
                    Some(s) => s,
                    None if grp.transfer.is_some() => GroupState::Transferring,
                    None => GroupState::Idle,
                };
                GroupView {
                    id: grp.spec.id.clone(),
                    consistency_group: grp.spec.consistency_group.clone(),
                    pairs: grp.spec.pairs.clone(),
                    source_site: grp.spec.source_site.clone(),
                    target_site: grp.spec.target_site.clone(),
                    reversed: grp.saved.reversed,
                    rpo_minutes: grp.spec.rpo_minutes,
                    state,
                    cycles: grp.saved.cycles,
                    last_cut_at: grp.published.as_ref().map(|p| p.cut_at),
                    last_published_at: grp.published.as_ref().map(|p| p.published_at),
                    next_cut_at: grp.saved.next_cut,
                    lag,
                    lost_at,
                    rpo_violation: !grp.saved.failed_over && grp.rpo_violated(until),
                    point_cycle: grp.published.as_ref().map(|p| p.cycle),
                    bytes_shipped: grp.saved.bytes_shipped,
                    last_cycle_bytes: grp.published.as_ref().map_or(0, |p| p.bytes),
                    transfer: grp
                        .transfer
                        .as_ref()
                        .map(|t| (t.manifest.cut_at, t.manifest.bytes, t.ends_at)),
                    last_error: grp.last_error.clone(),
                    points: if grp.spec.retain_points > 1 {
                        self.retained_points(g)
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }

    /// The last published point of the group replicating `datastore` (a protected or a
    /// replica datastore).
    pub fn published_point(&self, datastore: &str) -> Option<&PublishedPoint> {
        self.groups
            .iter()
            .find(|g| {
                g.spec
                    .pairs
                    .iter()
                    .any(|p| p.datastore == datastore || p.replica == datastore)
            })
            .and_then(|g| g.published.as_ref())
    }
}
