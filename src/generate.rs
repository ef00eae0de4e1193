//! Synthetic topologies for large-inventory work (`drconsole generate`): two sites, hosts
//! sized to hold the VMs (at both sites, so a failover of everything fits), arrays and
//! LUNs, and a realistic mix of datastores: replicated ones in consistency groups and
//! protection groups, standalone replicated ones with and without a protection group, and
//! non-replicated ones. Deterministic for a seed; the result always validates.
//!
//! VM disks are small (1 to 8 MiB): images are sparse, but a workspace still holds one
//! directory, one `vm.ron` and one open image per VM, so 10,000 VMs stay practical.

use crate::topology::{
    Array, Datastore, Host, Link, Lun, LunReplication, ProtectionGroup, Site, SiteRole, Topology,
    Vm, Workload,
};

/// The most VMs `generate` makes: beyond this a workspace would hold more open images
/// than a process may usually open, and the topology file alone runs into gigabytes.
pub const MAX_VMS: usize = 100_000;
/// The most protected-site datastores `generate` makes.
pub const MAX_DATASTORES: usize = 10_000;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// VMs, all at the protected site.
    pub vms: usize,
    /// Protected-site datastores (each replicated one also gets its replica datastore at
    /// the recovery site).
    pub datastores: usize,
    pub seed: u64,
}

/// Why the options cannot make a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("--vms {0}: at least 1 VM is needed")]
    NoVms(usize),
    #[error("--vms {0}: at most {MAX_VMS} VMs are allowed")]
    TooManyVms(usize),
    #[error("--datastores {0}: at least 1 datastore is needed to hold the VMs")]
    NoDatastores(usize),
    #[error("--datastores {0}: at most {MAX_DATASTORES} datastores are allowed")]
    TooManyDatastores(usize),
}

/// splitmix64: small, fast and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

const PROTECTED: &str = "pa";
const RECOVERY: &str = "ny";
/// LUNs per array before another array is added.
const LUNS_PER_ARRAY: usize = 128;
const HOST_CPUS: u32 = 96;
const HOST_MEMORY_GIB: u32 = 1024;

/// How a protected datastore is replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// In consistency group `cg` (index), which is in protection group `pg` if any.
    InCg {
        cg: usize,
        pg: Option<usize>,
    },
    /// Replicated on its own, in protection group `pg` if any.
    Standalone {
        pg: Option<usize>,
    },
    Local,
}

/// One protected datastore being planned: its id, kind, LUN count and RPO.
struct Planned {
    id: String,
    kind: Kind,
    luns: usize,
    rpo: u32,
    throughput: f64,
}

/// Makes the topology `opts` asks for.
pub fn generate(opts: GenerateOptions) -> Result<Topology, GenerateError> {
    check_options(&opts)?;
    let mut rng = Rng(opts.seed ^ 0x6472_636f_6e73_6f6c);
    let planned = plan_datastores(&mut rng, opts.datastores);
    let vms = plan_vms(&mut rng, opts.vms, &planned);
    let mut used_mib = vec![0u64; planned.len()];
    for (ds, vm) in &vms {
        used_mib[*ds] += vm.disk_mib;
    }
    let (arrays, datastores) = storage(&mut rng, &planned, &used_mib);
    let protection_groups = protection_groups(&planned);
    let hosts = hosts_for(&vms);
    let vms = place_vms(&mut rng, vms, &planned, &hosts, digits(opts.vms));

    Ok(Topology {
        name: format!(
            "Generated: {} VMs on {} datastores (seed {})",
            opts.vms, opts.datastores, opts.seed
        ),
        sites: vec![
            Site {
                id: PROTECTED.into(),
                name: "Palo Alto".into(),
                role: SiteRole::Protected,
            },
            Site {
                id: RECOVERY.into(),
                name: "New York".into(),
                role: SiteRole::Recovery,
            },
        ],
        links: vec![Link {
            from: PROTECTED.into(),
            to: RECOVERY.into(),
            mbps: 10_000.0,
        }],
        hosts,
        arrays,
        datastores,
        protection_groups,
        vms,
        datastore_clusters: Vec::new(),
    })
}

