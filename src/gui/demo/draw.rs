//! The demo's drawing: the Demo menu, the player bar and the caption strip.

use egui::{RichText, Ui};

use super::super::DrApp;
use super::super::style::{self, Tone};
use super::*;

fn outcome_tone(o: StepOutcome) -> Tone {
    match o {
        StepOutcome::Ok => Tone::Busy,
        StepOutcome::Pass => Tone::Good,
        StepOutcome::Refused => Tone::Warn,
        StepOutcome::Error | StepOutcome::Fail => Tone::Bad,
    }
}

/// The caption strip's least inner height: a counter line and one line of caption, so a
/// one-line caption and a two-line one move the console by one line at most.
const CAPTION_HEIGHT: f32 = 50.0;

impl DrApp {
    /// The Demo menu: the sample scenarios and "Open scenario…".
    pub(crate) fn demo_menu(&mut self, ui: &mut Ui) {
        let mut chosen = None;
        match &self.demo.samples {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak("Looking for sample scenarios…");
                });
            }
            Some(s) if s.is_empty() => {
                ui.weak(format!(
                    "No {SAMPLES_DIR}/ directory here or next to the crate."
                ));
            }
            Some(samples) => {
                for s in samples {
                    if ui
                        .button(&s.name)
                        .on_hover_text(format!(
                            "Play {} from the start in a fresh demo workspace",
                            s.path.display()
                        ))
                        .clicked()
                    {
                        chosen = Some(s.path.clone());
                    }
                }
            }
        }
        ui.separator();
        if ui
            .button(OPEN_SCENARIO)
            .on_hover_text("Play a scenario file (SPEC §10) with captions")
            .clicked()
        {
            self.demo_open_dialog();
        }
        if let Some(path) = chosen {
            self.demo_open(path);
        }
    }

    /// The player bar, shown while a demo is loaded.
    pub(crate) fn demo_bar(&mut self, ui: &mut Ui) {
        if self.demo.player.is_none() {
            return;
        }
        let mut click = None;
        egui::Panel::top("demo_bar").show(ui, |ui| {
            let Some(p) = self.demo.player.as_ref() else {
                return;
            };
            ui.add_space(2.0);
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("🎬 {}", p.script.scenario.name)).strong())
                    .on_hover_text(p.script.path.display().to_string());
                ui.separator();
                let can_play = !p.finished() && p.stage != Stage::Opening;
                if p.playing && !p.finished() {
                    if ui
                        .button(PAUSE)
                        .on_hover_text("Stop after this step (F5)")
                        .clicked()
                    {
                        click = Some(PAUSE);
                    }
                } else if ui
                    .add_enabled(can_play, egui::Button::new(PLAY))
                    .on_hover_text("Run the steps one after the other, in simulated time (F5)")
                    .clicked()
                {
                    click = Some(PLAY);
                }
                let can_step = matches!(
                    p.stage,
                    Stage::Arriving { .. } | Stage::AtStep(_) | Stage::Reading { .. }
                );
                if ui
                    .add_enabled(can_step, egui::Button::new(STEP))
                    .on_hover_text("Run the next step now, then wait (Page Down)")
                    .clicked()
                {
                    click = Some(STEP);
                }
                if ui
                    .button(RESTART)
                    .on_hover_text("Start over from the scenario's topology in a fresh workspace")
                    .clicked()
                {
                    click = Some(RESTART);
                }
                if ui
                    .button(CLOSE)
                    .on_hover_text(
                        "End the demo and go back to the topology, workspace and clock speed from before it",
                    )
                    .clicked()
                {
                    click = Some(CLOSE);
                }
                ui.separator();
                ui.label(RichText::new(p.counter()).monospace().strong());
                let (pass, fail) = p.verdicts();
                if pass + fail > 0 {
                    ui.label(style::toned(ui, format!("✔ {pass} passed"), Tone::Good));
                    if fail > 0 {
                        ui.label(style::toned(ui, format!("✘ {fail} failed"), Tone::Bad));
                    }
                }
                let state = match (&p.error, p.stage) {
                    (Some(e), _) => style::toned(ui, format!("stopped: {e}"), Tone::Bad),
                    (None, Stage::Opening) => RichText::new("creating the workspace…").weak(),
                    (None, Stage::Finished) => style::toned(ui, "finished", Tone::Done),
                    (None, Stage::Arriving { .. } | Stage::AtStep(_)) => match p.step() {
                        Some(s) => RichText::new(format!(
                            "next: step {} at {}",
                            p.next + 1,
                            mm_ss(from_minutes(s.at))
                        ))
                        .weak(),
                        None => RichText::new(""),
                    },
                    (None, _) => RichText::new(""),
                };
                ui.label(state);
            });
            ui.add_space(2.0);
        });
        match click {
            Some(PLAY) => self.demo_play(),
            Some(PAUSE) => self.demo_pause(),
            Some(STEP) => self.demo_step(),
            Some(RESTART) => self.demo_restart(),
            Some(CLOSE) => self.demo_close(),
            _ => {}
        }
    }

    /// The caption, in a strip of its own under the player bar: docked, it covers no panel
    /// (floating over the middle, it hid the very rows and buttons a step acts on), and the
    /// windows and confirmations a step opens are placed below it ([`content_top`]). The
    /// strip keeps its height from step to step, so the console does not jump.
    pub(crate) fn demo_caption(&self, ui: &mut Ui) {
        let Some(c) = self.demo.player.as_ref().and_then(|p| p.caption.as_ref()) else {
            return;
        };
        let total = self.demo.player.as_ref().map_or(0, |p| p.total());
        let dark = ui.visuals().dark_mode;
        let fill = if dark {
            egui::Color32::from_gray(12)
        } else {
            egui::Color32::from_gray(250)
        };
        let stroke = c.outcome.map_or(Tone::Muted, outcome_tone).text(dark);
        egui::Panel::top("demo_caption")
            .resizable(false)
            .frame(
                egui::Frame::new()
                    .fill(fill)
                    .stroke(egui::Stroke::new(2.0, stroke))
                    .inner_margin(egui::Margin::symmetric(16, 8)),
            )
            .show(ui, |ui| {
                ui.set_min_height(CAPTION_HEIGHT);
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new(format!(
                            "Step {} of {total}  ·  sim {}",
                            c.number,
                            mm_ss(c.at)
                        ))
                        .weak(),
                    );
                    if let Some(o) = c.outcome {
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!("{} — {}", outcome_words(o), c.detail))
                                    .size(15.0)
                                    .color(outcome_tone(o).text(dark)),
                            )
                            .truncate(),
                        )
                        .on_hover_text(&c.detail);
                    }
                });
                ui.add(egui::Label::new(RichText::new(&c.text).size(22.0).strong()).wrap());
            });
    }
}
