//! The Resilience tab's section on moving a consistency group to the other site while it
//! runs (SPEC §12): plan it (members, destination replicas, reserved hosts, the rating and
//! what it means), confirm, start; then its phases, what crossed the link, and Cancel.

use egui::{RichText, Ui};

use super::live::mm_ss;
use super::style::{self, Tone};
use super::worker::Request;
use super::{Action, Live};
use crate::dr::Rating;
use crate::engine::{
    AcrossOp, AcrossPhase, AcrossPlan, Command, Consistency, SimTime, format_duration,
    link_write_time,
};

/// Accessible names of the section's controls.
pub const CG: &str = "Cross-site move consistency group";
/// The two ways to move (radio buttons).
pub const KEEP: &str = "Keep consistency: synchronous, one switch for all";
pub const BREAK: &str = "Break consistency: one VM at a time, no synchronous replication";
pub const PLAN: &str = "Plan the cross-site move";
/// The start of the "Are you sure?" checkbox (its label names the move).
pub const SURE: &str = "Are you sure?";
pub const START: &str = "Move to the other site";
pub const CANCEL: &str = "Cancel the cross-site move";

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {
    pub cg: Option<String>,
    pub consistency: Consistency,
    pub sure: bool,
    next_id: u64,
    /// The plan asked for and not answered yet.
    waiting: Option<u64>,
    /// The latest plan: for which CG, when, and what the engine said.
    pub plan: Option<(String, SimTime, Result<AcrossPlan, String>)>,
}

impl State {
    /// The worker's answer to plan request `id`.
    pub fn on_plan(
        &mut self,
        id: u64,
        cg: String,
        at: SimTime,
        result: Result<AcrossPlan, String>,
    ) {
        if self.waiting == Some(id) {
            self.waiting = None;
            self.plan = Some((cg, at, result));
        }
    }
}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(ui: &mut Ui, live: &Live, state: &mut State, actions: &mut Vec<Action>) {
    ui.heading("Move a consistency group to the other site");
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        super::status::not_running(ui, live, "No workspace is open: nothing can move.");
        return;
    };
    let cgs: Vec<&crate::engine::GroupView> = snap
        .groups
        .iter()
        .filter(|g| g.consistency_group.is_some())
        .collect();
    if cgs.is_empty() {
        ui.label(RichText::new("This topology has no replicated consistency group.").weak());
        return;
    }
    ui.label(
        RichText::new(
            "Moves every VM of a replicated CG onto its replicas at the other site while the guests run. Keeping consistency, replication turns synchronous, only what the other site lacks is shipped, all VMs switch at one instant onto reserved hosts, and their writes are mirrored back until the other site has published a recovery point: a failure before then fails the group back with nothing lost. Breaking it, the VMs move one at a time without synchronous replication, a record of the source CG is the fail-back, and consistency is restored at the other site before the move succeeds.",
        )
        .weak(),
    );
    let cg = state
        .cg
        .clone()
        .filter(|c| cgs.iter().any(|g| g.consistency_group.as_ref() == Some(c)))
        .unwrap_or_else(|| cgs[0].consistency_group.clone().unwrap_or_default());
    let mut chosen = cg.clone();
    ui.horizontal(|ui| {
        ui.label("Consistency group");
        egui::ComboBox::from_id_salt("across-cg")
            .selected_text(&cg)
            .show_ui(ui, |ui| {
                for g in &cgs {
                    let c = g.consistency_group.clone().unwrap_or_default();
                    let text = format!("{c} ({} to {})", g.source_site, g.target_site);
                    ui.selectable_value(&mut chosen, c, text);
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, CG));
        let asking = state.waiting.is_some();
        if ui
            .add_enabled(!asking, egui::Button::new(PLAN))
            .on_hover_text(
                "Which VMs move, to which replicas and hosts, and the rating: changes nothing",
            )
            .clicked()
        {
            state.next_id += 1;
            state.waiting = Some(state.next_id);
            actions.push(Action::PlanAcross {
                id: state.next_id,
                consistency_group: chosen.clone(),
                consistency: state.consistency,
            });
        }
    });
    let before = state.consistency;
    // One per line: each says what it does, which a narrow panel must not cut off.
    ui.radio_value(&mut state.consistency, Consistency::Keep, KEEP);
    ui.radio_value(&mut state.consistency, Consistency::Break, BREAK);
    if chosen != cg || before != state.consistency {
        state.sure = false;
        state.plan = None;
        state.waiting = None;
    }
    state.cg = Some(chosen.clone());
    let running = snap.across.iter().find(|o| o.phase.active());
    match state.plan.clone().filter(|(c, ..)| *c == chosen) {
        Some((_, _, Err(e))) => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Cannot move {chosen}: {e}"),
            );
        }
        Some((for_cg, at, Ok(plan))) => {
            plan_view(ui, &for_cg, at, &plan, state, running.is_some(), actions)
        }
        None if state.waiting.is_none() => {
            ui.label(RichText::new(format!("Press \"{PLAN}\" to see what the move does.")).weak());
        }
        None => {}
    }
    for op in snap.across.iter().rev().take(3) {
        ui.separator();
        operation(ui, op, actions);
    }
}

