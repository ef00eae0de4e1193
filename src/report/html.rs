//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script
//! and nothing fetched, so it opens the same in any browser and can be archived as is.
//! Every name from the workspace (sites, groups, VMs, paths, reasons) is escaped.

use std::fmt::Write as _;

use super::{Event, EventKind, GroupLag, Report, VmFact, clock, span};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root { --ink:#1d2433; --muted:#5b6475; --line:#d9dee7; --bg:#f6f7f9; --card:#fff;
  --ok:#1f7a3f; --bad:#b42318; --warn:#b54708; --blue:#2563eb; --violet:#7c3aed; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 40px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:18px; margin:28px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:0 0 6px; }
.sub { color:var(--muted); margin:0; }
.cards { display:grid; grid-template-columns:repeat(5,1fr); gap:10px; margin-top:16px; }
@media (max-width:800px) { .cards { grid-template-columns:repeat(2,1fr); } }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.card .v { font-size:20px; font-weight:600; margin-top:2px; }
.card .d { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); }
th, td { text-align:left; vertical-align:top; padding:6px 8px; border-bottom:1px solid var(--line); }
th { background:#eef1f5; font-size:12px; color:var(--muted); font-weight:600; white-space:nowrap; }
td.num { text-align:right; white-space:nowrap; font-variant-numeric:tabular-nums; }
td.when { white-space:nowrap; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; word-break:break-all; }
.why { color:var(--muted); font-size:12px; margin-top:2px; }
.tag { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; font-weight:600; white-space:nowrap; }
.k-disaster { background:#fde2e1; color:var(--bad); }
.k-site-return { background:#e6f4ea; color:var(--ok); }
.k-test { background:#e8eefc; color:var(--blue); }
.k-planned { background:#fff1e0; color:var(--warn); }
.k-unplanned { background:#fde2e1; color:var(--bad); }
.k-failback { background:#e6f4ea; color:var(--ok); }
.k-reprotect { background:#efe7fd; color:var(--violet); }
.k-cross-site-move { background:#e0f2fe; color:#075985; }
.ok { color:var(--ok); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
.muted { color:var(--muted); }
.event { background:var(--card); border:1px solid var(--line); border-left:5px solid var(--line); border-radius:8px; padding:12px 14px; margin:12px 0; }
.e-test { border-left-color:var(--blue); } .e-planned { border-left-color:var(--warn); } .e-unplanned { border-left-color:var(--bad); }
.e-failback { border-left-color:var(--ok); } .e-reprotect { border-left-color:var(--violet); }
.event table { margin-top:8px; }
.pg { margin-top:10px; font-weight:600; }
.charts { display:grid; grid-template-columns:repeat(auto-fill,minmax(540px,1fr)); gap:12px; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.chart svg { display:block; width:100%; height:auto; }
.legend { color:var(--muted); font-size:12px; margin-top:4px; }
.legend span { display:inline-block; margin-right:14px; }
.sw { display:inline-block; width:18px; height:3px; vertical-align:middle; margin-right:5px; }
footer { color:var(--muted); font-size:12px; margin-top:28px; }
@media print { body { background:#fff; } .event, .chart, .card { break-inside:avoid; } }
"#;

/// The page.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>DR report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&r.topology)
    );
    let _ = write!(
        o,
        "<h1>Disaster-recovery report</h1>\n<p class=\"sub\">Topology <b>{}</b> · workspace <code>{}</code> · recorded up to simulated time <b>{}</b></p>\n",
        esc(&r.topology),
        esc(&r.workspace),
        clock(r.now)
    );
    cards(&mut o, r);
    timeline(&mut o, r);
    lag_charts(&mut o, r);
    rto_charts(&mut o, r);
    details(&mut o, r);
    histories(&mut o, r);
    super::distributed::html(&mut o, r);
    if !r.notes.is_empty() {
        o.push_str("<h2>Notes</h2>\n<ul>\n");
        for n in &r.notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>\n");
    }
    o.push_str(
        "<footer>Made by <code>drconsole report</code> from what the engine recorded in the workspace \
         (<code>state/engine.ron</code>, <code>state/publishes.log</code>). Times are simulated, \
         minutes:seconds from the workspace's start. RTO is the time from when a VM stopped serving \
         (its site's loss, or the failover's start while the site was up) to its power-on; the \
         achieved RPO is how old the recovery point was then.</footer>\n</main>\n</body>\n</html>\n",
    );
    o
}

fn card(o: &mut String, key: &str, value: &str, detail: &str, class: &str) {
    let _ = writeln!(
        o,
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v {class}\">{}</div><div class=\"d\">{}</div></div>",
        esc(key),
        esc(value),
        esc(detail)
    );
}

fn cards(o: &mut String, r: &Report) {
    let s = &r.summary;
    o.push_str("<section class=\"cards\">\n");
    card(
        o,
        "Failovers",
        &(s.unplanned + s.planned).to_string(),
        &format!("{} unplanned, {} planned", s.unplanned, s.planned),
        "",
    );
    card(
        o,
        "Failbacks",
        &s.failbacks.to_string(),
        "planned moves home",
        "",
    );
    card(
        o,
        "Reprotects",
        &s.reprotects.to_string(),
        "replication reversed",
        "",
    );
    if s.cross_site_moves > 0 {
        card(
            o,
            "Cross-site moves",
            &s.cross_site_moves.to_string(),
            "consistency groups moved live",
            "",
        );
    }
    card(o, "Tests", &s.tests.to_string(), "isolated copies", "");
    card(o, "Disasters", &s.disasters.to_string(), "sites lost", "");
    card(
        o,
        "VMs recovered",
        &s.vms_recovered.to_string(),
        &format!("{} not recovered", s.vms_not_recovered),
        if s.vms_not_recovered > 0 { "bad" } else { "" },
    );
    card(
        o,
        "Writes lost",
        &s.writes_lost.to_string(),
        "by failovers (tests excluded)",
        if s.writes_lost > 0 { "bad" } else { "ok" },
    );
    card(
        o,
        "Worst achieved RPO",
        &s.worst_achieved_rpo_minutes.map_or("-".into(), span),
        "age of the point recovered",
        "",
    );
    card(
        o,
        "Worst RTO",
        &s.worst_rto_minutes.map_or("-".into(), span),
        "outage to power-on",
        "",
    );
    let (v, d, c) = if s.inconsistent.is_empty() {
        (
            "All consistent",
            "every recovered copy checked".to_string(),
            "ok",
        )
    } else {
        ("INCONSISTENT", s.inconsistent.join(", "), "bad")
    };
    card(o, "Consistency", v, &d, c);
    o.push_str("</section>\n");
}

fn kind_class(k: EventKind) -> &'static str {
    match k {
        EventKind::Disaster => "disaster",
        EventKind::SiteReturn => "site-return",
        EventKind::Test => "test",
        EventKind::Planned => "planned",
        EventKind::Unplanned => "unplanned",
        EventKind::Failback => "failback",
        EventKind::Reprotect => "reprotect",
        EventKind::CrossSiteMove => "cross-site-move",
    }
}

/// The event's kind (and failover number) as a coloured tag.
fn kind_tag(e: &Event) -> String {
    format!(
        "<span class=\"tag k-{}\">{}{}</span>",
        kind_class(e.kind),
        esc(e.kind.label()),
        e.failover.map_or(String::new(), |n| format!(" #{n}"))
    )
}

fn timeline(o: &mut String, r: &Report) {
    o.push_str("<h2>Timeline</h2>\n");
    if r.events.is_empty() {
        o.push_str("<p class=\"muted\">No failover, reprotect or disaster has been recorded in this workspace.</p>\n");
        return;
    }
    o.push_str("<table>\n<tr><th>When</th><th>Event</th><th>Protection groups</th><th>Direction</th><th>Outcome</th></tr>\n");
    for e in &r.events {
        let dir = match (&e.from_site, &e.to_site, &e.site) {
            (Some(a), Some(b), _) => format!("{} → {}", esc(a), esc(b)),
            (_, _, Some(s)) => format!("site {}", esc(s)),
            _ => String::new(),
        };
        let state = match e.state.as_deref() {
            Some("failed") => " <span class=\"bad\">failed</span>".to_string(),
            Some("running") => " <span class=\"muted\">(running)</span>".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "<tr><td class=\"when\">{}</td><td>{}{state}</td><td>{}</td><td>{dir}</td><td>{}</td></tr>",
            esc(&e.when()),
            kind_tag(e),
            esc(&e.protection_groups.join(", ")),
            esc(&e.summary)
        );
    }
    o.push_str("</table>\n");
}

/// Round steps for an axis up to `max`: about five of them.
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0];
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| max / s <= 6.0)
        .unwrap_or(10.0 * mag);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|v| *v <= max + step * 1e-9)
        .collect()
}

fn num(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A time axis label, `mm:ss`.
fn mmss(minutes: f64) -> String {
    let secs = (minutes * 60.0).round() as u64;
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

/// The markers an event leaves on a group's chart: its time, a short label, a colour.
fn markers(r: &Report, g: &GroupLag) -> Vec<(f64, String, &'static str)> {
    let mut out: Vec<(f64, String, &'static str)> = r
        .events
        .iter()
        .filter(|e| {
            e.kind == EventKind::Disaster
                || e.kind == EventKind::SiteReturn
                // A cross-site move marks its own group, not the rest of its PG.
                || match &e.consistency_group {
                    Some(cg) => *cg == g.group,
                    None => e
                        .protection_groups
                        .iter()
                        .any(|pg| g.protection_groups.contains(pg)),
                }
        })
        .filter(|e| e.kind != EventKind::Test)
        .map(|e| {
            let (label, colour) = match e.kind {
                EventKind::Disaster => (
                    format!("{} lost", e.site.as_deref().unwrap_or("")),
                    "#b42318",
                ),
                EventKind::SiteReturn => (
                    format!("{} back", e.site.as_deref().unwrap_or("")),
                    "#1f7a3f",
                ),
                EventKind::Reprotect => ("reprotect".to_string(), "#7c3aed"),
                EventKind::CrossSiteMove => ("moved across".to_string(), "#075985"),
                EventKind::Failback => {
                    (format!("failback #{}", e.failover.unwrap_or(0)), "#1f7a3f")
                }
                _ => (format!("failover #{}", e.failover.unwrap_or(0)), "#b54708"),
            };
            // A failover's mark is where it ended (the group stopped then).
            let at = if e.kind.is_failover() {
                e.ended_at.unwrap_or(e.started_at)
            } else {
                e.started_at
            };
            (at, label, colour)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn lag_charts(o: &mut String, r: &Report) {
    o.push_str("<h2>Replication lag against RPO</h2>\n");
    o.push_str("<p class=\"sub\">Per replication group over simulated time: the lag is the age of the recovery point the replicas hold. It climbs until the next point publishes, and stops where the group stopped replicating in that direction (failed over, reversed).</p>\n");
    if r.groups.is_empty() {
        o.push_str("<p class=\"muted\">The topology has no replication group.</p>\n");
        return;
    }
    o.push_str("<div class=\"charts\">\n");
    for g in &r.groups {
        let _ = writeln!(
            o,
            "<div class=\"chart\"><h3>{} <span class=\"muted\">· RPO {} min · {} now{}</span></h3>",
            esc(&g.group),
            g.rpo_minutes,
            esc(&g.direction),
            if g.protection_groups.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(&g.protection_groups.join(", ")))
            }
        );
        lag_svg(o, r, g);
        let _ = writeln!(
            o,
            "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#2563eb\"></i>lag</span><span><i class=\"sw\" style=\"background:#b42318\"></i>RPO</span><span>{} point(s) · worst lag {} · <b class=\"{}\">{} over RPO</b></span></div></div>",
            g.points.len(),
            g.worst_lag_minutes.map_or("-".into(), span),
            if g.over_rpo > 0 { "bad" } else { "ok" },
            g.over_rpo
        );
    }
    o.push_str("</div>\n");
}

fn lag_svg(o: &mut String, r: &Report, g: &GroupLag) {
    let (w, ml, mr, mb) = (540.0, 46.0, 22.0, 34.0);
    let pw = w - ml - mr;
    let xmax = r.now.max(1.0);
    // Event labels in rows, so that close ones do not overlap.
    let mut row_ends: Vec<f64> = Vec::new();
    let marks: Vec<(f64, String, &str, usize)> = markers(r, g)
        .into_iter()
        .map(|(at, label, colour)| {
            let x0 = ml + at / xmax * pw + 2.0;
            let width = label.chars().count() as f64 * 5.6 + 6.0;
            let row = match row_ends.iter().position(|&end| end < x0) {
                Some(i) => i,
                None => {
                    row_ends.push(0.0);
                    row_ends.len() - 1
                }
            };
            row_ends[row] = x0 + width;
            (at, label, colour, row)
        })
        .collect();
    let mt = 14.0 + 12.0 * row_ends.len() as f64;
    let h = mt + 150.0 + mb;
    let ph = h - mt - mb;
    let rpo = f64::from(g.rpo_minutes);
    let ymax = g.worst_lag_minutes.unwrap_or(0.0).max(rpo) * 1.15;
    let x = |v: f64| ml + v / xmax * pw;
    let y = |v: f64| mt + ph - v / ymax * ph;
    let _ = writeln!(
        o,
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Replication lag of {} against its RPO of {} minutes\" font-family=\"system-ui,sans-serif\" font-size=\"11\">",
        esc(&g.group),
        g.rpo_minutes
    );
    // Grid and axes.
    for t in ticks(ymax) {
        let (x2, yt, xl, yl) = (ml + pw, y(t), ml - 6.0, y(t) + 4.0);
        let _ = writeln!(
            o,
            "<line x1=\"{ml}\" x2=\"{x2}\" y1=\"{yt:.1}\" y2=\"{yt:.1}\" stroke=\"#e5e8ee\"/><text x=\"{xl}\" y=\"{yl:.1}\" text-anchor=\"end\" fill=\"#5b6475\">{}</text>",
            num(t)
        );
    }
    for t in ticks(xmax) {
        let _ = writeln!(
            o,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#c4cad4\"/><text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\" fill=\"#5b6475\">{4}</text>",
            x(t),
            mt + ph,
            mt + ph + 4.0,
            mt + ph + 16.0,
            mmss(t)
        );
    }
    let _ = writeln!(
        o,
        "<line x1=\"{ml}\" x2=\"{ml}\" y1=\"{mt}\" y2=\"{0}\" stroke=\"#8a93a3\"/><line x1=\"{ml}\" x2=\"{1}\" y1=\"{0}\" y2=\"{0}\" stroke=\"#8a93a3\"/>",
        mt + ph,
        ml + pw
    );
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#5b6475\">simulated time (mm:ss)</text><text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\" fill=\"#5b6475\">lag (min)</text>",
        ml + pw / 2.0,
        h - 4.0,
        mt + ph / 2.0,
        mt + ph / 2.0
    );
    // Events.
    for (at, label, colour, row) in marks {
        let ty = 12.0 + 12.0 * row as f64;
        let _ = writeln!(
            o,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{colour}\" stroke-dasharray=\"2 3\"/><text x=\"{3:.1}\" y=\"{4}\" fill=\"{colour}\" font-size=\"10\">{5}</text>",
            x(at),
            ty - 9.0,
            mt + ph,
            x(at) + 2.0,
            ty,
            esc(&label)
        );
    }
    // RPO.
    let _ = writeln!(
        o,
        "<line x1=\"{ml}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#b42318\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/><text x=\"{0}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#b42318\">RPO {3} min</text>",
        ml + pw,
        y(rpo),
        y(rpo) - 4.0,
        g.rpo_minutes
    );
    // The lag.
    if g.lag.is_empty() {
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5b6475\">no recovery point published</text>",
            ml + pw / 2.0,
            mt + ph / 2.0
        );
    }
    for run in &g.lag {
        let pts: Vec<String> = run
            .iter()
            .map(|&(t, l)| format!("{:.1},{:.1}", x(t), y(l)))
            .collect();
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            let _ = writeln!(
                o,
                "<polygon points=\"{:.1},{:.1} {} {:.1},{:.1}\" fill=\"#2563eb\" fill-opacity=\"0.10\"/>",
                x(first.0),
                y(0.0),
                pts.join(" "),
                x(last.0),
                y(0.0)
            );
        }
        let _ = writeln!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.8\"/>",
            pts.join(" ")
        );
        for &(t, l) in run.iter().filter(|(_, l)| *l > rpo) {
            let _ = writeln!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#b42318\"/>",
                x(t),
                y(l)
            );
        }
    }
    o.push_str("</svg>\n");
}

/// Colours by priority (1 first).
fn priority_colour(p: Option<u8>) -> &'static str {
    match p {
        Some(1) => "#b42318",
        Some(2) => "#b54708",
        Some(3) => "#2563eb",
        Some(4) => "#0e7490",
        Some(_) => "#5b6475",
        None => "#8a93a3",
    }
}

fn rto_charts(o: &mut String, r: &Report) {
    o.push_str("<h2>Time to power-on (RTO) by VM priority</h2>\n");
    let with_rto: Vec<(&Event, Vec<&VmFact>)> = r
        .events
        .iter()
        .filter(|e| e.kind.is_failover() && e.kind != EventKind::Test)
        .map(|e| {
            let mut vms: Vec<&VmFact> = e
                .sections
                .iter()
                .flat_map(|s| &s.vms)
                .filter(|v| v.rto_minutes.is_some())
                .collect();
            vms.sort_by(|a, b| {
                (a.priority.unwrap_or(u8::MAX), &a.vm).cmp(&(b.priority.unwrap_or(u8::MAX), &b.vm))
            });
            (e, vms)
        })
        .filter(|(_, vms)| !vms.is_empty())
        .collect();
    if with_rto.is_empty() {
        o.push_str("<p class=\"muted\">No VM has been powered on by a failover yet.</p>\n");
        return;
    }
    o.push_str("<p class=\"sub\">Each VM powered on by a failover or failback, highest priority first. The bar runs from when the VM stopped serving to its power-on.</p>\n<div class=\"charts\">\n");
    for (e, vms) in with_rto {
        let from = vms
            .first()
            .and_then(|v| v.rto_from.as_deref())
            .unwrap_or("");
        let _ = writeln!(
            o,
            "<div class=\"chart\"><h3>{}</h3><div class=\"legend\">measured from {}</div>",
            esc(&e.title()),
            esc(from)
        );
        rto_svg(o, e, &vms);
        let prios: std::collections::BTreeSet<Option<u8>> =
            vms.iter().map(|v| v.priority).collect();
        o.push_str("<div class=\"legend\">");
        for p in prios {
            let _ = write!(
                o,
                "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>",
                priority_colour(p),
                p.map_or("no priority".into(), |p| format!("priority {p}"))
            );
        }
        o.push_str("</div></div>\n");
    }
    o.push_str("</div>\n");
}

fn rto_svg(o: &mut String, e: &Event, vms: &[&VmFact]) {
    let row = 22.0;
    let (ml, mr, mt, mb) = (150.0, 70.0, 8.0, 30.0);
    let w = 540.0;
    let h = mt + mb + row * vms.len() as f64;
    let pw = w - ml - mr;
    let max = vms
        .iter()
        .filter_map(|v| v.rto_minutes)
        .fold(0.0f64, f64::max);
    // Seconds read better below two minutes.
    let (unit, scale) = if max < 2.0 { ("s", 60.0) } else { ("min", 1.0) };
    let top = (max * scale).max(1e-6) * 1.05;
    let x = |v: f64| ml + v * scale / top * pw;
    let _ = writeln!(
        o,
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Time to power-on of each VM of {}\" font-family=\"system-ui,sans-serif\" font-size=\"11\">",
        esc(&e.title())
    );
    for t in ticks(top) {
        let xt = ml + t / top * pw;
        let _ = writeln!(
            o,
            "<line x1=\"{xt:.1}\" x2=\"{xt:.1}\" y1=\"{mt}\" y2=\"{:.1}\" stroke=\"#e5e8ee\"/><text x=\"{xt:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5b6475\">{}</text>",
            h - mb,
            h - mb + 14.0,
            num(t)
        );
    }
    let _ = writeln!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5b6475\">time to power-on ({unit})</text>",
        ml + pw / 2.0,
        h - 4.0
    );
    for (i, v) in vms.iter().enumerate() {
        let rto = v.rto_minutes.unwrap_or(0.0);
        let yy = mt + row * i as f64;
        let label = format!(
            "{}{}",
            v.priority.map_or(String::new(), |p| format!("P{p} · ")),
            v.vm
        );
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#1d2433\">{}</text><rect x=\"{ml}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1d2433\">{}</text>",
            ml - 6.0,
            yy + row * 0.68,
            esc(&label),
            yy + 3.0,
            (x(rto) - ml).max(1.0),
            row - 6.0,
            priority_colour(v.priority),
            x(rto) + 4.0,
            yy + row * 0.68,
            esc(&span(rto))
        );
    }
    let _ = writeln!(
        o,
        "<line x1=\"{ml}\" x2=\"{ml}\" y1=\"{mt}\" y2=\"{:.1}\" stroke=\"#8a93a3\"/>",
        h - mb
    );
    o.push_str("</svg>\n");
}

fn details(o: &mut String, r: &Report) {
    let shown: Vec<&Event> = r
        .events
        .iter()
        .filter(|e| {
            e.kind.is_failover()
                || e.kind == EventKind::Reprotect
                || e.kind == EventKind::CrossSiteMove
        })
        .collect();
    if shown.is_empty() {
        return;
    }
    o.push_str("<h2>Failovers, failbacks, reprotects and cross-site moves</h2>\n");
    for e in shown {
        let _ = writeln!(
            o,
            "<div class=\"event e-{}\"><h3>{}</h3><div class=\"muted\">{} · {}</div>",
            kind_class(e.kind),
            esc(&e.title()),
            esc(&e.when()),
            esc(&e.summary)
        );
        if e.kind == EventKind::CrossSiteMove {
            o.push_str("</div>\n");
            continue;
        }
        if e.kind == EventKind::Reprotect {
            if e.deleted.is_empty() {
                o.push_str(
                    "<div class=\"muted\">No instance deleted on the new replica side.</div>\n",
                );
            } else {
                o.push_str("<div>Deleted on the new replica side:</div><ul>\n");
                for d in &e.deleted {
                    let _ = writeln!(o, "<li><code>{}</code></li>", esc(d));
                }
                o.push_str("</ul>\n");
            }
            o.push_str("</div>\n");
            continue;
        }
        for sec in &e.sections {
            let _ = writeln!(
                o,
                "<div class=\"pg\">{}{}</div>",
                esc(&sec.protection_group),
                if sec.name.is_empty() {
                    String::new()
                } else {
                    format!(" <span class=\"muted\">{}</span>", esc(&sec.name))
                }
            );
            if sec.vms.is_empty() {
                o.push_str("<div class=\"muted\">No VM in scope.</div>\n");
                continue;
            }
            o.push_str("<table>\n<tr><th>VM</th><th>Prio</th><th>Point used (cut)</th><th>Instance elected, and why</th><th>Host</th><th>Powered on</th><th>Writes lost</th><th>Achieved RPO</th><th>RTO</th><th>Verdict</th></tr>\n");
            for v in &sec.vms {
                vm_row(o, v);
            }
            o.push_str("</table>\n");
        }
        o.push_str("</div>\n");
    }
}

fn vm_row(o: &mut String, v: &VmFact) {
    let elected = match (&v.elected, &v.error) {
        (Some(p), None) => format!("<code>{}</code>", esc(p)),
        (p, Some(err)) => format!(
            "<span class=\"bad\">{}</span>{}",
            esc(err),
            p.as_deref()
                .map_or(String::new(), |p| format!(" <code>{}</code>", esc(p)))
        ),
        (None, None) => "-".into(),
    };
    let deleted = if v.deleted.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"why\">deleted: {}</div>",
            v.deleted
                .iter()
                .map(|d| format!("<code>{}</code>", esc(d)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let verdict = match v.consistent {
        Some(true) => "<span class=\"ok\">consistent</span>",
        Some(false) => "<span class=\"bad\">NOT consistent</span>",
        None => "<span class=\"muted\">not checked</span>",
    };
    let _ = writeln!(
        o,
        "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td class=\"when\">{}</td><td>{elected}<div class=\"why\">{}</div>{deleted}</td><td>{}</td><td class=\"when\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{verdict}</td></tr>",
        esc(&v.vm),
        v.priority.map_or("-".into(), |p| p.to_string()),
        v.point_cut_at.map_or("-".into(), clock),
        esc(&v.why),
        esc(v.host.as_deref().unwrap_or("-")),
        v.powered_on_at.map_or("-".into(), clock),
        v.writes_lost.map_or("-".into(), |n| n.to_string()),
        v.achieved_rpo_minutes.map_or("-".into(), span),
        v.rto_minutes.map_or("-".into(), span),
    );
}

fn histories(o: &mut String, r: &Report) {
    if r.vms.is_empty() {
        return;
    }
    o.push_str("<h2>VM histories across hops</h2>\n<p class=\"sub\">Writes an unplanned failover lost stay lost: the consistency check judges each VM's whole history, every site's journal in hop order.</p>\n");
    o.push_str("<table>\n<tr><th>VM</th><th>Prio</th><th>Sites it left, in order</th><th>Writes lost in all</th></tr>\n");
    for v in &r.vms {
        let _ = writeln!(
            o,
            "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&v.vm),
            v.priority.map_or("-".into(), |p| p.to_string()),
            esc(&v.left_sites.join(" → ")),
            v.writes_lost
        );
    }
    o.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<pg "a" & 'b'>"#),
            "&lt;pg &quot;a&quot; &amp; &#39;b&#39;&gt;"
        );
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(12.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(ticks(0.0), [0.0]);
        let t = ticks(0.37);
        assert!(t.len() >= 3 && *t.last().unwrap() <= 0.37 + 1e-9, "{t:?}");
    }
}