/// Refuses counts of VMs or datastores out of range.
fn check_options(opts: &GenerateOptions) -> Result<(), GenerateError> {
    if opts.vms == 0 {
        return Err(GenerateError::NoVms(opts.vms));
    }
    if opts.vms > MAX_VMS {
        return Err(GenerateError::TooManyVms(opts.vms));
    }
    if opts.datastores == 0 {
        return Err(GenerateError::NoDatastores(opts.datastores));
    }
    if opts.datastores > MAX_DATASTORES {
        return Err(GenerateError::TooManyDatastores(opts.datastores));
    }
    Ok(())
}

/// LUNs, arrays and datastores for the planned datastores (`used_mib`: their VMs' disks),
/// the replicas' after the protected site's. A datastore's LUNs hold at least twice its
/// VMs' disks.
fn storage(rng: &mut Rng, planned: &[Planned], used_mib: &[u64]) -> (Vec<Array>, Vec<Datastore>) {
    let mut pa_luns: Vec<Lun> = Vec::new();
    let mut ny_luns: Vec<Lun> = Vec::new();
    let mut datastores: Vec<Datastore> = Vec::new();
    let mut replicas: Vec<Datastore> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let need_gib = (used_mib[i] * 2).div_ceil(1024 * p.luns as u64);
        let mut ids = Vec::new();
        let mut targets = Vec::new();
        for k in 0..p.luns {
            let capacity_gib = rng.pick(&[256u64, 512, 1024, 2048]).max(need_gib);
            let id = format!("lun-{}-{k}", &p.id[3..]);
            let replication = lun_replication(p, &id);
            if let Some(r) = &replication {
                ny_luns.push(Lun {
                    id: r.target.clone(),
                    capacity_gib,
                    replication: None,
                });
                targets.push(r.target.clone());
            }
            pa_luns.push(Lun {
                id: id.clone(),
                capacity_gib,
                replication,
            });
            ids.push(id);
        }
        datastores.push(Datastore {
            id: p.id.clone(),
            site: PROTECTED.into(),
            luns: ids,
            throughput_mib_s: p.throughput,
            distributed: None,
        });
        if !targets.is_empty() {
            replicas.push(Datastore {
                id: format!("{}-r", p.id),
                site: RECOVERY.into(),
                luns: targets,
                throughput_mib_s: p.throughput,
                distributed: None,
            });
        }
    }
    datastores.extend(replicas);
    let mut arrays = arrays_of(PROTECTED, pa_luns);
    arrays.extend(arrays_of(RECOVERY, ny_luns));
    (arrays, datastores)
}

/// The replication of LUN `id` of datastore `p`: none for a local one, else to `<id>r`.
fn lun_replication(p: &Planned, id: &str) -> Option<LunReplication> {
    match p.kind {
        Kind::Local => None,
        Kind::InCg { cg, .. } => Some(LunReplication {
            target: format!("{id}r"),
            rpo_minutes: p.rpo,
            consistency_group: Some(cg_id(cg)),
            retain_points: 1,
        }),
        Kind::Standalone { .. } => Some(LunReplication {
            target: format!("{id}r"),
            rpo_minutes: p.rpo,
            consistency_group: None,
            retain_points: 1,
        }),
    }
}

/// One protection group per tier a planned datastore is in (none left empty).
fn protection_groups(planned: &[Planned]) -> Vec<ProtectionGroup> {
    let pg_count = planned
        .iter()
        .filter_map(|p| match p.kind {
            Kind::InCg { pg, .. } | Kind::Standalone { pg } => pg,
            Kind::Local => None,
        })
        .max()
        .map_or(0, |m| m + 1);
    (0..pg_count)
        .map(|g| ProtectionGroup {
            id: pg_id(g),
            name: format!("Tier {} ({})", g + 1, TIER_NAMES[g % TIER_NAMES.len()]),
            datastores: planned
                .iter()
                .filter(|p| {
                    matches!(p.kind, Kind::InCg { pg: Some(x), .. } | Kind::Standalone { pg: Some(x) } if x == g)
                })
                .map(|p| p.id.clone())
                .collect(),
        })
        .filter(|pg| !pg.datastores.is_empty())
        .collect()
}

