//! The migration wizard: choose a VM, then a destination by its DR rating, then review
//! what the move could lose, pick the copy mode, confirm, and start.

use egui::{RichText, Ui};

use super::Document;
use super::live::Live;
use super::style::{self, Tone, glyph};
use crate::dr::{Impact, Rating};
use crate::engine::Command;
use crate::engine::copy::CopyMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Vm,
    Destination,
    Review,
}

impl Step {
    const ALL: [(Step, &'static str); 3] = [
        (Step::Vm, "1  VM"),
        (Step::Destination, "2  Destination"),
        (Step::Review, "3  Review"),
    ];
}

pub struct Wizard {
    pub open: bool,
    step: Step,
    vm: Option<String>,
    to: Option<String>,
    pub mode: CopyMode,
    /// The operator's "Are you sure?" for a move rated above `none`.
    pub confirmed: bool,
    /// Press Start on the next frame if it is enabled then ([`Wizard::press_start`]).
    press_start: bool,
    /// Step 1's search: the VMs whose id, host or datastore contain it (any case).
    pub search: String,
}

impl Default for Wizard {
    fn default() -> Self {
        Wizard {
            open: false,
            step: Step::Vm,
            vm: None,
            to: None,
            mode: CopyMode::Mirror,
            confirmed: false,
            press_start: false,
            search: String::new(),
        }
    }
}

/// The window's title (also its accessible name).
pub const TITLE: &str = "Migrate a VM";
/// The start button's text.
pub const START: &str = "Start migration";
/// Step 1's search box (its accessible name).
pub const FIND: &str = "Find a VM";

/// The window's size, the same on every step (capped by the screen), so it does not jump
/// or resize as the pages change; a page taller than it scrolls above the fixed footer.
const SIZE: egui::Vec2 = egui::vec2(580.0, 500.0);

impl Wizard {
    /// Opens at the destination step for `vm`, or at the first step.
    pub fn open_for(&mut self, vm: Option<String>) {
        *self = Wizard {
            open: true,
            step: if vm.is_some() {
                Step::Destination
            } else {
                Step::Vm
            },
            vm,
            ..Wizard::default()
        };
    }

    pub fn step(&self) -> Step {
        self.step
    }

    /// Opens at the review page of moving `vm` to `to` in `mode`, "Are you sure?" not yet
    /// ticked (the demo player drives the wizard through here). A VM or destination the
    /// wizard does not offer sends it back a page, as when the topology changes under it.
    pub fn prefill(&mut self, vm: &str, to: &str, mode: CopyMode) {
        *self = Wizard {
            open: true,
            step: Step::Review,
            vm: Some(vm.to_string()),
            to: Some(to.to_string()),
            mode,
            ..Wizard::default()
        };
    }

    /// Presses Start on the next frame, as a click would; nothing happens if Start is
    /// disabled then (the review page says why).
    pub fn press_start(&mut self) {
        self.press_start = true;
    }

    /// Draws the window; returns the command to send when Start was pressed.
    pub fn show(&mut self, ctx: &egui::Context, doc: &Document, live: &Live) -> Option<Command> {
        // A press is for the next frame only.
        let press = std::mem::take(&mut self.press_start);
        if !self.open {
            return None;
        }
        self.revalidate(doc);
        let step = self.step;
        let mut open = true;
        let mut command = None;
        // Below the top bars (and a demo's caption), so the caption stays readable.
        let mut area = ctx.content_rect();
        area.min.y = area.min.y.max(super::demo::content_top(ctx));
        let margin = 16.0;
        let size = SIZE
            .min(area.size() - egui::vec2(2.0 * margin, 2.0 * margin + 40.0))
            .max(egui::vec2(280.0, 200.0));
        egui::Window::new(TITLE)
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .fixed_size(size)
            // Its top edge stays where it opened: a page of another height does not move
            // the steps header or the buttons.
            .pivot(egui::Align2::CENTER_TOP)
            .default_pos(egui::pos2(area.center().x, area.top() + margin))
            .constrain_to(area)
            .show(ctx, |ui| {
                self.steps_header(ui);
                ui.separator();
                // The footer first, at the bottom: Start and what it waits for ("Are you
                // sure?") stay in view however long the page above them.
                egui::Panel::bottom("wizard-footer")
                    .show_separator_line(true)
                    .show(ui, |ui| command = self.footer(ui, doc, live, press));
                match self.step {
                    Step::Vm => self.choose_vm(ui, doc, live),
                    Step::Destination => {
                        egui::ScrollArea::vertical()
                            .id_salt("wizard-destination")
                            .auto_shrink([false, false])
                            .show(ui, |ui| self.choose_destination(ui, doc, live));
                    }
                    Step::Review => {
                        egui::ScrollArea::vertical()
                            .id_salt("wizard-review")
                            .auto_shrink([false, false])
                            .show(ui, |ui| self.review(ui, doc, live));
                    }
                }
            });
        if !open || command.is_some() {
            self.open = false;
        }
        if self.step != step {
            // A click on this frame turned the page: draw the new one now, not on the
            // next input.
            ctx.request_repaint();
        }
        command
    }

