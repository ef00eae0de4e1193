//! The graphs: copy progress per migration and guest write latency per VM, both over
//! simulated time, drawn from the bounded history in [`Live`].

use std::ops::RangeInclusive;

use egui::{RichText, Ui};
use egui_plot::{GridMark, HoverPosition, Legend, Line, Plot};

use super::live::{Live, mm_ss};
use crate::engine::SECOND;

/// Simulated seconds on an axis: "mm:ss", or "mm:ss.s" when zoomed in below a minute.
pub(crate) fn time_axis(mark: GridMark, range: &RangeInclusive<f64>) -> String {
    let s = mark.value.max(0.0);
    let m = (s / 60.0).floor();
    if range.end() - range.start() < 60.0 {
        format!("{:02}:{:04.1}", m as u64, s - m * 60.0)
    } else {
        format!("{:02}:{:02}", m as u64, (s - m * 60.0).floor() as u64)
    }
}

/// A plot's hover text near a line: its name, then "at mm:ss: " and what the value means.
pub(crate) fn hover_text(
    value: impl Fn(f64) -> String,
) -> impl Fn(&HoverPosition<'_>) -> Option<String> {
    move |hover| match hover {
        HoverPosition::NearDataPoint {
            plot_name,
            position,
            ..
        } => Some(format!(
            "{plot_name}\nat {}: {}",
            mm_ss((position.x.max(0.0) * SECOND as f64) as u64),
            value(position.y)
        )),
        HoverPosition::Elsewhere { .. } => None,
    }
}

/// A fixed-height box with a hint, where a graph goes once it has data.
pub(crate) fn empty(ui: &mut Ui, height: f32, hint: &str) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.set_height(height - 12.0);
        let line = ui.text_style_height(&egui::TextStyle::Body);
        ui.add_space(((height - 12.0 - 2.0 * line) / 2.0).max(0.0));
        ui.vertical_centered(|ui| {
            ui.label(RichText::new(hint).weak());
        });
    });
}

pub fn progress(ui: &mut Ui, live: &Live, height: f32) {
    ui.strong("Copy progress");
    if live.tasks.iter().all(|t| t.progress.is_empty()) {
        empty(
            ui,
            height,
            "Each migration's progress is drawn here while it runs.",
        );
        return;
    }
    Plot::new("copy-progress")
        .height(height)
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(100.0)
        .x_axis_formatter(time_axis)
        .y_axis_label("%")
        .allow_scroll(false)
        .label_formatter(hover_text(|y| format!("{y:.1} % copied")))
        .show(ui, |plot| {
            for t in &live.tasks {
                if !t.progress.is_empty() {
                    plot.line(Line::new(format!("{} {}", t.vm, t.id), &t.progress[..]));
                }
            }
        });
}

/// The worst write latency over all VMs, and one line per VM that has a migration in the
/// task list (a line per VM for a whole inventory would bury the plot under its legend).
pub fn latency(ui: &mut Ui, live: &Live, height: f32) {
    ui.horizontal(|ui| {
        ui.strong("Guest write latency");
        ui.label(RichText::new("worst per update").weak());
    });
    if live.latency_all.is_empty() {
        let hint = if live.snapshot.as_ref().is_some_and(|s| s.workloads_on) {
            "Waiting for the first guest writes…"
        } else {
            "Start the workloads to see how long guest writes take."
        };
        empty(ui, height, hint);
        return;
    }
    let mut migrating: Vec<&str> = live.tasks.iter().map(|t| t.vm.as_str()).collect();
    migrating.sort_unstable();
    migrating.dedup();
    Plot::new("write-latency")
        .height(height)
        .legend(Legend::default())
        .include_y(0.0)
        .x_axis_formatter(time_axis)
        // Each tick carries its unit, picked from the visible range: a guest stalled for
        // 100 s behind a slow copy reads "100 s", not "100000000 µs".
        .y_axis_formatter(|mark, range| {
            let scale = range.start().abs().max(range.end().abs());
            latency_text(mark.value, scale)
        })
        .y_axis_label("write latency")
        .allow_scroll(false)
        .label_formatter(hover_text(|y| latency_text(y, y)))
        .show(ui, |plot| {
            plot.line(Line::new("all VMs", &live.latency_all[..]).color(ALL_VMS));
            for vm in migrating {
                if let Some(points) = live.latency.get(vm) {
                    plot.line(Line::new(vm, &points[..]));
                }
            }
        });
}

/// A latency of `us` microseconds in the unit that fits `scale_us` (the largest value shown
/// beside it): µs below a millisecond, ms below a second, s above, with the unit named.
pub(crate) fn latency_text(us: f64, scale_us: f64) -> String {
    let (div, unit) = if scale_us >= 1e6 {
        (1e6, "s")
    } else if scale_us >= 1e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    };
    format!("{} {unit}", super::style::decimals(us / div))
}

/// The "all VMs" latency line: a neutral grey, so the migrating VMs stand out.
const ALL_VMS: egui::Color32 = egui::Color32::from_gray(140);

#[cfg(test)]
mod tests {
    use super::latency_text;

    #[test]
    fn latencies_read_in_the_unit_that_fits() {
        // The patent-timelines demo: a write held 100 s behind a slow copy run.
        assert_eq!(latency_text(100_000_000.0, 100_000_000.0), "100 s");
        assert_eq!(latency_text(25_000_000.0, 100_000_000.0), "25 s");
        assert_eq!(latency_text(1_500.0, 1_500.0), "1.5 ms");
        assert_eq!(latency_text(250.0, 900.0), "250 µs");
        assert_eq!(latency_text(0.0, 100_000_000.0), "0 s");
        assert_eq!(latency_text(12.345, 12.345), "12.35 µs");
        // Ticks of one axis share the unit of its largest value.
        assert_eq!(latency_text(500_000.0, 2_000_000.0), "0.5 s");
    }
}
