//! The replication view: the link between the sites, the protected sites (each with its
//! Disaster button), every replication group as a card (state, last cut, lag against the
//! RPO, bytes shipped, alarms, Replicate now and Pause), and the groups' lag plotted over
//! simulated time against their RPO lines. Also the Disaster confirmation, which names
//! everything that will stop.

use egui::{RichText, Ui};
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints};

use super::graphs::{empty, hover_text, time_axis};
use super::live::{LinkState, Live, mm_ss};
use super::style::{self, Tone, glyph};
use super::worker::Request;
use super::{Action, Document};
use crate::engine::{Command, GroupState, GroupView, Snapshot};
use crate::topology::{SiteRole, Topology};

/// The Disaster button's text for `site` (also its accessible name).
pub fn disaster_button(site: &str) -> String {
    format!("Disaster at {site}…")
}

/// The button that brings a lost `site` back (also its accessible name).
pub fn site_up_button(site: &str) -> String {
    format!("Site {site} returns")
}

/// What a returned site's button says it does.
pub const SITE_UP_HINT: &str = "Bring the site back as it was when it was lost: its VMs that were not failed over restart there, the ones that were stay off as stale copies, and its groups that were not failed over replicate again";

/// The confirm button of the Disaster dialog for `site`.
pub fn disaster_confirm(site: &str) -> String {
    format!("Lose site {site}")
}

/// The accessible names of a group's buttons.
pub fn replicate_now_name(group: &str) -> String {
    format!("Replicate {group} now")
}
pub fn pause_name(group: &str) -> String {
    format!("Pause replication of {group}")
}
pub fn resume_name(group: &str) -> String {
    format!("Resume replication of {group}")
}

pub(crate) fn show(ui: &mut Ui, doc: &Document, live: &Live, actions: &mut Vec<Action>) {
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        ui.add_space(4.0);
        super::status::not_running(
            ui,
            live,
            "No workspace is open, so nothing replicates. The replication tags of every datastore can still be read in the inventory.",
        );
        return;
    };
    let t = &doc.topology;
    ui.add_space(4.0);
    link_row(ui, t, snap, &live.link().unwrap_or(LinkState::Up), actions);
    sites_row(ui, t, snap, actions);
    ui.separator();
    if snap.groups.is_empty() {
        ui.label(RichText::new("This topology replicates no datastore.").weak());
        return;
    }
    let total = ui.available_height();
    egui::ScrollArea::vertical()
        .id_salt("replication-groups")
        .max_height((total * 0.58).max(140.0))
        .auto_shrink([false, true])
        .show(ui, |ui| {
            // Those violating their RPO first: what needs attention leads. Each keeps
            // its index, the color of its line in the plot.
            let mut order: Vec<(usize, &GroupView)> = snap.groups.iter().enumerate().collect();
            order.sort_by_key(|(_, g)| !g.rpo_violation);
            for (i, g) in order {
                // Ids salted by the group, not by position: a card above that grows (a
                // transfer row) or a reorder must not change the ids of the buttons below,
                // or a click sent to one of them (an accessibility tool's, a test's) is lost.
                ui.push_id(&g.id, |ui| card(ui, i, g, snap, actions));
                ui.add_space(4.0);
            }
        });
    ui.add_space(6.0);
    let heading = ui.text_style_height(&egui::TextStyle::Body) + 10.0;
    let h = (ui.available_height() - heading).max(110.0);
    lag_plot(ui, snap, live, h);
}

