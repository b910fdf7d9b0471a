//! Password login.

use super::{AuthService, IssuedSession, count_outcome};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::client::{ClientContext, Device};
use crate::domain::customer::{Customer, Username};
use crate::domain::error::AuthError;
use crate::domain::location::Location;
use crate::domain::lockout::LockoutRecord;
use crate::domain::password::{HashError, Password};
use crate::domain::ports::{SecurityNotice, SessionStart};
use crate::domain::risk::{self, LoginHistory, RiskAction, RiskFlag};
use crate::domain::session::{NewSession, SessionId, SessionState};
use crate::domain::token::TokenPair;

const LOGIN_METRIC: &str = "finhub_logins_total";

impl AuthService {
    /// Exchanges a username and password for a session. Unknown usernames cost the same hashing
    /// work as known ones and fail identically; failures count towards a lock whether or not the
    /// username exists, and a locked username is refused before any password is checked.
    pub async fn login(
        &self,
        username: &Username,
        password: &Password,
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

        // Refusals before the password is checked are counted, and audited in aggregate.
        if let Err(wait) = self.limits.check_login(client.ip, username.as_str()).await {
            self.refusals.count("rate_limited", username, client, now);
            count_outcome(LOGIN_METRIC, "rate_limited");
            return Err(AuthError::RateLimited {
                retry_after: time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND),
            });
        }

        let lockout = self.store.lockout(username).await?;
        if let Some(lock) = lockout.lock_at(now) {
            self.refusals.count("account_locked", username, client, now);
            count_outcome(LOGIN_METRIC, "account_locked");
            return Err(AuthError::AccountLocked {
                until: lock.until(),
            });
        }

        let customer = self.store.customer_by_username(username).await?;
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
                let mut event = attempt(Outcome::Failure).reason("invalid_credentials");
                if let Some(c) = &other {
                    event = event.customer(&c.id);
                }
                let failure = self
                    .store
                    .record_failure(username, &self.policies.lockout, &event)
                    .await?;
                return Err(if failure.counted {
                    count_outcome(LOGIN_METRIC, "invalid_credentials");
                    AuthError::InvalidCredentials
                } else {
                    count_outcome(LOGIN_METRIC, "account_locked");
                    locked(&failure.record, now)
                });
            }
        };

        let needs_rehash = verification.needs_rehash;
        let issued = self.start_session(customer.clone(), client).await?;
        // Only once the session has started, which re-checked the lock: a locked account's
        // right password must not be told from a wrong one by a rehash.
        if needs_rehash {
            self.upgrade_hash(&customer, password).await;
        }
        Ok(issued)
    }

    /// The client as the rest of the login sees it: the device known only by its keyed hash,
    /// and the address located.
    fn prepared(&self, client: &ClientContext) -> ClientContext {
        let device = client.device.as_ref().map(|d| Device {
            fingerprint: self.policies.devices.hash(&d.fingerprint),
            name: d.name.clone(),
        });
        let mut client = client.clone().with_device(device);
        if let Some(ip) = client.ip {
            client.location = self.locator.locate(ip);
        }
        client
    }

    /// Why this login is unusual for the customer, from their own history.
    async fn risk_flags(
        &self,
        customer: &Customer,
        client: &ClientContext,
        now: time::OffsetDateTime,
    ) -> Result<Vec<RiskFlag>, AuthError> {
        let located = client.location != Location::default();
        // Nothing to judge (no device named, no location database): no reads on the login path.
        if client.device.is_none() && !located {
            return Ok(Vec::new());
        }
        let device_known = match &client.device {
            Some(device) => Some(
                self.store
                    .device_known(&customer.id, &device.fingerprint)
                    .await?,
            ),
            None => None,
        };
        let history = if located {
            self.store.login_history(&customer.id).await?
        } else {
            LoginHistory {
                completed_before: customer.last_login_at.is_some(),
                ..LoginHistory::default()
            }
        };
        Ok(risk::assess(&history, &client.location, device_known, now))
    }

    /// Tells the customer about an unusual sign-in by e-mail, once per new signal: the same new
    /// country, network or device is not announced again, even before a login on it completes.
    async fn tell_customer(
        &self,
        customer: &Customer,
        client: &ClientContext,
        flags: &[RiskFlag],
        now: time::OffsetDateTime,
    ) {
        let location = &client.location;
        let signal: Vec<String> = flags
            .iter()
            .map(|flag| {
                let what = match flag {
                    RiskFlag::NewCountry => location.country.clone().unwrap_or_default(),
                    RiskFlag::NewNetwork => location.asn.map(|a| a.to_string()).unwrap_or_default(),
                    RiskFlag::NewDevice => client
                        .device
                        .as_ref()
                        .map(|d| d.fingerprint.clone())
                        .unwrap_or_default(),
                    RiskFlag::ImpossibleTravel => format!("{now}"),
                };
                format!("{}:{what}", flag.as_str())
            })
            .collect();
        let result = async {
            if !self
                .store
                .claim_notice(&customer.id, &signal.join("|"), now)
                .await?
            {
                return Ok(());
            }
            let notice = SecurityNotice {
                at: now,
                to: customer.email.as_str().to_owned(),
                customer_id: customer.id.clone(),
                country: location.country.clone(),
                device: client.device.as_ref().and_then(|d| d.name.clone()),
                flags: flags.iter().map(|f| f.as_str()).collect(),
            };
            self.notifier
                .send_notice(&notice)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))
        }
        .await;
        if let Err(e) = result {
            // The login stands; the notice is best effort.
            tracing::warn!(customer.id = %customer.id, error = %e, "security notice not sent");
        }
    }

    async fn start_session(
        &self,
        customer: Customer,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let now = self.clock.now();
        let flags = self.risk_flags(&customer, client, now).await?;
        // Step-up: an unusual login of a customer without 2FA owes a code by e-mail.
        let step_up = !flags.is_empty() && self.policies.risk == RiskAction::StepUp;
        let state = if customer.two_factor.is_some() || step_up {
            SessionState::TwoFactorPending
        } else {
            SessionState::Active
        };
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
            client: client.clone(),
        };
        let flag_names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        let event = AuditEvent::new(AuditKind::LoginSucceeded, Outcome::Success, now)
            .username(&customer.username)
            .customer(&customer.id)
            .session(&session.id)
            .client(client)
            .detail("state", state.as_str())
            .detail("flags", flag_names)
            .detail("stepUp", step_up);
        match self
            .store
            .start_session(&session, &customer.username, &event)
            .await?
        {
            SessionStart::Started { .. } => {
                count_outcome(LOGIN_METRIC, "success");
                for flag in &flags {
                    metrics::counter!("finhub_risk_flags_total", "flag" => flag.as_str())
                        .increment(1);
                }
                if !flags.is_empty() && self.policies.risk == RiskAction::Notify {
                    self.tell_customer(&customer, client, &flags, now).await;
                }
                Ok(IssuedSession {
                    session_id: session.id,
                    tokens,
                    issued_at: now,
                    expires_at: session.expires_at,
                    two_factor_required: state == SessionState::TwoFactorPending,
                })
            }
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

fn locked(record: &LockoutRecord, now: time::OffsetDateTime) -> AuthError {
    AuthError::AccountLocked {
        until: record.lock_at(now).and_then(|l| l.until()),
    }
}
