//! The soak: mixed traffic at 70 % of capacity for an hour on two instances sharing one
//! PostgreSQL database, sampled every minute, to see whether anything drifts: failures, memory,
//! latency or the database's size.
//!
//! Lifetimes and retention are scaled to the run (an hour: sessions end after 10 minutes and are
//! kept 10 more, audit events are kept 30 minutes, housekeeping runs every minute), so that
//! purges start within the first third and the last third measures the steady state a
//! deployment lives in, where what is kept is what retention keeps.

mod report;
mod sampling;
mod visits;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

pub use report::write;
use sampling::{Probe, Recorder, Sample, Table};
use visits::{CUSTOMERS, TWO_FACTOR_CUSTOMERS, Visitor};

use crate::outbox::Outbox;
use crate::target::{Database, Launch, Server};

/// The share of capacity offered.
const LOAD: f64 = 0.7;
/// Visits in flight at most; past it the schedule is behind, and the visit counts as failed.
const MAX_IN_FLIGHT: usize = 1024;
/// Workers of the closed-loop run that measures capacity.
const CAPACITY_WORKERS: u64 = 32;

/// What a soak measured.
#[derive(Debug, Serialize)]
pub struct Soak {
    pub cpu: String,
    pub cores: usize,
    pub build: String,
    pub duration_secs: u64,
    /// Settings the two instances ran with beyond the bench's own.
    pub settings: Vec<(String, String)>,
    /// Visits per second the closed-loop run completed (the capacity), and what was offered.
    pub capacity_visits_per_sec: f64,
    pub offered_visits_per_sec: f64,
    pub visits: u64,
    pub requests: u64,
    pub failed_visits: u64,
    /// The first distinct failures, to say what went wrong.
    pub failures: Vec<String>,
    pub samples: Vec<Sample>,
    pub verdict: Verdict,
    /// Each table's rows and size when memory is first compared, and at the end.
    pub tables_early: Vec<Table>,
    pub tables_end: Vec<Table>,
}

/// The figures the four conditions compare.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// RSS of each instance after the first twelfth of the run (five minutes of an hour), and at
    /// the end.
    pub rss_early_mib: [f64; 2],
    pub rss_end_mib: [f64; 2],
    /// p99 of every request in the first and in the last sixth (ten minutes of an hour).
    pub p99_first_ms: f64,
    pub p99_last_ms: f64,
    /// Size and rows once every retention window has passed (two thirds in), and at the end.
    pub steady_database_mib: f64,
    pub end_database_mib: f64,
    pub steady_sessions: i64,
    pub end_sessions: i64,
    pub steady_audit_events: i64,
    pub end_audit_events: i64,
}

impl Verdict {
    /// The larger of the two instances' growth, as a fraction.
    pub fn rss_drift(&self) -> f64 {
        (0..2)
            .map(|i| self.rss_end_mib[i] / self.rss_early_mib[i].max(f64::EPSILON) - 1.0)
            .fold(f64::MIN, f64::max)
    }

    pub fn p99_ratio(&self) -> f64 {
        self.p99_last_ms / self.p99_first_ms.max(f64::EPSILON)
    }

    /// Once every retention window has passed, rows and size stay where retention holds them
    /// (within 10 %): what grows after that is a leak, not retention.
    pub fn database_flat(&self) -> bool {
        let within = |end: f64, steady: f64| end <= steady * 1.10;
        within(self.end_database_mib, self.steady_database_mib)
            && within(self.end_sessions as f64, self.steady_sessions as f64)
            && within(
                self.end_audit_events as f64,
                self.steady_audit_events as f64,
            )
    }
}

impl Soak {
    pub fn no_failures(&self) -> bool {
        self.failed_visits == 0 && self.visits > 0
    }
}

