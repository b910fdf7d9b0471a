//! The delivery worker.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use time::Duration;
use tokio::sync::Notify;

use super::{
    ClaimToken, CodeSeal, CodeTemplate, DeliveryEnd, Finish, QueuedCode, QueuedNotice, SealedFor,
};
use crate::clock::Clock;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::ports::{
    CodeMessage, Notifier, NotifyError, SecurityNotice, Store, StoreResult,
};

/// How hard delivery tries.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Attempts before a message is given up on.
    pub max_attempts: u32,
    /// The wait before the first retry; each further one doubles it, up to `max_delay`, with
    /// jitter so that retries from many messages do not arrive together.
    pub first_retry: StdDuration,
    pub max_delay: StdDuration,
    /// How long a claim keeps other workers off a message.
    pub lease: Duration,
    /// The longest one send may take before it counts as failed (the SMTP and SMS adapters
    /// time out sooner). A pass claims only as many messages as can all be sent within the
    /// lease, so no claim runs out while its worker still holds it.
    pub send_timeout: StdDuration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            first_retry: StdDuration::from_secs(2),
            max_delay: StdDuration::from_secs(60),
            lease: Duration::seconds(60),
            send_timeout: StdDuration::from_secs(15),
        }
    }
}

impl DeliveryPolicy {
    /// Messages claimed per pass: as many as can be sent one after another, each within
    /// `send_timeout`, before the lease runs out (one send's worth to spare), at most 32.
    pub fn batch(&self) -> u32 {
        let lease = self.lease.whole_milliseconds().max(0) as u128;
        let send = self.send_timeout.as_millis().max(1);
        (lease / send).saturating_sub(1).clamp(1, MAX_BATCH.into()) as u32
    }

    /// The wait after the `attempt`-th failed attempt (1-based).
    fn retry_delay(&self, attempt: u32) -> Duration {
        let delay = ExponentialBuilder::default()
            .with_min_delay(self.first_retry)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay);
        Duration::try_from(delay).unwrap_or(Duration::MINUTE)
    }
}

const DELIVERY_METRIC: &str = "finhub_2fa_delivery_total";
const LATENCY_METRIC: &str = "finhub_2fa_delivery_seconds";
const NOTICE_METRIC: &str = "finhub_notice_delivery_total";
/// Most messages claimed per pass.
const MAX_BATCH: u8 = 32;

/// The delivery worker.
#[derive(Clone)]
pub struct Courier {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    seal: CodeSeal,
    policy: DeliveryPolicy,
    template: Arc<CodeTemplate>,
    wake: Arc<Notify>,
}

