//! The distributed datastores' incidents in the report (SPEC §8, seed
//! `distributed-volume-during-partition.txt`, claims 6 and 11): for each failure that
//! separated a datastore's legs, the failure and every step performed to keep it serving,
//! up to its repair. A workspace without one adds nothing to the report: no JSON field, no
//! text, no HTML section.

use std::fmt::Write as _;

use serde::Serialize;

use super::html::esc;
use super::{Report, clock, minutes, span};
use crate::engine::Incident;

/// One incident of a distributed datastore, as the report states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributedIncident {
    pub datastore: String,
    /// The failure, in words.
    pub failure: String,
    /// Simulated minutes.
    pub began_at: f64,
    /// None: still out of compliance.
    pub repaired_at: Option<f64>,
    /// "repaired" or "open".
    pub state: String,
    /// Blocks tracked while the legs were apart, and rebuilt.
    pub tracked_blocks: u64,
    pub rebuilt_blocks: u64,
    /// Every step performed, oldest first.
    pub steps: Vec<IncidentStepFact>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentStepFact {
    /// Simulated minutes.
    pub at: f64,
    /// "out of compliance", "witness decision", "blocks rebuilt", …
    pub step: String,
    pub detail: String,
}

pub(super) fn facts(incidents: &[Incident]) -> Vec<DistributedIncident> {
    incidents
        .iter()
        .map(|i| DistributedIncident {
            datastore: i.datastore.clone(),
            failure: i.failure.clone(),
            began_at: minutes(i.began_at),
            repaired_at: i.repaired_at.map(minutes),
            state: i.state().to_string(),
            tracked_blocks: i.tracked_blocks,
            rebuilt_blocks: i.rebuilt_blocks,
            steps: i
                .steps
                .iter()
                .map(|s| IncidentStepFact {
                    at: minutes(s.at),
                    step: s.kind.label().to_string(),
                    detail: s.detail.clone(),
                })
                .collect(),
        })
        .collect()
}

impl DistributedIncident {
    /// "repaired after 1.2 min" or "still out of compliance".
    pub fn outcome(&self) -> String {
        match self.repaired_at {
            Some(end) => format!("repaired after {}", span(end - self.began_at)),
            None => "still out of compliance".into(),
        }
    }
}

/// The text section (nothing when there is no incident).
pub(super) fn text(o: &mut String, r: &Report) {
    if r.distributed.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nDistributed datastores: each failure and every step performed:"
    );
    for i in &r.distributed {
        let _ = writeln!(
            o,
            "  [{}] {}: {}; {}; {} block(s) tracked, {} rebuilt",
            clock(i.began_at),
            i.datastore,
            i.failure,
            i.outcome(),
            i.tracked_blocks,
            i.rebuilt_blocks
        );
        for s in &i.steps {
            let _ = writeln!(o, "    {} {}: {}", clock(s.at), s.step, s.detail);
        }
    }
}

/// The HTML section (nothing when there is no incident).
pub(super) fn html(o: &mut String, r: &Report) {
    if r.distributed.is_empty() {
        return;
    }
    o.push_str("<h2>Distributed datastores</h2>\n<p class=\"sub\">Each failure that separated a distributed datastore's legs, and every step performed to keep it serving until both legs were in compliance again.</p>\n");
    for i in &r.distributed {
        let (class, tone) = if i.repaired_at.is_some() {
            ("e-failback", "ok")
        } else {
            ("e-unplanned", "bad")
        };
        let _ = writeln!(
            o,
            "<div class=\"event {class}\"><h3>{}: {}</h3><div class=\"muted\">{} · <span class=\"{tone}\">{}</span> · {} block(s) tracked, {} rebuilt</div>",
            esc(&i.datastore),
            esc(&i.failure),
            esc(&clock(i.began_at)),
            esc(&i.outcome()),
            i.tracked_blocks,
            i.rebuilt_blocks
        );
        o.push_str("<table>\n<tr><th>When</th><th>Step</th><th>What was done</th></tr>\n");
        for s in &i.steps {
            let _ = writeln!(
                o,
                "<tr><td class=\"when\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&clock(s.at)),
                esc(&s.step),
                esc(&s.detail)
            );
        }
        o.push_str("</table>\n</div>\n");
    }
}
