//! Distributed (RAID-1) datastores whose legs sit at two sites, created and served during a
//! partition, rebuilt from a bitmap of tracked blocks on heal (SPEC §8, seed
//! `distributed-volume-during-partition.txt`).
//!
//! The datastore's own leg is its normal directory `sites/<site>/datastores/<ds>/` (the one
//! VMs use); the second leg is `sites/<remote_site>/datastores/<ds>/` with the same instance
//! directories (a `vm.ron` copy and a sparse `disk0.img` of the same size). While both legs
//! are reachable every guest write also lands on the second leg; while they are separated
//! (a partition, or the second leg not created yet) writes are tracked in a bitmap per
//! instance (`state/stretch/<ds>/<instance>.bitmap`) and on heal only those blocks are
//! copied, at the inter-site link's bandwidth (the second leg starts as known zeros).
//!
//! With a witness, a partition of the datastore's own site makes the other leg serve (the
//! VMs' image handles are swapped with the other leg's); an array fault on the serving
//! leg's array does the same. After the rebuild the preferred (own) leg serves again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::copy::Bitmap;
use super::sched::DsIx;
use super::{
    Engine, EngineError, Ev, LogLevel, Outcome, SimTime, alive, duration_for, io_err, io_err_at,
};
use crate::disk::{BLOCK_SIZE, Block, ImageFile};
use crate::workspace::Workspace;

mod faults;
mod incident;
mod moves;
mod persist;
mod polarize;
mod views;

pub use incident::{Incident, IncidentStep, StepKind};
use persist::{nonzero_blocks, persist_bitmap_byte};
use polarize::Polarizing;
pub use views::DistributedView;

/// Blocks copied per rebuild event (4 MiB).
const REBUILD_CHUNK_BLOCKS: u64 = 1024;
/// Blocks compared per read when checking that the legs are identical (1 MiB).
const COMPARE_CHUNK_BLOCKS: u64 = 256;

/// A compliance report of a distributed datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportKind {
    /// One leg only serves I/O (created during a partition, or the legs were separated).
    OutOfCompliance,
    /// The second leg caught up again: both legs identical.
    Repaired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub at: SimTime,
    pub kind: ReportKind,
    pub message: String,
}

/// One distributed datastore's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DistSaved {
    /// The second leg's directory and instances exist.
    remote_present: bool,
    /// Instances on the datastore (VM instance directories) the legs know of.
    instances: Vec<String>,
    /// Blocks to copy in the current (or last) rebuild, and copied so far.
    rebuild_total: u64,
    rebuilt: u64,
    reports: Vec<ComplianceReport>,
    /// The witness picked the second leg: VMs' I/O goes to the remote images, the local
    /// leg is the one behind.
    #[serde(default)]
    serving_remote: bool,
    /// The legs lost touch and the sides wait to ask the witness (I/O held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    polarizing: Option<Polarizing>,
    /// From each failure to its repair: the failure and every step performed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    incidents: Vec<Incident>,
}

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct StretchSaved {
    /// Sites cut off by `PartitionSite`, sorted.
    partitioned: Vec<String>,
    /// Arrays holding a leg that reported a fault (`ArrayFault`), sorted.
    #[serde(default)]
    faulted_arrays: Vec<String>,
    /// The partition took the replication link down (brought back up on heal).
    link_taken_down: bool,
    datastores: BTreeMap<String, DistSaved>,
}

/// Runtime state of one created distributed datastore.
#[derive(Default)]
struct DistRt {
    saved: DistSaved,
    /// Tracked blocks (differing on the second leg) per instance.
    bits: BTreeMap<String, Bitmap>,
    /// The other leg's open images per instance (while present): the second leg's, or the
    /// local leg's while the witness has the second one serving (the handles are swapped
    /// with the VMs' images).
    remote: BTreeMap<String, ImageFile>,
    /// A rebuild event is queued.
    rebuilding: bool,
    gen_: u64,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct StretchRt {
    partitioned: BTreeSet<String>,
    faulted_arrays: BTreeSet<String>,
    link_taken_down: bool,
    /// Created distributed datastores by id.
    dists: BTreeMap<String, DistRt>,
}

fn rule(object: impl Into<String>, rule: impl Into<String>) -> EngineError {
    EngineError::Rule {
        object: object.into(),
        rule: rule.into(),
    }
}

impl DistRt {
    fn tracked(&self) -> u64 {
        self.bits.values().map(Bitmap::count).sum()
    }
}

impl Engine {
    fn st_stretch_dir(&self, ds: &str) -> PathBuf {
        self.ws.state_dir().join("stretch").join(ds)
    }

