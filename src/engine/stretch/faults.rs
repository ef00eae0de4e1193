//! Site partitions and array faults as distributed datastores live them.

use super::incident::StepKind;
use super::*;

impl Engine {
    /// The site can no longer be reached from the others (inter-site network down).
    pub(in crate::engine) fn partition_site(&mut self, site: &str) -> Result<Outcome, EngineError> {
        if self.topology().site(site).is_none() {
            return Err(rule(format!("site {site:?}"), "does not exist"));
        }
        if self.stretch.partitioned.contains(site) {
            return Ok(Outcome::Done(format!("Site {site} is already partitioned")));
        }
        let was_reachable: BTreeSet<String> = self
            .stretch
            .dists
            .keys()
            .filter(|ds| self.st_legs_reachable(ds))
            .cloned()
            .collect();
        self.stretch.partitioned.insert(site.to_string());
        self.push_log(
            LogLevel::Warning,
            format!("Partition: site {site} is cut off from the other sites"),
        );
        let mut lines = vec![format!("Site {site} partitioned away")];
        for ds in was_reachable {
            if self.st_legs_reachable(&ds) {
                continue;
            }
            let rt = self.stretch.dists.get_mut(&ds).expect("listed");
            rt.rebuilding = false;
            rt.gen_ += 1;
            let d = self
                .topology()
                .datastore(&ds)
                .expect("created datastores exist")
                .clone();
            let dist = d.distributed.clone().expect("a distributed datastore");
            self.st_incident_failure(
                &ds,
                format!("site {site} partitioned away (inter-site network failure)"),
            );
            let msg = if let Some(w) = &dist.witness {
                // Both sides hold I/O, then ask the witness: the one cut off cannot.
                let held = self.st_start_polarization(&ds)?;
                format!(
                    "{ds} out of compliance: the partition separates its legs; witness {w} decides which leg serves — {held}; the other leg falls behind and changed blocks are tracked"
                )
            } else {
                format!(
                    "{ds} out of compliance: the partition separates its legs; the leg at {} keeps serving, the leg at {} is behind and changed blocks are tracked",
                    d.site, dist.remote_site
                )
            };
            self.st_push_report(&ds, ReportKind::OutOfCompliance, msg);
            lines.push(format!("{ds} out of compliance"));
        }
        let touches = self
            .groups
            .iter()
            .any(|g| g.spec.source_site == site || g.spec.target_site == site);
        if touches && self.link_up {
            self.set_link(false)?;
            self.stretch.link_taken_down = true;
            lines.push("replication link down".into());
        }
        Ok(Outcome::Done(lines.join("; ")))
    }

    /// The partition ends.
    pub(in crate::engine) fn heal_partition(&mut self) -> Result<Outcome, EngineError> {
        if self.stretch.partitioned.is_empty() {
            return Err(rule("HealPartition", "no site is partitioned"));
        }
        let sites: Vec<String> = std::mem::take(&mut self.stretch.partitioned)
            .into_iter()
            .collect();
        self.info(format!(
            "Partition healed: {} reachable again",
            sites.join(", ")
        ));
        let mut lines = vec![format!("Partition of {} healed", sites.join(", "))];
        let dss: Vec<String> = self.stretch.dists.keys().cloned().collect();
        for ds in dss {
            if !self.st_legs_reachable(&ds) {
                continue;
            }
            if self.st_end_polarization(&ds) {
                self.st_step(
                    &ds,
                    StepKind::WitnessDecision,
                    "the partition healed before the witness decided: the legs are in touch again, I/O resumes where it was".into(),
                );
            }
            if !self.stretch.dists[&ds].saved.remote_present {
                self.st_create_remote_leg(&ds)?;
                let remote = self
                    .topology()
                    .datastore(&ds)
                    .and_then(|d| d.distributed.as_ref())
                    .map(|x| format!("{} ({})", x.remote_site, x.remote_lun))
                    .unwrap_or_default();
                self.info(format!(
                    "{ds}: the second leg at {remote} is created (zeros); rebuilding only the tracked blocks"
                ));
                self.st_step(
                    &ds,
                    StepKind::RemoteLegCreated,
                    format!(
                        "the partition healed: the remote leg at {remote} created, known zeros, one instance per VM"
                    ),
                );
            }
            let tracked = self.stretch.dists[&ds].tracked();
            self.st_kick_rebuild(&ds);
            self.st_rebuild_step(&ds, tracked, "the partition healed");
            lines.push(format!("{ds}: rebuilding {tracked} tracked block(s)"));
        }
        if self.stretch.link_taken_down {
            self.stretch.link_taken_down = false;
            self.set_link(true)?;
            lines.push("replication link up".into());
        }
        Ok(Outcome::Done(lines.join("; ")))
    }

    /// The distributed datastores with a leg on `array`.
    pub(super) fn st_dists_on_array(&self, array: &str) -> Vec<String> {
        self.stretch
            .dists
            .keys()
            .filter(|ds| self.st_leg_arrays(ds).iter().any(|a| a == array))
            .cloned()
            .collect()
    }

