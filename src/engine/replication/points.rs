//! Points in time (SPEC §11): a group with `retain_points: N` keeps its last N published
//! recovery points. The latest is what its replicas hold; each older one is kept as the
//! *undo* of the cycle that followed it — the replicas' blocks that cycle overwrote (a
//! delta file in the replication format), the `vm.ron` it replaced, a whole copy of an
//! instance it deleted, or a note that it created an instance — never a full copy of a
//! replica that stayed.
//!
//! On disk, at the recovery site: `replication/<group>.points/p-<cycle>/` per older point
//! (its `point.ron` and one directory per instance the next cycle touched), and
//! `pending/` while a publish is under way. A publish with a previous point writes
//! `pending/` durably *before* its commit record; once the point is published `pending/`
//! becomes `p-<previous cycle>/` and the oldest beyond N − 1 go. A crash before the commit
//! leaves a `pending/` the next publish replaces; after it, the roll-forward renames it.
//!
//! Recovering an older point rolls the replicas back in place, newest undo first, behind a
//! `rollback.ron` marker: applying the undos again gives the same replicas, so a crash in
//! mid-rollback is finished at the next open. A test failover never touches the replicas:
//! the election reads the point's view ([`recovery::PendingChanges`]) and each recovered
//! instance is rebuilt at the point in its isolated copy.

use super::*;
use crate::workspace::VM_CONFIG_FILE;

/// What the cycle after a retained point did to one replica instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::engine) enum UndoKind {
    /// The instance did not exist at the point.
    Created,
    /// It was deleted after the point: `whole/` holds it as it was.
    Deleted,
    /// Blocks of these disks (name, block count) were overwritten: `<disk>.undo` holds
    /// them as they were; `vm.ron` too when `config`.
    Changed {
        disks: Vec<(String, u64)>,
        config: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::engine) struct UndoEntry {
    pub replica: String,
    pub instance: String,
    pub kind: UndoKind,
}

/// An older retained point: the point itself and the undo of the cycle after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::engine) struct PointRecord {
    pub point: PublishedPoint,
    /// The cycle whose publish this undoes.
    pub undoes: u64,
    pub entries: Vec<UndoEntry>,
    /// Bytes kept for it (undo deltas, configs, whole copies).
    pub kept_bytes: u64,
}

/// One retained recovery point of a group, as the views list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetainedPoint {
    pub cycle: u64,
    pub cut_at: SimTime,
    /// What keeping it costs: its undo for an older point, its cycle's bytes for the latest.
    pub bytes: u64,
    pub latest: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RollbackMarker {
    to_cycle: u64,
}

pub(in crate::engine) fn points_dir(root: &Path, g: &GroupSpec) -> PathBuf {
    store::replication_dir(root, &g.target_site).join(format!("{}.points", g.key))
}

fn point_dir(root: &Path, g: &GroupSpec, cycle: u64) -> PathBuf {
    points_dir(root, g).join(format!("p-{cycle:08}"))
}

/// The older points kept for `g`, newest first (unreadable ones are an error naming them).
pub(in crate::engine) fn read_older(
    root: &Path,
    g: &GroupSpec,
) -> Result<Vec<PointRecord>, EngineError> {
    let dir = points_dir(root, g);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_err_at(&dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("p-") {
            out.push(read_ron::<PointRecord>(&e.path().join("point.ron"))?);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.point.cycle));
    Ok(out)
}

/// Copies an instance directory's files, each recorded in `barrier`.
fn copy_dir(from: &Path, to: &Path, barrier: &mut Barrier) -> Result<u64, EngineError> {
    std::fs::create_dir_all(to).map_err(io_err_at(to))?;
    barrier.dir(to);
    let mut bytes = 0;
    for entry in std::fs::read_dir(from).map_err(io_err_at(from))? {
        let entry = entry.map_err(io_err_at(from))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let dst = to.join(entry.file_name());
            bytes += std::fs::copy(entry.path(), &dst).map_err(io_err_at(&entry.path()))?;
            barrier.file(&dst);
        }
    }
    Ok(bytes)
}

