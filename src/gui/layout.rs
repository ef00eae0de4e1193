//! The window's layout: the menu bar, the inventory, the side panel, the log and the
//! central tabs, with the sizes they open at and the buttons that hide them.

use super::worker::Request;
use super::{
    Action, DrApp, Live, MainTab, SideTab, clock, demo, details, graphs, replication, resilience,
    status, tasks, tree,
};

impl DrApp {
    /// Draws the whole console into `ui` (the window's root).
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        let window = ui.available_rect_before_wrap();
        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::top("clock").show(ui, |ui| {
            ui.add_space(2.0);
            clock::toolbar(ui, &self.live, &mut actions);
            ui.add_space(2.0);
        });
        self.demo_bar(ui);
        self.demo_caption(ui);
        demo::set_content_top(ui.ctx(), ui.available_rect_before_wrap().top());
        egui::Panel::bottom("status_bar")
            .resizable(false)
            .show(ui, |ui| status::bar(ui, &self.live, &mut actions));
        let log = &mut self.log;
        let log_panel = egui::Panel::bottom("event_log")
            .resizable(true)
            .default_size(sizes::log_default(window.height()))
            .size_range(sizes::log_range(window.height()))
            .show_collapsible(ui, &mut self.show_log, |ui| log.ui(ui));
        if log_panel.as_ref().is_some_and(|r| r.inner.export) {
            self.export_log_dialog();
        }
        self.regions.log = log_panel.as_ref().map(|r| r.response.rect);
        // Over the log's rows (which hold the same lines), else in a strip of their own:
        // never over a control.
        self.log
            .toasts(ui, log_panel.as_ref().map(|r| r.inner.rows));
        self.regions.inventory = egui::Panel::left("inventory")
            .resizable(true)
            .default_size(sizes::inventory_default(window.width()))
            .size_range(sizes::inventory_range(window.width()))
            .show_collapsible(ui, &mut self.show_inventory, |ui| {
                if ui
                    .button(format!("➕ {}", super::new_vm::MENU))
                    .on_hover_text(
                        "Create a VM: its datastores ranked by whether they keep the protection \
                         group it is meant for, their room and their spread",
                    )
                    .clicked()
                {
                    actions.push(Action::NewVm);
                }
                let out = tree::inventory(
                    ui,
                    &self.doc,
                    &mut self.tree,
                    &mut self.filter,
                    &mut self.selection,
                );
                if let Some(vm) = out.open_wizard {
                    actions.push(Action::OpenWizard(Some(vm)));
                }
                if out.show_details {
                    actions.push(Action::ShowMain(MainTab::Details));
                }
            })
            .map(|r| r.response.rect);
        let live = &mut self.live;
        let doc = &self.doc;
        let side_tab = &mut self.side_tab;
        self.regions.side = egui::Panel::right("migrations")
            .resizable(true)
            .default_size(sizes::side_default(window.width()))
            .size_range(sizes::side_range(window.width()))
            .show_collapsible(ui, &mut self.show_migrations, |ui| {
                tab_bar(
                    ui,
                    side_tab,
                    [SideTab::Migrations, SideTab::Replication],
                    SideTab::label,
                );
                // A short window scrolls the panel rather than spill it over the log.
                egui::ScrollArea::vertical()
                    .id_salt("side-panel")
                    .auto_shrink([false, false])
                    .show(ui, |ui| match side_tab {
                        SideTab::Migrations => migrations_panel(ui, live, &mut actions),
                        SideTab::Replication => replication::show(ui, doc, live, &mut actions),
                    });
            })
            .map(|r| r.response.rect);
        let selected_before = self.selection.clone();
        let central = egui::CentralPanel::default_margins().show(ui, |ui| {
            ui.horizontal(|ui| {
                panel_toggle(ui, &mut self.show_inventory, PanelToggle::Inventory);
                ui.separator();
                tabs(
                    ui,
                    &mut self.main_tab,
                    [MainTab::Details, MainTab::Failover, MainTab::Resilience],
                    MainTab::label,
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    panel_toggle(ui, &mut self.show_migrations, PanelToggle::Side);
                });
            });
            ui.separator();
            // Each view scrolls both ways: what does not fit the width (a table's columns)
            // scrolls sideways rather than being cut off.
            match self.main_tab {
                MainTab::Details => {
                    details::show(ui, &self.doc, &self.live, &mut self.selection, &mut actions)
                }
                MainTab::Failover => self.failover.show(ui, &self.doc, &self.live, &mut actions),
                MainTab::Resilience => resilience::show(
                    ui,
                    &self.doc,
                    &self.live,
                    &mut self.resilience,
                    &mut actions,
                ),
            }
        });
        self.regions.central = central.response.rect;
        self.regions.window = window;
        if self.selection != selected_before && self.selection.is_some() {
            // Picking an object in the inventory shows it.
            self.main_tab = MainTab::Details;
        }
        if let Some(c) = self.wizard.show(ui.ctx(), &self.doc, &self.live) {
            actions.push(Action::Request(Request::Engine(c)));
        }
        if let Some(s) = self.new_vm.show(ui.ctx(), &self.doc, &self.live) {
            match s {
                super::new_vm::Submit::Engine(c) => {
                    actions.push(Action::Request(Request::Engine(c)));
                }
                super::new_vm::Submit::Topology { vm, pg, overridden } => {
                    self.add_vm_to_document(vm, &pg, overridden)
                }
            }
        }
        if let Some(c) = self.failover.confirm_modal(ui.ctx(), &self.doc, &self.live) {
            actions.push(Action::Request(Request::Engine(c)));
        }
        if let Some(c) = self
            .failover
            .reprotect_modal(ui.ctx(), &self.doc, &self.live)
        {
            actions.push(Action::Request(Request::Engine(c)));
        }
        if let Some(site) = self.disaster.clone() {
            match replication::disaster_modal(ui.ctx(), &site, &self.doc, &self.live) {
                Some(true) => {
                    self.disaster = None;
                    actions.push(Action::Request(Request::Engine(
                        crate::engine::Command::Disaster { site },
                    )));
                }
                Some(false) => self.disaster = None,
                None => {}
            }
        }
        self.restart_dialogs(ui.ctx());
        for a in actions {
            self.apply(a);
        }
    }
}

