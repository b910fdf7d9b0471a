//! The service's background work: delivering queued messages, housekeeping, anchoring the
//! audit chain, auditing refusals in aggregate, and reloading a replaced location database.
//! `serve` starts it beside the listeners and stops it once they have finished their requests;
//! tests start and stop it the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinSet;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::audit::AnchorKeys;
use crate::domain::audit::trail;
use crate::domain::auth::AuthService;
use crate::domain::delivery::Courier;
use crate::domain::housekeeping::Housekeeper;
use crate::domain::ports::Store;
use crate::domain::risk::rate_limit::RateLimits;

/// How often the delivery worker looks for messages it was not woken for: retries that fell
/// due, and messages other instances queued.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// How long refusals are counted before their counts are audited.
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// How often recorded latencies are folded into their histograms (see [`metrics_upkeep`]).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The running background jobs. [`Jobs::stop`] ends them; dropped without it, they are aborted
/// wherever they stand.
pub struct Jobs {
    tasks: JoinSet<()>,
    stopping: CancellationToken,
    /// Flushed once more after the jobs end, so no refusal counted before the stop is lost.
    auth: AuthService,
}

impl Jobs {
    /// Starts the jobs the settings ask for (the delivery worker only with
    /// `FINHUB_DELIVERY_WORKER`, anchoring only with `FINHUB_AUDIT_ANCHOR_PATH`).
    pub fn start(settings: &Settings, services: &Services) -> anyhow::Result<Self> {
        let anchoring = match &settings.audit.anchor_path {
            Some(path) => Some(Anchoring {
                store: Arc::clone(&services.store),
                keys: settings.audit.anchor_keys()?,
                clock: Arc::clone(&services.clock),
                path: path.clone(),
            }),
            None => None,
        };
        let mut jobs = Self {
            tasks: JoinSet::new(),
            stopping: CancellationToken::new(),
            auth: services.auth.clone(),
        };
        let stopping = &jobs.stopping;
        jobs.tasks
            .spawn(audit_refusals(services.auth.clone(), stopping.clone()));
        jobs.tasks.spawn(metrics_upkeep(
            crate::telemetry::metrics_handle(),
            stopping.clone(),
        ));
        jobs.tasks.spawn(housekeeping(
            services.housekeeper.clone(),
            Arc::clone(&services.limits),
            settings.housekeeping.interval.unsigned_abs(),
            stopping.clone(),
        ));
        if let Some(anchoring) = anchoring {
            jobs.tasks.spawn(anchoring.run(
                settings.audit.anchor_interval.unsigned_abs(),
                stopping.clone(),
            ));
        }
        if settings.notifier.delivery_worker {
            jobs.tasks
                .spawn(deliver(services.courier.clone(), stopping.clone()));
            let posting = services.courier.clone().post_webhooks(DELIVERY_POLL);
            let stopping = stopping.clone();
            jobs.tasks.spawn(async move {
                stopping.run_until_cancelled(posting).await;
            });
        }
        if let Some(locations) = &services.locations {
            let watching = crate::geo::watch(Arc::clone(locations));
            let stopping = stopping.clone();
            jobs.tasks.spawn(async move {
                stopping.run_until_cancelled(watching).await;
            });
        }
        Ok(jobs)
    }

    /// How many jobs are running.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Stops every job and waits for each to end, then audits the refusals counted until now.
    /// A job between passes ends at once; one in a pass ends as its pass allows (see each).
    /// Stopping again does nothing more.
    pub async fn stop(&mut self) {
        // What requests left running (reset codes being queued) writes to the store too.
        self.auth.finish_background(Duration::from_secs(10)).await;
        self.stopping.cancel();
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(error = %e, "a background job panicked");
            }
        }
        // Last, so that it takes what the other jobs and the requests before them counted.
        self.auth.flush_refusals().await;
    }
}

