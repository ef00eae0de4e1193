//! Drawing the tree: the filter box, the rows in view with their matches highlighted.

use egui::{Key, RichText, Ui};

use super::{Inventory, LAY_OUT_ALL_MAX_ROWS, Row, RowKind, SECTIONS, TreeOutput, TreeView};
use crate::gui::{Document, Selection};

/// Where `needle` (lower case) occurs in `label`, case-insensitively: byte ranges of
/// `label`, in order, not overlapping. Lower-casing can change a character's length, so
/// the search runs on the lower-cased text and maps back character by character.
pub(super) fn match_ranges(label: &str, needle: &str) -> Vec<std::ops::Range<usize>> {
    if needle.is_empty() {
        return Vec::new();
    }
    let mut lower = String::with_capacity(label.len());
    // For each byte of `lower`: the range in `label` of the character it came from.
    let mut origin = Vec::with_capacity(label.len());
    for (i, c) in label.char_indices() {
        let before = lower.len();
        lower.extend(c.to_lowercase());
        origin.extend(std::iter::repeat_n(
            i..i + c.len_utf8(),
            lower.len() - before,
        ));
    }
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(needle) {
        let (start, end) = (from + at, from + at + needle.len());
        let range = origin[start].start..origin[end - 1].end;
        match ranges.last_mut() {
            Some(last) if last.end >= range.start => last.end = last.end.max(range.end),
            _ => ranges.push(range),
        }
        from = end;
    }
    ranges
}

/// The highlight of the filter's matches in a label: dark text on amber, in both themes
/// (as a browser's find does), so it stands out from the selection's own color.
pub(super) const MATCH_BG: egui::Color32 = egui::Color32::from_rgb(250, 210, 80);
const MATCH_FG: egui::Color32 = egui::Color32::from_rgb(20, 20, 20);

/// A node's label with the filter's matches highlighted; the plain label if none.
pub(super) fn label_text(ui: &Ui, label: &str, needle: &str) -> egui::WidgetText {
    let ranges = match_ranges(label, needle);
    if ranges.is_empty() {
        return label.into();
    }
    let style = ui.style();
    let font = egui::FontSelection::Style(egui::TextStyle::Button);
    let mut job = egui::text::LayoutJob::default();
    let plain = |job: &mut egui::text::LayoutJob, text: &str| {
        if !text.is_empty() {
            RichText::new(text).append_to(job, style, font.clone(), egui::Align::Center);
        }
    };
    let mut at = 0;
    for r in ranges {
        plain(&mut job, &label[at..r.start]);
        RichText::new(&label[r.clone()])
            .color(MATCH_FG)
            .background_color(MATCH_BG)
            .append_to(&mut job, style, font.clone(), egui::Align::Center);
        at = r.end;
    }
    plain(&mut job, &label[at..]);
    job.into()
}

/// What a click on a row did.
enum RowEvent {
    Toggle(usize),
    Select(usize),
    DoubleClick(usize),
}