/// A row of tabs under a separator; the current one is highlighted.
fn tab_bar<T: Copy + PartialEq, const N: usize>(
    ui: &mut egui::Ui,
    current: &mut T,
    tabs_: [T; N],
    label: fn(T) -> &'static str,
) {
    ui.horizontal(|ui| tabs(ui, current, tabs_, label));
    ui.separator();
}

/// The tabs of a tab bar, in the current row.
fn tabs<T: Copy + PartialEq, const N: usize>(
    ui: &mut egui::Ui,
    current: &mut T,
    tabs: [T; N],
    label: fn(T) -> &'static str,
) {
    for t in tabs {
        if ui
            .selectable_label(*current == t, egui::RichText::new(label(t)).strong())
            .clicked()
        {
            *current = t;
        }
    }
}

/// The side panels that fold away from the middle's tab bar (and the View menu).
#[derive(Clone, Copy)]
enum PanelToggle {
    Inventory,
    Side,
}

/// The buttons' accessible names (their texts are arrows pointing where the panel goes).
pub const HIDE_INVENTORY: &str = "Hide the inventory";
pub const SHOW_INVENTORY: &str = "Show the inventory";
pub const HIDE_SIDE_PANEL: &str = "Hide the side panel";
pub const SHOW_SIDE_PANEL: &str = "Show the side panel";

/// Folds a side panel away or brings it back: on a small screen the middle gets its room.
fn panel_toggle(ui: &mut egui::Ui, open: &mut bool, which: PanelToggle) {
    let (arrow, name, hint) = match (which, *open) {
        (PanelToggle::Inventory, true) => (
            "◀",
            HIDE_INVENTORY,
            "Fold the inventory away to give the middle its room (View ▶ Inventory)",
        ),
        (PanelToggle::Inventory, false) => ("▶", SHOW_INVENTORY, "Show the inventory tree again"),
        (PanelToggle::Side, true) => (
            "▶",
            HIDE_SIDE_PANEL,
            "Fold the Migrations and Replication panel away to give the middle its room (View ▶ Migrations and replication)",
        ),
        (PanelToggle::Side, false) => (
            "◀",
            SHOW_SIDE_PANEL,
            "Show the Migrations and Replication panel again",
        ),
    };
    let b = ui.small_button(arrow).on_hover_text(hint);
    b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, name));
    if b.clicked() {
        *open = !*open;
    }
}

/// Where the window's regions were drawn last frame (the layout tests read them).
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub window: egui::Rect,
    pub central: egui::Rect,
    /// `None` while folded away.
    pub inventory: Option<egui::Rect>,
    pub side: Option<egui::Rect>,
    pub log: Option<egui::Rect>,
}

impl Default for Regions {
    fn default() -> Self {
        Regions {
            window: egui::Rect::NOTHING,
            central: egui::Rect::NOTHING,
            inventory: None,
            side: None,
            log: None,
        }
    }
}

/// The panels' sizes follow the window's, so the middle keeps its room at 1024×700 as at
/// 1920×1080; what a panel cannot show at its width it scrolls.
mod sizes {
    use egui::Rangef;

    pub fn inventory_default(window_w: f32) -> f32 {
        (window_w * 0.2).clamp(170.0, 280.0)
    }
    pub fn inventory_range(window_w: f32) -> Rangef {
        Rangef::new(150.0, (window_w * 0.22).max(150.0))
    }
    pub fn side_default(window_w: f32) -> f32 {
        (window_w * 0.34).clamp(300.0, 440.0)
    }
    pub fn side_range(window_w: f32) -> Rangef {
        Rangef::new(280.0, (window_w * 0.34).max(280.0))
    }
    pub fn log_default(window_h: f32) -> f32 {
        (window_h * 0.25).clamp(110.0, 200.0)
    }
    pub fn log_range(window_h: f32) -> Rangef {
        Rangef::new(90.0, (window_h * 0.45).max(90.0))
    }
}

/// The right-hand panel: the task list on top, the two graphs sharing what is left.
fn migrations_panel(ui: &mut egui::Ui, live: &mut Live, actions: &mut Vec<Action>) {
    ui.add_space(4.0);
    let total = ui.available_height();
    tasks::show(ui, live, (total * 0.45).max(120.0), actions);
    ui.add_space(8.0);
    // Two graphs, each with a heading line, in the height left.
    let heading = ui.text_style_height(&egui::TextStyle::Body) + 10.0;
    let h = ((ui.available_height() - 2.0 * heading) / 2.0).max(90.0);
    graphs::progress(ui, live, h);
    ui.add_space(6.0);
    graphs::latency(ui, live, h);
}
