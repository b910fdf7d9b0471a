//! Housekeeping: removing what has ended, in small batches, so that no run holds locks for long
//! and any number of instances can run it at once.

use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::ports::{HousekeepingStore, StoreResult};

/// How long ended things are kept.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Sessions are kept this long after they can no longer be used or renewed, so that a late
    /// call still gets `SESSION_EXPIRED` rather than `UNAUTHENTICATED` for a while.
    pub sessions: Duration,
    /// Failure counters with no lock are forgotten after this long without a failure.
    pub lockouts: Duration,
    /// Audit events older than this are deleted; `None` keeps them for ever.
    pub audit: Option<Duration>,
    /// Rows per statement.
    pub batch: u32,
}

/// What one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Ended sessions past retention.
    pub sessions: u64,
    /// Failure counters with nothing left to count.
    pub lockouts: u64,
    /// Security notices finished or abandoned.
    pub notices: u64,
    /// Webhook events delivered or given up on.
    pub webhooks: u64,
    /// Factors added but never confirmed.
    pub unconfirmed_factors: u64,
    /// Password resets past their code's validity.
    pub resets: u64,
    /// Passkey logins' ceremonies that expired unanswered.
    pub passkey_logins: u64,
    /// Used lockdown links' ids, once the links expired.
    pub lockdown_links: u64,
    /// Audit events past retention.
    pub audit_events: u64,
}

/// Batches per kind in one run, so a large backlog is worked off over several runs.
const MAX_BATCHES: u32 = 100;

/// How long an answered passkey login's or a used lockdown link's record outlives the ceremony
/// or link: more than the clocks of two instances may differ.
const ANSWERED_CEREMONY_MARGIN: Duration = Duration::minutes(5);

/// Removes what the retention policy no longer keeps, a batch at a time.
#[derive(Clone)]
pub struct Housekeeper {
    store: Arc<dyn HousekeepingStore>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
}

impl Housekeeper {
    /// Housekeeping of `store` under `policy`.
    pub fn new(
        store: Arc<dyn HousekeepingStore>,
        clock: Arc<dyn Clock>,
        policy: RetentionPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    /// Removes ended sessions (with their challenges and retired tokens), stale failure
    /// counters, delivered notices and, with a retention set, old audit events.
    pub async fn run_once(&self) -> StoreResult<Purged> {
        let now = self.clock.now();
        let batch = self.policy.batch.max(1);
        let store = &self.store;
        let mut purged = Purged {
            sessions: in_batches(batch, || {
                store.purge_sessions(now - self.policy.sessions, batch)
            })
            .await?,
            lockouts: in_batches(batch, || {
                store.purge_lockouts(now - self.policy.lockouts, batch)
            })
            .await?,
            webhooks: in_batches(batch, || {
                store.purge_webhooks(now - self.policy.sessions, batch)
            })
            .await?,
            notices: in_batches(batch, || {
                store.purge_notices(now - self.policy.sessions, batch)
            })
            .await?,
            unconfirmed_factors: in_batches(batch, || store.purge_unconfirmed_factors(now, batch))
                .await?,
            // Kept as long as ended sessions: the sending budget counts recent ones.
            resets: in_batches(batch, || {
                store.purge_resets(now - self.policy.sessions, batch)
            })
            .await?,
            // Kept a while past their expiry: an instance whose clock is behind still opens the
            // ceremony, and only this record stops a replay of a passkey without a counter.
            passkey_logins: in_batches(batch, || {
                store.purge_passkey_logins(now - ANSWERED_CEREMONY_MARGIN, batch)
            })
            .await?,
            // Kept past expiry as ceremonies are, for instances whose clocks are behind.
            lockdown_links: in_batches(batch, || {
                store.purge_lockdown_links(now - ANSWERED_CEREMONY_MARGIN, batch)
            })
            .await?,
            audit_events: 0,
        };
        if let Some(retention) = self.policy.audit {
            purged.audit_events = in_batches(batch, || async move {
                // Each batch is recorded as its own purge, under its own event id.
                let event = AuditEvent::new(AuditKind::AuditPurged, Outcome::Success, now)
                    .reason("retention")
                    .detail("retentionSeconds", retention.whole_seconds());
                store.purge_audit(now - retention, batch, &event).await
            })
            .await?;
        }
        for (kind, n) in [
            ("sessions", purged.sessions),
            ("lockouts", purged.lockouts),
            ("notices", purged.notices),
            ("webhooks", purged.webhooks),
            ("password_resets", purged.resets),
            ("passkey_logins", purged.passkey_logins),
            ("lockdown_links", purged.lockdown_links),
            ("audit_events", purged.audit_events),
        ] {
            metrics::counter!("finhub_purged_total", "kind" => kind).increment(n);
        }
        Ok(purged)
    }
}

/// Runs `purge` until a batch comes back short, or [`MAX_BATCHES`] times; returns how many rows
/// it removed in all.
async fn in_batches<F, Fut>(batch: u32, mut purge: F) -> StoreResult<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<u64>>,
{
    let mut removed = 0;
    for _ in 0..MAX_BATCHES {
        let n = purge().await?;
        removed += n;
        if n < u64::from(batch) {
            break;
        }
    }
    Ok(removed)
}
