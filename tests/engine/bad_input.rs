//! Bad input anywhere (issue 6, item 4): the topology, scenario and vm.ron readers never
//! panic on arbitrary or mutated text and name the file in every error (property tests);
//! a symlink out of the workspace, a read-only datastore, a truncated image, a garbage
//! vm.ron and a missing journal each give a clear message naming the path and lose
//! nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use drconsole::engine::{Command, Engine, EngineOptions};
use drconsole::scenario::Scenario;
use drconsole::topology::Topology;
use drconsole::workspace::{VmConfig, Workspace};

use crate::testkit::process::drconsole;
use crate::testkit::workspace::{busy_engine, two_busy_vms};

const TOPOLOGY: &str = include_str!("../../sample_topologies/two_site_demo.ron");
const SCENARIO: &str = include_str!("../../sample_scenarios/live_migration.ron");
const VM_RON: &str = r#"VmConfig(
    uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
    name: "web-01",
    vcpus: 2,
    memory_gib: 8,
    disks: ["disk0.img"],
    migration: Some(MigrationMarks(id: "m-1", source: true, target: false, completed: false)),
)
"#;

/// The three readers, each on text with a file name; Ok(()) or the error's message.
fn read_topology(text: &str, file: &str) -> Result<(), String> {
    Topology::from_ron_str(text, file)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_scenario(text: &str, file: &str) -> Result<(), String> {
    Scenario::from_ron_str(text, file)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_vm(text: &str, file: &str) -> Result<(), String> {
    VmConfig::from_ron_str(text, file)
        .map(drop)
        .map_err(|e| e.to_string())
}

type Reader = fn(&str, &str) -> Result<(), String>;
const READERS: [(&str, Reader, &str); 3] = [
    ("topology", read_topology, TOPOLOGY),
    ("scenario", read_scenario, SCENARIO),
    ("vm.ron", read_vm, VM_RON),
];

/// A mutation of a valid file: cut it short, flip one byte, delete one byte, or insert one.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Delete(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn mutate(text: &str, ms: &[Mutation]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for m in ms {
        let n = b.len().max(1);
        match *m {
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Flip(i, x) if !b.is_empty() => b[i % n] ^= x,
            Mutation::Delete(i) if !b.is_empty() => {
                b.remove(i % n);
            }
            Mutation::Insert(i, x) => b.insert(i % (b.len() + 1), x),
            _ => {}
        }
    }
    b
}

/// Writes `bytes` to a file and loads it as the reader's kind through the real loader
/// (which also meets non-UTF-8 bytes); checks that an error names the file.
fn load_file_names_it(kind: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = crate::testkit::scratch();
    // read_config reads <dir>/vm.ron; the other loaders take the path.
    let path = dir.path().join("vm.ron");
    std::fs::write(&path, bytes).unwrap();
    let result = match kind {
        "topology" => Topology::load(&path).map(drop).map_err(|e| e.to_string()),
        "scenario" => Scenario::load(&path).map(drop).map_err(|e| e.to_string()),
        _ => Workspace::read_config(dir.path())
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    if let Err(msg) = result {
        let file = path.display().to_string();
        prop_assert!(
            msg.starts_with(&file),
            "{kind}: {msg:?} does not name {file}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary strings: no panic, and an error names the file.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}", pick in 0..3usize) {
        let (kind, read, _) = READERS[pick];
        if let Err(msg) = read(&text, "fuzz.ron") {
            prop_assert!(msg.starts_with("fuzz.ron"), "{kind}: {msg:?}");
        }
    }

    /// RON-shaped noise (brackets, quotes, names and numbers the files use) reaches
    /// deeper into the parsers than plain noise.
    #[test]
    fn ron_shaped_noise_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("("), Just(")"), Just("["), Just("]"), Just(","), Just(":"), Just("\""),
                Just("Some("), Just("None"), Just("id"), Just("Topology("), Just("Scenario("),
                Just("VmConfig("), Just("Step(at: "), Just("uuid: "), Just("-1"), Just("1e999"),
                Just("18446744073709551616"), Just("NaN"), Just("inf"), Just("\\u{0}"),
                Just("r#\""), Just("/*"), Just("//"), Just("\n"), Just("true"), Just("'x'"),
            ],
            0..60,
        ),
        pick in 0..3usize,
    ) {
        let (kind, read, _) = READERS[pick];
        let text: String = parts.concat();
        if let Err(msg) = read(&text, "fuzz.ron") {
            prop_assert!(msg.starts_with("fuzz.ron"), "{kind}: {msg:?}");
        }
    }

    /// A valid file, cut, with bytes flipped, deleted or inserted, read from disk: loads
    /// or gives an error naming the file.
    #[test]
    fn mutated_valid_files_load_or_name_the_file(
        ms in proptest::collection::vec(mutation(), 1..4),
        pick in 0..3usize,
    ) {
        let (kind, _, valid) = READERS[pick];
        load_file_names_it(kind, &mutate(valid, &ms))?;
    }
}