fn plan_view(
    ui: &mut Ui,
    cg: &str,
    at: SimTime,
    plan: &AcrossPlan,
    state: &mut State,
    running: bool,
    actions: &mut Vec<Action>,
) {
    ui.label(RichText::new(format!("Planned at {}", mm_ss(at))).weak());
    egui::Grid::new("across-plan")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.label(RichText::new("VM").strong());
            ui.label(RichText::new("From").strong());
            ui.label(RichText::new("To (replica, reserved host)").strong());
            ui.end_row();
            for m in &plan.members {
                ui.label(&m.vm);
                ui.label(format!("{} on {}", m.from_datastore, m.from_host));
                ui.label(format!("{} on {}", m.to_datastore, m.to_host));
                ui.end_row();
            }
        });
    ui.horizontal(|ui| {
        ui.label("Rated");
        ui.label(style::rating_text(ui, plan.impact.rating));
        if let Some(f) = plan.impact.fault {
            ui.label(RichText::new(f.as_str()).weak());
        }
    });
    ui.label(RichText::new(&plan.impact.explanation).small());
    if state.consistency.is_keep() {
        ui.label(
            RichText::new(format!(
                "While it is synchronous every guest write of the group waits {} µs more: the time a 4 KiB write takes over the {} Mbit/s link.",
                link_write_time(plan.mbps),
                plan.mbps
            ))
            .small(),
        );
    } else {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "The RPO may be violated during this move: {cg} publishes no recovery point until all {} VM(s) run at {} and consistency is restored there. A failure before then returns every VM to the record of {} taken at the start, and the writes made since are lost.",
                plan.members.len(),
                plan.impact.to,
                plan.impact.from
            ),
        );
    }
    let rating = plan.impact.rating;
    let needs_sure = rating > Rating::None;
    if needs_sure {
        let sure = format!("{SURE} Move {cg} across and accept the {rating} risk");
        ui.checkbox(&mut state.sure, sure);
    }
    let ok = !running && (!needs_sure || state.sure);
    let to = plan.impact.to.clone();
    let button = ui.add_enabled(ok, egui::Button::new(START));
    if running {
        ui.label(RichText::new("A cross-site move is running: one at a time.").weak());
    } else if needs_sure && !state.sure {
        ui.label(
            RichText::new(format!(
                "Tick \"Are you sure?\" to move {cg} to {to}, rated {rating}"
            ))
            .weak(),
        );
    }
    if button.clicked() {
        actions.push(Action::Request(Request::Engine(Command::MigrateAcross {
            consistency_group: cg.to_string(),
            confirm: state.sure,
            consistency: state.consistency,
        })));
        state.sure = false;
        state.plan = None;
    }
}

fn operation(ui: &mut Ui, op: &AcrossOp, actions: &mut Vec<Action>) {
    let tone = match op.phase {
        AcrossPhase::Syncing
        | AcrossPhase::Switched
        | AcrossPhase::Moving
        | AcrossPhase::Restoring => Tone::Busy,
        AcrossPhase::Succeeded => Tone::Good,
        AcrossPhase::FailedBack => Tone::Warn,
        AcrossPhase::Interrupted => Tone::Bad,
    };
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(format!(
                "#{} {}: {} ▶ {}",
                op.id, op.consistency_group, op.from_site, op.to_site
            ))
            .strong(),
        );
        style::badge(ui, op.phase.as_str(), tone, &op.message);
        if op.phase.active() && ui.button(CANCEL).clicked() {
            actions.push(Action::Request(Request::Engine(Command::CancelAcross {
                consistency_group: op.consistency_group.clone(),
            })));
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Started {}", mm_ss(op.started_at)));
        if let Some(s) = op.switched_at {
            ui.label(format!("· switched {}", mm_ss(s)));
        }
        if let Some(e) = op.ended_at {
            ui.label(format!("· ended {}", mm_ss(e)));
        }
    });
    if op.consistency.is_keep() {
        ui.label(format!(
            "{} block(s) not yet at {} at the start · {} shipped by the catch-up · {} write(s) synchronous, {} applied at the switch · {} mirrored back",
            op.changed_blocks,
            op.to_site,
            crate::engine::human_bytes(op.catchup_bytes),
            op.sync_writes,
            op.sync_blocks_applied,
            op.reverse_writes
        ));
    } else {
        ui.label(format!(
            "One VM at a time: {} of {} moved · {} block(s) not yet at {} at the start · {} shipped · the record of {} keeps {} block(s) · longest pause {}{}",
            op.moved(),
            op.members.len(),
            op.changed_blocks,
            op.to_site,
            crate::engine::human_bytes(op.catchup_bytes),
            op.from_site,
            op.record_blocks,
            format_duration(op.max_pause),
            if op.phase == AcrossPhase::FailedBack {
                format!(" · {} write(s) lost by the fail-back", op.writes_lost)
            } else {
                String::new()
            }
        ));
    }
    ui.label(
        RichText::new(
            op.members
                .iter()
                .map(|m| {
                    format!(
                        "{} {} ▶ {} on {}",
                        m.vm, m.from_datastore, m.to_datastore, m.to_host
                    )
                })
                .collect::<Vec<_>>()
                .join(" · "),
        )
        .small(),
    );
    if !op.message.is_empty() {
        ui.label(RichText::new(&op.message).small());
    }
}