    /// The move under review: the VM, its destination, the impact.
    fn reviewed(&self, doc: &Document) -> Option<(String, String, Impact)> {
        let (vm, to) = (self.vm.clone()?, self.to.clone()?);
        let impact = doc.destinations(&vm).iter().find(|i| i.to == to)?.clone();
        Some((vm, to, impact))
    }

    /// What Start sends now, or why it cannot start.
    fn start_state(&self, doc: &Document, live: &Live) -> Result<Command, String> {
        let pick_destination = || "Pick a destination to review the move.".to_string();
        match self.step {
            Step::Vm => return Err("Pick a VM, then a destination, to review the move.".into()),
            Step::Destination => return Err(pick_destination()),
            Step::Review => {}
        }
        let Some((vm, to, impact)) = self.reviewed(doc) else {
            return Err(pick_destination());
        };
        let need = doc.topology.vm(&vm).map_or(0, |v| v.disk_mib);
        let fits = live.free_mib.get(&to).is_some_and(|&f| f >= need);
        let needs_override = impact.rating > Rating::None;
        if !live.is_open() {
            Err("No workspace is open: nothing can move.".to_string())
        } else if let Some(m) = live.migration_of(&vm) {
            Err(format!("{vm} is already migrating to {}.", m.to))
        } else if !fits {
            Err(format!("{to} does not have room for {vm}."))
        } else if needs_override && !self.confirmed {
            Err(format!(
                "Tick \"Are you sure?\" to start a move rated {}.",
                impact.rating
            ))
        } else {
            Ok(Command::Migrate {
                vm,
                to,
                mode: self.mode,
                confirm: needs_override && self.confirmed,
            })
        }
    }

    /// "Are you sure?" (for a rated move under review), Back, and Start: enabled only when
    /// the move can start, else greyed out with why (beside it and on hover).
    fn footer(&mut self, ui: &mut Ui, doc: &Document, live: &Live, press: bool) -> Option<Command> {
        ui.add_space(4.0);
        if self.step == Step::Review
            && let Some((vm, _, impact)) = self.reviewed(doc)
            && impact.rating > Rating::None
        {
            are_you_sure(
                ui,
                &mut self.confirmed,
                &format!("Move {vm}"),
                (impact.rating, impact.fault),
            );
            ui.add_space(2.0);
        }
        let start = self.start_state(doc, live);
        let mut command = None;
        ui.horizontal(|ui| {
            let back = ui.add_enabled(self.step != Step::Vm, egui::Button::new("◀ Back"));
            if back.clicked() {
                self.step = match self.step {
                    Step::Review => Step::Destination,
                    _ => Step::Vm,
                };
                self.confirmed = false;
            }
            // Strong text only when it can start: strong text greyed out still reads as
            // enabled.
            let text = RichText::new(START);
            let text = if start.is_ok() { text.strong() } else { text };
            let button = ui
                .add_enabled(start.is_ok(), egui::Button::new(text))
                .on_disabled_hover_text(start.as_ref().err().cloned().unwrap_or_default());
            match start {
                Err(why) => {
                    let why = RichText::new(why);
                    ui.add(
                        egui::Label::new(if self.step == Step::Review {
                            why.color(ui.visuals().warn_fg_color)
                        } else {
                            why.weak()
                        })
                        .wrap(),
                    );
                }
                Ok(c) => {
                    if button.clicked() || press {
                        command = Some(c);
                    }
                }
            }
        });
        ui.add_space(2.0);
        command
    }

    /// Steps back when the topology changed under the wizard (a VM moved or vanished).
    fn revalidate(&mut self, doc: &Document) {
        let t = &doc.topology;
        let Some(vm) = self.vm.as_deref() else {
            self.step = Step::Vm;
            return;
        };
        if t.vm(vm).is_none() {
            self.vm = None;
            self.to = None;
            self.step = Step::Vm;
            return;
        }
        if self.step == Step::Review {
            let ok = self
                .to
                .as_deref()
                .is_some_and(|to| doc.destinations(vm).iter().any(|i| i.to == to));
            if !ok {
                self.to = None;
                self.confirmed = false;
                self.step = Step::Destination;
            }
        }
    }

