//! Planning a cross-site move: its group, members, reserved hosts and rating.

use std::collections::{BTreeMap, BTreeSet};

use super::one_by_one::break_explanation;
use super::{AcrossMember, AcrossPlan, Consistency};
use crate::dr::{self, Fault, Rating};
use crate::engine::{Engine, EngineError, format_time};

impl Engine {
    /// Plans moving CG `cg` to the other site: its replication group, each VM's replica
    /// instance and reserved host, and the rating. An error names the rule it breaks.
    pub fn plan_across(
        &self,
        cg: &str,
        consistency: Consistency,
    ) -> Result<AcrossPlan, EngineError> {
        let rule = |rule: String| EngineError::Rule {
            object: format!("consistency group {cg}"),
            rule,
        };
        let g = self
            .groups
            .iter()
            .position(|g| g.spec.consistency_group.as_deref() == Some(cg))
            .ok_or_else(|| rule("is not a replicated consistency group".into()))?;
        let spec = self.groups[g].spec.clone();
        if let Some((site, _)) = self.sites_down.iter().next() {
            return Err(rule(format!(
                "site {site} is down: a cross-site move needs both sites"
            )));
        }
        if !self.link_up {
            return Err(rule("the replication link is down".into()));
        }
        if self.pending_failover.is_some() {
            return Err(rule("a planned failover is running".into()));
        }
        if let Some(state) = self.group_blocked(g) {
            return Err(rule(format!(
                "its replication group cannot replicate now ({})",
                state.as_str()
            )));
        }
        let sources: BTreeMap<&str, &str> = spec
            .pairs
            .iter()
            .map(|p| (p.datastore.as_str(), p.replica.as_str()))
            .collect();
        let on_group: Vec<usize> = (0..self.vms.len())
            .filter(|&i| sources.contains_key(self.vms[i].datastore.as_str()))
            .collect();
        if on_group.is_empty() {
            return Err(rule(format!(
                "has no VM running on {}",
                spec.pairs
                    .iter()
                    .map(|p| p.datastore.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let busy: Vec<&str> = on_group
            .iter()
            .filter(|&&i| self.vms[i].down || self.vms[i].migration.is_some())
            .map(|&i| self.vms[i].id.as_str())
            .collect();
        if !busy.is_empty() {
            return Err(rule(format!(
                "{} {} stopped or migrating: every VM of the group must be running and settled",
                busy.join(", "),
                if busy.len() == 1 { "is" } else { "are" }
            )));
        }
        let (placed, unplaced, _) = self.reserve(&on_group, &spec.target_site);
        if !unplaced.is_empty() {
            return Err(rule(format!(
                "{} do(es) not fit on the hosts of {} (free vCPUs and memory)",
                unplaced.join(", "),
                spec.target_site
            )));
        }
        let mut members = Vec::new();
        for &i in &on_group {
            let v = &self.vms[i];
            let to = sources[v.datastore.as_str()];
            let replica = self.ws.datastore_dir(to)?.join(&v.instance);
            if !replica.join(crate::workspace::VM_CONFIG_FILE).exists() {
                return Err(rule(format!(
                    "{} has no replica on {to} yet: let the group publish its first point",
                    v.id
                )));
            }
            members.push(AcrossMember {
                vm: v.id.clone(),
                from_datastore: v.datastore.clone(),
                from_host: v.host.clone(),
                to_datastore: to.to_string(),
                to_host: placed[&v.id].clone(),
                instance: v.instance.clone(),
                ..Default::default()
            });
        }
        let impact = self.across_impact(cg, g, &members, consistency);
        Ok(AcrossPlan {
            group: g,
            members,
            impact,
            mbps: spec.mbps,
        })
    }

    /// The move's impact on protection: none while the CG is the whole of its protection
    /// groups there (it stays protected throughout, then from the other site); a PG that
    /// keeps datastores at the source splits across the sites, which a failover of it then
    /// has to undo: `heightened-mild` (replication within the group, SPEC §3).
    fn across_impact(
        &self,
        cg: &str,
        g: usize,
        members: &[AcrossMember],
        consistency: Consistency,
    ) -> dr::Impact {
        let t = self.topology();
        let spec = &self.groups[g].spec;
        let from = spec.source_site.as_str();
        let to = spec.target_site.as_str();
        let grp = &self.groups[g];
        let points = grp.older.len();
        // The PGs of the moving datastores, and the VMs of theirs that stay at the source.
        let pgs: BTreeSet<&str> = spec
            .pairs
            .iter()
            .filter_map(|p| t.pg_of_either_side(&p.datastore))
            .collect();
        let mut split = Vec::new();
        for pg in pgs {
            let staying: Vec<&str> = self
                .vms
                .iter()
                .filter(|v| {
                    !members.iter().any(|m| m.vm == v.id)
                        && !v.down
                        && v.site == from
                        && t.pg_of_either_side(&v.datastore) == Some(pg)
                })
                .map(|v| v.id.as_str())
                .collect();
            if !staying.is_empty() {
                split.push(format!("{pg} keeps {} at {from}", staying.join(", ")));
            }
        }
        let mut explanation = if consistency == Consistency::Break {
            break_explanation(cg, spec, members.len())
        } else {
            format!(
                "{cg} moves from {from} to {to} on its replicas: replication turns synchronous, so every guest write also crosses the link until the switch; only the blocks changed since the last recovery point ({}) are shipped; all {} VM(s) switch at one instant and their writes are mirrored back to {from} until {to}'s first recovery point of the reversed group is published, so {from} stays a consistent fail-back. Afterwards {to} protects the group and {from} is its recovery site.",
                grp.published
                    .as_ref()
                    .map_or("none yet".into(), |p| format!(
                        "cut at {}",
                        format_time(p.cut_at)
                    )),
                members.len()
            )
        };
        if points > 0 {
            explanation.push_str(&format!(
                " The group's {points} older point(s) in time are released {} (the replicas become the running copies).",
                if consistency.is_keep() {
                    "at the switch"
                } else {
                    "at the start"
                }
            ));
        }
        if !split.is_empty() {
            explanation.push_str(&format!(
                " Its protection group splits across the sites ({}): until the rest follows, a failover of it recovers VMs in both directions.",
                split.join("; ")
            ));
        }
        // Splitting a PG, or moving VMs one by one (the group then holds no consistent copy
        // anywhere but the record), is like a move to another CG of the same PG (SPEC §3).
        let (rating, fault) = if split.is_empty() && consistency.is_keep() {
            (Rating::None, None)
        } else {
            (Rating::HeightenedMild, Some(Fault::ReplicationWithinGroup))
        };
        dr::Impact {
            from: from.to_string(),
            to: to.to_string(),
            allowed: rating == Rating::None,
            rating,
            fault,
            explanation,
        }
    }
}
