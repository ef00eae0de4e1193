//! Finding things in a topology by id, and what replicates where.

use super::*;

impl Topology {
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
    /// A datastore's capacity in MiB: its LUNs' capacities added up.
    pub fn datastore_capacity_mib(&self, ds: &Datastore) -> u64 {
        self.datastore_luns(ds).map(|l| l.capacity_gib * 1024).sum()
    }
    /// MiB of the disks of the VMs this topology places on datastore `id`.
    pub fn datastore_used_mib(&self, id: &str) -> u64 {
        self.vms
            .iter()
            .filter(|v| v.datastore == id)
            .map(|v| v.disk_mib)
            .sum()
    }
    /// Free MiB of every protected-site datastore as the topology alone tells it (capacity
    /// less the disks placed on it); a running workspace also counts migration targets.
    pub fn free_mib_by_datastore(&self) -> std::collections::BTreeMap<String, u64> {
        self.datastores
            .iter()
            .filter(|d| self.is_protected_datastore(d))
            .map(|d| {
                let free = self
                    .datastore_capacity_mib(d)
                    .saturating_sub(self.datastore_used_mib(&d.id));
                (d.id.clone(), free)
            })
            .collect()
    }
    /// The RPO of a datastore whose LUNs are all replicated (validation makes them agree).
    pub fn datastore_rpo_minutes(&self, ds: &Datastore) -> Option<u32> {
        let mut rpo = None;
        for lun in self.datastore_luns(ds) {
            rpo = Some(lun.replication.as_ref()?.rpo_minutes);
        }
        rpo
    }
    /// How many recovery points a replicated datastore keeps (validation makes its LUNs,
    /// and its consistency group's, agree).
    pub fn datastore_retain_points(&self, ds: &Datastore) -> Option<u32> {
        let mut n = None;
        for lun in self.datastore_luns(ds) {
            n = Some(lun.replication.as_ref()?.retain_points);
        }
        n
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
    pub(super) fn replica_candidates(&self, ds: &Datastore) -> Vec<&Datastore> {
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
    /// The protection group holding datastore `ds`, or holding the datastore `ds` is the
    /// replica of: the PG of the VMs on either side of a replication pair.
    pub fn pg_of_either_side(&self, ds: &str) -> Option<&str> {
        self.protection_groups
            .iter()
            .find(|pg| {
                pg.datastores.iter().any(|d| {
                    d == ds
                        || self
                            .datastore(d)
                            .and_then(|x| self.replica_of(x))
                            .is_some_and(|r| r.id == ds)
                })
            })
            .map(|pg| pg.id.as_str())
    }

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
    pub(super) fn replication_targets(&self, ds: &Datastore) -> Option<BTreeSet<String>> {
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
}

/// The consistency group a datastore is in: the CG that every one of its LUNs is in.
pub fn datastore_cg(t: &Topology, ds: &Datastore) -> Option<String> {
    let mut cg: Option<&String> = None;
    for lun_id in &ds.luns {
        let (_, lun) = t.lun(lun_id)?;
        let this = lun.replication.as_ref()?.consistency_group.as_ref()?;
        if cg.is_some_and(|c| c != this) {
            return None;
        }
        cg = Some(this);
    }
    cg.cloned()
}
