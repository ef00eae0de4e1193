//! The DR lifecycle after a failover (SPEC §11): a lost site's return.
//!
//! `SiteUp(site)` brings back a site lost in a `Disaster` as it was at that instant: its
//! images, journal and records are what they were (nothing ran there meanwhile). Its VMs
//! that were not failed over restart where they are (a migration frozen by the disaster
//! resumes its copy); its VMs that were failed over stay off, and their instances there are
//! *stale*: older than the copies now running at the other site. The engine names each
//! stale instance in the log, keeps the list (persisted) for the views, and the
//! replication groups that touch the site and were not failed over cut again.

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, LogLevel, Outcome, SimTime, format_time};

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

/// Persisted with the engine state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct LifecycleSaved {
    #[serde(default)]
    stale: Vec<StaleInstance>,
    #[serde(default)]
    returns: Vec<SiteReturn>,
}

#[derive(Default)]
pub(super) struct LifecycleRt {
    stale: Vec<StaleInstance>,
    returns: Vec<SiteReturn>,
}

impl Engine {
    pub(super) fn lifecycle_saved(&self) -> LifecycleSaved {
        LifecycleSaved {
            stale: self.lifecycle.stale.clone(),
            returns: self.lifecycle.returns.clone(),
        }
    }

    pub(super) fn restore_lifecycle(&mut self, saved: LifecycleSaved) {
        self.lifecycle = LifecycleRt {
            stale: saved.stale,
            returns: saved.returns,
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

    /// `SiteUp(site)`: the site lost in a disaster returns as it was then.
    pub(super) fn site_up(&mut self, site: &str) -> Result<Outcome, EngineError> {
        if self.topology().site(site).is_none() {
            return Err(EngineError::Failover(format!("no site {site:?}")));
        }
        let Some(&lost_at) = self.sites_down.get(site) else {
            return Ok(Outcome::Refused(format!(
                "site {site} is not down: only a site lost in a disaster can return"
            )));
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
        let away: std::collections::BTreeMap<[u8; 16], usize> = self
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
