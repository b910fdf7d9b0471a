//! The login flow: password login, the session checks on every call, two-factor, renewal and
//! logout. [`AuthService`] holds the rules; the store makes each state change atomic.

mod answers;
mod asking;
mod challenges;
mod details;
mod factors;
mod lockdown;
mod login;
mod passkey_login;
mod password_change;
mod password_reset;
mod recovery_codes;
mod renewal;
mod second_factor;
pub mod security;
mod step_up;
mod unusual;

use std::sync::Arc;

pub use answers::Presented;
pub use details::{CustomerDetails, TwoFactorSettings};
pub use factors::{FactorAdded, FactorList, NewFactor};
pub use passkey_login::PasskeyLoginOptions;
pub use password_reset::ResetRequested;
pub use recovery_codes::RecoveryCodes;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::ChallengeMethod;
use crate::domain::credentials::challenge::{CodeKey, TwoFactorPolicy};
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::credentials::passkey_login::CeremonySeal;
use crate::domain::credentials::password::{PasswordHasher, PasswordPolicy};
use crate::domain::credentials::recovery::RecoveryKey;
use crate::domain::credentials::totp::TotpSeal;
use crate::domain::customers::{Customer, CustomerId};
use crate::domain::delivery::Courier;
use crate::domain::error::AuthError;
use crate::domain::ports::{PasskeyCeremonies, Store};
use crate::domain::risk::RiskAction;
use crate::domain::risk::client::ClientContext;
use crate::domain::risk::device::DeviceKey;
use crate::domain::risk::location::{Locator, Nowhere};
use crate::domain::risk::rate_limit::RateLimits;
use crate::domain::risk::refusals::Refusals;
use crate::domain::sessions::token::{SessionToken, TokenPair};
use crate::domain::sessions::{Ended, Session, SessionId, SessionPolicy, SessionState};

/// Reset requests whose work (reading the customer, queueing the code) may wait at once: more
/// than a burst the store works off in a moment, fewer than a flood could pile up.
const RESET_SLOTS: usize = 256;

/// Every configurable rule of the flow.
#[derive(Debug, Clone)]
pub struct Policies {
    /// Session lifetimes and idle limits.
    pub session: SessionPolicy,
    /// When failed logins and wrong codes lock a username.
    pub lockout: LockoutPolicy,
    /// Codes' lifetime and the limits on guessing and sending them.
    pub two_factor: TwoFactorPolicy,
    /// How device fingerprints are hashed before anything else sees them.
    pub devices: DeviceKey,
    /// How codes are hashed for storage.
    pub codes: CodeKey,
    /// What an unusual login triggers.
    pub risk: RiskAction,
    /// What a new password must be.
    pub passwords: PasswordPolicy,
    /// How recovery codes are hashed for storage.
    pub recovery: RecoveryKey,
    /// How authenticator apps' secrets are sealed; `None` (no audit key): apps cannot be added.
    pub totp: Option<TotpSeal>,
    /// Every customer must hold a factor (`FINHUB_REQUIRE_2FA`): one without enrols at login.
    pub require_two_factor: bool,
    /// How long a password reset's code is valid (`FINHUB_PASSWORD_RESET_TTL`).
    pub reset_ttl: time::Duration,
    /// Passwordless login with a passkey (`FINHUB_PASSKEY_LOGIN`), while passkeys are on.
    pub passkey_login: bool,
    /// How passkey logins' ceremonies are sealed into the `challengeId` the browser answers with.
    pub passkey_logins: CeremonySeal,
}

/// A session and the tokens just issued for it (shown to the customer once).
#[derive(Debug)]
pub struct IssuedSession {
    /// Opaque; how the customer names the session when listing or ending sessions.
    pub session_id: SessionId,
    /// The access and refresh tokens in clear: the store keeps only their hashes, so they cannot be
    /// shown again.
    pub tokens: TokenPair,
    /// When the tokens were issued.
    pub issued_at: OffsetDateTime,
    /// When the access token stops working unless renewed; never past the absolute lifetime.
    pub expires_at: OffsetDateTime,
    /// Whether the session is pending until a second factor is verified; until then it may do
    /// little.
    pub two_factor_required: bool,
    /// Whether the session must first enrol a factor (two-factor required of everyone).
    pub enrolment_required: bool,
}

