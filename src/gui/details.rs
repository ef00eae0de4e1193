//! The details panel: what the selected object is, and for a VM where it can go.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::live::{self, Live};
use super::style::{self, ChipKind, Tone, glyph};
use super::{Action, Document, Selection};
use crate::dr;
use crate::topology::{SiteRole, Topology};

pub fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    selection: &mut Option<Selection>,
    actions: &mut Vec<Action>,
) {
    let t = &doc.topology;
    let Some(sel) = selection.clone() else {
        overview(ui, doc);
        return;
    };
    egui::ScrollArea::both()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let found = match &sel {
                Selection::Site(id) => site(ui, t, id, selection),
                Selection::Host(id) => host(ui, doc, live, id, selection),
                Selection::Vm(id) => vm(ui, doc, live, id, selection, actions),
                Selection::Array(id) => array(ui, t, id, selection),
                Selection::Lun(id) => lun(ui, t, id, selection),
                Selection::Datastore(id) => datastore(ui, doc, id, selection),
                Selection::ProtectionGroup(id) => protection_group(ui, doc, id, selection),
            };
            if !found {
                // The topology was replaced and the object is gone.
                *selection = None;
            }
        });
}

fn heading(ui: &mut Ui, glyph: &str, kind: &str, id: &str) {
    ui.horizontal(|ui| {
        ui.heading(format!("{glyph} {id}"));
        ui.label(RichText::new(kind).weak());
    });
    ui.add_space(4.0);
}

/// A two-column grid of facts.
fn facts(ui: &mut Ui, id: &str, rows: &[(&str, String)]) {
    egui::Grid::new(("facts", id))
        .num_columns(2)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            for (k, v) in rows {
                ui.label(RichText::new(*k).weak());
                ui.label(v);
                ui.end_row();
            }
        });
}

/// A link-like button that selects another object.
fn goto(ui: &mut Ui, text: String, target: Selection, selection: &mut Option<Selection>) {
    if ui.link(text).clicked() {
        *selection = Some(target);
    }
}

/// Up to this many links are laid out one under the other; longer lists scroll in a box
/// that lays out only the links in view.
const LIST_ALL_MAX: usize = 40;
/// The height of a scrolling list of links.
const LIST_HEIGHT: f32 = 320.0;

/// A list of `count` links to other objects; `item(i)` is the text and target of the
/// i-th. Long lists scroll and lay out only what is in view.
fn goto_list(
    ui: &mut Ui,
    id: &str,
    count: usize,
    item: impl Fn(usize) -> (String, Selection),
    selection: &mut Option<Selection>,
) {
    if count <= LIST_ALL_MAX {
        for i in 0..count {
            let (text, target) = item(i);
            goto(ui, text, target, selection);
        }
        return;
    }
    ui.label(
        RichText::new(format!(
            "{} in all; scroll for more.",
            live::count(count as u64)
        ))
        .weak(),
    );
    let row_h = ui.text_style_height(&egui::TextStyle::Body);
    egui::ScrollArea::vertical()
        .id_salt(("goto-list", id))
        .max_height(LIST_HEIGHT)
        .auto_shrink([false, true])
        .show_rows(ui, row_h, count, |ui, rows| {
            for i in rows {
                let (text, target) = item(i);
                goto(ui, text, target, selection);
            }
        });
}

/// Links to the VMs at these indexes of `t.vms`.
fn vm_list(ui: &mut Ui, id: &str, t: &Topology, vms: &[usize], selection: &mut Option<Selection>) {
    goto_list(
        ui,
        id,
        vms.len(),
        |i| {
            let v = &t.vms[vms[i]];
            (
                format!("{} {}", glyph::VM, v.id),
                Selection::Vm(v.id.clone()),
            )
        },
        selection,
    );
}

fn section(ui: &mut Ui, title: &str) {
    ui.add_space(10.0);
    ui.strong(title);
    ui.separator();
}

fn tag_chips(ui: &mut Ui, tags: &dr::DatastoreTags) {
    ui.horizontal_wrapped(|ui| {
        for tag in &tags.tags {
            style::chip(ui, tag, ChipKind::of_tag(tag));
        }
    });
}

