//! Delivering two-factor codes through the outbox. Opening a challenge writes its message to
//! the outbox in the same transaction (nothing is sent from the request); the [`Courier`] in
//! every `serve` process claims due messages, hands them to the [`Notifier`], and records each
//! outcome: sent; retried later with exponential backoff and jitter; dropped once the code has
//! expired (never sent late); or given up on after the last attempt, which gives the send back so
//! the customer can ask again at once. A crash between the commit and the send loses nothing:
//! the claim's lease runs out and the message is claimed again.
//!
//! The code waits sealed ([`CodeSeal`]) and is erased when its message is finished.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{AeadCore as _, ChaCha20Poly1305};
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use super::InvalidValue;
use super::audit::{AuditEvent, AuditKind, Outcome};
use super::customer::{CustomerId, TwoFactorMethod};
use super::ports::{CodeMessage, Notifier, Store, StoreResult};
use super::session::SessionId;
use super::two_factor::{ChallengeId, OtpCode};
use crate::clock::Clock;

/// A code's message in the outbox.
#[derive(Debug, Clone)]
pub struct QueuedCode {
    pub challenge_id: ChallengeId,
    pub session_id: SessionId,
    pub customer_id: CustomerId,
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address.
    pub address: String,
    /// The code, sealed by [`CodeSeal`].
    pub sealed_code: Vec<u8>,
    pub valid_for_minutes: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Attempts made, this one included once claimed.
    pub attempts: u32,
}

/// How a message's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEnd {
    Sent,
    /// The code expired before it could be sent.
    Dropped,
    /// The last attempt failed: the send is given back to the session.
    Failed,
}

/// Where a code's message stands, as the customer waiting for it may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Queued, or being retried.
    Pending,
    Sent,
    /// Given up on: the customer can ask for a new code at once.
    Failed,
    /// The code expired before it could be sent.
    Expired,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// From the outbox row's status.
    pub fn from_stored(status: &str) -> Option<Self> {
        match status {
            "PENDING" => Some(Self::Pending),
            "SENT" => Some(Self::Sent),
            "FAILED" => Some(Self::Failed),
            "DROPPED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Seals codes while they wait in the outbox: ChaCha20-Poly1305 under a key derived from the
/// audit key, bound to the challenge (a sealed code copied to another row does not open).
/// Without an audit key the key is random and lives only in this process: codes are still never
/// stored in clear, but one queued by another instance, or before a restart, cannot be opened
/// (its send is given back, so the customer can ask again), as `serve` warns.
#[derive(Clone)]
pub struct CodeSeal {
    cipher: Arc<ChaCha20Poly1305>,
}

impl std::fmt::Debug for CodeSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSeal")
    }
}

const SEALED: u8 = 1;
const NONCE_BYTES: usize = 12;

impl CodeSeal {
    /// Under a random key of this process alone.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self {
            cipher: Arc::new(ChaCha20Poly1305::new(&key.into())),
        })
    }

    /// Under a key derived from the audit key, so that no other secret needs managing.
    pub fn derived_from(audit_key: &[u8]) -> Result<Self, SealError> {
        let key = super::keys::derive(audit_key, b"finhub outbox code key v1").ok_or(SealError)?;
        Ok(Self {
            cipher: Arc::new(ChaCha20Poly1305::new(&key.into())),
        })
    }

    pub fn seal(&self, code: &OtpCode, challenge: &ChallengeId) -> Result<Vec<u8>, SealError> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: code.expose().as_bytes(),
                    aad: challenge.as_str().as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        Ok([&[SEALED][..], &nonce[..], &sealed].concat())
    }

    /// The code, or `None` when it was sealed under another key (or altered).
    pub fn open(&self, sealed: &[u8], challenge: &ChallengeId) -> Option<OtpCode> {
        let (&SEALED, rest) = sealed.split_first()? else {
            return None;
        };
        if rest.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: body,
                    aad: challenge.as_str().as_bytes(),
                },
            )
            .ok()?;
        OtpCode::parse(std::str::from_utf8(&plain).ok()?).ok()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the code could not be sealed")]
pub struct SealError;

/// The text of a code's message (the SMS, and both bodies of the e-mail), with `{code}` and
/// `{minutes}` in place of the code and its validity. It must name FinHub and both values, and
/// never carry a link: a message with a link is what phishing looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTemplate(String);

impl Default for CodeTemplate {
    fn default() -> Self {
        Self(
            "Your FinHub security code is {code}. It expires in {minutes} minutes. \
             FinHub will never ask you for it."
                .to_owned(),
        )
    }
}

impl CodeTemplate {
    /// Longest accepted: two SMS segments.
    const MAX_CHARS: usize = 300;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let lower = raw.to_lowercase();
        if !raw.contains("{code}") || !raw.contains("{minutes}") {
            Err(InvalidValue("must contain {code} and {minutes}"))
        } else if !raw.contains("FinHub") {
            Err(InvalidValue("must name FinHub"))
        } else if ["://", "www.", "http"]
            .iter()
            .any(|link| lower.contains(link))
        {
            Err(InvalidValue("must not contain a link"))
        } else if raw.chars().count() > Self::MAX_CHARS {
            Err(InvalidValue("must be at most 300 characters"))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn render(&self, code: &OtpCode, minutes: i64) -> String {
        self.0
            .replace("{minutes}", &minutes.to_string())
            .replace("{code}", code.expose())
    }
}

/// How hard delivery tries.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Attempts before a message is given up on.
    pub max_attempts: u32,
    /// The wait before the first retry; each further one doubles it, up to `max_delay`, with
    /// jitter so that retries from many messages do not arrive together.
    pub first_retry: StdDuration,
    pub max_delay: StdDuration,
    /// How long a claim keeps other workers off a message: longer than any one send takes.
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            first_retry: StdDuration::from_secs(2),
            max_delay: StdDuration::from_secs(60),
            lease: Duration::seconds(60),
        }
    }
}