/// A code sent for a pending session.
#[derive(Debug)]
pub struct ChallengeIssued {
    /// What the client names with the code it guesses.
    pub challenge_id: crate::domain::credentials::challenge::ChallengeId,
    /// How it is answered: a code by SMS or e-mail (a factor the customer holds), the password.
    pub method: ChallengeMethod,
    /// Where the code went, masked, so that the customer recognises it without it being
    /// disclosed; `None` when nothing was sent.
    pub destination: Option<String>,
    /// After this the challenge is refused; the customer must ask for a new one.
    pub expires_at: OffsetDateTime,
    /// The earliest moment another code may be sent for the session; `None` when nothing was
    /// sent.
    pub resend_available_at: Option<OffsetDateTime>,
    /// A passkey ceremony's options (`PublicKeyCredentialRequestOptions` or
    /// `…CreationOptions`), for the browser.
    pub public_key: Option<serde_json::Value>,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// Only the session that asks.
    ThisSession,
    /// Every session of the customer; it takes an ACTIVE session, so a password alone cannot do it.
    AllSessions,
}

/// The login flow's rules, over a store, a clock, a hasher and the delivery worker.
#[derive(Clone)]
pub struct AuthService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    policies: Policies,
    limits: Arc<RateLimits>,
    refusals: Arc<Refusals>,
    locator: Arc<dyn Locator>,
    courier: Courier,
    /// Work a request leaves running after its answer (see [`Self::settle`]).
    background: TaskTracker,
    /// Reset requests whose work may run at once; past them, requests are shed.
    reset_slots: Arc<Semaphore>,
    /// WebAuthn for the configured relying party; `None`: passkeys are off.
    passkeys: Option<Arc<dyn PasskeyCeremonies>>,
}

