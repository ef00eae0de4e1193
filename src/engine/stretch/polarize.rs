//! Witness polarization (seed `related-ha-and-replication-abstracts.txt`, "Techniques for
//! avoiding and reducing data unavailability"): when a distributed datastore with a witness
//! loses touch between its legs, both sides hold its I/O for the polarization delay and then
//! ask the witness which one goes on; the first to ask wins. A side that cannot reach the
//! witness (partitioned away, lost) never asks; an unhealthy side (its leg's array reports a
//! fault) adds its delay before asking, so the healthy side wins. A tie goes to the
//! preferred side (the datastore's own site). The winner's leg serves — I/O moves there if
//! it is caught up — and the guests go on. Without a witness nothing waits: the preferred
//! leg keeps serving (a fault on its array moves I/O to the other leg at once, the
//! one-sided polarization of an unhealthy side).

use super::incident::StepKind;
use super::*;
use crate::engine::{SECOND, format_time};

/// A polarization in progress, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polarizing {
    /// When the legs lost touch (I/O held since).
    pub since: SimTime,
    /// When the winner asks the witness: the decision.
    pub decide_at: SimTime,
    /// The winning side's site; none: neither side reaches the witness.
    pub winner: Option<String>,
}

fn secs(s: f64) -> SimTime {
    (s.max(0.0) * SECOND as f64).round() as SimTime
}

impl Engine {
    /// Whether a side (a site of `ds`'s legs) reaches the witness: not partitioned away, not
    /// lost.
    fn st_reaches_witness(&self, site: &str) -> bool {
        !self.stretch.partitioned.contains(site) && !self.sites_down.contains_key(site)
    }

    /// The faulted array of `ds`'s leg at `site`, if it is unhealthy.
    fn st_unhealthy_array(&self, ds: &str, site: &str) -> Option<String> {
        let t = self.topology();
        let d = t.datastore(ds)?;
        let dist = d.distributed.as_ref()?;
        let luns: Vec<&String> = if site == d.site {
            d.luns.iter().collect()
        } else {
            vec![&dist.remote_lun]
        };
        luns.into_iter()
            .filter_map(|l| t.lun(l).map(|(a, _)| a.id.clone()))
            .find(|a| self.stretch.faulted_arrays.contains(a))
    }

    /// The legs of `ds` (with a witness) just lost touch: hold its I/O and queue the
    /// witness's decision. Returns the words for the out-of-compliance report.
    pub(super) fn st_start_polarization(&mut self, ds: &str) -> Result<String, EngineError> {
        let d = self
            .topology()
            .datastore(ds)
            .ok_or_else(|| EngineError::NoSuchDatastore(ds.into()))?
            .clone();
        let dist = d.distributed.clone().ok_or_else(|| {
            rule(
                format!("datastore {ds:?}"),
                "is not a distributed datastore",
            )
        })?;
        let witness = dist.witness.clone().unwrap_or_default();
        let now = self.now;
        let delay = secs(dist.polarization_delay());
        let extra = secs(dist.unhealthy_delay());
        let mut asks: Vec<(SimTime, bool, String)> = Vec::new();
        let mut words: Vec<String> = Vec::new();
        for site in [&d.site, &dist.remote_site] {
            if !self.st_reaches_witness(site) {
                words.push(format!("{site} cannot reach witness {witness}"));
                continue;
            }
            let (at, why) = match self.st_unhealthy_array(ds, site) {
                Some(a) => (
                    now + delay + extra,
                    format!(
                        " (unhealthy: array {a} reports a fault; it adds {} s)",
                        dist.unhealthy_delay()
                    ),
                ),
                None => (now + delay, String::new()),
            };
            words.push(format!("{site} asks at {}{why}", format_time(at)));
            asks.push((at, *site != d.site, site.clone()));
        }
        asks.sort();
        let winner = asks.first().map(|(_, _, s)| s.clone());
        let decide_at = asks.first().map_or(now + delay, |(at, _, _)| *at);
        debug_assert!(decide_at >= now + delay, "nobody asks before the delay");
        for (i, _) in self.st_vms_on(ds) {
            // Held: no write is acknowledged until a side has won.
            self.vms[i].guest_gen += 1;
        }
        let rt = self.stretch.dists.get_mut(ds).expect("created datastores");
        rt.rebuilding = false;
        rt.gen_ += 1;
        let gen_ = rt.gen_;
        rt.saved.polarizing = Some(Polarizing {
            since: now,
            decide_at,
            winner,
        });
        self.st_schedule(ds, decide_at, gen_);
        let detail = format!(
            "I/O held for the polarization delay ({} s) before the sides ask witness {witness}: {}",
            dist.polarization_delay(),
            words.join("; ")
        );
        self.st_step(ds, StepKind::IoHeld, detail.clone());
        Ok(detail)
    }

