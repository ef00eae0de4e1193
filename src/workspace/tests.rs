use super::*;

const PATENT: &str = include_str!("../../sample_topologies/patent_hazard.ron");

fn patent() -> Topology {
    Topology::from_ron_str(PATENT, "patent_hazard.ron").unwrap()
}

fn sample_config() -> VmConfig {
    VmConfig {
        uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11".to_string(),
        name: "web-01".to_string(),
        vcpus: 2,
        memory_gib: 8,
        disks: vec!["disk0.img".to_string()],
        migration: None,
    }
}

#[test]
fn create_materializes_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let topo = patent();
    let ws = Workspace::create(&root, &topo).unwrap();
    assert_eq!(ws.root(), root);
    assert_eq!(ws.topology(), &topo);
    assert_eq!(Topology::load(&root.join("topology.ron")).unwrap(), topo);
    for (site, ds) in [
        ("pa", "ds-1"),
        ("pa", "ds-2"),
        ("ny", "ds-1-r"),
        ("ny", "ds-2-r"),
    ] {
        let d = root.join("sites").join(site).join("datastores").join(ds);
        assert!(d.is_dir(), "{}", d.display());
        assert_eq!(ws.datastore_dir(ds).unwrap(), d);
    }
    for vm in &topo.vms {
        let dir = ws.datastore_dir(&vm.datastore).unwrap().join(&vm.id);
        let cfg = Workspace::read_config(&dir).unwrap();
        assert_eq!(cfg, VmConfig::for_vm(vm));
        assert_eq!(cfg.name, vm.id);
        let img = fs::metadata(dir.join("disk0.img")).unwrap();
        assert_eq!(img.len(), vm.disk_mib * 1024 * 1024);
    }
    let journal = root.join("journal/pa.log");
    assert_eq!(ws.journal_path("pa"), journal);
    assert_eq!(fs::read(&journal).unwrap(), b"");
    assert!(!root.join("journal/ny.log").exists());
    assert!(ws.state_dir().is_dir());
    assert_eq!(ws.state_dir(), root.join("state"));
    let lock = fs::read_to_string(root.join(LOCK_FILE)).unwrap();
    assert_eq!(lock, format!("pid {}\n", std::process::id()));

    let vm1 = ws.list_instances("ds-1").unwrap();
    assert_eq!(vm1.len(), 1);
    assert_eq!(vm1[0].name, "vm1");
    assert_eq!(vm1[0].site, "pa");
    assert_eq!(vm1[0].disk_path(0), vm1[0].dir.join("disk0.img"));
    assert!(ws.list_instances("ds-1-r").unwrap().is_empty());
    assert!(matches!(
        ws.list_instances("nope"),
        Err(WorkspaceError::UnknownDatastore { .. })
    ));
}

#[test]
fn discard_removes_the_workspace_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let ws = Workspace::create(&root, &patent()).unwrap();
    // In use: refused, nothing removed.
    assert!(matches!(discard(&root), Err(WorkspaceError::Locked { .. })));
    assert!(root.join(TOPOLOGY_FILE).is_file());
    drop(ws);
    std::fs::write(root.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.path().join("beside.txt"), "mine").unwrap();
    assert_eq!(discard(&root).unwrap(), [root.join("notes.txt")]);
    for name in WORKSPACE_ENTRIES {
        assert!(!root.join(name).exists(), "{name} removed");
    }
    assert!(root.join("notes.txt").exists() && dir.path().join("beside.txt").exists());
    // Created afresh in the same place.
    Workspace::create(&root, &patent()).unwrap();

    // Not a workspace: refused, untouched; a missing directory is nothing to discard.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("state")).unwrap();
    std::fs::write(other.join("state/keep"), "x").unwrap();
    assert!(matches!(
        discard(&other),
        Err(WorkspaceError::NotAWorkspace { .. })
    ));
    assert!(other.join("state/keep").exists());
    std::fs::write(other.join(TOPOLOGY_FILE), "x").unwrap();
    std::fs::remove_dir_all(other.join("state")).unwrap();
    std::fs::write(other.join("state"), "a file").unwrap();
    assert!(matches!(
        discard(&other),
        Err(WorkspaceError::NotAWorkspace { .. })
    ));
    assert!(other.join("state").is_file());
    assert_eq!(
        discard(&dir.path().join("none")).unwrap(),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn create_refuses_an_existing_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Workspace::create(tmp.path(), &patent()).unwrap());
    let err = Workspace::create(tmp.path(), &patent()).unwrap_err();
    assert!(matches!(err, WorkspaceError::AlreadyExists { .. }), "{err}");
}

