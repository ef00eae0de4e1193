//! Storage migrations onto and off distributed datastores: refused while the legs cannot
//! take them, and reconciled with the legs when they end.

use super::*;

impl Engine {
    /// A migration of VM `i` ended (the hook in `migration_ended`): instances that came or
    /// went on distributed datastores are reconciled; a cancelled move off one re-tracks
    /// the data blocks (a roll-back copies back without guest writes).
    pub(in crate::engine) fn stretch_migration_ended(
        &mut self,
        i: usize,
        completed: bool,
    ) -> Result<(), EngineError> {
        let dss: Vec<String> = self.stretch.dists.keys().cloned().collect();
        for ds in &dss {
            self.stretch_reconcile(ds)?;
        }
        if !completed {
            let ds = self.vms[i].datastore.clone();
            let inst = self.vms[i].instance.clone();
            let data = nonzero_blocks(&self.vms[i].image)?;
            if let Some(rt) = self.stretch.dists.get_mut(&ds)
                && let Some(bits) = rt.bits.get_mut(&inst)
            {
                for b in data.ones() {
                    bits.set(b);
                }
                let bytes = bits.to_bytes();
                let path = self.st_bitmap_path(&ds, &inst);
                crate::fsutil::write_atomic(&path, &bytes).map_err(io_err_at(&path))?;
            }
        }
        for ds in &dss {
            if self.stretch.dists[ds].rebuilding {
                let total = self.stretch.dists[ds].tracked() + self.stretch.dists[ds].saved.rebuilt;
                self.stretch
                    .dists
                    .get_mut(ds)
                    .expect("listed")
                    .saved
                    .rebuild_total = total;
            }
            self.st_kick_rebuild(ds);
        }
        if dss.is_empty() {
            Ok(())
        } else {
            self.persist_state()
        }
    }

    /// Refuses a move of VM `i` to `to` that the distributed legs cannot take: onto a
    /// planned (not yet created) distributed datastore, or off or onto one whose second leg
    /// serves (migrations use the local leg's directories, which are behind then).
    pub(in crate::engine) fn stretch_check_move(
        &self,
        i: usize,
        to: &str,
    ) -> Result<(), EngineError> {
        for ds in [self.vms[i].datastore.as_str(), to] {
            if let Some(p) = self
                .stretch
                .dists
                .get(ds)
                .and_then(|r| r.saved.polarizing.as_ref())
            {
                return Err(rule(
                    format!("VM {:?}", self.vms[i].id),
                    format!(
                        "datastore {ds:?} holds its I/O while its witness decides which leg serves (until {}); move the VM after that",
                        crate::engine::format_time(p.decide_at)
                    ),
                ));
            }
            if self
                .stretch
                .dists
                .get(ds)
                .is_some_and(|r| r.saved.serving_remote)
            {
                return Err(rule(
                    format!("VM {:?}", self.vms[i].id),
                    format!(
                        "datastore {ds:?} serves from its second leg during a partition; heal the partition before moving a VM off or onto it"
                    ),
                ));
            }
        }
        if let Some(d) = self.topology().datastore(to)
            && d.distributed.as_ref().is_some_and(|x| !x.created)
        {
            return Err(rule(
                format!("datastore {to:?}"),
                "is planned but not created yet; create it (CreateDatastore) before moving a VM onto it",
            ));
        }
        Ok(())
    }
}
