//! The soak: mixed traffic at 70 % of capacity for an hour on two instances sharing one
//! PostgreSQL database, sampled every minute, to see whether anything drifts: failures, memory,
//! latency or the database's size.
//!
//! Lifetimes and retention are scaled to the run (an hour: sessions end after 10 minutes and are
//! kept 10 more, audit events are kept 30 minutes, housekeeping runs every minute), so that
//! purges start within the first third and the last third measures the steady state a
//! deployment lives in, where what is kept is what retention keeps.

mod load;
mod report;
mod sampling;
mod verdict;
mod visits;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

pub use report::write;
use sampling::{Probe, Recorder, Sample, Table};
use verdict::Verdict;
use visits::{CUSTOMERS, TWO_FACTOR_CUSTOMERS, Visitor};

use crate::outbox::Outbox;
use crate::target::{Database, Launch, Server};

/// The share of capacity offered.
const LOAD: f64 = 0.7;

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
    /// Visits that failed, and instances or a database that could not be sampled.
    pub failures: u64,
    /// The first distinct failures, to say what went wrong.
    pub failure_reasons: Vec<String>,
    pub samples: Vec<Sample>,
    pub verdict: Verdict,
    /// Each table's rows and size once every retention window has passed, and at the end.
    pub tables_steady: Vec<Table>,
    pub tables_end: Vec<Table>,
}

impl Soak {
    pub fn no_failures(&self) -> bool {
        self.failures == 0 && self.visits > 0
    }

    /// Tables whose rows still grew after every retention window had passed.
    pub fn still_growing(&self) -> Vec<&Table> {
        verdict::still_growing(&self.tables_steady, &self.tables_end)
    }

    /// Nothing kept past retention, and nothing growing once retention holds.
    pub fn growth_explained_by_retention(&self) -> bool {
        self.verdict.overdue_sessions == 0
            && self.verdict.overdue_audit_events == 0
            && self.still_growing().is_empty()
    }
}

/// Lifetimes and retention scaled to a soak of `d` (an hour: as the module says).
#[derive(Debug, Clone, Copy)]
struct Lifetimes {
    session: Duration,
    absolute: Duration,
    retention: Duration,
    audit: Duration,
    housekeeping: Duration,
}

impl Lifetimes {
    fn of(d: Duration) -> Self {
        let part = |n: u32, least: u64| (d / n).max(Duration::from_secs(least));
        Self {
            // Long enough in a short run for a slow visit (a debug build's) to finish.
            session: part(12, 30),
            absolute: part(6, 30),
            retention: part(6, 2),
            audit: part(2, 2),
            housekeeping: part(60, 1),
        }
    }

    /// As `FINHUB_*` settings, in whole seconds.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| format!("{}s", d.as_secs());
        vec![
            ("FINHUB_SESSION_TTL", secs(self.session)),
            ("FINHUB_SESSION_ABSOLUTE_TTL", secs(self.absolute)),
            ("FINHUB_SESSION_RETENTION", secs(self.retention)),
            ("FINHUB_AUDIT_RETENTION", secs(self.audit)),
            ("FINHUB_HOUSEKEEPING_INTERVAL", secs(self.housekeeping)),
        ]
    }
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
    let lifetimes = Lifetimes::of(d);
    let settings = lifetimes.settings();
    let [first, second] = start_instances(binary, database, &settings, work).await?;
    let pids = [first.pid()?, second.pid()?];
    let outbox = Arc::new(Outbox::new(vec![
        first.outbox.clone(),
        second.outbox.clone(),
    ]));
    let bases = [first.base.clone(), second.base.clone()];
    let visitor = |recorder| Visitor::new(bases.clone(), Arc::clone(&outbox), recorder);
    let next_visit = Arc::new(AtomicU64::new(0));

    let probe = (d / 30).clamp(Duration::from_secs(3), Duration::from_secs(60));
    eprintln!("soak: capacity of the mix, closed loop for {probe:?}…");
    let probe_recorder = Arc::new(Recorder::new()?);
    let probe_visitor = Arc::new(visitor(Arc::clone(&probe_recorder))?);
    let capacity = load::capacity(probe_visitor, &next_visit, probe).await?;
    anyhow::ensure!(
        probe_recorder.failed_visits() == 0 && capacity >= 1.0,
        "the mix fails before the soak starts ({capacity:.1} visits/s): {:?}",
        probe_recorder.failures()
    );
    let rate = capacity * LOAD;
    eprintln!(
        "soak: {rate:.1} visits/s ({:.0} % of {capacity:.1}/s) for {d:?} on two instances…",
        LOAD * 100.0
    );

    let recorder = Arc::new(Recorder::new()?);
    let sampling = tokio::spawn(sample_during(
        Arc::clone(&recorder),
        database.clone(),
        pids,
        d,
    ));
    let visits = load::paced(
        Arc::new(visitor(Arc::clone(&recorder))?),
        &next_visit,
        rate,
        d,
    )
    .await;
    let Sampled {
        mut samples,
        tables_steady,
        mut db,
        last,
    } = sampling.await??;
    samples.push(recorder.sample(d, d - last, pids, &mut db).await?);
    let tables_end = db.tables().await?;
    let now = unix_millis(SystemTime::now())?;
    let margin = 2 * lifetimes.housekeeping;
    let (overdue_sessions, overdue_audit_events) = db
        .overdue(
            now - millis(lifetimes.retention + margin),
            now - millis(lifetimes.audit + margin),
        )
        .await?;
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
        failures: samples.iter().map(|s| s.failed_visits).sum(),
        failure_reasons: recorder.failures(),
        verdict: Verdict {
            overdue_sessions,
            overdue_audit_events,
            ..verdict::of(&samples, d)?
        },
        samples,
        tables_steady,
        tables_end,
    })
}

