//! Password login.

use super::passkey_login::ceremony_not_open;
use super::{AuthService, IssuedSession, count_outcome, rate_limited, session_event};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::challenge::{OtpCode, Spend};
use crate::domain::credentials::factor::{FactorId, FactorKind};
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::credentials::password::{HashError, Password};
use crate::domain::customers::{Customer, Username};
use crate::domain::error::AuthError;
use crate::domain::ports::{LoginCandidate, SessionStart};
use crate::domain::risk::DeviceStanding;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::token::TokenPair;
use crate::domain::sessions::{NewSession, OneStepProof, SessionId, SessionState};

pub(super) const LOGIN_METRIC: &str = "finhub_logins_total";

impl AuthService {
    /// Exchanges a username and password for a session. Unknown usernames cost the same hashing
    /// work as known ones and fail identically; failures count towards a lock whether or not the
    /// username exists, and a locked username is refused before any password is checked.
    ///
    /// With `totp` (a one-step login), a customer who holds an authenticator app has password
    /// and code judged together: both right start an ACTIVE session at once; either wrong is
    /// one failure and the same `INVALID_CREDENTIALS`, saying neither which. For a customer
    /// without an app the code is ignored.
    pub async fn login(
        &self,
        username: &Username,
        password: &Password,
        totp: Option<&OtpCode>,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        // From here on the device is known only by its keyed hash: the audit trail, the session
        // and the device list never see the fingerprint itself.
        let client = &self.prepared(client);
        let now = self.clock.now();
        let attempt = |outcome| {
            AuditEvent::new(AuditKind::LoginFailed, outcome, now)
                .username(username)
                .client(client)
        };

        let limited = self.limits.check_login(client.ip, username.as_str()).await;
        self.refuse_limited(username, limited, client, now)?;
        // The counters, the customer and the device's standing in one read: a locked username
        // is refused on them.
        let fingerprint = client.device.as_ref().map(|d| d.fingerprint.as_str());
        let LoginCandidate {
            lockout,
            customer,
            device,
        } = self.store.login_candidate(username, fingerprint).await?;
        self.refuse_locked(username, &lockout, client, now)?;
        // Only now: a locked username is refused alike whatever its customer's row holds.
        let customer = customer?;

        let stored_hash = customer.as_ref().map(|c| c.password_hash.as_str());
        let verification = match self.hasher.verify(password, stored_hash).await {
            Ok(v) => v,
            Err(HashError::Overloaded) => {
                // Refused unchecked: shedding load must not add a write.
                self.refusals
                    .count("service_overloaded", username, client, now);
                count_outcome(LOGIN_METRIC, "service_overloaded");
                return Err(AuthError::Overloaded);
            }
            Err(e) => return Err(e.into()),
        };
        let customer = match customer {
            Some(c) if verification.matches => c,
            other => {
                let event = attempt(Outcome::Failure).reason("invalid_credentials");
                return Err(self
                    .refused(username, other.as_ref(), &lockout, event, now)
                    .await?);
            }
        };
        let proof = match totp {
            Some(code) => match self.one_step_proof(&customer, code, now).await? {
                OneStep::NotHeld => None,
                OneStep::Proved(proof) => Some(proof),
                OneStep::Wrong => {
                    let event = attempt(Outcome::Failure).reason("invalid_totp");
                    return Err(self
                        .refused(username, Some(&customer), &lockout, event, now)
                        .await?);
                }
            },
            None => None,
        };

        let needs_rehash = verification.needs_rehash;
        let issued = match self
            .start_session(customer.clone(), client, proof, device)
            .await
        {
            Err(AuthError::InvalidCredentials) => {
                // The app's code was used meanwhile (on any instance): a failure like any other.
                let event = attempt(Outcome::Failure).reason("invalid_totp");
                return Err(self
                    .refused(username, Some(&customer), &lockout, event, now)
                    .await?);
            }
            other => other?,
        };
        // Only once the session has started, which re-checked the lock: a locked account's
        // right password must not be told from a wrong one by a rehash.
        if needs_rehash {
            self.upgrade_hash(&customer, password).await;
        }
        Ok(issued)
    }

