//! The soak's result: JSON, a Markdown section for docs/performance.md with the verdicts, and a
//! plot of memory and p99 over time.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use crate::report::verdict;

use super::Soak;
use super::sampling::Table;

const BEGIN: &str = "<!-- soak:begin -->";
const END: &str = "<!-- soak:end -->";
/// Tables shown in the document, largest first (the JSON has them all).
const TABLES_SHOWN: usize = 8;

/// Writes soak.json and soak.svg into `out` and, unless `docs` is `None`, the soak section of
/// the document; returns the Markdown.
pub fn write(soak: &Soak, out: &Path, docs: Option<&Path>) -> anyhow::Result<String> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("soak.json"), serde_json::to_string_pretty(soak)?)?;
    plot(soak, &out.join("soak.svg"))?;
    let md = markdown(soak)?;
    if let Some(docs) = docs {
        crate::report::replace_section(docs, BEGIN, END, &md)?;
    }
    Ok(md)
}

fn markdown(s: &Soak) -> anyhow::Result<String> {
    let v = &s.verdict;
    // `1h`, `10m`, `2m 30s`: the windows scale with the run.
    let span = |secs: f64| humantime::format_duration(Duration::from_secs(secs.round() as u64));
    let d = s.duration_secs as f64;
    let mut md = String::new();
    writeln!(
        md,
        "{} on {} cores ({}), {} build; two instances on one PostgreSQL database; \
         {:.1} visits/s offered, {:.0} % of the {:.1}/s the mix reached closed loop; {} visits, \
         {} requests. Settings: {}.\n",
        span(d),
        s.cores,
        s.cpu,
        s.build,
        s.offered_visits_per_sec,
        100.0 * s.offered_visits_per_sec / s.capacity_visits_per_sec.max(f64::EPSILON),
        s.capacity_visits_per_sec,
        s.visits,
        s.requests,
        s.settings
            .iter()
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(md, "| measure | figure | goal | |\n|---|---|---|---|")?;
    let reasons = if s.failure_reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.failure_reasons.join("; "))
    };
    writeln!(
        md,
        "| failed visits | {}{reasons} | 0 | {} |",
        s.failures,
        verdict(s.no_failures())
    )?;
    writeln!(
        md,
        "| RSS at the end against RSS after {}, each instance | {:.0} → {:.0} MiB, {:.0} → {:.0} MiB ({:+.1} % at most) | ≤ +10 % | {} |",
        span(d / 12.0),
        v.rss_early_mib[0],
        v.rss_end_mib[0],
        v.rss_early_mib[1],
        v.rss_end_mib[1],
        100.0 * v.rss_drift(),
        verdict(v.rss_drift() <= 0.10)
    )?;
    writeln!(
        md,
        "| p99 of every request, last {0} ÷ first {0} | {1:.1} ms ÷ {2:.1} ms = {3:.2} | ≤ 1.5 | {4} |",
        span(d / 6.0),
        v.p99_last_ms,
        v.p99_first_ms,
        v.p99_ratio(),
        verdict(v.p99_ratio() <= 1.5)
    )?;
    let growing: Vec<String> = s
        .still_growing()
        .iter()
        .map(|t| format!("`{}`", t.name))
        .collect();
    writeln!(
        md,
        "| growth explained by retention: rows kept past it at the end (sessions, audit events); tables whose rows still grew after {} | {}, {}; {} | none | {} |",
        span(d * 2.0 / 3.0),
        v.overdue_sessions,
        v.overdue_audit_events,
        if growing.is_empty() {
            "none".to_owned()
        } else {
            growing.join(", ")
        },
        verdict(s.growth_explained_by_retention())
    )?;
    writeln!(
        md,
        "| the schema's size after {} → at the end | {:.1} → {:.1} MiB ({:+.1} %) | stated | |",
        span(d * 2.0 / 3.0),
        v.steady_database_mib,
        v.end_database_mib,
        100.0 * v.size_growth()
    )?;
    writeln!(
        md,
        "\nTables after {} and at the end (rows counted, size with indexes); the plot \
         `bench/results/soak.svg` shows memory and p99 over time:\n",
        span(d * 2.0 / 3.0)
    )?;
    writeln!(md, "| table | rows | MiB |\n|---|---|---|")?;
    for end in s.tables_end.iter().take(TABLES_SHOWN) {
        let steady = s.tables_steady.iter().find(|t| t.name == end.name);
        let (rows, mib) = steady.map_or((0, 0.0), |t: &Table| (t.rows, t.mib));
        writeln!(
            md,
            "| `{}` | {rows} → {} | {mib:.1} → {:.1} |",
            end.name, end.rows, end.mib
        )?;
    }
    Ok(md)
}

/// Two panels over time: each instance's RSS, and p99 (every request, and reads alone).
fn plot(s: &Soak, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    let max_x = (s.duration_secs as f64 / 60.0).max(1.0 / 60.0);
    let minutes = |secs: f64| secs / 60.0;

    let max_rss = s.samples.iter().flat_map(|p| p.rss_mib).fold(1.0, f64::max);
    let mut rss = ChartBuilder::on(&top)
        .caption("Soak: resident memory of each instance", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..max_rss * 1.15)?;
    rss.configure_mesh()
        .x_desc("minutes")
        .y_desc("RSS (MiB)")
        .draw()?;
    for (instance, color) in [(0, BLUE), (1, GREEN)] {
        rss.draw_series(LineSeries::new(
            s.samples
                .iter()
                .map(|p| (minutes(p.at_secs), p.rss_mib[instance])),
            color,
        ))?
        .label(format!("instance {}", ["A", "B"][instance]))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    rss.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    let max_p99 = s.samples.iter().map(|p| p.p99_ms).fold(1.0, f64::max);
    let mut p99 = ChartBuilder::on(&bottom)
        .caption("Soak: p99 latency per interval", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..max_x, 0.0..max_p99 * 1.15)?;
    p99.configure_mesh()
        .x_desc("minutes")
        .y_desc("p99 (ms)")
        .draw()?;
    for (label, color, value) in [
        (
            "every request",
            RED,
            (|p: &super::Sample| p.p99_ms) as fn(&super::Sample) -> f64,
        ),
        ("customers/me", BLUE, |p: &super::Sample| p.reads_p99_ms),
    ] {
        p99.draw_series(LineSeries::new(
            s.samples.iter().map(|p| (minutes(p.at_secs), value(p))),
            color,
        ))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    p99.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}