    fn st_bitmap_path(&self, ds: &str, instance: &str) -> PathBuf {
        self.st_stretch_dir(ds).join(format!("{instance}.bitmap"))
    }

    /// `sites/<remote_site>/datastores/<ds>`.
    fn st_remote_leg_dir(&self, ds: &str) -> Result<PathBuf, EngineError> {
        let d = self
            .topology()
            .datastore(ds)
            .ok_or_else(|| EngineError::NoSuchDatastore(ds.into()))?;
        let dist = d.distributed.as_ref().ok_or_else(|| {
            rule(
                format!("datastore {ds:?}"),
                "is not a distributed datastore",
            )
        })?;
        Ok(crate::workspace::datastore_path(
            self.ws.root(),
            &dist.remote_site,
            ds,
        ))
    }

    /// The VMs (index, instance) living on datastore `ds` now.
    fn st_vms_on(&self, ds: &str) -> Vec<(usize, String)> {
        self.vms
            .iter()
            .enumerate()
            .filter(|(_, v)| v.datastore == ds && v.recovered.is_none())
            .map(|(i, v)| (i, v.instance.clone()))
            .collect()
    }

    fn st_blocks_of_instance(&self, ds: &str, instance: &str) -> Option<u64> {
        self.vms
            .iter()
            .find(|v| v.datastore == ds && v.instance == instance)
            .map(|v| v.blocks)
    }

    /// Are the two legs of `ds` in touch (no partition or lost site between them)?
    fn st_legs_reachable(&self, ds: &str) -> bool {
        let Some(d) = self.topology().datastore(ds) else {
            return false;
        };
        let Some(dist) = &d.distributed else {
            return false;
        };
        let sites_ok = [&d.site, &dist.remote_site].iter().all(|s| {
            !self.stretch.partitioned.contains(s.as_str()) && !self.sites_down.contains_key(*s)
        });
        sites_ok
            && self
                .st_leg_arrays(ds)
                .iter()
                .all(|a| !self.stretch.faulted_arrays.contains(a))
    }

    /// The arrays of `ds`'s legs: its own LUNs' arrays, then the second leg's.
    fn st_leg_arrays(&self, ds: &str) -> Vec<String> {
        let t = self.topology();
        let Some(d) = t.datastore(ds) else {
            return Vec::new();
        };
        d.luns
            .iter()
            .chain(d.distributed.as_ref().map(|x| &x.remote_lun))
            .filter_map(|l| t.lun(l).map(|(a, _)| a.id.clone()))
            .collect()
    }

    /// Brings the legs' instance lists in line with the VMs on the datastore: a VM that
    /// arrived (a migration) has its data blocks tracked (the second leg holds zeros for
    /// them); one that left has its second-leg copy and bitmap removed.
    fn stretch_reconcile(&mut self, ds: &str) -> Result<(), EngineError> {
        let Some(rt) = self.stretch.dists.get(ds) else {
            return Ok(());
        };
        let now_on: BTreeMap<String, usize> = self
            .st_vms_on(ds)
            .into_iter()
            .map(|(i, n)| (n, i))
            .collect();
        let known: BTreeSet<String> = rt.saved.instances.iter().cloned().collect();
        let remote_present = rt.saved.remote_present;
        let leg = self.st_remote_leg_dir(ds)?;
        for gone in known.iter().filter(|k| !now_on.contains_key(*k)) {
            let rt = self.stretch.dists.get_mut(ds).expect("checked");
            rt.remote.remove(gone);
            let dropped = rt.bits.remove(gone).map_or(0, |b| b.count());
            rt.saved.instances.retain(|x| x != gone);
            rt.saved.rebuild_total = rt.saved.rebuild_total.saturating_sub(dropped);
            let dir = leg.join(gone);
            if dir.exists() {
                alive()?;
                self.ws.remove_instance(&dir)?;
            }
            super::remove_file_if_exists(&self.st_bitmap_path(ds, gone))?;
            self.info(format!(
                "{ds}: instance {gone} left the datastore; its copy on the second leg is removed"
            ));
        }
        for (inst, &i) in now_on.iter().filter(|(k, _)| !known.contains(*k)) {
            let bits = nonzero_blocks(&self.vms[i].image)?;
            let n = bits.count();
            std::fs::create_dir_all(self.st_stretch_dir(ds))
                .map_err(io_err("creating state/stretch"))?;
            let path = self.st_bitmap_path(ds, inst);
            crate::fsutil::write_atomic(&path, &bits.to_bytes()).map_err(io_err_at(&path))?;
            let vm = self.vms[i].id.clone();
            if remote_present {
                self.st_create_remote_instance(ds, inst, i)?;
            }
            let rt = self.stretch.dists.get_mut(ds).expect("checked");
            rt.bits.insert(inst.clone(), bits);
            rt.saved.instances.push(inst.clone());
            rt.saved.instances.sort();
            if rt.rebuilding {
                rt.saved.rebuild_total += n;
            }
            self.info(format!(
                "{ds}: {vm} arrived ({inst}); {n} block(s) holding data are tracked for the second leg (the rest are known zeros)"
            ));
        }
        Ok(())
    }