/// Hosts: enough at each site for every VM (the recovery site must take them all in a
/// failover), with a fifth to spare; the protected site's first, then as many at recovery.
fn hosts_for(vms: &[(usize, Vm)]) -> Vec<Host> {
    let vcpus: u64 = vms.iter().map(|(_, v)| u64::from(v.vcpus)).sum();
    let memory: u64 = vms.iter().map(|(_, v)| u64::from(v.memory_gib)).sum();
    let per_host =
        (vcpus.div_ceil(u64::from(HOST_CPUS))).max(memory.div_ceil(u64::from(HOST_MEMORY_GIB)));
    let host_count = (per_host + per_host / 5 + 1) as usize;
    let host = |site: &str, n: usize| Host {
        id: format!("esx-{site}-{:0w$}", n + 1, w = digits(host_count)),
        site: site.into(),
        cpus: HOST_CPUS,
        memory_gib: HOST_MEMORY_GIB,
    };
    let mut hosts: Vec<Host> = (0..host_count).map(|n| host(PROTECTED, n)).collect();
    hosts.extend((0..host_count).map(|n| host(RECOVERY, n)));
    hosts
}

/// Names the VMs (`width` digits) and places each on its datastore and a protected-site
/// host with room.
fn place_vms(
    rng: &mut Rng,
    vms: Vec<(usize, Vm)>,
    planned: &[Planned],
    hosts: &[Host],
    width: usize,
) -> Vec<Vm> {
    let host_count = hosts.len() / 2;
    let mut free: Vec<(u32, u32)> = vec![(HOST_CPUS, HOST_MEMORY_GIB); host_count];
    vms.into_iter()
        .enumerate()
        .map(|(n, (ds, mut vm))| {
            // A random host with room, else the next one with room (there is always one:
            // the hosts hold a fifth more than all VMs, and no VM is bigger than a host).
            let start = rng.below(host_count);
            let h = (0..host_count)
                .map(|k| (start + k) % host_count)
                .find(|&h| free[h].0 >= vm.vcpus && free[h].1 >= vm.memory_gib)
                .unwrap_or(start);
            free[h].0 = free[h].0.saturating_sub(vm.vcpus);
            free[h].1 = free[h].1.saturating_sub(vm.memory_gib);
            vm.id = format!("{}-{:0width$}", vm.id, n + 1);
            vm.host = hosts[h].id.clone();
            vm.datastore = planned[ds].id.clone();
            vm
        })
        .collect()
}

const TIER_NAMES: [&str; 4] = [
    "customer facing",
    "back office",
    "analytics",
    "internal tools",
];

fn cg_id(cg: usize) -> String {
    format!("cg-{:03}", cg + 1)
}

fn pg_id(pg: usize) -> String {
    format!("pg-tier{}", pg + 1)
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len().max(2)
}

/// The protected datastores: a fifth not replicated, a quarter of the rest replicated on
/// their own, the others in consistency groups of 1 to 4 datastores. Most CGs and half the
/// standalone ones are in a protection group (about four CGs per PG).
fn plan_datastores(rng: &mut Rng, n: usize) -> Vec<Planned> {
    let locals = if n >= 2 { (n / 5).max(1) } else { 0 };
    let standalone = (n - locals) / 4;
    let in_cgs = n - locals - standalone;
    let width = digits(n);
    let mut out = Vec::with_capacity(n);
    let mut made = 0;
    let mut cg = 0;
    let mut pg = 0;
    let mut cgs_in_pg = 0;
    while made < in_cgs {
        let size = (1 + rng.below(4)).min(in_cgs - made);
        let rpo = rng.pick(&[5, 15, 15, 30, 60]);
        // One CG in six is replicated but not protected.
        let in_pg = (!rng.chance(17)).then_some(pg);
        if in_pg.is_some() {
            cgs_in_pg += 1;
            if cgs_in_pg == 4 {
                cgs_in_pg = 0;
                pg += 1;
            }
        }
        for _ in 0..size {
            made += 1;
            out.push(Planned {
                id: format!("ds-gold-{made:0width$}"),
                kind: Kind::InCg { cg, pg: in_pg },
                luns: 1 + usize::from(rng.chance(30)),
                rpo,
                throughput: rng.pick(&[300.0, 400.0, 500.0, 600.0]),
            });
        }
        cg += 1;
    }
    let pgs = if cgs_in_pg > 0 { pg + 1 } else { pg };
    for k in 0..standalone {
        out.push(Planned {
            id: format!("ds-bronze-{:0width$}", k + 1),
            kind: Kind::Standalone {
                pg: (k % 2 == 0 && pgs > 0).then(|| rng.below(pgs)),
            },
            luns: 1,
            rpo: rng.pick(&[60, 120]),
            throughput: rng.pick(&[150.0, 200.0, 250.0]),
        });
    }
    for k in 0..locals {
        out.push(Planned {
            id: format!("ds-local-{:0width$}", k + 1),
            kind: Kind::Local,
            luns: 1,
            rpo: 0,
            throughput: rng.pick(&[200.0, 300.0]),
        });
    }
    out
}