    /// An array holding a leg of a distributed datastore reports a fault: serve those
    /// datastores from their other leg. Returns what changed, one line per datastore
    /// (empty: the array holds no leg). Called by the health module's `array_fault`.
    /// A fault on the array of the serving leg swaps VM I/O to the other leg if that one
    /// is caught up (else the serving leg stays, with a warning); a fault on the other
    /// leg's array leaves it behind, tracking.
    pub(in crate::engine) fn stretch_array_fault(
        &mut self,
        array: &str,
    ) -> Result<Vec<String>, EngineError> {
        if self.stretch.faulted_arrays.contains(array) {
            return Ok(Vec::new());
        }
        let dss = self.st_dists_on_array(array);
        let was_reachable: BTreeSet<String> = dss
            .iter()
            .filter(|ds| self.st_legs_reachable(ds))
            .cloned()
            .collect();
        let mut lines = Vec::new();
        for ds in &dss {
            let d = self.topology().datastore(ds).expect("created").clone();
            let dist = d.distributed.clone().expect("distributed");
            let t = self.topology();
            let own_array = d
                .luns
                .iter()
                .filter_map(|l| t.lun(l).map(|(a, _)| a.id.clone()))
                .any(|a| a == array);
            let rt = self.stretch.dists.get(ds).expect("listed");
            let serving_remote = rt.saved.serving_remote;
            let caught_up =
                rt.saved.remote_present && rt.tracked() == 0 && was_reachable.contains(ds);
            // The array of the leg that serves now.
            let serving_hit = own_array != serving_remote;
            let hit_site = if own_array {
                &d.site
            } else {
                &dist.remote_site
            };
            let failure = format!("array {array} (the leg at {hit_site}) reported a fault");
            if was_reachable.contains(ds)
                && let Some(w) = &dist.witness
            {
                // Both sides hold I/O and ask the witness; the unhealthy side asks late.
                self.st_incident_failure(ds, failure);
                self.stretch.faulted_arrays.insert(array.to_string());
                let held = self.st_start_polarization(ds)?;
                let msg = format!(
                    "{ds} out of compliance: array {array} reports a fault; witness {w} decides which leg serves — {held}; the other leg falls behind and changed blocks are tracked"
                );
                self.st_push_report(ds, ReportKind::OutOfCompliance, msg.clone());
                lines.push(msg);
                continue;
            }
            let msg = if serving_hit && caught_up {
                self.st_swap_serving(ds, !serving_remote)?;
                let (to, from) = if serving_remote {
                    (&d.site, &dist.remote_site)
                } else {
                    (&dist.remote_site, &d.site)
                };
                format!(
                    "{ds} out of compliance: array {array} reports a fault; I/O swaps to the leg at {to}, the leg at {from} is behind and changed blocks are tracked"
                )
            } else if serving_hit {
                self.push_log(
                    LogLevel::Warning,
                    format!(
                        "{ds}: array {array} (the serving leg) reports a fault, but the other leg is behind: I/O stays where it is"
                    ),
                );
                continue;
            } else {
                format!(
                    "{ds} out of compliance: array {array} (the other leg) reports a fault; changed blocks are tracked until it is healthy"
                )
            };
            let rt = self.stretch.dists.get_mut(ds).expect("listed");
            rt.rebuilding = false;
            rt.gen_ += 1;
            self.st_incident_failure(ds, failure);
            if serving_hit {
                let to = if serving_remote {
                    &d.site
                } else {
                    &dist.remote_site
                };
                self.st_step(
                    ds,
                    StepKind::IoMoved,
                    format!(
                        "no witness to ask: the unhealthy side gave way at once and VM I/O moved to the leg at {to}"
                    ),
                );
            }
            self.st_push_report(ds, ReportKind::OutOfCompliance, msg.clone());
            lines.push(msg);
        }
        if !lines.is_empty() {
            self.stretch.faulted_arrays.insert(array.to_string());
        }
        Ok(lines)
    }

    /// The array is healthy again: rebuild its legs from the tracked blocks, then serve
    /// from the preferred leg again. Called by the health module's `array_healthy`.
    pub(in crate::engine) fn stretch_array_healthy(
        &mut self,
        array: &str,
    ) -> Result<Vec<String>, EngineError> {
        if !self.stretch.faulted_arrays.remove(array) {
            return Ok(Vec::new());
        }
        let dss = self.st_dists_on_array(array);
        let mut lines = Vec::new();
        for ds in dss {
            if self.st_end_polarization(&ds) {
                self.st_step(
                    &ds,
                    StepKind::WitnessDecision,
                    format!("array {array} is healthy before the witness decided: I/O resumes where it was"),
                );
            }
            let tracked = self.stretch.dists[&ds].tracked();
            self.st_kick_rebuild(&ds);
            self.st_rebuild_step(&ds, tracked, &format!("array {array} is healthy"));
            if self.stretch.dists[&ds].rebuilding {
                lines.push(format!(
                    "{ds}: array {array} healthy; rebuilding {tracked} tracked block(s), then the preferred leg serves"
                ));
            }
        }
        Ok(lines)
    }
}

impl Engine {
    /// Records the rebuild's start in the open incident of `ds`, if it started.
    pub(super) fn st_rebuild_step(&mut self, ds: &str, tracked: u64, why: &str) {
        if !self.stretch.dists.get(ds).is_some_and(|r| r.rebuilding) {
            return;
        }
        let rate = self.st_leg_link_mib_s(ds);
        self.st_step_blocks(
            ds,
            StepKind::RebuildStarted,
            tracked,
            format!(
                "{why}: {tracked} block(s) changed while the legs were apart were tracked; only those are rebuilt, at {rate:.1} MiB/s over the link"
            ),
        );
    }
}
