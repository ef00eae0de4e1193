use super::draw::{MATCH_BG, label_text, match_ranges};
use super::*;

fn labels(inv: &Inventory, view: &TreeView) -> Vec<String> {
    view.rows
        .iter()
        .map(|r| match r.kind {
            RowKind::Section { section, count } => {
                format!("{} ({count})", SECTIONS[usize::from(section)])
            }
            RowKind::Node(n) => inv.nodes[n].label.clone(),
        })
        .collect()
}

#[test]
fn every_object_kind_has_a_glyph_the_fonts_draw() {
    let ctx = egui::Context::default();
    ctx.run_ui(egui::RawInput::default(), |_| {})
        .drop_without_applying_deltas();
    for g in [
        glyph::SITE,
        glyph::HOST,
        glyph::VM,
        glyph::ARRAY,
        glyph::LUN,
        glyph::DATASTORE,
        glyph::PROTECTION_GROUP,
    ] {
        let font = egui::FontId::proportional(14.0);
        assert!(ctx.fonts_mut(|f| f.has_glyphs(&font, g)), "{g:?} renders");
    }
    let kinds = [
        glyph::SITE,
        glyph::HOST,
        glyph::VM,
        glyph::ARRAY,
        glyph::LUN,
        glyph::DATASTORE,
        glyph::PROTECTION_GROUP,
    ];
    // The check can fail: a private-use code point is in no bundled font.
    let font = egui::FontId::proportional(14.0);
    assert!(!ctx.fonts_mut(|f| f.has_glyphs(&font, "\u{F0000}")));
    let distinct: HashSet<_> = kinds.iter().collect();
    assert_eq!(distinct.len(), kinds.len(), "one glyph per kind");
}

#[test]
fn filter_matches_are_found_case_insensitively_in_the_label() {
    let label = "🏢 pa — Palo Alto (protected)";
    let at = |r: &std::ops::Range<usize>| &label[r.clone()];
    let m = match_ranges(label, "pa");
    assert_eq!(m.iter().map(at).collect::<Vec<_>>(), ["pa", "Pa"]);
    assert_eq!(
        match_ranges(label, "alto (p")
            .iter()
            .map(at)
            .collect::<Vec<_>>(),
        ["Alto (p"]
    );
    assert!(match_ranges(label, "").is_empty());
    assert!(match_ranges(label, "ny").is_empty());
    // Lower-casing 'İ' gives two characters: the ranges stay on character boundaries.
    let odd = "💻 İstanbul-İ";
    let m = match_ranges(odd, "i\u{307}s");
    assert_eq!(m.len(), 1);
    assert_eq!(&odd[m[0].clone()], "İs");
    let m = match_ranges(odd, "\u{307}");
    assert_eq!(
        m.iter().map(|r| &odd[r.clone()]).collect::<Vec<_>>(),
        ["İ", "İ"]
    );
    // Overlapping matches of a repeated letter merge into one highlight.
    assert_eq!(match_ranges("aaa", "aa"), vec![0..2]);
}

#[test]
fn a_label_with_a_match_is_drawn_highlighted() {
    let ctx = egui::Context::default();
    ctx.run_ui(egui::RawInput::default(), |ui| {
        let plain = label_text(ui, "💻 db-01", "web");
        assert!(
            matches!(plain, egui::WidgetText::Text(_)),
            "no match, no highlight"
        );
        let egui::WidgetText::LayoutJob(job) =
            label_text(ui, "💻 db-01", "DB".to_lowercase().as_str())
        else {
            panic!("a match is a layout job");
        };
        assert_eq!(job.text, "💻 db-01", "the same text (and accessible name)");
        let lit: Vec<&str> = job
            .sections
            .iter()
            .filter(|s| s.format.background == MATCH_BG)
            .map(|s| &job.text[s.byte_range.start.0..s.byte_range.end.0])
            .collect();
        assert_eq!(lit, ["db"]);
    })
    .drop_without_applying_deltas();
}

