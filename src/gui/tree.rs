//! The inventory tree: Sites → Hosts → VMs, Arrays → LUNs, Datastores → VMs and
//! Protection groups → Datastores, with a filter and keyboard navigation.
//!
//! Built for 10,000 VMs: [`Inventory`] is the tree as an arena of nodes (with lower-case
//! labels for the filter and the lookups the details panel needs), built once per topology.
//! [`TreeView`] flattens what is open and matches the filter into a row list, rebuilt only
//! when the topology, the filter or the open state changes, and only the rows in view are
//! laid out (`ScrollArea::show_rows`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use egui::{Key, RichText, Ui};

use super::live::{Away, Whereabouts};
use super::style::glyph;
use super::{Document, Selection};
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
            if let (Away::Recovered { host, datastore }, Some(&i)) = (away, vm_index.get(id)) {
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
                Some(Away::Recovered { host, datastore }) => {
                    let to = if section == 0 { host } else { datastore };
                    format!("{} {id} — failed over to {to}", glyph::VM)
                }
            };
            self.add(section, Some(parent), label, Selection::Vm(id.clone()));
        }
        for &v in recovered {
            let vm = &t.vms[v];
            let from = t.host(&vm.host).map_or("?", |h| h.site.as_str());
            self.add(
                section,
                Some(parent),
                format!("{} {} — recovered from {from}", glyph::VM, vm.id),
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

impl TreeView {
    /// Opens every node of every section.
    pub fn expand_all(&mut self) {
        self.default_open = true;
        self.toggled.clear();
        self.filter_closed.clear();
        self.closed_sections = [false; 4];
        self.dirty = true;
    }

    /// How many rows the tree shows (open and matching the filter), section headers
    /// included, as of the last frame.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    fn key(inv: &Inventory, n: usize) -> NodeKey {
        (inv.nodes[n].section, inv.nodes[n].select.clone())
    }

    fn is_open(&self, inv: &Inventory, n: usize) -> bool {
        let key = Self::key(inv, n);
        if self.needle.is_empty() {
            self.default_open != self.toggled.contains(&key)
        } else {
            !self.filter_closed.contains(&key)
        }
    }

    fn set_open(&mut self, inv: &Inventory, n: usize, open: bool) {
        let key = Self::key(inv, n);
        if self.needle.is_empty() {
            if open == self.default_open {
                self.toggled.remove(&key);
            } else {
                self.toggled.insert(key);
            }
        } else if open {
            self.filter_closed.remove(&key);
        } else {
            self.filter_closed.insert(key);
        }
        self.dirty = true;
    }

    /// Brings the rows up to date with the inventory and the filter.
    fn update(&mut self, inv: &Inventory, needle: &str) {
        if self.revision != inv.revision {
            if self.name != inv.name {
                // Another topology: start from its default.
                self.name = inv.name.clone();
                self.default_open = inv.vm_count <= OPEN_BY_DEFAULT_MAX_VMS;
                self.toggled.clear();
                self.closed_sections = [false; 4];
                self.offset = 0.0;
            }
            self.revision = inv.revision;
            self.dirty = true;
        }
        if self.needle != needle {
            self.needle = needle.to_string();
            self.filter_closed.clear();
            self.dirty = true;
        }
        if !self.dirty {
            return;
        }
        self.dirty = false;
        // The cursor's row moves with the rebuild: keep it on the same node (a VM shows
        // under its host and its datastore; the keys are unique within a section).
        let cursor_key = self.cursor.and(self.cursor_key.take());
        self.cursor = None;
        let keep = (!self.needle.is_empty()).then(|| matches(inv, &self.needle));
        let kept = |n: usize| keep.as_ref().is_none_or(|k| k[n]);
        let mut rows = Vec::new();
        for (s, roots) in inv.roots.iter().enumerate() {
            let count = roots.iter().filter(|&&n| kept(n)).count();
            if keep.is_some() && count == 0 {
                continue;
            }
            let open = keep.is_some() || !self.closed_sections[s];
            rows.push(Row {
                kind: RowKind::Section {
                    section: s as u8,
                    count,
                },
                depth: 0,
                open,
                has_children: count > 0,
            });
            if open {
                for &n in roots {
                    self.push_rows(inv, n, 1, &kept, &mut rows);
                }
            }
        }
        self.rows = rows;
        if let Some(key) = cursor_key {
            let r = self
                .rows
                .iter()
                .position(|r| matches!(r.kind, RowKind::Node(n) if Self::key(inv, n) == key));
            if let Some(r) = r {
                self.set_cursor(inv, r);
            }
        }
    }

    fn push_rows(
        &self,
        inv: &Inventory,
        n: usize,
        depth: u16,
        kept: &dyn Fn(usize) -> bool,
        rows: &mut Vec<Row>,
    ) {
        if !kept(n) {
            return;
        }
        let node = &inv.nodes[n];
        let has_children = node.children.iter().any(|&c| kept(c));
        let open = has_children && self.is_open(inv, n);
        rows.push(Row {
            kind: RowKind::Node(n),
            depth,
            open,
            has_children,
        });
        if open {
            for &c in &node.children {
                self.push_rows(inv, c, depth + 1, kept, rows);
            }
        }
    }

    /// The row of the selection: the cursor if it is on it, else the first row showing it.
    fn selected_row(&self, inv: &Inventory, selection: &Option<Selection>) -> Option<usize> {
        let sel = selection.as_ref()?;
        let on = |r: usize| matches!(self.rows.get(r), Some(Row { kind: RowKind::Node(n), .. }) if &inv.nodes[*n].select == sel);
        if let Some(c) = self.cursor.filter(|&c| on(c)) {
            return Some(c);
        }
        (0..self.rows.len()).find(|&r| on(r))
    }

    /// The next node row from `from` in direction `step` (+1 or -1), section headers skipped.
    fn next_node_row(&self, from: Option<usize>, down: bool) -> Option<usize> {
        let is_node = |r: usize| matches!(self.rows[r].kind, RowKind::Node(_));
        match (from, down) {
            (None, true) => (0..self.rows.len()).find(|&r| is_node(r)),
            (None, false) => (0..self.rows.len()).rev().find(|&r| is_node(r)),
            (Some(f), true) => (f + 1..self.rows.len()).find(|&r| is_node(r)),
            (Some(f), false) => (0..f).rev().find(|&r| is_node(r)),
        }
    }

    fn select_row(&mut self, inv: &Inventory, r: usize, selection: &mut Option<Selection>) {
        if let RowKind::Node(n) = self.rows[r].kind {
            *selection = Some(inv.nodes[n].select.clone());
            self.set_cursor(inv, r);
            self.scroll_to = Some(r);
        }
    }

    /// Puts the cursor on row `r` (a node's row).
    fn set_cursor(&mut self, inv: &Inventory, r: usize) {
        if let RowKind::Node(n) = self.rows[r].kind {
            self.cursor = Some(r);
            self.cursor_key = Some(Self::key(inv, n));
        }
    }

    /// Arrow keys, Enter: move the selection over the rows, open and close nodes.
    fn keyboard(
        &mut self,
        ui: &Ui,
        inv: &Inventory,
        selection: &mut Option<Selection>,
        out: &mut TreeOutput,
    ) {
        let ctx = ui.ctx();
        let free = ctx.memory(|m| m.focused().is_none() && m.top_modal_layer().is_none())
            && !ctx.any_popup_open();
        if !free || self.rows.is_empty() {
            return;
        }
        const KEYS: [Key; 5] = [
            Key::ArrowUp,
            Key::ArrowDown,
            Key::ArrowLeft,
            Key::ArrowRight,
            Key::Enter,
        ];
        if !ctx.input(|i| KEYS.iter().any(|&k| i.key_pressed(k))) {
            return;
        }
        let current = self.selected_row(inv, selection);
        // Take only the keys the tree acts on.
        let take = |k: Key| ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, k));
        let (up, down) = (take(Key::ArrowUp), take(Key::ArrowDown));
        let (left, right, enter) = if current.is_some() {
            (
                take(Key::ArrowLeft),
                take(Key::ArrowRight),
                take(Key::Enter),
            )
        } else {
            (false, false, false)
        };
        if up || down {
            if let Some(r) = self.next_node_row(current, down) {
                self.select_row(inv, r, selection);
            }
            return;
        }
        let Some(r) = current else { return };
        let row = self.rows[r];
        let RowKind::Node(n) = row.kind else { return };
        if enter {
            out.show_details = true;
            self.scroll_to = Some(r);
        } else if left {
            if row.open {
                self.set_open(inv, n, false);
            } else if let Some(p) = inv.nodes[n].parent {
                // Up to the parent's row.
                if let Some(pr) = (0..r)
                    .rev()
                    .find(|&k| self.rows[k].kind == RowKind::Node(p))
                {
                    self.select_row(inv, pr, selection);
                }
            }
        } else if right && row.has_children {
            if row.open {
                self.select_row(inv, r + 1, selection);
            } else {
                self.set_open(inv, n, true);
            }
        }
    }
}

