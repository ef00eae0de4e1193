//! The inventory tree: Sites → Hosts → VMs, Arrays → LUNs, Datastores → VMs and
//! Protection groups → Datastores, with a filter and keyboard navigation.
//!
//! Built for 10,000 VMs: [`Inventory`] is the tree as an arena of nodes (with lower-case
//! labels for the filter and the lookups the details panel needs), built once per topology.
//! [`TreeView`] flattens what is open and matches the filter into a row list, rebuilt only
//! when the topology, the filter or the open state changes, and only the rows in view are
//! laid out (`ScrollArea::show_rows`).

mod draw;
mod view;

pub use draw::inventory;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Selection;
use super::live::{Away, Whereabouts};
use super::style::glyph;
use crate::topology::{SiteRole, Topology, Vm};

/// The four top-level sections, in order.
const SECTIONS: [&str; 4] = ["Sites", "Arrays", "Datastores", "Protection groups"];

/// One node of the tree: its label, what clicking selects, its children.
struct Node {
    label: String,
    /// `label` in lower case, for the filter.
    lower: String,
    select: Selection,
    section: u8,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The topology as a tree, with the indexes the views need. Built once per topology.
pub struct Inventory {
    /// Unique per inventory built: views cache their rows against it.
    revision: u64,
    /// The topology's name: a view keeps its open state while only this name stays.
    name: String,
    nodes: Vec<Node>,
    /// The top-level nodes of each section.
    roots: [Vec<usize>; 4],
    /// VM id → index in `topology.vms`.
    vm_index: HashMap<String, usize>,
    /// Host id → indexes of its VMs in `topology.vms`.
    by_host: HashMap<String, Vec<usize>>,
    /// Datastore id → indexes of the VMs stored on it.
    by_datastore: HashMap<String, Vec<usize>>,
    vm_count: usize,
    /// Where the VMs are now where that differs from the topology (the engine's view when
    /// the inventory was built): lost sites, stopped VMs, failed-over VMs.
    at: Whereabouts,
    /// Recovery host → indexes of the VMs failed over onto it.
    recovered_on_host: HashMap<String, Vec<usize>>,
    /// Replica datastore → indexes of the VMs failed over onto it.
    recovered_on_datastore: HashMap<String, Vec<usize>>,
}

static REVISION: AtomicU64 = AtomicU64::new(1);

impl Inventory {
    /// The topology as placed, with nothing lost or moved.
    #[cfg(test)]
    pub fn new(t: &Topology) -> Inventory {
        Inventory::at(t, Whereabouts::default())
    }

    /// The topology with where things are now on top: a lost site marked lost, its
    /// stopped VMs marked not running, a failed-over VM marked so where it was and listed
    /// under the recovery host and replica datastore it runs from.
    pub fn at(t: &Topology, at: Whereabouts) -> Inventory {
        let mut by_host: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_datastore: HashMap<String, Vec<usize>> = HashMap::new();
        let mut vm_index = HashMap::with_capacity(t.vms.len());
        for (i, v) in t.vms.iter().enumerate() {
            vm_index.entry(v.id.clone()).or_insert(i);
            by_host.entry(v.host.clone()).or_default().push(i);
            by_datastore.entry(v.datastore.clone()).or_default().push(i);
        }
        let mut recovered_on_host: HashMap<String, Vec<usize>> = HashMap::new();
        let mut recovered_on_datastore: HashMap<String, Vec<usize>> = HashMap::new();
        for (id, away) in &at.away {
            if let (
                Away::Recovered {
                    host, datastore, ..
                },
                Some(&i),
            ) = (away, vm_index.get(id))
            {
                recovered_on_host.entry(host.clone()).or_default().push(i);
                recovered_on_datastore
                    .entry(datastore.clone())
                    .or_default()
                    .push(i);
            }
        }
        for v in recovered_on_host
            .values_mut()
            .chain(recovered_on_datastore.values_mut())
        {
            v.sort_unstable();
        }
        let mut inv = Inventory {
            revision: REVISION.fetch_add(1, Ordering::Relaxed),
            name: t.name.clone(),
            nodes: Vec::with_capacity(2 * t.vms.len() + t.hosts.len() + 64),
            roots: Default::default(),
            vm_index,
            by_host,
            by_datastore,
            vm_count: t.vms.len(),
            at,
            recovered_on_host,
            recovered_on_datastore,
        };
        inv.build(t);
        inv
    }

