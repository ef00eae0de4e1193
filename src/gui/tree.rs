//! The inventory tree: Sites → Hosts → VMs, Arrays → LUNs, Datastores → VMs and
//! Protection groups → Datastores, with a filter. Closed nodes lay out nothing.

use egui::collapsing_header::CollapsingState;
use egui::{Id, RichText, Ui};

use super::style::glyph;
use super::{Document, Selection};
use crate::topology::{SiteRole, Topology};

/// One node of the tree as drawn: its label, what clicking selects, its children.
struct Node {
    label: String,
    select: Selection,
    children: Vec<Node>,
}

impl Node {
    fn leaf(label: String, select: Selection) -> Node {
        Node {
            label,
            select,
            children: Vec::new(),
        }
    }
}

/// Keeps the nodes that match `needle` (case-insensitive, in their label), with every
/// child of a matching node and the ancestors of every matching node.
fn filter(nodes: Vec<Node>, needle: &str) -> Vec<Node> {
    if needle.is_empty() {
        return nodes;
    }
    nodes
        .into_iter()
        .filter_map(|mut n| {
            if n.label.to_lowercase().contains(needle) {
                return Some(n);
            }
            n.children = filter(n.children, needle);
            (!n.children.is_empty()).then_some(n)
        })
        .collect()
}

fn vm_nodes<'a>(t: &'a Topology, keep: impl Fn(&crate::topology::Vm) -> bool + 'a) -> Vec<Node> {
    t.vms
        .iter()
        .filter(|v| keep(v))
        .map(|v| {
            Node::leaf(
                format!("{} {}", glyph::VM, v.id),
                Selection::Vm(v.id.clone()),
            )
        })
        .collect()
}

/// The four top-level sections.
fn sections(t: &Topology) -> Vec<(&'static str, Vec<Node>)> {
    let sites = t
        .sites
        .iter()
        .map(|s| Node {
            label: format!(
                "{} {} — {} ({})",
                glyph::SITE,
                s.id,
                s.name,
                match s.role {
                    SiteRole::Protected => "protected",
                    SiteRole::Recovery => "recovery",
                }
            ),
            select: Selection::Site(s.id.clone()),
            children: t
                .hosts
                .iter()
                .filter(|h| h.site == s.id)
                .map(|h| Node {
                    label: format!("{} {}", glyph::HOST, h.id),
                    select: Selection::Host(h.id.clone()),
                    children: vm_nodes(t, |v| v.host == h.id),
                })
                .collect(),
        })
        .collect();
    let arrays = t
        .arrays
        .iter()
        .map(|a| Node {
            label: format!("{} {} ({})", glyph::ARRAY, a.id, a.site),
            select: Selection::Array(a.id.clone()),
            children: a
                .luns
                .iter()
                .map(|l| {
                    Node::leaf(
                        format!("{} {}", glyph::LUN, l.id),
                        Selection::Lun(l.id.clone()),
                    )
                })
                .collect(),
        })
        .collect();
    let datastores = t
        .datastores
        .iter()
        .map(|d| Node {
            label: format!("{} {} ({})", glyph::DATASTORE, d.id, d.site),
            select: Selection::Datastore(d.id.clone()),
            children: vm_nodes(t, |v| v.datastore == d.id),
        })
        .collect();
    let pgs = t
        .protection_groups
        .iter()
        .map(|p| Node {
            label: format!("{} {} — {}", glyph::PROTECTION_GROUP, p.id, p.name),
            select: Selection::ProtectionGroup(p.id.clone()),
            children: p
                .datastores
                .iter()
                .map(|d| {
                    Node::leaf(
                        format!("{} {}", glyph::DATASTORE, d),
                        Selection::Datastore(d.clone()),
                    )
                })
                .collect(),
        })
        .collect();
    vec![
        ("Sites", sites),
        ("Arrays", arrays),
        ("Datastores", datastores),
        ("Protection groups", pgs),
    ]
}

/// Draws the filter box and the tree; clicking a node selects it. Returns the VM that was
/// double-clicked, if any (the console opens the migration wizard for it).
pub fn inventory(
    ui: &mut Ui,
    doc: &Document,
    filter_text: &mut String,
    selection: &mut Option<Selection>,
) -> Option<String> {
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        let label = ui.label("Filter");
        ui.add(
            egui::TextEdit::singleline(filter_text)
                .hint_text("id or name")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
    });
    ui.separator();
    let needle = filter_text.trim().to_lowercase();
    let filtering = !needle.is_empty();
    // Small inventories start unfolded; large ones stay folded so closed nodes cost nothing.
    let open_by_default = doc.topology.vms.len() <= OPEN_BY_DEFAULT_MAX_VMS;
    let mut double_clicked = None;
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let mut shown = 0;
            for (title, nodes) in sections(&doc.topology) {
                let nodes = filter(nodes, &needle);
                if filtering && nodes.is_empty() {
                    continue;
                }
                shown += 1;
                let header = format!("{title} ({})", nodes.len());
                let mut state = CollapsingState::load_with_default_open(
                    ui.ctx(),
                    Id::unique(("inventory", title)),
                    true,
                );
                if filtering {
                    state.set_open(true);
                }
                state.show_header(ui, |ui| ui.strong(header)).body(|ui| {
                    for n in &nodes {
                        node_ui(
                            ui,
                            n,
                            open_by_default,
                            filtering,
                            selection,
                            title,
                            &mut double_clicked,
                        );
                    }
                });
            }
            if shown == 0 {
                ui.weak(format!("Nothing matches \"{}\".", filter_text.trim()));
            }
        });
    double_clicked
}

/// Inventories with at most this many VMs start with every node open.
const OPEN_BY_DEFAULT_MAX_VMS: usize = 200;

fn node_ui(
    ui: &mut Ui,
    n: &Node,
    open_by_default: bool,
    filtering: bool,
    selection: &mut Option<Selection>,
    path: &str,
    double_clicked: &mut Option<String>,
) {
    let selected = selection.as_ref() == Some(&n.select);
    if n.children.is_empty() {
        let r = ui.selectable_label(selected, RichText::new(&n.label));
        if r.clicked() {
            *selection = Some(n.select.clone());
        }
        if let Selection::Vm(id) = &n.select
            && r.double_clicked()
        {
            *double_clicked = Some(id.clone());
        }
        return;
    }
    let id = Id::unique(("inventory", path, &n.select));
    let mut state = CollapsingState::load_with_default_open(ui.ctx(), id, open_by_default);
    if filtering {
        state.set_open(true);
    }
    state
        .show_header(ui, |ui| {
            if ui
                .selectable_label(selected, RichText::new(&n.label))
                .clicked()
            {
                *selection = Some(n.select.clone());
            }
        })
        .body(|ui| {
            for c in &n.children {
                node_ui(
                    ui,
                    c,
                    open_by_default,
                    filtering,
                    selection,
                    path,
                    double_clicked,
                );
            }
        });
}