/// For every node: does it stay under `needle`? A node stays if its label contains it,
/// if an ancestor's does (with all its descendants), or if a descendant's does.
fn matches(inv: &Inventory, needle: &str) -> Vec<bool> {
    fn mark(inv: &Inventory, n: usize, needle: &str, all: bool, keep: &mut [bool]) -> bool {
        let hit = all || inv.nodes[n].lower.contains(needle);
        let mut any = hit;
        for &c in &inv.nodes[n].children {
            any |= mark(inv, c, needle, hit, keep);
        }
        keep[n] = any;
        any
    }
    let mut keep = vec![false; inv.nodes.len()];
    for roots in &inv.roots {
        for &n in roots {
            mark(inv, n, needle, false, &mut keep);
        }
    }
    keep
}

/// Where `needle` (lower case) occurs in `label`, case-insensitively: byte ranges of
/// `label`, in order, not overlapping. Lower-casing can change a character's length, so
/// the search runs on the lower-cased text and maps back character by character.
fn match_ranges(label: &str, needle: &str) -> Vec<std::ops::Range<usize>> {
    if needle.is_empty() {
        return Vec::new();
    }
    let mut lower = String::with_capacity(label.len());
    // For each byte of `lower`: the range in `label` of the character it came from.
    let mut origin = Vec::with_capacity(label.len());
    for (i, c) in label.char_indices() {
        let before = lower.len();
        lower.extend(c.to_lowercase());
        origin.extend(std::iter::repeat_n(
            i..i + c.len_utf8(),
            lower.len() - before,
        ));
    }
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(needle) {
        let (start, end) = (from + at, from + at + needle.len());
        let range = origin[start].start..origin[end - 1].end;
        match ranges.last_mut() {
            Some(last) if last.end >= range.start => last.end = last.end.max(range.end),
            _ => ranges.push(range),
        }
        from = end;
    }
    ranges
}

