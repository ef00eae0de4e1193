//! Proactive resource reservation: a protected-site host fault lists the impacted VMs,
//! reserves capacity for them on other hosts (or says what does not fit) and restarts them
//! there (seed `related-ha-and-replication-abstracts.txt`).
//!
//! The failing host computes the impacted VMs (those running on it, and those booting
//! onto it), in priority order; the master computes the free capacity of every other
//! healthy host at the same site (cpus and memory less its running VMs less the
//! reservations it already holds), reserves a best-fit host for each impacted VM and
//! answers which reservations succeeded. Reserved VMs restart after a simulated boot, in
//! priority order; a reservation becomes the VM's placement once it runs (saved in the
//! topology in use). VMs that fit nowhere stay down until a repair frees room.

use std::cmp::Reverse;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::sched::VmIx;
use super::{Engine, EngineError, Ev, LogLevel, Outcome, SECOND, SimTime, format_time};
use crate::topology::SiteRole;

/// The simulated boot of the first restarted VM after a reservation.
pub const BOOT_DELAY: SimTime = 20 * SECOND;
/// Each further VM of the same reservation boots this much later (priority order).
pub const BOOT_STAGGER: SimTime = 2 * SECOND;

/// What became of one VM impacted by a host fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fate {
    /// Capacity is held on `host`; the VM boots there at `restart_at`.
    Reserved {
        host: String,
        /// When the capacity was reserved (the boot's progress runs from here).
        reserved_at: SimTime,
        restart_at: SimTime,
        token: u64,
    },
    /// The reservation became its placement: it runs on `host` since `at`.
    Running { host: String, at: SimTime },
    /// No healthy host had room; it stays down.
    NoRoom { reason: String },
    /// Its reservation was on a host that failed in turn: that fault took it over.
    Superseded { by: String },
    /// It could not restart (its site was lost, or a failover took it).
    Abandoned { reason: String },
}

impl Fate {
    /// A stable word for the state: `reserved`, `running`, `no-room`, `superseded`,
    /// `abandoned`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fate::Reserved { .. } => "reserved",
            Fate::Running { .. } => "running",
            Fate::NoRoom { .. } => "no-room",
            Fate::Superseded { .. } => "superseded",
            Fate::Abandoned { .. } => "abandoned",
        }
    }

    /// The host it is reserved on or runs on.
    pub fn host(&self) -> Option<&str> {
        match self {
            Fate::Reserved { host, .. } | Fate::Running { host, .. } => Some(host),
            _ => None,
        }
    }

    /// How far its boot is at `now` (0..=1), while reserved.
    pub fn boot_progress(&self, now: SimTime) -> Option<f32> {
        match self {
            Fate::Reserved {
                reserved_at,
                restart_at,
                ..
            } => {
                let span = restart_at.saturating_sub(*reserved_at).max(1);
                Some((now.saturating_sub(*reserved_at) as f32 / span as f32).min(1.0))
            }
            _ => None,
        }
    }

    /// In words, for the console.
    pub fn describe(&self) -> String {
        match self {
            Fate::Reserved {
                host, restart_at, ..
            } => format!("reserved on {host}; boots at {}", format_time(*restart_at)),
            Fate::Running { host, at } => format!("runs on {host} since {}", format_time(*at)),
            Fate::NoRoom { reason } => format!("down, no room: {reason}"),
            Fate::Superseded { by } => {
                format!("its reservation was on {by}, which failed in turn (see {by})")
            }
            Fate::Abandoned { reason } => format!("not restarted: {reason}"),
        }
    }
}

/// One VM impacted by a host fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Impacted {
    pub vm: String,
    pub priority: u8,
    pub vcpus: u32,
    pub memory_gib: u32,
    pub fate: Fate,
}

/// One host fault, from the failure to the repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub host: String,
    pub site: String,
    pub at: SimTime,
    pub repaired_at: Option<SimTime>,
    /// Priority order, 1 first.
    pub impacted: Vec<Impacted>,
}

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct HostsSaved {
    #[serde(default)]
    faults: Vec<FaultRecord>,
    #[serde(default)]
    next_gen: u64,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct HostsRt {
    faults: Vec<FaultRecord>,
    next_gen: u64,
}

/// Capacity held on a host for a VM that will boot there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReservation {
    pub vm: String,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// The failed host the VM comes from.
    pub from_host: String,
    pub restart_at: SimTime,
}

