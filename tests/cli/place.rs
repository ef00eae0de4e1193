//! `drconsole place`: the datastores a new VM could go to, safest first.

use super::{fails_with, json, sample, stdout};
use crate::testkit::process::drconsole;

#[test]
fn place_ranks_the_intended_group_first_and_explains_the_rest() {
    let demo = sample("two_site_demo.ron");
    let v = json(&drconsole(&[
        "place",
        &demo,
        "--disk-mib",
        "64",
        "--pg",
        "pg-tier2",
        "--json",
    ]));
    assert_eq!(v["protection_group"], "pg-tier2");
    assert_eq!(v["disk_mib"], 64);
    assert_eq!(v["recommended"], "ds-silver-1");
    let rows = v["datastores"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "every protected-site datastore: {rows:?}");
    let first = &rows[0];
    assert_eq!(first["datastore"], "ds-silver-1");
    assert_eq!(first["rating"], "none");
    assert_eq!(first["fault"], serde_json::Value::Null);
    assert_eq!(first["keeps_protection"], true);
    assert_eq!(first["fits"], true);
    assert_eq!(
        first["free_after_mib"].as_u64().unwrap() + 64,
        first["free_mib"].as_u64().unwrap()
    );
    // The Tier 1 datastores are another group's: severe, below, with the reason.
    let gold = rows.iter().find(|r| r["datastore"] == "ds-gold-1").unwrap();
    assert_eq!(gold["rating"], "severe");
    assert_eq!(gold["fault"], "replication-outside-group");
    assert!(
        gold["reason"].as_str().unwrap().contains("not pg-tier2"),
        "{gold}"
    );
    let last = rows.last().unwrap();
    assert_eq!(last["rating"], "heightened-severe");
    assert_eq!(last["fault"], "replication-loss-of-protection");

    let text = stdout(&drconsole(&[
        "place",
        &demo,
        "--disk-mib",
        "64",
        "--pg",
        "pg-tier2",
    ]));
    assert!(text.contains("* ds-silver-1"), "{text}");
    assert!(text.contains("* recommended: ds-silver-1"), "{text}");
}

#[test]
fn place_refuses_an_unknown_group_and_a_zero_disk() {
    let demo = sample("two_site_demo.ron");
    fails_with(
        &drconsole(&["place", &demo, "--disk-mib", "64", "--pg", "pg-gold"]),
        &[
            "two_site_demo.ron",
            "protection group \"pg-gold\" does not exist",
            "pg-tier1, pg-tier2",
        ],
    );
    fails_with(
        &drconsole(&[
            "place",
            &demo,
            "--disk-mib",
            "0",
            "--pg",
            "pg-tier1",
            "--json",
        ]),
        &["disk size 0 MiB", "at least 1 MiB"],
    );
}