/// The highlight of the filter's matches in a label: dark text on amber, in both themes
/// (as a browser's find does), so it stands out from the selection's own color.
const MATCH_BG: egui::Color32 = egui::Color32::from_rgb(250, 210, 80);
const MATCH_FG: egui::Color32 = egui::Color32::from_rgb(20, 20, 20);

/// A node's label with the filter's matches highlighted; the plain label if none.
fn label_text(ui: &Ui, label: &str, needle: &str) -> egui::WidgetText {
    let ranges = match_ranges(label, needle);
    if ranges.is_empty() {
        return label.into();
    }
    let style = ui.style();
    let font = egui::FontSelection::Style(egui::TextStyle::Button);
    let mut job = egui::text::LayoutJob::default();
    let plain = |job: &mut egui::text::LayoutJob, text: &str| {
        if !text.is_empty() {
            RichText::new(text).append_to(job, style, font.clone(), egui::Align::Center);
        }
    };
    let mut at = 0;
    for r in ranges {
        plain(&mut job, &label[at..r.start]);
        RichText::new(&label[r.clone()])
            .color(MATCH_FG)
            .background_color(MATCH_BG)
            .append_to(&mut job, style, font.clone(), egui::Align::Center);
        at = r.end;
    }
    plain(&mut job, &label[at..]);
    job.into()
}

