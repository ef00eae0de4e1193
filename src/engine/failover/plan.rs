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

    /// The protected datastores of these PGs, and their replicas.
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
                protected.insert(ds.clone());
                if let Some(r) = t.datastore(ds).and_then(|d| t.replica_of(d)) {
                    replicas.push(r.id.clone());
                }
            }
        }
        Ok((protected, replicas))
    }

    /// VMs a failover of these datastores moves: not yet recovered, living there now.
    pub(super) fn vms_in_scope(&self, protected: &BTreeSet<String>) -> Vec<usize> {
        (0..self.vms.len())
            .filter(|&i| {
                self.vms[i].recovered.is_none() && protected.contains(&self.vms[i].datastore)
            })
            .collect()
    }

    /// A host's capacity as it stands: the VMs running on it (recovered ones at the
    /// recovery site) and the HA reservations it holds for a host fault.
    pub(super) fn host_capacity(&self, h: &crate::topology::Host) -> HostCapacity {
        let t = self.topology();
        let recovery_site = t.site_role(&h.site) == Some(SiteRole::Recovery);
        let running: Vec<&super::super::VmRt> = self
            .vms
            .iter()
            .filter(|v| {
                v.host == h.id
                    && if recovery_site {
                        v.recovered.is_some()
                    } else {
                        !v.down && v.recovered.is_none()
                    }
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

    /// Places `vms` (priority order) on recovery-site hosts with room (capacity less
    /// running VMs less reservations already held): (vm → host), unplaced, and the
    /// capacity check host by host with this plan's reservations added.
    pub(super) fn reserve(
        &self,
        vms: &[usize],
    ) -> (BTreeMap<String, String>, Vec<String>, Vec<HostCapacity>) {
        let t = self.topology();
        let mut recovery: Vec<HostCapacity> = t
            .hosts
            .iter()
            .filter(|h| t.site_role(&h.site) == Some(SiteRole::Recovery))
            .map(|h| self.host_capacity(h))
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
            match recovery
                .iter_mut()
                .find(|h| h.free_vcpus() >= spec.vcpus && h.free_memory_gib() >= spec.memory_gib)
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
        // The protected site's HA reservations, so one table says what is spoken for.
        recovery.extend(
            t.hosts
                .iter()
                .filter(|h| t.site_role(&h.site) == Some(SiteRole::Protected))
                .map(|h| self.host_capacity(h))
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
        let (protected, replicas) = self.pg_scope(pgs)?;
        let in_scope = self.vms_in_scope(&protected);
        let wanted: BTreeSet<&str> = in_scope.iter().map(|&i| self.vms[i].id.as_str()).collect();
        let elections =
            recovery::scan_and_elect_in(&self.ws, &replicas, |v| wanted.contains(v.id.as_str()))?;
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
            if vm.recovered.is_some() || to_place.contains(&i) {
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
        let (placed, unplaced, capacity) = self.reserve(&to_place);
        let metadata = self.replicated_metadata();
        let mut vms = Vec::new();
        let mut out_of_scope = Vec::new();
        for e in elections {
            let ix = e.vm.as_deref().and_then(|id| self.vm_index(id));
            // A VM recovered earlier is no longer the replicas' to give.
            if ix.is_some_and(|i| self.vms[i].recovered.is_some()) {
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
                .and_then(|c| self.published_point(&c.datastore))
                .map(|p| p.cut_at);
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
        let mut problems = Vec::new();
        let sites: BTreeSet<String> = protected
            .iter()
            .filter_map(|d| t.datastore(d).map(|d| d.site.clone()))
            .collect();
        if let Some(p) = &self.pending_failover {
            problems.push(format!("planned failover #{} is still running", p.id));
        }
        for pg in pgs.iter().filter(|pg| self.reprotected(pg)) {
            // The plan machinery recovers toward the topology's recovery site only.
            problems.push(format!(
                "{pg} is reprotected (it replicates back to its original datastores): a failover back to them is not supported yet"
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