impl AuthService {
    /// The service over its collaborators; locations are unknown until [`Self::locating_with`]
    /// gives a locator.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
        policies: Policies,
        limits: Arc<RateLimits>,
        courier: Courier,
    ) -> Self {
        Self {
            store,
            clock,
            hasher,
            policies,
            limits,
            refusals: Arc::default(),
            locator: Arc::new(Nowhere),
            courier,
            background: TaskTracker::new(),
            reset_slots: Arc::new(Semaphore::new(RESET_SLOTS)),
            passkeys: None,
        }
    }

    /// Accepts passkeys, by `ceremonies`, from now on.
    pub fn with_passkeys(mut self, ceremonies: Arc<dyn PasskeyCeremonies>) -> Self {
        self.passkeys = Some(ceremonies);
        self
    }

    /// Locates login addresses with `locator` (a location database) from now on.
    pub fn locating_with(mut self, locator: Arc<dyn Locator>) -> Self {
        self.locator = locator;
        self
    }

    /// What is wrong with the location databases, for readiness; `None` while nothing is.
    pub fn location_trouble(&self) -> Option<String> {
        self.locator.trouble()
    }

    /// Counts an API call refused before it changed anything, by its error code and the
    /// client's address; recorded with the other refusals.
    pub fn refused_request(&self, code: &'static str, ip: Option<std::net::IpAddr>) {
        self.refusals.count_request(code, ip, self.clock.now());
    }

    /// Audits the refusals (logins, guesses at codes, replayed refresh tokens) counted since
    /// the last call, one event per key (see [`Refusals`]). Run every minute, and at shutdown.
    pub async fn flush_refusals(&self) {
        let events = self.refusals.drain();
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.store.append_events(&events).await {
            tracing::warn!(error = %e, events = events.len(), "refusals could not be audited");
        }
    }

    /// Resolves a bearer token to its live session and records the call as activity. Tokens
    /// that are not this service's shape never reach the store.
    pub async fn authenticate(&self, bearer: &str) -> Result<Session, AuthError> {
        let token = SessionToken::parse(bearer).ok_or(AuthError::Unauthenticated)?;
        let session = self
            .store
            .session_by_access(&token.hash())
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        self.admit(session).await
    }

    /// The customer behind a bearer token, as much as its session may see: the session and the
    /// customer come from one read, as the service's most frequent call deserves.
    pub async fn customer_details(&self, bearer: &str) -> Result<CustomerDetails, AuthError> {
        let (session, customer) = self.authenticate_with_customer(bearer).await?;
        Ok(CustomerDetails::for_session(customer, session))
    }

    /// [`AuthService::authenticate`], with the session's customer read in the same statement,
    /// for the calls that need both.
    pub async fn authenticate_with_customer(
        &self,
        bearer: &str,
    ) -> Result<(Session, Customer), AuthError> {
        let token = SessionToken::parse(bearer).ok_or(AuthError::Unauthenticated)?;
        let (session, customer) = self
            .store
            .session_with_customer_by_access(&token.hash())
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        Ok((self.admit(session).await?, customer))
    }

    /// Applies the session rules to a call at this moment, recording it as activity once per
    /// [`SessionPolicy::activity_resolution`].
    async fn admit(&self, session: Session) -> Result<Session, AuthError> {
        let now = self.clock.now();
        self.policies
            .session
            .check_access(&session, now)
            .map_err(ended_error)?;
        if !self.policies.session.should_record_activity(&session, now) {
            return Ok(session);
        }
        self.store.touch_session(&session.id, now).await?;
        Ok(Session {
            last_seen_at: now,
            ..session
        })
    }

    /// Ends this session, or every session of its customer, at once. Ending every session takes
    /// an ACTIVE one: a password alone must not log the customer out everywhere.
    pub async fn logout(
        &self,
        session: &Session,
        scope: LogoutScope,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        if scope == LogoutScope::AllSessions {
            Self::require_active(session)?;
        }
        let event = AuditEvent::new(AuditKind::Logout, Outcome::Success, self.clock.now())
            .customer(&session.customer_id)
            .session(&session.id)
            .client(client);
        match scope {
            LogoutScope::ThisSession => {
                let event = event.detail("scope", "session");
                self.store
                    .revoke_session(&session.id, "logout", &event)
                    .await?;
            }
            LogoutScope::AllSessions => {
                let event = event.detail("scope", "all");
                self.store
                    .revoke_customer_sessions(&session.customer_id, "logout_all", &event)
                    .await?;
            }
        }
        Ok(())
    }

    fn require_active(session: &Session) -> Result<(), AuthError> {
        match session.state {
            SessionState::Active => Ok(()),
            SessionState::TwoFactorPending => Err(AuthError::TwoFactorRequired),
            SessionState::EnrolmentRequired => Err(AuthError::EnrolmentRequired),
            SessionState::PasswordReset => Err(AuthError::PasswordResetInProgress),
        }
    }

    /// An ACTIVE session, or one that must first enrol a factor (adding and confirming one is
    /// what it may do).
    fn require_active_or_enrolling(session: &Session) -> Result<(), AuthError> {
        match session.state {
            SessionState::Active | SessionState::EnrolmentRequired => Ok(()),
            SessionState::TwoFactorPending => Err(AuthError::TwoFactorRequired),
            SessionState::PasswordReset => Err(AuthError::PasswordResetInProgress),
        }
    }

    /// A session that owes its second factor: a login's, or a password reset's that has not
    /// proved one yet.
    fn require_pending(session: &Session) -> Result<(), AuthError> {
        match session.state {
            SessionState::TwoFactorPending => Ok(()),
            SessionState::PasswordReset if !session.two_factor_verified => Ok(()),
            SessionState::Active | SessionState::PasswordReset => {
                Err(AuthError::TwoFactorNotPending)
            }
            SessionState::EnrolmentRequired => Err(AuthError::EnrolmentRequired),
        }
    }

    async fn customer_of(&self, id: &CustomerId) -> Result<Customer, AuthError> {
        self.store
            .customer_by_id(id)
            .await?
            .ok_or(AuthError::Unauthenticated)
    }
}

/// A revoked session is unknown to the caller; any other end is an expiry.
fn ended_error(ended: Ended) -> AuthError {
    match ended {
        Ended::Revoked => AuthError::Unauthenticated,
        Ended::Expired | Ended::Idle => AuthError::SessionExpired,
    }
}

/// The refusal of a call over the login rate limits, retryable after `wait`.
fn rate_limited(wait: std::time::Duration) -> AuthError {
    AuthError::RateLimited {
        retry_after: time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND),
    }
}

/// Counts an outcome for the metrics endpoint.
fn count_outcome(metric: &'static str, outcome: &'static str) {
    metrics::counter!(metric, "outcome" => outcome).increment(1);
}

/// An event of `kind` about `customer`'s `session`: who, which session, and from where.
fn session_event(
    kind: AuditKind,
    outcome: Outcome,
    now: OffsetDateTime,
    customer: &Customer,
    session: &SessionId,
    client: &ClientContext,
) -> AuditEvent {
    AuditEvent::new(kind, outcome, now)
        .username(&customer.username)
        .customer(&customer.id)
        .session(session)
        .client(client)
}