/// A tick every `every`, the first at once; ticks missed while a pass ran are not made up.
fn ticking(every: Duration) -> Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Waits for the next tick; `false` once the jobs are stopping, which wins over a tick due.
async fn next_tick(tick: &mut Interval, stopping: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = stopping.cancelled() => false,
        _ = tick.tick() => true,
    }
}

/// Audits the refusals of each window in aggregate (see `domain::risk::refusals`). A flush in
/// progress is finished, since the counts it has taken exist nowhere else.
async fn audit_refusals(auth: AuthService, stopping: CancellationToken) {
    // The first window ends a window from now: at start there is nothing counted yet.
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + REFUSAL_WINDOW, REFUSAL_WINDOW);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while next_tick(&mut tick, &stopping).await {
        auth.flush_refusals().await;
    }
}

/// Folds the latencies recorded since the last pass into their histograms. The recorder keeps
/// every sample until a pass or a scrape of `/metrics` takes it (about 20 bytes a request):
/// with neither, memory grew with every request for as long as the service ran (an hour's soak
/// found 8 MiB an instance; a flood of requests, tens of MiB a minute).
async fn metrics_upkeep(handle: PrometheusHandle, stopping: CancellationToken) {
    let mut tick = ticking(METRICS_UPKEEP);
    while next_tick(&mut tick, &stopping).await {
        handle.run_upkeep();
    }
}

/// Runs housekeeping on every instance: purging ended sessions, stale counters, delivered
/// notices and (with a retention) old audit events, and dropping the rate-limit state of clients that went quiet.
/// The store makes concurrent runs on several instances safe. A pass is a series of
/// transactions, each whole or undone, so stopping does not wait for a long one to end.
async fn housekeeping(
    housekeeper: Housekeeper,
    limits: Arc<RateLimits>,
    every: Duration,
    stopping: CancellationToken,
) {
    let mut tick = ticking(every);
    while next_tick(&mut tick, &stopping).await {
        limits.forget_idle();
        match stopping.run_until_cancelled(housekeeper.run_once()).await {
            Some(Ok(purged)) if purged != Default::default() => tracing::info!(
                sessions = purged.sessions,
                lockouts = purged.lockouts,
                notices = purged.notices,
                audit_events = purged.audit_events,
                "housekeeping purged"
            ),
            Some(Ok(_)) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
            None => return,
        }
    }
}

/// The delivery worker. Stopping ends it wherever it waits: a message whose send it cuts short
/// keeps its claim until the lease runs out and is then retried by another instance's worker
/// or after a restart, as after a crash.
async fn deliver(courier: Courier, stopping: CancellationToken) {
    stopping
        .run_until_cancelled(courier.run(DELIVERY_POLL))
        .await;
}

/// Appends an anchor of the audit chain's head to a file every so often (see `audit anchor`).
struct Anchoring {
    store: Arc<dyn Store>,
    keys: AnchorKeys,
    clock: Arc<dyn Clock>,
    path: PathBuf,
}

impl Anchoring {
    /// An anchor in progress is finished: it is one read and one appended line.
    async fn run(self, every: Duration, stopping: CancellationToken) {
        let mut tick = ticking(every);
        while next_tick(&mut tick, &stopping).await {
            if let Err(e) = self.write_one().await {
                tracing::warn!(error = %e, path = %self.path.display(), "audit anchor not written; will retry");
            }
        }
    }

    async fn write_one(&self) -> anyhow::Result<()> {
        let anchor = trail::anchor(self.store.as_ref(), &self.keys, self.clock.now()).await?;
        let mut line = serde_json::to_vec(&anchor)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new();
        file.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        std::io::Write::write_all(&mut file.open(&self.path)?, &line)?;
        // For the alert on anchors not written (`deploy/prometheus/alerts.yml`).
        metrics::gauge!("finhub_audit_anchor_written_timestamp_seconds")
            .set(self.clock.now().unix_timestamp() as f64);
        Ok(())
    }
}
