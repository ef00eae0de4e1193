//! Rescanning a topology file into a running workspace (SPEC §2).

use super::*;

impl Workspace {
    /// The topology a rescan of `file` (SPEC §2) would adopt: the file's links, hosts,
    /// arrays and LUNs, datastores, protection groups and datastore clusters, with the
    /// workspace's name, sites and VMs (VM placements are the workspace's: migrations
    /// changed them). Checks everything that does not depend on the running engine and
    /// changes nothing: the sites must be the same, the VMs the same ones (a rescan neither
    /// deletes a VM nor materializes one), a datastore that leaves must hold no instance, one
    /// that stays keeps its site and its distributed legs (its directories stay where they
    /// are), and the result must be valid. `file` names the file in errors. VMs in `added`
    /// (made in this workspace by New VM, maybe not saved to the file yet) stay when the file
    /// lacks them.
    pub fn rescan_topology(
        &self,
        read: &Topology,
        file: &str,
        added: &BTreeSet<String>,
    ) -> Result<Topology, WorkspaceError> {
        let refuse = |object: String, rule: String| WorkspaceError::RescanRefused {
            file: file.to_string(),
            object,
            rule,
        };
        let old = &self.topology;
        if read.sites != old.sites {
            return Err(refuse(
                "sites".into(),
                "the sites differ from the workspace's; a workspace keeps its sites (journals \
                 and directories are per site): open the file in a new workspace"
                    .into(),
            ));
        }
        let in_file: BTreeSet<&str> = read.vms.iter().map(|v| v.id.as_str()).collect();
        let in_ws: BTreeSet<&str> = old.vms.iter().map(|v| v.id.as_str()).collect();
        if let Some(vm) = in_ws.difference(&in_file).find(|vm| !added.contains(**vm)) {
            return Err(refuse(
                format!("VM {vm:?}"),
                "removed from the file, but the workspace holds it (its disks and journal); \
                 a rescan does not delete VMs"
                    .into(),
            ));
        }
        if let Some(vm) = in_file.difference(&in_ws).next() {
            return Err(refuse(
                format!("VM {vm:?}"),
                "in the file but not in the workspace; a rescan does not create VMs: open the \
                 file in a new workspace"
                    .into(),
            ));
        }
        self.check_kept_datastores(read, &refuse)?;
        if let Some(ds) = read
            .datastores
            .iter()
            .find(|d| d.distributed.is_some() && old.datastore(&d.id).is_none())
        {
            return Err(refuse(
                format!("datastore {:?}", ds.id),
                "a new distributed datastore; plan it in a new workspace".into(),
            ));
        }
        let mut t = read.clone();
        t.name = old.name.clone();
        t.sites = old.sites.clone();
        t.vms = old.vms.clone();
        // A created distributed datastore says so in the workspace (CreateDatastore).
        for ds in &mut t.datastores {
            if let Some(d) = old.datastore(&ds.id) {
                ds.distributed = d.distributed.clone();
            }
        }
        check_topology(&t, Path::new(file))?;
        Ok(t)
    }

    /// The rescan's rules for the workspace's datastores: one that leaves must hold no
    /// instance, one that stays keeps its site and its distributed legs.
    fn check_kept_datastores(
        &self,
        read: &Topology,
        refuse: &dyn Fn(String, String) -> WorkspaceError,
    ) -> Result<(), WorkspaceError> {
        let old = &self.topology;
        for ds in &old.datastores {
            let obj = || format!("datastore {:?}", ds.id);
            match read.datastore(&ds.id) {
                None => {
                    let held = self.list_instances(&ds.id)?;
                    let vms: Vec<&str> = old
                        .vms
                        .iter()
                        .filter(|v| v.datastore == ds.id)
                        .map(|v| v.id.as_str())
                        .collect();
                    if !held.is_empty() || !vms.is_empty() {
                        let names: Vec<String> = held.iter().map(|i| i.name.clone()).collect();
                        let names = if names.is_empty() {
                            vms.join(", ")
                        } else {
                            names.join(", ")
                        };
                        return Err(refuse(
                            obj(),
                            format!(
                                "removed from the file, but it holds instances ({names}); move \
                                 them off first"
                            ),
                        ));
                    }
                }
                Some(new) if new.site != ds.site => {
                    return Err(refuse(
                        obj(),
                        format!(
                            "its site changes from {:?} to {:?}; its directory cannot move",
                            ds.site, new.site
                        ),
                    ));
                }
                Some(new) if !same_legs(ds, new) => {
                    return Err(refuse(
                        obj(),
                        "its distributed legs change; a distributed datastore keeps its legs \
                         while it runs"
                            .into(),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Adopts `t` (from [`Workspace::rescan_topology`]): makes the directories of datastores
    /// new in it, then replaces topology.ron atomically. A crash before the replace leaves
    /// only empty directories the old topology ignores.
    pub fn adopt_topology(&mut self, t: &Topology) -> Result<(), WorkspaceError> {
        for ds in &t.datastores {
            if self.topology.datastore(&ds.id).is_some()
                || ds.distributed.as_ref().is_some_and(|d| !d.created)
            {
                continue;
            }
            let dir = datastore_path(&self.root, &ds.site, &ds.id);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        self.save_topology(t)
    }
}

/// Do two versions of a datastore have the same distributed legs (whether it was created
/// yet aside: the workspace knows that)?
fn same_legs(a: &crate::topology::Datastore, b: &crate::topology::Datastore) -> bool {
    let legs = |d: &crate::topology::Datastore| {
        d.distributed.as_ref().map(|x| {
            (
                x.remote_site.clone(),
                x.remote_lun.clone(),
                x.witness.clone(),
            )
        })
    };
    legs(a) == legs(b)
}