    fn add(
        &mut self,
        section: u8,
        parent: Option<usize>,
        label: String,
        select: Selection,
    ) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            lower: label.to_lowercase(),
            label,
            select,
            section,
            parent,
            children: Vec::new(),
        });
        match parent {
            Some(p) => self.nodes[p].children.push(i),
            None => self.roots[usize::from(section)].push(i),
        }
        i
    }

    /// The VMs placed under `parent` by the topology (marked if they are not running, or
    /// run elsewhere now), then those failed over onto it.
    fn add_vms(
        &mut self,
        section: u8,
        parent: usize,
        t: &Topology,
        vms: &[usize],
        recovered: &[usize],
    ) {
        for &v in vms {
            let id = &t.vms[v].id;
            let label = match self.at.away.get(id) {
                None => format!("{} {id}", glyph::VM),
                Some(Away::Down) => format!("{} {id} — not running", glyph::VM),
                Some(Away::Recovered {
                    host,
                    datastore,
                    moved,
                }) => {
                    let to = if section == 0 { host } else { datastore };
                    let how = if *moved {
                        "moved across to"
                    } else {
                        "failed over to"
                    };
                    format!("{} {id} — {how} {to}", glyph::VM)
                }
            };
            self.add(section, Some(parent), label, Selection::Vm(id.clone()));
        }
        for &v in recovered {
            let vm = &t.vms[v];
            let from = t.host(&vm.host).map_or("?", |h| h.site.as_str());
            let how = match self.at.away.get(&vm.id) {
                Some(Away::Recovered { moved: true, .. }) => "moved across from",
                _ => "recovered from",
            };
            self.add(
                section,
                Some(parent),
                format!("{} {} — {how} {from}", glyph::VM, vm.id),
                Selection::Vm(vm.id.clone()),
            );
        }
    }

    /// Is `site` lost (its objects are marked so)?
    fn lost(&self, site: &str) -> bool {
        self.at.lost_sites.contains(site)
    }

    fn build(&mut self, t: &Topology) {
        let none = Vec::new();
        let mut hosts_of: HashMap<&str, Vec<&crate::topology::Host>> = HashMap::new();
        for h in &t.hosts {
            hosts_of.entry(h.site.as_str()).or_default().push(h);
        }
        for s in &t.sites {
            let role = match s.role {
                SiteRole::Protected => "protected",
                SiteRole::Recovery => "recovery",
            };
            let lost = if self.lost(&s.id) { ", lost" } else { "" };
            let site = self.add(
                0,
                None,
                format!("{} {} — {} ({role}{lost})", glyph::SITE, s.id, s.name),
                Selection::Site(s.id.clone()),
            );
            for h in hosts_of.get(s.id.as_str()).map_or(&[][..], |v| &v[..]) {
                let lost = if self.lost(&s.id) { " (lost)" } else { "" };
                let host = self.add(
                    0,
                    Some(site),
                    format!("{} {}{lost}", glyph::HOST, h.id),
                    Selection::Host(h.id.clone()),
                );
                let vms = self.by_host.get(&h.id).unwrap_or(&none).clone();
                let recovered = self.recovered_on_host.get(&h.id).unwrap_or(&none).clone();
                self.add_vms(0, host, t, &vms, &recovered);
            }
        }
        for a in &t.arrays {
            let lost = if self.lost(&a.site) { ", lost" } else { "" };
            let array = self.add(
                1,
                None,
                format!("{} {} ({}{lost})", glyph::ARRAY, a.id, a.site),
                Selection::Array(a.id.clone()),
            );
            for l in &a.luns {
                self.add(
                    1,
                    Some(array),
                    format!("{} {}", glyph::LUN, l.id),
                    Selection::Lun(l.id.clone()),
                );
            }
        }
        for d in &t.datastores {
            let lost = if self.lost(&d.site) { ", lost" } else { "" };
            let ds = self.add(
                2,
                None,
                format!("{} {} ({}{lost})", glyph::DATASTORE, d.id, d.site),
                Selection::Datastore(d.id.clone()),
            );
            let vms = self.by_datastore.get(&d.id).unwrap_or(&none).clone();
            let recovered = (self.recovered_on_datastore.get(&d.id))
                .unwrap_or(&none)
                .clone();
            self.add_vms(2, ds, t, &vms, &recovered);
        }
        for p in &t.protection_groups {
            let pg = self.add(
                3,
                None,
                format!("{} {} — {}", glyph::PROTECTION_GROUP, p.id, p.name),
                Selection::ProtectionGroup(p.id.clone()),
            );
            for d in &p.datastores {
                self.add(
                    3,
                    Some(pg),
                    format!("{} {d}", glyph::DATASTORE),
                    Selection::Datastore(d.clone()),
                );
            }
        }
    }

    /// The VM with this id (by index, not by scanning every VM).
    pub fn vm<'t>(&self, t: &'t Topology, id: &str) -> Option<&'t Vm> {
        self.vm_index
            .get(id)
            .and_then(|&i| t.vms.get(i))
            .filter(|v| v.id == id)
    }

    /// Indexes (in `topology.vms`) of the VMs running on `host`.
    pub fn vms_on_host(&self, host: &str) -> &[usize] {
        self.by_host.get(host).map_or(&[], |v| &v[..])
    }

    /// Indexes (in `topology.vms`) of the VMs running on `host` now: those placed there
    /// that are not stopped or failed over, and those failed over onto it.
    pub fn vms_running_on_host(&self, t: &Topology, host: &str) -> Vec<usize> {
        let mut v: Vec<usize> = (self.vms_on_host(host).iter())
            .copied()
            .filter(|&i| !self.at.away.contains_key(&t.vms[i].id))
            .chain(
                self.recovered_on_host
                    .get(host)
                    .into_iter()
                    .flatten()
                    .copied(),
            )
            .collect();
        v.sort_unstable();
        v
    }

    /// Where things were when this inventory was built.
    pub fn whereabouts(&self) -> &Whereabouts {
        &self.at
    }

    /// Indexes (in `topology.vms`) of the VMs stored on `datastore`.
    pub fn vms_on_datastore(&self, datastore: &str) -> &[usize] {
        self.by_datastore.get(datastore).map_or(&[], |v| &v[..])
    }

    /// How many nodes the tree has, open or not.
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// A node's identity in the open state: its section and what it selects (unique within
/// a section: a VM is under one host and one datastore, a datastore in one PG).
type NodeKey = (u8, Selection);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// A section header, with how many top-level nodes it shows.
    Section {
        section: u8,
        count: usize,
    },
    Node(usize),
}

