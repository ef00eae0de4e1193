//! Failover planning: the groups and VMs in scope, host capacity, and the scan.

use super::*;

impl Engine {
    /// The replication groups with a pair on one of the `protected` datastores.
    pub(super) fn groups_in_scope<'a>(
        &'a self,
        protected: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = usize> + 'a {
        (0..self.groups.len()).filter(move |&g| {
            self.groups[g]
                .spec
                .pairs
                .iter()
                .any(|p| protected.contains(&p.datastore))
        })
    }

    /// The datastores these PGs' VMs run on, and the replicas a failover recovers them
    /// from. A reprotected PG replicates back (SPEC §11): its VMs run on the topology's
    /// replicas of its datastores, and a failover (a failback) recovers them onto its
    /// datastores.
    pub(in crate::engine) fn pg_scope(
        &self,
        pgs: &[String],
    ) -> Result<(BTreeSet<String>, Vec<String>), EngineError> {
        let t = self.topology();
        if pgs.is_empty() {
            return Err(EngineError::Failover(
                "choose at least one protection group".into(),
            ));
        }
        let mut protected = BTreeSet::new();
        let mut replicas = Vec::new();
        for id in pgs {
            let pg = t
                .protection_group(id)
                .ok_or_else(|| EngineError::Failover(format!("no protection group {id:?}")))?;
            for ds in &pg.datastores {
                let back = self
                    .groups
                    .iter()
                    .filter(|g| g.saved.reversed)
                    .flat_map(|g| g.spec.pairs.iter())
                    .find(|p| &p.replica == ds);
                match back {
                    Some(p) => {
                        protected.insert(p.datastore.clone());
                        replicas.push(ds.clone());
                    }
                    None => {
                        protected.insert(ds.clone());
                        if let Some(r) = t.datastore(ds).and_then(|d| t.replica_of(d)) {
                            replicas.push(r.id.clone());
                        }
                    }
                }
            }
        }
        Ok((protected, replicas))
    }

    /// The site a failover of these replicas recovers to (their site; the topology's
    /// recovery site when they have none), and every other site they are at.
    pub(super) fn target_sites(&self, replicas: &[String]) -> Vec<String> {
        let t = self.topology();
        let mut sites: Vec<String> = Vec::new();
        for r in replicas {
            if let Some(d) = t.datastore(r)
                && !sites.contains(&d.site)
            {
                sites.push(d.site.clone());
            }
        }
        if sites.is_empty()
            && let Some(s) = t.sites.iter().find(|s| s.role == SiteRole::Recovery)
        {
            sites.push(s.id.clone());
        }
        sites
    }

    /// VMs a failover of these datastores moves: the ones living there now.
    pub(super) fn vms_in_scope(&self, protected: &BTreeSet<String>) -> Vec<usize> {
        (0..self.vms.len())
            .filter(|&i| protected.contains(&self.vms[i].datastore))
            .collect()
    }

    /// A host's capacity as it stands: the VMs running on it (and those recovered onto
    /// it, even while their site is down) and the HA reservations it holds for a host
    /// fault. `target` is the site a failover recovers to.
    pub(super) fn host_capacity(&self, h: &crate::topology::Host, target: &str) -> HostCapacity {
        let t = self.topology();
        let recovery_site = h.site == target;
        let running: Vec<&super::super::VmRt> = self
            .vms
            .iter()
            .filter(|v| {
                v.host == h.id && (!v.down || v.recovered.as_ref().is_some_and(|r| r.host == h.id))
            })
            .collect();
        let (used_vcpus, used_memory_gib) = running.iter().fold((0, 0), |(c, m), v| {
            let spec = t.vm(&v.id);
            (
                c + spec.map_or(0, |s| s.vcpus),
                m + spec.map_or(0, |s| s.memory_gib),
            )
        });
        HostCapacity {
            host: h.id.clone(),
            site: h.site.clone(),
            recovery_site,
            failed: self.ha_host_failed(&h.id),
            cpus: h.cpus,
            memory_gib: h.memory_gib,
            running: running.iter().map(|v| v.id.clone()).collect(),
            used_vcpus,
            used_memory_gib,
            reserved: self
                .ha_reservations_on(&h.id)
                .into_iter()
                .map(|r| HeldCapacity {
                    vm: r.vm,
                    vcpus: r.vcpus,
                    memory_gib: r.memory_gib,
                    purpose: format!("HA restart from {}", r.from_host),
                })
                .collect(),
        }
    }

    /// Places `vms` (priority order) on hosts of the `target` site with room (capacity
    /// less running VMs less reservations already held), a VM's own topology host first
    /// when it is there (a failback brings it home): (vm → host), unplaced, and the
    /// capacity check host by host with this plan's reservations added.
    pub(in crate::engine) fn reserve(
        &self,
        vms: &[usize],
        target: &str,
    ) -> (BTreeMap<String, String>, Vec<String>, Vec<HostCapacity>) {
        let t = self.topology();
        let mut recovery: Vec<HostCapacity> = t
            .hosts
            .iter()
            .filter(|h| h.site == target)
            .map(|h| self.host_capacity(h, target))
            .collect();
        let mut order: Vec<usize> = vms.to_vec();
        order.sort_by_key(|&i| {
            let p = t.vm(&self.vms[i].id).map_or(5, |v| v.priority);
            (p, self.vms[i].id.clone())
        });
        let mut placed = BTreeMap::new();
        let mut unplaced = Vec::new();
        for i in order {
            let Some(spec) = t.vm(&self.vms[i].id) else {
                continue;
            };
            let fits = |h: &HostCapacity| {
                h.free_vcpus() >= spec.vcpus && h.free_memory_gib() >= spec.memory_gib
            };
            let home = recovery.iter().position(|h| h.host == spec.host && fits(h));
            match home
                .or_else(|| recovery.iter().position(fits))
                .map(|h| &mut recovery[h])
            {
                Some(h) => {
                    h.reserved.push(HeldCapacity {
                        vm: spec.id.clone(),
                        vcpus: spec.vcpus,
                        memory_gib: spec.memory_gib,
                        purpose: PLAN_PURPOSE.into(),
                    });
                    placed.insert(spec.id.clone(), h.host.clone());
                }
                None => unplaced.push(spec.id.clone()),
            }
        }
        // The other sites' HA reservations, so one table says what is spoken for.
        recovery.extend(
            t.hosts
                .iter()
                .filter(|h| h.site != target)
                .map(|h| self.host_capacity(h, target))
                .filter(|c| c.failed || !c.reserved.is_empty()),
        );
        (placed, unplaced, recovery)
    }

    /// "Scan replicas": the election over the PGs' replica datastores, the capacity check,
    /// and what stands in the way of this kind of failover. Changes nothing.
    pub fn scan_failover(
        &self,
        pgs: &[String],
        kind: FailoverKind,
    ) -> Result<FailoverPlan, EngineError> {
        self.scan_failover_at(pgs, kind, None)
    }

    /// The recovery point each replication group in scope recovers from at `point` (SPEC
    /// §11: its latest retained point cut at or before it; `None`: its latest), and why a
    /// group cannot (no such point).
    pub(in crate::engine) fn points_at(
        &self,
        protected: &BTreeSet<String>,
        point: Option<SimTime>,
    ) -> (BTreeMap<usize, PublishedPoint>, Vec<String>) {
        let mut chosen = BTreeMap::new();
        let mut problems = Vec::new();
        for g in self.groups_in_scope(protected) {
            match self.point_for(g, point) {
                Ok(Some(p)) => {
                    chosen.insert(g, p);
                }
                Ok(None) => {}
                Err(why) => problems.push(why),
            }
        }
        (chosen, problems)
    }

    /// Of `chosen`, the groups whose point is older than the one their replicas hold.
    pub(in crate::engine) fn older_than_latest<'a>(
        &'a self,
        chosen: &'a BTreeMap<usize, PublishedPoint>,
    ) -> impl Iterator<Item = (usize, u64)> + 'a {
        chosen.iter().filter_map(|(&g, p)| {
            self.groups[g]
                .published
                .as_ref()
                .is_some_and(|l| l.cycle > p.cycle)
                .then_some((g, p.cycle))
        })
    }

    /// [`Engine::scan_failover`] recovering from the points cut at or before `point`: the
    /// election sees each group's replicas as they were at its point.
    pub fn scan_failover_at(
        &self,
        pgs: &[String],
        kind: FailoverKind,
        point: Option<SimTime>,
    ) -> Result<FailoverPlan, EngineError> {
        let (protected, replicas) = self.pg_scope(pgs)?;
        let (chosen, point_problems) = self.points_at(&protected, point);
        let mut view = recovery::PendingChanges::default();
        for (g, cycle) in self.older_than_latest(&chosen) {
            self.point_view(g, cycle, &mut view)?;
        }
        let targets = self.target_sites(&replicas);
        let target = targets.first().cloned().unwrap_or_default();
        let in_scope = self.vms_in_scope(&protected);
        // A VM running on one of these replicas already came this way: it is not the
        // replicas' to give.
        let arrived = |i: usize| replicas.contains(&self.vms[i].datastore);
        let wanted: BTreeSet<&str> = in_scope.iter().map(|&i| self.vms[i].id.as_str()).collect();
        let elections = recovery::scan_and_elect_in_through(
            &self.ws,
            &replicas,
            |v| wanted.contains(v.id.as_str()),
            &view,
        )?;
        // The cut time of the point a replica datastore's group recovers from.
        let cut_of = |ds: &str| {
            let g = (0..self.groups.len()).find(|&g| {
                self.groups[g]
                    .spec
                    .pairs
                    .iter()
                    .any(|p| p.datastore == ds || p.replica == ds)
            })?;
            chosen
                .get(&g)
                .or(self.groups[g].published.as_ref())
                .map(|p| p.cut_at)
        };
        let t = self.topology();
        // Capacity is reserved for exactly the VMs the election recovers (SPEC §7): every
        // winner that is a topology VM, one that moved out of these PGs after its old
        // instance was replicated included (the replicas decide, not where it lives now),
        // and, while a planned failover has its final cycle to ship, every VM in scope.
        // A winner whose VM lives outside the scope at a site that is up is left out: its
        // live copy is newer than that replica instance, which stays where it is.
        let mut to_place: BTreeSet<usize> = if kind == FailoverKind::Planned {
            in_scope.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        let mut left_out: BTreeMap<usize, String> = BTreeMap::new();
        for e in &elections {
            let (Some(path), Some(i)) = (
                &e.recover_from,
                e.vm.as_deref().and_then(|id| self.vm_index(id)),
            ) else {
                continue;
            };
            let vm = &self.vms[i];
            if arrived(i) || to_place.contains(&i) {
                continue;
            }
            if protected.contains(&vm.datastore) || self.sites_down.contains_key(&vm.site) {
                to_place.insert(i);
            } else {
                left_out.insert(
                    i,
                    format!(
                        "{} lives on {} now, outside {}, and its site {} is up: the instance {path} is an older copy from before it moved; it stays on the replica and is not recovered",
                        vm.id,
                        vm.datastore,
                        pgs.join(", "),
                        vm.site
                    ),
                );
            }
        }
        let to_place: Vec<usize> = to_place.into_iter().collect();
        let (placed, unplaced, capacity) = self.reserve(&to_place, &target);
        let metadata = self.replicated_metadata();
        let mut vms = Vec::new();
        let mut out_of_scope = Vec::new();
        for e in elections {
            let ix = e.vm.as_deref().and_then(|id| self.vm_index(id));
            if ix.is_some_and(arrived) {
                continue;
            }
            let point = e
                .recover_from
                .as_ref()
                .and_then(|_| {
                    e.instances
                        .iter()
                        .find(|c| Some(&c.path) == e.recover_from.as_ref())
                })
                .and_then(|c| cut_of(&c.datastore));
            let why_out = ix.and_then(|i| left_out.get(&i));
            let pv = PlanVm {
                reason: why_out.cloned().unwrap_or_else(|| recovery::explain(&e)),
                priority: e.vm.as_deref().and_then(|id| t.vm(id)).map(|v| v.priority),
                host: e.vm.as_ref().and_then(|id| placed.get(id).cloned()),
                metadata_location: e.vm.as_ref().and_then(|id| metadata.get(id).cloned()),
                point_cut_at: point,
                election: e,
            };
            if why_out.is_some() {
                out_of_scope.push(pv);
            } else {
                debug_assert!(
                    pv.election.recover_from.is_none()
                        || pv.election.vm.is_none()
                        || pv.host.is_some()
                        || unplaced.contains(pv.election.vm.as_ref().expect("checked")),
                    "every VM the election recovers is placed or listed unplaced: {pv:#?}"
                );
                vms.push(pv);
            }
        }
        vms.sort_by_key(|p| {
            (
                p.priority.unwrap_or(u8::MAX),
                p.election.vm.clone(),
                p.election.uuid.clone(),
            )
        });
        let mut problems = point_problems;
        if point.is_some() && kind == FailoverKind::Planned {
            problems.push(
                "a planned failover recovers the point its final cycle publishes: choose an older point for a test or an unplanned failover".into(),
            );
        }
        let sites: BTreeSet<String> = protected
            .iter()
            .filter_map(|d| t.datastore(d).map(|d| d.site.clone()))
            .collect();
        if let Some(p) = &self.pending_failover {
            problems.push(format!("planned failover #{} is still running", p.id));
        }
        if targets.len() > 1 {
            problems.push(format!(
                "{} recover to different sites ({}): fail them over separately",
                pgs.join(", "),
                targets.join(", ")
            ));
        }
        if kind == FailoverKind::Test && self.test_dir.is_some() {
            problems.push("a test failover is still up: clean it up first".into());
        }
        if kind == FailoverKind::Planned {
            for s in &sites {
                if self.sites_down.contains_key(s) {
                    problems.push(format!(
                        "site {s} is down: a planned failover needs the protected site; run an unplanned one"
                    ));
                }
            }
            if !self.link_up {
                problems.push("the link is down: the final replication cycle cannot run".into());
            }
            for &i in &in_scope {
                if let Some(why) = self.across_busy(i) {
                    problems.push(why);
                }
                if let Some(m) = &self.vms[i].migration {
                    problems.push(format!(
                        "VM {} is migrating ({}); cancel it or let it finish first",
                        self.vms[i].id, m.rec.id
                    ));
                }
            }
            for g in self.groups_in_scope(&protected).map(|g| &self.groups[g]) {
                if g.saved.failed_over {
                    problems.push(format!("group {} has already failed over", g.spec.id));
                }
            }
        }
        Ok(FailoverPlan {
            protection_groups: pgs.to_vec(),
            kind,
            vms,
            left_out: out_of_scope,
            unplaced,
            problems,
            capacity,
        })
    }

    /// The recovery-site copy of the location metadata: vm → datastore.
    pub(super) fn replicated_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let t = self.topology();
        for s in t.sites.iter().filter(|s| s.role == SiteRole::Recovery) {
            let p = self
                .ws
                .root()
                .join("sites")
                .join(&s.id)
                .join("recovery-manager")
                .join("locations.ron");
            if let Ok(l) = read_ron::<super::super::Locations>(&p) {
                out.extend(l.vms.into_iter().map(|(k, v)| (k, v.datastore)));
            }
        }
        out
    }
}
