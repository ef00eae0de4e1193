//! The failover plan's capacity check as a table: per site a heading, one line per host
//! (capacity, running, reserved, free — each "vCPU / GiB") and a total; each host's
//! reservations behind an arrow in its row, one full-width line each. A grid whose reservation cell listed every
//! reservation in a sentence wrapped each host over three or four lines and pushed Free
//! out of a narrow panel.

use egui::{RichText, Ui};

use super::style::{self, Tone, glyph};
use crate::engine::{FailoverPlan, HeldCapacity, HostCapacity};

/// The title of the plan's capacity table.
pub const CAPACITY_BY_HOST: &str = "Capacity by host";

/// The accessible name of the toggle that lists the reservations held on `host`.
pub fn reservations_toggle(host: &str) -> String {
    format!("Reservations on {host}")
}

/// A pair of vCPUs and GiB of memory, as every amount of the table reads: "8 / 32".
fn amount(vcpus: u32, gib: u32) -> String {
    format!("{vcpus} / {gib}")
}

/// The whole-line text of one reservation: what it holds, for which VM, and why.
pub fn reservation_text(r: &HeldCapacity) -> String {
    format!(
        "{} vCPU / {} GiB for {} ({})",
        r.vcpus, r.memory_gib, r.vm, r.purpose
    )
}

/// Sums of a site's hosts; a failed host's capacity counts for nothing.
#[derive(Default)]
struct Totals {
    cpus: u32,
    memory_gib: u32,
    used_vcpus: u32,
    used_memory_gib: u32,
    reserved_vcpus: u32,
    reserved_memory_gib: u32,
    free_vcpus: u32,
    free_memory_gib: u32,
}

impl Totals {
    fn add(&mut self, h: &HostCapacity) {
        if !h.failed {
            self.cpus += h.cpus;
            self.memory_gib += h.memory_gib;
        }
        self.used_vcpus += h.used_vcpus;
        self.used_memory_gib += h.used_memory_gib;
        self.reserved_vcpus += h.reserved_vcpus();
        self.reserved_memory_gib += h.reserved_memory_gib();
        self.free_vcpus += h.free_vcpus();
        self.free_memory_gib += h.free_memory_gib();
    }
}

/// The capacity check host by host, folded under its title.
pub fn show(ui: &mut Ui, plan: &FailoverPlan, scan_id: u64) {
    if plan.capacity.is_empty() {
        return;
    }
    let held: usize = plan.capacity.iter().map(|h| h.reserved.len()).sum();
    egui::CollapsingHeader::new(CAPACITY_BY_HOST)
        .id_salt(("failover-capacity", scan_id))
        .default_open(true)
        // Unindented: a narrow panel needs the width.
        .show_unindented(ui, |ui| {
            // Within what the operator sees: narrower than the table, the panel scrolls it
            // sideways rather than cut Free off.
            let visible = visible_width(ui);
            ui.scope(|ui| {
                ui.set_max_width(visible);
                ui.add(
                    egui::Label::new(
                        RichText::new(format!(
                            "vCPU / GiB of memory; free = capacity − running − reserved; {held} reservation(s) held"
                        ))
                        .weak(),
                    )
                    .wrap(),
                );
                // Only when it must: a scroll area takes every scroll-into-view request
                // made inside it, keyboard focus's too, even the vertical ones its panel
                // should follow.
                let width_id = egui::Id::unique(("failover-capacity-width", scan_id));
                let needed = ui.data(|d| d.get_temp::<f32>(width_id)).unwrap_or(0.0);
                let wrap_w = if needed > 0.0 { needed.min(visible) } else { visible };
                let width = if needed > visible + 0.5 {
                    egui::ScrollArea::horizontal()
                        .id_salt(("failover-capacity-scroll", scan_id))
                        .show(ui, |ui| table(ui, plan, scan_id, wrap_w))
                        .content_size
                        .x
                } else {
                    ui.scope(|ui| table(ui, plan, scan_id, wrap_w))
                        .response
                        .rect
                        .width()
                };
                ui.data_mut(|d| d.insert_temp(width_id, width));
            });
        });
}

fn table(ui: &mut Ui, plan: &FailoverPlan, scan_id: u64, wrap_w: f32) {
    // Per site, in the order the plan lists hosts (recovery site first if it does).
    let mut sites: Vec<&str> = Vec::new();
    for h in &plan.capacity {
        if !sites.contains(&h.site.as_str()) {
            sites.push(&h.site);
        }
    }
    let open_id = |host: &str| egui::Id::unique(("failover-capacity-open", scan_id, host));
    // A grid, not a TableBuilder: the latter is a scroll area, and a scroll area takes every
    // scroll-into-view request made inside it (keyboard focus's too), even the vertical
    // ones the failover panel should follow.
    egui::Grid::new(("failover-capacity-grid", scan_id))
        .num_columns(5)
        .striped(true)
        .spacing([6.0, 4.0])
        .min_col_width(36.0)
        .show(ui, |ui| {
            for (h, hint) in [
                ("Host", "Recovery-site hosts, and protected-site hosts holding HA reservations; the arrow lists a host's reservations"),
                ("Capacity", "vCPUs / GiB of memory the host has"),
                ("Running", "vCPUs / GiB used by the VMs running on it"),
                ("Reserved", "vCPUs / GiB held for VMs not running there yet: this failover's placements (blue), HA restarts (amber)"),
                ("Free", "What is left: capacity − running − reserved"),
            ] {
                ui.label(RichText::new(h).strong()).on_hover_text(hint);
            }
            ui.end_row();
            for site in &sites {
                let hosts: Vec<&HostCapacity> =
                    plan.capacity.iter().filter(|h| h.site == *site).collect();
                let role = if hosts.iter().any(|h| h.recovery_site) {
                    "recovery site"
                } else {
                    "protected site"
                };
                let name = format!("{} {site} ({role})", glyph::SITE);
                let heading = RichText::new(&name)
                    .strong()
                    .color(ui.visuals().strong_text_color());
                wide_row(ui, heading, &name, wrap_w, 0.0);
                ui.end_row();
                let mut totals = Totals::default();
                for h in hosts {
                    totals.add(h);
                    let id = open_id(&h.host);
                    let open = ui.data(|d| d.get_temp::<bool>(id).unwrap_or(false));
                    host_row(ui, h, open, id);
                    ui.end_row();
                    if open {
                        for r in &h.reserved {
                            let tone = if r.for_this_failover() {
                                Tone::Busy
                            } else {
                                Tone::Warn
                            };
                            let name = reservation_text(r);
                            let text = style::toned(ui, format!("· {name}"), tone);
                            wide_row(ui, text, &name, wrap_w, 22.0);
                            ui.end_row();
                        }
                    }
                }
                totals_row(ui, site, &totals);
                ui.end_row();
            }
        });
}

