use super::*;

/// SPEC §1's example, valid as written.
const BASE: &str = r#"Topology(
    name: "Two-site demo",
    sites: [
        Site(id: "pa", name: "Palo Alto", role: Protected),
        Site(id: "ny", name: "New York", role: Recovery),
    ],
    links: [ Link(from: "pa", to: "ny", mbps: 1000) ],
    hosts: [
        Host(id: "esx-pa-1", site: "pa", cpus: 32, memory_gib: 256),
        Host(id: "esx-ny-1", site: "ny", cpus: 32, memory_gib: 256),
    ],
    arrays: [
        Array(id: "array-pa", site: "pa", luns: [
            Lun(id: "lun-1", capacity_gib: 512, replication: Some(LunReplication(
                target: "lun-1r", rpo_minutes: 15, consistency_group: Some("cg-1")))),
            Lun(id: "lun-9", capacity_gib: 256),
        ]),
        Array(id: "array-ny", site: "ny", luns: [ Lun(id: "lun-1r", capacity_gib: 512) ]),
    ],
    datastores: [
        Datastore(id: "ds-gold-1", site: "pa", luns: ["lun-1"], throughput_mib_s: 400),
        Datastore(id: "ds-local",  site: "pa", luns: ["lun-9"]),
        Datastore(id: "ds-gold-1-r", site: "ny", luns: ["lun-1r"]),
    ],
    protection_groups: [ ProtectionGroup(id: "pg-a", name: "Tier 1", datastores: ["ds-gold-1"]) ],
    vms: [
        Vm(id: "web-01", uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11", host: "esx-pa-1",
           datastore: "ds-gold-1", disk_mib: 64, vcpus: 2, memory_gib: 8, priority: 3,
           workload: Some(Workload(write_iops: 200, read_iops: 400))),
    ],
)"#;

fn load(text: &str) -> Result<Topology, TopologyError> {
    Topology::from_ron_str(text, "t.ron")
}

/// Replaces `from` (which must occur in BASE) by `to` and returns the violations.
fn violations(from: &str, to: &str) -> Vec<Violation> {
    assert!(BASE.contains(from), "test mutation {from:?} does not apply");
    let text = BASE.replacen(from, to, 1);
    match load(&text) {
        Err(e @ TopologyError::Invalid { .. }) => e.violations().into_iter().cloned().collect(),
        other => panic!("expected a validation error for {to:?}, got {other:?}"),
    }
}

/// Asserts one violation names `object` and has `rule` in its words.
fn assert_rule(from: &str, to: &str, object: &str, rule: &str) {
    let v = violations(from, to);
    assert!(
        v.iter()
            .any(|v| v.object == object && v.rule.contains(rule)),
        "expected {object}: …{rule}… in {v:#?}"
    );
}

#[test]
fn spec_example_is_valid_and_defaults_apply() {
    let t = load(BASE).unwrap();
    assert_eq!(t.datastore("ds-local").unwrap().throughput_mib_s, 400.0);
    assert_eq!(t.lun("lun-9").unwrap().1.replication, None);
    let no_mbps = BASE.replace("mbps: 1000", "");
    let no_mbps = no_mbps.replace(
        "Link(from: \"pa\", to: \"ny\", )",
        "Link(from: \"pa\", to: \"ny\")",
    );
    assert_eq!(load(&no_mbps).unwrap().links[0].mbps, 1000.0);
}

#[test]
fn fractional_and_integer_rates_are_accepted() {
    let t = load(
        &BASE
            .replace("mbps: 1000", "mbps: 0.5")
            .replace("throughput_mib_s: 400", "throughput_mib_s: 12.25"),
    )
    .unwrap();
    assert_eq!(t.links[0].mbps, 0.5);
    assert_eq!(t.datastore("ds-gold-1").unwrap().throughput_mib_s, 12.25);
}