/// The byte ranges of the number tokens of `text`.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if starts {
            let j = (i..b.len())
                .find(|&j| !(b[j].is_ascii_digit() || b[j] == b'.'))
                .unwrap_or(b.len());
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

const EXTREMES: [&str; 10] = [
    "0",
    "-1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "0.000001",
    "NaN",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// Extreme numbers in every numeric field: the topology loads or names the file, and
    /// one that loads survives what `check`, `tags` and `impact` do with it.
    #[test]
    fn extreme_numbers_load_or_name_the_file(
        picks in proptest::collection::vec((any::<usize>(), 0..EXTREMES.len()), 1..4),
        which in 0..2usize,
    ) {
        let (valid, read): (&str, Reader) = [(TOPOLOGY, read_topology as Reader), (SCENARIO, read_scenario)][which];
        let spans = numbers(valid);
        let mut text = valid.to_string();
        let mut chosen: Vec<(usize, usize, &str)> = picks
            .iter()
            .map(|(i, x)| {
                let (a, b) = spans[i % spans.len()];
                (a, b, EXTREMES[*x])
            })
            .collect();
        chosen.sort();
        chosen.dedup_by_key(|c| c.0);
        for (a, b, x) in chosen.into_iter().rev() {
            text.replace_range(a..b, x);
        }
        match read(&text, "fuzz.ron") {
            Err(msg) => prop_assert!(msg.starts_with("fuzz.ron"), "{msg:?}"),
            Ok(()) if which == 0 => {
                let t = Topology::from_ron_str(&text, "fuzz.ron").unwrap();
                let _ = drconsole::dr::discover_tags(&t);
                for from in &t.datastores {
                    for to in &t.datastores {
                        let _ = drconsole::dr::impact(&t, &from.id, &to.id);
                    }
                }
                for vm in &t.vms {
                    for to in &t.datastores {
                        let _ = drconsole::dr::impact_for_vm(&t, &vm.id, &to.id);
                    }
                }
            }
            Ok(()) => {}
        }
    }
}