    fn steps_header(&self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            for (i, (step, text)) in Step::ALL.iter().enumerate() {
                if i > 0 {
                    ui.label(RichText::new("›").weak());
                }
                if *step == self.step {
                    ui.label(RichText::new(*text).strong());
                } else {
                    ui.label(RichText::new(*text).weak());
                }
            }
        });
    }

    /// The VMs matching step 1's search, by index in the topology.
    fn found(&self, t: &crate::topology::Topology) -> Vec<usize> {
        let needle = self.search.trim().to_lowercase();
        t.vms
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                needle.is_empty()
                    || [&v.id, &v.host, &v.datastore]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&needle))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Step 1: the search, and the VMs it finds in a list that fills the page.
    fn choose_vm(&mut self, ui: &mut Ui, doc: &Document, live: &Live) {
        let t = &doc.topology;
        ui.label("Which VM's disk should move?");
        ui.add_space(4.0);
        if t.vms.is_empty() {
            ui.weak("This topology has no VMs.");
            return;
        }
        ui.horizontal(|ui| {
            let label = ui.label(FIND);
            ui.add(
                egui::TextEdit::singleline(&mut self.search)
                    .hint_text("id, host or datastore")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        });
        ui.add_space(4.0);
        let found = self.found(t);
        if found.is_empty() {
            ui.weak(format!(
                "No VM matches \"{}\" (by id, host or datastore).",
                self.search.trim()
            ));
            return;
        }
        let row_h = ui.spacing().interact_size.y;
        egui::ScrollArea::vertical()
            .id_salt("wizard-vms")
            .auto_shrink([false, false])
            .show_rows(ui, row_h, found.len(), |ui, rows| {
                egui::Grid::new("wizard-vms")
                    .num_columns(3)
                    .spacing([12.0, ui.spacing().item_spacing.y])
                    .show(ui, |ui| {
                        for v in found[rows].iter().map(|&i| &t.vms[i]) {
                            let migrating = live.migration_of(&v.id);
                            let pick = ui.add_enabled(
                                migrating.is_none(),
                                egui::Button::selectable(false, format!("{} {}", glyph::VM, v.id)),
                            );
                            if pick.clicked() {
                                self.vm = Some(v.id.clone());
                                self.to = None;
                                self.confirmed = false;
                                self.step = Step::Destination;
                            }
                            ui.label(
                                RichText::new(format!("on {} {}", glyph::DATASTORE, v.datastore))
                                    .weak(),
                            );
                            match migrating {
                                Some(m) => ui.label(
                                    RichText::new(format!("already migrating to {}", m.to)).weak(),
                                ),
                                None => ui.label(""),
                            };
                            ui.end_row();
                        }
                    });
            });
    }

    fn choose_destination(&mut self, ui: &mut Ui, doc: &Document, live: &Live) {
        let t = &doc.topology;
        let Some(vm) = self.vm.clone() else { return };
        let Some(v) = t.vm(&vm) else { return };
        ui.label(
            RichText::new(format!("Where should {} {} go?", glyph::VM, vm))
                .heading()
                .size(17.0),
        );
        ui.label(
            RichText::new(format!(
                "It is on {} {}. Every other protected datastore, safest first: pick one to review.",
                glyph::DATASTORE,
                v.datastore
            ))
            .weak(),
        );
        ui.add_space(6.0);
        let dests = doc.destinations(&vm);
        if dests.is_empty() {
            ui.weak("There is no other protected-site datastore to move to.");
        } else {
            egui::Grid::new("wizard-destinations")
                .num_columns(4)
                .striped(true)
                .spacing([14.0, 6.0])
                .show(ui, |ui| {
                    ui.strong("Destination");
                    ui.strong("Rating");
                    ui.strong("Fault");
                    ui.strong("Free");
                    ui.end_row();
                    for i in dests.iter() {
                        let pick = ui
                            .selectable_label(false, format!("{} {}", glyph::DATASTORE, i.to))
                            .on_hover_ui(|ui| {
                                ui.set_max_width(420.0);
                                ui.label(&i.explanation);
                            });
                        if pick.clicked() {
                            self.to = Some(i.to.clone());
                            self.confirmed = false;
                            self.step = Step::Review;
                        }
                        ui.label(style::rating_text(ui, i.rating));
                        ui.label(i.fault.map(|f| f.as_str()).unwrap_or("allowed"));
                        ui.label(
                            live.free_mib
                                .get(&i.to)
                                .map(|&f| size(f))
                                .unwrap_or_else(|| "—".into()),
                        );
                        ui.end_row();
                    }
                });
        }
        if live.free_mib.is_empty() {
            ui.add_space(8.0);
            ui.label(RichText::new("Free space shows once the workspace is open.").weak());
        }
    }

    /// The review page: the rating and what it means, the copy mode, space and time ("Are
    /// you sure?" and Start are in the footer).
    fn review(&mut self, ui: &mut Ui, doc: &Document, live: &Live) {
        let t = &doc.topology;
        let Some((vm, to, impact)) = self.reviewed(doc) else {
            return;
        };
        let Some(v) = t.vm(&vm) else { return };
        let dark = ui.visuals().dark_mode;
        let color = style::rating_color(impact.rating, dark);

        ui.label(
            RichText::new(format!(
                "Move {} {vm} from {} {} to {} {to}",
                glyph::VM,
                glyph::DATASTORE,
                impact.from,
                glyph::DATASTORE
            ))
            .heading()
            .size(17.0),
        );
        ui.add_space(4.0);
        egui::Grid::new("wizard-review")
            .num_columns(2)
            .spacing([16.0, 4.0])
            .show(ui, |ui| {
                ui.label(RichText::new("Rating").weak());
                ui.label(style::rating_text(ui, impact.rating));
                ui.end_row();
                ui.label(RichText::new("Fault").weak());
                ui.label(
                    impact
                        .fault
                        .map(|f| f.as_str())
                        .unwrap_or("none: the move is allowed"),
                );
                ui.end_row();
            });
        ui.add_space(4.0);
        egui::Frame::group(ui.style())
            .stroke(egui::Stroke::new(1.0, color))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(&impact.explanation);
            });

        ui.add_space(8.0);
        ui.strong("Copy mode");
        ui.horizontal(|ui| {
            for m in CopyMode::ALL {
                ui.radio_value(&mut self.mode, m, m.as_str());
            }
        });
        mode_note(ui, self.mode);

        ui.add_space(8.0);
        ui.strong("Space and time");
        let need = v.disk_mib;
        let free = live.free_mib.get(&to).copied();
        let fits = free.is_some_and(|f| f >= need);
        match free {
            Some(f) if fits => ui.label(format!(
                "{to} has {} free; {vm} needs {}.",
                size(f),
                size(need)
            )),
            Some(f) => ui.label(
                RichText::new(format!(
                    "{to} has only {} free; {vm} needs {}.",
                    size(f),
                    size(need)
                ))
                .color(ui.visuals().error_fg_color),
            ),
            None => ui.label(RichText::new("Free space is unknown: no workspace is open.").weak()),
        };
        let rate = |id: &str| t.datastore(id).map_or(400.0, |d| d.throughput_mib_s);
        let mib_s = rate(&impact.from).min(rate(&to));
        ui.label(
            RichText::new(format!(
                "Copies at {} MiB/s (the slower datastore): about {} of simulated time, plus what the guest writes meanwhile.",
                super::style::rate_text(mib_s),
                super::style::duration_text(need as f64 / mib_s)
            ))
            .weak(),
        );
    }
}

