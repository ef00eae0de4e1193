//! The Resilience tab's section on protected-site hosts: health, load, VMs, reservations
//! held for impacted VMs; after a fault, the impacted VMs and where each is reserved or why
//! it does not fit, with boot progress; fail and repair a host.

use egui::{Color32, RichText, Ui};

use super::live::mm_ss;
use super::style::{self, Tone};
use super::worker::Request;
use super::{Action, Document, Live};
use crate::engine::{Command, HostView, SimTime};

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {}

/// The accessible name (and text) of a host's fail button.
pub fn fail_button(host: &str) -> String {
    format!("Fail {host}")
}

/// The accessible name (and text) of a failed host's repair button.
pub fn repair_button(host: &str) -> String {
    format!("Repair {host}")
}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    _doc: &Document,
    live: &Live,
    _state: &mut State,
    actions: &mut Vec<Action>,
) {
    ui.heading("Hosts");
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        super::status::not_running(ui, live, "No workspace is open, so no host runs VMs.");
        return;
    };
    if snap.hosts.is_empty() {
        ui.label(RichText::new("This topology has no protected-site host.").weak());
        return;
    }
    ui.label(
        RichText::new(
            "When a host fails, its VMs stop; capacity is reserved on the other healthy hosts of its site (priority 1 first, best fit) and they restart there after a short boot. What fits nowhere stays down until a repair.",
        )
        .weak(),
    );
    ui.add_space(2.0);
    for h in &snap.hosts {
        let site_down = snap.sites_down.contains(&h.site);
        host_card(ui, h, snap.now, site_down, actions);
        ui.add_space(3.0);
    }
}

fn host_card(ui: &mut Ui, h: &HostView, now: SimTime, site_down: bool, actions: &mut Vec<Action>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("🖥 {}", h.id)).strong());
            ui.label(RichText::new(format!("site {}", h.site)).weak());
            if h.failed {
                style::badge(ui, "failed", Tone::Bad, "The host is down; its VMs were stopped");
            } else if site_down {
                style::badge(ui, "site down", Tone::Bad, "The whole site was lost");
            } else {
                style::badge(ui, "healthy", Tone::Good, "");
            }
            load_bar(
                ui,
                "vCPU",
                h.used_vcpus,
                h.reserved_vcpus(),
                h.cpus,
                h.failed,
            );
            load_bar(
                ui,
                "GiB",
                h.used_memory_gib,
                h.reserved_memory_gib(),
                h.memory_gib,
                h.failed,
            );
            if h.failed {
                let b = ui
                    .button(repair_button(&h.id))
                    .on_hover_text("The host is repaired: VMs still down for lack of room restart, on it first");
                if b.clicked() {
                    actions.push(Action::Request(Request::Engine(Command::HostHealthy {
                        host: h.id.clone(),
                    })));
                }
            } else {
                let b = ui
                    .add_enabled(!site_down, egui::Button::new(fail_button(&h.id)))
                    .on_hover_text("Simulate a host failure: its VMs stop, capacity is reserved elsewhere and they restart there")
                    .on_disabled_hover_text("Its site is down");
                if b.clicked() {
                    actions.push(Action::Request(Request::Engine(Command::HostFault {
                        host: h.id.clone(),
                    })));
                }
            }
        });
        let vms = if h.vms.is_empty() {
            "none".to_string()
        } else {
            h.vms.join(", ")
        };
        ui.label(RichText::new(format!("Runs: {vms}")).weak());
        for r in &h.reservations {
            ui.label(style::toned(
                ui,
                format!(
                    "Holds {} vCPU / {} GiB for {} (from failed {}), boots at {}",
                    r.vcpus,
                    r.memory_gib,
                    r.vm,
                    r.from_host,
                    mm_ss(r.restart_at)
                ),
                Tone::Busy,
            ));
        }
        if let Some(f) = &h.fault {
            let title = match f.repaired_at {
                None => format!(
                    "Fault at {}: {} VM(s) impacted",
                    mm_ss(f.at),
                    f.impacted.len()
                ),
                Some(r) => format!(
                    "Last fault at {}, repaired at {}: {} VM(s) impacted",
                    mm_ss(f.at),
                    mm_ss(r),
                    f.impacted.len()
                ),
            };
            egui::CollapsingHeader::new(title)
                .id_salt(("host-fault", &h.id, f.at))
                .default_open(f.repaired_at.is_none())
                .show(ui, |ui| {
                    if f.impacted.is_empty() {
                        ui.label(RichText::new("No VM was running on it.").weak());
                    }
                    egui::Grid::new(("host-impacted", &h.id, f.at))
                        .num_columns(3)
                        .spacing([10.0, 3.0])
                        .show(ui, |ui| {
                            for v in &f.impacted {
                                ui.label(format!("P{}", v.priority));
                                ui.label(format!(
                                    "{} ({} vCPU / {} GiB)",
                                    v.vm, v.vcpus, v.memory_gib
                                ));
                                ui.horizontal(|ui| {
                                    let tone = match v.fate.kind() {
                                        "running" => Tone::Good,
                                        "reserved" => Tone::Busy,
                                        "no-room" => Tone::Bad,
                                        "abandoned" => Tone::Warn,
                                        _ => Tone::Muted,
                                    };
                                    if let Some(p) = v.fate.boot_progress(now) {
                                        ui.add(
                                            egui::ProgressBar::new(p)
                                                .desired_width(70.0)
                                                .text(format!("{:.0}%", p * 100.0)),
                                        );
                                    }
                                    ui.label(style::toned(ui, v.fate.describe(), tone));
                                });
                                ui.end_row();
                            }
                        });
                });
        }
    });
}

/// A small load bar: used (solid), reserved (amber) out of the capacity, with its figures.
fn load_bar(ui: &mut Ui, unit: &str, used: u32, reserved: u32, cap: u32, failed: bool) {
    let text = if reserved > 0 {
        format!("{used}+{reserved} reserved / {cap} {unit}")
    } else {
        format!("{used} / {cap} {unit}")
    };
    let size = egui::vec2(64.0, 9.0);
    let (rect, resp) = ui.allocate_exact_size(size, egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let dark = ui.visuals().dark_mode;
        let p = ui.painter();
        p.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
        let cap_f = cap.max(1) as f32;
        let u = (used as f32 / cap_f).min(1.0);
        let r = (reserved as f32 / cap_f).min(1.0 - u);
        let used_color = if failed {
            Color32::GRAY
        } else {
            Tone::Busy.text(dark)
        };
        let mut a = rect;
        a.set_width(rect.width() * u);
        p.rect_filled(a, 3.0, used_color);
        let mut b = rect;
        b.min.x = a.max.x;
        b.set_width(rect.width() * r);
        p.rect_filled(b, 0.0, Tone::Warn.text(dark));
        p.rect_stroke(
            rect,
            3.0,
            egui::Stroke::new(1.0, ui.visuals().weak_text_color()),
            egui::StrokeKind::Inside,
        );
    }
    resp.on_hover_text(format!(
        "{text}: used by running VMs, reserved for VMs booting here"
    ));
    ui.label(RichText::new(text).small());
}
