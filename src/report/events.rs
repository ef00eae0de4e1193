//! The report's events built from what the engine recorded: failovers (with each VM's
//! facts), reprotects and cross-site moves.

use super::*;

pub(super) fn empty_event(kind: EventKind) -> Event {
    Event {
        kind,
        failover: None,
        failover_kind: None,
        state: None,
        protection_groups: Vec::new(),
        site: None,
        from_site: None,
        to_site: None,
        started_at: 0.0,
        ended_at: None,
        summary: String::new(),
        groups_reversed: Vec::new(),
        deleted: Vec::new(),
        sections: Vec::new(),
        point: None,
        consistency_group: None,
    }
}

pub(super) fn reprotect_event(t: &Topology, rp: &ReprotectRecord) -> Event {
    // The new direction: the PG's VMs run on the side that now protects.
    let dir = rp
        .groups
        .first()
        .and_then(|g| g.split_once(": "))
        .and_then(|(_, d)| d.split_once(" to "))
        .map(|(a, b)| (a.to_string(), b.to_string()));
    Event {
        protection_groups: rp.protection_groups.clone(),
        from_site: dir.as_ref().map(|d| d.0.clone()),
        to_site: dir.map(|d| d.1),
        started_at: minutes(rp.at),
        ended_at: Some(minutes(rp.at)),
        summary: format!(
            "{} group(s) reversed{}; {} old instance(s) deleted",
            rp.groups.len(),
            if rp.groups.is_empty() {
                String::new()
            } else {
                format!(" ({})", rp.groups.join("; "))
            },
            rp.deleted.len()
        ),
        groups_reversed: rp.groups.clone(),
        deleted: rp.deleted.clone(),
        sections: rp
            .protection_groups
            .iter()
            .map(|pg| PgSection {
                protection_group: pg.clone(),
                name: t
                    .protection_group(pg)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                vms: Vec::new(),
            })
            .collect(),
        ..empty_event(EventKind::Reprotect)
    }
}

/// A cross-site move: its CG's protection groups, the sites, its outcome and the engine's
/// own account of it (the group reverses when it succeeds).
pub(super) fn across_event(t: &Topology, op: &crate::engine::AcrossOp) -> Event {
    let pgs: BTreeSet<String> = op
        .members
        .iter()
        .filter_map(|m| t.pg_of_either_side(&m.from_datastore))
        .map(String::from)
        .collect();
    Event {
        state: Some(op.phase.as_str().to_string()),
        protection_groups: pgs.into_iter().collect(),
        from_site: Some(op.from_site.clone()),
        to_site: Some(op.to_site.clone()),
        started_at: minutes(op.started_at),
        ended_at: op.ended_at.map(minutes),
        consistency_group: Some(op.consistency_group.clone()),
        summary: format!(
            "{} VM(s), consistency {}, rated {}: {}",
            op.members.len(),
            op.consistency.as_str(),
            op.rating,
            op.message
        ),
        ..empty_event(EventKind::CrossSiteMove)
    }
}

/// Protection group `pg`'s replication direction flipped before `at` this many times:
/// reprotects of it, and cross-site moves of its CGs that succeeded.
fn flips_before(t: &Topology, r: &Recorded, pg: &str, at: SimTime) -> usize {
    let reprotects = r
        .reprotects
        .iter()
        .filter(|rp| rp.at <= at && rp.protection_groups.iter().any(|p| p == pg))
        .count();
    let moves = r
        .across
        .iter()
        .filter(|op| {
            op.phase == crate::engine::AcrossPhase::Succeeded
                && op.ended_at.is_some_and(|e| e <= at)
                && op
                    .members
                    .iter()
                    .any(|m| t.pg_of_either_side(&m.from_datastore) == Some(pg))
        })
        .count();
    reprotects + moves
}