fn overview(ui: &mut Ui, doc: &Document) {
    let t = &doc.topology;
    ui.heading(&t.name);
    ui.label(RichText::new(doc.source.to_string()).weak());
    ui.add_space(8.0);
    let protected: Vec<_> = doc
        .tags
        .iter()
        .filter(|tg| {
            t.datastore(&tg.datastore)
                .is_some_and(|d| t.is_protected_datastore(d))
        })
        .collect();
    facts(
        ui,
        "overview",
        &[
            ("Sites", t.sites.len().to_string()),
            ("Hosts", t.hosts.len().to_string()),
            ("Arrays", t.arrays.len().to_string()),
            (
                "Protected datastores",
                format!(
                    "{} ({} replicated)",
                    protected.len(),
                    protected.iter().filter(|x| x.replicated).count()
                ),
            ),
            ("Protection groups", t.protection_groups.len().to_string()),
            ("VMs", t.vms.len().to_string()),
        ],
    );
    ui.add_space(12.0);
    ui.label("Select a VM in the inventory to see where it can move and what each move does to disaster recovery. Double-click it, or press Migrate…, to move it.");
    ui.label(
        RichText::new(
            "Open another topology with File ▶ Open… (Ctrl+O) or drop a .ron file on the window.",
        )
        .weak(),
    );
}

fn site(ui: &mut Ui, t: &Topology, id: &str, selection: &mut Option<Selection>) -> bool {
    let Some(s) = t.site(id) else { return false };
    heading(ui, glyph::SITE, "site", &s.id);
    let role = match s.role {
        SiteRole::Protected => "protected (production)",
        SiteRole::Recovery => "recovery (replicas)",
    };
    facts(
        ui,
        id,
        &[("Name", s.name.clone()), ("Role", role.to_string())],
    );
    section(ui, "Hosts");
    let hosts: Vec<_> = t.hosts.iter().filter(|h| h.site == s.id).collect();
    if hosts.is_empty() {
        ui.weak("This site has no hosts.");
    }
    goto_list(
        ui,
        "site-hosts",
        hosts.len(),
        |i| {
            (
                format!("{} {}", glyph::HOST, hosts[i].id),
                Selection::Host(hosts[i].id.clone()),
            )
        },
        selection,
    );
    section(ui, "Datastores");
    let datastores: Vec<_> = t.datastores.iter().filter(|d| d.site == s.id).collect();
    if datastores.is_empty() {
        ui.weak("This site has no datastores.");
    }
    goto_list(
        ui,
        "site-datastores",
        datastores.len(),
        |i| {
            (
                format!("{} {}", glyph::DATASTORE, datastores[i].id),
                Selection::Datastore(datastores[i].id.clone()),
            )
        },
        selection,
    );
    true
}

fn host(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    id: &str,
    selection: &mut Option<Selection>,
) -> bool {
    let t = &doc.topology;
    let Some(h) = t.host(id) else { return false };
    heading(ui, glyph::HOST, "host", &h.id);
    if live.site_lost_at(&h.site).is_some() {
        ui.label(style::toned(
            ui,
            format!("Site {} is lost: this host runs nothing.", h.site),
            Tone::Bad,
        ));
    }
    // What runs on it now: a lost site's VMs run nowhere, failed-over VMs on the
    // recovery hosts.
    let vms = &doc.inventory.vms_running_on_host(t, &h.id);
    let cpus: u32 = vms.iter().map(|&v| t.vms[v].vcpus).sum();
    let mem: u32 = vms.iter().map(|&v| t.vms[v].memory_gib).sum();
    facts(
        ui,
        id,
        &[
            ("Site", h.site.clone()),
            ("CPUs", format!("{} ({} vCPUs allocated)", h.cpus, cpus)),
            (
                "Memory",
                format!("{} GiB ({} GiB allocated)", h.memory_gib, mem),
            ),
        ],
    );
    section(ui, "VMs");
    if vms.is_empty() {
        ui.weak("No VMs run on this host.");
    }
    vm_list(ui, "host-vms", t, vms, selection);
    true
}

