//! The delivery worker: claims due messages of every purpose, renders each, hands it to the
//! notifier and records the outcome.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use time::Duration;
use tokio::sync::Notify;

use super::render::Renderer;
use super::{CodeSeal, CodeTemplate};
use crate::clock::Clock;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::lockdown::{LockdownLinks, LockdownSeal};
use crate::domain::delivery::message::{ClaimToken, Content, DeliveryEnd, Finish, Message};
use crate::domain::ports::{Notifier, NotifyError, OutboxStore, StoreResult, WebhookSender};

/// How hard delivery tries.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Attempts before a message is given up on.
    pub max_attempts: u32,
    /// The wait before the first retry; each further one doubles it, up to `max_delay`, with
    /// jitter so that retries from many messages do not arrive together.
    pub first_retry: StdDuration,
    /// The longest wait between two attempts, however many have failed.
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
    pub(super) fn retry_delay(&self, attempt: u32) -> Duration {
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

/// How long a code waited between being queued and sent.
const LATENCY_METRIC: &str = "finhub_2fa_delivery_seconds";
/// Most messages claimed per pass.
const MAX_BATCH: u8 = 32;

/// The counter of a purpose's messages, by outcome.
fn metric(content: &Content) -> &'static str {
    match content {
        Content::Code(_) | Content::ResetCode(_) => "finhub_2fa_delivery_total",
        Content::Notice(_) | Content::Account(_) => "finhub_notice_delivery_total",
    }
}

fn count(message: &Message, outcome: &'static str) {
    metrics::counter!(metric(&message.content), "outcome" => outcome).increment(1);
}

/// The delivery worker.
#[derive(Clone)]
pub struct Courier {
    pub(super) store: Arc<dyn OutboxStore>,
    notifier: Arc<dyn Notifier>,
    pub(super) clock: Arc<dyn Clock>,
    renderer: Arc<Renderer>,
    pub(super) policy: DeliveryPolicy,
    wake: Arc<Notify>,
    /// Where security events go; `None`: no webhook.
    pub(super) webhooks: Option<Arc<dyn WebhookSender>>,
}