    /// Creates instance `inst`'s directory on the second leg: its vm.ron and a sparse image.
    fn st_create_remote_instance(
        &mut self,
        ds: &str,
        inst: &str,
        i: usize,
    ) -> Result<(), EngineError> {
        let dir = self.st_remote_leg_dir(ds)?.join(inst);
        alive()?;
        std::fs::create_dir_all(&dir).map_err(io_err_at(&dir))?;
        let img_path = dir.join("disk0.img");
        let img = if img_path.exists() {
            ImageFile::open(&img_path)?
        } else {
            ImageFile::create(&img_path, self.vms[i].blocks)?
        }
        .without_readahead();
        let config = Workspace::read_config(&self.vms[i].dir)?;
        Workspace::write_config(&dir, &config)?;
        self.stretch
            .dists
            .get_mut(ds)
            .expect("caller checked")
            .remote
            .insert(inst.to_string(), img);
        Ok(())
    }

    /// Creates the second leg of `ds` (every instance, zeros).
    fn st_create_remote_leg(&mut self, ds: &str) -> Result<(), EngineError> {
        let leg = self.st_remote_leg_dir(ds)?;
        alive()?;
        std::fs::create_dir_all(&leg).map_err(io_err_at(&leg))?;
        for (i, inst) in self.st_vms_on(ds) {
            if self.stretch.dists[ds].saved.instances.contains(&inst) {
                self.st_create_remote_instance(ds, &inst, i)?;
            }
        }
        self.stretch
            .dists
            .get_mut(ds)
            .expect("caller checked")
            .saved
            .remote_present = true;
        Ok(())
    }

    /// The link's bandwidth between the legs' sites, MiB/s.
    fn st_leg_link_mib_s(&self, ds: &str) -> f64 {
        let t = self.topology();
        let mbps = t
            .datastore(ds)
            .and_then(|d| {
                let dist = d.distributed.as_ref()?;
                t.links
                    .iter()
                    .find(|l| {
                        (l.from == d.site && l.to == dist.remote_site)
                            || (l.to == d.site && l.from == dist.remote_site)
                    })
                    .map(|l| l.mbps)
            })
            .unwrap_or(1000.0);
        (mbps * 1_000_000.0 / 8.0 / (1024.0 * 1024.0)).max(1.0)
    }

    /// Starts a rebuild of `ds` if its legs are in touch, the second leg exists and one is
    /// not running yet.
    fn st_kick_rebuild(&mut self, ds: &str) {
        if !self.st_legs_reachable(ds) {
            return;
        }
        let rate = self.st_leg_link_mib_s(ds);
        let now = self.now;
        let Some(rt) = self.stretch.dists.get_mut(ds) else {
            return;
        };
        if !rt.saved.remote_present || rt.rebuilding {
            return;
        }
        let tracked = rt.tracked();
        if tracked == 0
            && !matches!(rt.saved.reports.last(), Some(r) if r.kind == ReportKind::OutOfCompliance)
        {
            return;
        }
        rt.rebuilding = true;
        rt.gen_ += 1;
        rt.saved.rebuild_total = tracked;
        rt.saved.rebuilt = 0;
        let first = tracked.min(REBUILD_CHUNK_BLOCKS);
        let at = if first == 0 {
            now
        } else {
            now + duration_for(first * BLOCK_SIZE as u64, rate)
        };
        let gen_ = rt.gen_;
        self.st_schedule(ds, at, gen_);
    }

