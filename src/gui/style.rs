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

/// Up to two decimals, trailing zeros dropped: "100", "1.5", "0.25", "0" (never "-0").
pub fn decimals(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0" } else { text }.to_string()
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
        GroupState::Transferring => Tone::Busy,
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
}
