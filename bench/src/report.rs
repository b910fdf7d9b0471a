//! The results as JSON, as a Markdown table with the goals beside the figures, and as plots of
//! latency against offered load.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;

use crate::open_loop::Paced;
use crate::scenarios::Results;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// Writes results.json, results.md and the plots into `out`; returns the Markdown.
pub fn write(results: &Results, out: &Path) -> anyhow::Result<String> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    let table = markdown(results)?;
    std::fs::write(out.join("results.md"), &table)?;
    plot(
        &out.join("logins-latency.svg"),
        "Logins: latency against offered load",
        &results.offered_load.logins,
    )?;
    plot(
        &out.join("customers-me-latency.svg"),
        "customers/me: latency against offered load",
        &results.offered_load.customers_me,
    )?;
    if let Some(pg) = &results.postgres {
        plot(
            &out.join("postgres-logins-latency.svg"),
            "PostgreSQL logins: latency against offered load",
            &pg.offered_load.logins,
        )?;
        plot(
            &out.join("postgres-customers-me-latency.svg"),
            "PostgreSQL customers/me: latency against offered load",
            &pg.offered_load.customers_me,
        )?;
    }
    Ok(table)
}

/// The first point of a curve (offered load rising) whose p99 exceeds ten times the p99 of its
/// first point, the run at 25 % of the closed-loop maximum.
fn knee_of(curve: &[Paced]) -> Option<&Paced> {
    let base = curve.first()?.p99_ms;
    curve.iter().skip(1).find(|p| p.p99_ms > 10.0 * base)
}

