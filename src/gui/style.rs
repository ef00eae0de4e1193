//! The console's visual vocabulary: rating colors, tag chips, glyphs per object kind.
//! One place so every view uses the same colors for the same meaning.

use egui::{Color32, RichText, Ui};

use crate::dr::Rating;

/// A copy rate in MiB/s, without its unit: "400", "0.25" (a slow copy is not "0").
pub fn rate_text(mib_s: f64) -> String {
    if mib_s >= 10.0 {
        format!("{mib_s:.0}")
    } else {
        decimals(mib_s)
    }
}

/// A span of simulated time in `secs` seconds, in the one duration format of every view,
/// scaled: "0.5 s", "42 s", "3 min 20 s", "20 min", "1 h 05 min". Points in time (the
/// simulated clock) read "mm:ss" instead ([`super::live::mm_ss`]).
pub fn duration_text(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let secs = secs.max(0.0);
    // Rounded once, in the unit shown, so 9.96 s reads "10 s", not "10.0 s".
    let tenths = (secs * 10.0).round();
    if tenths < 100.0 {
        return format!("{} s", decimals(tenths / 10.0));
    }
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        match s % 60 {
            0 => format!("{} min", s / 60),
            r => format!("{} min {r:02} s", s / 60),
        }
    } else {
        let m = (secs / 60.0).round() as u64;
        match m % 60 {
            0 => format!("{} h", m / 60),
            r => format!("{} h {r:02} min", m / 60),
        }
    }
}

/// "600×", "37×", "0.4×".
pub fn speed_label(speed: f64) -> String {
    if speed >= 10.0 || speed.fract() == 0.0 {
        format!("{speed:.0}×")
    } else {
        format!("{speed:.1}×")
    }
}

/// [`duration_text`] of a span of simulated time.
pub fn sim_duration(t: crate::engine::SimTime) -> String {
    duration_text(t as f64 / crate::engine::SECOND as f64)
}

/// [`duration_text`] of a whole number of minutes (an RPO).
pub fn minutes_text(minutes: u32) -> String {
    duration_text(f64::from(minutes) * 60.0)
}

/// A tick of a plot axis that shows `secs` seconds, in the one unit that fits `scale_secs`
/// (the largest value on the axis): "30 s", "15 min", "1.5 h".
pub fn duration_tick(secs: f64, scale_secs: f64) -> String {
    let (div, unit) = if scale_secs >= 2.0 * 3600.0 {
        (3600.0, "h")
    } else if scale_secs >= 120.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    };
    format!("{} {unit}", decimals(secs / div))
}

/// A latency of `us` microseconds in the unit that fits `scale_us` (the largest value shown
/// beside it): µs below a millisecond, ms below a second, s above, with the unit named.
pub fn latency_text(us: f64, scale_us: f64) -> String {
    let (div, unit) = if scale_us >= 1e6 {
        (1e6, "s")
    } else if scale_us >= 1e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    };
    format!("{} {unit}", decimals(us / div))
}

/// A size in bytes, scaled to B, KiB, MiB, GiB or TiB with about three significant digits:
/// "209 B", "1.5 KiB", "25.6 MiB", "256 GiB".
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    // 1023.9 KiB rounds to "1024 KiB": scale on the rounded value, not the raw one.
    while unit + 1 < UNITS.len() && v >= 1023.5 {
        v /= 1024.0;
        unit += 1;
    }
    let text = if unit == 0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        let t = format!("{v:.1}");
        t.trim_end_matches(".0").to_string()
    } else {
        decimals(v)
    };
    format!("{text} {}", UNITS[unit])
}

/// [`size_text`] of a size in MiB (disks, free space).
pub fn mib_text(mib: u64) -> String {
    size_text(mib.saturating_mul(1 << 20))
}

/// [`size_text`] of a size in GiB (memory, LUN capacity).
pub fn gib_text(gib: u64) -> String {
    size_text(gib.saturating_mul(1 << 30))
}

/// Up to two decimals, trailing zeros dropped: "100", "1.5", "0.25", "0" (never "-0").
pub fn decimals(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0" } else { text }.to_string()
}

/// The smallest text the console shows (egui's `Small`, 9 px by default, read as 8 px
/// notes nobody could read); body text stays egui's 13 px.
pub const SMALL_TEXT: f32 = 11.5;

/// Grey ("weak") text per theme, instead of egui's text color at 60 % alpha, which on the
/// light theme's near-white panels fell below 3:1 contrast. Both keep above 4:1 on their
/// panel fill (gray 248 light, 27 dark) and stay visibly lighter than body text.
pub const WEAK_TEXT_LIGHT: Color32 = Color32::from_gray(100);
pub const WEAK_TEXT_DARK: Color32 = Color32::from_gray(125);