#[test]
fn save_then_load_gives_the_same_topology() {
    for (name, text) in [
        ("spec", BASE),
        ("two_site_demo", DEFAULT_TOPOLOGY_RON),
        (
            "patent_hazard",
            include_str!("../../sample_topologies/patent_hazard.ron"),
        ),
        (
            "impact_tour",
            include_str!("../../sample_topologies/impact_tour.ron"),
        ),
    ] {
        let t = load(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("saved.ron");
        t.save(&p).unwrap();
        assert_eq!(Topology::load(&p).unwrap(), t, "{name}");
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .starts_with("Topology(")
        );
    }
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let text = BASE.replace("role: Protected),", "role: Protected)");
    match load(&text) {
        Err(TopologyError::Syntax(crate::fsutil::SyntaxError {
            file, line, column, ..
        })) => {
            assert_eq!(file, "t.ron");
            assert_eq!(line, 5, "the error is on the line after the missing comma");
            assert!(column >= 1);
        }
        other => panic!("{other:?}"),
    }
    let msg = load("Topology(name: ").unwrap_err().to_string();
    assert!(msg.starts_with("t.ron:1:"), "{msg}");
}

#[test]
fn unknown_field_is_an_error() {
    let e = load(&BASE.replace(
        "cpus: 32, memory_gib: 256),\n        Host(id: \"esx-ny-1\"",
        "cpus: 32, gpus: 2, memory_gib: 256),\n        Host(id: \"esx-ny-1\"",
    ))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, TopologyError::Syntax(se) if se.line == 9),
        "{msg}"
    );
    assert!(msg.contains("gpus"), "{msg}");
}

/// SPEC §1: `priority` is optional and defaults to 3; saving still writes it.
#[test]
fn vm_without_priority_loads_with_priority_3_and_saves_it() {
    let t = load(&BASE.replace(" priority: 3,", "")).unwrap();
    assert_eq!(t.vm("web-01").unwrap().priority, 3);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("saved.ron");
    t.save(&p).unwrap();
    let saved = std::fs::read_to_string(&p).unwrap();
    assert!(saved.contains("priority: 3"), "{saved}");
    assert_eq!(Topology::load(&p).unwrap(), t);
}

#[test]
fn missing_required_field_is_an_error() {
    let e = load(&BASE.replace("disk_mib: 64, ", "")).unwrap_err();
    assert!(e.to_string().contains("disk_mib"), "{e}");
}

#[test]
fn ids_follow_the_pattern() {
    assert_rule(
        "\"web-01\", uuid",
        "\"Web-01\", uuid",
        "VM \"Web-01\"",
        "does not match",
    );
    assert_rule(
        "\"web-01\", uuid",
        "\"../etc\", uuid",
        "VM \"../etc\"",
        "does not match",
    );
    assert_rule(
        "\"web-01\", uuid",
        "\"a/b\", uuid",
        "VM \"a/b\"",
        "does not match",
    );
    assert_rule(
        "\"web-01\", uuid",
        "\".hidden\", uuid",
        "VM \".hidden\"",
        "does not match",
    );
    assert_rule("\"web-01\", uuid", "\"\", uuid", "VM \"\"", "empty");
    let long = "a".repeat(65);
    assert_rule(
        "\"web-01\", uuid",
        &format!("{long:?}, uuid"),
        &format!("VM {long:?}"),
        "65 bytes",
    );
    // 64 characters is still fine.
    let ok = BASE.replace("\"web-01\", uuid", &format!("{:?}, uuid", "a".repeat(64)));
    load(&ok).unwrap();
    assert_rule(
        "Some(\"cg-1\")",
        "Some(\"CG 1\")",
        "LUN \"lun-1\" on array \"array-pa\"",
        "consistency group",
    );
}

#[test]
fn ids_are_unique_per_kind() {
    assert_rule(
        "Host(id: \"esx-ny-1\"",
        "Host(id: \"esx-pa-1\"",
        "host \"esx-pa-1\"",
        "unique",
    );
    assert_rule(
        "Lun(id: \"lun-9\"",
        "Lun(id: \"lun-1\"",
        "LUN \"lun-1\"",
        "unique",
    );
    // The same id in two kinds is fine.
    load(&BASE.replace("Host(id: \"esx-ny-1\"", "Host(id: \"ny\"")).unwrap();
}