/// Draws the filter box and the tree; clicking a node selects it, the arrow keys move the
/// selection and open and close nodes, Enter shows the selection's details, and a
/// double-clicked VM asks for the migration wizard.
pub fn inventory(
    ui: &mut Ui,
    doc: &Document,
    view: &mut TreeView,
    filter_text: &mut String,
    selection: &mut Option<Selection>,
) -> TreeOutput {
    let inv = &doc.inventory;
    let mut out = TreeOutput::default();
    ui.add_space(4.0);
    let filter = ui
        .horizontal(|ui| {
            let label = ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(filter_text)
                    .hint_text("id or name")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id)
        })
        .inner;
    ui.separator();
    view.update(inv, &filter_text.trim().to_lowercase());
    if filter.has_focus() && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::ArrowDown))
    {
        // From the filter down into the matches.
        filter.surrender_focus();
        if let Some(r) = view.next_node_row(None, true) {
            view.select_row(inv, r, selection);
        }
    }
    if *selection != view.seen_selection {
        // Selected elsewhere (a link in the details, a test): show it if it is in view.
        if let Some(r) = view.selected_row(inv, selection) {
            view.set_cursor(inv, r);
            view.scroll_to = Some(r);
        }
    }
    view.keyboard(ui, inv, selection, &mut out);
    // Left and Right change the open state: rebuild before drawing.
    view.update(inv, &filter_text.trim().to_lowercase());

    if view.rows.is_empty() {
        ui.add_space(6.0);
        ui.label(
            RichText::new(format!(
                "No object matches \"{}\"; clear the filter to see the whole inventory.",
                filter_text.trim()
            ))
            .weak(),
        );
        if ui.button("Clear the filter").clicked() {
            filter_text.clear();
        }
        view.seen_selection = selection.clone();
        return out;
    }

    let row_h = ui.spacing().interact_size.y;
    let pitch = row_h + ui.spacing().item_spacing.y;
    let mut area = egui::ScrollArea::vertical()
        .id_salt("inventory-tree")
        .auto_shrink([false, false]);
    if let Some(r) = view.scroll_to.take() {
        let top = r as f32 * pitch;
        let bottom = top + row_h;
        if top < view.offset {
            area = area.vertical_scroll_offset(top);
        } else if bottom > view.offset + view.viewport && view.viewport > 0.0 {
            area = area.vertical_scroll_offset(bottom - view.viewport);
        }
    }
    let mut events = Vec::new();
    let rows = &view.rows;
    let needle = view.needle.as_str();
    let draw = |ui: &mut Ui, range: std::ops::Range<usize>, events: &mut Vec<RowEvent>| {
        for r in range {
            row_ui(ui, inv, rows[r], r, row_h, needle, selection, events);
        }
    };
    let output = if rows.len() <= LAY_OUT_ALL_MAX_ROWS {
        area.show(ui, |ui| draw(ui, 0..rows.len(), &mut events))
    } else {
        area.show_rows(ui, row_h, rows.len(), |ui, range| {
            draw(ui, range, &mut events)
        })
    };
    view.offset = output.state.clamped_offset().y;
    view.viewport = output.inner_rect.height();

    for e in events {
        match e {
            RowEvent::Toggle(r) => match view.rows[r].kind {
                RowKind::Section { section, .. } => {
                    let s = usize::from(section);
                    view.closed_sections[s] = !view.closed_sections[s];
                    view.dirty = true;
                }
                RowKind::Node(n) => {
                    let open = view.rows[r].open;
                    view.set_open(inv, n, !open);
                }
            },
            RowEvent::Select(r) => {
                if let RowKind::Node(n) = view.rows[r].kind {
                    *selection = Some(inv.nodes[n].select.clone());
                    view.set_cursor(inv, r);
                    // Whichever main tab is open, also when it was selected already.
                    out.show_details = true;
                }
            }
            RowEvent::DoubleClick(r) => {
                if let RowKind::Node(n) = view.rows[r].kind
                    && let Selection::Vm(id) = &inv.nodes[n].select
                {
                    out.open_wizard = Some(id.clone());
                }
            }
        }
    }
    view.seen_selection = selection.clone();
    out
}

/// One row: indentation, the open/close toggle (if it has children), the label with the
/// filter's matches (`needle`) highlighted.
#[allow(clippy::too_many_arguments)]
fn row_ui(
    ui: &mut Ui,
    inv: &Inventory,
    row: Row,
    r: usize,
    row_h: f32,
    needle: &str,
    selection: &Option<Selection>,
    events: &mut Vec<RowEvent>,
) {
    let width = ui.available_width();
    ui.allocate_ui_with_layout(
        egui::vec2(width, row_h),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(egui::vec2(width, row_h));
            ui.spacing_mut().item_spacing.x = 2.0;
            ui.add_space(f32::from(row.depth) * ui.spacing().indent * 0.8);
            let icon = ui.spacing().icon_width;
            if row.has_children {
                let (rect, resp) =
                    ui.allocate_exact_size(egui::vec2(icon, row_h), egui::Sense::click());
                let what = if row.open { "Collapse" } else { "Expand" };
                resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, what));
                if ui.is_rect_visible(rect) {
                    let openness = if row.open { 1.0 } else { 0.0 };
                    let icon_rect =
                        egui::Rect::from_center_size(rect.center(), egui::vec2(icon, icon));
                    let resp = resp.clone().with_new_rect(icon_rect);
                    egui::collapsing_header::paint_default_icon(ui, openness, &resp);
                }
                if resp.clicked() {
                    events.push(RowEvent::Toggle(r));
                }
            } else {
                ui.add_space(icon);
            }
            match row.kind {
                RowKind::Section { section, count } => {
                    let title = SECTIONS[usize::from(section)];
                    let resp = ui.add(
                        egui::Label::new(RichText::new(format!("{title} ({count})")).strong())
                            .sense(egui::Sense::click()),
                    );
                    if resp.clicked() {
                        events.push(RowEvent::Toggle(r));
                    }
                }
                RowKind::Node(n) => {
                    let node = &inv.nodes[n];
                    let selected = selection.as_ref() == Some(&node.select);
                    let resp = ui.selectable_label(selected, label_text(ui, &node.label, needle));
                    if resp.clicked() {
                        events.push(RowEvent::Select(r));
                    }
                    if resp.double_clicked() {
                        events.push(RowEvent::DoubleClick(r));
                    }
                }
            }
        },
    );
}