/// The console's text sizes and grey text, on both themes: called once on the context.
pub fn install(ctx: &egui::Context) {
    ctx.all_styles_mut(|s| {
        if let Some(f) = s.text_styles.get_mut(&egui::TextStyle::Small) {
            f.size = f.size.max(SMALL_TEXT);
        }
        s.visuals.weak_text_color = Some(if s.visuals.dark_mode {
            WEAK_TEXT_DARK
        } else {
            WEAK_TEXT_LIGHT
        });
    });
}

/// The color of a rating, used for text, chips and plot lines alike.
pub fn rating_color(r: Rating, dark: bool) -> Color32 {
    match (r, dark) {
        (Rating::None, true) => Color32::from_rgb(98, 200, 120),
        (Rating::None, false) => Color32::from_rgb(24, 128, 56),
        (Rating::Mild, true) => Color32::from_rgb(226, 204, 90),
        (Rating::Mild, false) => Color32::from_rgb(150, 120, 0),
        (Rating::HeightenedMild, true) => Color32::from_rgb(240, 150, 60),
        (Rating::HeightenedMild, false) => Color32::from_rgb(196, 96, 0),
        (Rating::Severe, true) => Color32::from_rgb(240, 90, 80),
        (Rating::Severe, false) => Color32::from_rgb(196, 32, 32),
        (Rating::HeightenedSevere, true) => Color32::from_rgb(236, 90, 190),
        (Rating::HeightenedSevere, false) => Color32::from_rgb(160, 0, 110),
    }
}

/// A rating as colored, strong text.
pub fn rating_text(ui: &Ui, r: Rating) -> RichText {
    RichText::new(r.as_str())
        .color(rating_color(r, ui.visuals().dark_mode))
        .strong()
}

/// What a tag chip stands for; decides its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipKind {
    Replicated,
    NotReplicated,
    ConsistencyGroup,
    ProtectionGroup,
    Neutral,
}

impl ChipKind {
    /// The chip kind of a `replication:*` tag string.
    pub fn of_tag(tag: &str) -> ChipKind {
        if tag == "replication:status=replicated" {
            ChipKind::Replicated
        } else if tag == "replication:status=not-replicated" {
            ChipKind::NotReplicated
        } else if tag.starts_with("replication:cg=") {
            ChipKind::ConsistencyGroup
        } else if tag.starts_with("replication:pg=") {
            ChipKind::ProtectionGroup
        } else {
            ChipKind::Neutral
        }
    }

    fn fill(self) -> Color32 {
        match self {
            ChipKind::Replicated => Color32::from_rgb(30, 120, 90),
            ChipKind::NotReplicated => Color32::from_rgb(110, 110, 110),
            ChipKind::ConsistencyGroup => Color32::from_rgb(40, 90, 170),
            ChipKind::ProtectionGroup => Color32::from_rgb(120, 60, 160),
            ChipKind::Neutral => Color32::from_rgb(80, 80, 90),
        }
    }

    /// What the tag means, for its tooltip.
    pub fn explain(self) -> &'static str {
        match self {
            ChipKind::Replicated => {
                "Every LUN backing this datastore is replicated to the recovery site."
            }
            ChipKind::NotReplicated => {
                "At least one LUN backing this datastore is not replicated: nothing on it reaches the recovery site."
            }
            ChipKind::ConsistencyGroup => {
                "Every LUN of this datastore is in this consistency group: its write order is preserved together with the group's other datastores."
            }
            ChipKind::ProtectionGroup => {
                "The recovery manager protects and recovers this datastore with this protection group."
            }
            ChipKind::Neutral => "",
        }
    }
}

/// A small rounded, colored label.
pub fn chip(ui: &mut Ui, text: &str, kind: ChipKind) -> egui::Response {
    egui::Frame::new()
        .fill(kind.fill())
        .corner_radius(8.0)
        .inner_margin(egui::Margin::symmetric(7, 2))
        .show(ui, |ui| {
            ui.label(RichText::new(text).color(Color32::WHITE).small());
        })
        .response
        .on_hover_text(kind.explain())
}

/// What a badge or a state says, good to bad; decides its color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Healthy, verified, in time: green.
    Good,
    /// Something happens (a transfer in flight): blue.
    Busy,
    /// Degraded but not lost (paused, link down, writes lost): amber.
    Warn,
    /// Broken or lost (not consistent, site down, an error): red.
    Bad,
    /// Over and done with (failed over): purple.
    Done,
    /// No judgment: grey.
    Muted,
}

impl Tone {
    /// The fill of a badge; its text is white.
    pub fn fill(self) -> Color32 {
        match self {
            Tone::Good => Color32::from_rgb(28, 128, 64),
            Tone::Busy => Color32::from_rgb(40, 100, 180),
            Tone::Warn => Color32::from_rgb(186, 112, 0),
            Tone::Bad => Color32::from_rgb(190, 40, 40),
            Tone::Done => Color32::from_rgb(120, 60, 160),
            Tone::Muted => Color32::from_rgb(100, 100, 108),
        }
    }