    /// Queues distributed datastore `ds`'s event of generation `gen_` at `at`.
    pub(super) fn st_schedule(&mut self, ds: &str, at: SimTime, gen_: u64) {
        let index = self
            .topology()
            .datastores
            .iter()
            .position(|d| d.id == ds)
            .unwrap_or(0);
        self.schedule(
            at,
            Ev::Stretch {
                ds: DsIx(index),
                gen_,
            },
        );
    }

    /// A queued `Ev::Stretch` event fell due: the next chunk of a rebuild lands.
    pub(super) fn on_stretch_event(&mut self, i: usize, gen_: u64) -> Result<(), EngineError> {
        let Some(ds) = self.topology().datastores.get(i).map(|d| d.id.clone()) else {
            return Ok(());
        };
        let reachable = self.st_legs_reachable(&ds);
        let rate = self.st_leg_link_mib_s(&ds);
        let Some(rt) = self.stretch.dists.get_mut(&ds) else {
            return Ok(());
        };
        if gen_ == rt.gen_ && rt.saved.polarizing.is_some() {
            return self.st_polarization_event(&ds, i);
        }
        if gen_ != rt.gen_ || !rt.rebuilding {
            return Ok(());
        }
        if !reachable || !rt.saved.remote_present {
            rt.rebuilding = false;
            return Ok(());
        }
        // Copy up to a chunk of tracked blocks, instance by instance, in coalesced runs.
        let mut budget = REBUILD_CHUNK_BLOCKS;
        let mut touched: Vec<String> = Vec::new();
        let insts: Vec<String> = rt.bits.keys().cloned().collect();
        let mut copied = 0u64;
        for inst in insts {
            if budget == 0 {
                break;
            }
            let ones: Vec<u64> = rt.bits[&inst].ones().take(budget as usize).collect();
            if ones.is_empty() {
                continue;
            }
            let Some(vi) = self
                .vms
                .iter()
                .position(|v| v.datastore == ds && v.instance == inst)
            else {
                continue;
            };
            let Some(remote) = rt.remote.get(&inst) else {
                continue;
            };
            let local = &self.vms[vi].image;
            let mut k = 0;
            while k < ones.len() {
                let start = ones[k];
                let mut end = start + 1;
                while k + 1 < ones.len() && ones[k + 1] == end {
                    k += 1;
                    end += 1;
                }
                k += 1;
                let mut buf = vec![0u8; ((end - start) as usize) * BLOCK_SIZE];
                alive()?;
                local
                    .read_at(start * BLOCK_SIZE as u64, &mut buf)
                    .map_err(io_err_at(local.path()))?;
                remote
                    .write_at(start * BLOCK_SIZE as u64, &buf)
                    .map_err(io_err_at(remote.path()))?;
            }
            let bits = rt.bits.get_mut(&inst).expect("listed");
            for &b in &ones {
                bits.clear(b);
            }
            copied += ones.len() as u64;
            budget -= ones.len() as u64;
            touched.push(inst);
        }
        rt.saved.rebuilt += copied;
        let left = rt.tracked();
        let bitmaps: Vec<(String, Vec<u8>)> = touched
            .iter()
            .map(|inst| (inst.clone(), rt.bits[inst].to_bytes()))
            .collect();
        for (inst, bytes) in bitmaps {
            let path = self.st_bitmap_path(&ds, &inst);
            crate::fsutil::write_atomic(&path, &bytes).map_err(io_err_at(&path))?;
        }
        let rt = self.stretch.dists.get_mut(&ds).expect("checked");
        if left > 0 {
            let next = left.min(REBUILD_CHUNK_BLOCKS);
            let at = self.now + duration_for(next * BLOCK_SIZE as u64, rate);
            let g = rt.gen_;
            self.schedule(
                at,
                Ev::Stretch {
                    ds: DsIx(i),
                    gen_: g,
                },
            );
        } else {
            rt.rebuilding = false;
            let (rebuilt, total) = (rt.saved.rebuilt, rt.saved.rebuild_total);
            let started = rt
                .saved
                .incidents
                .last()
                .and_then(|inc| {
                    inc.steps
                        .iter()
                        .rev()
                        .find(|s| s.kind == StepKind::RebuildStarted)
                })
                .map(|s| s.at);
            self.st_step_blocks(
                &ds,
                StepKind::Rebuilt,
                rebuilt,
                format!(
                    "{rebuilt} block(s) of {total} copied to the leg that was behind ({} MiB{})",
                    rebuilt * BLOCK_SIZE as u64 / (1024 * 1024),
                    started.map_or(String::new(), |t| format!(
                        " in {}",
                        super::format_time(self.now - t)
                    ))
                ),
            );
            let rt = self.stretch.dists.get_mut(&ds).expect("checked");
            if rt.saved.serving_remote {
                // Caught up: the preferred (own) site's leg serves again.
                self.st_swap_serving(&ds, false)?;
                self.info(format!(
                    "{ds}: the preferred leg caught up and serves again"
                ));
                let site = self
                    .topology()
                    .datastore(&ds)
                    .map(|d| d.site.clone())
                    .unwrap_or_default();
                self.st_step(
                    &ds,
                    StepKind::PreferredLegServes,
                    format!("the preferred leg at {site} caught up and serves VM I/O again"),
                );
            }
            let blocks: u64 = self
                .st_vms_on(&ds)
                .iter()
                .map(|(vi, _)| self.vms[*vi].blocks)
                .sum();
            let msg = format!(
                "{ds} repaired: the second leg rebuilt {rebuilt} tracked block(s) of {total} ({} MiB; the disks hold {blocks} blocks); both legs in compliance",
                rebuilt * BLOCK_SIZE as u64 / (1024 * 1024)
            );
            let rt = self.stretch.dists.get_mut(&ds).expect("checked");
            rt.saved.reports.push(ComplianceReport {
                at: self.now,
                kind: ReportKind::Repaired,
                message: msg.clone(),
            });
            self.st_step(&ds, StepKind::Repaired, msg.clone());
            self.info(format!("Report: {msg}"));
        }
        self.persist_state()
    }