fn array(ui: &mut Ui, t: &Topology, id: &str, selection: &mut Option<Selection>) -> bool {
    let Some(a) = t.arrays.iter().find(|a| a.id == id) else {
        return false;
    };
    heading(ui, glyph::ARRAY, "array", &a.id);
    facts(
        ui,
        id,
        &[("Site", a.site.clone()), ("LUNs", a.luns.len().to_string())],
    );
    section(ui, "LUNs");
    if a.luns.is_empty() {
        ui.weak("This array has no LUNs.");
    }
    let row_h = ui.text_style_height(&egui::TextStyle::Body);
    let lun_row = |ui: &mut Ui, l: &crate::topology::Lun, selection: &mut Option<Selection>| {
        ui.horizontal(|ui| {
            goto(
                ui,
                format!("{} {}", glyph::LUN, l.id),
                Selection::Lun(l.id.clone()),
                selection,
            );
            ui.label(RichText::new(lun_summary(l)).weak());
        });
    };
    if a.luns.len() <= LIST_ALL_MAX {
        for l in &a.luns {
            lun_row(ui, l, selection);
        }
    } else {
        egui::ScrollArea::vertical()
            .id_salt(("array-luns", id))
            .max_height(LIST_HEIGHT)
            .auto_shrink([false, true])
            .show_rows(ui, row_h, a.luns.len(), |ui, rows| {
                for l in &a.luns[rows] {
                    lun_row(ui, l, selection);
                }
            });
    }
    true
}

fn lun_summary(l: &crate::topology::Lun) -> String {
    match &l.replication {
        None => format!("{}, not replicated", style::gib_text(l.capacity_gib)),
        Some(r) => format!(
            "{}, replicated to {} every {}{}",
            style::gib_text(l.capacity_gib),
            r.target,
            style::minutes_text(r.rpo_minutes),
            r.consistency_group
                .as_deref()
                .map(|c| format!(", CG {c}"))
                .unwrap_or_default()
        ),
    }
}

fn lun(ui: &mut Ui, t: &Topology, id: &str, selection: &mut Option<Selection>) -> bool {
    let Some((a, l)) = t.lun(id) else {
        return false;
    };
    heading(ui, glyph::LUN, "LUN", &l.id);
    facts(
        ui,
        id,
        &[
            ("Array", format!("{} (site {})", a.id, a.site)),
            ("Replication", lun_summary(l)),
        ],
    );
    if let Some(d) = t.datastores.iter().find(|d| d.luns.contains(&l.id)) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Backs").weak());
            goto(
                ui,
                format!("{} {}", glyph::DATASTORE, d.id),
                Selection::Datastore(d.id.clone()),
                selection,
            );
        });
    } else {
        ui.weak("No datastore uses this LUN.");
    }
    true
}

fn datastore(ui: &mut Ui, doc: &Document, id: &str, selection: &mut Option<Selection>) -> bool {
    let t = &doc.topology;
    let Some(d) = t.datastore(id) else {
        return false;
    };
    heading(ui, glyph::DATASTORE, "datastore", &d.id);
    if let Some(tags) = doc.tags_of(id) {
        tag_chips(ui, tags);
        ui.add_space(4.0);
    }
    let mut rows = vec![
        ("Site", d.site.clone()),
        ("LUNs", d.luns.join(", ")),
        (
            "Copy throughput",
            format!("{} MiB/s", style::rate_text(d.throughput_mib_s)),
        ),
    ];
    if let Some(rpo) = t.datastore_rpo_minutes(d) {
        rows.push(("RPO", style::minutes_text(rpo)));
    }
    facts(ui, id, &rows);
    if let Some(r) = t.replica_of(d) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Replica").weak());
            goto(
                ui,
                format!("{} {}", glyph::DATASTORE, r.id),
                Selection::Datastore(r.id.clone()),
                selection,
            );
        });
    }
    if let Some(p) = t.replica_source(d) {
        ui.horizontal(|ui| {
            ui.label(RichText::new("Replica of").weak());
            goto(
                ui,
                format!("{} {}", glyph::DATASTORE, p.id),
                Selection::Datastore(p.id.clone()),
                selection,
            );
        });
    }
    section(ui, "VMs");
    let vms = doc.inventory.vms_on_datastore(&d.id);
    if vms.is_empty() {
        ui.weak("No VM disks live here.");
    }
    vm_list(ui, "datastore-vms", t, vms, selection);
    true
}

fn protection_group(
    ui: &mut Ui,
    doc: &Document,
    id: &str,
    selection: &mut Option<Selection>,
) -> bool {
    let t = &doc.topology;
    let Some(p) = t.protection_group(id) else {
        return false;
    };
    heading(ui, glyph::PROTECTION_GROUP, "protection group", &p.id);
    facts(ui, id, &[("Name", p.name.clone())]);
    section(ui, "Datastores");
    for d in &p.datastores {
        goto(
            ui,
            format!("{} {}", glyph::DATASTORE, d),
            Selection::Datastore(d.clone()),
            selection,
        );
    }
    section(ui, "VMs recovered with this group");
    let mut vms: Vec<usize> = p
        .datastores
        .iter()
        .flat_map(|d| doc.inventory.vms_on_datastore(d).iter().copied())
        .collect();
    vms.sort_unstable();
    if vms.is_empty() {
        ui.weak("No VM disks live on this group's datastores.");
    }
    vm_list(ui, "group-vms", t, &vms, selection);
    true
}

