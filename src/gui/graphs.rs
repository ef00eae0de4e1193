//! The graphs: copy progress per migration and guest write latency per VM, both over
//! simulated time, drawn from the bounded history in [`Live`].

use std::ops::RangeInclusive;

use egui::{RichText, Ui};
use egui_plot::{GridInput, GridMark, HoverPosition, Legend, Line, Plot};

use super::live::{Live, mm_ss};
use super::style::latency_text;
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

/// Grid lines for an axis of durations counted in units of `unit_secs` seconds (60: the
/// axis is in minutes): steps a person counts in (10 s, 30 s, 1, 2, 5, 15, 30 min, 1 h…),
/// the labeled ones at least 24 points apart, so even a short plot labels two or three
/// ticks (powers of ten left a 110-point lag plot with only its "0").
pub(crate) fn duration_grid(unit_secs: f64) -> impl Fn(GridInput) -> Vec<GridMark> {
    const NICE_SECS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        21600.0, 43200.0,
    ];
    move |input: GridInput| {
        // base_step_size is the plot's minimum grid spacing (8 points) in axis units.
        let nice = |at_least: f64| {
            let secs = at_least * unit_secs;
            let step = NICE_SECS
                .iter()
                .copied()
                .find(|&n| n >= secs)
                .unwrap_or_else(|| {
                    // Beyond half a day: whole days.
                    (secs / 86_400.0).ceil() * 86_400.0
                });
            step / unit_secs
        };
        let base = input.base_step_size.max(f64::MIN_POSITIVE);
        let steps = [nice(base), nice(base * 3.0), nice(base * 12.0)];
        let (lo, hi) = input.bounds;
        let mut marks: Vec<GridMark> = Vec::new();
        for step in steps {
            let first = (lo / step).ceil() as i64;
            let last = (hi / step).floor() as i64;
            // A bounded number of lines whatever the zoom: ~8 points apart at the least.
            for k in first..=last.min(first + 1000) {
                let value = k as f64 * step;
                match marks
                    .iter_mut()
                    .find(|m| (m.value - value).abs() < step * 1e-6)
                {
                    Some(m) => m.step_size = m.step_size.max(step),
                    None => marks.push(GridMark {
                        value,
                        step_size: step,
                    }),
                }
            }
        }
        marks
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

/// The "all VMs" latency line: a neutral grey, so the migrating VMs stand out.
const ALL_VMS: egui::Color32 = egui::Color32::from_gray(140);

#[cfg(test)]
mod tests {
    use egui_plot::GridInput;

    use super::duration_grid;

    #[test]
    fn a_short_lag_axis_gets_nice_labeled_steps() {
        // The lag plot at 1024×700: 0–34 min over about 74 points; 8 points ≈ 3.7 min.
        let marks = duration_grid(60.0)(GridInput {
            bounds: (0.0, 34.0),
            base_step_size: 3.7,
        });
        // Labels need 20+ points (about 9 min here): the 15 min steps carry them.
        let labeled: Vec<f64> = marks
            .iter()
            .filter(|m| m.step_size >= 9.0)
            .map(|m| m.value)
            .collect();
        assert_eq!(labeled, [0.0, 15.0, 30.0]);
        assert!(marks.iter().all(|m| m.step_size >= 3.7));
        // Zoomed in to half a minute: seconds.
        let marks = duration_grid(60.0)(GridInput {
            bounds: (0.0, 0.5),
            base_step_size: 0.05,
        });
        let steps: Vec<f64> = marks.iter().map(|m| (m.step_size * 60.0).round()).collect();
        assert!(steps.contains(&5.0) && steps.contains(&10.0), "{steps:?}");
    }
}