impl Courier {
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        seal: CodeSeal,
        policy: DeliveryPolicy,
        template: CodeTemplate,
    ) -> Self {
        Self {
            store,
            notifier,
            clock,
            seal,
            policy,
            template: Arc::new(template),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn seal(&self) -> &CodeSeal {
        &self.seal
    }

    /// Counts a message just queued and wakes the worker for it (which also looks every
    /// `every` of [`Courier::run`]).
    pub fn queued(&self) {
        metrics::counter!(DELIVERY_METRIC, "outcome" => "queued").increment(1);
        self.wake.notify_one();
    }

    /// Wakes the worker for a security notice just queued.
    pub fn queued_notice(&self) {
        metrics::counter!(NOTICE_METRIC, "outcome" => "queued").increment(1);
        self.wake.notify_one();
    }

    /// Delivers until the process ends: when woken, and every `every` for retries and messages
    /// queued by other instances.
    pub async fn run(self, every: StdDuration) {
        loop {
            match self.deliver_due().await {
                // A full batch: there may be more waiting.
                Ok(n) if n >= self.policy.batch() as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "delivery pass failed; will retry"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass: claims the codes and then the notices due now, and delivers each. Returns how
    /// many it claimed of the larger kind.
    pub async fn deliver_due(&self) -> StoreResult<usize> {
        let batch = self.policy.batch();
        let claim = ClaimToken::generate();
        let codes = self
            .store
            .claim_codes(self.clock.now(), self.policy.lease, batch, &claim)
            .await?;
        for message in &codes {
            self.deliver(message).await?;
        }
        let claim = ClaimToken::generate();
        let notices = self
            .store
            .claim_notices(self.clock.now(), self.policy.lease, batch, &claim)
            .await?;
        for notice in &notices {
            self.deliver_notice(notice).await?;
        }
        Ok(codes.len().max(notices.len()))
    }

    /// Hands a message over, bounded by the policy's send timeout whatever the adapter does.
    async fn send_within<F>(&self, send: F) -> Result<(), NotifyError>
    where
        F: Future<Output = Result<(), NotifyError>>,
    {
        tokio::time::timeout(self.policy.send_timeout, send)
            .await
            .unwrap_or_else(|_| Err(NotifyError::uncertain("no answer within the send timeout")))
    }

    async fn deliver(&self, message: &QueuedCode) -> StoreResult<()> {
        let now = self.clock.now();
        let event = |outcome, reason| {
            let kind = match outcome {
                Outcome::Success => AuditKind::CodeDelivered,
                Outcome::Failure => AuditKind::CodeUndelivered,
            };
            let event = AuditEvent::new(kind, outcome, now)
                .customer(&message.customer_id)
                .session(&message.session_id)
                .detail("challengeId", message.challenge_id.as_str())
                .detail("method", message.channel.as_str())
                .detail("attempts", message.attempts);
            match reason {
                Some(reason) => event.reason(reason),
                None => event,
            }
        };
        let finish = |end, error: Option<String>, event: AuditEvent| async move {
            self.store
                .finish_code(message, end, error.as_deref(), &event)
                .await
                .map(|finish| {
                    if finish == Finish::ClaimLost {
                        tracing::warn!(challenge.id = %message.challenge_id, "claim taken over by another worker; its outcome stands");
                    }
                })
        };
        if now >= message.expires_at {
            metrics::counter!(DELIVERY_METRIC, "outcome" => "dropped").increment(1);
            let dropped = event(Outcome::Failure, Some("expired"));
            return finish(DeliveryEnd::Dropped, None, dropped).await;
        }
        if !message.live {
            metrics::counter!(DELIVERY_METRIC, "outcome" => "dropped").increment(1);
            let dropped = event(Outcome::Failure, Some("superseded"));
            return finish(DeliveryEnd::Dropped, None, dropped).await;
        }
        let sealed_for = SealedFor {
            challenge: &message.challenge_id,
            channel: message.channel,
            address: &message.address,
        };
        let Some(code) = self.seal.open(&message.sealed_code, &sealed_for) else {
            // Sealed under another key: no attempt can succeed.
            let failed = event(Outcome::Failure, Some("unreadable"));
            metrics::counter!(DELIVERY_METRIC, "outcome" => "failed").increment(1);
            tracing::error!(challenge.id = %message.challenge_id, "queued code cannot be opened with this audit key");
            return finish(DeliveryEnd::Undelivered, Some("unreadable".into()), failed).await;
        };
        let outgoing = CodeMessage {
            at: message.created_at,
            channel: message.channel,
            to: message.address.clone(),
            customer_id: message.customer_id.clone(),
            challenge_id: message.challenge_id.clone(),
            code,
            valid_for_minutes: message.valid_for_minutes,
            template: Arc::clone(&self.template),
        };
        match self.send_within(self.notifier.send(&outgoing)).await {
            Ok(()) => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "sent").increment(1);
                let waited = (self.clock.now() - message.created_at).as_seconds_f64();
                metrics::histogram!(LATENCY_METRIC).record(waited.max(0.0));
                finish(DeliveryEnd::Sent, None, event(Outcome::Success, None)).await
            }
            Err(e) if e.permanent || message.attempts >= self.policy.max_attempts => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "failed").increment(1);
                tracing::error!(error = %e, challenge.id = %message.challenge_id, "code not delivered; giving up");
                // The send goes back only when no attempt can have reached the customer:
                // otherwise a gateway that fails after sending would buy codes past the limits.
                let end = if e.maybe_delivered || message.maybe_delivered {
                    DeliveryEnd::GaveUp
                } else {
                    DeliveryEnd::Undelivered
                };
                let why = if e.permanent { "refused" } else { "gave_up" };
                finish(end, Some(e.to_string()), event(Outcome::Failure, Some(why))).await
            }
            Err(e) => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "retried").increment(1);
                tracing::warn!(error = %e, challenge.id = %message.challenge_id, attempt = message.attempts, "code not delivered; will retry");
                let next = now + self.policy.retry_delay(message.attempts);
                self.store
                    .retry_code(message, next, &e.to_string(), e.maybe_delivered)
                    .await
            }
        }
    }

    async fn deliver_notice(&self, notice: &QueuedNotice) -> StoreResult<()> {
        let now = self.clock.now();
        let event = |outcome, reason: Option<&str>| {
            let kind = match outcome {
                Outcome::Success => AuditKind::NoticeDelivered,
                Outcome::Failure => AuditKind::NoticeUndelivered,
            };
            let event = AuditEvent::new(kind, outcome, now)
                .customer(&notice.customer_id)
                .detail("noticeId", notice.id.as_str())
                .detail("notice", "unusual_login")
                .detail("attempts", notice.attempts);
            match reason {
                Some(reason) => event.reason(reason),
                None => event,
            }
        };
        let finish = |end, error: Option<String>, event: AuditEvent| async move {
            self.store
                .finish_notice(notice, end, error.as_deref(), &event)
                .await
                .map(|_| ())
        };
        if now >= notice.expires_at {
            metrics::counter!(NOTICE_METRIC, "outcome" => "dropped").increment(1);
            return finish(
                DeliveryEnd::Dropped,
                None,
                event(Outcome::Failure, Some("expired")),
            )
            .await;
        }
        let outgoing = SecurityNotice {
            at: notice.created_at,
            to: notice.to.clone(),
            customer_id: notice.customer_id.clone(),
            notice_id: notice.id.clone(),
            facts: notice.facts.clone(),
        };
        match self.send_within(self.notifier.send_notice(&outgoing)).await {
            Ok(()) => {
                metrics::counter!(NOTICE_METRIC, "outcome" => "sent").increment(1);
                finish(DeliveryEnd::Sent, None, event(Outcome::Success, None)).await
            }
            Err(e) if e.permanent || notice.attempts >= self.policy.max_attempts => {
                metrics::counter!(NOTICE_METRIC, "outcome" => "failed").increment(1);
                tracing::error!(error = %e, notice.id = %notice.id, "security notice not delivered; giving up");
                let why = if e.permanent { "refused" } else { "gave_up" };
                finish(
                    DeliveryEnd::GaveUp,
                    Some(e.to_string()),
                    event(Outcome::Failure, Some(why)),
                )
                .await
            }
            Err(e) => {
                metrics::counter!(NOTICE_METRIC, "outcome" => "retried").increment(1);
                tracing::warn!(error = %e, notice.id = %notice.id, attempt = notice.attempts, "security notice not delivered; will retry");
                let next = now + self.policy.retry_delay(notice.attempts);
                self.store.retry_notice(notice, next, &e.to_string()).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_claims_no_more_than_it_can_send_within_the_lease() {
        // The attack on delivery: a claim that runs out mid-batch lets another worker send the
        // same messages again, and a stale worker's late outcome overwrite the new one.
        let default = DeliveryPolicy::default();
        assert_eq!(default.batch(), 3);
        let sends = u32::try_from(default.send_timeout.as_secs()).unwrap() * (default.batch() + 1);
        assert!(i64::from(sends) <= default.lease.whole_seconds());
        let quick = DeliveryPolicy {
            send_timeout: StdDuration::from_millis(100),
            ..default
        };
        assert_eq!(quick.batch(), 32, "at most 32");
        let slow = DeliveryPolicy {
            send_timeout: StdDuration::from_secs(120),
            ..default
        };
        assert_eq!(slow.batch(), 1, "at least one");
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let policy = DeliveryPolicy::default();
        for attempt in 1..12 {
            // The attempt-th delay is first_retry doubled per attempt, capped, plus up to as much
            // again of jitter.
            let base = (policy.first_retry * 2u32.pow(attempt - 1)).min(policy.max_delay);
            let delay = policy.retry_delay(attempt);
            assert!(
                delay >= Duration::try_from(base).unwrap(),
                "attempt {attempt}: {delay}"
            );
            assert!(
                delay <= Duration::try_from(base * 2).unwrap(),
                "attempt {attempt}: {delay}"
            );
        }
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| policy.retry_delay(3)).collect();
        assert!(delays.len() > 1, "jittered");
    }
}
