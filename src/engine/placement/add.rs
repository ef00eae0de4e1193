//! Adding a VM to a running workspace (initial placement): the instance is made on its
//! datastore as the workspace makes every instance (vm.ron and a sparse, zeroed disk0.img),
//! then the recovery manager's locations and the topology in use take it, then the engine
//! runs it like any other VM: its guest writes (if the guests run), its image is tracked for
//! replication, and the next cycle of its datastore's group ships it as a new instance.
//!
//! Crash safety: the instance comes first, the topology last. A crash before the topology is
//! saved leaves an instance no VM of the topology names (reported by `recover --dry-run` as an
//! unknown uuid, deleted by nothing); the workspace still opens. After it, the VM is there.
//!
//! The workspace remembers the VMs it added (`state/engine.ron`), so that opening the
//! topology *file* over it again (a rescan, which otherwise refuses a VM the file lacks)
//! keeps them until the file is saved with them.

use super::*;
use crate::engine::persist::{Location, Locations};
use crate::engine::{ImageFile, VmRt, guest::seed_for, read_ron, write_ron};
use crate::topology::Vm;
use crate::workspace::VmConfig;

impl Engine {
    /// The protected-site datastores no new VM may go to now, and why: in maintenance mode,
    /// at a lost site, or in a replication group that is failed over, reversed or swapped
    /// by an array fault (its replica side runs the VMs).
    pub fn placement_unavailable(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for g in &self.groups {
            let why = if g.saved.reversed {
                Some(format!(
                    "its replication group {} runs reversed ({} ▶ {}) after a reprotect",
                    g.spec.id, g.spec.source_site, g.spec.target_site
                ))
            } else if g.saved.failed_over {
                Some(format!(
                    "its replication group {} is failed over: its VMs run at the recovery site",
                    g.spec.id
                ))
            } else if g.saved.swapped {
                Some(format!(
                    "its replication group {} has its I/O swapped to the recovery site by an array fault",
                    g.spec.id
                ))
            } else {
                None
            };
            if let Some(why) = why {
                for p in &g.spec.pairs {
                    out.insert(p.datastore.clone(), why.clone());
                    out.insert(p.replica.clone(), why.clone());
                }
            }
        }
        let t = self.topology();
        for d in &t.datastores {
            if self.sites_down.contains_key(&d.site) {
                out.insert(d.id.clone(), format!("its site {} is lost", d.site));
            }
        }
        for d in &self.placement.maintenance {
            out.insert(
                d.clone(),
                "in maintenance mode: no new VM may be placed on it".into(),
            );
        }
        out.retain(|d, _| t.datastore(d).is_some_and(|d| t.is_protected_datastore(d)));
        out
    }

    /// The ranking the console shows for a new VM, on the running workspace's free space.
    pub fn rank_new_vm(
        &self,
        pg: &str,
        disk_mib: u64,
    ) -> Result<Vec<PlacementOption>, PlacementError> {
        let t = self.topology();
        let free = t
            .datastores
            .iter()
            .map(|d| (d.id.clone(), self.free_mib(&d.id)))
            .collect();
        rank_initial_placement(t, pg, disk_mib, &free, &self.placement_unavailable())
    }

    /// VMs this workspace added (kept by a rescan of a file that lacks them).
    pub fn added_vms(&self) -> &BTreeSet<String> {
        &self.placement.added
    }

    /// [`super::Command::AddVm`].
    pub(in crate::engine) fn add_vm(
        &mut self,
        vm: Vm,
        pg: &str,
        confirm: bool,
    ) -> Result<Outcome, EngineError> {
        let rule = |object: String, rule: String| EngineError::Rule { object, rule };
        let options = self
            .rank_new_vm(pg, vm.disk_mib)
            .map_err(|e| rule(format!("new VM {:?}", vm.id), e.to_string()))?;
        let ds = vm.datastore.clone();
        let Some(option) = options.iter().find(|o| o.datastore == ds) else {
            return Err(rule(
                format!("datastore {ds:?}"),
                "is not a protected-site datastore of the topology; a new VM runs at a protected site"
                    .into(),
            ));
        };
        if let Some(why) = &option.unavailable {
            return Err(rule(format!("datastore {ds:?}"), why.clone()));
        }
        let mut topo = self.topology().clone();
        topo.vms.push(vm.clone());
        if let Err(v) = topo.validate() {
            let list: Vec<String> = v.iter().map(|v| v.to_string()).collect();
            return Err(rule(format!("new VM {:?}", vm.id), list.join("; ")));
        }
        if !option.fits {
            return Err(EngineError::NoSpace {
                datastore: ds,
                vm: vm.id.clone(),
                need_mib: vm.disk_mib,
                free_mib: option.free_mib,
            });
        }
        let id = vm.id.clone();
        if let Some(refused) = self.rating_gate(
            &format!("Placing new VM {id} on {ds}"),
            &format!("new VM {id} on {ds} (meant for {pg})"),
            (option.rating, option.fault),
            confirm,
        ) {
            return Ok(refused);
        }
        let uuid = crate::disk::raw_uuid(&vm.uuid).ok_or_else(|| {
            rule(
                format!("new VM {id:?}"),
                format!("uuid {:?} is not a UUID", vm.uuid),
            )
        })?;

        let instance = self.ws.free_instance_name(&ds, &id)?;
        let made = self
            .ws
            .create_instance(&ds, &instance, &VmConfig::for_vm(&vm), vm.disk_mib)?;
        let undo = |eng: &mut Engine, e: EngineError| {
            let _ = eng.ws.remove_instance(&made.dir);
            e
        };
        let loc_path = self.ws.state_dir().join("locations.ron");
        let saved = (|| {
            let mut locations: Locations = read_ron(&loc_path).unwrap_or_default();
            locations.vms.insert(
                id.clone(),
                Location {
                    datastore: ds.clone(),
                    instance: instance.clone(),
                },
            );
            write_ron(&loc_path, &locations)?;
            self.placement.added.insert(id.clone());
            self.persist_state()?;
            self.ws.save_topology(&topo).map_err(EngineError::from)
        })();
        if let Err(e) = saved {
            self.placement.added.remove(&id);
            return Err(undo(self, e));
        }

        let site = self
            .topology()
            .datastore(&ds)
            .map(|d| d.site.clone())
            .unwrap_or_default();
        let mut image = ImageFile::open(&made.dir.join("disk0.img"))?.without_readahead();
        let tracker = self.tracker_for(&ds, image.path())?;
        image.set_tracker(tracker);
        let mut rt = VmRt::new(
            &vm,
            uuid,
            (site, ds.clone(), instance.clone(), vm.host.clone()),
            made.dir.clone(),
            image,
        );
        rt.rng = seed_for(self.opts.seed, &uuid);
        let i = self.vms.len();
        self.vms.push(rt);
        self.vm_ix.insert(id.clone(), super::VmIx(i));
        self.start_guest(i);
        let msg = format!(
            "New VM {id} ({} MiB, {} vCPU, {} GiB) placed on {ds} as {instance}: {} ({})",
            vm.disk_mib, vm.vcpus, vm.memory_gib, option.rating, option.reason
        );
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }
}

#[cfg(test)]
#[path = "add_tests.rs"]
mod tests;
