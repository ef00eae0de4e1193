//! Each replication group's lag over the run, for the report's charts.

use super::*;

/// The times group `g` stopped replicating in the direction it had: a failover (not a
/// test) of a PG it serves finished, or a reprotect reversed it.
pub(super) fn group_breaks(t: &Topology, r: &Recorded, g: &GroupSpec) -> Vec<SimTime> {
    let mut out: Vec<SimTime> = r
        .failovers
        .iter()
        .filter(|f| f.kind != FailoverKind::Test && f.state == FailoverState::Done)
        .filter(|f| f.protection_groups.iter().any(|pg| pg_covers(t, pg, g)))
        .filter_map(|f| f.finished_at)
        .chain(
            r.reprotects
                .iter()
                .filter(|rp| rp.protection_groups.iter().any(|pg| pg_covers(t, pg, g)))
                .map(|rp| rp.at),
        )
        .collect();
    out.sort_unstable();
    out
}

pub(super) fn group_lag(t: &Topology, r: &Recorded, g: &GroupSpec) -> GroupLag {
    let mut pubs: Vec<&PublishRecord> = r
        .publishes
        .records
        .iter()
        .filter(|p| p.group == g.id)
        .collect();
    pubs.sort_by_key(|p| (p.published_at, p.cycle));
    let breaks = group_breaks(t, r, g);
    let rpo = f64::from(g.rpo_minutes);
    let mut lag: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut over = 0;
    // The point the replicas hold, while the group replicates in its direction.
    let mut held: Option<&PublishRecord> = None;
    let mut run: Vec<(f64, f64)> = Vec::new();
    let next_break =
        |from: SimTime, to: SimTime| breaks.iter().copied().find(|&b| b >= from && b < to);
    for p in &pubs {
        if let Some(h) = held {
            match next_break(h.published_at, p.published_at) {
                Some(b) => {
                    run.push((minutes(b), minutes(b.saturating_sub(h.cut_at))));
                    lag.push(std::mem::take(&mut run));
                }
                None => {
                    let before = minutes(p.published_at.saturating_sub(h.cut_at));
                    if before > rpo {
                        over += 1;
                    }
                    run.push((minutes(p.published_at), before));
                }
            }
        }
        run.push((minutes(p.published_at), minutes(p.lag_after())));
        held = Some(p);
    }
    if let Some(h) = held {
        let end = next_break(h.published_at, r.now.saturating_add(1))
            .unwrap_or(r.now)
            .max(h.published_at);
        let now_lag = minutes(end.saturating_sub(h.cut_at));
        if end == r.now && now_lag > rpo {
            over += 1;
        }
        run.push((minutes(end), now_lag));
    }
    if !run.is_empty() {
        lag.push(run);
    }
    let worst = lag
        .iter()
        .flatten()
        .map(|&(_, l)| l)
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    GroupLag {
        group: g.id.clone(),
        rpo_minutes: g.rpo_minutes,
        direction: format!("{} to {}", g.source_site, g.target_site),
        protection_groups: t
            .protection_groups
            .iter()
            .filter(|pg| pg_covers(t, &pg.id, g))
            .map(|pg| pg.id.clone())
            .collect(),
        points: pubs
            .iter()
            .map(|p| PointFact {
                cycle: p.cycle,
                direction: format!("{} to {}", p.source_site, p.target_site),
                cut_at: minutes(p.cut_at),
                published_at: minutes(p.published_at),
                bytes: p.bytes,
                lag_before_minutes: p.lag_before().map(minutes),
                lag_after_minutes: minutes(p.lag_after()),
            })
            .collect(),
        worst_lag_minutes: worst,
        over_rpo: over,
        lag,
    }
}