#[derive(Debug, Clone, Copy)]
struct Row {
    kind: RowKind,
    depth: u16,
    open: bool,
    has_children: bool,
}

/// What the tree asks of the console after a frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeOutput {
    /// A VM was double-clicked: open the migration wizard for it.
    pub open_wizard: Option<String>,
    /// A row was clicked, or Enter pressed on the selection: show its details.
    pub show_details: bool,
}

/// The tree as drawn: open state, filter, the flattened rows, the keyboard cursor.
pub struct TreeView {
    /// The inventory the rows were built for (0: none yet).
    revision: u64,
    name: String,
    /// The filter the rows were built for (trimmed, lower case).
    needle: String,
    /// Nodes are open by default (small inventories), else closed.
    default_open: bool,
    /// Nodes whose open state differs from `default_open`.
    toggled: HashSet<NodeKey>,
    /// Nodes closed while filtering (a filtered tree starts fully open).
    filter_closed: HashSet<NodeKey>,
    closed_sections: [bool; 4],
    rows: Vec<Row>,
    dirty: bool,
    /// The row the keyboard last moved to or a click picked.
    cursor: Option<usize>,
    /// The node of the cursor's row (to find it again when the rows are rebuilt).
    cursor_key: Option<NodeKey>,
    /// Scroll this row into view on the next frame.
    scroll_to: Option<usize>,
    /// The selection as the tree last saw it (to notice changes made elsewhere).
    seen_selection: Option<Selection>,
    /// The scroll offset and viewport height of the last frame.
    offset: f32,
    viewport: f32,
}

impl Default for TreeView {
    fn default() -> Self {
        TreeView {
            revision: 0,
            name: String::new(),
            needle: String::new(),
            default_open: true,
            toggled: HashSet::new(),
            filter_closed: HashSet::new(),
            closed_sections: [false; 4],
            rows: Vec::new(),
            dirty: true,
            cursor: None,
            cursor_key: None,
            scroll_to: None,
            seen_selection: None,
            offset: 0.0,
            viewport: 0.0,
        }
    }
}

/// Inventories with at most this many VMs start with every node open.
const OPEN_BY_DEFAULT_MAX_VMS: usize = 200;
/// Up to this many rows every row is laid out (the accessibility tree then lists the whole
/// inventory); beyond it only the rows in view.
const LAY_OUT_ALL_MAX_ROWS: usize = 200;