#[test]
fn references_resolve() {
    assert_rule(
        "Link(from: \"pa\"",
        "Link(from: \"la\"",
        "link \"la\" -> \"ny\"",
        "site \"la\" does not exist",
    );
    assert_rule(
        "Host(id: \"esx-pa-1\", site: \"pa\"",
        "Host(id: \"esx-pa-1\", site: \"sf\"",
        "host \"esx-pa-1\"",
        "site \"sf\" does not exist",
    );
    assert_rule(
        "Array(id: \"array-pa\", site: \"pa\"",
        "Array(id: \"array-pa\", site: \"zz\"",
        "array \"array-pa\"",
        "site \"zz\" does not exist",
    );
    assert_rule(
        "luns: [\"lun-9\"]",
        "luns: [\"lun-0\"]",
        "datastore \"ds-local\"",
        "LUN \"lun-0\" does not exist",
    );
    assert_rule(
        "datastores: [\"ds-gold-1\"]",
        "datastores: [\"ds-x\"]",
        "protection group \"pg-a\"",
        "datastore \"ds-x\" does not exist",
    );
    assert_rule(
        "host: \"esx-pa-1\"",
        "host: \"esx-zz\"",
        "VM \"web-01\"",
        "host \"esx-zz\" does not exist",
    );
    assert_rule(
        "datastore: \"ds-gold-1\", disk",
        "datastore: \"ds-zz\", disk",
        "VM \"web-01\"",
        "datastore \"ds-zz\" does not exist",
    );
    assert_rule(
        "target: \"lun-1r\"",
        "target: \"lun-7r\"",
        "LUN \"lun-1\" on array \"array-pa\"",
        "target LUN \"lun-7r\" does not exist",
    );
    assert_rule(
        "Datastore(id: \"ds-local\",  site: \"pa\"",
        "Datastore(id: \"ds-local\",  site: \"qq\"",
        "datastore \"ds-local\"",
        "site \"qq\" does not exist",
    );
}

#[test]
fn a_lun_belongs_to_one_datastore_at_most() {
    assert_rule(
        "luns: [\"lun-9\"]",
        "luns: [\"lun-1\"]",
        "datastore \"ds-local\"",
        "already backs datastore \"ds-gold-1\"",
    );
}

#[test]
fn a_datastores_luns_are_at_its_site() {
    assert_rule(
        "Datastore(id: \"ds-local\",  site: \"pa\", luns: [\"lun-9\"])",
        "Datastore(id: \"ds-local\",  site: \"pa\", luns: [\"lun-9\"]), Datastore(id: \"ds-x\", site: \"ny\", luns: [\"lun-9x\"])",
        "datastore \"ds-x\"",
        "LUN \"lun-9x\" does not exist",
    );
    let text = BASE
        .replace(
            "Lun(id: \"lun-1r\", capacity_gib: 512) ]",
            "Lun(id: \"lun-1r\", capacity_gib: 512), Lun(id: \"lun-ny\", capacity_gib: 1) ]",
        )
        .replace("luns: [\"lun-9\"]", "luns: [\"lun-9\", \"lun-ny\"]");
    let e = load(&text).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.object == "datastore \"ds-local\""
                && v.rule.contains("arrays of its own site")),
        "{e}"
    );
}

#[test]
fn a_datastore_needs_a_lun() {
    assert_rule(
        "luns: [\"lun-9\"]",
        "luns: []",
        "datastore \"ds-local\"",
        "at least one LUN",
    );
}

