//! What the soak records as it runs: each request's latency, each failed visit, and every
//! interval the instances' memory and the database's size.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::target::Database;

/// Distinct failures kept to say what went wrong.
const FAILURES_KEPT: usize = 10;

/// One sampling interval (a minute in an hour's soak).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the soak started, at the end of the interval.
    pub at_secs: f64,
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

/// A table of the service's schema: rows (PostgreSQL's live-tuple count) and size with its
/// indexes.
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

    /// Ends the current interval: its latencies and failures, the instances' memory and the
    /// database's size now.
    pub async fn sample(
        &self,
        started: Instant,
        pids: [u32; 2],
        db: &mut Probe,
    ) -> anyhow::Result<Sample> {
        let interval = {
            let mut current = self
                .interval
                .lock()
                .map_err(|_| anyhow::anyhow!("latency histograms poisoned"))?;
            std::mem::replace(&mut *current, Interval::new()?)
        };
        let failed_visits = self.failed_visits.swap(0, Ordering::Relaxed);
        let rss_mib = [
            crate::target::memory_mib(pids[0], "VmRSS:")?,
            crate::target::memory_mib(pids[1], "VmRSS:")?,
        ];
        let (database_mib, sessions, audit_events) = db.totals().await?;
        let ms = |h: &Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1000.0;
        Ok(Sample {
            at_secs: started.elapsed().as_secs_f64(),
            requests: interval.all.len(),
            failed_visits,
            p50_ms: ms(&interval.all, 0.50),
            p99_ms: ms(&interval.all, 0.99),
            reads_p99_ms: ms(&interval.reads, 0.99),
            rss_mib,
            database_mib,
            sessions,
            audit_events,
            latencies: interval.all,
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

    /// Every table of the schema, largest first.
    pub async fn tables(&mut self) -> anyhow::Result<Vec<Table>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT relname::text, n_live_tup, pg_total_relation_size(relid)::float8 / 1048576 \
             FROM pg_stat_user_tables WHERE schemaname = current_schema() \
             ORDER BY 3 DESC, 1",
        )
        .fetch_all(&mut self.0)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, rows, mib)| Table { name, rows, mib })
            .collect())
    }
}