    /// A login the rate limits (`limited`, as checked) or the username's lock refuse before
    /// anything is verified: counted, and audited in aggregate. Otherwise the lock record, as
    /// read.
    pub(super) async fn admit_login(
        &self,
        username: &Username,
        limited: Result<(), std::time::Duration>,
        client: &ClientContext,
        now: time::OffsetDateTime,
    ) -> Result<LockoutRecord, AuthError> {
        self.refuse_limited(username, limited, client, now)?;
        let lockout = self.store.lockout(username).await?;
        self.refuse_locked(username, &lockout, client, now)?;
        Ok(lockout)
    }

    /// Refuses a login the rate limits refused (`limited`, as checked), counted and audited in
    /// aggregate.
    fn refuse_limited(
        &self,
        username: &Username,
        limited: Result<(), std::time::Duration>,
        client: &ClientContext,
        now: time::OffsetDateTime,
    ) -> Result<(), AuthError> {
        limited.map_err(|wait| {
            self.refusals.count("rate_limited", username, client, now);
            count_outcome(LOGIN_METRIC, "rate_limited");
            rate_limited(wait)
        })
    }

    /// Refuses a login of a username `lockout` (as read) locks, counted and audited in
    /// aggregate.
    fn refuse_locked(
        &self,
        username: &Username,
        lockout: &LockoutRecord,
        client: &ClientContext,
        now: time::OffsetDateTime,
    ) -> Result<(), AuthError> {
        match lockout.lock_at(now) {
            Some(lock) => {
                self.refusals.count("account_locked", username, client, now);
                count_outcome(LOGIN_METRIC, "account_locked");
                Err(AuthError::AccountLocked {
                    until: lock.until(),
                })
            }
            None => Ok(()),
        }
    }

    /// Counts a refused login toward the username's lock (whether or not it belongs to a
    /// customer; `record` as read before) and says how to answer it. A customer whose account
    /// this locks is told.
    pub(super) async fn refused(
        &self,
        username: &Username,
        customer: Option<&Customer>,
        record: &LockoutRecord,
        event: AuditEvent,
        now: time::OffsetDateTime,
    ) -> Result<AuthError, AuthError> {
        let (event, lock_notices) = match customer {
            Some(c) => (
                event.customer(&c.id),
                self.lock_notices(c, record, now).await?,
            ),
            None => (event, Vec::new()),
        };
        let failure = self
            .store
            .record_failure(username, &self.policies.lockout, &event, &lock_notices)
            .await?;
        if failure.counted && failure.record.lock_at(now).is_some() {
            for notice in &lock_notices {
                self.courier.queued(notice);
            }
        }
        Ok(if failure.counted {
            count_outcome(LOGIN_METRIC, "invalid_credentials");
            AuthError::InvalidCredentials
        } else {
            count_outcome(LOGIN_METRIC, "account_locked");
            locked(&failure.record, now)
        })
    }

    /// Judges a one-step login's code against the customer's authenticator apps.
    async fn one_step_proof(
        &self,
        customer: &Customer,
        code: &OtpCode,
        now: time::OffsetDateTime,
    ) -> Result<OneStep, AuthError> {
        let apps: Vec<FactorId> = self
            .store
            .factors(&customer.id)
            .await?
            .into_iter()
            .filter(|h| h.factor.kind == FactorKind::Totp)
            .map(|h| h.factor.id)
            .collect();
        if apps.is_empty() {
            return Ok(OneStep::NotHeld);
        }
        for factor in apps {
            if let Some(step) = self.totp_step(&factor, code, now).await? {
                return Ok(OneStep::Proved(OneStepProof {
                    factor,
                    spend: Spend::TotpStep {
                        customer: customer.id.clone(),
                        step,
                    },
                    ceremony: None,
                }));
            }
        }
        Ok(OneStep::Wrong)
    }