#[test]
fn the_unmutated_files_are_valid() {
    for (kind, read, valid) in READERS {
        read(valid, "x.ron").unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

// ---- Real workspaces ----------------------------------------------------------------

/// Two busy VMs on ds-1, an empty ds-2; a few simulated seconds of writes, closed cleanly.
fn workspace(dir: &Path) -> PathBuf {
    let topo = two_busy_vms("bad input", "bad-input.ron", "");
    let (e, ws) = busy_engine(dir, &topo);
    e.close().unwrap();
    ws
}

fn topology_of(ws: &Path) -> Topology {
    Topology::load(&ws.join("topology.ron")).unwrap()
}

/// Every file under `root` (links not followed) with its bytes, but the lock file, whose
/// pid record each open rewrites.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(path, target.display().to_string().into_bytes());
            } else if path.file_name().is_some_and(|n| n != "workspace.lock") {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn assert_same_tree(before: &BTreeMap<PathBuf, Vec<u8>>, root: &Path) {
    let after = tree(root);
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(&after), "files were added or removed");
    for (p, bytes) in before {
        assert!(after[p] == *bytes, "{} was rewritten", p.display());
    }
}

fn open_err(ws: &Path) -> String {
    let topo = topology_of(ws);
    // The lock this test process held a moment ago can live on in a child another test
    // thread is forking (until it execs and the descriptor closes): wait that out.
    let ours = format!("by another drconsole process (pid {})", std::process::id());
    for _ in 0..100 {
        match Engine::open_or_create(ws, &topo, EngineOptions::default()) {
            Ok(_) => panic!("{} opened", ws.display()),
            Err(e) if e.to_string().contains(&ours) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => return e.to_string(),
        }
    }
    panic!("{} stayed locked by this process", ws.display())
}

fn verify_cli(ws: &Path) -> std::process::Output {
    // As in `open_err`: a lock this process just dropped may linger in a forking child.
    let ours = format!("by another drconsole process (pid {})", std::process::id());
    for _ in 0..100 {
        let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
        if !String::from_utf8_lossy(&o.stderr).contains(&ours) {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} stayed locked by this process", ws.display())
}

/// Exit code 2, one line on stderr naming every part, no panic.
fn cli_fails_with(o: &std::process::Output, parts: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for p in parts {
        assert!(err.contains(p), "{p:?} not in {err}");
    }
}

fn verify_ok(ws: &Path) {
    let o = verify_cli(ws);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_symlink_out_of_the_workspace_is_never_followed() {
    let dir = crate::testkit::scratch();
    let ws = workspace(dir.path());
    let ds1 = ws.join("sites/pa/datastores/ds-1");

    // Outside the workspace: a directory that looks just like an instance of vm-b.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::copy(ds1.join("vm-b/vm.ron"), outside.join("vm.ron")).unwrap();
    std::fs::copy(ds1.join("vm-b/disk0.img"), outside.join("disk0.img")).unwrap();
    let outside_before = tree(&outside);

    // A stray link with an instance name: the scan ignores it, but the engine refuses to
    // open a workspace with one, naming it.
    std::os::unix::fs::symlink(&outside, ds1.join("vm-b~1")).unwrap();
    let w = Workspace::open(&ws).unwrap();
    let names: Vec<String> = w
        .list_instances("ds-1")
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["vm-a", "vm-b"]);
    drop(w);
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(
        msg.contains("vm-b~1") && msg.contains("symbolic link"),
        "{msg}"
    );
    assert!(msg.contains(&outside.display().to_string()), "{msg}");
    cli_fails_with(&verify_cli(&ws), &["ds-1/vm-b~1", "symbolic link"]);
    assert_same_tree(&before, &ws);
    std::fs::remove_file(ds1.join("vm-b~1")).unwrap();
    verify_ok(&ws);

    // The live instance itself replaced by a link out: refused, nothing read or written
    // through it.
    let real = dir.path().join("vm-b.real");
    std::fs::rename(ds1.join("vm-b"), &real).unwrap();
    std::os::unix::fs::symlink(&outside, ds1.join("vm-b")).unwrap();
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(
        msg.contains("ds-1/vm-b ") && msg.contains("symbolic link"),
        "{msg}"
    );
    cli_fails_with(&verify_cli(&ws), &["ds-1/vm-b", "symbolic link"]);
    assert_same_tree(&before, &ws);

    // A whole datastore directory and a journal as links: refused the same way.
    std::fs::remove_file(ds1.join("vm-b")).unwrap();
    std::fs::rename(&real, ds1.join("vm-b")).unwrap();
    let journal = ws.join("journal/pa.log");
    let moved = dir.path().join("pa.log");
    std::fs::rename(&journal, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &journal).unwrap();
    let msg = open_err(&ws);
    assert!(
        msg.contains("pa.log") && msg.contains("symbolic link"),
        "{msg}"
    );
    std::fs::remove_file(&journal).unwrap();
    std::fs::rename(&moved, &journal).unwrap();
    let ds2 = ws.join("sites/pa/datastores/ds-2");
    let ds2_out = dir.path().join("ds-2.out");
    std::fs::rename(&ds2, &ds2_out).unwrap();
    std::os::unix::fs::symlink(&ds2_out, &ds2).unwrap();
    let msg = open_err(&ws);
    assert!(
        msg.contains("datastores/ds-2") && msg.contains("symbolic link"),
        "{msg}"
    );
    std::fs::remove_file(&ds2).unwrap();
    std::fs::rename(&ds2_out, &ds2).unwrap();

    // A file inside an instance as a link (its image pointing out of the workspace), and
    // a migration record as a link: refused, nothing read or written through them.
    let image = ds1.join("vm-b/disk0.img");
    let image_moved = dir.path().join("vm-b.img");
    std::fs::rename(&image, &image_moved).unwrap();
    std::os::unix::fs::symlink(outside.join("disk0.img"), &image).unwrap();
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(
        msg.contains("vm-b/disk0.img") && msg.contains("symbolic link"),
        "{msg}"
    );
    cli_fails_with(&verify_cli(&ws), &["vm-b/disk0.img", "symbolic link"]);
    assert_same_tree(&before, &ws);
    std::fs::remove_file(&image).unwrap();
    std::fs::rename(&image_moved, &image).unwrap();
    let migrations = ws.join("state/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::os::unix::fs::symlink(outside.join("vm.ron"), migrations.join("m-0009.ron")).unwrap();
    let msg = open_err(&ws);
    assert!(
        msg.contains("m-0009.ron") && msg.contains("symbolic link"),
        "{msg}"
    );
    std::fs::remove_file(migrations.join("m-0009.ron")).unwrap();

    verify_ok(&ws);
    assert_same_tree(&outside_before, &outside);
}

/// Are permissions enforced for this process (not root, or root without CAP_DAC_OVERRIDE)?
fn permissions_enforced(dir: &Path) -> bool {
    let probe = dir.join("probe");
    std::fs::create_dir(&probe).unwrap();
    set_mode(&probe, 0o555);
    let enforced = std::fs::write(probe.join("x"), b"x").is_err();
    set_mode(&probe, 0o755);
    enforced
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_datastore_is_refused_with_its_path_and_loses_nothing() {
    let dir = crate::testkit::scratch();
    if !permissions_enforced(dir.path()) {
        eprintln!("note: skipped: permissions are not enforced for this user (root?)");
        return;
    }
    let ws = workspace(dir.path());
    let ds2 = ws.join("sites/pa/datastores/ds-2");
    set_mode(&ds2, 0o555);
    let mut e = Engine::open(&ws).unwrap();
    let r = e.apply(Command::Migrate {
        vm: "vm-a".into(),
        to: "ds-2".into(),
        mode: drconsole::engine::copy::CopyMode::Mirror,
        confirm: true,
    });
    let msg = match r {
        Err(err) => err.to_string(),
        Ok(outcome) => format!("{outcome:?}"),
    };
    assert!(msg.contains("ds-2"), "{msg}");
    assert!(msg.to_lowercase().contains("permission denied"), "{msg}");
    assert!(!e.is_migrating("vm-a"));
    assert!(e.verify_vm("vm-a").unwrap().consistent);
    e.close().unwrap();
    set_mode(&ds2, 0o755);
    assert_eq!(
        std::fs::read_dir(&ds2).unwrap().count(),
        0,
        "nothing left on ds-2"
    );
    verify_ok(&ws);
    // A read-only datastore that holds a VM: its image cannot be opened for writing.
    let ds1 = ws.join("sites/pa/datastores/ds-1");
    let image = ds1.join("vm-a/disk0.img");
    set_mode(&image, 0o444);
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(msg.contains(&image.display().to_string()), "{msg}");
    assert!(msg.to_lowercase().contains("permission denied"), "{msg}");
    assert_same_tree(&before, &ws);
    set_mode(&image, 0o644);
    verify_ok(&ws);
}

#[test]
fn a_truncated_image_is_refused_with_its_path_and_sizes() {
    let dir = crate::testkit::scratch();
    let ws = workspace(dir.path());
    let image = ws.join("sites/pa/datastores/ds-1/vm-b/disk0.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    f.set_len(3 * 4096 + 100).unwrap();
    drop(f);
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(msg.contains(&image.display().to_string()), "{msg}");
    assert!(msg.contains("vm-b"), "{msg}");
    cli_fails_with(&verify_cli(&ws), &["vm-b/disk0.img"]);
    assert_same_tree(&before, &ws);
}

#[test]
fn a_garbage_vm_ron_is_named_and_kept() {
    let dir = crate::testkit::scratch();
    let ws = workspace(dir.path());
    let cfg = ws.join("sites/pa/datastores/ds-1/vm-b/vm.ron");
    std::fs::write(&cfg, b"VmConfig(uuid: \xff\xfe garbage").unwrap();
    let before = tree(&ws);
    let o = verify_cli(&ws);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let b = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vm"] == "vm-b")
        .unwrap();
    let problems = b["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains(&cfg.display().to_string())),
        "{b:#}"
    );
    // The scan names it too.
    let w = Workspace::open(&ws).unwrap();
    let err = w.list_instances("ds-1").unwrap_err().to_string();
    assert!(err.contains(&cfg.display().to_string()), "{err}");
    drop(w);
    let before_files: Vec<_> = before.keys().collect();
    let after = tree(&ws);
    assert_eq!(before_files, after.keys().collect::<Vec<_>>());
    assert_eq!(
        after[&cfg], before[&cfg],
        "the garbage is kept for the operator"
    );
}

#[test]
fn a_missing_journal_is_refused_not_replaced() {
    let dir = crate::testkit::scratch();
    let ws = workspace(dir.path());
    let journal = ws.join("journal/pa.log");
    std::fs::remove_file(&journal).unwrap();
    let before = tree(&ws);
    let msg = open_err(&ws);
    assert!(msg.contains(&journal.display().to_string()), "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    cli_fails_with(&verify_cli(&ws), &["journal/pa.log", "missing"]);
    assert_same_tree(&before, &ws);
    assert!(!journal.exists(), "no empty journal was made in its place");
}

/// The recovery scan (`recover --dry-run`, a failover's election) reads only real
/// directories: an instance-named link on a replica datastore that leads out of the
/// workspace is ignored, and what it points at is never read or changed.
#[test]
fn the_recovery_scan_ignores_links_out_of_the_workspace() {
    let dir = crate::testkit::scratch();
    let root = dir.path().join("ws");
    let ws = Workspace::create(
        &root,
        &Topology::from_ron_str(TOPOLOGY, "demo.ron").unwrap(),
    )
    .unwrap();
    // Outside: an instance of web-01 that would win the election if it were followed.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(
        outside.join("vm.ron"),
        VM_RON.replace("source: true", "source: false"),
    )
    .unwrap();
    let replica = ws.datastore_dir("ds-gold-1-r").unwrap();
    std::os::unix::fs::symlink(&outside, replica.join("web-01")).unwrap();
    let outside_before = tree(&outside);
    let elections = drconsole::recovery::scan_and_elect(&ws).unwrap();
    let web = elections
        .iter()
        .find(|e| e.vm.as_deref() == Some("web-01"))
        .unwrap();
    assert!(web.instances.is_empty(), "{web:#?}");
    assert_eq!(web.recover_from, None);
    drop(ws);
    // The CLI agrees.
    let o = drconsole(&[
        "recover",
        &root.display().to_string(),
        "--dry-run",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let web = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vm"] == "web-01")
        .unwrap();
    assert_eq!(web["instances"].as_array().unwrap().len(), 0, "{web:#}");
    assert_same_tree(&outside_before, &outside);

    // Control: the same directory inside the datastore is found and elected.
    let replica = root.join("sites/ny/datastores/ds-gold-1-r/web-01");
    std::fs::remove_file(&replica).unwrap();
    std::fs::create_dir(&replica).unwrap();
    std::fs::copy(outside.join("vm.ron"), replica.join("vm.ron")).unwrap();
    let ws = Workspace::open(&root).unwrap();
    let elections = drconsole::recovery::scan_and_elect(&ws).unwrap();
    let web = elections
        .iter()
        .find(|e| e.vm.as_deref() == Some("web-01"))
        .unwrap();
    assert_eq!(web.instances.len(), 1, "{web:#?}");
}
