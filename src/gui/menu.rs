//! The menu bar and the keyboard shortcuts.

use egui::{Key, KeyboardShortcut, Modifiers};

use super::worker::Request;
use super::{Action, DrApp, MainTab, Selection, SideTab, live, replication};
use crate::topology::TopologySource;

/// File ▶ the DR report (SPEC §11).
pub const EXPORT_REPORT: &str = "Export report…";

/// The shortcuts of the File menu.
const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
const SAVE_AS: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::S);

impl DrApp {
    pub(super) fn handle_input(&mut self, ctx: &egui::Context) {
        let (open, save_as, save, dropped) = ctx.input_mut(|i| {
            (
                i.consume_shortcut(&OPEN),
                // Shift+S first: Ctrl+S would also match Ctrl+Shift+S otherwise.
                i.consume_shortcut(&SAVE_AS),
                i.consume_shortcut(&SAVE),
                std::mem::take(&mut i.raw.dropped_files),
            )
        });
        if open {
            self.open_dialog();
        }
        if save_as {
            self.save_as_dialog();
        } else if save {
            self.save();
        }
        for file in dropped {
            let p = file.path().to_path_buf();
            if p.extension().is_some_and(|e| e == "ron") {
                self.open_path(p);
            } else {
                self.log.error(format!(
                    "{}: not a topology file; drop a .ron file",
                    p.display()
                ));
            }
        }
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open…").shortcut_text(ui.ctx().format_shortcut(&OPEN)))
                    .clicked()
                {
                    self.open_dialog();
                }
                self.recent_menu(ui);
                if ui
                    .button("Open the built-in demo")
                    .on_hover_text("The two-site demo topology, in its own workspace")
                    .clicked()
                {
                    self.open_builtin();
                }
                if ui
                    .add(egui::Button::new("Save").shortcut_text(ui.ctx().format_shortcut(&SAVE)))
                    .clicked()
                {
                    self.save();
                }
                if ui
                    .add(
                        egui::Button::new("Save As…")
                            .shortcut_text(ui.ctx().format_shortcut(&SAVE_AS)),
                    )
                    .clicked()
                {
                    self.save_as_dialog();
                }
                if ui
                    .add_enabled(self.live.is_open(), egui::Button::new(EXPORT_REPORT))
                    .on_hover_text(
                        "Every failover, failback, test and reprotect so far, per protection \
                         group and VM, with replication lag against RPO: one HTML page",
                    )
                    .on_disabled_hover_text("No workspace is open: nothing has run to report")
                    .clicked()
                {
                    self.export_report_dialog();
                }
                ui.separator();
                self.reset_menu_item(ui);
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("Migrate", |ui| {
                if ui
                    .button("Migrate a VM…")
                    .on_hover_text("Choose a VM and a destination, review the DR impact, start")
                    .clicked()
                {
                    let vm = match &self.selection {
                        Some(Selection::Vm(id)) => Some(id.clone()),
                        _ => None,
                    };
                    self.wizard.open_for(vm);
                }
                if ui
                    .button(super::new_vm::MENU)
                    .on_hover_text(
                        "Create a VM on the datastore that keeps the protection group it is meant for",
                    )
                    .clicked()
                {
                    self.new_vm.open_for(&self.doc.topology);
                }
            });
            let mut dr_command = None;
            let mut rescan = None;
            ui.menu_button("DR", |ui| {
                if ui
                    .button("Replication")
                    .on_hover_text("Replication groups, lag against RPO, the link and the sites")
                    .clicked()
                {
                    self.side_tab = SideTab::Replication;
                    self.show_migrations = true;
                }
                if ui
                    .button("Failover…")
                    .on_hover_text("Choose protection groups, scan the replicas, run a failover")
                    .clicked()
                {
                    self.main_tab = MainTab::Failover;
                }
                let file = match &self.doc.source {
                    TopologySource::File(p) => Some(p.clone()),
                    TopologySource::BuiltIn => None,
                };
                if ui
                    .add_enabled(file.is_some(), egui::Button::new("Rescan arrays"))
                    .on_hover_text(
                        "Re-read the topology file's arrays, LUNs, protection groups, hosts \
                         and links; tags, ratings and replication groups follow",
                    )
                    .on_disabled_hover_text("The built-in topology has no file to re-read")
                    .clicked()
                    && let Some(file) = file
                {
                    rescan = Some(file);
                }
                if let Some(snap) = self.live.snapshot.as_ref().filter(|_| self.live.is_open()) {
                    ui.separator();
                    let (text, command) = if snap.link_up {
                        ("Take the link down", crate::engine::Command::LinkDown)
                    } else {
                        ("Bring the link up", crate::engine::Command::LinkUp)
                    };
                    let link = self.live.link().unwrap_or(live::LinkState::Up);
                    let lost = matches!(link, live::LinkState::SiteLost(_));
                    if ui
                        .add_enabled(!lost, egui::Button::new(text))
                        .on_disabled_hover_text(format!(
                            "Nothing to switch: {}, so the link has no other end",
                            link.reason()
                        ))
                        .clicked()
                    {
                        dr_command = Some(command);
                    }
                    for site in self
                        .doc
                        .topology
                        .sites
                        .iter()
                        .filter(|s| s.role == crate::topology::SiteRole::Protected)
                    {
                        if snap.sites_down.contains(&site.id) {
                            if ui
                                .button(replication::site_up_button(&site.id))
                                .on_hover_text(replication::SITE_UP_HINT)
                                .clicked()
                            {
                                dr_command = Some(crate::engine::Command::SiteUp {
                                    site: site.id.clone(),
                                });
                            }
                        } else if ui.button(replication::disaster_button(&site.id)).clicked() {
                            self.disaster = Some(site.id.clone());
                        }
                    }
                }
            });
            if let Some(c) = dr_command {
                self.apply(Action::Request(Request::Engine(c)));
            }
            if let Some(file) = rescan {
                self.rescan_arrays(file);
            }
            ui.menu_button("Demo", |ui| self.demo_menu(ui));
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.show_inventory, "Inventory");
                ui.checkbox(&mut self.show_log, "Event log");
                ui.checkbox(&mut self.show_migrations, "Migrations and replication");
                egui::widgets::global_theme_preference_buttons(ui);
            });
            ui.separator();
            ui.label(
                egui::RichText::new(format!(
                    "{}  ·  {}",
                    self.doc.topology.name, self.doc.source
                ))
                .weak(),
            );
            if self.io_busy() {
                ui.spinner();
            }
        });
    }
}
