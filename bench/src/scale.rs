//! Scale: 1,000 customers and ten million, each with a session, on each backend. What an import
//! of that many costs (time, memory), what the database weighs per customer, whether reads and
//! logins slow down as the tables grow, and whether a reader waits while housekeeping purges ten
//! million ended sessions.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::open_loop::{self, Call, Paced};
use crate::report::verdict;
use crate::target::{Database, Import, Launch, PASSWORD, Server};
use crate::wrk::Throughput;

/// The customers of the small run, whose figures the large one is compared with.
const SMALL: u64 = 1_000;
/// Paced rates for the latency comparison: a busy day's reads, and logins well below the hash
/// bound, so that p50 measures the work of one request rather than a queue.
const READS_PER_SEC: f64 = 200.0;
const LOGINS_PER_SEC: f64 = 10.0;
/// Housekeeping's rows per statement (`FINHUB_HOUSEKEEPING_BATCH`, its default).
const PURGE_BATCH: u32 = 500;
/// Customers whose reads and logins are timed, spread over the whole range: each request finds
/// its rows where the tables keep them, not in the pages of one customer read over and over.
const SPREAD: u64 = 20;
/// How many measurements' time the purge is watched for: long enough for thousands of batches.
const PURGE_WATCH: u32 = 6;

/// One backend at one size.
#[derive(Debug, Serialize)]
pub struct Scale {
    pub backend: &'static str,
    pub customers: u64,
    /// Sessions seeded beside them, one each, ended an hour before the run.
    pub sessions: u64,
    pub import: Import,
    /// The database's size (tables and indexes; SQLite: file and WAL) over its customers, each
    /// with one session and the audit event of its import.
    pub bytes_per_customer: f64,
    pub customers_me: Throughput,
    pub logins: Throughput,
    /// `customers/me` and logins at a steady pace, for their p50.
    pub paced_me: Paced,
    pub paced_logins: Paced,
    pub peak_rss_mib: f64,
    /// Reads while housekeeping purges the seeded sessions (the large run only).
    pub purge: Option<Purge>,
}

/// Every run, and what failed.
#[derive(Debug, Serialize)]
pub struct Runs {
    pub runs: Vec<Scale>,
    /// A run that failed is named here and the others still run.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Purge {
    /// Ended sessions left when the reads began, and how many went while they ran.
    pub sessions_before: u64,
    pub purged: u64,
    pub secs: f64,
    /// A batch's average time, from the purge's rate while the reads ran (an upper bound:
    /// housekeeping also waits for its next tick between runs).
    pub batch_ms: f64,
    /// Paced reads while it ran.
    pub reads: Paced,
}

impl Purge {
    pub fn per_sec(&self) -> f64 {
        self.purged as f64 / self.secs.max(f64::EPSILON)
    }

    /// A reader waited no longer than a batch, and there was a purge to wait for.
    pub fn reader_not_held(&self, alone_p99_ms: f64) -> bool {
        self.purged > 0
            && self.reads.errors == 0
            && self.reads.p99_ms <= alone_p99_ms + self.batch_ms
    }
}

/// The small and the large run on SQLite and, when it answers, PostgreSQL.
pub async fn run(
    binary: &Path,
    postgres: &str,
    large: u64,
    work: &Path,
    d: Duration,
) -> anyhow::Result<Runs> {
    let mut all = Runs {
        runs: Vec::new(),
        failed: Vec::new(),
    };
    for customers in [SMALL, large] {
        let file = work.join(format!("scale-{customers}.jsonl"));
        eprintln!("scale: writing {customers} customers…");
        crate::target::write_customers(&file, customers, 0)?;
        let mut databases = vec![Database::Sqlite(work.join(format!("scale-{customers}.db")))];
        match Database::postgres(postgres).await {
            Ok(pg) => databases.push(pg),
            Err(e) => eprintln!("scale: PostgreSQL skipped: {e:#}"),
        }
        for database in databases {
            let run = one(
                binary,
                &database,
                &file,
                customers,
                work,
                d,
                customers == large,
            )
            .await;
            database.drop_all().await?;
            match run {
                Ok(run) => all.runs.push(run),
                Err(e) => {
                    eprintln!("scale: {customers} on {} failed: {e:#}", database.name());
                    all.failed.push(format!(
                        "{customers} customers on {}: {e:#}",
                        database.name()
                    ));
                }
            }
        }
        std::fs::remove_file(&file)?;
    }
    Ok(all)
}