pub(super) fn failover_event(t: &Topology, r: &Recorded, f: &FailoverReport) -> Event {
    // Where the VMs went: the site of a recovered instance's datastore; else what the PGs'
    // direction was (reversed by an odd number of reprotects and cross-site moves before it).
    let recovered_ds = f
        .results
        .iter()
        .filter(|v| v.recovered)
        .find_map(|v| v.datastore.clone());
    let pg = f
        .protection_groups
        .first()
        .map(String::as_str)
        .unwrap_or("");
    let (to_site, from_site) = match &recovered_ds {
        Some(ds) => (site_of(t, ds), partner_site(t, ds)),
        None => {
            let flips = flips_before(t, r, pg, f.started_at);
            match pg_sites(t, pg) {
                Some((prot, rec)) if flips % 2 == 1 => (Some(prot), Some(rec)),
                Some((prot, rec)) => (Some(rec), Some(prot)),
                None => (None, None),
            }
        }
    };
    let home = pg_sites(t, pg).map(|(prot, _)| prot);
    let back_home = to_site.is_some() && to_site == home;
    let kind = match f.kind {
        FailoverKind::Test => EventKind::Test,
        _ if back_home => EventKind::Failback,
        FailoverKind::Planned => EventKind::Planned,
        FailoverKind::Unplanned => EventKind::Unplanned,
    };
    // Unplanned: the VMs stopped serving when their site was lost, if it was lost.
    let outage = from_site.as_ref().and_then(|site| {
        r.disasters
            .iter()
            .filter(|d| {
                &d.site == site
                    && d.lost_at <= f.started_at
                    && d.returned_at.is_none_or(|b| b > f.started_at)
            })
            .map(|d| d.lost_at)
            .max()
    });
    let (rto_start, rto_from) = match outage {
        Some(lost) => (
            lost,
            format!(
                "the loss of site {} at {}",
                from_site.as_deref().unwrap_or("?"),
                format_time(lost)
            ),
        ),
        None => (
            f.started_at,
            format!("the failover's start at {}", format_time(f.started_at)),
        ),
    };
    let mut sections: BTreeMap<String, Vec<VmFact>> = f
        .protection_groups
        .iter()
        .map(|p| (p.clone(), Vec::new()))
        .collect();
    for v in &f.results {
        let fact = vm_fact(t, v, f.kind, rto_start, &rto_from);
        let ds = v
            .datastore
            .clone()
            .or_else(|| {
                v.path
                    .as_deref()
                    .and_then(datastore_of_path)
                    .map(String::from)
            })
            .or_else(|| {
                v.vm.as_deref()
                    .and_then(|id| t.vm(id))
                    .map(|x| x.datastore.clone())
            });
        let pg_of = ds
            .as_deref()
            .and_then(|d| t.pg_of_either_side(d))
            .filter(|p| sections.contains_key(*p))
            .map(String::from);
        let key = match (pg_of, f.protection_groups.len()) {
            (Some(p), _) => p,
            (None, 1) => f.protection_groups[0].clone(),
            (None, _) => "(other)".to_string(),
        };
        sections.entry(key).or_default().push(fact);
    }
    // Sections in the failover's order of PGs, VMs by priority.
    let mut order: Vec<String> = f.protection_groups.clone();
    order.extend(
        sections
            .keys()
            .filter(|k| !f.protection_groups.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let sections = order
        .into_iter()
        .filter_map(|pg| {
            let mut vms = sections.remove(&pg)?;
            vms.sort_by(|a, b| {
                (a.priority.unwrap_or(u8::MAX), &a.vm).cmp(&(b.priority.unwrap_or(u8::MAX), &b.vm))
            });
            Some(PgSection {
                name: t
                    .protection_group(&pg)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                protection_group: pg,
                vms,
            })
        })
        .collect();
    Event {
        failover: Some(f.id),
        failover_kind: Some(f.kind),
        state: Some(
            match f.state {
                FailoverState::Running => "running",
                FailoverState::Done => "done",
                FailoverState::Failed => "failed",
            }
            .to_string(),
        ),
        protection_groups: f.protection_groups.clone(),
        from_site,
        to_site,
        started_at: minutes(f.started_at),
        ended_at: f.finished_at.map(minutes),
        summary: f.message.clone(),
        sections,
        point: f.point.map(minutes),
        ..empty_event(kind)
    }
}

fn vm_fact(
    t: &Topology,
    v: &VmResult,
    kind: FailoverKind,
    rto_start: SimTime,
    rto_from: &str,
) -> VmFact {
    let rto = v
        .powered_on_at
        .filter(|_| kind != FailoverKind::Test)
        .map(|on| minutes(on.saturating_sub(rto_start)));
    VmFact {
        vm: v.vm.clone().unwrap_or_else(|| v.uuid.clone()),
        uuid: v.uuid.clone(),
        priority: v.vm.as_deref().and_then(|id| t.vm(id)).map(|x| x.priority),
        recovered: v.recovered,
        error: v.error.clone(),
        point_cut_at: v.point_cut_at.map(minutes),
        elected: v.path.clone(),
        datastore: v.datastore.clone(),
        why: v.reason.clone(),
        deleted: v.deleted.clone(),
        host: v.host.clone(),
        writes_lost: v.writes_lost,
        achieved_rpo_minutes: v.achieved_rpo_minutes,
        powered_on_at: v.powered_on_at.map(minutes),
        rto_from: rto.map(|_| rto_from.to_string()),
        rto_minutes: rto,
        consistent: v.consistent,
    }
}
