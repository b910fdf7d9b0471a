//! Passwordless login with a passkey: the browser offers whichever discoverable credential the
//! customer picks, and a verified assertion (user verification required) proves both factors
//! at once. Guarded as a password login is: the same rate limits, the lock checked first, a bad
//! signature for a known passkey counted toward it.

use super::answers::{Assertion, counter_regressed, malformed_credential};
use super::login::LOGIN_METRIC;
use super::{AuthService, IssuedSession, count_outcome, rate_limited};
use crate::domain::InvalidValue;
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::credentials::passkey_login::{OpenedCeremony, PasskeyLoginId};
use crate::domain::customers::Customer;
use crate::domain::error::AuthError;
use crate::domain::ports::PasskeyCeremonies;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::OneStepProof;

/// What a passkey login's answer carries: the credential it names and the user handle it
/// says it was made for, beside the whole response to verify.
struct PasskeyAnswer<'a> {
    credential_id: String,
    handle: Option<Vec<u8>>,
    response: &'a serde_json::Value,
}

/// A passkey login's ceremony, for the browser.
#[derive(Debug)]
pub struct PasskeyLoginOptions {
    /// What the answer names: the ceremony, sealed.
    pub challenge_id: PasskeyLoginId,
    /// `PublicKeyCredentialRequestOptions` for discoverable credentials.
    pub public_key: serde_json::Value,
}

impl AuthService {
    /// Opens a passkey login's ceremony; it counts as a login from the client's address. Nothing
    /// is stored: the ceremony is sealed into the `challengeId`.
    pub async fn passkey_login_options(
        &self,
        client: &ClientContext,
    ) -> Result<PasskeyLoginOptions, AuthError> {
        let ceremonies = self.login_ceremonies()?;
        if let Err(wait) = self.limits.check_login_from(client.ip).await {
            count_outcome(LOGIN_METRIC, "rate_limited");
            return Err(rate_limited(wait));
        }
        let ceremony = ceremonies.start_authentication(&[])?;
        let expires_at = self.clock.now() + self.policies.two_factor.code_ttl;
        let challenge_id = self
            .policies
            .passkey_logins
            .seal(&ceremony.state, expires_at)
            .map_err(|e| AuthError::Internal(e.into()))?;
        Ok(PasskeyLoginOptions {
            challenge_id,
            public_key: ceremony.options,
        })
    }

    /// Signs in with a passkey's assertion: an ACTIVE session at once. An unknown credential
    /// and a bad signature are both `INVALID_CREDENTIALS`; the latter, and a counter that did
    /// not advance, count toward the customer's lock. A ceremony is answered once: by the
    /// session's transaction when the answer is accepted, else as it is refused.
    pub async fn passkey_login(
        &self,
        challenge_id: &PasskeyLoginId,
        response: &serde_json::Value,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let ceremonies = self.login_ceremonies()?;
        let (credential_id, handle) = ceremonies
            .credential_named(response)
            .map_err(malformed_credential)?;
        // An altered, foreign, expired or answered ceremony: a replay or a forgery, counted
        // by address with the other refused logins.
        let not_open = || {
            let event = AuditEvent::new(AuditKind::LoginFailed, Outcome::Failure, self.clock.now())
                .client(client)
                .reason("passkey_ceremony_not_open");
            self.refusals.count_event(&event);
            ceremony_not_open()
        };
        let Some(ceremony) = self
            .policies
            .passkey_logins
            .open(challenge_id, self.clock.now())
        else {
            return Err(not_open());
        };
        // Read before anything is judged: an answer replayed to its spent ceremony is refused
        // as such, not taken for a cloned authenticator. Two answers at once are settled by the
        // session's transaction; two refused at once are each judged (each a failure, as two
        // wrong passwords at once are).
        if self
            .store
            .passkey_login_answered(&ceremony.answered.id)
            .await?
        {
            return Err(not_open());
        }
        let login = PasskeyAnswer {
            credential_id,
            handle,
            response,
        };
        let outcome = self.answer_passkey_login(&ceremony, login, client).await;
        if outcome.is_err()
            && let Err(e) = self.store.answer_passkey_login(&ceremony.answered).await
        {
            // The refusal stands; the ceremony may be answered again, and refused again.
            tracing::warn!(error = %e, "a refused passkey login's ceremony was not recorded as answered");
        }
        outcome
    }