#[test]
fn replication_target_is_at_a_recovery_site_and_targeted_once() {
    // lun-9 (protected site) as a target.
    assert_rule(
        "target: \"lun-1r\"",
        "target: \"lun-9\"",
        "LUN \"lun-1\" on array \"array-pa\"",
        "must be at a recovery site",
    );
    // Two LUNs targeting lun-1r.
    assert_rule(
        "Lun(id: \"lun-9\", capacity_gib: 256)",
        "Lun(id: \"lun-9\", capacity_gib: 256, replication: Some(LunReplication(target: \"lun-1r\", rpo_minutes: 15)))",
        "LUN \"lun-9\" on array \"array-pa\"",
        "targeted once",
    );
}

#[test]
fn cg_luns_share_one_rpo() {
    let text = BASE
        .replace(
            "Lun(id: \"lun-9\", capacity_gib: 256)",
            "Lun(id: \"lun-9\", capacity_gib: 256, replication: Some(LunReplication(target: \"lun-9r\", rpo_minutes: 30, consistency_group: Some(\"cg-1\"))))",
        )
        .replace("Lun(id: \"lun-1r\", capacity_gib: 512) ]", "Lun(id: \"lun-1r\", capacity_gib: 512), Lun(id: \"lun-9r\", capacity_gib: 256) ]")
        .replace("Datastore(id: \"ds-gold-1-r\"", "Datastore(id: \"ds-local-r\", site: \"ny\", luns: [\"lun-9r\"]),\n Datastore(id: \"ds-gold-1-r\"");
    let e = load(&text).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.object == "consistency group \"cg-1\""
                && v.rule.contains("same rpo_minutes; found 15, 30")),
        "{e}"
    );
}

#[test]
fn a_datastores_replicated_luns_share_one_rpo() {
    let text = BASE
        .replace(
            "Lun(id: \"lun-9\", capacity_gib: 256)",
            "Lun(id: \"lun-9\", capacity_gib: 256, replication: Some(LunReplication(target: \"lun-9r\", rpo_minutes: 30)))",
        )
        .replace("Lun(id: \"lun-1r\", capacity_gib: 512) ]", "Lun(id: \"lun-1r\", capacity_gib: 512), Lun(id: \"lun-9r\", capacity_gib: 256) ]")
        .replace("luns: [\"lun-9\"]", "luns: [\"lun-9\"]), Datastore(id: \"ds-two\", site: \"pa\", luns: [\"lun-1\", \"lun-9\"]")
        .replace("luns: [\"lun-1\"], throughput_mib_s: 400", "luns: [\"lun-x\"], throughput_mib_s: 400");
    let e = load(&text).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.object == "datastore \"ds-two\""
                && v.rule.contains("same rpo_minutes; found 15, 30")),
        "{e}"
    );
}

#[test]
fn a_replicated_datastore_has_exactly_one_replica() {
    assert_rule(
        "Datastore(id: \"ds-gold-1-r\", site: \"ny\", luns: [\"lun-1r\"]),",
        "",
        "datastore \"ds-gold-1\"",
        "none exists",
    );
    // A second recovery datastore on the same LUN is caught as a LUN in two datastores,
    // and the replica is no longer unique.
    let v = violations(
        "Datastore(id: \"ds-gold-1-r\", site: \"ny\", luns: [\"lun-1r\"]),",
        "Datastore(id: \"ds-gold-1-r\", site: \"ny\", luns: [\"lun-1r\"]), Datastore(id: \"ds-twin\", site: \"ny\", luns: [\"lun-1r\"]),",
    );
    assert!(
        v.iter()
            .any(|v| v.object == "datastore \"ds-gold-1\"" && v.rule.contains("several exist")),
        "{v:#?}"
    );
}

#[test]
fn protection_groups_list_only_replicated_protected_datastores() {
    assert_rule(
        "datastores: [\"ds-gold-1\"]",
        "datastores: [\"ds-gold-1\", \"ds-local\"]",
        "protection group \"pg-a\"",
        "not replicated",
    );
    assert_rule(
        "datastores: [\"ds-gold-1\"]",
        "datastores: [\"ds-gold-1\", \"ds-gold-1-r\"]",
        "protection group \"pg-a\"",
        "only protected-site datastores",
    );
    assert_rule(
        "ProtectionGroup(id: \"pg-a\", name: \"Tier 1\", datastores: [\"ds-gold-1\"])",
        "ProtectionGroup(id: \"pg-a\", name: \"Tier 1\", datastores: [\"ds-gold-1\"]), ProtectionGroup(id: \"pg-b\", name: \"B\", datastores: [\"ds-gold-1\"])",
        "protection group \"pg-b\"",
        "one protection group at most",
    );
}