fn link_row(
    ui: &mut Ui,
    t: &Topology,
    snap: &Snapshot,
    link: &LinkState,
    actions: &mut Vec<Action>,
) {
    ui.horizontal(|ui| {
        let ends = t
            .links
            .first()
            .map(|l| format!("{} ⟷ {}, {} Mbit/s", l.from, l.to, l.mbps))
            .unwrap_or_else(|| "between the sites".into());
        ui.label(RichText::new("Replication link").strong())
            .on_hover_text(ends.clone());
        let _ = match link {
            LinkState::Up => style::badge(ui, "up", Tone::Good, &format!("The link is up ({ends})")),
            LinkState::Down => style::badge(
                ui,
                "down",
                Tone::Warn,
                "The link is down: no group publishes; changes keep being tracked and ship when it is back",
            ),
            LinkState::SiteLost(site) => style::badge(
                ui,
                &format!("down: site {site} lost"),
                Tone::Bad,
                "One end of the link is lost in a disaster: nothing replicates between the sites any more",
            ),
        };
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let (text, command, hint) = if snap.link_up {
                (
                    "Link down",
                    Command::LinkDown,
                    "Cut the link between the sites: transfers in flight are abandoned (the previous recovery points stay), changes keep being tracked, and lag grows past the RPO",
                )
            } else {
                (
                    "Link up",
                    Command::LinkUp,
                    "Restore the link: overdue groups replicate at once, shipping only what changed while it was down",
                )
            };
            let lost = matches!(link, LinkState::SiteLost(_));
            let b = ui
                .add_enabled(!lost, egui::Button::new(text))
                .on_hover_text(hint)
                .on_disabled_hover_text(format!(
                    "Nothing to switch: {}, so the link has no other end",
                    link.reason()
                ));
            if b.clicked() {
                actions.push(Action::Request(Request::Engine(command)));
            }
        });
    });
}

fn sites_row(ui: &mut Ui, t: &Topology, snap: &Snapshot, actions: &mut Vec<Action>) {
    for s in t.sites.iter().filter(|s| s.role == SiteRole::Protected) {
        ui.horizontal(|ui| {
            ui.label(format!("{} {}", glyph::SITE, s.id));
            ui.label(RichText::new(&s.name).weak());
            let down = snap.sites_down.contains(&s.id);
            let stale: Vec<&crate::engine::StaleInstance> =
                snap.stale.iter().filter(|x| x.site == s.id).collect();
            if down {
                style::badge(
                    ui,
                    "site down",
                    Tone::Bad,
                    "Lost in a disaster: its VMs stopped; recover them with an unplanned failover",
                );
            } else {
                style::badge(ui, "running", Tone::Good, "");
            }
            if !stale.is_empty() {
                let list: Vec<String> = stale
                    .iter()
                    .map(|x| format!("{} ({}; runs on {})", x.path, x.vm, x.running_on))
                    .collect();
                style::badge(
                    ui,
                    &format!("{} stale", stale.len()),
                    Tone::Warn,
                    &format!(
                        "Instances of VMs that were failed over away from this site: older than the running copies, powered off.\n{}",
                        list.join("\n")
                    ),
                );
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if down {
                    let b = ui
                        .button(site_up_button(&s.id))
                        .on_hover_text(SITE_UP_HINT);
                    if b.clicked() {
                        actions.push(Action::Request(Request::Engine(Command::SiteUp {
                            site: s.id.clone(),
                        })));
                    }
                    return;
                }
                let b = ui
                    .button(
                        RichText::new(disaster_button(&s.id))
                            .color(Tone::Bad.text(ui.visuals().dark_mode)),
                    )
                    .on_hover_text(
                        "Simulate losing the whole site at once. Asks first, naming what stops.",
                    );
                if b.clicked() {
                    actions.push(Action::AskDisaster(s.id.clone()));
                }
            });
        });
    }
    for s in &snap.sites_down {
        if t.site_role(s) == Some(SiteRole::Recovery) {
            ui.label(style::toned(
                ui,
                format!("{} {s} (recovery site) is down", glyph::SITE),
                Tone::Bad,
            ));
        }
    }
}

/// Lag, a span of simulated time: "20 min 29 s".
fn lag_text(lag: u64) -> String {
    style::sim_duration(lag)
}

/// The least width of a card whose buttons fit beside its name, state and RPO.
const CARD_ONE_LINE: f32 = 400.0;

