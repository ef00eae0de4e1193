//! The console's visual vocabulary: rating colors, tag chips, glyphs per object kind.
//! One place so every view uses the same colors for the same meaning.

use egui::{Color32, RichText, Ui};

use crate::dr::Rating;

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