/// Logs in `SPREAD` customers spread over `customers`, for reads as each of them in turn.
async fn spread_reads(server: &Server, customers: u64) -> anyhow::Result<Call> {
    let client = reqwest::Client::new();
    let mut bearers = Vec::new();
    for k in 0..SPREAD {
        let username = format!("bench-{}@example.com", k * customers / SPREAD);
        bearers.push(server.login(&client, &username).await?);
    }
    Ok(Call::GetEach {
        url: server.url("/api/v1/customers/me"),
        bearers,
    })
}

/// Logins of `SPREAD` other customers spread over `customers`, in turn.
fn spread_logins(server: &Server, customers: u64) -> Call {
    let bodies = (0..SPREAD)
        .map(|k| {
            let username = format!("bench-{}@example.com", k * customers / SPREAD + 1);
            json!({"username": username, "password": PASSWORD})
        })
        .collect();
    Call::PostJsonEach {
        url: server.url("/api/v1/auth/token"),
        bodies,
    }
}

async fn one(
    binary: &Path,
    database: &Database,
    file: &Path,
    customers: u64,
    work: &Path,
    d: Duration,
    purge: bool,
) -> anyhow::Result<Scale> {
    eprintln!("scale: {customers} customers on {}…", database.name());
    // The seeded sessions ended an hour ago: kept while measuring, purged at the end.
    let keep = [("FINHUB_SESSION_RETENTION", "30d".to_owned())];
    let launch = Launch {
        binary,
        database,
        work_dir: work,
        default_limits: false,
        settings: &keep,
    };
    let import = launch.import_watched(file).await?;
    eprintln!("scale: imported in {:.0} s; seeding sessions…", import.secs);
    database.add_ended_sessions().await?;
    let bytes_per_customer = database.size_bytes().await? as f64 / customers as f64;

    let server = launch.start().await?;
    let read = crate::scenarios::reads(&server, d, work, None).await?;
    let me = spread_reads(&server, customers).await?;
    let paced_me = open_loop::paced(&me, READS_PER_SEC, d).await?;
    let paced_logins =
        open_loop::paced(&spread_logins(&server, customers), LOGINS_PER_SEC, d).await?;
    let peak_rss_mib = server.peak_rss_mib()?;
    server.stop().await?;

    let purge = if purge {
        Some(purging(&launch, database, customers, d * PURGE_WATCH).await?)
    } else {
        None
    };
    Ok(Scale {
        backend: database.name(),
        customers,
        sessions: customers,
        import,
        bytes_per_customer,
        customers_me: read.customers_me,
        logins: read.logins,
        paced_me,
        paced_logins,
        peak_rss_mib,
        purge,
    })
}

/// Restarts the service with retention that no longer keeps the seeded sessions and
/// housekeeping every second, and paces reads for `d` while it purges them.
async fn purging(
    launch: &Launch<'_>,
    database: &Database,
    customers: u64,
    d: Duration,
) -> anyhow::Result<Purge> {
    let purge = [
        ("FINHUB_SESSION_RETENTION", "1m".to_owned()),
        ("FINHUB_HOUSEKEEPING_INTERVAL", "1s".to_owned()),
        ("FINHUB_HOUSEKEEPING_BATCH", PURGE_BATCH.to_string()),
    ];
    let launch = Launch {
        settings: &purge,
        ..*launch
    };
    let server = launch.start().await?;
    let me = spread_reads(&server, customers).await?;
    let before = database.ended_sessions().await?;
    let started = Instant::now();
    let reads = open_loop::paced(&me, READS_PER_SEC, d).await?;
    let secs = started.elapsed().as_secs_f64();
    let after = database.ended_sessions().await?;
    server.stop().await?;
    let purged = u64::try_from(before.saturating_sub(after)).unwrap_or(0);
    let per_sec = purged as f64 / secs;
    Ok(Purge {
        sessions_before: u64::try_from(before).unwrap_or(0),
        purged,
        secs,
        batch_ms: if per_sec > 0.0 {
            1000.0 * f64::from(PURGE_BATCH) / per_sec
        } else {
            f64::INFINITY
        },
        reads,
    })
}