/// Lifetimes and retention for a soak of `d`, in whole seconds (an hour: as the module says).
fn settings(d: Duration) -> Vec<(&'static str, String)> {
    let part = |n: u64| format!("{}s", (d.as_secs() / n).max(2));
    vec![
        ("FINHUB_SESSION_TTL", part(12)),
        ("FINHUB_SESSION_ABSOLUTE_TTL", part(6)),
        ("FINHUB_SESSION_RETENTION", part(6)),
        ("FINHUB_AUDIT_RETENTION", part(2)),
        ("FINHUB_HOUSEKEEPING_INTERVAL", part(60)),
        // The soak's customers get thousands of codes an hour.
        ("FINHUB_2FA_CUSTOMER_SENDS", "off".to_owned()),
    ]
}

/// Runs the soak for `d` on a fresh schema of `postgres`; `Ok(None)` when PostgreSQL does not
/// answer.
pub async fn run(
    binary: &Path,
    postgres: &str,
    d: Duration,
    work: &Path,
) -> anyhow::Result<Option<Soak>> {
    let database = match Database::postgres(postgres).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("soak skipped: {e:#}");
            return Ok(None);
        }
    };
    let result = soak(binary, &database, d, work).await;
    database.drop_all().await?;
    result.map(Some)
}

async fn soak(
    binary: &Path,
    database: &Database,
    d: Duration,
    work: &Path,
) -> anyhow::Result<Soak> {
    let file = work.join("soak-customers.jsonl");
    crate::target::write_customers(&file, CUSTOMERS, TWO_FACTOR_CUSTOMERS)?;
    let settings = settings(d);
    let mut servers = Vec::new();
    for instance in ["a", "b"] {
        let dir = work.join(instance);
        std::fs::create_dir_all(&dir)?;
        let launch = Launch {
            binary,
            database,
            work_dir: &dir,
            default_limits: false,
            settings: &settings,
        };
        if servers.is_empty() {
            launch.import(&file).await?;
        }
        servers.push(launch.start().await?);
    }
    let _ = std::fs::remove_file(&file);
    let [first, second]: [Server; 2] = servers
        .try_into()
        .map_err(|_| anyhow::anyhow!("two instances"))?;
    let pids = [first.pid()?, second.pid()?];
    let outbox = Arc::new(Outbox::new(vec![
        first.outbox.clone(),
        second.outbox.clone(),
    ]));
    let visitor = |recorder| Visitor {
        client: reqwest::Client::new(),
        bases: [first.base.clone(), second.base.clone()],
        outbox: Arc::clone(&outbox),
        recorder,
    };
    let next_visit = Arc::new(AtomicU64::new(0));

    let probe = (d / 30).clamp(Duration::from_secs(3), Duration::from_secs(60));
    eprintln!("soak: capacity of the mix, closed loop for {probe:?}…");
    let probe_recorder = Arc::new(Recorder::new()?);
    let capacity = capacity(
        Arc::new(visitor(Arc::clone(&probe_recorder))),
        &next_visit,
        probe,
    )
    .await?;
    if probe_recorder.failed_visits() > 0 {
        eprintln!(
            "soak: {} visits failed at capacity: {:?}",
            probe_recorder.failed_visits(),
            probe_recorder.failures()
        );
    }
    let rate = capacity * LOAD;
    eprintln!(
        "soak: {rate:.1} visits/s ({:.0} % of {capacity:.1}/s) for {d:?} on two instances…",
        LOAD * 100.0
    );

    let recorder = Arc::new(Recorder::new()?);
    let visitor = Arc::new(visitor(Arc::clone(&recorder)));
    let interval = (d / 60).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut db = Probe::connect(database).await?;
    let started = Instant::now();
    let sampling = {
        let recorder = Arc::clone(&recorder);
        let database = database.clone();
        tokio::spawn(async move {
            let mut db = Probe::connect(&database).await?;
            let (mut samples, mut tables_early) = (Vec::new(), None);
            let mut k = 1u32;
            while interval * k < d {
                tokio::time::sleep_until((started + interval * k).into()).await;
                samples.push(recorder.sample(started, pids, &mut db).await?);
                if tables_early.is_none() && interval * k >= d / 12 {
                    tables_early = Some(db.tables().await?);
                }
                k += 1;
            }
            anyhow::Ok((samples, tables_early.unwrap_or_default()))
        })
    };
    let visits = paced(Arc::clone(&visitor), &next_visit, rate, d).await?;
    let (mut samples, tables_early) = sampling.await??;
    samples.push(recorder.sample(started, pids, &mut db).await?);
    let tables_end = db.tables().await?;
    first.stop().await?;
    second.stop().await?;

    Ok(Soak {
        cpu: crate::scenarios::cpu_model(),
        cores: std::thread::available_parallelism().map_or(2, usize::from),
        build: crate::scenarios::build_of(binary),
        duration_secs: d.as_secs(),
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        capacity_visits_per_sec: capacity,
        offered_visits_per_sec: rate,
        visits,
        requests: samples.iter().map(|s| s.requests).sum(),
        failed_visits: samples.iter().map(|s| s.failed_visits).sum(),
        failures: recorder.failures(),
        verdict: verdict(&samples, d)?,
        samples,
        tables_early,
        tables_end,
    })
}