    /// Starts the session of a login that proved what it had to; `device`, the standing of its
    /// device if it was read already.
    pub(super) async fn start_session(
        &self,
        customer: Customer,
        client: &ClientContext,
        proof: Option<OneStepProof>,
        device: Option<DeviceStanding>,
    ) -> Result<IssuedSession, AuthError> {
        let now = self.clock.now();
        let action = self.policies.risk;
        let mut client = client.clone();
        let judgement = self.judge(&customer, &mut client, device, now).await?;
        let client = &client;
        let flags = &judgement.flags;
        // Step-up: an unusual (or unjudgeable) login of a customer without 2FA owes a code by
        // e-mail.
        let step_up = judgement.needs_step_up(action);
        // A stepped-up login proves the mailbox first, even where every customer must enrol a
        // factor: a stolen password from an unusual place must not be enough to enrol the
        // thief's own factor. A usual login of a customer without one enrols.
        let state = if proof.is_some() {
            SessionState::Active
        } else if customer.factor.is_some() || step_up {
            SessionState::TwoFactorPending
        } else if self.policies.require_two_factor {
            SessionState::EnrolmentRequired
        } else {
            SessionState::Active
        };
        let notice = judgement
            .tells_customer(action)
            .then(|| self.notice(&customer, client, flags, now));
        let tokens = TokenPair::generate()?;
        let policy = &self.policies.session;
        let session = NewSession {
            id: SessionId::generate(),
            customer_id: customer.id.clone(),
            state,
            access_hash: tokens.access.hash(),
            refresh_hash: tokens.refresh.hash(),
            created_at: now,
            expires_at: policy.expiry(state, now, now),
            absolute_expires_at: policy.absolute_expiry(now),
            // Complete at once for a customer without a second factor, whose password is all
            // they can prove, and for a one-step login, which proved both.
            recent_auth_at: (state == SessionState::Active).then_some(now),
            client: client.clone(),
            proof,
            limit: policy.limit(),
        };
        let flag_names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let event = session_event(
            AuditKind::LoginSucceeded,
            Outcome::Success,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("state", state.as_str())
        .detail("flags", flag_names)
        .detail("stepUp", step_up)
        .detail("oneStep", session.proof.is_some());
        let event = match &session.proof {
            Some(proof) => event
                .detail("method", proof.spend.method().as_str())
                .detail("factorId", proof.factor.as_str()),
            None => event,
        };
        match self
            .store
            .start_session(&session, &customer.username, &event, notice.as_ref())
            .await?
        {
            SessionStart::Started { .. } => {
                count_outcome(LOGIN_METRIC, "success");
                for flag in flags {
                    metrics::counter!("finhub_risk_flags_total", "flag" => flag.as_str())
                        .increment(1);
                }
                if let Some(notice) = &notice {
                    self.courier.queued(notice);
                }
                Ok(IssuedSession {
                    session_id: session.id,
                    tokens,
                    issued_at: now,
                    expires_at: session.expires_at,
                    two_factor_required: state != SessionState::Active,
                    enrolment_required: state == SessionState::EnrolmentRequired,
                })
            }
            // Reported to `login`, which counts it as the failure it is.
            SessionStart::ProofSpent => Err(AuthError::InvalidCredentials),
            SessionStart::CeremonyAnswered => Err(ceremony_not_open()),
            SessionStart::Locked(record) => {
                // Locked between the password check and now: answer as any locked login.
                let refused = AuditEvent::new(AuditKind::LoginFailed, Outcome::Failure, now)
                    .username(&customer.username)
                    .customer(&customer.id)
                    .client(client)
                    .reason("account_locked");
                self.store.append_event(&refused).await?;
                count_outcome(LOGIN_METRIC, "account_locked");
                Err(locked(&record, now))
            }
        }
    }

    /// Re-hashes a password whose stored hash has outdated parameters. The login goes ahead if
    /// this fails; it is tried again next time.
    async fn upgrade_hash(&self, customer: &Customer, password: &Password) {
        let result = async {
            let new_hash = self.hasher.hash(password).await?;
            let event = AuditEvent::new(
                AuditKind::PasswordRehashed,
                Outcome::Success,
                self.clock.now(),
            )
            .username(&customer.username)
            .customer(&customer.id);
            self.store
                .replace_password_hash(&customer.id, &customer.password_hash, &new_hash, &event)
                .await?;
            Ok::<_, AuthError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(customer.id = %customer.id, error = %e, "password hash upgrade failed");
        }
    }
}

/// What a one-step login's code proves.
enum OneStep {
    /// The customer holds no authenticator app: the code is ignored.
    NotHeld,
    /// It is one of their apps' current codes.
    Proved(OneStepProof),
    /// It is none of them.
    Wrong,
}

fn locked(record: &LockoutRecord, now: time::OffsetDateTime) -> AuthError {
    AuthError::AccountLocked {
        until: record.lock_at(now).and_then(|l| l.until()),
    }
}