/// The scale table and its goals, for docs/performance.md.
pub fn markdown(all: &Runs) -> anyhow::Result<String> {
    let runs = &all.runs;
    let mut md = String::new();
    for failed in &all.failed {
        writeln!(md, "**Failed:** {failed}\n")?;
    }
    writeln!(
        md,
        "| backend | customers (and sessions) | import, its peak RSS | size per customer | `customers/me` rps, p50 paced | logins/s, p50 paced | peak RSS |\n|---|---|---|---|---|---|---|"
    )?;
    for s in runs {
        writeln!(
            md,
            "| {} | {} | {:.1} s, {:.0} MiB | {:.0} B | {:.0}, {:.2} ms | {:.1}, {:.1} ms | {:.0} MiB |",
            s.backend,
            s.customers,
            s.import.secs,
            s.import.peak_rss_mib,
            s.bytes_per_customer,
            s.customers_me.requests_per_sec,
            s.paced_me.p50_ms,
            s.logins.requests_per_sec,
            s.paced_logins.p50_ms,
            s.peak_rss_mib
        )?;
    }
    writeln!(md, "\n| scale goal | figure | goal | |\n|---|---|---|---|")?;
    for backend in ["SQLite", "PostgreSQL"] {
        let of = |small: bool| {
            runs.iter()
                .filter(|s| s.backend == backend)
                .find(|s| (s.customers == SMALL) == small)
        };
        let (Some(small), Some(large)) = (of(true), of(false)) else {
            continue;
        };
        let n = large.customers;
        let limit = if backend == "SQLite" { 600.0 } else { 900.0 };
        writeln!(
            md,
            "| {backend}: import of {n} pre-hashed customers; the importer's peak RSS against a tenth of the way | {:.0} s; {:.0} MiB against {} | < {limit:.0} s, flat (≤ 1.25×) | {} |",
            large.import.secs,
            large.import.peak_rss_mib,
            large
                .import
                .rss_after_a_tenth_mib
                .map_or_else(|| "not sampled".to_owned(), |mib| format!("{mib:.0} MiB")),
            verdict(large.import.secs < limit && large.import.flat())
        )?;
        for (what, at_small, at_large) in [
            (
                "`customers/me`",
                small.paced_me.p50_ms,
                large.paced_me.p50_ms,
            ),
            (
                "logins",
                small.paced_logins.p50_ms,
                large.paced_logins.p50_ms,
            ),
        ] {
            let ratio = at_large / at_small.max(f64::EPSILON);
            writeln!(
                md,
                "| {backend}: p50 of {what} at {n} ÷ at {SMALL} | {ratio:.2} ({at_large:.2} ms ÷ {at_small:.2} ms) | ≤ 1.5 | {} |",
                verdict(ratio <= 1.5)
            )?;
        }
        writeln!(
            md,
            "| {backend}: database size per customer at {n} (tables and indexes, one session and one audit event each) | {:.0} bytes | stated | |",
            large.bytes_per_customer
        )?;
        if let Some(p) = &large.purge {
            writeln!(
                md,
                "| {backend}: p99 of `customers/me` ({READS_PER_SEC:.0}/s) while housekeeping purges {} ended sessions | {:.2} ms ({} purged in {:.0} s, {:.0}/s: {:.1} ms a batch of {PURGE_BATCH}) | ≤ {:.1} ms: p99 alone ({:.2} ms) plus one batch | {} |",
                p.sessions_before,
                p.reads.p99_ms,
                p.purged,
                p.secs,
                p.per_sec(),
                p.batch_ms,
                large.paced_me.p99_ms + p.batch_ms,
                large.paced_me.p99_ms,
                verdict(p.reader_not_held(large.paced_me.p99_ms))
            )?;
        }
    }
    Ok(md)
}
