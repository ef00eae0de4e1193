//! The Resilience tab: what keeps VMs running besides replication — distributed
//! datastores across a partition, array health swaps, host faults with proactive
//! reservations, group migrations and datastore clusters. Each section is its own file.

use egui::Ui;

use super::{Action, Document, Live};
use super::{group_panel, health_panel, hosts_panel, placement_panel, stretch_panel};

/// The widget state of every section.
#[derive(Default)]
pub struct Panels {
    pub stretch: stretch_panel::State,
    pub health: health_panel::State,
    pub hosts: hosts_panel::State,
    pub group: group_panel::State,
    pub placement: placement_panel::State,
}

pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    panels: &mut Panels,
    actions: &mut Vec<Action>,
) {
    egui::ScrollArea::vertical()
        .id_salt("resilience")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            stretch_panel::show(ui, doc, live, &mut panels.stretch, actions);
            ui.separator();
            health_panel::show(ui, doc, live, &mut panels.health, actions);
            ui.separator();
            hosts_panel::show(ui, doc, live, &mut panels.hosts, actions);
            ui.separator();
            group_panel::show(ui, doc, live, &mut panels.group, actions);
            ui.separator();
            placement_panel::show(ui, doc, live, &mut panels.placement, actions);
        });
}