impl Courier {
    /// A courier over the outbox; nothing is sent until [`Courier::run`] runs it.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        seal: CodeSeal,
        policy: DeliveryPolicy,
        template: CodeTemplate,
        links: LockdownLinks,
    ) -> Self {
        Self {
            store,
            notifier,
            clock,
            renderer: Arc::new(Renderer::new(seal, template, links)),
            policy,
            wake: Arc::new(Notify::new()),
            webhooks: None,
        }
    }

    /// Also posts the security events queued for the webhook, by `sender`.
    pub fn with_webhooks(mut self, sender: Arc<dyn WebhookSender>) -> Self {
        self.webhooks = Some(sender);
        self
    }

    /// How codes are sealed in the outbox, for the login flow that queues them.
    pub fn seal(&self) -> &CodeSeal {
        self.renderer.seal()
    }

    /// How lockdown links are sealed, for opening the ones customers bring back.
    pub fn lockdown_seal(&self) -> &LockdownSeal {
        self.renderer.links().seal()
    }

    /// Counts a message just queued and wakes the worker for it (which also looks every
    /// `every` of [`Courier::run`]).
    pub fn queued(&self, message: &Message) {
        count(message, "queued");
        self.wake.notify_one();
    }

    /// Delivers until the process ends: when woken, and every `every` for retries and messages
    /// queued by other instances.
    pub async fn run(self, every: StdDuration) {
        let mut reported: Option<tokio::time::Instant> = None;
        loop {
            // The gauges need be no fresher than the poll: every code sent wakes this loop,
            // and a count on each wake would be a query per code.
            if reported.is_none_or(|at| at.elapsed() >= every) {
                self.report_backlog().await;
                reported = Some(tokio::time::Instant::now());
            }
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

    /// The outbox's backlog for the dashboard and the alerts: how many messages wait, and how
    /// long the oldest has.
    async fn report_backlog(&self) {
        match self.store.backlog().await {
            Ok((waiting, oldest)) => {
                metrics::gauge!("finhub_outbox_pending_messages").set(waiting as f64);
                let age = oldest.map_or(0.0, |at| (self.clock.now() - at).as_seconds_f64());
                metrics::gauge!("finhub_outbox_oldest_pending_seconds").set(age.max(0.0));
            }
            Err(e) => tracing::warn!(error = %e, "outbox backlog not read"),
        }
    }

    /// One pass: claims the messages due now and delivers each. Returns how many it claimed.
    pub async fn deliver_due(&self) -> StoreResult<usize> {
        let claim = ClaimToken::generate();
        let claimed = self
            .store
            .claim_messages(
                self.clock.now(),
                self.policy.lease,
                self.policy.batch(),
                &claim,
            )
            .await?;
        for message in &claimed {
            self.deliver(message).await?;
        }
        Ok(claimed.len())
    }

    /// Hands a message over, bounded by the policy's send timeout whatever the adapter does.
    pub(super) async fn send_within<F>(&self, send: F) -> Result<(), NotifyError>
    where
        F: Future<Output = Result<(), NotifyError>>,
    {
        tokio::time::timeout(self.policy.send_timeout, send)
            .await
            .unwrap_or_else(|_| Err(NotifyError::uncertain("no answer within the send timeout")))
    }

    async fn finish(
        &self,
        message: &Message,
        end: DeliveryEnd,
        error: Option<&str>,
        event: AuditEvent,
    ) -> StoreResult<()> {
        let finish = self
            .store
            .finish_message(message, end, error, &event)
            .await?;
        if finish == Finish::ClaimLost {
            tracing::warn!(message.id = %message.id, "claim taken over by another worker; its outcome stands");
        }
        Ok(())
    }

    async fn deliver(&self, message: &Message) -> StoreResult<()> {
        let now = self.clock.now();
        let event = |outcome, reason: Option<&str>| {
            let event = delivery_event(message, outcome, now);
            match reason {
                Some(reason) => event.reason(reason),
                None => event,
            }
        };
        // Never sent late, nor once superseded (a newer code, an ended session).
        let stale = if now >= message.expires_at {
            Some("expired")
        } else if !message.live {
            Some("superseded")
        } else {
            None
        };
        if let Some(why) = stale {
            count(message, "dropped");
            let dropped = event(Outcome::Failure, Some(why));
            return self
                .finish(message, DeliveryEnd::Dropped, None, dropped)
                .await;
        }
        let outgoing = match self.renderer.render(message) {
            Ok(outgoing) => outgoing,
            Err(why) => {
                // Sealed under another key, or no random source for a link: a retry would not
                // help.
                count(message, "failed");
                tracing::error!(message.id = %message.id, reason = why.as_str(), "message cannot be put into words");
                let failed = event(Outcome::Failure, Some(why.as_str()));
                return self
                    .finish(
                        message,
                        DeliveryEnd::Undelivered,
                        Some(why.as_str()),
                        failed,
                    )
                    .await;
            }
        };
        match self.send_within(self.notifier.send(&outgoing)).await {
            Ok(()) => {
                count(message, "sent");
                if let Content::Code(_) | Content::ResetCode(_) = message.content {
                    let waited = (self.clock.now() - message.created_at).as_seconds_f64();
                    metrics::histogram!(LATENCY_METRIC).record(waited.max(0.0));
                }
                let sent = event(Outcome::Success, None);
                self.finish(message, DeliveryEnd::Sent, None, sent).await
            }
            Err(e) if e.permanent || message.attempts >= self.policy.max_attempts => {
                count(message, "failed");
                tracing::error!(error = %e, message.id = %message.id, "message not delivered; giving up");
                // A code's send goes back only when no attempt can have reached the customer:
                // otherwise a gateway that fails after sending would buy codes past the limits.
                let end = if e.maybe_delivered || message.maybe_delivered {
                    DeliveryEnd::GaveUp
                } else {
                    DeliveryEnd::Undelivered
                };
                let why = if e.permanent { "refused" } else { "gave_up" };
                let failed = event(Outcome::Failure, Some(why));
                self.finish(message, end, Some(&e.to_string()), failed)
                    .await
            }
            Err(e) => {
                count(message, "retried");
                tracing::warn!(error = %e, message.id = %message.id, attempt = message.attempts, "message not delivered; will retry");
                let next = now + self.policy.retry_delay(message.attempts);
                self.store
                    .retry_message(message, next, &e.to_string(), e.maybe_delivered)
                    .await
            }
        }
    }
}

/// The audit event of a message's outcome: `2fa.delivered`/`2fa.undelivered` for a code (with
/// its session and challenge), `notice.delivered`/`notice.undelivered` for a notice.
fn delivery_event(message: &Message, outcome: Outcome, at: time::OffsetDateTime) -> AuditEvent {
    let (delivered, undelivered) = match &message.content {
        Content::Code(_) | Content::ResetCode(_) => {
            (AuditKind::CodeDelivered, AuditKind::CodeUndelivered)
        }
        Content::Notice(_) | Content::Account(_) => {
            (AuditKind::NoticeDelivered, AuditKind::NoticeUndelivered)
        }
    };
    let kind = if outcome == Outcome::Success {
        delivered
    } else {
        undelivered
    };
    let event = AuditEvent::new(kind, outcome, at);
    let event = match &message.content {
        Content::Code(code) => event
            .session(&code.session_id)
            .detail("challengeId", code.challenge_id.as_str())
            .detail("method", message.channel.as_str()),
        Content::ResetCode(reset) => event
            .detail("resetId", reset.reset_id.as_str())
            .detail("method", message.channel.as_str()),
        Content::Notice(_) => event
            .detail("noticeId", message.id.as_str())
            .detail("notice", super::render::UNUSUAL_LOGIN),
        Content::Account(change) => event
            .detail("noticeId", message.id.as_str())
            .detail("notice", change.as_str())
            .detail("channel", message.channel.as_str()),
    };
    event
        .customer(&message.customer_id)
        .detail("attempts", message.attempts)
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
