//! The DR lifecycle after a failover (SPEC §11): a lost site's return, and reprotect.
//!
//! `SiteUp(site)` brings back a site lost in a `Disaster` as it was at that instant: its
//! images, journal and records are what they were (nothing ran there meanwhile). Its VMs
//! that were not failed over restart where they are (a migration frozen by the disaster
//! resumes its copy); its VMs that were failed over stay off, and their instances there are
//! *stale*: older than the copies now running at the other site. The engine names each
//! stale instance in the log, keeps the list (persisted) for the views, and the
//! replication groups that touch the site and were not failed over cut again.
//!
//! `Reprotect(protection_groups)` reverses the replication groups of failed-over PGs: the
//! datastores the VMs run on now become the protected side, the old protected datastores
//! their replicas. Nothing is copied whole: each running image's change tracker starts as
//! the blocks that differ from the old side's image of the same instance (the blocks
//! written on either side since the point the failover used), so the first reverse cycle
//! ships only those. Instances on the old side that no running VM continues (election
//! losers, partial targets) are deleted at once, each named.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::failover::{FailoverKind, FailoverState};
use super::{
    Engine, EngineError, LogLevel, Outcome, SimTime, format_time, remove_dir_if_exists,
    remove_file_if_exists,
};

/// An instance on a returned site of a VM that was failed over away from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleInstance {
    pub vm: String,
    pub site: String,
    pub datastore: String,
    /// Relative to the workspace: `sites/<site>/datastores/<datastore>/<instance>`.
    pub path: String,
    /// Where the VM runs now.
    pub running_on: String,
}

/// A site that came back after a disaster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReturn {
    pub site: String,
    pub lost_at: SimTime,
    pub returned_at: SimTime,
    /// VMs restarted at the site.
    pub restarted: Vec<String>,
}

/// One reprotect: the PGs, when, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprotectRecord {
    pub protection_groups: Vec<String>,
    pub at: SimTime,
    /// The groups reversed, each as `id: <from-site> to <to-site>` after the reversal.
    pub groups: Vec<String>,
    /// Instances deleted on the new replica side (no running VM continues them).
    pub deleted: Vec<String>,
}

/// Persisted with the engine state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct LifecycleSaved {
    #[serde(default)]
    stale: Vec<StaleInstance>,
    #[serde(default)]
    returns: Vec<SiteReturn>,
    #[serde(default)]
    reprotects: Vec<ReprotectRecord>,
}

#[derive(Default)]
pub(super) struct LifecycleRt {
    stale: Vec<StaleInstance>,
    returns: Vec<SiteReturn>,
    reprotects: Vec<ReprotectRecord>,
}

impl Engine {
    pub(super) fn lifecycle_saved(&self) -> LifecycleSaved {
        LifecycleSaved {
            stale: self.lifecycle.stale.clone(),
            returns: self.lifecycle.returns.clone(),
            reprotects: self.lifecycle.reprotects.clone(),
        }
    }

    pub(super) fn restore_lifecycle(&mut self, saved: LifecycleSaved) {
        self.lifecycle = LifecycleRt {
            stale: saved.stale,
            returns: saved.returns,
            reprotects: saved.reprotects,
        };
    }

    /// The stale instances on returned sites, by site, datastore and path.
    pub fn stale_instances(&self) -> &[StaleInstance] {
        &self.lifecycle.stale
    }

    /// The sites that came back, oldest return first.
    pub fn site_returns(&self) -> &[SiteReturn] {
        &self.lifecycle.returns
    }

    /// The reprotects so far, oldest first.
    pub fn reprotects(&self) -> &[ReprotectRecord] {
        &self.lifecycle.reprotects
    }

    /// `Expect(Protected(vm))`: the VM runs on a replicated datastore and its group has
    /// published a point, in the group's current direction, holding its running instance.
    pub fn expect_protected(&self, vm: &str) -> (bool, String) {
        let Some(i) = self.vm_index(vm) else {
            return (false, format!("VM {vm:?} does not exist"));
        };
        let v = &self.vms[i];
        if v.down {
            return (false, format!("{vm} is down: {}", self.down_reason(i)));
        }
        let Some(g) = self.groups.iter().find(|g| g.spec.covers(&v.datastore)) else {
            return (
                false,
                format!(
                    "{vm} runs on {} at {}, which no replication group protects",
                    v.datastore, v.site
                ),
            );
        };
        let dir = format!("{} to {}", g.spec.source_site, g.spec.target_site);
        let Some(p) = &g.published else {
            return (
                false,
                format!(
                    "{vm}'s group {} ({dir}) has published no point yet",
                    g.spec.id
                ),
            );
        };
        let replica = g
            .spec
            .pairs
            .iter()
            .find(|p| p.datastore == v.datastore)
            .map(|p| p.replica.clone())
            .unwrap_or_default();
        let held = self
            .ws
            .datastore_dir(&replica)
            .map(|d| {
                d.join(&v.instance)
                    .join(crate::workspace::VM_CONFIG_FILE)
                    .exists()
            })
            .unwrap_or(false);
        (
            held,
            if held {
                format!(
                    "{vm} runs on {} and {} ({dir}) holds it on {replica} in point {} cut at {}",
                    v.datastore,
                    g.spec.id,
                    p.cycle,
                    format_time(p.cut_at)
                )
            } else {
                format!(
                    "{vm} runs on {} but {}'s point {} on {replica} holds no instance {}",
                    v.datastore, g.spec.id, p.cycle, v.instance
                )
            },
        )
    }