/// What the console shows (a field of the snapshot): one protected-site host.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostView {
    pub id: String,
    pub site: String,
    pub cpus: u32,
    pub memory_gib: u32,
    pub failed: bool,
    /// The host's latest fault (kept after the repair, with `repaired_at` set).
    pub fault: Option<FaultRecord>,
    /// VMs running on it now.
    pub vms: Vec<String>,
    pub used_vcpus: u32,
    pub used_memory_gib: u32,
    /// Reservations it holds for VMs of a failed host.
    pub reservations: Vec<HostReservation>,
    pub free_vcpus: u32,
    pub free_memory_gib: u32,
}

impl HostView {
    pub fn reserved_vcpus(&self) -> u32 {
        self.reservations.iter().map(|r| r.vcpus).sum()
    }
    pub fn reserved_memory_gib(&self) -> u32 {
        self.reservations.iter().map(|r| r.memory_gib).sum()
    }
}

/// Free capacity of one candidate host while placing.
struct Room {
    host: String,
    cpus: i64,
    mem: i64,
}

fn rule(object: String, rule: impl Into<String>) -> EngineError {
    EngineError::Rule {
        object,
        rule: rule.into(),
    }
}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn hosts_saved(&self) -> HostsSaved {
        HostsSaved {
            faults: self.hosts.faults.clone(),
            next_gen: self.hosts.next_gen,
        }
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_hosts(&mut self, saved: HostsSaved) -> Result<(), EngineError> {
        self.hosts.faults = saved.faults;
        self.hosts.next_gen = saved.next_gen;
        let mut pending = Vec::new();
        for f in &self.hosts.faults {
            for v in &f.impacted {
                if let Fate::Reserved {
                    restart_at, token, ..
                } = &v.fate
                    && let Some(i) = self.vm_index(&v.vm)
                {
                    pending.push((*restart_at, i, *token));
                }
            }
        }
        for (at, i, gen_) in pending {
            self.schedule(at.max(self.now), Ev::Host { vm: VmIx(i), gen_ });
        }
        Ok(())
    }

    /// A queued `Ev::Host` event fell due: a reserved VM boots on its new host.
    pub(super) fn on_hosts_event(&mut self, i: usize, gen_: u64) -> Result<(), EngineError> {
        let vm = self.vms[i].id.clone();
        let Some((fi, vi, host)) = self.hosts.faults.iter().enumerate().find_map(|(fi, f)| {
            f.impacted
                .iter()
                .enumerate()
                .find_map(|(vi, v)| match &v.fate {
                    Fate::Reserved { host, token, .. } if v.vm == vm && *token == gen_ => {
                        Some((fi, vi, host.clone()))
                    }
                    _ => None,
                })
        }) else {
            // Stale: the reservation was taken over by a later fault.
            return Ok(());
        };
        let site = self.vms[i].site.clone();
        let why_not = if self.vms[i].recovered.is_some() {
            Some(format!(
                "{vm} was recovered at the recovery site by a failover"
            ))
        } else if self.sites_down.contains_key(&site) {
            Some(format!("site {site} is down"))
        } else if let Some(p) = self.pending_failover.as_ref().filter(|p| {
            self.pg_scope(&p.protection_groups)
                .is_ok_and(|(ds, _)| ds.contains(&self.vms[i].datastore))
        }) {
            Some(format!(
                "planned failover #{} of its protection group is running",
                p.id
            ))
        } else if self.ha_host_failed(&host) {
            Some(format!("host {host} failed"))
        } else {
            None
        };
        if let Some(reason) = why_not {
            self.hosts.faults[fi].impacted[vi].fate = Fate::Abandoned {
                reason: reason.clone(),
            };
            self.push_log(
                LogLevel::Warning,
                format!("Host HA: {vm} does not restart on {host}: {reason}; reservation released"),
            );
            return self.persist_state();
        }
        let now = self.now;
        self.vms[i].host = host.clone();
        self.vms[i].down = false;
        self.start_guest(i);
        self.hosts.faults[fi].impacted[vi].fate = Fate::Running {
            host: host.clone(),
            at: now,
        };
        // The reservation is now its placement: the topology in use says so.
        let mut topo = self.topology().clone();
        if let Some(v) = topo.vms.iter_mut().find(|v| v.id == vm)
            && v.host != host
        {
            v.host = host.clone();
            self.ws.save_topology(&topo)?;
        }
        let from = self.hosts.faults[fi].host.clone();
        let was = if from == host {
            String::new()
        } else {
            format!(" (was on {from})")
        };
        self.info(format!(
            "Host HA: {vm} restarted on {host}{was}; its reservation is now its placement"
        ));
        self.persist_state()
    }

    /// Is this host failed now (a fault not yet repaired)?
    /// Is VM `vm` down only because its host failed (waiting for its reservation's boot,
    /// or for room)? Its storage is fine: a migration of it carries on.
    pub(super) fn ha_down_for_host(&self, vm: &str) -> bool {
        self.hosts
            .faults
            .iter()
            .rev()
            .flat_map(|f| f.impacted.iter())
            .find(|m| m.vm == vm)
            .is_some_and(|m| matches!(m.fate, Fate::Reserved { .. } | Fate::NoRoom { .. }))
    }

    pub(super) fn ha_host_failed(&self, host: &str) -> bool {
        self.ha_active_fault(host).is_some()
    }

    fn ha_active_fault(&self, host: &str) -> Option<usize> {
        self.hosts
            .faults
            .iter()
            .rposition(|f| f.host == host && f.repaired_at.is_none())
    }

    /// Reservations held on `host` for VMs of failed hosts, priority order.
    pub(super) fn ha_reservations_on(&self, host: &str) -> Vec<HostReservation> {
        let mut out: Vec<(u8, HostReservation)> = Vec::new();
        for f in &self.hosts.faults {
            for v in &f.impacted {
                if let Fate::Reserved {
                    host: h,
                    restart_at,
                    ..
                } = &v.fate
                    && h == host
                {
                    out.push((
                        v.priority,
                        HostReservation {
                            vm: v.vm.clone(),
                            vcpus: v.vcpus,
                            memory_gib: v.memory_gib,
                            from_host: f.host.clone(),
                            restart_at: *restart_at,
                        },
                    ));
                }
            }
        }
        out.sort_by(|a, b| (a.0, &a.1.vm).cmp(&(b.0, &b.1.vm)));
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// VMs running on `host` now: (vm index).
    fn ha_running_on(&self, host: &str) -> Vec<usize> {
        (0..self.vms.len())
            .filter(|&i| {
                let v = &self.vms[i];
                v.host == host && !v.down && v.recovered.is_none()
            })
            .collect()
    }

    /// (used vcpus, used GiB) of the VMs running on `host`.
    fn ha_host_used(&self, host: &str) -> (u32, u32) {
        let t = self.topology();
        self.ha_running_on(host)
            .into_iter()
            .filter_map(|i| t.vm(&self.vms[i].id))
            .fold((0, 0), |(c, m), s| (c + s.vcpus, m + s.memory_gib))
    }

    /// Free capacity of every healthy host at `site` but `except`: capacity less its
    /// running VMs less the reservations it holds. Host order of the topology.
    fn ha_rooms(&self, site: &str, except: &str) -> Vec<Room> {
        let t = self.topology();
        t.hosts
            .iter()
            .filter(|h| h.site == site && h.id != except && !self.ha_host_failed(&h.id))
            .map(|h| {
                let (uc, um) = self.ha_host_used(&h.id);
                let res = self.ha_reservations_on(&h.id);
                let rc: u32 = res.iter().map(|r| r.vcpus).sum();
                let rm: u32 = res.iter().map(|r| r.memory_gib).sum();
                Room {
                    host: h.id.clone(),
                    cpus: i64::from(h.cpus) - i64::from(uc) - i64::from(rc),
                    mem: i64::from(h.memory_gib) - i64::from(um) - i64::from(rm),
                }
            })
            .collect()
    }

    /// Places one VM: `prefer` first if it has room, else the best fit (least memory,
    /// then fewest vCPUs left over). Takes the room; `Err` says why nothing fits.
    fn ha_place_one(
        rooms: &mut [Room],
        prefer: Option<&str>,
        vm: &str,
        cpus: u32,
        mem: u32,
    ) -> Result<String, String> {
        let (c, m) = (i64::from(cpus), i64::from(mem));
        let fits = |r: &Room| r.cpus >= c && r.mem >= m;
        let pick = rooms
            .iter()
            .position(|r| Some(r.host.as_str()) == prefer && fits(r))
            .or_else(|| {
                rooms
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| fits(r))
                    .min_by_key(|(_, r)| (r.mem - m, r.cpus - c))
                    .map(|(k, _)| k)
            });
        match pick {
            Some(k) => {
                rooms[k].cpus -= c;
                rooms[k].mem -= m;
                Ok(rooms[k].host.clone())
            }
            None => {
                let most = rooms
                    .iter()
                    .max_by_key(|r| (r.mem, r.cpus, Reverse(r.host.clone())));
                Err(match most {
                    Some(r) => format!(
                        "{vm} needs {cpus} vCPU / {mem} GiB; the most free is {}: {} vCPU / {} GiB",
                        r.host,
                        r.cpus.max(0),
                        r.mem.max(0)
                    ),
                    None => format!(
                        "{vm} needs {cpus} vCPU / {mem} GiB; no other healthy host at its site"
                    ),
                })
            }
        }
    }

    /// Reserves capacity for `entries` (priority order) and queues their boots. Returns
    /// how many got a reservation.
    fn ha_reserve_for(
        &mut self,
        fi: usize,
        site: &str,
        except: &str,
        prefer: Option<&str>,
        entries: &[usize],
    ) -> usize {
        let mut rooms = self.ha_rooms(site, except);
        let mut booted = 0;
        for &vi in entries {
            let v = &self.hosts.faults[fi].impacted[vi];
            let (vm, cpus, mem) = (v.vm.clone(), v.vcpus, v.memory_gib);
            match Engine::ha_place_one(&mut rooms, prefer, &vm, cpus, mem) {
                Ok(host) => {
                    self.hosts.next_gen += 1;
                    let gen_ = self.hosts.next_gen;
                    let restart_at = self.now + BOOT_DELAY + booted as u64 * BOOT_STAGGER;
                    booted += 1;
                    if let Some(i) = self.vm_index(&vm) {
                        self.schedule(restart_at, Ev::Host { vm: VmIx(i), gen_ });
                    }
                    self.info(format!(
                        "Host HA: reserved {cpus} vCPU / {mem} GiB on {host} for {vm}; it boots at {}",
                        format_time(restart_at)
                    ));
                    self.hosts.faults[fi].impacted[vi].fate = Fate::Reserved {
                        host,
                        reserved_at: self.now,
                        restart_at,
                        token: gen_,
                    };
                }
                Err(reason) => {
                    self.push_log(
                        LogLevel::Warning,
                        format!("Host HA: no room for {vm}, it stays down: {reason}"),
                    );
                    self.hosts.faults[fi].impacted[vi].fate = Fate::NoRoom { reason };
                }
            }
        }
        booted
    }

    /// The object of a rule error about host `host`.
    fn ha_host_object(host: &str) -> String {
        format!("host {host:?}")
    }

    /// A protected-site host reports a failure that impacts its VMs.
    pub(super) fn host_fault(&mut self, host: &str) -> Result<Outcome, EngineError> {
        let t = self.topology().clone();
        let obj = Engine::ha_host_object(host);
        let h = t
            .host(host)
            .ok_or_else(|| rule(obj.clone(), "does not exist in the topology"))?;
        let site = h.site.clone();
        if t.site_role(&site) != Some(SiteRole::Protected) {
            return Err(rule(
                obj,
                format!(
                    "is at site {site:?}, which is not a protected site; host faults apply to the hosts VMs run on"
                ),
            ));
        }
        if self.ha_host_failed(host) {
            return Err(rule(
                obj,
                "has already failed; repair it (HostHealthy) before failing it again",
            ));
        }
        if self.sites_down.contains_key(&site) {
            return Err(rule(
                obj,
                format!("its site {site:?} is down: every VM there is stopped already"),
            ));
        }
        // The failing host computes the impacted VMs: those running on it, and those
        // whose reservation it held (they were about to boot there).
        let spec = |id: &str| {
            t.vm(id)
                .map_or((5, 0, 0), |s| (s.priority, s.vcpus, s.memory_gib))
        };
        let mut impacted: Vec<Impacted> = Vec::new();
        for i in self.ha_running_on(host) {
            let (priority, vcpus, memory_gib) = spec(&self.vms[i].id);
            impacted.push(Impacted {
                vm: self.vms[i].id.clone(),
                priority,
                vcpus,
                memory_gib,
                fate: Fate::NoRoom {
                    reason: String::new(),
                },
            });
        }
        let mut superseded = Vec::new();
        for (fi, f) in self.hosts.faults.iter().enumerate() {
            for (vi, v) in f.impacted.iter().enumerate() {
                if matches!(&v.fate, Fate::Reserved { host: h, .. } if h == host) {
                    superseded.push((fi, vi));
                    let mut moved = v.clone();
                    moved.fate = Fate::NoRoom {
                        reason: String::new(),
                    };
                    impacted.push(moved);
                }
            }
        }
        impacted.sort_by(|a, b| (a.priority, &a.vm).cmp(&(b.priority, &b.vm)));
        for (fi, vi) in superseded {
            self.hosts.faults[fi].impacted[vi].fate = Fate::Superseded { by: host.into() };
        }
        // Every write the guests got acknowledged is on disk and journaled: they stop.
        let names: Vec<String> = impacted.iter().map(|v| v.vm.clone()).collect();
        for vm in &names {
            if let Some(i) = self.vm_index(vm) {
                let v = &mut self.vms[i];
                v.down = true;
                v.guest_gen += 1;
            }
        }
        let now = self.now;
        self.hosts.faults.push(FaultRecord {
            host: host.into(),
            site: site.clone(),
            at: now,
            repaired_at: None,
            impacted,
        });
        let fi = self.hosts.faults.len() - 1;
        self.push_log(
            LogLevel::Warning,
            format!(
                "Host {host} failed; impacted VMs (priority order): {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        );
        let all: Vec<usize> = (0..names.len()).collect();
        let reserved = self.ha_reserve_for(fi, &site, host, None, &all);
        let unplaced: Vec<String> = self.hosts.faults[fi]
            .impacted
            .iter()
            .filter(|v| matches!(v.fate, Fate::NoRoom { .. }))
            .map(|v| v.vm.clone())
            .collect();
        let mut msg = format!(
            "host {host} failed: {} VM(s) impacted, {reserved} reserved elsewhere",
            names.len()
        );
        if !unplaced.is_empty() {
            msg.push_str(&format!(
                "; no room for {} (they stay down)",
                unplaced.join(", ")
            ));
        }
        Ok(Outcome::Done(msg))
    }

    /// The host is repaired: it takes VMs again; VMs still down for lack of room get a
    /// reservation (on it first) and boot.
    pub(super) fn host_healthy(&mut self, host: &str) -> Result<Outcome, EngineError> {
        let obj = Engine::ha_host_object(host);
        let t = self.topology();
        let h = t
            .host(host)
            .ok_or_else(|| rule(obj.clone(), "does not exist in the topology"))?;
        let site = h.site.clone();
        let Some(fi) = self.ha_active_fault(host) else {
            return Err(rule(obj, "has not failed: there is nothing to repair"));
        };
        let now = self.now;
        self.hosts.faults[fi].repaired_at = Some(now);
        self.info(format!("Host {host} repaired; it takes VMs again"));
        if self.sites_down.contains_key(&site) {
            return Ok(Outcome::Done(format!(
                "host {host} repaired; its site {site} is down, so nothing restarts"
            )));
        }
        // Every VM of the site still down for lack of room, priority order.
        let mut waiting: Vec<(u8, String, usize, usize)> = Vec::new();
        for (gi, f) in self.hosts.faults.iter().enumerate() {
            if f.site != site {
                continue;
            }
            for (vi, v) in f.impacted.iter().enumerate() {
                let down = self
                    .vm_index(&v.vm)
                    .is_some_and(|i| self.vms[i].down && self.vms[i].recovered.is_none());
                if matches!(v.fate, Fate::NoRoom { .. }) && down {
                    waiting.push((v.priority, v.vm.clone(), gi, vi));
                }
            }
        }
        waiting.sort();
        let mut rooms = self.ha_rooms(&site, "");
        let mut restarted = Vec::new();
        let mut still = Vec::new();
        for (_, vm, gi, vi) in &waiting {
            let v = &self.hosts.faults[*gi].impacted[*vi];
            let (cpus, mem) = (v.vcpus, v.memory_gib);
            match Engine::ha_place_one(&mut rooms, Some(host), vm, cpus, mem) {
                Ok(to) => {
                    self.hosts.next_gen += 1;
                    let gen_ = self.hosts.next_gen;
                    let restart_at = now + BOOT_DELAY + restarted.len() as u64 * BOOT_STAGGER;
                    if let Some(i) = self.vm_index(vm) {
                        self.schedule(restart_at, Ev::Host { vm: VmIx(i), gen_ });
                    }
                    self.info(format!(
                        "Host HA: reserved {cpus} vCPU / {mem} GiB on {to} for {vm}; it boots at {}",
                        format_time(restart_at)
                    ));
                    self.hosts.faults[*gi].impacted[*vi].fate = Fate::Reserved {
                        host: to,
                        reserved_at: now,
                        restart_at,
                        token: gen_,
                    };
                    restarted.push(vm.clone());
                }
                Err(reason) => {
                    self.hosts.faults[*gi].impacted[*vi].fate = Fate::NoRoom { reason };
                    still.push(vm.clone());
                }
            }
        }
        let mut msg = format!("host {host} repaired");
        if !restarted.is_empty() {
            msg.push_str(&format!("; {} reserved and booting", restarted.join(", ")));
        }
        if !still.is_empty() {
            msg.push_str(&format!("; still no room for {}", still.join(", ")));
        }
        Ok(Outcome::Done(msg))
    }

    /// The snapshot's view: every protected-site host, topology order.
    pub(super) fn hosts_views(&self) -> Vec<HostView> {
        let t = self.topology();
        // Every snapshot builds this: one pass over the VMs, not one per host (and no
        // topology lookup per VM, which is linear).
        let sizes: HashMap<&str, (u32, u32)> = t
            .vms
            .iter()
            .map(|v| (v.id.as_str(), (v.vcpus, v.memory_gib)))
            .collect();
        let mut running: HashMap<&str, (Vec<String>, u32, u32)> = HashMap::new();
        for v in self.vms.iter().filter(|v| !v.down && v.recovered.is_none()) {
            let on = running.entry(v.host.as_str()).or_default();
            on.0.push(v.id.clone());
            if let Some((c, m)) = sizes.get(v.id.as_str()) {
                on.1 += c;
                on.2 += m;
            }
        }
        t.hosts
            .iter()
            .filter(|h| t.site_role(&h.site) == Some(SiteRole::Protected))
            .map(|h| {
                let (vms, used_vcpus, used_memory_gib) =
                    running.remove(h.id.as_str()).unwrap_or_default();
                let reservations = self.ha_reservations_on(&h.id);
                let rc: u32 = reservations.iter().map(|r| r.vcpus).sum();
                let rm: u32 = reservations.iter().map(|r| r.memory_gib).sum();
                HostView {
                    id: h.id.clone(),
                    site: h.site.clone(),
                    cpus: h.cpus,
                    memory_gib: h.memory_gib,
                    failed: self.ha_host_failed(&h.id),
                    fault: self
                        .hosts
                        .faults
                        .iter()
                        .rev()
                        .find(|f| f.host == h.id)
                        .cloned(),
                    vms,
                    used_vcpus,
                    used_memory_gib,
                    reservations,
                    free_vcpus: h.cpus.saturating_sub(used_vcpus + rc),
                    free_memory_gib: h.memory_gib.saturating_sub(used_memory_gib + rm),
                }
            })
            .collect()
    }

    /// `Expect(OnHost(vm, host))`: the VM runs on this host now.
    pub fn expect_on_host(&self, vm: &str, host: &str) -> (bool, String) {
        let Some(i) = self.vm_index(vm) else {
            return (false, format!("VM {vm:?} does not exist"));
        };
        let v = &self.vms[i];
        if v.down {
            return (
                false,
                format!("{vm} is down (last on {}, site {})", v.host, v.site),
            );
        }
        let state = if self.workloads_on {
            "runs"
        } else {
            "is up (guests stopped)"
        };
        (v.host == host, format!("{vm} {state} on {}", v.host))
    }
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