fn host_row(ui: &mut Ui, h: &HostCapacity, open: bool, id: egui::Id) {
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 2.0;
        if h.reserved.is_empty() {
            ui.add_space(ARROW_W);
        } else {
            // A collapsing row: the arrow (drawn as a collapsing header's) lists the host's
            // reservations under it.
            let size = egui::vec2(ARROW_W, ui.text_style_height(&egui::TextStyle::Body));
            let (_, b) = ui.allocate_exact_size(size, egui::Sense::click());
            egui::collapsing_header::paint_default_icon(ui, if open { 1.0 } else { 0.0 }, &b);
            let b = b.on_hover_text(format!(
                "{} the {} reservation(s) held on {}",
                if open { "Hide" } else { "List" },
                h.reserved.len(),
                h.host
            ));
            let name = reservations_toggle(&h.host);
            b.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, open, &name));
            if b.clicked() {
                b.ctx.data_mut(|d| d.insert_temp(id, !open));
            }
        }
        if h.failed {
            ui.label(style::toned(ui, &h.host, Tone::Bad))
                .on_hover_text("A failed protected-site host: its capacity counts for nothing");
        } else {
            ui.label(&h.host);
        }
    });
    if h.failed {
        ui.label(style::toned(ui, "failed", Tone::Bad));
    } else {
        ui.label(amount(h.cpus, h.memory_gib));
    }
    ui.label(amount(h.used_vcpus, h.used_memory_gib))
        .on_hover_text(if h.running.is_empty() {
            "No VM runs here".to_string()
        } else {
            format!("Running: {}", h.running.join(", "))
        });
    if h.reserved.is_empty() {
        ui.label(RichText::new("—").weak());
    } else {
        let tone = if h.reserved.iter().all(HeldCapacity::for_this_failover) {
            Tone::Busy
        } else {
            Tone::Warn
        };
        ui.label(style::toned(
            ui,
            amount(h.reserved_vcpus(), h.reserved_memory_gib()),
            tone,
        ))
        .on_hover_text(
            h.reserved
                .iter()
                .map(reservation_text)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let (v, g) = (h.free_vcpus(), h.free_memory_gib());
    let text = amount(v, g);
    if v == 0 || g == 0 {
        ui.label(style::toned(ui, text, Tone::Warn))
            .on_hover_text("No room left on this host");
    } else {
        ui.label(text);
    }
}

/// The width of the arrow that folds a host's reservations.
const ARROW_W: f32 = 12.0;

/// A line as wide as the table, across its cells (a site's heading, a reservation under its
/// host): the cells of a row are too narrow for "8 vCPU / 32 GiB for db-01 (HA restart
/// from esx-pa-1)". Painted over the row's empty cells (grid cells do not clip), so the
/// first column keeps the width of the host names; wraps at `wrap_w`. `name` is its
/// accessible name.
fn wide_row(ui: &mut Ui, text: RichText, name: &str, wrap_w: f32, indent: f32) {
    let galley = egui::WidgetText::from(text).into_galley(
        ui,
        Some(egui::TextWrapMode::Wrap),
        (wrap_w - indent).max(120.0),
        egui::TextStyle::Body,
    );
    // No wider than the column's minimum: the grid would widen the column to it.
    let (rect, r) = ui.allocate_exact_size(egui::vec2(36.0, galley.size().y), egui::Sense::hover());
    ui.painter().galley(
        rect.min + egui::vec2(indent, 0.0),
        galley,
        ui.visuals().text_color(),
    );
    r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, name));
}

fn totals_row(ui: &mut Ui, site: &str, t: &Totals) {
    ui.horizontal(|ui| {
        ui.add_space(ARROW_W + 2.0);
        ui.label(RichText::new("Total").strong())
            .on_hover_text(format!(
                "The hosts of {site} together; a failed host's capacity counts for nothing"
            ));
    });
    for (v, g) in [
        (t.cpus, t.memory_gib),
        (t.used_vcpus, t.used_memory_gib),
        (t.reserved_vcpus, t.reserved_memory_gib),
        (t.free_vcpus, t.free_memory_gib),
    ] {
        ui.label(RichText::new(amount(v, g)).strong());
    }
}

/// The width of `ui` the operator can see from its cursor on: a scroll area's content may
/// be wider than its view, and a table laid out in that width is cut at the panel's edge.
pub fn visible_width(ui: &Ui) -> f32 {
    let left = ui.cursor().left();
    ui.available_width()
        .min(ui.clip_rect().right() - left)
        .max(0.0)
}