#[test]
fn vm_config_round_trip() {
    let mut cfg = sample_config();
    let text = cfg.to_ron_string();
    assert!(text.starts_with("VmConfig("), "{text}");
    assert!(text.contains("migration: None"), "{text}");
    assert_eq!(VmConfig::from_ron_str(&text, "vm.ron").unwrap(), cfg);

    cfg.migration = Some(MigrationMarks {
        id: "m-0007".to_string(),
        source: true,
        target: false,
        completed: false,
    });
    let text = cfg.to_ron_string();
    assert!(text.contains("Some(MigrationMarks("), "{text}");
    assert_eq!(VmConfig::from_ron_str(&text, "vm.ron").unwrap(), cfg);

    let tmp = tempfile::tempdir().unwrap();
    Workspace::write_config(tmp.path(), &cfg).unwrap();
    assert_eq!(Workspace::read_config(tmp.path()).unwrap(), cfg);
}

#[test]
fn vm_config_spec_example_parses() {
    let text = r#"VmConfig(
uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
name: "web-01",
vcpus: 2,
memory_gib: 8,
disks: ["disk0.img"],
migration: Some(MigrationMarks(id: "m-0007", source: true, target: false, completed: false)),
)"#;
    let cfg = VmConfig::from_ron_str(text, "vm.ron").unwrap();
    assert_eq!(cfg.migration.unwrap().id, "m-0007");
}

#[test]
fn vm_config_accepts_unknown_fields_and_missing_migration() {
    let text = r#"VmConfig(
uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
name: "web-01",
vcpus: 2,
memory_gib: 8,
disks: ["disk0.img"],
future_field: Some((a: 1, b: [2, 3])),
notes: "hello",
)"#;
    let cfg = VmConfig::from_ron_str(text, "vm.ron").unwrap();
    assert_eq!(cfg, sample_config());
}

#[test]
fn garbage_vm_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vm.ron");
    fs::write(&path, "VmConfig(\n  uuid: 17,\n").unwrap();
    let err = Workspace::read_config(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WorkspaceError::Config(_)), "{msg}");
    assert!(msg.starts_with(&format!("{}:2:", path.display())), "{msg}");

    let err = Workspace::read_config(&tmp.path().join("missing")).unwrap_err();
    assert!(err.to_string().contains("missing/vm.ron"), "{err}");
}

#[test]
fn vm_config_rejects_unsafe_disk_names_and_bad_uuids() {
    let mut cfg = sample_config();
    cfg.disks = vec!["../../etc/passwd".to_string()];
    let err = VmConfig::from_ron_str(&cfg.to_ron_string(), "x/vm.ron").unwrap_err();
    assert!(matches!(err, WorkspaceError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().starts_with("x/vm.ron: "), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    assert!(Workspace::write_config(tmp.path(), &cfg).is_err());
    assert!(!tmp.path().join("vm.ron").exists());

    let mut cfg = sample_config();
    cfg.uuid = "not-a-uuid".to_string();
    let err = VmConfig::from_ron_str(&cfg.to_ron_string(), "vm.ron").unwrap_err();
    assert!(err.to_string().contains("not-a-uuid"), "{err}");
}

#[test]
fn free_instance_name_counts_up() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::create(tmp.path(), &patent()).unwrap();
    assert_eq!(ws.free_instance_name("ds-2", "vm1").unwrap(), "vm1");
    assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~1");
    let cfg = VmConfig::for_vm(ws.topology().vm("vm1").unwrap());
    let a = ws.create_instance("ds-1", "vm1~1", &cfg, 1).unwrap();
    assert_eq!(a.dir, ws.datastore_dir("ds-1").unwrap().join("vm1~1"));
    assert_eq!(fs::metadata(a.disk_path(0)).unwrap().len(), 1024 * 1024);
    assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~2");
    // A gap is reused.
    ws.create_instance("ds-1", "vm1~3", &cfg, 1).unwrap();
    assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~2");

    let names: Vec<String> = ws
        .list_instances("ds-1")
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["vm1", "vm1~1", "vm1~3"]);

    let err = ws.create_instance("ds-1", "vm1~1", &cfg, 1).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::InstanceExists { .. }),
        "{err}"
    );
    for bad in ["../x", "vm1~0", "vm1~01", "vm1~", "Vm1", "a/b"] {
        let err = ws.create_instance("ds-1", bad, &cfg, 1).unwrap_err();
        assert!(
            matches!(err, WorkspaceError::InvalidInstanceName { .. }),
            "{bad}: {err}"
        );
    }
    assert!(ws.free_instance_name("ds-1", "../x").is_err());
}