    /// A queued `Ev::Stretch` for a polarizing `ds` fell due: hold on until the decision
    /// (after a reopen, which starts every guest), or decide.
    pub(super) fn st_polarization_event(&mut self, ds: &str, i: usize) -> Result<(), EngineError> {
        let Some(p) = self
            .stretch
            .dists
            .get(ds)
            .and_then(|r| r.saved.polarizing.clone())
        else {
            return Ok(());
        };
        if self.now < p.decide_at {
            // (After a reopen: the guests stay held, `guest_held` sees the polarization.)
            let gen_ = self.stretch.dists[ds].gen_;
            self.schedule(p.decide_at, Ev::Stretch { ds: DsIx(i), gen_ });
            return Ok(());
        }
        let d = self.topology().datastore(ds).expect("created").clone();
        let dist = d.distributed.clone().expect("distributed");
        let witness = dist.witness.clone().unwrap_or_default();
        let rt = &self.stretch.dists[ds];
        let serving_remote = rt.saved.serving_remote;
        let serving = if serving_remote {
            &dist.remote_site
        } else {
            &d.site
        };
        let caught_up = rt.saved.remote_present && rt.tracked() == 0;
        let waited = format_time(self.now - p.since);
        match &p.winner {
            None => {
                self.st_step(
                    ds,
                    StepKind::WitnessDecision,
                    format!(
                        "no side reached witness {witness} after {waited}: the leg at {serving} keeps serving"
                    ),
                );
            }
            Some(w) if w == serving => {
                self.st_step(
                    ds,
                    StepKind::WitnessDecision,
                    format!(
                        "witness {witness} picked the leg at {w} (it asked first, {waited} after the legs lost touch); it keeps serving"
                    ),
                );
            }
            Some(w) if caught_up => {
                self.st_step(
                    ds,
                    StepKind::WitnessDecision,
                    format!(
                        "witness {witness} picked the leg at {w} (it asked first, {waited} after the legs lost touch)"
                    ),
                );
                self.st_swap_serving(ds, !serving_remote)?;
                self.st_step(
                    ds,
                    StepKind::IoMoved,
                    format!(
                        "VM I/O moved to the leg at {w}; the leg at {serving} is behind and changed blocks are tracked"
                    ),
                );
            }
            Some(w) => {
                self.st_step(
                    ds,
                    StepKind::WitnessDecision,
                    format!(
                        "witness {witness} picked the leg at {w}, but it is behind (writes landed on the leg at {serving} meanwhile): I/O stays at {serving}"
                    ),
                );
            }
        }
        self.st_end_polarization(ds);
        let serving_now = if self.stretch.dists[ds].saved.serving_remote {
            &dist.remote_site
        } else {
            &d.site
        };
        self.info(format!(
            "{ds}: polarization over after {waited}: the leg at {serving_now} serves; I/O resumes"
        ));
        self.persist_state()
    }

    /// While `ds` polarizes, the guests of the VMs on it stay held ([`Engine::guest_held`]).
    pub(in crate::engine) fn polarization_holds(&self, i: usize) -> bool {
        let v = &self.vms[i];
        v.recovered.is_none()
            && self
                .stretch
                .dists
                .get(&v.datastore)
                .is_some_and(|r| r.saved.polarizing.is_some())
    }

    /// Ends a polarization of `ds` (decided, or the legs are in touch again): the guests go
    /// on. Returns whether one was in progress.
    pub(super) fn st_end_polarization(&mut self, ds: &str) -> bool {
        let Some(rt) = self.stretch.dists.get_mut(ds) else {
            return false;
        };
        if rt.saved.polarizing.take().is_none() {
            return false;
        }
        rt.gen_ += 1;
        for (i, _) in self.st_vms_on(ds) {
            self.start_guest(i);
        }
        true
    }
}