    /// Files a compliance report of `ds` (an out-of-compliance one is also a step of the
    /// open incident).
    fn st_push_report(&mut self, ds: &str, kind: ReportKind, message: String) {
        if kind == ReportKind::OutOfCompliance {
            self.st_step(ds, StepKind::OutOfCompliance, message.clone());
        }
        if let Some(rt) = self.stretch.dists.get_mut(ds) {
            rt.saved.reports.push(ComplianceReport {
                at: self.now,
                kind: kind.clone(),
                message: message.clone(),
            });
        }
        let level = match kind {
            ReportKind::OutOfCompliance => LogLevel::Warning,
            ReportKind::Repaired => LogLevel::Info,
        };
        self.push_log(level, format!("Report: {message}"));
    }

    /// Creates a planned distributed datastore: both legs, or the local leg only while
    /// the other site is partitioned away.
    pub(super) fn create_datastore(&mut self, datastore: &str) -> Result<Outcome, EngineError> {
        let obj = format!("datastore {datastore:?}");
        let d = self
            .topology()
            .datastore(datastore)
            .ok_or_else(|| EngineError::NoSuchDatastore(datastore.into()))?
            .clone();
        let Some(dist) = d.distributed.clone() else {
            return Err(rule(
                obj,
                "is not a distributed datastore; only a planned distributed datastore (created: false) can be created",
            ));
        };
        if dist.created || self.stretch.dists.contains_key(datastore) {
            return Err(rule(obj, "is already created"));
        }
        if self.sites_down.contains_key(&d.site) {
            return Err(rule(
                obj,
                format!(
                    "its own site {:?} is lost; the local leg cannot be created there",
                    d.site
                ),
            ));
        }
        // The local leg: the datastore's directory (VMs use it).
        let local = self.ws.datastore_dir(datastore)?;
        alive()?;
        std::fs::create_dir_all(&local).map_err(io_err_at(&local))?;
        let mut topo = self.topology().clone();
        if let Some(x) = topo
            .datastores
            .iter_mut()
            .find(|x| x.id == datastore)
            .and_then(|x| x.distributed.as_mut())
        {
            x.created = true;
        }
        self.ws.save_topology(&topo)?;
        self.stretch
            .dists
            .insert(datastore.to_string(), DistRt::default());
        let msg = if self.st_legs_reachable(datastore) {
            self.st_create_remote_leg(datastore)?;
            let msg = format!(
                "Created distributed datastore {datastore}: legs at {} ({}) and {} ({}), in compliance",
                d.site,
                d.luns.join(", "),
                dist.remote_site,
                dist.remote_lun
            );
            self.info(msg.clone());
            msg
        } else {
            let msg = format!(
                "{datastore} created during a partition: local leg at {} ({}) only, serving I/O; out of compliance — the leg at {} ({}) is created when the partition heals, changed blocks are tracked until then",
                d.site,
                d.luns.join(", "),
                dist.remote_site,
                dist.remote_lun
            );
            let cut: Vec<String> = self.stretch.partitioned.iter().cloned().collect();
            self.st_incident_failure(
                datastore,
                format!(
                    "created while site {} was partitioned away (the leg at {} unreachable)",
                    cut.join(", "),
                    dist.remote_site
                ),
            );
            self.st_step(
                datastore,
                StepKind::LocalLegCreated,
                format!(
                    "the local leg at {} ({}) created and exported: it serves VM I/O alone; changed blocks are tracked",
                    d.site,
                    d.luns.join(", ")
                ),
            );
            self.st_push_report(datastore, ReportKind::OutOfCompliance, msg.clone());
            msg
        };
        Ok(Outcome::Done(msg))
    }