#[test]
fn a_cg_is_in_one_pg_or_none() {
    let text = BASE
        .replace(
            "Lun(id: \"lun-9\", capacity_gib: 256)",
            "Lun(id: \"lun-9\", capacity_gib: 256), Lun(id: \"lun-2\", capacity_gib: 256, replication: Some(LunReplication(target: \"lun-2r\", rpo_minutes: 15, consistency_group: Some(\"cg-1\"))))",
        )
        .replace("Lun(id: \"lun-1r\", capacity_gib: 512) ]", "Lun(id: \"lun-1r\", capacity_gib: 512), Lun(id: \"lun-2r\", capacity_gib: 256) ]")
        .replace("Datastore(id: \"ds-gold-1-r\"", "Datastore(id: \"ds-2\", site: \"pa\", luns: [\"lun-2\"]), Datastore(id: \"ds-2-r\", site: \"ny\", luns: [\"lun-2r\"]),\n Datastore(id: \"ds-gold-1-r\"");
    let e = load(&text).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.object == "consistency group \"cg-1\""
                && v.rule.contains("ds-gold-1 in pg-a, ds-2 in none")),
        "{e}"
    );
    // Adding ds-2 to the same PG makes it valid.
    load(&text.replace(
        "datastores: [\"ds-gold-1\"]",
        "datastores: [\"ds-gold-1\", \"ds-2\"]",
    ))
    .unwrap();
}

#[test]
fn vms_live_at_the_protected_site() {
    assert_rule(
        "host: \"esx-pa-1\"",
        "host: \"esx-ny-1\"",
        "VM \"web-01\"",
        "protected-site hosts",
    );
    assert_rule(
        "datastore: \"ds-gold-1\", disk",
        "datastore: \"ds-gold-1-r\", disk",
        "VM \"web-01\"",
        "protected-site datastores",
    );
}

#[test]
fn vm_priority_disk_and_uuid() {
    assert_rule(
        "priority: 3",
        "priority: 0",
        "VM \"web-01\"",
        "priority must be 1..=5, not 0",
    );
    assert_rule(
        "priority: 3",
        "priority: 6",
        "VM \"web-01\"",
        "priority must be 1..=5, not 6",
    );
    assert_rule(
        "disk_mib: 64",
        "disk_mib: 0",
        "VM \"web-01\"",
        "disk_mib must be at least 1",
    );
    assert_rule(
        "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
        "not-a-uuid",
        "VM \"web-01\"",
        "not a standard UUID",
    );
    assert_rule(
        "    ],\n)",
        "        Vm(id: \"web-02\", uuid: \"8F0C6F4E-3C1A-4F7E-9A51-0D2F6B7C9E11\", host: \"esx-pa-1\", datastore: \"ds-local\", disk_mib: 1, vcpus: 1, memory_gib: 1, priority: 1),\n    ],\n)",
        "VM \"web-02\"",
        "uuids must be unique",
    );
}

#[test]
fn error_message_names_file_object_and_rule() {
    let e = load(&BASE.replace("priority: 3", "priority: 9")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.ron: VM \"web-01\": priority must be 1..=5, not 9"
    );
    let e = load(
        &BASE
            .replace("priority: 3", "priority: 9")
            .replace("disk_mib: 64", "disk_mib: 0"),
    )
    .unwrap_err();
    assert!(e.to_string().ends_with("(and 1 more problem)"), "{e}");
}

#[test]
fn missing_file_names_the_file() {
    let e = Topology::load(Path::new("/nonexistent/x.ron")).unwrap_err();
    assert!(
        e.to_string().starts_with("/nonexistent/x.ron: cannot read"),
        "{e}"
    );
}