#[test]
fn a_small_inventory_starts_open_and_the_filter_keeps_ancestors() {
    let t = Topology::builtin_default();
    let inv = Inventory::new(&t);
    let mut view = TreeView::default();
    view.update(&inv, "");
    let all = labels(&inv, &view);
    assert_eq!(all.len(), inv.node_count() + 4, "everything open");
    assert_eq!(all[0], "Sites (2)");
    view.update(&inv, "db-01");
    let shown = labels(&inv, &view);
    assert!(shown.contains(&"🖥 esx-pa-2".to_string()), "{shown:?}");
    assert_eq!(shown.iter().filter(|l| *l == "💻 db-01").count(), 2);
    assert!(!shown.iter().any(|l| l.contains("lun-")), "{shown:?}");
    view.update(&inv, "no such thing");
    assert!(view.rows.is_empty());
}

#[test]
fn a_lost_site_is_marked_and_failed_over_vms_sit_under_their_recovery_hosts() {
    let t = Topology::builtin_default();
    let at = Whereabouts {
        lost_sites: ["pa".to_string()].into(),
        away: [
            (
                "web-01".to_string(),
                Away::Recovered {
                    host: "esx-ny-2".into(),
                    datastore: "ds-gold-1-r".into(),
                    moved: false,
                },
            ),
            ("build-01".to_string(), Away::Down),
        ]
        .into(),
    };
    let inv = Inventory::at(&t, at);
    let node = |label: &str| {
        (0..inv.nodes.len())
            .find(|&n| inv.nodes[n].label == label)
            .unwrap_or_else(|| panic!("no node {label}"))
    };
    let parent = |label: &str| {
        inv.nodes[inv.nodes[node(label)].parent.unwrap()]
            .label
            .clone()
    };
    node("🏢 pa — Palo Alto (protected, lost)");
    assert_eq!(
        parent("💻 web-01 — failed over to esx-ny-2"),
        "🖥 esx-pa-1 (lost)"
    );
    assert_eq!(parent("💻 web-01 — recovered from pa"), "🖥 esx-ny-2");
    assert_eq!(parent("💻 build-01 — not running"), "🖥 esx-pa-1 (lost)");
    assert_eq!(
        parent("💻 web-01 — failed over to ds-gold-1-r"),
        "🗀 ds-gold-1 (pa, lost)"
    );
    // Both "recovered from pa" rows: under the host and under the replica datastore.
    let recovered: Vec<_> = (0..inv.nodes.len())
        .filter(|&n| inv.nodes[n].label == "💻 web-01 — recovered from pa")
        .map(|n| inv.nodes[inv.nodes[n].parent.unwrap()].label.clone())
        .collect();
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    assert!(recovered[1].contains("ds-gold-1-r"), "{recovered:?}");
    // What runs on the hosts now.
    let on = |h: &str| -> Vec<&str> {
        (inv.vms_running_on_host(&t, h).iter())
            .map(|&i| t.vms[i].id.as_str())
            .collect()
    };
    assert!(
        on("esx-pa-1")
            .iter()
            .all(|v| *v != "web-01" && *v != "build-01")
    );
    assert!(on("esx-ny-2").contains(&"web-01"));
    // Nothing lost: the plain inventory.
    assert_eq!(Inventory::new(&t).node_count() + 2, inv.node_count());
}

#[test]
fn a_large_inventory_starts_closed_and_opens_one_node() {
    let t = crate::generate::generate(crate::generate::GenerateOptions {
        vms: 1_000,
        datastores: 20,
        seed: 3,
    })
    .unwrap();
    let inv = Inventory::new(&t);
    let mut view = TreeView::default();
    view.update(&inv, "");
    let closed = view.rows.len();
    assert_eq!(
        closed,
        4 + t.sites.len() + t.arrays.len() + t.datastores.len() + t.protection_groups.len()
    );
    // Open the first datastore: its VMs appear under it.
    let r = view
        .rows
        .iter()
        .position(|r| matches!(r.kind, RowKind::Node(n) if matches!(inv.nodes[n].select, Selection::Datastore(_))))
        .unwrap();
    let RowKind::Node(n) = view.rows[r].kind else {
        unreachable!()
    };
    view.set_open(&inv, n, true);
    view.update(&inv, "");
    let Selection::Datastore(ds) = &inv.nodes[n].select else {
        unreachable!()
    };
    assert_eq!(view.rows.len(), closed + inv.vms_on_datastore(ds).len());
    view.expand_all();
    view.update(&inv, "");
    assert_eq!(view.rows.len(), inv.node_count() + 4);
    // The index agrees with the topology.
    let v = &t.vms[777];
    assert_eq!(inv.vm(&t, &v.id), Some(v));
    assert!(inv.vms_on_host(&v.host).contains(&777));
}
