//! The simulation toolbar: workloads on/off, pause/resume, speed, and what is wrong with
//! disaster recovery right now. The simulated time, the speed achieved and the workspace
//! are in the status bar ([`super::status`]).

use egui::{RichText, Ui};

use super::live::Live;
use super::style::{Tone, speed_label};
use super::worker::{Request, SPEEDS};
use super::{Action, MainTab, SideTab};
use crate::engine::Command;

pub fn toolbar(ui: &mut Ui, live: &Live, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let open = live.is_open();
        let clock = live.clock;
        let workloads_on = live.snapshot.as_ref().is_some_and(|s| s.workloads_on);
        let (text, command, hint) = if workloads_on {
            (
                "⏹ Stop workloads",
                Command::StopWorkloads,
                "Stop the simulated guests' reads and writes",
            )
        } else {
            (
                "▶ Start workloads",
                Command::StartWorkloads,
                "Start every VM's simulated guest: stamped writes into its disk and reads that check them",
            )
        };
        if ui
            .add_enabled(open, egui::Button::new(text))
            .on_hover_text(hint)
            .clicked()
        {
            actions.push(Action::Request(Request::Engine(command)));
        }
        ui.separator();
        let (text, request) = if clock.paused {
            ("▶ Resume", Request::Resume)
        } else {
            ("⏸ Pause", Request::Pause)
        };
        if ui
            .add_enabled(open, egui::Button::new(text))
            .on_hover_text("Pause or resume the simulated clock (guests and copies)")
            .clicked()
        {
            actions.push(Action::Request(request));
        }
        ui.add_enabled_ui(open, |ui| {
            for s in SPEEDS {
                if ui
                    .selectable_label(clock.speed == s, speed_label(s))
                    .on_hover_text(format!(
                        "Run the simulated clock at {} wall-clock speed",
                        speed_label(s)
                    ))
                    .clicked()
                {
                    actions.push(Action::Request(Request::SetSpeed(s)));
                }
            }
        });
        if open {
            ui.separator();
            dr_alarms(ui, live, actions);
        }
    });
}

/// A small badge-like button; clicking it shows where the alarm is explained.
fn alarm(ui: &mut Ui, text: &str, tone: Tone, hint: &str) -> bool {
    ui.add(
        egui::Button::new(RichText::new(text).color(egui::Color32::WHITE).small())
            .fill(tone.fill())
            .corner_radius(8.0),
    )
    .on_hover_text(hint)
    .clicked()
}

/// What is wrong with disaster recovery right now, visible from every view: lost sites,
/// the link, RPO violations, a planned failover in flight.
fn dr_alarms(ui: &mut Ui, live: &Live, actions: &mut Vec<Action>) {
    let Some(s) = &live.snapshot else { return };
    for site in &s.sites_down {
        if alarm(
            ui,
            &format!("site {site} down"),
            Tone::Bad,
            "Lost in a disaster. Click for the failover panel.",
        ) {
            actions.push(Action::ShowMain(MainTab::Failover));
        }
    }
    let link = live.link();
    let lost = matches!(link, Some(super::live::LinkState::SiteLost(_)));
    if link.is_some_and(|l| !l.is_up())
        && alarm(
            ui,
            "replication link down",
            if lost { Tone::Bad } else { Tone::Warn },
            if lost {
                "A site is lost: nothing replicates between the sites. Click for the replication view."
            } else {
                "Nothing publishes while the link is down. Click for the replication view."
            },
        )
    {
        actions.push(Action::ShowSide(SideTab::Replication));
    }
    let late = super::status::rpo_alarms(live);
    if !late.is_empty()
        && alarm(
            ui,
            &format!("RPO violated: {}", late.join(", ")),
            Tone::Bad,
            "These groups lag more than their RPO. Click for the replication view.",
        )
    {
        actions.push(Action::ShowSide(SideTab::Replication));
    }
    if let Some(f) = &s.failover
        && f.state == crate::engine::FailoverState::Running
        && alarm(
            ui,
            &format!("failover #{} running", f.id),
            Tone::Busy,
            "A planned failover waits for its final replication cycle. Click for the failover panel.",
        )
    {
        actions.push(Action::ShowMain(MainTab::Failover));
    }
}