/// Each VM with the index of its datastore; `id` holds its role (the number is added
/// later), `host` and `datastore` are filled in later.
fn plan_vms(rng: &mut Rng, n: usize, datastores: &[Planned]) -> Vec<(usize, Vm)> {
    const ROLES: [(&str, u32, u32, u8); 8] = [
        // (role, vcpus, memory GiB, priority)
        ("web", 2, 8, 2),
        ("app", 4, 16, 2),
        ("db", 8, 64, 1),
        ("cache", 2, 16, 3),
        ("batch", 4, 8, 4),
        ("mail", 2, 8, 3),
        ("build", 8, 16, 4),
        ("log", 1, 4, 5),
    ];
    (0..n)
        .map(|_| {
            let (role, vcpus, memory_gib, priority) = rng.pick(&ROLES);
            // A quarter idle; the others write a little and read more.
            let workload = (!rng.chance(25)).then(|| {
                let w = 1 + rng.below(10) as u32;
                Workload {
                    write_iops: w,
                    read_iops: w * (1 + rng.below(3) as u32),
                }
            });
            let vm = Vm {
                id: role.into(),
                uuid: rng.uuid(),
                host: String::new(),
                datastore: String::new(),
                disk_mib: rng.pick(&[1, 2, 2, 4, 4, 8]),
                vcpus,
                memory_gib,
                priority,
                workload,
            };
            (rng.below(datastores.len()), vm)
        })
        .collect()
}