fn card(ui: &mut Ui, i: usize, g: &GroupView, snap: &Snapshot, actions: &mut Vec<Action>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let dark = ui.visuals().dark_mode;
        let narrow = ui.available_width() < CARD_ONE_LINE;
        ui.horizontal(|ui| {
            // The group's color in the plot.
            let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 2.0, style::series_color(i));
            ui.strong(&g.id).on_hover_text(match &g.consistency_group {
                Some(cg) => format!(
                    "Consistency group {cg}: its datastores are cut together, write-order consistent"
                ),
                None => "A replicated datastore in no consistency group".into(),
            });
            style::badge(
                ui,
                g.state.as_str(),
                style::group_state_tone(g.state),
                state_hint(g.state),
            );
            ui.label(RichText::new(format!("RPO {}", style::minutes_text(g.rpo_minutes))).weak());
            if !narrow {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    buttons(ui, g, actions);
                });
            }
        });
        if narrow {
            // Beside the name they would run over it: a line of their own.
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
                buttons(ui, g, actions);
            });
        }
        ui.label(
            RichText::new(
                g.pairs
                    .iter()
                    .map(|p| format!("{} {} {}", p.datastore, glyph::TO, p.replica))
                    .collect::<Vec<_>>()
                    .join("  ·  "),
            )
            .weak()
            .small(),
        );
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = 4.0;
            match (g.last_cut_at, g.lag) {
                (Some(cut), Some(lag)) => {
                    ui.label(format!("last point cut {}", mm_ss(cut)))
                        .on_hover_text("When the latest published recovery point was cut (simulated time)");
                    ui.label(RichText::new("·").weak());
                    if g.state == GroupState::FailedOver {
                        // The replicas run the VMs now: nothing lags behind anything.
                        ui.label(RichText::new("the VMs run on the replicas").weak());
                    } else if g.lost_at.is_some() {
                        // The engine stops the lag at the disaster: what it lost.
                        ui.label(
                            style::toned(ui, format!("lag {} at the disaster", lag_text(lag)), Tone::Bad)
                                .strong(),
                        )
                        .on_hover_text(
                            "The disaster's time minus the cut of the last published point: the writes of that window are lost",
                        );
                    } else {
                        let tone = if g.rpo_violation { Tone::Bad } else { Tone::Good };
                        ui.label(style::toned(ui, format!("lag {}", lag_text(lag)), tone).strong())
                            .on_hover_text(
                                "Now minus the cut time of the last published point: what a disaster now would lose",
                            );
                    }
                }
                _ => {
                    ui.label(style::toned(ui, "no recovery point yet", Tone::Warn))
                        .on_hover_text("The initial copy has not been published: nothing could be recovered now");
                }
            }
            match g.next_cut_at {
                Some(next) if matches!(g.state, GroupState::Idle | GroupState::Transferring) => {
                    ui.label(RichText::new("·").weak());
                    ui.label(RichText::new(format!("next cut {}", mm_ss(next))).weak());
                }
                // Blocked (paused, link down) with a cut due: it runs once it can ship.
                Some(next) if next <= snap.now && g.state != GroupState::FailedOver => {
                    ui.label(RichText::new("·").weak());
                    ui.label(style::toned(
                        ui,
                        format!("cut overdue since {}", mm_ss(next)),
                        Tone::Warn,
                    ))
                    .on_hover_text("The cycle that was due could not start; it cuts as soon as the group can ship again");
                }
                _ => {}
            }
        });
        ui.label(
            RichText::new(format!(
                "{} cycle(s)  ·  shipped {} in all  ·  last point {}",
                g.cycles,
                style::size_text(g.bytes_shipped),
                style::size_text(g.last_cycle_bytes)
            ))
            .weak(),
        );
        if let Some((cut, bytes, ends)) = g.transfer {
            let span = ends.saturating_sub(cut).max(1);
            let done = snap.now.saturating_sub(cut).min(span);
            ui.add(
                egui::ProgressBar::new(done as f32 / span as f32).text(format!(
                    // The engine numbers a cycle when it cuts: the one in flight is the last.
                    "cycle {}: {} cut at {}, publishes at {}",
                    g.cycles,
                    style::size_text(bytes),
                    mm_ss(cut),
                    mm_ss(ends)
                )),
            );
        }
        if g.rpo_violation {
            ui.horizontal_wrapped(|ui| {
                style::badge(
                    ui,
                    "RPO violation",
                    Tone::Bad,
                    "The lag is above the RPO: a disaster now loses more than the group promises",
                );
                ui.label(style::toned(
                    ui,
                    format!(
                        "lag {} is above the RPO of {}",
                        lag_text(g.lag.unwrap_or(0)),
                        style::minutes_text(g.rpo_minutes)
                    ),
                    Tone::Bad,
                ));
            });
        }
        if let Some(e) = &g.last_error {
            ui.label(
                RichText::new(format!("Last error: {e}")).color(Tone::Bad.text(dark)),
            );
        }
    });
}