    /// The color of text in this tone, readable on the panel background.
    pub fn text(self, dark: bool) -> Color32 {
        match (self, dark) {
            (Tone::Good, _) => rating_color(Rating::None, dark),
            (Tone::Busy, true) => Color32::from_rgb(110, 170, 250),
            (Tone::Busy, false) => Color32::from_rgb(30, 90, 170),
            (Tone::Warn, true) => Color32::from_rgb(240, 170, 50),
            (Tone::Warn, false) => Color32::from_rgb(170, 100, 0),
            (Tone::Bad, _) => rating_color(Rating::Severe, dark),
            (Tone::Done, true) => Color32::from_rgb(190, 140, 240),
            (Tone::Done, false) => Color32::from_rgb(110, 50, 150),
            (Tone::Muted, true) => Color32::from_gray(160),
            (Tone::Muted, false) => Color32::from_gray(90),
        }
    }
}

/// A small rounded badge in `tone`, with a tooltip (none if `hint` is empty). One widget
/// on one line, so a row of badges in `horizontal_wrapped` wraps between them.
pub fn badge(ui: &mut Ui, text: &str, tone: Tone, hint: &str) -> egui::Response {
    let pad = egui::vec2(7.0, 2.0);
    let galley = egui::WidgetText::from(RichText::new(text).small()).into_galley(
        ui,
        Some(egui::TextWrapMode::Extend),
        f32::INFINITY,
        egui::TextStyle::Small,
    );
    let (rect, r) = ui.allocate_exact_size(galley.size() + 2.0 * pad, egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let painter = ui.painter();
        painter.rect_filled(rect, 8.0, tone.fill());
        painter.galley(rect.min + pad, galley, Color32::WHITE);
    }
    r.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, text));
    if hint.is_empty() {
        r
    } else {
        r.on_hover_text(hint)
    }
}

/// Text in `tone`'s color.
pub fn toned(ui: &Ui, text: impl Into<String>, tone: Tone) -> RichText {
    RichText::new(text).color(tone.text(ui.visuals().dark_mode))
}

/// The tone of a replication group's state.
pub fn group_state_tone(s: crate::engine::GroupState) -> Tone {
    use crate::engine::GroupState;
    match s {
        GroupState::Idle => Tone::Good,
        GroupState::Transferring | GroupState::MovingAcross => Tone::Busy,
        GroupState::Paused | GroupState::Swapped | GroupState::LinkDown => Tone::Warn,
        GroupState::SiteDown => Tone::Bad,
        GroupState::FailedOver => Tone::Done,
    }
}

