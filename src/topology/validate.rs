//! The rules of SPEC §1: every violation of a topology, in a stable order.

use super::*;

impl Topology {
    /// Checks every rule of SPEC §1; returns all violations found, in a stable order.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut v = Validator::default();
        v.check(self);
        if v.out.is_empty() { Ok(()) } else { Err(v.out) }
    }
}

#[derive(Default)]
struct Validator {
    out: Vec<Violation>,
}

impl Validator {
    fn err(&mut self, object: impl Into<String>, rule: impl Into<String>) {
        self.out.push(Violation {
            object: object.into(),
            rule: rule.into(),
        });
    }

    fn ids<'a>(&mut self, kind: &str, ids: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        for id in ids {
            if let Some(p) = id_problem(id) {
                self.err(format!("{kind} {}", shown_id(id)), p);
            }
            if !seen.insert(id) {
                self.err(
                    format!("{kind} {}", shown_id(id)),
                    format!("{kind} ids must be unique; {id:?} is used twice"),
                );
            }
        }
        seen
    }

    fn check(&mut self, t: &Topology) {
        if t.name.trim().is_empty() {
            self.err("topology", "the topology needs a non-empty name");
        }
        let sites = self.ids("site", t.sites.iter().map(|s| s.id.as_str()));
        self.ids("host", t.hosts.iter().map(|h| h.id.as_str()));
        self.ids("array", t.arrays.iter().map(|a| a.id.as_str()));
        let luns = self.ids(
            "LUN",
            t.arrays
                .iter()
                .flat_map(|a| a.luns.iter().map(|l| l.id.as_str())),
        );
        let datastores = self.ids("datastore", t.datastores.iter().map(|d| d.id.as_str()));
        self.ids(
            "protection group",
            t.protection_groups.iter().map(|p| p.id.as_str()),
        );
        self.ids("VM", t.vms.iter().map(|v| v.id.as_str()));
        if t.sites.is_empty() {
            self.err("topology", "a topology needs at least one site");
        }

        self.check_links(t, &sites);
        self.check_hosts(t, &sites);
        self.check_arrays(t, &sites, &luns);
        self.check_datastores(t, &sites, &luns);
        self.check_consistency_groups(t);
        self.check_protection_groups(t, &datastores);
        self.check_clusters(t, &datastores);
        self.check_vms(t);
    }

    fn check_hosts(&mut self, t: &Topology, sites: &BTreeSet<&str>) {
        for h in &t.hosts {
            let obj = format!("host {:?}", h.id);
            if !sites.contains(h.site.as_str()) {
                self.err(&obj, format!("site {:?} does not exist", h.site));
            }
            if h.cpus == 0 || h.memory_gib == 0 {
                self.err(&obj, "a host needs at least 1 cpu and 1 GiB of memory");
            }
        }
    }

    /// Every VM's uuid, host, datastore, priority and size; then that no two share a uuid.
    fn check_vms(&mut self, t: &Topology) {
        let role = |site: &str| t.site_role(site);
        for vm in &t.vms {
            let obj = format!("VM {:?}", vm.id);
            if uuid::Uuid::parse_str(&vm.uuid).is_err() || vm.uuid.len() != 36 {
                self.err(
                    &obj,
                    format!(
                        "uuid {:?} is not a standard UUID (8-4-4-4-12 hex digits)",
                        vm.uuid
                    ),
                );
            }
            match t.host(&vm.host) {
                None => self.err(&obj, format!("host {:?} does not exist", vm.host)),
                Some(h) if role(&h.site) != Some(SiteRole::Protected) => self.err(
                    &obj,
                    format!(
                        "VMs live on protected-site hosts; host {:?} is at site {:?}, which is not protected",
                        h.id, h.site
                    ),
                ),
                _ => {}
            }
            match t.datastore(&vm.datastore) {
                None => self.err(&obj, format!("datastore {:?} does not exist", vm.datastore)),
                Some(d) => {
                    if role(&d.site) != Some(SiteRole::Protected) {
                        self.err(
                            &obj,
                            format!(
                                "VMs live on protected-site datastores; datastore {:?} is at site {:?}, which is not protected",
                                d.id, d.site
                            ),
                        );
                    } else if let Some(h) = t.host(&vm.host)
                        && h.site != d.site
                    {
                        self.err(
                            &obj,
                            format!(
                                "host {:?} (site {:?}) and datastore {:?} (site {:?}) must be at the same site",
                                h.id, h.site, d.id, d.site
                            ),
                        );
                    }
                }
            }
            if !(1..=5).contains(&vm.priority) {
                self.err(&obj, format!("priority must be 1..=5, not {}", vm.priority));
            }
            if vm.disk_mib < 1 {
                self.err(&obj, "disk_mib must be at least 1");
            }
            if vm.disk_mib > MAX_DISK_MIB {
                self.err(
                    &obj,
                    format!(
                        "disk_mib must be at most {MAX_DISK_MIB} (16 TiB), not {}",
                        vm.disk_mib
                    ),
                );
            }
            if vm.vcpus == 0 || vm.memory_gib == 0 {
                self.err(&obj, "a VM needs at least 1 vcpu and 1 GiB of memory");
            }
        }
        let mut uuids = BTreeMap::new();
        for vm in &t.vms {
            if let Some(other) = uuids.insert(vm.uuid.to_ascii_lowercase(), &vm.id) {
                self.err(
                    format!("VM {:?}", vm.id),
                    format!(
                        "uuid {} is also the uuid of VM {other:?}; uuids must be unique",
                        vm.uuid
                    ),
                );
            }
        }
    }

    fn check_links(&mut self, t: &Topology, sites: &BTreeSet<&str>) {
        for l in &t.links {
            let obj = format!("link {:?} -> {:?}", l.from, l.to);
            for end in [&l.from, &l.to] {
                if !sites.contains(end.as_str()) {
                    self.err(&obj, format!("site {end:?} does not exist"));
                }
            }
            if l.from == l.to {
                self.err(&obj, "a link joins two different sites");
            }
            if !(l.mbps.is_finite() && l.mbps > 0.0) {
                self.err(
                    &obj,
                    format!("mbps must be a positive number, not {}", l.mbps),
                );
            }
        }
    }

    fn check_arrays(&mut self, t: &Topology, sites: &BTreeSet<&str>, luns: &BTreeSet<&str>) {
        let mut targeted: BTreeMap<&str, &str> = BTreeMap::new();
        for a in &t.arrays {
            if !sites.contains(a.site.as_str()) {
                self.err(
                    format!("array {:?}", a.id),
                    format!("site {:?} does not exist", a.site),
                );
            }
            if let Some(sb) = &a.swap_back {
                self.check_swap_back(a, sb);
            }
            for l in &a.luns {
                let obj = format!("LUN {:?} on array {:?}", l.id, a.id);
                if l.capacity_gib == 0 {
                    self.err(&obj, "capacity_gib must be at least 1");
                }
                if l.capacity_gib > MAX_CAPACITY_GIB {
                    self.err(
                        &obj,
                        format!(
                            "capacity_gib must be at most {MAX_CAPACITY_GIB} (1 EiB), not {}",
                            l.capacity_gib
                        ),
                    );
                }
                let Some(r) = &l.replication else { continue };
                if r.rpo_minutes == 0 {
                    self.err(&obj, "rpo_minutes must be at least 1");
                }
                if !(1..=crate::topology::MAX_RETAIN_POINTS).contains(&r.retain_points) {
                    self.err(
                        &obj,
                        format!(
                            "retain_points must be 1 to {}, not {}",
                            crate::topology::MAX_RETAIN_POINTS,
                            r.retain_points
                        ),
                    );
                }
                if let Some(cg) = &r.consistency_group
                    && let Some(p) = id_problem(cg)
                {
                    self.err(&obj, format!("consistency group: {p}"));
                }
                if !luns.contains(r.target.as_str()) {
                    self.err(
                        &obj,
                        format!("replication target LUN {:?} does not exist", r.target),
                    );
                    continue;
                }
                if r.target == l.id {
                    self.err(&obj, "a LUN cannot replicate to itself");
                    continue;
                }
                let (tarr, _) = t.lun(&r.target).expect("target resolved above");
                if t.site_role(&tarr.site) != Some(SiteRole::Recovery) {
                    self.err(
                        &obj,
                        format!(
                            "replication target LUN {:?} is on array {:?} at site {:?}; a target must be at a recovery site",
                            r.target, tarr.id, tarr.site
                        ),
                    );
                }
                if let Some(prev) = targeted.insert(&r.target, &l.id) {
                    self.err(
                        &obj,
                        format!(
                            "replication target LUN {:?} is already the target of LUN {prev:?}; a LUN is targeted once",
                            r.target
                        ),
                    );
                }
            }
        }
    }

    fn check_datastores(&mut self, t: &Topology, sites: &BTreeSet<&str>, luns: &BTreeSet<&str>) {
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for d in &t.datastores {
            let obj = format!("datastore {:?}", d.id);
            if !sites.contains(d.site.as_str()) {
                self.err(&obj, format!("site {:?} does not exist", d.site));
            }
            if d.luns.is_empty() {
                self.err(&obj, "a datastore is backed by at least one LUN");
            }
            if !(d.throughput_mib_s.is_finite() && d.throughput_mib_s > 0.0) {
                self.err(
                    &obj,
                    format!(
                        "throughput_mib_s must be a positive number, not {}",
                        d.throughput_mib_s
                    ),
                );
            }
            let mut rpos = BTreeSet::new();
            let mut points = BTreeSet::new();
            for lun_id in &d.luns {
                if !luns.contains(lun_id.as_str()) {
                    self.err(&obj, format!("LUN {lun_id:?} does not exist"));
                    continue;
                }
                if let Some(prev) = owner.insert(lun_id, &d.id) {
                    self.err(
                        &obj,
                        format!(
                            "LUN {lun_id:?} already backs datastore {prev:?}; a LUN belongs to one datastore at most"
                        ),
                    );
                }
                let (arr, lun) = t.lun(lun_id).expect("resolved above");
                if arr.site != d.site {
                    self.err(
                        &obj,
                        format!(
                            "LUN {lun_id:?} is on array {:?} at site {:?}; a datastore's LUNs must be on arrays of its own site {:?}",
                            arr.id, arr.site, d.site
                        ),
                    );
                }
                if let Some(r) = &lun.replication {
                    rpos.insert(r.rpo_minutes);
                    points.insert(r.retain_points);
                }
            }
            if rpos.len() > 1 {
                self.err(
                    &obj,
                    format!(
                        "all replicated LUNs of one datastore must have the same rpo_minutes; found {}",
                        join(rpos.iter())
                    ),
                );
            }
            if points.len() > 1 {
                self.err(
                    &obj,
                    format!(
                        "all replicated LUNs of one datastore must keep the same retain_points; found {}",
                        join(points.iter())
                    ),
                );
            }
            if let Some(targets) = t.replication_targets(d)
                && t.is_protected_datastore(d)
            {
                let n = t.replica_candidates(d).len();
                if n != 1 {
                    let what = if n == 0 {
                        "none exists"
                    } else {
                        "several exist"
                    };
                    self.err(
                        &obj,
                        format!(
                            "a replicated datastore needs exactly one replica datastore at a recovery site whose LUNs are exactly its targets ({}); {what}",
                            join(targets.iter())
                        ),
                    );
                }
            }
            if let Some(dist) = &d.distributed {
                self.check_distributed(t, d, dist, sites, &mut owner);
            }
        }
    }

    /// An array's early swap-back: a positive latency threshold, a hold period, and
    /// replicated LUNs whose I/O can swap at all.
    fn check_swap_back(&mut self, a: &Array, sb: &SwapBack) {
        let obj = format!("array {:?}", a.id);
        if !(sb.latency_ms.is_finite()
            && sb.latency_ms > 0.0
            && sb.latency_ms <= MAX_SWAP_BACK_LATENCY_MS)
        {
            self.err(
                &obj,
                format!(
                    "swap_back latency_ms must be more than 0 and at most {MAX_SWAP_BACK_LATENCY_MS} (one minute), not {}",
                    sb.latency_ms
                ),
            );
        }
        self.seconds(&obj, "swap_back hold_s", sb.hold_s);
        if !a.luns.iter().any(|l| l.replication.is_some()) {
            self.err(
                &obj,
                "swap_back is set but the array holds no replicated LUN: no I/O swaps off it to a replica",
            );
        }
    }

    /// A delay in simulated seconds: 0 to [`MAX_DELAY_S`].
    fn seconds(&mut self, obj: &str, field: &str, v: f64) {
        if !(v.is_finite() && (0.0..=MAX_DELAY_S).contains(&v)) {
            self.err(
                obj,
                format!("{field} must be 0 to {MAX_DELAY_S} seconds (one hour), not {v}"),
            );
        }
    }

    /// A distributed datastore: its second leg is one LUN at another site, used by nothing
    /// else; it is not array-replicated (its legs are the copies).
    fn check_distributed<'a>(
        &mut self,
        t: &'a Topology,
        d: &'a Datastore,
        dist: &'a Distributed,
        sites: &BTreeSet<&str>,
        owner: &mut BTreeMap<&'a str, &'a str>,
    ) {
        let obj = format!("datastore {:?}", d.id);
        if !sites.contains(dist.remote_site.as_str()) {
            self.err(
                &obj,
                format!("remote site {:?} does not exist", dist.remote_site),
            );
        } else if dist.remote_site == d.site {
            self.err(
                &obj,
                format!(
                    "a distributed datastore's second leg must be at another site than its own ({:?})",
                    d.site
                ),
            );
        }
        match t.lun(&dist.remote_lun) {
            None => self.err(&obj, format!("LUN {:?} does not exist", dist.remote_lun)),
            Some((arr, lun)) => {
                if arr.site != dist.remote_site {
                    self.err(
                        &obj,
                        format!(
                            "remote LUN {:?} is on array {:?} at site {:?}; it must be at the remote site {:?}",
                            lun.id, arr.id, arr.site, dist.remote_site
                        ),
                    );
                }
                if lun.replication.is_some() {
                    self.err(
                        &obj,
                        format!(
                            "remote LUN {:?} is array-replicated; the legs of a distributed datastore are its copies",
                            lun.id
                        ),
                    );
                }
                if let Some(prev) = owner.insert(&dist.remote_lun, &d.id) {
                    self.err(
                        &obj,
                        format!(
                            "LUN {:?} already backs datastore {prev:?}; a LUN belongs to one datastore at most",
                            dist.remote_lun
                        ),
                    );
                }
            }
        }
        if t.datastore_luns(d).any(|l| l.replication.is_some()) {
            self.err(
                &obj,
                "a distributed datastore is not array-replicated: its two legs are the copies",
            );
        }
        if let Some(w) = &dist.witness
            && let Some(p) = id_problem(w)
        {
            self.err(&obj, format!("witness {}: {p}", shown_id(w)));
        }
        for (field, v) in [
            ("polarization_delay_s", dist.polarization_delay_s),
            ("unhealthy_delay_s", dist.unhealthy_delay_s),
        ] {
            let Some(v) = v else { continue };
            if dist.witness.is_none() {
                self.err(
                    &obj,
                    format!(
                        "{field} is set but the datastore has no witness: without one the preferred leg keeps serving at once, nobody is asked"
                    ),
                );
            }
            self.seconds(&obj, field, v);
        }
        if !dist.created
            && let Some(vm) = t.vms.iter().find(|v| v.datastore == d.id)
        {
            self.err(
                format!("VM {:?}", vm.id),
                format!(
                    "datastore {:?} is planned but not created yet (created: false); no VM may live on it",
                    d.id
                ),
            );
        }
    }

    fn check_clusters(&mut self, t: &Topology, datastores: &BTreeSet<&str>) {
        self.ids(
            "datastore cluster",
            t.datastore_clusters.iter().map(|c| c.id.as_str()),
        );
        let mut member: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &t.datastore_clusters {
            let obj = format!("datastore cluster {:?}", c.id);
            if c.datastores.is_empty() {
                self.err(&obj, "a datastore cluster lists at least one datastore");
            }
            let mut site = None;
            for ds in &c.datastores {
                if !datastores.contains(ds.as_str()) {
                    self.err(&obj, format!("datastore {ds:?} does not exist"));
                    continue;
                }
                if let Some(prev) = member.insert(ds, &c.id) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is already in cluster {prev:?}; a datastore is in one cluster at most"
                        ),
                    );
                }
                let d = t.datastore(ds).expect("resolved above");
                if !t.is_protected_datastore(d) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is at site {:?}; clusters hold protected-site datastores only",
                            d.site
                        ),
                    );
                }
                match site {
                    None => site = Some(d.site.as_str()),
                    Some(s) if s != d.site => self.err(
                        &obj,
                        format!(
                            "datastore {ds:?} is at site {:?}, the others at {s:?}; a cluster is at one site",
                            d.site
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }

    fn check_consistency_groups(&mut self, t: &Topology) {
        let mut cg_rpo: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
        // Every LUN of a CG keeps the same points: they are cut and recovered together.
        let mut cg_points: BTreeMap<&str, BTreeMap<u32, Vec<&str>>> = BTreeMap::new();
        for lun in t.arrays.iter().flat_map(|a| a.luns.iter()) {
            if let Some(r) = &lun.replication
                && let Some(cg) = &r.consistency_group
            {
                cg_rpo.entry(cg).or_default().insert(r.rpo_minutes);
                cg_points
                    .entry(cg)
                    .or_default()
                    .entry(r.retain_points)
                    .or_default()
                    .push(&lun.id);
            }
        }
        for (cg, by_n) in cg_points {
            if by_n.len() > 1 {
                self.err(
                    format!("consistency group {cg:?}"),
                    format!(
                        "all LUNs of one consistency group must keep the same retain_points; found {}",
                        by_n.iter()
                            .map(|(n, luns)| format!("{n} ({})", luns.join(", ")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        for (cg, rpos) in cg_rpo {
            if rpos.len() > 1 {
                self.err(
                    format!("consistency group {cg:?}"),
                    format!(
                        "all LUNs of one consistency group must have the same rpo_minutes; found {}",
                        join(rpos.iter())
                    ),
                );
            }
        }
    }

    fn check_protection_groups(&mut self, t: &Topology, datastores: &BTreeSet<&str>) {
        let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
        for pg in &t.protection_groups {
            let obj = format!("protection group {:?}", pg.id);
            for ds_id in &pg.datastores {
                if !datastores.contains(ds_id.as_str()) {
                    self.err(&obj, format!("datastore {ds_id:?} does not exist"));
                    continue;
                }
                if let Some(prev) = member_of.insert(ds_id, &pg.id) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is already in protection group {prev:?}; a datastore is in one protection group at most"
                        ),
                    );
                }
                let ds = t.datastore(ds_id).expect("resolved above");
                if !t.is_protected_datastore(ds) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is at site {:?}; a protection group lists only protected-site datastores",
                            ds.site
                        ),
                    );
                } else if !t.is_replicated(ds) {
                    self.err(
                        &obj,
                        format!(
                            "datastore {ds_id:?} is not replicated; a protection group lists only replicated datastores"
                        ),
                    );
                }
            }
        }
        // A CG's datastores are all in the same PG or all in none.
        let mut cg_members: BTreeMap<String, Vec<&Datastore>> = BTreeMap::new();
        for d in &t.datastores {
            if let Some(cg) = datastore_cg(t, d) {
                cg_members.entry(cg).or_default().push(d);
            }
        }
        for (cg, members) in cg_members {
            let pgs: BTreeSet<Option<&str>> = members
                .iter()
                .map(|d| member_of.get(d.id.as_str()).copied())
                .collect();
            if pgs.len() > 1 {
                let detail = members
                    .iter()
                    .map(|d| match member_of.get(d.id.as_str()) {
                        Some(pg) => format!("{} in {pg}", d.id),
                        None => format!("{} in none", d.id),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.err(
                    format!("consistency group {cg:?}"),
                    format!(
                        "a consistency group's datastores must all be in the same protection group or all in none; found {detail}"
                    ),
                );
            }
        }
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
