//! The recovery manager's election (SPEC §7, contract): which copy of each VM found on the
//! replica datastores is the one to recover, even when a storage migration and replication
//! raced. Pure logic over the instances found; scanning and recovering are the engine's.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::topology::SiteRole;
use crate::workspace::{VmConfig, Workspace, WorkspaceError};

/// One instance of a VM found on a replica datastore, with its migration marks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub datastore: String,
    /// The instance directory, relative to the workspace.
    pub path: String,
    pub source: bool,
    pub target: bool,
    pub completed: bool,
}

impl Candidate {
    /// A migration target whose copy had not finished: its disk is partial by design.
    pub fn in_progress_target(&self) -> bool {
        self.target && !self.completed
    }
    /// A migration target whose copy finished.
    pub fn completed_target(&self) -> bool {
        self.target && self.completed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElectionError {
    NoInstance,
    Ambiguous,
    Incomplete,
}

impl ElectionError {
    pub fn as_str(self) -> &'static str {
        match self {
            ElectionError::NoInstance => "no-instance",
            ElectionError::Ambiguous => "ambiguous",
            ElectionError::Incomplete => "incomplete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Recover,
    Error,
}

/// The election for one uuid, in the shape `drconsole recover --dry-run --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Election {
    pub uuid: String,
    /// The topology's VM with this uuid, if any.
    pub vm: Option<String>,
    pub instances: Vec<Candidate>,
    pub decision: Decision,
    pub recover_from: Option<String>,
    pub error: Option<ElectionError>,
    /// Instance paths to delete (only deleted when not a dry run).
    pub delete: Vec<String>,
}

/// Elects the instance to recover among `instances` (every instance with this uuid found
/// on the replica datastores in scope), per the contract:
/// 1. none → `no-instance`; more than two → `ambiguous` (nothing recovered or deleted);
/// 2. exactly one → recover it, unless it is an in-progress target → `incomplete`;
/// 3. two → drop every in-progress target (to be deleted); then one completed target left →
///    recover it and delete the other if it is marked `source`; else one left → recover it;
///    none left → `no-instance`; else `ambiguous`.
pub fn elect(uuid: &str, vm: Option<&str>, instances: Vec<Candidate>) -> Election {
    let mut delete = Vec::new();
    let outcome: Result<String, ElectionError> = match instances.len() {
        0 => Err(ElectionError::NoInstance),
        1 if instances[0].in_progress_target() => Err(ElectionError::Incomplete),
        1 => Ok(instances[0].path.clone()),
        2 => {
            let (dropped, left): (Vec<&Candidate>, Vec<&Candidate>) =
                instances.iter().partition(|c| c.in_progress_target());
            delete.extend(dropped.iter().map(|c| c.path.clone()));
            let completed: Vec<&&Candidate> =
                left.iter().filter(|c| c.completed_target()).collect();
            match (completed.as_slice(), left.as_slice()) {
                ([winner], _) => {
                    delete.extend(
                        left.iter()
                            .filter(|c| c.path != winner.path && c.source)
                            .map(|c| c.path.clone()),
                    );
                    Ok(winner.path.clone())
                }
                (_, [only]) => Ok(only.path.clone()),
                (_, []) => Err(ElectionError::NoInstance),
                _ => Err(ElectionError::Ambiguous),
            }
        }
        _ => Err(ElectionError::Ambiguous),
    };
    let (decision, recover_from, error) = match outcome {
        Ok(path) => (Decision::Recover, Some(path), None),
        Err(e) => (Decision::Error, None, Some(e)),
    };
    Election {
        uuid: uuid.to_string(),
        vm: vm.map(str::to_string),
        instances,
        decision,
        recover_from,
        error,
        delete,
    }
}

/// What the replica datastores show once the publishes that are committed but not applied
/// are applied (a crash fell after a commit record; the next open applies it): the
/// instances they delete and the `vm.ron` they write, by (replica datastore, instance
/// name). Made by [`crate::engine::pending_publishes`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingChanges {
    pub removed: BTreeSet<(String, String)>,
    pub configs: BTreeMap<(String, String), VmConfig>,
}

/// Scans every recovery-site datastore of the workspace for instances (`*/vm.ron`), groups
/// them by uuid and elects, for every VM of the topology and every other uuid found, sorted
/// by uuid. Reads only `topology.ron` and the recovery-site datastore directories, so it
/// works on what a real disaster leaves; changes nothing.
pub fn scan_and_elect(ws: &Workspace) -> Result<Vec<Election>, WorkspaceError> {
    scan_and_elect_through(ws, &PendingChanges::default())
}

/// [`scan_and_elect`] over the replicas as they are once `pending` is applied (the state
/// the next open produces), changing nothing.
pub fn scan_and_elect_through(
    ws: &Workspace,
    pending: &PendingChanges,
) -> Result<Vec<Election>, WorkspaceError> {
    let t = ws.topology();
    let all: Vec<String> = t
        .datastores
        .iter()
        .filter(|d| t.site_role(&d.site) == Some(SiteRole::Recovery))
        .map(|d| d.id.clone())
        .collect();
    elect_over(ws, &all, |_| true, pending)
}

/// The election over the replica datastores `datastores` only (a failover's scope), for
/// every topology VM `want` accepts and every other uuid found there, sorted by uuid.
pub fn scan_and_elect_in(
    ws: &Workspace,
    datastores: &[String],
    want: impl Fn(&crate::topology::Vm) -> bool,
) -> Result<Vec<Election>, WorkspaceError> {
    scan_and_elect_in_through(ws, datastores, want, &PendingChanges::default())
}

/// [`scan_and_elect_in`] over the replicas as `pending` shows them (a recovery point older
/// than the one they hold, SPEC §11), changing nothing.
pub fn scan_and_elect_in_through(
    ws: &Workspace,
    datastores: &[String],
    want: impl Fn(&crate::topology::Vm) -> bool,
    pending: &PendingChanges,
) -> Result<Vec<Election>, WorkspaceError> {
    elect_over(ws, datastores, want, pending)
}

fn elect_over(
    ws: &Workspace,
    datastores: &[String],
    want: impl Fn(&crate::topology::Vm) -> bool,
    pending: &PendingChanges,
) -> Result<Vec<Election>, WorkspaceError> {
    let t = ws.topology();
    let mut found: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for ds in t.datastores.iter().filter(|d| datastores.contains(&d.id)) {
        let mut instances: BTreeMap<String, VmConfig> = ws
            .list_instances(&ds.id)?
            .into_iter()
            .map(|i| (i.name, i.config))
            .collect();
        for ((rep, name), config) in &pending.configs {
            if rep == &ds.id {
                instances.insert(name.clone(), config.clone());
            }
        }
        instances.retain(|name, _| !pending.removed.contains(&(ds.id.clone(), name.clone())));
        for (name, config) in instances {
            let marks = config.migration.as_ref();
            found
                .entry(config.uuid.to_ascii_lowercase())
                .or_default()
                .push(Candidate {
                    datastore: ds.id.clone(),
                    path: format!("sites/{}/datastores/{}/{name}", ds.site, ds.id),
                    source: marks.is_some_and(|m| m.source),
                    target: marks.is_some_and(|m| m.target),
                    completed: marks.is_some_and(|m| m.completed),
                });
        }
    }
    let mut vm_of: BTreeMap<String, &str> = BTreeMap::new();
    for vm in &t.vms {
        vm_of.insert(vm.uuid.to_ascii_lowercase(), &vm.id);
        if want(vm) {
            found.entry(vm.uuid.to_ascii_lowercase()).or_default();
        }
    }
    Ok(found
        .into_iter()
        .map(|(uuid, instances)| {
            let vm = vm_of.get(&uuid).copied();
            elect(&uuid, vm, instances)
        })
        .collect())
}

/// Why the election decided as it did, in a sentence for the operator.
pub fn explain(e: &Election) -> String {
    let marks = |c: &Candidate| match (c.source, c.target, c.completed) {
        (true, _, true) => "source of a completed migration",
        (true, _, false) => "source of a migration in progress",
        (_, true, true) => "completed migration target",
        (_, true, false) => "migration target still copying",
        _ => "no migration marks",
    };
    let n = e.instances.len();
    match (e.error, &e.recover_from) {
        (Some(ElectionError::NoInstance), _) if n == 0 => {
            "no instance of this VM on the replicas in scope: it cannot be recovered".into()
        }
        (Some(ElectionError::NoInstance), _) => {
            "only in-progress migration targets were found (partial copies): nothing to recover".into()
        }
        (Some(ElectionError::Ambiguous), _) if n > 2 => {
            format!("{n} instances found: more than two is ambiguous, nothing is recovered")
        }
        (Some(ElectionError::Ambiguous), _) => {
            "two instances and neither is a completed target: ambiguous, nothing is recovered".into()
        }
        (Some(ElectionError::Incomplete), _) => {
            "the only instance is a migration target whose copy had not finished: its disk is partial".into()
        }
        (None, Some(path)) => {
            let winner = e.instances.iter().find(|c| &c.path == path);
            let what = winner.map_or("instance", marks);
            if n == 1 {
                format!("the only instance ({what}) wins")
            } else if winner.is_some_and(|c| c.completed_target()) {
                format!("the {what} wins over the other copy")
            } else {
                format!("the {what} wins; the partial target is dropped")
            }
        }
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance on datastore `ds` with marks `s`ource, `t`arget, `c`ompleted.
    fn inst(ds: &str, marks: &str) -> Candidate {
        Candidate {
            datastore: ds.into(),
            path: format!("sites/ny/datastores/{ds}/vm1"),
            source: marks.contains('s'),
            target: marks.contains('t'),
            completed: marks.contains('c'),
        }
    }

    fn run(instances: Vec<Candidate>) -> (Option<String>, Option<ElectionError>, Vec<String>) {
        let e = elect("u", Some("vm1"), instances);
        assert_eq!(e.decision == Decision::Recover, e.recover_from.is_some());
        assert_eq!(e.error.is_some(), e.recover_from.is_none());
        (e.recover_from, e.error, e.delete)
    }

    fn path(ds: &str) -> String {
        format!("sites/ny/datastores/{ds}/vm1")
    }

    #[test]
    fn none_is_no_instance() {
        assert_eq!(run(vec![]), (None, Some(ElectionError::NoInstance), vec![]));
    }

    #[test]
    fn more_than_two_is_ambiguous_and_deletes_nothing() {
        let three = vec![inst("a", ""), inst("b", "tc"), inst("c", "t")];
        assert_eq!(run(three), (None, Some(ElectionError::Ambiguous), vec![]));
    }

    #[test]
    fn one_is_recovered_whatever_its_marks_unless_in_progress_target() {
        for marks in ["", "s", "sc", "tc"] {
            assert_eq!(
                run(vec![inst("a", marks)]),
                (Some(path("a")), None, vec![]),
                "{marks}"
            );
        }
        assert_eq!(
            run(vec![inst("a", "t")]),
            (None, Some(ElectionError::Incomplete), vec![])
        );
    }

    #[test]
    fn completed_target_wins_over_its_source() {
        // The patent's race: the target finished and was replicated before the source's
        // deletion was.
        assert_eq!(
            run(vec![inst("a", "sc"), inst("b", "tc")]),
            (Some(path("b")), None, vec![path("a")])
        );
        assert_eq!(
            run(vec![inst("a", "s"), inst("b", "tc")]),
            (Some(path("b")), None, vec![path("a")])
        );
    }

    #[test]
    fn completed_target_wins_but_an_unmarked_copy_is_kept() {
        assert_eq!(
            run(vec![inst("a", ""), inst("b", "tc")]),
            (Some(path("b")), None, vec![])
        );
    }

    #[test]
    fn in_progress_target_is_dropped_and_the_source_recovered() {
        // Disaster mid-copy: the partial target is deleted, the source comes up.
        assert_eq!(
            run(vec![inst("a", "s"), inst("b", "t")]),
            (Some(path("a")), None, vec![path("b")])
        );
    }

    #[test]
    fn two_in_progress_targets_leave_no_instance() {
        assert_eq!(
            run(vec![inst("a", "t"), inst("b", "t")]),
            (
                None,
                Some(ElectionError::NoInstance),
                vec![path("a"), path("b")]
            )
        );
    }

    #[test]
    fn two_plain_copies_or_two_completed_targets_are_ambiguous() {
        assert_eq!(
            run(vec![inst("a", ""), inst("b", "")]),
            (None, Some(ElectionError::Ambiguous), vec![])
        );
        assert_eq!(
            run(vec![inst("a", "tc"), inst("b", "tc")]),
            (None, Some(ElectionError::Ambiguous), vec![])
        );
        assert_eq!(
            run(vec![inst("a", "s"), inst("b", "sc")]),
            (None, Some(ElectionError::Ambiguous), vec![])
        );
    }

    #[test]
    fn json_has_the_contract_shape() {
        let e = elect("u-1", None, vec![inst("a", "s"), inst("b", "t")]);
        let v = serde_json::to_value(&e).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "decision",
                "delete",
                "error",
                "instances",
                "recover_from",
                "uuid",
                "vm"
            ]
        );
        assert_eq!(v["decision"], "recover");
        assert!(v["vm"].is_null() && v["error"].is_null());
        assert_eq!(v["instances"][1]["target"], true);
        let err = serde_json::to_value(elect("u", None, vec![])).unwrap();
        assert_eq!(err["decision"], "error");
        assert_eq!(err["error"], "no-instance");
    }
}