/// What a click on a row did.
enum RowEvent {
    Toggle(usize),
    Select(usize),
    DoubleClick(usize),
}

/// Draws the filter box and the tree; clicking a node selects it, the arrow keys move the
/// selection and open and close nodes, Enter shows the selection's details, and a
/// double-clicked VM asks for the migration wizard.
pub fn inventory(
    ui: &mut Ui,
    doc: &Document,
    view: &mut TreeView,
    filter_text: &mut String,
    selection: &mut Option<Selection>,
) -> TreeOutput {
    let inv = &doc.inventory;
    let mut out = TreeOutput::default();
    ui.add_space(4.0);
    let filter = ui
        .horizontal(|ui| {
            let label = ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(filter_text)
                    .hint_text("id or name")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id)
        })
        .inner;
    ui.separator();
    view.update(inv, &filter_text.trim().to_lowercase());
    if filter.has_focus() && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::ArrowDown))
    {
        // From the filter down into the matches.
        filter.surrender_focus();
        if let Some(r) = view.next_node_row(None, true) {
            view.select_row(inv, r, selection);
        }
    }
    if *selection != view.seen_selection {
        // Selected elsewhere (a link in the details, a test): show it if it is in view.
        if let Some(r) = view.selected_row(inv, selection) {
            view.set_cursor(inv, r);
            view.scroll_to = Some(r);
        }
    }
    view.keyboard(ui, inv, selection, &mut out);
    // Left and Right change the open state: rebuild before drawing.
    view.update(inv, &filter_text.trim().to_lowercase());

    if view.rows.is_empty() {
        ui.add_space(6.0);
        ui.label(
            RichText::new(format!(
                "No object matches \"{}\"; clear the filter to see the whole inventory.",
                filter_text.trim()
            ))
            .weak(),
        );
        if ui.button("Clear the filter").clicked() {
            filter_text.clear();
        }
        view.seen_selection = selection.clone();
        return out;
    }

    let row_h = ui.spacing().interact_size.y;
    let pitch = row_h + ui.spacing().item_spacing.y;
    let mut area = egui::ScrollArea::vertical()
        .id_salt("inventory-tree")
        .auto_shrink([false, false]);
    if let Some(r) = view.scroll_to.take() {
        let top = r as f32 * pitch;
        let bottom = top + row_h;
        if top < view.offset {
            area = area.vertical_scroll_offset(top);
        } else if bottom > view.offset + view.viewport && view.viewport > 0.0 {
            area = area.vertical_scroll_offset(bottom - view.viewport);
        }
    }
    let mut events = Vec::new();
    let rows = &view.rows;
    let needle = view.needle.as_str();
    let draw = |ui: &mut Ui, range: std::ops::Range<usize>, events: &mut Vec<RowEvent>| {
        for r in range {
            row_ui(ui, inv, rows[r], r, row_h, needle, selection, events);
        }
    };
    let output = if rows.len() <= LAY_OUT_ALL_MAX_ROWS {
        area.show(ui, |ui| draw(ui, 0..rows.len(), &mut events))
    } else {
        area.show_rows(ui, row_h, rows.len(), |ui, range| {
            draw(ui, range, &mut events)
        })
    };
    view.offset = output.state.clamped_offset().y;
    view.viewport = output.inner_rect.height();

    for e in events {
        match e {
            RowEvent::Toggle(r) => match view.rows[r].kind {
                RowKind::Section { section, .. } => {
                    let s = usize::from(section);
                    view.closed_sections[s] = !view.closed_sections[s];
                    view.dirty = true;
                }
                RowKind::Node(n) => {
                    let open = view.rows[r].open;
                    view.set_open(inv, n, !open);
                }
            },
            RowEvent::Select(r) => {
                if let RowKind::Node(n) = view.rows[r].kind {
                    *selection = Some(inv.nodes[n].select.clone());
                    view.set_cursor(inv, r);
                    // Whichever main tab is open, also when it was selected already.
                    out.show_details = true;
                }
            }
            RowEvent::DoubleClick(r) => {
                if let RowKind::Node(n) = view.rows[r].kind
                    && let Selection::Vm(id) = &inv.nodes[n].select
                {
                    out.open_wizard = Some(id.clone());
                }
            }
        }
    }
    view.seen_selection = selection.clone();
    out
}