/// Ids become directory names in the workspace: every id kind refuses what could escape or
/// confuse a path, and the error names the file, the object and the rule.
#[test]
fn ids_that_would_be_unsafe_directory_names_are_refused() {
    // (the id as written in the RON file, what the rule must say)
    let cases: [(&str, &str); 8] = [
        ("a/b", "path separator"),
        (r"a\\b", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("a\u{0}b", "NUL"),
        ("a\nb", "control character"),
        ("a\u{7f}b", "control character"),
        (r"a\tb", "control character"),
    ];
    for (written, why) in cases {
        let raw: String = ron::from_str(&format!("\"{written}\"")).unwrap();
        let shown = format!("{raw:?}");
        for (from, object) in [
            ("Site(id: \"ny\"", "site"),
            ("Datastore(id: \"ds-local\"", "datastore"),
            ("Vm(id: \"web-01\"", "VM"),
            ("Host(id: \"esx-ny-1\"", "host"),
            ("ProtectionGroup(id: \"pg-a\"", "protection group"),
        ] {
            let to = from.replacen(from.split('"').nth(1).unwrap(), written, 1);
            let text = BASE.replacen(from, &to, 1);
            let e = load(&text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("t.ron: "), "{msg}");
            let v = e.violations();
            assert!(
                v.iter().any(|v| v.object == format!("{object} {shown}")
                    && v.rule.contains(why)
                    && v.rule.contains("directory names")),
                "{raw:?} as a {object}: {v:#?}"
            );
        }
    }
    // Empty and absurdly long ids; the long one is cut short in the message.
    assert_rule("Vm(id: \"web-01\"", "Vm(id: \"\"", "VM \"\"", "empty");
    let long = "a".repeat(100_000);
    let v = violations("Vm(id: \"web-01\"", &format!("Vm(id: \"{long}\""));
    let hit = v
        .iter()
        .find(|v| v.rule.contains("100000 bytes long; at most 64 bytes"))
        .unwrap_or_else(|| panic!("{v:#?}"));
    assert!(hit.object.starts_with("VM \"aaaa"), "{}", hit.object);
    assert!(hit.object.len() < 120, "{}", hit.object);
    // Non-ASCII counts in bytes: 33 two-byte characters are 66 bytes.
    let wide = "é".repeat(33);
    assert_rule(
        "Vm(id: \"web-01\"",
        &format!("Vm(id: \"{wide}\""),
        &format!("VM {wide:?}"),
        "66 bytes long",
    );
    // Plain ids with single dots stay valid.
    let ok = BASE.replacen("Vm(id: \"web-01\"", "Vm(id: \"web.01_a-b\"", 1);
    load(&ok).unwrap();
}

/// Sizes are multiplied into bytes and summed: absurd ones are refused before they can
/// overflow that arithmetic.
#[test]
fn absurd_sizes_are_refused() {
    assert_rule(
        "disk_mib: 64,",
        "disk_mib: 18446744073709551615,",
        "VM \"web-01\"",
        "disk_mib must be at most 16777216",
    );
    assert_rule(
        "Lun(id: \"lun-9\", capacity_gib: 256)",
        "Lun(id: \"lun-9\", capacity_gib: 18446744073709551615)",
        "LUN \"lun-9\" on array \"array-pa\"",
        "capacity_gib must be at most",
    );
    let ok = BASE.replacen("disk_mib: 64,", &format!("disk_mib: {MAX_DISK_MIB},"), 1);
    load(&ok).unwrap();
}

/// `retain_points` is 1 to 24, and every LUN of a CG keeps the same number: the offenders
/// are named.
#[test]
fn retain_points_are_bounded_and_agree_within_a_cg() {
    let cg = |n: u32, m: u32| {
        BASE.replace(
            "rpo_minutes: 15, consistency_group: Some(\"cg-1\"))",
            &format!("rpo_minutes: 15, consistency_group: Some(\"cg-1\"), retain_points: {n})"),
        )
        .replace(
            "Lun(id: \"lun-9\", capacity_gib: 256)",
            &format!("Lun(id: \"lun-9\", capacity_gib: 256, replication: Some(LunReplication(target: \"lun-9r\", rpo_minutes: 15, consistency_group: Some(\"cg-1\"), retain_points: {m})))"),
        )
        .replace("Lun(id: \"lun-1r\", capacity_gib: 512) ]", "Lun(id: \"lun-1r\", capacity_gib: 512), Lun(id: \"lun-9r\", capacity_gib: 256) ]")
        .replace("Datastore(id: \"ds-gold-1-r\"", "Datastore(id: \"ds-local-r\", site: \"ny\", luns: [\"lun-9r\"]),\n Datastore(id: \"ds-gold-1-r\"")
    };
    let single = |n: u32| {
        BASE.replace(
            "rpo_minutes: 15, consistency_group: Some(\"cg-1\"))",
            &format!("rpo_minutes: 15, consistency_group: Some(\"cg-1\"), retain_points: {n})"),
        )
    };
    let t = load(&single(4)).unwrap();
    let ds = t.datastore("ds-gold-1").unwrap();
    assert_eq!(t.datastore_retain_points(ds), Some(4));
    let t = load(BASE).unwrap();
    assert_eq!(
        t.datastore_retain_points(t.datastore("ds-gold-1").unwrap()),
        Some(1)
    );
    let e = load(&cg(4, 6)).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.object == "consistency group \"cg-1\""
                && v.rule
                    .contains("same retain_points; found 4 (lun-1), 6 (lun-9)")),
        "{e}"
    );
    let e = load(&single(25)).unwrap_err();
    assert!(
        e.violations().iter().any(
            |v| v.object.contains("lun-1") && v.rule == "retain_points must be 1 to 24, not 25"
        ),
        "{e}"
    );
    let e = load(&single(0)).unwrap_err();
    assert!(
        e.violations()
            .iter()
            .any(|v| v.rule == "retain_points must be 1 to 24, not 0"),
        "{e}"
    );
}