/// How a goal's row reads in every table of the bench.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn markdown(r: &Results) -> anyhow::Result<String> {
    let s = &r.sqlite;
    let reads = &s.reads;
    let mut md = String::new();
    writeln!(
        md,
        "Measured on {} cores ({}), {} build, {} s per measurement, rate limits off unless \
         named; load from wrk (closed loop) and finhub-bench (open loop) on the same machine.\n",
        r.machine.cores, r.machine.cpu, r.machine.build, r.seconds_per_measurement
    )?;
    writeln!(md, "| measure | figure | goal | |\n|---|---|---|---|")?;
    let mut row = |measure: &str, figure: String, goal: &str, ok: Option<bool>| {
        let _ = writeln!(
            md,
            "| {measure} | {figure} | {goal} | {} |",
            ok.map_or("", verdict)
        );
    };
    row(
        "argon2id hashes/s on all cores, outside the service (the hash bound; the mean of its turns below)",
        format!("{:.1}/s", r.hash_bound_per_sec),
        "",
        None,
    );
    row(
        "logins/s (SQLite) ÷ hash bound",
        format!(
            "{:.2} ({:.1}/s vs {:.1}/s; p99 {:.0} ms)",
            reads.logins_over_hash_bound,
            reads.logins.requests_per_sec,
            reads.hash_bound_per_sec,
            reads.logins.p99_ms
        ),
        "≥ 0.90",
        Some(reads.logins_over_hash_bound >= 0.90),
    );
    row(
        "`customers/me` rps ÷ `/healthz` rps (32 connections, SQLite)",
        format!(
            "{:.2} ({:.0} vs {:.0}; p50 {:.2} ms, p99 {:.2} ms)",
            reads.me_over_healthz,
            reads.customers_me.requests_per_sec,
            reads.healthz.requests_per_sec,
            reads.customers_me.p50_ms,
            reads.customers_me.p99_ms
        ),
        "≥ 0.50",
        Some(reads.me_over_healthz >= 0.50),
    );
    row(
        "p99 of `customers/me` for a paced client (50/s) while logins run at saturation",
        format!(
            "{:.2} ms (alone {:.2} ms)",
            s.paced_under_login_flood.p99_ms, s.paced_alone.p99_ms
        ),
        "≤ 20 ms",
        Some(s.paced_under_login_flood.p99_ms <= 20.0),
    );
    row(
        "full flows/s: login → details → 2FA initiate → verify → logout (8 at once)",
        format!(
            "{:.1}/s, {} errors",
            s.flows.flows.flows_per_sec, s.flows.flows.errors
        ),
        "no errors",
        Some(s.flows.flows.errors == 0 && s.flows.flows.completed > 0),
    );
    row(
        &format!(
            "passkey logins/s (options, assertion, session; {} at once over {} customers, SQLite) \
             ÷ `/healthz` rps",
            crate::scenarios::PASSKEY_CLIENTS,
            crate::scenarios::PASSKEY_CUSTOMERS.end - crate::scenarios::PASSKEY_CUSTOMERS.start
        ),
        format!(
            "{:.2} ({:.0}/s vs {:.0}/s), {} errors",
            s.passkey_logins.logins_per_sec / reads.healthz.requests_per_sec,
            s.passkey_logins.logins_per_sec,
            reads.healthz.requests_per_sec,
            s.passkey_logins.errors
        ),
        "thousands/s, no errors",
        Some(s.passkey_logins.logins_per_sec >= 1_000.0 && s.passkey_logins.errors == 0),
    );
    row(
        "peak RSS (VmHWM) of the server after those runs",
        format!("{:.0} MiB", s.peak_rss_mib),
        "≤ 100 MiB",
        Some(s.peak_rss_mib <= 100.0),
    );
    row(
        "one client IP with the default limits: accepted logins/s, reads/s",
        format!(
            "{:.1}/s, {:.1}/s",
            r.default_limits.logins_accepted_per_sec, r.default_limits.reads_accepted_per_sec
        ),
        "60/min, 600/min",
        None,
    );
    row(
        "full flows/s (SQLite) ÷ hash bound (each flow hashes one password)",
        format!(
            "{:.2} ({:.1}/s vs {:.1}/s)",
            s.flows.over_hash_bound, s.flows.flows.flows_per_sec, s.flows.hash_bound_per_sec
        ),
        "≥ 0.80",
        Some(s.flows.over_hash_bound >= 0.80),
    );
    if let Some(pg) = &r.postgres {
        let reads = &pg.reads;
        row(
            &format!(
                "PostgreSQL's own rate: `pgbench -S -M prepared`, {} connections, same database",
                pg.pgbench_connections
            ),
            format!("{:.0} transactions/s", pg.pgbench_select_per_sec),
            "",
            None,
        );
        row(
            "PostgreSQL: `customers/me` rps ÷ pgbench select-only rate",
            format!(
                "{:.2} ({:.0} vs {:.0}; ÷ `/healthz` {:.2}; p50 {:.2} ms, p99 {:.2} ms)",
                pg.me_over_pgbench,
                reads.customers_me.requests_per_sec,
                pg.pgbench_select_per_sec,
                reads.me_over_healthz,
                reads.customers_me.p50_ms,
                reads.customers_me.p99_ms
            ),
            "≥ 0.50",
            Some(pg.me_over_pgbench >= 0.50),
        );
        row(
            "PostgreSQL: logins/s ÷ hash bound",
            format!(
                "{:.2} ({:.1}/s vs {:.1}/s; p99 {:.0} ms)",
                reads.logins_over_hash_bound,
                reads.logins.requests_per_sec,
                reads.hash_bound_per_sec,
                reads.logins.p99_ms
            ),
            "≥ 0.90",
            Some(reads.logins_over_hash_bound >= 0.90),
        );
        row(
            "PostgreSQL: p99 of `customers/me` for a paced client (50/s) while logins run at saturation",
            format!(
                "{:.2} ms (alone {:.2} ms)",
                pg.paced_under_login_flood.p99_ms, pg.paced_alone.p99_ms
            ),
            "≤ 20 ms",
            Some(pg.paced_under_login_flood.p99_ms <= 20.0),
        );
        let flows = &pg.flows;
        row(
            "PostgreSQL: full flows/s ÷ hash bound",
            format!(
                "{:.2} ({:.1}/s vs {:.1}/s, {} errors)",
                flows.over_hash_bound,
                flows.flows.flows_per_sec,
                flows.hash_bound_per_sec,
                flows.flows.errors
            ),
            "≥ 0.80, no errors",
            Some(flows.over_hash_bound >= 0.80 && flows.flows.errors == 0),
        );
    }
    let mut knee = |store: &str, what: &str, curve: &[Paced]| {
        row(
            &format!(
                "{store}: knee of {what} (offered load where p99 first exceeds 10× its p99 at 25 %)"
            ),
            knee_of(curve).map_or_else(
                || "beyond the highest load offered".to_owned(),
                |p| format!("{:.0}/s (p99 {:.1} ms)", p.offered_per_sec, p.p99_ms),
            ),
            "stated",
            None,
        );
    };
    knee("SQLite", "logins", &r.offered_load.logins);
    knee("SQLite", "`customers/me`", &r.offered_load.customers_me);
    if let Some(pg) = &r.postgres {
        knee("PostgreSQL", "logins", &pg.offered_load.logins);
        knee(
            "PostgreSQL",
            "`customers/me`",
            &pg.offered_load.customers_me,
        );
    }
    writeln!(
        md,
        "\nWhere both cores' time went during the ratios to the hash bound (`/proc`; each ratio \
         is about the hashing share times the hash's speed against the bound's), and each \
         part's processor time per login or flow:\n"
    )?;
    writeln!(md, "- SQLite logins: {}", s.reads.logins_cpu)?;
    writeln!(md, "- SQLite flows: {}", s.flows.cpu)?;
    if let Some(pg) = &r.postgres {
        writeln!(md, "- PostgreSQL logins: {}", pg.reads.logins_cpu)?;
        writeln!(md, "- PostgreSQL flows: {}", pg.flows.cpu)?;
    }
    Ok(md)
}