    /// The answer to an open ceremony, judged.
    async fn answer_passkey_login(
        &self,
        ceremony: &OpenedCeremony,
        login: PasskeyAnswer<'_>,
        client: &ClientContext,
    ) -> Result<IssuedSession, AuthError> {
        let client = &self.prepared(client);
        let now = self.clock.now();
        let refused = |reason: &str| {
            AuditEvent::new(AuditKind::LoginFailed, Outcome::Failure, now)
                .client(client)
                .reason(reason)
        };
        // The credential must be a customer's, and the user handle the authenticator keeps with
        // it that customer's: a discoverable credential always carries one.
        let passkey = self
            .store
            .passkey_by_credential(&login.credential_id)
            .await?;
        let found = match passkey {
            Some(passkey) if login.handle.as_deref() == Some(passkey.user_handle.as_slice()) => {
                self.store
                    .customer_by_id(&passkey.customer)
                    .await?
                    .map(|customer| (passkey, customer))
            }
            _ => None,
        };
        let Some((passkey, customer)) = found else {
            // Nobody to count it against: audited in aggregate, by address.
            self.refusals.count_event(&refused("unknown_passkey"));
            count_outcome(LOGIN_METRIC, "invalid_credentials");
            return Err(AuthError::InvalidCredentials);
        };
        let username = &customer.username;
        let limited = self.limits.check_login_of(username.as_str()).await;
        let lockout = self.admit_login(username, limited, client, now).await?;
        let failure = |reason: &str| refused(reason).username(username).customer(&customer.id);
        let state = Some(&ceremony.state);
        let passkeys = std::slice::from_ref(&passkey);
        let spend = match self.verify_assertion(state, login.response, passkeys)? {
            Assertion::Verified(spend) => spend,
            Assertion::Wrong => {
                let event = failure("invalid_passkey");
                return Err(self
                    .refused(username, Some(&customer), &lockout, event, now)
                    .await?);
            }
            Assertion::CounterRegressed(factor) => {
                return Err(self
                    .regressed(
                        &customer,
                        &lockout,
                        failure("passkey_counter_regressed"),
                        &factor,
                    )
                    .await?);
            }
        };
        let proof = OneStepProof {
            factor: passkey.factor.clone(),
            spend,
            ceremony: Some(ceremony.answered.clone()),
        };
        match self
            .start_session(customer.clone(), client, Some(proof), None)
            .await
        {
            // An assertion with this counter was accepted meanwhile (on any instance): the
            // counter did not advance after all.
            Err(AuthError::InvalidCredentials) => Err(self
                .regressed(
                    &customer,
                    &lockout,
                    failure("passkey_counter_regressed"),
                    &passkey.factor,
                )
                .await?),
            other => other,
        }
    }

    /// A passkey login whose counter went back: audited as such, and a failure like any other.
    async fn regressed(
        &self,
        customer: &Customer,
        lockout: &LockoutRecord,
        failure: AuditEvent,
        factor: &FactorId,
    ) -> Result<AuthError, AuthError> {
        self.store
            .append_event(&counter_regressed(&failure, factor))
            .await?;
        let now = failure.at;
        self.refused(&customer.username, Some(customer), lockout, failure, now)
            .await
    }

    /// Whether passkey login is on: passkeys are, and `FINHUB_PASSKEY_LOGIN` is not off.
    pub fn passkey_login_on(&self) -> bool {
        self.login_ceremonies().is_ok()
    }

    /// The ceremonies, while passkey login is on; else both of its calls are `NOT_FOUND`.
    fn login_ceremonies(&self) -> Result<&dyn PasskeyCeremonies, AuthError> {
        match self.passkeys.as_deref() {
            Some(ceremonies) if self.policies.passkey_login => Ok(ceremonies),
            _ => Err(AuthError::NotFound),
        }
    }
}

/// A `challengeId` that does not name an open passkey login: sealed elsewhere, altered,
/// expired, or answered already.
pub(super) fn ceremony_not_open() -> AuthError {
    AuthError::Invalid {
        field: "challengeId",
        problem: InvalidValue("is not an open passkey login: ask for new options"),
    }
}