/// Line colors for series that need a fixed color per item (a group's lag and its RPO
/// line share one).
pub fn series_color(i: usize) -> Color32 {
    const PALETTE: [Color32; 6] = [
        Color32::from_rgb(80, 160, 240),
        Color32::from_rgb(240, 140, 60),
        Color32::from_rgb(120, 200, 110),
        Color32::from_rgb(210, 110, 200),
        Color32::from_rgb(230, 200, 70),
        Color32::from_rgb(90, 200, 200),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Glyphs per object kind, from egui's default fonts.
pub mod glyph {
    pub const SITE: &str = "🏢";
    pub const HOST: &str = "🖥";
    pub const VM: &str = "💻";
    pub const ARRAY: &str = "🗄";
    pub const LUN: &str = "🖴";
    pub const DATASTORE: &str = "🗀";
    pub const PROTECTION_GROUP: &str = "🛡";
    /// From … to: replication's direction (the fonts have no "→").
    pub const TO: &str = "➡";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SECOND;

    #[test]
    fn durations_scale_at_their_boundaries() {
        assert_eq!(duration_text(0.0), "0 s");
        assert_eq!(duration_text(0.04), "0 s");
        assert_eq!(duration_text(0.5), "0.5 s");
        assert_eq!(duration_text(9.94), "9.9 s");
        // Rounds up into the next unit rather than reading "10.0 s" or "60 s".
        assert_eq!(duration_text(9.96), "10 s");
        assert_eq!(duration_text(42.4), "42 s");
        assert_eq!(duration_text(59.4), "59 s");
        assert_eq!(duration_text(59.6), "1 min");
        assert_eq!(duration_text(65.0), "1 min 05 s");
        assert_eq!(duration_text(200.0), "3 min 20 s");
        assert_eq!(duration_text(20.0 * 60.0 + 29.0), "20 min 29 s");
        assert_eq!(duration_text(3599.4), "59 min 59 s");
        assert_eq!(duration_text(3599.6), "1 h");
        assert_eq!(duration_text(3600.0 + 5.0 * 60.0), "1 h 05 min");
        assert_eq!(duration_text(26.0 * 3600.0), "26 h");
        assert_eq!(duration_text(-3.0), "0 s");
        assert_eq!(duration_text(f64::NAN), "—");
        assert_eq!(duration_text(f64::INFINITY), "—");
        // An RPO and an achieved RPO read alike.
        assert_eq!(minutes_text(20), "20 min");
        assert_eq!(minutes_text(0), "0 s");
        assert_eq!(sim_duration(30 * SECOND), "30 s");
        assert_eq!(sim_duration(SECOND / 2), "0.5 s");
    }

    #[test]
    fn axis_ticks_share_the_unit_of_the_axis() {
        assert_eq!(duration_tick(30.0, 90.0), "30 s");
        assert_eq!(duration_tick(119.0, 119.0), "119 s");
        assert_eq!(duration_tick(60.0, 120.0), "1 min");
        assert_eq!(duration_tick(0.0, 20.0 * 60.0), "0 min");
        assert_eq!(duration_tick(150.0, 20.0 * 60.0), "2.5 min");
        assert_eq!(duration_tick(5400.0, 7200.0), "1.5 h");
    }

    #[test]
    fn latencies_read_in_the_unit_that_fits() {
        // The patent-timelines demo: a write held 100 s behind a slow copy run.
        assert_eq!(latency_text(100_000_000.0, 100_000_000.0), "100 s");
        assert_eq!(latency_text(25_000_000.0, 100_000_000.0), "25 s");
        assert_eq!(latency_text(1_500.0, 1_500.0), "1.5 ms");
        assert_eq!(latency_text(999.0, 999.0), "999 µs");
        assert_eq!(latency_text(1_000.0, 1_000.0), "1 ms");
        assert_eq!(latency_text(250.0, 900.0), "250 µs");
        assert_eq!(latency_text(0.0, 100_000_000.0), "0 s");
        assert_eq!(latency_text(12.345, 12.345), "12.35 µs");
        // Ticks of one axis share the unit of its largest value.
        assert_eq!(latency_text(500_000.0, 2_000_000.0), "0.5 s");
    }

    #[test]
    fn sizes_scale_at_their_boundaries() {
        assert_eq!(size_text(0), "0 B");
        assert_eq!(size_text(209), "209 B");
        assert_eq!(size_text(1023), "1023 B");
        assert_eq!(size_text(1024), "1 KiB");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(1023 * 1024), "1023 KiB");
        // 1023.9 KiB would read "1024 KiB": it is 1 MiB.
        assert_eq!(size_text(1023 * 1024 + 920), "1 MiB");
        assert_eq!(size_text(25 * 1024 * 1024 + 600 * 1024), "25.6 MiB");
        assert_eq!(size_text(20 << 20), "20 MiB");
        assert_eq!(mib_text(64), "64 MiB");
        assert_eq!(mib_text(262_042), "256 GiB");
        assert_eq!(mib_text(26_214), "25.6 GiB");
        assert_eq!(mib_text(10_239), "10 GiB");
        assert_eq!(mib_text(1024), "1 GiB");
        assert_eq!(gib_text(256), "256 GiB");
        assert_eq!(gib_text(2048), "2 TiB");
        assert_eq!(size_text(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn small_and_grey_text_are_readable_on_both_themes() {
        let ctx = egui::Context::default();
        install(&ctx);
        for theme in [egui::Theme::Light, egui::Theme::Dark] {
            let style = ctx.style_of(theme);
            let small = &style.text_styles[&egui::TextStyle::Small];
            assert!(small.size >= 11.0, "{theme:?}: small text {}", small.size);
            let v = &style.visuals;
            let ratio = contrast(v.weak_text_color(), v.panel_fill);
            assert!(ratio >= 4.0, "{theme:?}: grey text contrast {ratio:.2}");
            // Still grey: less contrast than body text.
            assert!(ratio < contrast(v.text_color(), v.panel_fill));
        }
    }

    /// WCAG contrast ratio of `fg` drawn over the opaque `bg` (egui's default grey text is
    /// translucent).
    fn contrast(fg: Color32, bg: Color32) -> f32 {
        let a = egui::ecolor::Rgba::from(bg) * (1.0 - fg.a() as f32 / 255.0)
            + egui::ecolor::Rgba::from(fg);
        let a = Color32::from(a);
        let b = bg;
        let lum = |c: Color32| {
            let ch = |v: u8| {
                let v = f32::from(v) / 255.0;
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * ch(c.r()) + 0.7152 * ch(c.g()) + 0.0722 * ch(c.b())
        };
        let (x, y) = (lum(a) + 0.05, lum(b) + 0.05);
        x.max(y) / x.min(y)
    }
}
