//! The report as text, for a terminal ([`Report::to_text`]).

use std::fmt::Write as _;

use super::*;

/// Which protection groups `e` concerns, with the topology's names.
fn pgs_line(e: &Event) -> String {
    e.sections
        .iter()
        .map(|s| {
            if s.name.is_empty() {
                s.protection_group.clone()
            } else {
                format!("{} ({})", s.protection_group, s.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    /// The report as text, for a terminal.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let s = &self.summary;
        let _ = writeln!(
            o,
            "DR report of workspace {} (topology \"{}\"), simulated time {}",
            self.workspace,
            self.topology,
            clock(self.now)
        );
        let _ = writeln!(
            o,
            "{} unplanned, {} planned and {} test failover(s), {} failback(s), {} reprotect(s), {} disaster(s){}",
            s.unplanned,
            s.planned,
            s.tests,
            s.failbacks,
            s.reprotects,
            s.disasters,
            if s.cross_site_moves > 0 {
                format!(", {} cross-site move(s)", s.cross_site_moves)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "VMs: {} recovered, {} not recovered; {} write(s) lost; worst achieved RPO {}; worst RTO {}; {}",
            s.vms_recovered,
            s.vms_not_recovered,
            s.writes_lost,
            s.worst_achieved_rpo_minutes.map_or("-".into(), span),
            s.worst_rto_minutes.map_or("-".into(), span),
            if s.inconsistent.is_empty() {
                "every recovered copy consistent".to_string()
            } else {
                format!("NOT consistent: {}", s.inconsistent.join(", "))
            }
        );
        if self.events.is_empty() {
            let _ = writeln!(
                o,
                "\nNo failover, reprotect or disaster has been recorded in this workspace."
            );
        }
        for e in &self.events {
            let _ = writeln!(o, "\n[{}] {}", e.when(), e.title());
            if let Some(state) = e.state.as_deref().filter(|s| *s != "done") {
                let _ = writeln!(o, "  state: {state}");
            }
            if !e.summary.is_empty() {
                let _ = writeln!(o, "  {}", e.summary);
            }
            if e.kind == EventKind::Reprotect {
                let _ = writeln!(o, "  protection groups: {}", pgs_line(e));
                for d in &e.deleted {
                    let _ = writeln!(o, "  deleted {d}");
                }
                continue;
            }
            for sec in &e.sections {
                let _ = writeln!(
                    o,
                    "  {}{}",
                    sec.protection_group,
                    if sec.name.is_empty() {
                        String::new()
                    } else {
                        format!(" \"{}\"", sec.name)
                    }
                );
                for v in &sec.vms {
                    vm_text(&mut o, v, e.kind);
                }
            }
        }
        if !self.vms.is_empty() {
            let _ = writeln!(o, "\nVM histories (writes lost stay lost across hops):");
            for v in &self.vms {
                let _ = writeln!(
                    o,
                    "  {}: left {}; {} write(s) lost in all",
                    v.vm,
                    v.left_sites.join(", then "),
                    v.writes_lost
                );
            }
        }
        let _ = writeln!(o, "\nReplication lag against RPO:");
        for g in &self.groups {
            let _ = writeln!(
                o,
                "  {} (RPO {} min, {} now; {}): {} point(s), worst lag {}, {} over RPO",
                g.group,
                g.rpo_minutes,
                g.direction,
                if g.protection_groups.is_empty() {
                    "in no protection group".to_string()
                } else {
                    g.protection_groups.join(", ")
                },
                g.points.len(),
                g.worst_lag_minutes.map_or("-".into(), span),
                g.over_rpo
            );
            for p in &g.points {
                let _ = writeln!(
                    o,
                    "    point {:>3} {:10} cut {} published {} shipped {:>10}  lag {} -> {}",
                    p.cycle,
                    p.direction,
                    clock(p.cut_at),
                    clock(p.published_at),
                    crate::engine::human_bytes(p.bytes),
                    p.lag_before_minutes.map_or("-".into(), span),
                    span(p.lag_after_minutes)
                );
            }
        }
        super::distributed::text(&mut o, self);
        for n in &self.notes {
            let _ = writeln!(o, "\nNote: {n}");
        }
        o
    }
}

fn vm_text(o: &mut String, v: &VmFact, kind: EventKind) {
    let prio = v
        .priority
        .map_or(String::new(), |p| format!(" (priority {p})"));
    if !v.recovered {
        let _ = writeln!(
            o,
            "    {}{prio}: NOT recovered: {}",
            v.vm,
            v.error.as_deref().unwrap_or("error")
        );
        let _ = writeln!(o, "      why: {}", v.why);
        return;
    }
    let _ = writeln!(
        o,
        "    {}{prio}: {} {} (point cut {}){}",
        v.vm,
        if kind == EventKind::Test {
            "test-recovered from"
        } else {
            "recovered from"
        },
        v.elected.as_deref().unwrap_or("?"),
        v.point_cut_at.map_or("?".into(), clock),
        match (&v.host, v.powered_on_at) {
            (Some(h), Some(on)) => format!(", powered on on {h} at {}", clock(on)),
            (Some(h), None) => format!(", host {h} reserved"),
            _ => String::new(),
        }
    );
    let _ = writeln!(o, "      why: {}", v.why);
    let _ = writeln!(
        o,
        "      {}; {} write(s) lost; achieved RPO {}; RTO {}",
        v.verdict(),
        v.writes_lost.map_or("?".into(), |n| n.to_string()),
        v.achieved_rpo_minutes.map_or("-".into(), span),
        match (v.rto_minutes, &v.rto_from) {
            (Some(m), Some(from)) => format!("{} (from {from})", span(m)),
            _ => "-".into(),
        }
    );
    for d in &v.deleted {
        let _ = writeln!(o, "      deleted {d}");
    }
}