/// Visits completed per second by workers that start the next as soon as one ends.
async fn capacity(
    visitor: Arc<Visitor>,
    next_visit: &Arc<AtomicU64>,
    d: Duration,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CAPACITY_WORKERS {
        let (visitor, next_visit) = (Arc::clone(&visitor), Arc::clone(next_visit));
        workers.spawn(async move {
            let mut completed = 0u64;
            while started.elapsed() < d {
                let i = next_visit.fetch_add(1, Ordering::Relaxed);
                match visitor.visit(i, Instant::now()).await {
                    Ok(()) => completed += 1,
                    Err(e) => visitor.recorder.failed(format!("{e:#}")),
                }
            }
            completed
        });
    }
    let mut completed = 0;
    while let Some(done) = workers.join_next().await {
        completed += done?;
    }
    Ok(completed as f64 / started.elapsed().as_secs_f64())
}

/// Starts `rate` visits a second for `d`, whatever the answers do; returns how many started.
async fn paced(
    visitor: Arc<Visitor>,
    next_visit: &AtomicU64,
    rate: f64,
    d: Duration,
) -> anyhow::Result<u64> {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut visits = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < d {
        let due = started + every.mul_f64(visits as f64);
        tokio::time::sleep_until(due.into()).await;
        visits += 1;
        let i = next_visit.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            visitor.recorder.failed(format!(
                "{MAX_IN_FLIGHT} visits in flight: the schedule fell behind"
            ));
            continue;
        };
        let visitor = Arc::clone(&visitor);
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = visitor.visit(i, due).await {
                visitor.recorder.failed(format!("{e:#}"));
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    Ok(visits)
}

/// The early, first, last and steady figures out of the samples of a soak of `d`.
fn verdict(samples: &[Sample], d: Duration) -> anyhow::Result<Verdict> {
    let d = d.as_secs_f64();
    // The first sample taken at or after `at` seconds (the last one if none).
    let at = |at: f64| {
        samples
            .iter()
            .find(|s| s.at_secs + 0.5 >= at)
            .or(samples.last())
    };
    let window = |keep: &dyn Fn(&Sample) -> bool| -> anyhow::Result<f64> {
        let mut merged = Histogram::<u64>::new(3)?;
        for s in samples.iter().filter(|s| keep(s)) {
            merged.add(&s.latencies)?;
        }
        Ok(merged.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let (Some(early), Some(steady), Some(end)) = (at(d / 12.0), at(d * 2.0 / 3.0), samples.last())
    else {
        anyhow::bail!("the soak took no samples");
    };
    Ok(Verdict {
        rss_early_mib: early.rss_mib,
        rss_end_mib: end.rss_mib,
        p99_first_ms: window(&|s| s.at_secs <= d / 6.0 + 0.5)?,
        p99_last_ms: window(&|s| s.at_secs > d - d / 6.0 + 0.5)?,
        steady_database_mib: steady.database_mib,
        end_database_mib: end.database_mib,
        steady_sessions: steady.sessions,
        end_sessions: end.sessions,
        steady_audit_events: steady.audit_events,
        end_audit_events: end.audit_events,
    })
}