    /// Is PG `pg` reprotected (its groups replicate against the topology's direction)?
    pub fn reprotected(&self, pg: &str) -> bool {
        self.pg_groups(pg)
            .iter()
            .any(|&g| self.groups[g].saved.reversed)
    }

    /// The replication groups with a pair on a datastore of PG `pg`, in either direction.
    fn pg_groups(&self, pg: &str) -> Vec<usize> {
        let Some(p) = self.topology().protection_group(pg) else {
            return Vec::new();
        };
        let ds: BTreeSet<&str> = p.datastores.iter().map(String::as_str).collect();
        (0..self.groups.len())
            .filter(|&g| {
                self.groups[g].spec.pairs.iter().any(|pair| {
                    ds.contains(pair.datastore.as_str()) || ds.contains(pair.replica.as_str())
                })
            })
            .collect()
    }

    /// Why PGs `pgs` cannot be reprotected now, if they cannot.
    fn reprotect_refusal(&self, pgs: &[String]) -> Option<String> {
        if pgs.is_empty() {
            return Some("choose at least one protection group".into());
        }
        if let Some((site, _)) = self.sites_down.iter().next() {
            return Some(format!(
                "site {site} is down: reprotect needs both sites up (bring it back with SiteUp)"
            ));
        }
        if !self.link_up {
            return Some("the replication link is down".into());
        }
        for pg in pgs {
            if self.topology().protection_group(pg).is_none() {
                return Some(format!("no protection group {pg:?}"));
            }
            if self
                .pending_failover
                .as_ref()
                .is_some_and(|p| p.protection_groups.contains(pg))
            {
                return Some(format!("{pg}: a planned failover of it is still running"));
            }
            let groups = self.pg_groups(pg);
            if groups.is_empty() {
                return Some(format!("{pg} has no replicated datastore"));
            }
            for &g in &groups {
                let grp = &self.groups[g];
                if grp.transfer.is_some() {
                    return Some(format!(
                        "{pg}: replication group {} is mid-cycle; try again once it has published",
                        grp.spec.id
                    ));
                }
                if !grp.saved.failed_over {
                    let tested = self.failovers.iter().rev().find(|f| {
                        f.state == FailoverState::Done && f.protection_groups.contains(pg)
                    });
                    return Some(match tested {
                        Some(f) if f.kind == FailoverKind::Test => format!(
                            "{pg} was only test-failed-over (#{}): its VMs still run at {}; clean the test up, there is nothing to reverse",
                            f.id, grp.spec.source_site
                        ),
                        _ => format!(
                            "{pg} is not failed over: its group {} replicates {} to {} and its VMs run there",
                            grp.spec.id, grp.spec.source_site, grp.spec.target_site
                        ),
                    });
                }
                // Every VM on the side that becomes the replica must have moved away.
                let old_side: BTreeSet<&str> = grp
                    .spec
                    .pairs
                    .iter()
                    .map(|p| p.datastore.as_str())
                    .collect();
                // A VM migrating onto (or off) that side has an instance there too: its
                // migration record says so, loaded or not.
                let migrating = self.migration_records_on(&old_side);
                let stuck: Vec<&str> = self
                    .vms
                    .iter()
                    .filter(|v| {
                        old_side.contains(v.datastore.as_str()) || migrating.contains(&v.id)
                    })
                    .map(|v| v.id.as_str())
                    .collect();
                if !stuck.is_empty() {
                    return Some(format!(
                        "{pg}: {} still live on {} (not recovered by the failover, or migrating there); reprotecting would make that datastore a replica and delete them",
                        stuck.join(", "),
                        grp.spec
                            .pairs
                            .iter()
                            .map(|p| p.datastore.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        None
    }

    /// The VMs with a migration record (in memory or on disk) from or to one of
    /// `datastores`. A record that cannot be read counts as touching them.
    fn migration_records_on(&self, datastores: &BTreeSet<&str>) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .vms
            .iter()
            .filter(|v| {
                v.migration.as_ref().is_some_and(|m| {
                    datastores.contains(m.rec.to.as_str())
                        || datastores.contains(m.rec.from.as_str())
                })
            })
            .map(|v| v.id.clone())
            .collect();
        let dir = Engine::migrations_dir(&self.ws);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "ron")
                && let Ok(rec) = super::read_ron::<super::migration::MigrationRecord>(&path)
                && (datastores.contains(rec.to.as_str()) || datastores.contains(rec.from.as_str()))
            {
                out.insert(rec.vm);
            }
        }
        out
    }

    /// `Reprotect(protection_groups)`: reverses every replication group of those PGs.
    pub(super) fn reprotect(&mut self, pgs: &[String]) -> Result<Outcome, EngineError> {
        if let Some(why) = self.reprotect_refusal(pgs) {
            let msg = format!("Reprotect of {} refused: {why}", pgs.join(", "));
            self.push_log(LogLevel::Warning, msg.clone());
            return Ok(Outcome::Refused(msg));
        }
        let mut scope: BTreeSet<usize> = BTreeSet::new();
        for pg in pgs {
            scope.extend(self.pg_groups(pg));
        }
        let now = self.now;
        let (reversed, deleted, tracked) = self.reverse_groups(&scope)?;
        for d in &deleted {
            self.push_log(
                LogLevel::Warning,
                format!(
                    "Reprotect of {}: deleted {d} (no running VM continues it: an election loser or a partial target)",
                    pgs.join(", ")
                ),
            );
        }
        let msg = format!(
            "Reprotect of {}: {} group(s) reversed ({}); the first cycles ship the {tracked} block(s) that differ between the sides, {} old instance(s) deleted",
            pgs.join(", "),
            reversed.len(),
            reversed.join("; "),
            deleted.len()
        );
        self.lifecycle.reprotects.push(ReprotectRecord {
            protection_groups: pgs.to_vec(),
            at: now,
            groups: reversed,
            deleted,
        });
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// Reverses replication groups `scope` (reprotect, a cross-site move's switch and its
    /// fail-back): the datastores running the VMs become each group's protected side, the
    /// old side its replicas, and the first reverse cycle is due now. Returns the groups as
    /// `id: <from> to <to>`, the instances deleted on the new replica side (no running
    /// instance continues them), and the blocks the running images' trackers start with
    /// (those that differ between the sides).
    pub(super) fn reverse_groups(
        &mut self,
        scope: &BTreeSet<usize>,
    ) -> Result<(Vec<String>, Vec<String>, u64), EngineError> {
        let now = self.now;
        let mut reversed = Vec::new();
        let mut deleted = Vec::new();
        for &g in scope {
            let old = self.groups[g].spec.clone();
            let new = old.reversed();
            // Neither direction's records describe the replicas any more: the old
            // replicas run the VMs, the new ones hold the old side's last state.
            for spec in [&old, &new] {
                remove_file_if_exists(&self.published_path(spec))?;
                remove_file_if_exists(&self.commit_path(spec))?;
                remove_dir_if_exists(&self.staging_dir(spec))?;
                remove_dir_if_exists(&super::replication::points_dir(self.ws.root(), spec))?;
            }
            // Instances on the new replica side that no running instance continues.
            for pair in &new.pairs {
                let running: BTreeSet<String> = self
                    .ws
                    .list_instances(&pair.datastore)?
                    .into_iter()
                    .map(|i| i.name)
                    .collect();
                for inst in self.ws.list_instances(&pair.replica)? {
                    if !running.contains(&inst.name) {
                        self.remove_instance_dir(&inst.dir)?;
                        deleted.push(format!(
                            "sites/{}/datastores/{}/{}",
                            new.target_site, pair.replica, inst.name
                        ));
                    }
                }
            }
            // The old side's images are replicas now: nothing tracks their changes.
            for pair in &old.pairs {
                let dir = self.ws.datastore_dir(&pair.datastore)?;
                let gone: Vec<std::path::PathBuf> = self
                    .trackers
                    .range(dir.clone()..)
                    .map(|(p, _)| p.clone())
                    .take_while(|p| p.starts_with(&dir))
                    .collect();
                for p in gone {
                    self.trackers.remove(&p);
                }
            }
            reversed.push(format!(
                "{}: {} to {}",
                new.id, new.source_site, new.target_site
            ));
            let grp = &mut self.groups[g];
            grp.spec = new;
            grp.published = None;
            grp.older.clear();
            grp.alarmed = false;
            grp.last_error = None;
            grp.saved.failed_over = false;
            grp.saved.reversed = !grp.saved.reversed;
            grp.saved.paused = false;
            grp.saved.next_cut = Some(now);
            self.queue_cut(g);
        }
        // The running images are tracked against the new replicas from here: each
        // tracker starts as the blocks that differ between the two.
        let mut tracked = 0;
        for i in 0..self.vms.len() {
            let ds = self.vms[i].datastore.clone();
            if !scope.iter().any(|&g| self.groups[g].spec.covers(&ds)) {
                continue;
            }
            let path = self.vms[i].image.path().to_path_buf();
            let t = self.tracker_for(&ds, &path)?;
            tracked += t.as_ref().map_or(0, |t| t.count());
            self.vms[i].image.set_tracker(t);
        }
        let new_replicas: BTreeSet<String> = scope
            .iter()
            .flat_map(|&g| self.groups[g].spec.pairs.iter().map(|p| p.replica.clone()))
            .collect();
        self.lifecycle
            .stale
            .retain(|s| !new_replicas.contains(&s.datastore));
        Ok((reversed, deleted, tracked))
    }

    /// `SiteUp(site)`: the site lost in a disaster returns as it was then.
    pub(super) fn site_up(&mut self, site: &str) -> Result<Outcome, EngineError> {
        if self.topology().site(site).is_none() {
            return Err(EngineError::Failover(format!("no site {site:?}")));
        }
        let Some(&lost_at) = self.sites_down.get(site) else {
            let msg = format!("site {site} is not down: only a site lost in a disaster can return");
            self.push_log(LogLevel::Warning, msg.clone());
            return Ok(Outcome::Refused(msg));
        };
        let stale = self.find_stale(site)?;
        self.sites_down.remove(site);
        let now = self.now;
        let mut restarted = Vec::new();
        let mut resumed = 0;
        for i in 0..self.vms.len() {
            let vm = &self.vms[i];
            if vm.site != site || !vm.down || self.ha_down_for_host(&vm.id) {
                continue;
            }
            self.vms[i].down = false;
            self.start_guest(i);
            restarted.push(self.vms[i].id.clone());
            if self.vms[i]
                .migration
                .as_ref()
                .is_some_and(|m| m.run_ends_at.is_none() && m.core.in_flight.is_none())
            {
                self.start_next_run(i, now)?;
                resumed += 1;
            }
        }
        let mut groups = 0;
        for g in 0..self.groups.len() {
            let spec = &self.groups[g].spec;
            if spec.source_site != site && spec.target_site != site {
                continue;
            }
            if self.sites_down.contains_key(&spec.source_site)
                || self.sites_down.contains_key(&spec.target_site)
                || self.groups[g].saved.failed_over
            {
                continue;
            }
            if self.groups[g].saved.next_cut.is_none() {
                self.groups[g].saved.next_cut = Some(now);
            }
            self.queue_cut(g);
            groups += 1;
        }
        for s in &stale {
            self.push_log(
                LogLevel::Warning,
                format!(
                    "Site {site} returned: {} is stale ({} was failed over and runs on {}); it stays powered off",
                    s.path, s.vm, s.running_on
                ),
            );
        }
        let msg = format!(
            "Site {site} returned as it was when it was lost at {}: {} VM(s) restarted{}, {} stale instance(s) of failed-over VMs stay off, {groups} replication group(s) cut again",
            format_time(lost_at),
            restarted.len(),
            if resumed > 0 {
                format!(" ({resumed} migration(s) resumed)")
            } else {
                String::new()
            },
            stale.len(),
        );
        self.lifecycle.stale.retain(|s| s.site != site);
        self.lifecycle.stale.extend(stale);
        self.lifecycle.returns.push(SiteReturn {
            site: site.to_string(),
            lost_at,
            returned_at: now,
            restarted,
        });
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// The instances at `site` of VMs that were failed over away from it.
    fn find_stale(&self, site: &str) -> Result<Vec<StaleInstance>, EngineError> {
        let away: BTreeMap<[u8; 16], usize> = self
            .vms
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                v.site != site && v.recovered.as_ref().is_some_and(|r| r.from_site == site)
            })
            .map(|(i, v)| (v.uuid, i))
            .collect();
        let mut out = Vec::new();
        if away.is_empty() {
            return Ok(out);
        }
        let t = self.topology();
        for ds in t.datastores.iter().filter(|d| d.site == site) {
            for inst in self.ws.list_instances(&ds.id)? {
                let Some(uuid) = crate::disk::raw_uuid(&inst.config.uuid) else {
                    continue;
                };
                if let Some(&i) = away.get(&uuid) {
                    let vm = &self.vms[i];
                    out.push(StaleInstance {
                        vm: vm.id.clone(),
                        site: site.to_string(),
                        datastore: ds.id.clone(),
                        path: format!("sites/{site}/datastores/{}/{}", ds.id, inst.name),
                        running_on: format!("{} at {}", vm.datastore, vm.site),
                    });
                }
            }
        }
        Ok(out)
    }
}