impl DeliveryPolicy {
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
/// Messages claimed per pass.
const BATCH: u32 = 32;

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

    /// Delivers until the process ends: when woken, and every `every` for retries and messages
    /// queued by other instances.
    pub async fn run(self, every: StdDuration) {
        loop {
            match self.deliver_due().await {
                // A full batch: there may be more waiting.
                Ok(n) if n == BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "code delivery pass failed; will retry"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass: claims the messages due now and delivers each. Returns how many it claimed.
    pub async fn deliver_due(&self) -> StoreResult<usize> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_codes(now, self.policy.lease, BATCH)
            .await?;
        for message in &claimed {
            self.deliver(message).await?;
        }
        Ok(claimed.len())
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
        if now >= message.expires_at {
            metrics::counter!(DELIVERY_METRIC, "outcome" => "dropped").increment(1);
            let dropped = event(Outcome::Failure, Some("expired"));
            return self
                .store
                .finish_code(message, DeliveryEnd::Dropped, None, &dropped)
                .await;
        }
        let Some(code) = self.seal.open(&message.sealed_code, &message.challenge_id) else {
            // Sealed under another key: no attempt can succeed.
            let failed = event(Outcome::Failure, Some("unreadable"));
            metrics::counter!(DELIVERY_METRIC, "outcome" => "failed").increment(1);
            tracing::error!(challenge.id = %message.challenge_id, "queued code cannot be opened with this audit key");
            return self
                .store
                .finish_code(message, DeliveryEnd::Failed, Some("unreadable"), &failed)
                .await;
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
        match self.notifier.send(&outgoing).await {
            Ok(()) => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "sent").increment(1);
                let waited = (self.clock.now() - message.created_at).as_seconds_f64();
                metrics::histogram!(LATENCY_METRIC).record(waited.max(0.0));
                let sent = event(Outcome::Success, None);
                self.store
                    .finish_code(message, DeliveryEnd::Sent, None, &sent)
                    .await
            }
            Err(e) if e.permanent || message.attempts >= self.policy.max_attempts => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "failed").increment(1);
                tracing::error!(error = %e, challenge.id = %message.challenge_id, "code not delivered; giving up");
                let why = if e.permanent { "refused" } else { "gave_up" };
                let failed = event(Outcome::Failure, Some(why));
                self.store
                    .finish_code(message, DeliveryEnd::Failed, Some(&e.to_string()), &failed)
                    .await
            }
            Err(e) => {
                metrics::counter!(DELIVERY_METRIC, "outcome" => "retried").increment(1);
                tracing::warn!(error = %e, challenge.id = %message.challenge_id, attempt = message.attempts, "code not delivered; will retry");
                let next = now + self.policy.retry_delay(message.attempts);
                self.store
                    .retry_code(&message.challenge_id, next, &e.to_string())
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_code_opens_only_for_its_challenge_and_key() {
        let seal = CodeSeal::derived_from(&[7; 32]).unwrap();
        let code = OtpCode::parse("123456").unwrap();
        let challenge = ChallengeId::parse("challenge-1").unwrap();
        let sealed = seal.seal(&code, &challenge).unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"123456"),
            "the code is not readable at rest"
        );
        let opened = seal.open(&sealed, &challenge).unwrap();
        assert_eq!(opened.expose(), "123456");
        let other = ChallengeId::parse("challenge-2").unwrap();
        assert!(
            seal.open(&sealed, &other).is_none(),
            "bound to its challenge"
        );
        assert!(
            CodeSeal::derived_from(&[8; 32])
                .unwrap()
                .open(&sealed, &challenge)
                .is_none()
        );
        assert!(
            CodeSeal::ephemeral()
                .unwrap()
                .open(&sealed, &challenge)
                .is_none()
        );
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(seal.open(&altered, &challenge).is_none());
        assert_ne!(
            sealed,
            seal.seal(&code, &challenge).unwrap(),
            "a fresh nonce each time"
        );
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

    #[test]
    fn a_template_names_finhub_the_code_and_its_validity_and_carries_no_link() {
        let code = OtpCode::parse("123456").unwrap();
        let text = CodeTemplate::default().render(&code, 10);
        assert!(text.contains("FinHub") && text.contains("123456") && text.contains("10 minutes"));
        let own =
            CodeTemplate::parse("FinHub: {code} (valid {minutes} min). Never share it.").unwrap();
        assert_eq!(
            own.render(&code, 5),
            "FinHub: 123456 (valid 5 min). Never share it."
        );
        for refused in [
            "FinHub code {code}",
            "Your code is {code}, valid {minutes} minutes",
            "FinHub {code} {minutes} https://finhub.example",
            "FinHub {code} {minutes} see www.finhub.example",
            &format!("FinHub {{code}} {{minutes}} {}", "x".repeat(300)),
        ] {
            assert!(CodeTemplate::parse(refused).is_err(), "{refused}");
        }
    }
}