fn state_hint(s: GroupState) -> &'static str {
    match s {
        GroupState::Idle => "Up to date with its schedule: the next cycle cuts when due",
        GroupState::Transferring => {
            "A cycle is shipping; the previous recovery point stands until it publishes"
        }
        GroupState::Paused => "Paused by the operator: no new cycle starts, lag grows",
        GroupState::Swapped => {
            "An array fault swapped its I/O to the replicas: replication restarts in its own direction once the resync back completes (Resilience tab)"
        }
        GroupState::LinkDown => "The link is down: nothing publishes, lag grows",
        GroupState::SiteDown => "One of its sites is lost: it replicates no more",
        GroupState::FailedOver => "Its protection group failed over: the replicas are live now",
        GroupState::MovingAcross => {
            "Its VMs are moving to the other site one at a time: it publishes no point until they all run there (Resilience tab)"
        }
    }
}

fn buttons(ui: &mut Ui, g: &GroupView, actions: &mut Vec<Action>) {
    let ds = match g.pairs.first() {
        Some(p) => p.datastore.clone(),
        None => return,
    };
    // A group that replicates no more (or not until its resync): Replicate now stays,
    // disabled with the reason; there is nothing to pause.
    let finished = matches!(
        g.state,
        GroupState::SiteDown | GroupState::FailedOver | GroupState::Swapped
    );
    // Right to left: Replicate now is the outer button.
    let can_ship = matches!(g.state, GroupState::Idle | GroupState::Transferring);
    let name = replicate_now_name(&g.id);
    let b = ui
        .add_enabled(can_ship, egui::Button::new("Replicate now"))
        .on_hover_text("Cut and ship a cycle at once; the next one comes an RPO later")
        .on_disabled_hover_text(format!(
            "The group cannot replicate: {}",
            if finished {
                state_hint(g.state)
            } else {
                g.state.as_str()
            }
        ));
    b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, can_ship, &name));
    if b.clicked() {
        actions.push(Action::Request(Request::Engine(Command::ReplicateNow {
            datastore: ds.clone(),
        })));
    }
    if finished {
        return;
    }
    let paused = g.state == GroupState::Paused;
    let (text, name, command, hint) = if paused {
        (
            "Resume",
            resume_name(&g.id),
            Command::ResumeReplication {
                datastore: ds.clone(),
            },
            "Start cycles again; an overdue one cuts at once",
        )
    } else {
        (
            "Pause",
            pause_name(&g.id),
            Command::PauseReplication {
                datastore: ds.clone(),
            },
            "Start no new cycle (a transfer in flight still publishes); lag grows",
        )
    };
    let b = ui.button(text).on_hover_text(hint);
    b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
    if b.clicked() {
        actions.push(Action::Request(Request::Engine(command)));
    }
}

