//! The distributed volume's incident reports (seed `distributed-volume-during-partition.txt`,
//! claims 6 and 11): after the consistency processing, a report names the failure and every
//! step performed to keep the volume serving — created out of compliance, I/O held while
//! the witness decided, I/O moved, blocks tracked, the remote leg created, blocks rebuilt,
//! the preferred leg serving again, repaired. One [`Incident`] runs from the failure that
//! separated the legs to the repair; it is saved with the engine state (`state/engine.ron`),
//! so it survives a reopen, and the DR report (`drconsole report`) prints it.

use super::*;

/// One step performed for a distributed volume during an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Created during the failure: the local leg only.
    LocalLegCreated,
    /// Designated out of compliance (the report the seed's claim 1 asks for).
    OutOfCompliance,
    /// A further failure while the incident was still open.
    Failure,
    /// I/O held while the sides wait to ask the witness (polarization).
    IoHeld,
    /// The witness picked a side.
    WitnessDecision,
    /// VM I/O moved to the other leg.
    IoMoved,
    /// The legs are in touch again: what was tracked, and the rebuild starting.
    RebuildStarted,
    /// The tracked blocks were copied to the leg that was behind.
    Rebuilt,
    /// The remote leg was created (known zeros).
    RemoteLegCreated,
    /// The preferred (own) leg serves again.
    PreferredLegServes,
    /// Both legs in compliance again.
    Repaired,
}

impl StepKind {
    pub fn label(self) -> &'static str {
        match self {
            StepKind::LocalLegCreated => "local leg created",
            StepKind::OutOfCompliance => "out of compliance",
            StepKind::Failure => "another failure",
            StepKind::IoHeld => "I/O held (polarization)",
            StepKind::WitnessDecision => "witness decision",
            StepKind::IoMoved => "I/O moved",
            StepKind::RebuildStarted => "rebuild started",
            StepKind::Rebuilt => "blocks rebuilt",
            StepKind::RemoteLegCreated => "remote leg created",
            StepKind::PreferredLegServes => "preferred leg serves",
            StepKind::Repaired => "repaired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentStep {
    /// Simulated time.
    pub at: SimTime,
    pub kind: StepKind,
    pub detail: String,
}

/// From the failure that separated a distributed datastore's legs to its repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub datastore: String,
    /// The failure, in words ("site ny partitioned away", "array ap reported a fault").
    pub failure: String,
    pub began_at: SimTime,
    /// None: still open (out of compliance).
    pub repaired_at: Option<SimTime>,
    /// Blocks tracked while the legs were apart and rebuilt afterwards.
    pub tracked_blocks: u64,
    pub rebuilt_blocks: u64,
    /// Every step performed, oldest first.
    pub steps: Vec<IncidentStep>,
}

impl Incident {
    /// "repaired" or "open".
    pub fn state(&self) -> &'static str {
        if self.repaired_at.is_some() {
            "repaired"
        } else {
            "open"
        }
    }
}

impl Engine {
    /// The open incident of `ds`, if any.
    fn st_open_incident(&mut self, ds: &str) -> Option<&mut Incident> {
        self.stretch
            .dists
            .get_mut(ds)?
            .saved
            .incidents
            .last_mut()
            .filter(|i| i.repaired_at.is_none())
    }

    /// A failure separated the legs of `ds`: a new incident, or a step of the open one.
    pub(super) fn st_incident_failure(&mut self, ds: &str, failure: String) {
        let now = self.now;
        if let Some(open) = self.st_open_incident(ds) {
            open.steps.push(IncidentStep {
                at: now,
                kind: StepKind::Failure,
                detail: failure,
            });
            return;
        }
        if let Some(rt) = self.stretch.dists.get_mut(ds) {
            rt.saved.incidents.push(Incident {
                datastore: ds.to_string(),
                failure,
                began_at: now,
                repaired_at: None,
                tracked_blocks: 0,
                rebuilt_blocks: 0,
                steps: Vec::new(),
            });
        }
    }

    /// Records a step of the open incident of `ds` (none open: nothing to record — a
    /// rebuild after a VM arrived on an in-compliance datastore is no incident).
    pub(super) fn st_step(&mut self, ds: &str, kind: StepKind, detail: String) {
        self.st_step_blocks(ds, kind, 0, detail);
    }

    /// Records a step that tracked (`RebuildStarted`) or rebuilt (`Rebuilt`) `blocks`.
    pub(super) fn st_step_blocks(&mut self, ds: &str, kind: StepKind, blocks: u64, detail: String) {
        let now = self.now;
        if let Some(open) = self.st_open_incident(ds) {
            debug_assert!(
                open.steps.last().is_none_or(|s| s.at <= now),
                "steps are recorded in simulated-time order"
            );
            match kind {
                StepKind::RebuildStarted => open.tracked_blocks += blocks,
                StepKind::Rebuilt => open.rebuilt_blocks += blocks,
                StepKind::Repaired => open.repaired_at = Some(now),
                _ => {}
            }
            open.steps.push(IncidentStep {
                at: now,
                kind,
                detail,
            });
        }
    }

    /// Every incident of every distributed datastore, oldest first.
    pub fn stretch_incidents(&self) -> Vec<Incident> {
        let mut out: Vec<Incident> = self
            .stretch
            .dists
            .values()
            .flat_map(|r| r.saved.incidents.iter().cloned())
            .collect();
        out.sort_by(|a, b| (a.began_at, &a.datastore).cmp(&(b.began_at, &b.datastore)));
        out
    }
}

impl StretchSaved {
    /// The incidents saved in `state/engine.ron`, every datastore's, oldest first (for a
    /// report read from disk).
    pub(in crate::engine) fn incidents(&self) -> Vec<Incident> {
        let mut out: Vec<Incident> = self
            .datastores
            .values()
            .flat_map(|d| d.incidents.iter().cloned())
            .collect();
        out.sort_by(|a, b| (a.began_at, &a.datastore).cmp(&(b.began_at, &b.datastore)));
        out
    }
}