/// What a disaster mid-copy leaves at the source in `mode`: a plain note for mirror, a
/// warning (framed and colored as the rating's risk above it) for the modes that lose
/// writes (redirect) or leave the source inconsistent (split).
fn mode_note(ui: &mut Ui, mode: CopyMode) {
    let tone = match mode {
        CopyMode::Mirror => {
            ui.label(RichText::new(mode.disaster_note()).weak());
            return;
        }
        CopyMode::Redirect => Tone::Warn,
        CopyMode::Split => Tone::Bad,
    };
    let color = tone.text(ui.visuals().dark_mode);
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.5, color))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(style::toned(
                ui,
                format!("⚠ {}", mode.disaster_note()),
                tone,
            ));
        });
}

/// The "Are you sure?" box of a move rated above `none` (`what`: "Move web-01"), framed in
/// the rating's color.
pub(super) fn are_you_sure(
    ui: &mut Ui,
    confirmed: &mut bool,
    what: &str,
    (rating, fault): (Rating, Option<crate::dr::Fault>),
) {
    let color = style::rating_color(rating, ui.visuals().dark_mode);
    egui::Frame::group(ui.style())
        .stroke(egui::Stroke::new(1.5, color))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.checkbox(
                confirmed,
                format!(
                    "Are you sure? {what} anyway and accept the {rating} risk ({}). The override is recorded in the event log.",
                    fault.map(|f| f.as_str()).unwrap_or("none")
                ),
            );
        });
}

/// MiB as "64 MiB" or "255.9 GiB".
pub fn size(mib: u64) -> String {
    super::style::mib_text(mib)
}