/// Each group's lag over simulated time, with its RPO as a dashed line of the same color.
fn lag_plot(ui: &mut Ui, snap: &Snapshot, live: &Live, height: f32) {
    ui.horizontal(|ui| {
        ui.strong("Replication lag");
        ui.label(RichText::new("how far each replica is behind; dashed: each group's RPO").weak());
    });
    if live.lag.values().all(|l| l.is_empty()) {
        empty(
            ui,
            height,
            "Each group's lag is drawn here once it has published a recovery point.",
        );
        return;
    }
    let max_rpo = snap
        .groups
        .iter()
        .map(|g| g.rpo_minutes)
        .max()
        .unwrap_or(15);
    Plot::new("replication-lag")
        .height(height)
        .legend(Legend::default().follow_insertion_order(true))
        .include_y(0.0)
        .include_y(f64::from(max_rpo) * 1.15)
        .x_axis_formatter(time_axis)
        .x_axis_label("simulated time")
        // The lag is in minutes; each tick names its unit, picked from the visible range
        // (seconds while zoomed in, hours for a long outage).
        .y_axis_formatter(|mark, range| {
            let scale = range.start().abs().max(range.end().abs());
            style::duration_tick(mark.value * 60.0, scale * 60.0)
        })
        .y_grid_spacer(super::graphs::duration_grid(60.0))
        .y_axis_min_width(48.0)
        .y_axis_label("lag")
        .allow_scroll(false)
        .label_formatter(hover_text(|y| {
            format!("lag {}", style::duration_text(y * 60.0))
        }))
        .show(ui, |plot| {
            for (i, g) in snap.groups.iter().enumerate() {
                let color = style::series_color(i);
                if let Some(h) = live.lag.get(&g.id).filter(|h| !h.is_empty()) {
                    plot.line(
                        Line::new(g.id.as_str(), PlotPoints::Owned(h.line()))
                            .color(color)
                            .width(1.5)
                            // The drops at publishes are vertical; a band would fill
                            // under them.
                            .allow_band(false),
                    );
                }
                plot.hline(
                    egui_plot::HLine::new(g.id.as_str(), f64::from(g.rpo_minutes))
                        .id(("rpo", &g.id))
                        .color(color)
                        .style(LineStyle::dashed_loose()),
                );
            }
        });
}

/// A modal's area, its top edge fixed: when a line of it changes length (a lag that
/// grows), its buttons do not jump around. It opens just below the top bars, so a demo's
/// caption stays readable above it.
pub(crate) fn top_anchored(ctx: &egui::Context, id: egui::Id) -> egui::Area {
    let top = super::demo::content_top(ctx);
    egui::Modal::default_area(id).anchor(egui::Align2::CENTER_TOP, [0.0, top + 16.0])
}