/// Applies one undo entry kept in `undo_dir` to the instance directory `inst`.
fn apply_undo(
    e: &UndoEntry,
    undo_dir: &Path,
    inst: &Path,
    barrier: &mut Barrier,
) -> Result<(), EngineError> {
    let kept = undo_dir.join(&e.replica).join(&e.instance);
    match &e.kind {
        UndoKind::Created => remove_dir_if_exists(inst),
        UndoKind::Deleted => {
            remove_dir_if_exists(inst)?;
            copy_dir(&kept.join("whole"), inst, barrier).map(|_| ())
        }
        UndoKind::Changed { disks, config } => {
            for (disk, blocks) in disks {
                replica::apply_delta(
                    &kept.join(format!("{disk}.undo")),
                    &inst.join(disk),
                    *blocks,
                    barrier,
                )?;
            }
            if *config {
                let text = std::fs::read(kept.join(VM_CONFIG_FILE)).map_err(io_err_at(&kept))?;
                crate::fsutil::write_atomic(&inst.join(VM_CONFIG_FILE), &text)
                    .map_err(io_err_at(inst))?;
            }
            Ok(())
        }
    }
}

impl Engine {
    /// Before cycle `m` of group `g` is committed: keeps what it overwrites, so the point
    /// now published stays recoverable. Nothing for a group keeping one point.
    pub(super) fn keep_undo(&mut self, g: usize, m: &Manifest) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let Some(prev) = self.groups[g].published.clone() else {
            return Ok(());
        };
        if spec.retain_points <= 1 {
            return Ok(());
        }
        let dir = points_dir(self.ws.root(), &spec).join("pending");
        remove_dir_if_exists(&dir)?;
        std::fs::create_dir_all(&dir).map_err(io_err_at(&dir))?;
        let staging = self.staging_dir(&spec);
        let mut barrier = Barrier::new();
        let mut entries = Vec::new();
        let mut kept_bytes = 0;
        for e in &m.entries {
            let inst = self.ws.datastore_dir(&e.replica)?.join(&e.instance);
            let out = dir.join(&e.replica).join(&e.instance);
            let kind = if !inst.join(VM_CONFIG_FILE).exists() {
                if e.delete {
                    continue;
                }
                UndoKind::Created
            } else if e.delete {
                kept_bytes += copy_dir(&inst, &out.join("whole"), &mut barrier)?;
                UndoKind::Deleted
            } else {
                std::fs::create_dir_all(&out).map_err(io_err_at(&out))?;
                let mut disks = Vec::new();
                for (disk, blocks) in &e.disks {
                    let img = inst.join(disk);
                    if !img.exists() {
                        continue;
                    }
                    let delta = staging
                        .join(&e.replica)
                        .join(&e.instance)
                        .join(format!("{disk}.delta"));
                    let list = replica::delta_blocks(&delta, *blocks)?;
                    let src = ImageFile::open_read_only(&img)?.without_readahead();
                    let stats = replica::write_delta(
                        &src,
                        &list,
                        &out.join(format!("{disk}.undo")),
                        &mut barrier,
                    )?;
                    kept_bytes += stats.bytes;
                    disks.push((disk.clone(), *blocks));
                }
                let config = e.config || e.config_text.is_some();
                if config {
                    let dst = out.join(VM_CONFIG_FILE);
                    kept_bytes +=
                        std::fs::copy(inst.join(VM_CONFIG_FILE), &dst).map_err(io_err_at(&dst))?;
                    barrier.file(&dst);
                }
                barrier.dir(&out);
                UndoKind::Changed { disks, config }
            };
            entries.push(UndoEntry {
                replica: e.replica.clone(),
                instance: e.instance.clone(),
                kind,
            });
        }
        let rec = PointRecord {
            point: prev,
            undoes: m.cycle,
            entries,
            kept_bytes,
        };
        write_ron(&dir.join("point.ron"), &rec)?;
        barrier.dir(&dir);
        barrier
            .commit()
            .map_err(crate::workspace::WorkspaceError::from)?;
        super::super::fault_point("points.undo-kept")
    }

    /// After cycle `cycle` of group `g` is published: its undo becomes an older point, and
    /// the oldest beyond the group's `retain_points` go. Idempotent.
    pub(super) fn settle_points(&mut self, g: usize, cycle: u64) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let dir = points_dir(self.ws.root(), &spec);
        let pending = dir.join("pending");
        if pending.exists() {
            match read_ron::<PointRecord>(&pending.join("point.ron")) {
                Ok(rec) if rec.undoes == cycle => {
                    let to = point_dir(self.ws.root(), &spec, rec.point.cycle);
                    remove_dir_if_exists(&to)?;
                    std::fs::rename(&pending, &to).map_err(io_err_at(&to))?;
                }
                // Left by a cycle that never committed.
                _ => remove_dir_if_exists(&pending)?,
            }
        }
        let mut older = read_older(self.ws.root(), &spec)?;
        let keep = spec.retain_points.saturating_sub(1) as usize;
        for gone in older.drain(keep.min(older.len())..) {
            remove_dir_if_exists(&point_dir(self.ws.root(), &spec, gone.point.cycle))?;
        }
        self.groups[g].older = older;
        Ok(())
    }

    /// Group `g`'s retained points, latest first.
    pub(in crate::engine) fn retained_points(&self, g: usize) -> Vec<RetainedPoint> {
        let grp = &self.groups[g];
        grp.published
            .iter()
            .map(|p| RetainedPoint {
                cycle: p.cycle,
                cut_at: p.cut_at,
                bytes: p.bytes,
                latest: true,
            })
            .chain(grp.older.iter().map(|r| RetainedPoint {
                cycle: r.point.cycle,
                cut_at: r.point.cut_at,
                bytes: r.kept_bytes,
                latest: false,
            }))
            .collect()
    }

    /// The point of group `g` a failover at `point` recovers: the latest retained one cut
    /// at or before it (`None`: the latest). An error names the group and its points.
    pub(in crate::engine) fn point_for(
        &self,
        g: usize,
        point: Option<SimTime>,
    ) -> Result<Option<PublishedPoint>, String> {
        let grp = &self.groups[g];
        let Some(t) = point else {
            return Ok(grp.published.clone());
        };
        let all: Vec<&PublishedPoint> = grp
            .published
            .iter()
            .chain(grp.older.iter().map(|r| &r.point))
            .collect();
        all.iter()
            .find(|p| p.cut_at <= t)
            .map(|p| Some((*p).clone()))
            .ok_or_else(|| {
                format!(
                    "group {} keeps no recovery point cut at or before {}: {}",
                    grp.spec.id,
                    format_time(t),
                    if all.is_empty() {
                        "it has published none".to_string()
                    } else {
                        format!(
                            "its points are cut at {}",
                            all.iter()
                                .map(|p| format_time(p.cut_at))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                )
            })
    }

    /// The undos to apply, newest first, to take group `g`'s replicas back to `cycle`.
    fn undos_to(&self, g: usize, cycle: u64) -> Vec<&PointRecord> {
        self.groups[g]
            .older
            .iter()
            .filter(|r| r.point.cycle >= cycle)
            .collect()
    }

    /// What group `g`'s replicas show at older point `cycle`: the instances that did not
    /// exist then, and the `vm.ron` of those that did and changed since.
    pub(in crate::engine) fn point_view(
        &self,
        g: usize,
        cycle: u64,
        into: &mut recovery::PendingChanges,
    ) -> Result<(), EngineError> {
        let spec = &self.groups[g].spec;
        for rec in self.undos_to(g, cycle) {
            let dir = point_dir(self.ws.root(), spec, rec.point.cycle);
            for e in &rec.entries {
                let key = (e.replica.clone(), e.instance.clone());
                let kept = dir.join(&e.replica).join(&e.instance);
                let config = match &e.kind {
                    UndoKind::Created => {
                        into.configs.remove(&key);
                        into.removed.insert(key);
                        continue;
                    }
                    UndoKind::Deleted => kept.join("whole").join(VM_CONFIG_FILE),
                    UndoKind::Changed { config: true, .. } => kept.join(VM_CONFIG_FILE),
                    UndoKind::Changed { .. } => {
                        // Its config stands as it is now, unless a newer undo removed it.
                        if into.removed.remove(&key) {
                            let now = self
                                .ws
                                .datastore_dir(&e.replica)?
                                .join(&e.instance)
                                .join(VM_CONFIG_FILE);
                            into.configs.insert(key, read_ron(&now)?);
                        }
                        continue;
                    }
                };
                into.removed.remove(&key);
                into.configs.insert(key, read_ron(&config)?);
            }
        }
        Ok(())
    }

    /// Rebuilds instance `replica/instance` of group `g` as it was at older point `cycle`
    /// into `dest` (a test failover's isolated copy); false if it did not exist then.
    pub(in crate::engine) fn copy_at_point(
        &self,
        g: usize,
        cycle: u64,
        replica: &str,
        instance: &str,
        dest: &Path,
    ) -> Result<bool, EngineError> {
        let spec = &self.groups[g].spec;
        let now = self.ws.datastore_dir(replica)?.join(instance);
        let mut barrier = Barrier::new();
        remove_dir_if_exists(dest)?;
        if now.join(VM_CONFIG_FILE).exists() {
            copy_dir(&now, dest, &mut barrier)?;
        }
        for rec in self.undos_to(g, cycle) {
            let dir = point_dir(self.ws.root(), spec, rec.point.cycle);
            for e in rec
                .entries
                .iter()
                .filter(|e| e.replica == replica && e.instance == instance)
            {
                apply_undo(e, &dir, dest, &mut barrier)?;
            }
        }
        Ok(dest.join(VM_CONFIG_FILE).exists())
    }

    /// Takes group `g`'s replicas back to older point `cycle`, in place, for a failover:
    /// the newer points are gone afterwards and `cycle` is the group's published point.
    pub(in crate::engine) fn roll_back(&mut self, g: usize, cycle: u64) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let dir = points_dir(self.ws.root(), &spec);
        write_ron(
            &dir.join("rollback.ron"),
            &RollbackMarker { to_cycle: cycle },
        )?;
        super::super::fault_point("points.rollback-marked")?;
        self.finish_roll_back(g)
    }

    /// Applies (again) the rollback `rollback.ron` asks for: idempotent, so a crash in
    /// mid-rollback is finished by the next open.
    pub(super) fn finish_roll_back(&mut self, g: usize) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let dir = points_dir(self.ws.root(), &spec);
        let marker = dir.join("rollback.ron");
        if !marker.exists() {
            return Ok(());
        }
        let RollbackMarker { to_cycle } = read_ron(&marker)?;
        let undos: Vec<PointRecord> = self.undos_to(g, to_cycle).into_iter().cloned().collect();
        let Some(target) = undos.last().map(|r| r.point.clone()) else {
            // Already done: the marker outlived the rollback.
            return remove_file_if_exists(&marker);
        };
        let mut barrier = Barrier::new();
        for rec in &undos {
            let udir = point_dir(self.ws.root(), &spec, rec.point.cycle);
            for e in &rec.entries {
                let inst = self.ws.datastore_dir(&e.replica)?.join(&e.instance);
                apply_undo(e, &udir, &inst, &mut barrier)?;
                super::super::fault_point("points.undo-applied")?;
            }
        }
        barrier
            .commit()
            .map_err(crate::workspace::WorkspaceError::from)?;
        write_ron(&self.published_path(&spec), &target)?;
        for rec in &undos {
            remove_dir_if_exists(&point_dir(self.ws.root(), &spec, rec.point.cycle))?;
        }
        let grp = &mut self.groups[g];
        grp.published = Some(target);
        grp.older.retain(|r| r.point.cycle < to_cycle);
        remove_file_if_exists(&marker)
    }
}
