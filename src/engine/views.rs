//! What the console and the CLI see of the engine: snapshots and per-VM queries.

use super::*;

/// A migration as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationView {
    pub id: String,
    pub vm: String,
    pub from: String,
    pub to: String,
    pub mode: CopyMode,
    pub phase: Phase,
    pub rolling_back: bool,
    /// Why the roll-back stopped (phase `RollbackFailed`); the task list shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub blocks: u64,
    pub copied_blocks: u64,
    /// Blocks the copier still has to copy (forward, or back when cancelling).
    pub blocks_left: u64,
    pub mirror_pending: usize,
    pub bytes_copied: u64,
    pub started_at: SimTime,
    /// Simulated copy rate of the two datastores, MiB/s.
    pub mib_per_s: f64,
    /// Simulated seconds to go at that rate.
    pub eta_s: f64,
}

/// A VM as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmView {
    pub id: String,
    pub datastore: String,
    pub instance: String,
    pub running: bool,
    pub site: String,
    pub host: String,
    /// Stopped by a disaster, a failover or a host fault.
    pub down: bool,
    /// Why it is down, in words (empty while up).
    pub down_reason: String,
    /// Running at the recovery site after a failover.
    pub recovered: bool,
    pub writes: u64,
    pub reads: u64,
    /// Reads that did not return the last write (must stay 0).
    pub read_errors: u64,
    pub migrations_done: u64,
    pub migration: Option<MigrationView>,
}

/// Everything a view needs to draw, cheap to clone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub now: SimTime,
    pub workloads_on: bool,
    pub vms: Vec<VmView>,
    /// Recent guest write latencies: (time, vm index, latency in µs).
    #[serde(skip)]
    pub latencies: Vec<(SimTime, usize, u64)>,
    pub groups: Vec<GroupView>,
    pub link_up: bool,
    pub sites_down: Vec<String>,
    /// When each site of `sites_down` was lost (simulated time).
    pub sites_lost_at: BTreeMap<String, SimTime>,
    /// The latest failover, if any.
    pub failover: Option<FailoverReport>,
    pub test_failover_up: bool,
    pub distributed: Vec<DistributedView>,
    pub arrays: Vec<ArrayView>,
    pub hosts: Vec<HostView>,
    pub group_migrations: Vec<GroupMigrationView>,
    pub placement: Vec<PlacementView>,
    /// Instances on returned sites of VMs failed over away from them (SPEC §11).
    pub stale: Vec<super::StaleInstance>,
    /// The cross-site moves of consistency groups so far (SPEC §12).
    pub across: Vec<super::AcrossOp>,
    /// Protected-site datastores no new VM may go to now, and why (New VM).
    pub unplaceable: BTreeMap<String, String>,
}

impl Engine {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            now: self.now,
            workloads_on: self.workloads_on,
            vms: self
                .vms
                .iter()
                .enumerate()
                .map(|(i, v)| self.vm_view(i, v))
                .collect(),
            latencies: self.latencies.iter().copied().collect(),
            groups: self.group_views(),
            link_up: self.link_up,
            sites_down: self.sites_down.keys().cloned().collect(),
            sites_lost_at: self.sites_down.clone(),
            failover: self.failovers.last().cloned(),
            test_failover_up: self.test_dir.is_some(),
            distributed: self.stretch_views(),
            arrays: self.health_views(),
            hosts: self.hosts_views(),
            group_migrations: self.group_migration_views(),
            across: self.across_ops().to_vec(),
            placement: self.placement_views(),
            stale: self.stale_instances().to_vec(),
            unplaceable: self.placement_unavailable(),
        }
    }

    pub(super) fn vm_view(&self, i: usize, v: &VmRt) -> VmView {
        VmView {
            id: v.id.clone(),
            datastore: v.datastore.clone(),
            instance: v.instance.clone(),
            running: self.workloads_on && !v.down,
            site: v.site.clone(),
            host: v.host.clone(),
            down: v.down,
            down_reason: if v.down {
                self.down_reason(i)
            } else {
                String::new()
            },
            recovered: v.recovered.is_some(),
            writes: v.writes,
            reads: v.reads,
            read_errors: v.read_errors,
            migrations_done: v.migrations_done,
            migration: v.migration.as_ref().map(|m| {
                let rate = self.copy_rate(i);
                let left = m.core.blocks_left();
                MigrationView {
                    id: m.rec.id.clone(),
                    vm: v.id.clone(),
                    from: m.rec.from.clone(),
                    to: m.rec.to.clone(),
                    mode: m.rec.mode,
                    phase: m.rec.phase,
                    rolling_back: m.core.direction == Direction::Back,
                    error: m.rec.error.clone(),
                    blocks: m.core.blocks,
                    copied_blocks: m.core.cursor,
                    blocks_left: left,
                    mirror_pending: m.mirror_pending.len(),
                    bytes_copied: m.bytes_copied,
                    started_at: m.rec.started_at,
                    mib_per_s: rate,
                    eta_s: (left * BLOCK_SIZE as u64) as f64 / (rate * 1024.0 * 1024.0),
                }
            }),
        }
    }

    /// The VMs in topology order.
    pub fn vm_ids(&self) -> Vec<String> {
        self.vms.iter().map(|v| v.id.clone()).collect()
    }

    /// Every instance of `vm` found on the protected site's datastores.
    pub fn instances_of(&self, vm: &str) -> Result<Vec<crate::workspace::Instance>, EngineError> {
        let t = self.topology();
        let uuid = t.vm(vm).map(|v| v.uuid.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for ds in t.datastores.iter().filter(|d| t.is_protected_datastore(d)) {
            for inst in self.ws.list_instances(&ds.id)? {
                if inst.config.uuid == uuid {
                    out.push(inst);
                }
            }
        }
        Ok(out)
    }

    /// Where VM `vm` lives now, if it exists.
    pub fn location(&self, vm: &str) -> Option<(String, String)> {
        self.vm_index(vm)
            .map(|i| (self.vms[i].datastore.clone(), self.vms[i].instance.clone()))
    }

    /// Is VM `vm` migrating now?
    pub fn is_migrating(&self, vm: &str) -> bool {
        self.vm_index(vm)
            .is_some_and(|i| self.vms[i].migration.is_some())
    }

    /// The phase of VM `vm`'s migration, if it is migrating.
    pub fn migration_phase(&self, vm: &str) -> Option<Phase> {
        let i = self.vm_index(vm)?;
        self.vms[i].migration.as_ref().map(|m| m.rec.phase)
    }

    /// Completed migrations of VM `vm` since the engine started.
    pub fn migrations_done(&self, vm: &str) -> u64 {
        self.vm_index(vm).map_or(0, |i| self.vms[i].migrations_done)
    }
}