#[test]
fn list_instances_skips_symlinks_bad_names_and_dirs_without_config() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::create(&tmp.path().join("ws"), &patent()).unwrap();
    let ds = ws.datastore_dir("ds-1").unwrap();

    // A directory outside the workspace that looks just like an instance.
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    Workspace::write_config(&outside, &sample_config()).unwrap();
    std::os::unix::fs::symlink(&outside, ds.join("vm9")).unwrap();

    // Badly named directories holding a valid vm.ron.
    for bad in ["Bad Name", ".hidden", "vm1~0", "vm1~x", "vm1~1~2"] {
        fs::create_dir(ds.join(bad)).unwrap();
        Workspace::write_config(&ds.join(bad), &sample_config()).unwrap();
    }
    // A well-named directory without vm.ron and a stray file.
    fs::create_dir(ds.join("vm7")).unwrap();
    fs::write(ds.join("vm8"), b"not a dir").unwrap();

    let names: Vec<String> = ws
        .list_instances("ds-1")
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["vm1"]);

    // Taken names count even when they are symlinks.
    assert_eq!(ws.free_instance_name("ds-1", "vm9").unwrap(), "vm9~1");

    // A broken vm.ron in a listed instance is an error naming the file.
    fs::create_dir(ds.join("vm1~1")).unwrap();
    fs::write(ds.join("vm1~1/vm.ron"), "garbage").unwrap();
    let err = ws.list_instances("ds-1").unwrap_err();
    assert!(err.to_string().contains("vm1~1/vm.ron"), "{err}");
}

#[test]
fn list_instances_of_a_missing_directory_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::create(tmp.path(), &patent()).unwrap();
    fs::remove_dir_all(ws.datastore_dir("ds-2").unwrap()).unwrap();
    assert!(ws.list_instances("ds-2").unwrap().is_empty());
}

#[test]
fn second_open_is_locked_and_drop_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let ws = Workspace::create(&root, &patent()).unwrap();
    let err = Workspace::open(&root).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WorkspaceError::Locked { .. }), "{msg}");
    assert!(msg.contains(&root.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(matches!(
        Workspace::open_or_create(&root, &patent()),
        Err(WorkspaceError::Locked { .. })
    ));
    drop(ws);
    let ws = Workspace::open(&root).unwrap();
    assert_eq!(ws.topology(), &patent());
}

#[test]
fn open_needs_a_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Workspace::open(tmp.path()).unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAWorkspace { .. }), "{err}");
    assert!(err.to_string().contains("no topology.ron"), "{err}");
    assert!(!tmp.path().join(LOCK_FILE).exists());
    assert!(matches!(
        Workspace::open(&tmp.path().join("missing")),
        Err(WorkspaceError::NotAWorkspace { .. })
    ));
}

#[test]
fn open_or_create_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let ws = Workspace::open_or_create(&root, &patent()).unwrap();
    let ds = ws.datastore_dir("ds-2").unwrap();
    let cfg = VmConfig::for_vm(ws.topology().vm("vm2").unwrap());
    ws.create_instance("ds-2", "vm2~1", &cfg, 1).unwrap();
    drop(ws);

    // A different topology is ignored: the workspace's own is loaded.
    let other = Topology::builtin_default();
    let ws = Workspace::open_or_create(&root, &other).unwrap();
    assert_eq!(ws.topology(), &patent());
    assert!(ds.join("vm2~1/vm.ron").is_file());
    assert_eq!(ws.list_instances("ds-2").unwrap().len(), 2);
}

#[test]
fn save_topology_replaces_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ws = Workspace::create(tmp.path(), &patent()).unwrap();
    let mut t = patent();
    t.vms[0].datastore = "ds-2".to_string();
    ws.save_topology(&t).unwrap();
    assert_eq!(ws.topology(), &t);
    drop(ws);
    let ws = Workspace::open(tmp.path()).unwrap();
    assert_eq!(ws.topology(), &t);

    let mut ws = ws;
    let mut bad = t.clone();
    bad.sites[0].id = "../evil".to_string();
    let err = ws.save_topology(&bad).unwrap_err();
    assert!(matches!(err, WorkspaceError::Topology(_)), "{err}");
    assert_eq!(ws.topology(), &t);
}