/// What losing `site` stops, for the Disaster confirmation.
struct DisasterScope {
    vms: Vec<String>,
    migrations: Vec<String>,
    /// (group id, last cut, lag, transferring)
    groups: Vec<(String, Option<u64>, Option<u64>, bool)>,
    /// VMs at the site no failover can bring back, by why.
    unprotected: Vec<(&'static str, Vec<String>)>,
}

fn disaster_scope(t: &Topology, snap: &Snapshot, site: &str) -> DisasterScope {
    let vms = snap
        .vms
        .iter()
        .filter(|v| v.site == site && !v.down)
        .map(|v| v.id.clone())
        .collect();
    let migrations = snap
        .vms
        .iter()
        .filter(|v| v.site == site && !v.down)
        .filter_map(|v| {
            v.migration
                .as_ref()
                .map(|m| format!("{} ({} ➡ {}, {})", v.id, m.from, m.to, m.mode.as_str()))
        })
        .collect();
    let at_site = |ds: &str| t.datastore(ds).is_some_and(|d| d.site == site);
    let groups = snap
        .groups
        .iter()
        .filter(|g| {
            !matches!(g.state, GroupState::SiteDown | GroupState::FailedOver)
                && g.pairs
                    .iter()
                    .any(|p| at_site(&p.datastore) || at_site(&p.replica))
        })
        .map(|g| (g.id.clone(), g.last_cut_at, g.lag, g.transfer.is_some()))
        .collect();
    let (mut lost, mut no_pg) = (Vec::new(), Vec::new());
    for v in snap.vms.iter().filter(|v| v.site == site && !v.down) {
        let Some(ds) = t.datastore(&v.datastore) else {
            continue;
        };
        if t.replica_of(ds).is_none() {
            lost.push(format!("{} ({})", v.id, ds.id));
        } else if !t
            .protection_groups
            .iter()
            .any(|p| p.datastores.contains(&ds.id))
        {
            no_pg.push(format!("{} ({})", v.id, ds.id));
        }
    }
    let mut unprotected = Vec::new();
    if !lost.is_empty() {
        unprotected.push(("Not replicated, lost for good", lost));
    }
    if !no_pg.is_empty() {
        unprotected.push((
            "Replicated but in no protection group, so no failover recovers them",
            no_pg,
        ));
    }
    DisasterScope {
        vms,
        migrations,
        groups,
        unprotected,
    }
}

/// The Disaster confirmation for `site`: `Some(true)` to go ahead, `Some(false)` to cancel.
pub fn disaster_modal(
    ctx: &egui::Context,
    site: &str,
    doc: &Document,
    live: &Live,
) -> Option<bool> {
    let t = &doc.topology;
    let snap = live.snapshot.as_ref()?;
    let scope = disaster_scope(t, snap, site);
    let name = t.site(site).map_or(String::new(), |s| s.name.clone());
    let mut answer = None;
    let id = egui::Id::unique(("disaster", site));
    let modal = egui::Modal::new(id).area(top_anchored(ctx, id)).show(ctx, |ui| {
        ui.set_width(520.0);
        let dark = ui.visuals().dark_mode;
        ui.label(
            RichText::new(format!("Are you sure? Lose site {site} ({name})"))
                .heading()
                .size(18.0)
                .color(Tone::Bad.text(dark)),
        );
        ui.add_space(4.0);
        ui.label(
            "Everything at the site stops at once, as if it burned down. There is no undo in this workspace: its VMs come back only through a failover to the recovery site.",
        );
        ui.add_space(8.0);
        ui.strong("What stops");
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let transferring = scope.groups.iter().filter(|g| g.3).count();
        let rows = [
            format!("{} VM(s): {}", scope.vms.len(), list(&scope.vms)),
            if scope.migrations.is_empty() {
                "No migration is in flight.".to_string()
            } else {
                format!(
                    "{} migration(s) freeze mid-copy: {}",
                    scope.migrations.len(),
                    scope.migrations.join(", ")
                )
            },
            format!(
                "{} replication group(s): {} stop replicating{}",
                scope.groups.len(),
                list(&scope.groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>()),
                if transferring > 0 {
                    format!("; {transferring} transfer(s) in flight are abandoned")
                } else {
                    String::new()
                }
            ),
        ];
        for r in rows {
            ui.add(egui::Label::new(r).wrap());
        }
        if !scope.groups.is_empty() || !scope.unprotected.is_empty() {
            ui.add_space(8.0);
            ui.strong("What the recovery site keeps");
            for (id, cut, lag, _) in &scope.groups {
                match (cut, lag) {
                    (Some(c), Some(l)) => ui.label(format!(
                        "{id}: the point cut at {} ({} ago); what was written since is lost",
                        mm_ss(*c),
                        style::sim_duration(*l)
                    )),
                    _ => ui.label(style::toned(
                        ui,
                        format!("{id}: no recovery point yet: its VMs cannot be recovered"),
                        Tone::Bad,
                    )),
                };
            }
        }
        for (what, vms) in &scope.unprotected {
            ui.add(egui::Label::new(style::toned(ui, format!("{what}: {}", vms.join(", ")), Tone::Bad)).wrap());
        }
        ui.add_space(12.0);
        ui.horizontal(|ui| {
            if ui.button("Cancel").clicked() {
                answer = Some(false);
            }
            let go = egui::Button::new(
                RichText::new(disaster_confirm(site))
                    .strong()
                    .color(egui::Color32::WHITE),
            )
            .fill(Tone::Bad.fill());
            if ui.add(go).clicked() {
                answer = Some(true);
            }
        });
    });
    if answer.is_none() && modal.should_close() {
        answer = Some(false);
    }
    answer
}
