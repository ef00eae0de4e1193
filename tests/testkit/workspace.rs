//! Workspaces the engine and CLI tests start from.

use std::path::{Path, PathBuf};

use drconsole::engine::{Command, Engine, EngineOptions, from_minutes};
use drconsole::topology::Topology;

/// One protected site, nothing replicated: two VMs with busy guests (200 write IOPS each)
/// on ds-1 and an empty ds-2 (`ds2_fields`: more of its fields, e.g.
/// `, throughput_mib_s: 0.25`); the topology is named `name` and read as file `file`.
pub fn two_busy_vms(name: &str, file: &str, ds2_fields: &str) -> Topology {
    let text = format!(
        r#"Topology(name: "{name}", sites: [Site(id: "pa", name: "P", role: Protected)],
    hosts: [Host(id: "h", site: "pa", cpus: 4, memory_gib: 8)],
    arrays: [Array(id: "a", site: "pa", luns: [Lun(id: "l1", capacity_gib: 4), Lun(id: "l2", capacity_gib: 4)])],
    datastores: [Datastore(id: "ds-1", site: "pa", luns: ["l1"]),
                 Datastore(id: "ds-2", site: "pa", luns: ["l2"]{ds2_fields})],
    vms: [
        Vm(id: "vm-a", uuid: "0f0e0d0c-0b0a-4908-8706-050403020100", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 1, memory_gib: 1, priority: 1,
           workload: Some(Workload(write_iops: 200, read_iops: 0))),
        Vm(id: "vm-b", uuid: "1f0e0d0c-0b0a-4908-8706-050403020100", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 1, memory_gib: 1, priority: 1,
           workload: Some(Workload(write_iops: 200, read_iops: 0))),
    ])"#
    );
    Topology::from_ron_str(&text, file).unwrap()
}

/// The engine of a new workspace `dir/ws` of `topo` (default options) after its guests
/// wrote for a few simulated seconds, and the workspace's path.
pub fn busy_engine(dir: &Path, topo: &Topology) -> (Engine, PathBuf) {
    let ws = dir.join("ws");
    let mut e = Engine::create(&ws, topo, EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(from_minutes(0.05)).unwrap();
    (e, ws)
}
