//! What the console and scenarios see of placement: usage, recommendations.

use super::*;

/// One datastore's space and mode, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatastoreUseView {
    pub id: String,
    pub replicated: bool,
    pub consistency_group: Option<String>,
    pub capacity_mib: u64,
    pub used_mib: u64,
    /// Used fraction in basis points (10000 = full).
    pub used_bp: u64,
    pub in_maintenance: bool,
    /// VMs still living on it (an evacuation's progress).
    pub vms_left: usize,
    /// Of those, VMs being moved off it now.
    pub moving_out: usize,
}

/// A recommended move waiting for the operator's override.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationView {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub rating: Rating,
    pub fault: Option<String>,
    pub explanation: String,
    pub purpose: Purpose,
    /// The override was given and the move is running.
    pub migrating: bool,
}

/// What the console shows (a field of the snapshot): one datastore cluster, or (with
/// `cluster: None`) the datastores in maintenance mode that belong to no cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementView {
    pub cluster: Option<String>,
    pub name: String,
    pub datastores: Vec<DatastoreUseView>,
    /// max − min used fraction over the datastores not in maintenance, basis points.
    pub spread_bp: u64,
    pub recommendations: Vec<RecommendationView>,
}

impl Engine {
    /// `Expect(InMaintenance(datastore))`: in maintenance mode and holding no VM.
    pub fn expect_in_maintenance(&self, datastore: &str) -> (bool, String) {
        if self.topology().datastore(datastore).is_none() {
            return (false, format!("datastore {datastore:?} does not exist"));
        }
        let on: Vec<String> = self
            .vms_on(datastore)
            .into_iter()
            .map(|i| self.vms[i].id.clone())
            .collect();
        match (self.in_maintenance(datastore), on.is_empty()) {
            (true, true) => (
                true,
                format!("{datastore} is in maintenance mode and empty"),
            ),
            (true, false) => (
                false,
                format!(
                    "{datastore} is in maintenance mode but still holds {}",
                    on.join(", ")
                ),
            ),
            (false, _) => (false, format!("{datastore} is not in maintenance mode")),
        }
    }

    /// The snapshot's view.
    pub(in crate::engine) fn placement_views(&self) -> Vec<PlacementView> {
        let t = self.topology();
        let mut out = Vec::new();
        let mut groups: Vec<(Option<String>, String, Vec<String>)> = t
            .datastore_clusters
            .iter()
            .map(|c| (Some(c.id.clone()), c.name.clone(), c.datastores.clone()))
            .collect();
        let loose: Vec<String> = self
            .placement
            .maintenance
            .iter()
            .filter(|d| t.cluster_of(d).is_none())
            .cloned()
            .collect();
        let loose_recs = self
            .placement
            .pending
            .iter()
            .any(|r| t.cluster_of(&r.from).is_none());
        if !loose.is_empty() || loose_recs {
            groups.push((None, "Not in a cluster".into(), loose));
        }
        if groups.is_empty() {
            return out;
        }
        // Every snapshot builds this: one pass over the VMs for every datastore's use (as
        // `used_mib` and `vms_on` count it), not one pass per datastore.
        let mib = |blocks: u64| blocks * crate::disk::BLOCK_SIZE as u64 / (1024 * 1024);
        let mut usage: HashMap<&str, Usage> = HashMap::new();
        for v in &t.vms {
            usage.entry(v.datastore.as_str()).or_default().used += v.disk_mib;
        }
        for v in &self.vms {
            let on = usage.entry(v.datastore.as_str()).or_default();
            on.vms += 1;
            on.moving_out += usize::from(v.migration.is_some());
            if let Some(m) = &v.migration {
                usage.entry(m.rec.to.as_str()).or_default().used += mib(v.blocks);
            }
        }
        for (cluster, name, members) in groups {
            let datastores: Vec<DatastoreUseView> = members
                .iter()
                .filter_map(|d| t.datastore(d))
                .map(|d| {
                    let tags = dr::tags_of(t, d);
                    let capacity = self.capacity_mib(&d.id);
                    let on = usage.get(d.id.as_str()).copied().unwrap_or_default();
                    let used = on.used;
                    DatastoreUseView {
                        id: d.id.clone(),
                        replicated: tags.replicated,
                        consistency_group: tags.consistency_group,
                        capacity_mib: capacity,
                        used_mib: used,
                        used_bp: used_bp(used, capacity),
                        in_maintenance: self.in_maintenance(&d.id),
                        vms_left: on.vms,
                        moving_out: on.moving_out,
                    }
                })
                .collect();
            let active: Vec<u64> = datastores
                .iter()
                .filter(|d| !d.in_maintenance)
                .map(|d| d.used_bp)
                .collect();
            let spread_bp = match (active.iter().max(), active.iter().min()) {
                (Some(a), Some(b)) => a - b,
                _ => 0,
            };
            let recommendations = self
                .placement
                .pending
                .iter()
                .filter(|r| t.cluster_of(&r.from).map(|c| c.id.clone()) == cluster)
                .map(|r| RecommendationView {
                    vm: r.vm.clone(),
                    from: r.from.clone(),
                    to: r.to.clone(),
                    rating: Rating::parse(&r.rating).unwrap_or(Rating::HeightenedSevere),
                    fault: r.fault.clone(),
                    explanation: r.explanation.clone(),
                    purpose: r.purpose,
                    migrating: self.vm_index(&r.vm).is_some_and(|i| {
                        self.vms[i]
                            .migration
                            .as_ref()
                            .is_some_and(|m| m.rec.to == r.to)
                    }),
                })
                .collect();
            out.push(PlacementView {
                cluster,
                name,
                datastores,
                spread_bp,
                recommendations,
            });
        }
        out
    }
}
