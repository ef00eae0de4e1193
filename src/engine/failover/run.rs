//! Running a failover: recovering images at the recovery site and powering VMs on.

use super::*;
use crate::engine::{SiteJournal, history};

/// The seq stamped in each block of `img` for `uuid` (0 where none): the guest's view.
pub(in crate::engine) fn stamps_of(
    img: &ImageFile,
    uuid: &disk::RawUuid,
) -> Result<Vec<u64>, EngineError> {
    let mut out = vec![0; img.block_count() as usize];
    let mut buf: Block = [0; BLOCK_SIZE];
    for (b, slot) in out.iter_mut().enumerate() {
        img.read_block_at(b as u64, &mut buf)
            .map_err(io_err_at(img.path()))?;
        if let BlockContent::Stamped(s) = disk::inspect(&buf)
            && &s.uuid == uuid
            && s.block == b as u64
        {
            *slot = s.seq;
        }
    }
    Ok(out)
}

/// Copies an instance directory's regular files (sparse images stay sparse where the
/// filesystem's copy allows).
pub(super) fn copy_instance(from: &Path, to: &Path) -> Result<(), EngineError> {
    std::fs::create_dir_all(to).map_err(io_err_at(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err_at(from))? {
        let entry = entry.map_err(io_err_at(from))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .map_err(io_err_at(&entry.path()))?;
        }
    }
    Ok(())
}

