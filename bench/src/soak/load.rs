//! How the soak offers its traffic: closed loop to find the mix's capacity, then open loop at a
//! share of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::visits::Visitor;

/// Visits in flight at most; past it the schedule is behind, and the visit counts as failed.
const MAX_IN_FLIGHT: usize = 1024;
/// Workers of the closed-loop run that measures capacity.
const CAPACITY_WORKERS: u64 = 32;

/// Visits completed per second by workers that start the next as soon as one ends.
pub async fn capacity(
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
pub async fn paced(visitor: Arc<Visitor>, next_visit: &AtomicU64, rate: f64, d: Duration) -> u64 {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut visits = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let ended = |done: Result<(), tokio::task::JoinError>, visitor: &Visitor| {
        if let Err(e) = done {
            visitor
                .recorder
                .failed(format!("a visit's task ended: {e}"));
        }
    };
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
        let task_visitor = Arc::clone(&visitor);
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = task_visitor.visit(i, due).await {
                task_visitor.recorder.failed(format!("{e:#}"));
            }
        });
        while let Some(done) = tasks.try_join_next() {
            ended(done, &visitor);
        }
    }
    while let Some(done) = tasks.join_next().await {
        ended(done, &visitor);
    }
    visits
}