/// Imports the customers and starts two instances on `database`, each in a directory (and
/// with an outbox file) of its own.
async fn start_instances(
    binary: &Path,
    database: &Database,
    settings: &[(&'static str, String)],
    work: &Path,
) -> anyhow::Result<[Server; 2]> {
    let file = work.join("soak-customers.jsonl");
    crate::target::write_customers(&file, CUSTOMERS, TWO_FACTOR_CUSTOMERS)?;
    let mut servers = Vec::new();
    for instance in ["a", "b"] {
        let dir = work.join(instance);
        std::fs::create_dir_all(&dir)?;
        let launch = Launch {
            binary,
            database,
            work_dir: &dir,
            default_limits: false,
            settings,
        };
        if servers.is_empty() {
            launch.import(&file).await?;
        }
        servers.push(launch.start().await?);
    }
    let _ = std::fs::remove_file(&file);
    let [first, second]: [Server; 2] = servers
        .try_into()
        .map_err(|_| anyhow::anyhow!("both instances started, yet not two servers"))?;
    Ok([first, second])
}

/// What the sampler took before the last interval ended.
struct Sampled {
    samples: Vec<Sample>,
    tables_steady: Vec<Table>,
    db: Probe,
    /// When the last of these samples was taken, since the soak started.
    last: Duration,
}

/// Samples every minute (a sixtieth of the soak, at least a second) until `d`, and the tables
/// once, two thirds in, when every retention window has passed.
async fn sample_during(
    recorder: Arc<Recorder>,
    database: Database,
    pids: [u32; 2],
    d: Duration,
) -> anyhow::Result<Sampled> {
    let started = Instant::now();
    let interval = (d / 60).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut db = Probe::connect(&database).await?;
    let (mut samples, mut tables_steady) = (Vec::new(), None);
    let mut at = interval;
    while at < d {
        tokio::time::sleep_until((started + at).into()).await;
        samples.push(recorder.sample(at, interval, pids, &mut db).await?);
        if tables_steady.is_none() && at >= d * 2 / 3 {
            tables_steady = Some(db.tables().await?);
        }
        at += interval;
    }
    Ok(Sampled {
        samples,
        tables_steady: tables_steady.unwrap_or_default(),
        db,
        last: at - interval,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn unix_millis(t: SystemTime) -> anyhow::Result<i64> {
    Ok(millis(t.duration_since(SystemTime::UNIX_EPOCH)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_scale_with_an_hour_and_leave_a_short_run_time_to_finish_its_visits() {
        let hour = Lifetimes::of(Duration::from_secs(3600)).settings();
        let expected = [
            ("FINHUB_SESSION_TTL", "300s"),
            ("FINHUB_SESSION_ABSOLUTE_TTL", "600s"),
            ("FINHUB_SESSION_RETENTION", "600s"),
            ("FINHUB_AUDIT_RETENTION", "1800s"),
            ("FINHUB_HOUSEKEEPING_INTERVAL", "60s"),
        ];
        assert_eq!(
            hour,
            expected.map(|(k, v)| (k, v.to_owned())).to_vec(),
            "an hour"
        );
        let short = Lifetimes::of(Duration::from_secs(20));
        assert_eq!(short.session, Duration::from_secs(30));
        assert_eq!(short.absolute, Duration::from_secs(30));
        assert_eq!(short.housekeeping, Duration::from_secs(1));
    }
}