impl Engine {
    /// Elects, deletes the losers, verifies, registers and powers on (or, for a test,
    /// copies into an isolated area and verifies there). `reference` is when the
    /// protected copies stopped (for the achieved RPO); `point`, the point in time asked
    /// for (SPEC §11).
    pub(super) fn run_recovery(
        &mut self,
        id: u64,
        pgs: &[String],
        kind: FailoverKind,
        reference: SimTime,
        point: Option<SimTime>,
    ) -> Result<(), EngineError> {
        // A publish committed but not applied (an I/O error in mid-apply) is the replicas'
        // state: finish it before electing, as the next open would.
        let (protected, _) = self.pg_scope(pgs)?;
        for g in self.groups_in_scope(&protected).collect::<Vec<_>>() {
            if self.groups[g].transfer.is_none()
                && let Some(cycle) = self.finish_committed_publish(g)?
            {
                let group = self.groups[g].spec.id.clone();
                self.info(format!(
                    "Failover #{id}: the committed cycle {cycle} of {group} was applied to its replicas first"
                ));
            }
        }
        // An older point: a failover rolls the replicas back to it in place (their newer
        // points go); a test rebuilds each instance at the point in its isolated copy.
        let (chosen, problems) = self.points_at(&protected, point);
        if !problems.is_empty() {
            return Err(EngineError::Failover(problems.join("; ")));
        }
        let older: Vec<(usize, u64)> = self.older_than_latest(&chosen).collect();
        let mut at_point: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for &(g, cycle) in &older {
            let p = &chosen[&g];
            let group = self.groups[g].spec.id.clone();
            if kind == FailoverKind::Test {
                for pair in &self.groups[g].spec.pairs {
                    at_point.insert(pair.replica.clone(), (g, cycle));
                }
                continue;
            }
            self.roll_back(g, cycle)?;
            self.info(format!(
                "Failover #{id}: the replicas of {group} were rolled back to cycle {cycle}, cut at {}; its newer points are gone",
                format_time(p.cut_at)
            ));
        }
        let plan = self.scan_failover_at(pgs, kind, point)?;
        let (_, replicas) = self.pg_scope(pgs)?;
        let target = self
            .target_sites(&replicas)
            .into_iter()
            .next()
            .unwrap_or_else(|| "recovery".to_string());
        let test_dir = (kind == FailoverKind::Test).then(|| {
            PathBuf::from("sites")
                .join(&target)
                .join("test-failover")
                .join(format!("f-{id:04}"))
        });
        let mut journals: BTreeMap<String, SiteJournal> = BTreeMap::new();
        let mut results = Vec::new();
        let mut powered = 0;
        for pv in &plan.vms {
            let e = &pv.election;
            let mut res = VmResult {
                vm: e.vm.clone(),
                uuid: e.uuid.clone(),
                recovered: false,
                datastore: None,
                path: e.recover_from.clone(),
                host: pv.host.clone(),
                error: e.error.map(|x| x.as_str().to_string()),
                reason: pv.reason.clone(),
                consistent: None,
                writes_lost: None,
                achieved_rpo_minutes: None,
                deleted: Vec::new(),
                point_cut_at: pv.point_cut_at,
                powered_on_at: None,
            };
            let (Some(path), Some(vm_id)) = (&e.recover_from, &e.vm) else {
                if e.recover_from.is_some() {
                    res.error = Some("not-in-topology".into());
                    res.reason =
                        "an instance of a uuid the topology does not know: left on the replica"
                            .into();
                }
                self.push_log(
                    LogLevel::Error,
                    format!(
                        "Failover #{id}: {} not recovered: {} ({})",
                        e.vm.as_deref().unwrap_or(&e.uuid),
                        res.error.as_deref().unwrap_or("error"),
                        res.reason
                    ),
                );
                results.push(res);
                continue;
            };
            if kind != FailoverKind::Test && pv.host.is_none() {
                // Never powered on without a host (the failover refuses to start with a VM
                // unplaced; capacity can change while a planned one ships its final cycle).
                res.error = Some("no-host".into());
                res.reason =
                    "no recovery-site host has room for it: not recovered, nothing deleted".into();
                self.push_log(
                    LogLevel::Error,
                    format!("Failover #{id}: {vm_id} not recovered: {}", res.reason),
                );
                results.push(res);
                continue;
            }
            let cand = e
                .instances
                .iter()
                .find(|c| &c.path == path)
                .expect("winner listed");
            res.datastore = Some(cand.datastore.clone());
            let i = self.vm_index(vm_id).expect("topology VM");
            let from_site = self.vms[i].site.clone();
            let src_dir = self.ws.root().join(path);
            let dir = match &test_dir {
                Some(td) => {
                    let dst = self.ws.root().join(td).join(vm_id);
                    match at_point.get(&cand.datastore) {
                        Some(&(g, cycle)) => {
                            let instance = Path::new(path)
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            self.copy_at_point(g, cycle, &cand.datastore, &instance, &dst)?;
                        }
                        None => copy_instance(&src_dir, &dst)?,
                    }
                    dst
                }
                None => {
                    for d in &e.delete {
                        self.remove_instance_dir(&self.ws.root().join(d))?;
                        super::super::fault_point("failover.loser-deleted")?;
                        res.deleted.push(d.clone());
                    }
                    src_dir
                }
            };
            // Its whole history: every hop it made before, then its writes at the site it
            // leaves now.
            let hist = self.vms[i].history.clone();
            for site in hist.sites(&from_site) {
                if !journals.contains_key(site) {
                    let j = disk::read_journal(&self.ws.journal_path(site))?;
                    journals.insert(site.to_string(), SiteJournal::new(j));
                }
            }
            let uuid = self.vms[i].uuid;
            let journal = history(&journals, &from_site, &hist, &uuid);
            let img = ImageFile::open_read_only(&dir.join(crate::workspace::FIRST_DISK))?
                .without_readahead();
            let mut reader = img;
            let mut disks = [VmDisk {
                name: vm_id.clone(),
                uuid,
                reader: &mut reader,
            }];
            let check = disk::verify_set(&mut disks, &journal, Horizon::FromImages)
                .map_err(io_err(format!("verifying the recovered {vm_id}")))?;
            let v = check.vms.into_iter().next().expect("one disk");
            res.consistent = Some(v.consistent);
            res.writes_lost = Some(v.writes_lost);
            // Measured to when the protected copy stopped: the site's loss, if it was lost.
            let stopped = self
                .sites_down
                .get(&from_site)
                .copied()
                .unwrap_or(reference);
            res.achieved_rpo_minutes = pv
                .point_cut_at
                .map(|cut| stopped.saturating_sub(cut) as f64 / MINUTE as f64);
            res.recovered = true;
            if kind != FailoverKind::Test {
                let host = pv.host.clone().expect("checked above: a host is reserved");
                self.power_on_recovered(
                    i,
                    &cand.datastore,
                    &dir,
                    &host,
                    check.horizon_seq,
                    v.writes_lost,
                )?;
                powered += 1;
                res.powered_on_at = Some(self.now);
            }
            self.info(format!(
                "Failover #{id}: {vm_id} {} from {} ({}; {} write(s) lost{})",
                if kind == FailoverKind::Test {
                    "test-recovered"
                } else {
                    "recovered and powered on"
                },
                cand.datastore,
                if v.consistent {
                    "consistent"
                } else {
                    "NOT consistent"
                },
                v.writes_lost,
                res.achieved_rpo_minutes
                    .map(|m| format!(", achieved RPO {m:.1} min"))
                    .unwrap_or_default()
            ));
            results.push(res);
        }
        for pv in &plan.left_out {
            let e = &pv.election;
            let who = e.vm.clone().unwrap_or_else(|| e.uuid.clone());
            self.push_log(
                LogLevel::Warning,
                format!("Failover #{id}: {who} left out: {}", pv.reason),
            );
            results.push(VmResult {
                vm: e.vm.clone(),
                uuid: e.uuid.clone(),
                recovered: false,
                datastore: None,
                path: e.recover_from.clone(),
                host: None,
                error: Some("moved-out".into()),
                reason: pv.reason.clone(),
                consistent: None,
                writes_lost: None,
                achieved_rpo_minutes: None,
                deleted: Vec::new(),
                point_cut_at: pv.point_cut_at,
                powered_on_at: None,
            });
        }
        if kind != FailoverKind::Test {
            for g in self.groups_in_scope(&protected).collect::<Vec<_>>() {
                self.abandon_transfer(g, "failed over")?;
                self.groups[g].saved.failed_over = true;
                self.groups[g].saved.next_cut = None;
            }
        }
        let lost = results.iter().filter(|r| !r.recovered).count();
        let msg = format!(
            "{} failover #{id} of {}{}: {} recovered{}, {lost} not recovered",
            capitalized(kind.as_str()),
            pgs.join(", "),
            point
                .map(|t| format!(" to the points at or before {}", format_time(t)))
                .unwrap_or_default(),
            results.len() - lost,
            if kind == FailoverKind::Test {
                " into an isolated copy".to_string()
            } else {
                format!(" ({powered} powered on)")
            },
        );
        let level = if lost > 0 {
            LogLevel::Warning
        } else {
            LogLevel::Info
        };
        self.push_log(level, msg.clone());
        if let Some(r) = self.failovers.iter_mut().find(|r| r.id == id) {
            r.state = FailoverState::Done;
            r.finished_at = Some(self.now);
            r.message = msg;
            r.results = results;
            r.test_dir = test_dir.as_ref().map(|d| d.display().to_string());
        }
        if let Some(td) = test_dir {
            self.test_dir = Some(td);
        }
        self.persist_state()?;
        super::super::fault_point("failover.state-written")
    }

