//! The Resilience tab's section on migrating a whole consistency group to another: pick source and destination CG, progress, reverse mirroring, success.

use egui::Ui;

use super::{Action, Document, Live};

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    _doc: &Document,
    _live: &Live,
    _state: &mut State,
    _actions: &mut Vec<Action>,
) {
    ui.heading("Group migration");
}