/// Arrays of `site` holding `luns`, at most [`LUNS_PER_ARRAY`] each.
fn arrays_of(site: &str, luns: Vec<Lun>) -> Vec<Array> {
    let count = luns.len().div_ceil(LUNS_PER_ARRAY);
    let mut arrays: Vec<Array> = (0..count)
        .map(|k| Array {
            id: format!("array-{site}-{:0w$}", k + 1, w = digits(count)),
            site: site.into(),
            luns: Vec::new(),
            swap_back: None,
        })
        .collect();
    for (i, lun) in luns.into_iter().enumerate() {
        arrays[i / LUNS_PER_ARRAY].luns.push(lun);
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dr;

    fn make(vms: usize, datastores: usize, seed: u64) -> Topology {
        generate(GenerateOptions {
            vms,
            datastores,
            seed,
        })
        .unwrap()
    }

    #[test]
    fn generated_topologies_validate() {
        for (vms, ds, seed) in [
            (1, 1, 0),
            (5, 2, 1),
            (10, 3, 2),
            (100, 7, 3),
            (500, 20, 4),
            (2_000, 60, 5),
            (10_000, 200, 1),
        ] {
            let t = make(vms, ds, seed);
            if let Err(v) = t.validate() {
                panic!(
                    "{vms} VMs, {ds} datastores, seed {seed}: {:?}",
                    &v[..v.len().min(5)]
                );
            }
            // What is written is what is read back.
            let back = Topology::from_ron_str(&t.to_ron_string(), "generated").unwrap();
            assert_eq!(back, t);
            assert_eq!(t.vms.len(), vms);
            let protected: Vec<_> = t
                .datastores
                .iter()
                .filter(|d| t.is_protected_datastore(d))
                .collect();
            assert_eq!(protected.len(), ds);
            // Every datastore holds its VMs' disks.
            for d in &protected {
                let cap: u64 = t.datastore_luns(d).map(|l| l.capacity_gib * 1024).sum();
                let used: u64 = t
                    .vms
                    .iter()
                    .filter(|v| v.datastore == d.id)
                    .map(|v| v.disk_mib)
                    .sum();
                assert!(used <= cap, "{}: {used} MiB on {cap} MiB", d.id);
            }
            // Hosts at either site hold every VM.
            for site in ["pa", "ny"] {
                let cpus: u64 = t
                    .hosts
                    .iter()
                    .filter(|h| h.site == site)
                    .map(|h| u64::from(h.cpus))
                    .sum();
                let vcpus: u64 = t.vms.iter().map(|v| u64::from(v.vcpus)).sum();
                assert!(vcpus <= cpus, "{site}: {vcpus} vCPUs on {cpus} CPUs");
            }
            for h in t.hosts.iter().filter(|h| h.site == "pa") {
                let on: Vec<_> = t.vms.iter().filter(|v| v.host == h.id).collect();
                assert!(
                    on.iter().map(|v| v.vcpus).sum::<u32>() <= h.cpus,
                    "{}",
                    h.id
                );
                assert!(
                    on.iter().map(|v| v.memory_gib).sum::<u32>() <= h.memory_gib,
                    "{}",
                    h.id
                );
            }
        }
    }

    #[test]
    fn the_mix_has_every_kind_of_datastore() {
        let t = make(2_000, 60, 9);
        let tags = dr::discover_tags(&t);
        let protected = |d: &str| t.datastore(d).is_some_and(|d| t.is_protected_datastore(d));
        let p: Vec<_> = tags.iter().filter(|x| protected(&x.datastore)).collect();
        assert!(p.iter().any(|x| !x.replicated), "some not replicated");
        assert!(
            p.iter().any(|x| x.replicated
                && x.consistency_group.is_none()
                && x.protection_group.is_none()),
            "some replicated outside any CG and PG"
        );
        assert!(
            p.iter()
                .any(|x| x.consistency_group.is_none() && x.protection_group.is_some()),
            "some standalone in a PG"
        );
        let cgs: std::collections::BTreeSet<_> = p
            .iter()
            .filter_map(|x| x.consistency_group.as_deref())
            .collect();
        assert!(cgs.len() >= 5, "several CGs: {}", cgs.len());
        assert!(t.protection_groups.len() >= 3, "several PGs");
        // Some CG spans more than one datastore.
        assert!(cgs.iter().any(|cg| {
            p.iter()
                .filter(|x| x.consistency_group.as_deref() == Some(cg))
                .count()
                > 1
        }));
        assert!(t.vms.iter().any(|v| v.workload.is_none()));
        assert!(t.vms.iter().any(|v| v.workload.is_some()));
        assert!(t.vms.iter().all(|v| v.disk_mib <= 8), "small disks");
    }

    #[test]
    fn the_same_seed_gives_the_same_topology() {
        assert_eq!(make(300, 12, 42), make(300, 12, 42));
        assert_eq!(
            make(300, 12, 42).to_ron_string(),
            make(300, 12, 42).to_ron_string()
        );
        assert_ne!(make(300, 12, 42), make(300, 12, 43));
    }

    #[test]
    fn bad_sizes_are_refused() {
        let g = |vms, datastores| {
            generate(GenerateOptions {
                vms,
                datastores,
                seed: 1,
            })
        };
        assert_eq!(g(10, 0), Err(GenerateError::NoDatastores(0)));
        assert_eq!(g(0, 5), Err(GenerateError::NoVms(0)));
        assert_eq!(
            g(MAX_VMS + 1, 5),
            Err(GenerateError::TooManyVms(MAX_VMS + 1))
        );
        assert_eq!(
            g(10, MAX_DATASTORES + 1),
            Err(GenerateError::TooManyDatastores(MAX_DATASTORES + 1))
        );
        assert!(
            g(10, 0)
                .unwrap_err()
                .to_string()
                .contains("at least 1 datastore")
        );
    }
}
