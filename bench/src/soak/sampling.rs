//! What the soak records as it runs: each request's latency, each failed visit, and every
//! interval the instances' memory and the database's size.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::target::Database;

/// Distinct failures kept to say what went wrong.
const FAILURES_KEPT: usize = 10;

/// One sampling interval (a minute in an hour's soak).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the soak started at the end of the interval (as scheduled), and the
    /// interval's length.
    pub at_secs: f64,
    pub interval_secs: f64,
    pub requests: u64,
    pub failed_visits: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// p99 of `customers/me` alone.
    pub reads_p99_ms: f64,
    /// Resident memory (VmRSS) of each instance.
    pub rss_mib: [f64; 2],
    pub database_mib: f64,
    pub sessions: i64,
    pub audit_events: i64,
    /// Every request's latency in the interval, to merge into windows.
    #[serde(skip)]
    pub latencies: Histogram<u64>,
}

/// A table of the service's schema: its rows and its size with its indexes.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub name: String,
    pub rows: i64,
    pub mib: f64,
}

/// Latencies and failures, shared by every visit in flight.
pub struct Recorder {
    interval: Mutex<Interval>,
    failures: Mutex<Vec<String>>,
    failed_visits: AtomicU64,
}

struct Interval {
    all: Histogram<u64>,
    reads: Histogram<u64>,
}

impl Interval {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            all: Histogram::new(3)?,
            reads: Histogram::new(3)?,
        })
    }
}

impl Recorder {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            interval: Mutex::new(Interval::new()?),
            failures: Mutex::new(Vec::new()),
            failed_visits: AtomicU64::new(0),
        })
    }

    /// One answered request.
    pub fn request(&self, latency: Duration, read: bool) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut interval) = self.interval.lock() {
            let _ = interval.all.record(micros);
            if read {
                let _ = interval.reads.record(micros);
            }
        }
    }

    /// A visit that did not go as a customer's would.
    pub fn failed(&self, why: String) {
        self.failed_visits.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut failures) = self.failures.lock()
            && failures.len() < FAILURES_KEPT
            && !failures.contains(&why)
        {
            failures.push(why);
        }
    }

    pub fn failed_visits(&self) -> u64 {
        self.failed_visits.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Ends the interval that ends at `at` (since the soak started) and lasted `interval`: its
    /// latencies and failures, the instances' memory and the database's size now. An instance
    /// that has exited or a database that does not answer is a failure of the soak, sampled as
    /// zero, rather than the end of it.
    pub async fn sample(
        &self,
        at: Duration,
        interval: Duration,
        pids: [u32; 2],
        db: &mut Probe,
    ) -> anyhow::Result<Sample> {
        let interval_figures = {
            let mut current = self
                .interval
                .lock()
                .map_err(|_| anyhow::anyhow!("latency histograms poisoned"))?;
            std::mem::replace(&mut *current, Interval::new()?)
        };
        let rss_mib = pids.map(|pid| {
            crate::target::memory_mib(pid, "VmRSS:").unwrap_or_else(|e| {
                self.failed(format!("instance {pid}: {e:#}"));
                0.0
            })
        });
        let (database_mib, sessions, audit_events) = db.totals().await.unwrap_or_else(|e| {
            self.failed(format!("database size: {e:#}"));
            (0.0, 0, 0)
        });
        let failed_visits = self.failed_visits.swap(0, Ordering::Relaxed);
        let Interval { all, reads } = interval_figures;
        let ms = |h: &Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1000.0;
        Ok(Sample {
            at_secs: at.as_secs_f64(),
            interval_secs: interval.as_secs_f64(),
            requests: all.len(),
            failed_visits,
            p50_ms: ms(&all, 0.50),
            p99_ms: ms(&all, 0.99),
            reads_p99_ms: ms(&reads, 0.99),
            rss_mib,
            database_mib,
            sessions,
            audit_events,
            latencies: all,
        })
    }
}

/// A connection of the bench's own to the service's schema, to measure it.
pub struct Probe(sqlx::PgConnection);

impl Probe {
    pub async fn connect(database: &Database) -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        Ok(Self(sqlx::PgConnection::connect(&database.url()).await?))
    }

    /// The schema's size with indexes (MiB), its sessions and its audit events.
    async fn totals(&mut self) -> anyhow::Result<(f64, i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::float8 / 1048576 \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'), \
                    (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM audit_events)",
        )
        .fetch_one(&mut self.0)
        .await?)
    }

    /// Every table of the schema with its exact row count, largest first.
    pub async fn tables(&mut self) -> anyhow::Result<Vec<Table>> {
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(&mut self.0)
        .await?;
        let mut tables = Vec::with_capacity(names.len());
        for (name,) in names {
            // A name from the catalogue, quoted as an identifier.
            let ident = format!("\"{}\"", name.replace('"', "\"\""));
            let sql = format!(
                "SELECT COUNT(*), pg_total_relation_size('{}')::float8 / 1048576 FROM {ident}",
                ident.replace('\'', "''")
            );
            let (rows, mib): (i64, f64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut self.0)
                .await?;
            tables.push(Table { name, rows, mib });
        }
        tables.sort_by(|a, b| b.mib.total_cmp(&a.mib).then_with(|| a.name.cmp(&b.name)));
        Ok(tables)
    }

    /// Sessions whose absolute lifetime ended before `sessions_before`, and audit events from
    /// before `audit_before` (Unix milliseconds): rows retention should have removed.
    pub async fn overdue(
        &mut self,
        sessions_before: i64,
        audit_before: i64,
    ) -> anyhow::Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE absolute_expires_at < $1), \
                    (SELECT COUNT(*) FROM audit_events WHERE at < $2)",
        )
        .bind(sessions_before)
        .bind(audit_before)
        .fetch_one(&mut self.0)
        .await?)
    }
}