    /// A guest write landed on VM `i`'s image (block `block`, content `buf`).
    pub(super) fn stretch_after_write(
        &mut self,
        i: usize,
        block: u64,
        buf: &Block,
    ) -> Result<(), EngineError> {
        // Every guest write comes through here: nothing to allocate unless the VM is on a
        // distributed datastore.
        if !self
            .stretch
            .dists
            .contains_key(self.vms[i].datastore.as_str())
        {
            return Ok(());
        }
        let ds = self.vms[i].datastore.clone();
        let reachable = self.st_legs_reachable(&ds);
        let inst = self.vms[i].instance.clone();
        let migrating = self.vms[i].migration.is_some();
        let path = self.st_bitmap_path(&ds, &inst);
        let rt = self.stretch.dists.get_mut(&ds).expect("checked");
        let Some(bits) = rt.bits.get_mut(&inst) else {
            // Not known yet (arrived without the hook): the reconcile tracks its data.
            return Ok(());
        };
        match rt.remote.get(&inst) {
            // RAID-1: the write lands on both legs.
            Some(remote) if reachable && !migrating => {
                alive()?;
                remote
                    .write_block(block, buf)
                    .map_err(io_err_at(remote.path()))?;
            }
            _ => {
                if bits.set(block) {
                    if rt.rebuilding {
                        rt.saved.rebuild_total += 1;
                    }
                    let (index, byte) = bits.byte_of(block);
                    persist_bitmap_byte(&path, index, byte)?;
                }
            }
        }
        Ok(())
    }

    /// Swaps the VMs' images of `ds` with the other leg's handles: `to_remote` makes the
    /// second leg serve (the witness's pick), `false` the local leg again.
    fn st_swap_serving(&mut self, ds: &str, to_remote: bool) -> Result<(), EngineError> {
        let Some(rt) = self.stretch.dists.get_mut(ds) else {
            return Ok(());
        };
        if rt.saved.serving_remote == to_remote {
            return Ok(());
        }
        for vm in self
            .vms
            .iter_mut()
            .filter(|v| v.datastore == ds && v.recovered.is_none())
        {
            if let Some(other) = rt.remote.get_mut(&vm.instance) {
                std::mem::swap(&mut vm.image, other);
            }
        }
        rt.saved.serving_remote = to_remote;
        Ok(())
    }
}

#[cfg(test)]
#[path = "stretch_tests.rs"]
mod tests;