#[test]
fn remove_instance_refuses_paths_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let ws = Workspace::create(&root, &patent()).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    Workspace::write_config(&outside, &sample_config()).unwrap();

    let ds = ws.datastore_dir("ds-1").unwrap();
    std::os::unix::fs::symlink(&outside, ds.join("vm5")).unwrap();
    let sneaky = ds
        .join("..")
        .join("..")
        .join("..")
        .join("..")
        .join("..")
        .join("outside");
    for p in [
        outside.clone(),
        sneaky,
        ds.join("vm5"),
        ds.clone(),
        root.join("sites"),
        root.join("state"),
        root.clone(),
    ] {
        let err = ws.remove_instance(&p).unwrap_err();
        assert!(
            matches!(err, WorkspaceError::OutsideWorkspace { .. }),
            "{}: {err}",
            p.display()
        );
    }
    assert!(outside.join("vm.ron").is_file());
    assert!(ds.join("vm1/vm.ron").is_file());

    ws.remove_instance(&ds.join("vm1")).unwrap();
    assert!(!ds.join("vm1").exists());
    assert!(ds.is_dir());
    assert!(ws.remove_instance(&ds.join("vm1")).is_err());
}

#[test]
fn default_workspace_dir_slugs_the_name() {
    assert_eq!(
        workspace_slug("Patent hazard: cross-CG move in one PG"),
        "patent-hazard-cross-cg-move-in-one-pg"
    );
    assert_eq!(workspace_slug("  --Two  Site__Demo!! "), "two-site-demo");
    assert_eq!(workspace_slug("Zürich 2"), "z-rich-2");
    assert_eq!(workspace_slug(""), "workspace");
    assert_eq!(workspace_slug("!!!"), "workspace");
    let long = "a".repeat(63) + " b" + &"c".repeat(10);
    assert_eq!(workspace_slug(&long), "a".repeat(63));
    assert_eq!(workspace_slug(&"x".repeat(100)).len(), 64);

    let dir = default_workspace_dir("Two Site Demo");
    assert_eq!(dir.file_name().unwrap(), "two-site-demo");
    let parent = dir.parent().unwrap();
    assert!(
        parent.ends_with("drconsole/workspaces") || parent.ends_with("drconsole-workspaces"),
        "{}",
        dir.display()
    );
}

#[test]
fn an_interrupted_create_is_rebuilt_from_nothing_and_reports_its_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let full = crate::generate::generate(crate::generate::GenerateOptions {
        vms: 200,
        datastores: 4,
        seed: 3,
    })
    .unwrap();
    // A crash (an injected fault: nothing after it is written) halfway through the VMs.
    crate::fault::arm("create.instance-made", 100);
    let err = Workspace::create(&root, &full).unwrap_err();
    crate::fault::disarm();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(!root.join(TOPOLOGY_FILE).exists(), "not a workspace yet");
    assert!(root.join(CREATING_FILE).exists(), "the creation is marked");
    assert!(matches!(
        Workspace::open(&root),
        Err(WorkspaceError::NotAWorkspace { .. })
    ));

    // Created again from a smaller topology: nothing of the first attempt is left over.
    let mut small = full.clone();
    small.vms.truncate(50);
    let mut heard = Vec::new();
    let ws = Workspace::create_with_progress(&root, &small, &mut |p| heard.push(p)).unwrap();
    assert!(
        !root.join(CREATING_FILE).exists(),
        "the marker goes once it is valid"
    );
    let mut names = Vec::new();
    for ds in &small.datastores {
        names.extend(
            ws.list_instances(&ds.id)
                .unwrap()
                .into_iter()
                .map(|i| i.name),
        );
    }
    names.sort();
    let mut want: Vec<String> = small.vms.iter().map(|v| v.id.clone()).collect();
    want.sort();
    assert_eq!(names, want, "exactly the small topology's instances");
    assert_eq!(
        heard.last(),
        Some(&Progress {
            done: 50,
            total: 50
        })
    );
    assert!(
        heard.iter().all(|p| p.total == 50 && p.done <= 50),
        "{heard:?}"
    );
}

#[test]
fn discard_takes_what_an_interrupted_create_left() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    crate::fault::arm("create.synced", 1);
    Workspace::create(&root, &patent()).unwrap_err();
    crate::fault::disarm();
    assert!(root.join(CREATING_FILE).exists() && root.join("sites").is_dir());
    discard(&root).unwrap();
    assert!(!root.join(CREATING_FILE).exists() && !root.join("sites").exists());
    drop(Workspace::create(&root, &patent()).unwrap());
}