    /// Registers VM `i` on its recovery-site instance and starts its guest there.
    pub(in crate::engine) fn power_on_recovered(
        &mut self,
        i: usize,
        datastore: &str,
        dir: &Path,
        host: &str,
        horizon: u64,
        writes_lost: u64,
    ) -> Result<(), EngineError> {
        let site = self
            .topology()
            .datastore(datastore)
            .map(|d| d.site.clone())
            .unwrap_or_default();
        debug_assert!(
            self.topology().host(host).is_some_and(|h| h.site == site),
            "{} is powered on at {site} on host {host:?}, which is not a host of that site",
            self.vms[i].id
        );
        if let Some(m) = self.vms[i].migration.take() {
            // The protected site's migration is moot now.
            self.remove_record(&m.rec.id)?;
        }
        self.power_off(i);
        let image = ImageFile::open(&dir.join(crate::workspace::FIRST_DISK))?.without_readahead();
        let last_seq = stamps_of(&image, &self.vms[i].uuid)?;
        let instance = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.ensure_site_journal(&site)?;
        let from_site = self.vms[i].site.clone();
        // The hop it leaves ends at the images it arrives with; its writes here start now.
        let since = self.next_seq.saturating_sub(1);
        let hist = &mut self.vms[i].history;
        hist.hops.push(Hop {
            site: from_site.clone(),
            after: hist.since,
            horizon,
        });
        hist.since = since;
        hist.writes_lost += writes_lost;
        // Back on its own datastore (a failback): it is home, no longer a recovered VM,
        // and runs on the host it got (the topology follows, as a migration's does).
        let home = self
            .topology()
            .vm(&self.vms[i].id)
            .is_some_and(|v| v.datastore == datastore);
        if home {
            self.settle_home(i, datastore, &instance, host)?;
        }
        let vm = &mut self.vms[i];
        vm.site = site.clone();
        vm.datastore = datastore.to_string();
        vm.instance = instance.clone();
        vm.dir = dir.to_path_buf();
        vm.image = image;
        vm.host = host.to_string();
        vm.last_seq = last_seq;
        vm.down = false;
        vm.recovered = (!home).then(|| RecoveredVm {
            site,
            datastore: datastore.to_string(),
            instance,
            host: host.to_string(),
            from_site,
            horizon,
            at: self.now,
            writes_lost,
        });
        self.start_guest(i);
        super::super::fault_point("failover.powered-on")
    }

    /// A VM failed back onto its own datastore: the location metadata and the topology's
    /// host say where it runs, as after a migration.
    fn settle_home(
        &mut self,
        i: usize,
        datastore: &str,
        instance: &str,
        host: &str,
    ) -> Result<(), EngineError> {
        let id = self.vms[i].id.clone();
        let loc_path = self.ws.state_dir().join("locations.ron");
        let mut locations: super::super::Locations = read_ron(&loc_path).unwrap_or_default();
        locations.vms.insert(
            id.clone(),
            super::super::Location {
                datastore: datastore.to_string(),
                instance: instance.to_string(),
            },
        );
        super::super::write_ron(&loc_path, &locations)?;
        if self.topology().vm(&id).is_some_and(|v| v.host != host) {
            let mut topo = self.topology().clone();
            if let Some(v) = topo.vms.iter_mut().find(|v| v.id == id) {
                v.host = host.to_string();
            }
            self.ws.save_topology(&topo)?;
        }
        Ok(())
    }
}