/// One row: indentation, the open/close toggle (if it has children), the label with the
/// filter's matches (`needle`) highlighted.
#[allow(clippy::too_many_arguments)]
fn row_ui(
    ui: &mut Ui,
    inv: &Inventory,
    row: Row,
    r: usize,
    row_h: f32,
    needle: &str,
    selection: &Option<Selection>,
    events: &mut Vec<RowEvent>,
) {
    let width = ui.available_width();
    ui.allocate_ui_with_layout(
        egui::vec2(width, row_h),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(egui::vec2(width, row_h));
            ui.spacing_mut().item_spacing.x = 2.0;
            ui.add_space(f32::from(row.depth) * ui.spacing().indent * 0.8);
            let icon = ui.spacing().icon_width;
            if row.has_children {
                let (rect, resp) =
                    ui.allocate_exact_size(egui::vec2(icon, row_h), egui::Sense::click());
                let what = if row.open { "Collapse" } else { "Expand" };
                resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, what));
                if ui.is_rect_visible(rect) {
                    let openness = if row.open { 1.0 } else { 0.0 };
                    let icon_rect =
                        egui::Rect::from_center_size(rect.center(), egui::vec2(icon, icon));
                    let resp = resp.clone().with_new_rect(icon_rect);
                    egui::collapsing_header::paint_default_icon(ui, openness, &resp);
                }
                if resp.clicked() {
                    events.push(RowEvent::Toggle(r));
                }
            } else {
                ui.add_space(icon);
            }
            match row.kind {
                RowKind::Section { section, count } => {
                    let title = SECTIONS[usize::from(section)];
                    let resp = ui.add(
                        egui::Label::new(RichText::new(format!("{title} ({count})")).strong())
                            .sense(egui::Sense::click()),
                    );
                    if resp.clicked() {
                        events.push(RowEvent::Toggle(r));
                    }
                }
                RowKind::Node(n) => {
                    let node = &inv.nodes[n];
                    let selected = selection.as_ref() == Some(&node.select);
                    let resp = ui.selectable_label(selected, label_text(ui, &node.label, needle));
                    if resp.clicked() {
                        events.push(RowEvent::Select(r));
                    }
                    if resp.double_clicked() {
                        events.push(RowEvent::DoubleClick(r));
                    }
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(inv: &Inventory, view: &TreeView) -> Vec<String> {
        view.rows
            .iter()
            .map(|r| match r.kind {
                RowKind::Section { section, count } => {
                    format!("{} ({count})", SECTIONS[usize::from(section)])
                }
                RowKind::Node(n) => inv.nodes[n].label.clone(),
            })
            .collect()
    }

    #[test]
    fn every_object_kind_has_a_glyph_the_fonts_draw() {
        let ctx = egui::Context::default();
        ctx.run_ui(egui::RawInput::default(), |_| {})
            .drop_without_applying_deltas();
        for g in [
            glyph::SITE,
            glyph::HOST,
            glyph::VM,
            glyph::ARRAY,
            glyph::LUN,
            glyph::DATASTORE,
            glyph::PROTECTION_GROUP,
        ] {
            let font = egui::FontId::proportional(14.0);
            assert!(ctx.fonts_mut(|f| f.has_glyphs(&font, g)), "{g:?} renders");
        }
        let kinds = [
            glyph::SITE,
            glyph::HOST,
            glyph::VM,
            glyph::ARRAY,
            glyph::LUN,
            glyph::DATASTORE,
            glyph::PROTECTION_GROUP,
        ];
        // The check can fail: a private-use code point is in no bundled font.
        let font = egui::FontId::proportional(14.0);
        assert!(!ctx.fonts_mut(|f| f.has_glyphs(&font, "\u{F0000}")));
        let distinct: HashSet<_> = kinds.iter().collect();
        assert_eq!(distinct.len(), kinds.len(), "one glyph per kind");
    }

    #[test]
    fn filter_matches_are_found_case_insensitively_in_the_label() {
        let label = "🏢 pa — Palo Alto (protected)";
        let at = |r: &std::ops::Range<usize>| &label[r.clone()];
        let m = match_ranges(label, "pa");
        assert_eq!(m.iter().map(at).collect::<Vec<_>>(), ["pa", "Pa"]);
        assert_eq!(
            match_ranges(label, "alto (p")
                .iter()
                .map(at)
                .collect::<Vec<_>>(),
            ["Alto (p"]
        );
        assert!(match_ranges(label, "").is_empty());
        assert!(match_ranges(label, "ny").is_empty());
        // Lower-casing 'İ' gives two characters: the ranges stay on character boundaries.
        let odd = "💻 İstanbul-İ";
        let m = match_ranges(odd, "i\u{307}s");
        assert_eq!(m.len(), 1);
        assert_eq!(&odd[m[0].clone()], "İs");
        let m = match_ranges(odd, "\u{307}");
        assert_eq!(
            m.iter().map(|r| &odd[r.clone()]).collect::<Vec<_>>(),
            ["İ", "İ"]
        );
        // Overlapping matches of a repeated letter merge into one highlight.
        assert_eq!(match_ranges("aaa", "aa"), vec![0..2]);
    }

    #[test]
    fn a_label_with_a_match_is_drawn_highlighted() {
        let ctx = egui::Context::default();
        ctx.run_ui(egui::RawInput::default(), |ui| {
            let plain = label_text(ui, "💻 db-01", "web");
            assert!(
                matches!(plain, egui::WidgetText::Text(_)),
                "no match, no highlight"
            );
            let egui::WidgetText::LayoutJob(job) =
                label_text(ui, "💻 db-01", "DB".to_lowercase().as_str())
            else {
                panic!("a match is a layout job");
            };
            assert_eq!(job.text, "💻 db-01", "the same text (and accessible name)");
            let lit: Vec<&str> = job
                .sections
                .iter()
                .filter(|s| s.format.background == MATCH_BG)
                .map(|s| &job.text[s.byte_range.start.0..s.byte_range.end.0])
                .collect();
            assert_eq!(lit, ["db"]);
        })
        .drop_without_applying_deltas();
    }

    #[test]
    fn a_small_inventory_starts_open_and_the_filter_keeps_ancestors() {
        let t = Topology::builtin_default();
        let inv = Inventory::new(&t);
        let mut view = TreeView::default();
        view.update(&inv, "");
        let all = labels(&inv, &view);
        assert_eq!(all.len(), inv.node_count() + 4, "everything open");
        assert_eq!(all[0], "Sites (2)");
        view.update(&inv, "db-01");
        let shown = labels(&inv, &view);
        assert!(shown.contains(&"🖥 esx-pa-2".to_string()), "{shown:?}");
        assert_eq!(shown.iter().filter(|l| *l == "💻 db-01").count(), 2);
        assert!(!shown.iter().any(|l| l.contains("lun-")), "{shown:?}");
        view.update(&inv, "no such thing");
        assert!(view.rows.is_empty());
    }

    #[test]
    fn a_lost_site_is_marked_and_failed_over_vms_sit_under_their_recovery_hosts() {
        let t = Topology::builtin_default();
        let at = Whereabouts {
            lost_sites: ["pa".to_string()].into(),
            away: [
                (
                    "web-01".to_string(),
                    Away::Recovered {
                        host: "esx-ny-2".into(),
                        datastore: "ds-gold-1-r".into(),
                    },
                ),
                ("build-01".to_string(), Away::Down),
            ]
            .into(),
        };
        let inv = Inventory::at(&t, at);
        let node = |label: &str| {
            (0..inv.nodes.len())
                .find(|&n| inv.nodes[n].label == label)
                .unwrap_or_else(|| panic!("no node {label}"))
        };
        let parent = |label: &str| {
            inv.nodes[inv.nodes[node(label)].parent.unwrap()]
                .label
                .clone()
        };
        node("🏢 pa — Palo Alto (protected, lost)");
        assert_eq!(
            parent("💻 web-01 — failed over to esx-ny-2"),
            "🖥 esx-pa-1 (lost)"
        );
        assert_eq!(parent("💻 web-01 — recovered from pa"), "🖥 esx-ny-2");
        assert_eq!(parent("💻 build-01 — not running"), "🖥 esx-pa-1 (lost)");
        assert_eq!(
            parent("💻 web-01 — failed over to ds-gold-1-r"),
            "🗀 ds-gold-1 (pa, lost)"
        );
        // Both "recovered from pa" rows: under the host and under the replica datastore.
        let recovered: Vec<_> = (0..inv.nodes.len())
            .filter(|&n| inv.nodes[n].label == "💻 web-01 — recovered from pa")
            .map(|n| inv.nodes[inv.nodes[n].parent.unwrap()].label.clone())
            .collect();
        assert_eq!(recovered.len(), 2, "{recovered:?}");
        assert!(recovered[1].contains("ds-gold-1-r"), "{recovered:?}");
        // What runs on the hosts now.
        let on = |h: &str| -> Vec<&str> {
            (inv.vms_running_on_host(&t, h).iter())
                .map(|&i| t.vms[i].id.as_str())
                .collect()
        };
        assert!(
            on("esx-pa-1")
                .iter()
                .all(|v| *v != "web-01" && *v != "build-01")
        );
        assert!(on("esx-ny-2").contains(&"web-01"));
        // Nothing lost: the plain inventory.
        assert_eq!(Inventory::new(&t).node_count() + 2, inv.node_count());
    }

    #[test]
    fn a_large_inventory_starts_closed_and_opens_one_node() {
        let t = crate::generate::generate(crate::generate::GenerateOptions {
            vms: 1_000,
            datastores: 20,
            seed: 3,
        })
        .unwrap();
        let inv = Inventory::new(&t);
        let mut view = TreeView::default();
        view.update(&inv, "");
        let closed = view.rows.len();
        assert_eq!(
            closed,
            4 + t.sites.len() + t.arrays.len() + t.datastores.len() + t.protection_groups.len()
        );
        // Open the first datastore: its VMs appear under it.
        let r = view
            .rows
            .iter()
            .position(|r| matches!(r.kind, RowKind::Node(n) if matches!(inv.nodes[n].select, Selection::Datastore(_))))
            .unwrap();
        let RowKind::Node(n) = view.rows[r].kind else {
            unreachable!()
        };
        view.set_open(&inv, n, true);
        view.update(&inv, "");
        let Selection::Datastore(ds) = &inv.nodes[n].select else {
            unreachable!()
        };
        assert_eq!(view.rows.len(), closed + inv.vms_on_datastore(ds).len());
        view.expand_all();
        view.update(&inv, "");
        assert_eq!(view.rows.len(), inv.node_count() + 4);
        // The index agrees with the topology.
        let v = &t.vms[777];
        assert_eq!(inv.vm(&t, &v.id), Some(v));
        assert!(inv.vms_on_host(&v.host).contains(&777));
    }
}