fn vm(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    id: &str,
    selection: &mut Option<Selection>,
    actions: &mut Vec<Action>,
) -> bool {
    let t = &doc.topology;
    let Some(v) = doc.inventory.vm(t, id) else {
        return false;
    };
    heading(ui, glyph::VM, "virtual machine", &v.id);
    let workload = v
        .workload
        .as_ref()
        .map(|w| format!("{} write IOPS, {} read IOPS", w.write_iops, w.read_iops))
        .unwrap_or_else(|| "idle".to_string());
    facts(
        ui,
        id,
        &[
            ("UUID", v.uuid.clone()),
            ("Disk", style::mib_text(v.disk_mib)),
            (
                "vCPUs / memory",
                format!("{} / {} GiB", v.vcpus, v.memory_gib),
            ),
            ("Recovery priority", v.priority.to_string()),
            ("Workload", workload),
        ],
    );
    // Where the engine runs it now (a disaster or a failover moves it off the topology's
    // placement); the topology's placement while no engine runs.
    let running = live.vm(&v.id);
    let (host_now, ds_now) = running.map_or((v.host.as_str(), v.datastore.as_str()), |r| {
        (r.host.as_str(), r.datastore.as_str())
    });
    let down = running.is_some_and(|r| r.down);
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(if down { "Ran on" } else { "Runs on" }).weak());
        goto(
            ui,
            format!("{} {}", glyph::HOST, host_now),
            Selection::Host(host_now.to_string()),
            selection,
        );
        ui.label(RichText::new("stored on").weak());
        goto(
            ui,
            format!("{} {}", glyph::DATASTORE, ds_now),
            Selection::Datastore(ds_now.to_string()),
            selection,
        );
    });
    if let Some(tags) = doc.tags_of(ds_now) {
        tag_chips(ui, tags);
    }
    let away = running.is_some_and(|r| r.down || r.recovered);
    let moved = running.is_some_and(|r| {
        live.snapshot
            .as_ref()
            .is_some_and(|s| super::live::moved_across(s, &v.id, &r.datastore))
    });
    if let Some(r) = running {
        if r.recovered {
            ui.label(style::toned(
                ui,
                format!(
                    "{}: runs at site {} (it was on {} {} at site {})",
                    if moved {
                        "Moved across sites live with its consistency group"
                    } else {
                        "Failed over"
                    },
                    r.site,
                    glyph::HOST,
                    v.host,
                    t.host(&v.host).map_or("?", |h| h.site.as_str())
                ),
                Tone::Done,
            ));
        } else if r.down {
            ui.label(style::toned(
                ui,
                format!("Down: {}.", r.down_reason),
                Tone::Bad,
            ));
        }
    }
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        let migrating = live.migration_of(&v.id);
        let b = ui
            .add_enabled(migrating.is_none() && !away, egui::Button::new("Migrate…"))
            .on_hover_text("Move this VM's disk to another datastore: pick a destination by its DR rating, review, start")
            .on_disabled_hover_text(match running {
                Some(r) if r.recovered => format!(
                    "{} {}: it runs from a replica at site {}, where no migration applies",
                    v.id,
                    if moved { "moved across sites" } else { "failed over" },
                    r.site
                ),
                Some(r) if r.down => format!("{} is not running: {}", v.id, r.down_reason),
                _ => "A migration of this VM is in flight; see the Migrations panel".to_string(),
            });
        if b.clicked() {
            actions.push(Action::OpenWizard(Some(v.id.clone())));
        }
        if let Some(m) = migrating {
            ui.label(
                RichText::new(format!(
                    "Migrating to {} {} ({}, {})",
                    glyph::DATASTORE,
                    m.to,
                    m.mode.as_str(),
                    m.phase.as_str()
                ))
                .weak(),
            );
        }
    });
    where_can_it_go(ui, doc, live, &v.id);
    true
}