#[test]
fn swap_back_defaults_apply_and_bad_values_name_the_array_and_rule() {
    let t = load(BASE).unwrap();
    let a = t.arrays.iter().find(|a| a.id == "array-pa").unwrap();
    assert_eq!(a.swap_back, None);
    assert_eq!(a.swap_back(), SwapBack::default());
    let from = r#"Array(id: "array-pa", site: "pa", luns: ["#;
    let set =
        |sb: &str| format!(r#"Array(id: "array-pa", site: "pa", swap_back: Some({sb}), luns: ["#);
    let t = load(&BASE.replacen(from, &set("SwapBack(hold_s: 30)"), 1)).unwrap();
    let sb = t.arrays[0].swap_back();
    assert_eq!((sb.latency_ms, sb.hold_s), (SWAP_BACK_LATENCY_MS, 30.0));
    // Saved only when set: a file without it saves as it was.
    assert!(!load(BASE).unwrap().to_ron_string().contains("swap_back"));
    assert_rule(
        from,
        &set("SwapBack(latency_ms: 0)"),
        r#"array "array-pa""#,
        "swap_back latency_ms must be more than 0",
    );
    assert_rule(
        from,
        &set("SwapBack(hold_s: -1)"),
        r#"array "array-pa""#,
        "swap_back hold_s must be 0 to 3600 seconds",
    );
    let ny = r#"Array(id: "array-ny", site: "ny", luns: ["#;
    assert_rule(
        ny,
        r#"Array(id: "array-ny", site: "ny", swap_back: Some(SwapBack()), luns: ["#,
        r#"array "array-ny""#,
        "holds no replicated LUN",
    );
    let e = load(&BASE.replacen(from, &set("SwapBack(latency_ms: 0)"), 1)).unwrap_err();
    assert!(
        e.to_string().contains("t.ron"),
        "the error names the file: {e}"
    );
}
