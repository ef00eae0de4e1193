//! The Resilience tab's section on arrays: health, which side serves each pair, resync progress, replication direction; fault and healthy.

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
    ui.heading("Array health");
}
