//! The Resilience tab: what keeps VMs running besides replication — distributed
//! datastores across a partition, array health swaps, host faults with proactive
//! reservations, group migrations and datastore clusters. Each section is its own file.

use egui::Ui;

use super::{Action, Document, Live};
use super::{across_panel, group_panel, health_panel, hosts_panel, placement_panel, stretch_panel};

/// The sections, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Distributed,
    ArrayHealth,
    Hosts,
    GroupMigration,
    Across,
    Clusters,
}

/// The widget state of every section.
#[derive(Default)]
pub struct Panels {
    pub stretch: stretch_panel::State,
    pub health: health_panel::State,
    pub hosts: hosts_panel::State,
    pub group: group_panel::State,
    pub across: across_panel::State,
    pub placement: placement_panel::State,
    /// Scroll this section into view on the next frame (the demo player sets it).
    pub focus: Option<Section>,
}

pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    panels: &mut Panels,
    actions: &mut Vec<Action>,
) {
    let focus = panels.focus.take();
    egui::ScrollArea::both()
        .id_salt("resilience")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let section = |ui: &mut Ui, which: Section, draw: &mut dyn FnMut(&mut Ui)| {
                let rect = ui.scope(|ui| draw(ui)).response.rect;
                if focus == Some(which) {
                    ui.scroll_to_rect(rect, Some(egui::Align::TOP));
                }
            };
            section(ui, Section::Distributed, &mut |ui| {
                stretch_panel::show(ui, doc, live, &mut panels.stretch, actions)
            });
            ui.separator();
            section(ui, Section::ArrayHealth, &mut |ui| {
                health_panel::show(ui, doc, live, &mut panels.health, actions)
            });
            ui.separator();
            section(ui, Section::Hosts, &mut |ui| {
                hosts_panel::show(ui, doc, live, &mut panels.hosts, actions)
            });
            ui.separator();
            section(ui, Section::GroupMigration, &mut |ui| {
                group_panel::show(ui, doc, live, &mut panels.group, actions)
            });
            ui.separator();
            section(ui, Section::Across, &mut |ui| {
                across_panel::show(ui, live, &mut panels.across, actions)
            });
            ui.separator();
            section(ui, Section::Clusters, &mut |ui| {
                placement_panel::show(ui, doc, live, &mut panels.placement, actions)
            });
        });
}