/// "Where can it go?": the VM's destinations, safest first, with their free space; a
/// click on a row shows what that move could lose below the table (hovering shows it too).
fn where_can_it_go(ui: &mut Ui, doc: &Document, live: &Live, vm: &str) {
    section(ui, "Where can it go?");
    // The moves rated here are protected-site moves: none applies to a VM that failed over
    // or whose site is lost.
    match live.vm(vm) {
        Some(r) if r.recovered => {
            let how = match live.snapshot.as_ref() {
                Some(s) if super::live::moved_across(s, vm, &r.datastore) => {
                    "moved across with its consistency group"
                }
                _ => "failed over",
            };
            ui.weak(format!(
                "{vm} {how}: it runs from a replica at site {}, and no protected-site move applies.",
                r.site
            ));
            return;
        }
        Some(r) if live.site_lost_at(&r.site).is_some() => {
            ui.weak(format!(
                "Site {} is lost: its datastores take no VM. Recover {} from the Failover tab.",
                r.site, vm
            ));
            return;
        }
        _ => {}
    }
    let dests = doc.destinations(vm);
    if dests.is_empty() {
        ui.weak("There is no other protected-site datastore to move to.");
        return;
    }
    ui.label(
        RichText::new(
            "Every other protected datastore, safest first. Click a row for what the move could lose.",
        )
        .weak(),
    );
    // Datastores in maintenance mode take no VM: the move would be refused.
    let maintenance: Vec<&str> = live
        .snapshot
        .iter()
        .flat_map(|snap| &snap.placement)
        .flat_map(|c| &c.datastores)
        .filter(|d| d.in_maintenance)
        .map(|d| d.id.as_str())
        .collect();
    // The row picked, per VM, for as long as the console runs.
    let picked_id = egui::Id::unique(("where-can-it-go", vm));
    let mut picked: Option<String> = ui.data(|d| d.get_temp(picked_id));
    let row_h = ui.text_style_height(&egui::TextStyle::Body) + 6.0;
    TableBuilder::new(ui)
        .id_salt(("destinations", vm))
        .striped(true)
        .sense(egui::Sense::click())
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::auto().at_least(120.0))
        .column(Column::auto().at_least(110.0))
        .column(Column::auto().at_least(70.0))
        .column(Column::remainder().at_least(160.0))
        .header(row_h, |mut h| {
            for title in ["Destination", "Rating", "Free", "Fault"] {
                h.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(row_h, dests.len(), |mut row| {
                let i = &dests[row.index()];
                row.set_selected(picked.as_deref() == Some(i.to.as_str()));
                row.col(|ui| {
                    ui.add(
                        egui::Label::new(format!("{} {}", glyph::DATASTORE, i.to))
                            .selectable(false),
                    );
                });
                row.col(|ui| {
                    ui.add(egui::Label::new(style::rating_text(ui, i.rating)).selectable(false));
                });
                row.col(|ui| {
                    let free = live.free_mib.get(&i.to);
                    ui.add(
                        egui::Label::new(free.map_or("—".into(), |&f| super::wizard::size(f)))
                            .selectable(false),
                    );
                });
                row.col(|ui| {
                    let text = if maintenance.contains(&i.to.as_str()) {
                        style::toned(ui, "in maintenance mode: takes no VM", Tone::Warn)
                    } else {
                        RichText::new(i.fault.map(|f| f.as_str()).unwrap_or("allowed"))
                    };
                    ui.add(egui::Label::new(text).selectable(false));
                });
                let r = row.response();
                if r.clicked() {
                    picked = (picked.as_deref() != Some(i.to.as_str())).then(|| i.to.clone());
                }
                r.on_hover_ui(|ui| {
                    ui.set_max_width(420.0);
                    ui.label(&i.explanation);
                });
            });
        });
    ui.data_mut(|d| match &picked {
        Some(p) => {
            d.insert_temp(picked_id, p.clone());
        }
        None => d.remove::<String>(picked_id),
    });
    let Some(i) = picked.and_then(|p| dests.iter().find(|i| i.to == p)) else {
        return;
    };
    ui.add_space(6.0);
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(
            1.0,
            style::rating_color(i.rating, ui.visuals().dark_mode),
        ))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_wrapped(|ui| {
                ui.strong(format!("To {} {}:", glyph::DATASTORE, i.to));
                ui.label(style::rating_text(ui, i.rating));
            });
            ui.label(&i.explanation);
        });
}