/// p50 and p99 against the offered rate.
fn plot(path: &Path, title: &str, points: &[Paced]) -> anyhow::Result<()> {
    let max_x = points.iter().map(|p| p.offered_per_sec).fold(1.0, f64::max);
    let max_y = points.iter().map(|p| p.p99_ms).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("offered load (requests/s)")
        .y_desc("latency (ms)")
        .draw()?;
    for (label, color, value) in [
        ("p50", BLUE, (|p: &Paced| p.p50_ms) as fn(&Paced) -> f64),
        ("p99", RED, |p: &Paced| p.p99_ms),
    ] {
        let series: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.offered_per_sec, value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart.draw_series(
            series
                .into_iter()
                .map(|xy| Circle::new(xy, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Replaces the figures section of the performance document.
pub fn update_docs(docs: &Path, table: &str) -> anyhow::Result<()> {
    replace_section(docs, BEGIN, END, table)
}

/// Replaces what lies between the markers `begin` and `end` of a document.
pub fn replace_section(docs: &Path, begin: &str, end: &str, with: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(docs).with_context(|| format!("reading {}", docs.display()))?;
    let (Some(from), Some(to)) = (text.find(begin), text.find(end)) else {
        anyhow::bail!("{} has no {begin} … {end} section", docs.display());
    };
    let updated = format!("{}{begin}\n{with}\n{}", &text[..from], &text[to..]);
    std::fs::write(docs, updated)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::knee_of;
    use crate::open_loop::Paced;

    fn at(offered_per_sec: f64, p99_ms: f64) -> Paced {
        Paced {
            offered_per_sec,
            p99_ms,
            ..Paced::default()
        }
    }

    #[test]
    fn the_knee_is_the_first_load_past_ten_times_the_quiet_p99() {
        let curve = [
            at(25.0, 2.0),
            at(50.0, 3.0),
            at(75.0, 21.0),
            at(90.0, 500.0),
        ];
        assert_eq!(knee_of(&curve).map(|p| p.offered_per_sec), Some(75.0));
        assert!(knee_of(&[at(25.0, 2.0), at(50.0, 20.0)]).is_none());
        assert!(knee_of(&[]).is_none());
    }
}
