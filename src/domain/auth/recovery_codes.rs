//! A signed-in customer makes a fresh set of recovery codes, as guarded as a factor's change:
//! a recent second factor, audited, and told at every destination the customer holds.

use time::OffsetDateTime;

use super::{AuthService, session_event};
use crate::domain::audit::{AuditKind, Outcome};
use crate::domain::credentials::recovery::{self, RecoveryCode};
use crate::domain::delivery::message::AccountChange;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

/// A fresh set of recovery codes, shown this once.
#[derive(Debug)]
pub struct RecoveryCodes {
    /// The codes.
    pub codes: Vec<RecoveryCode>,
    /// When they were made.
    pub created_at: OffsetDateTime,
}

impl AuthService {
    /// A fresh set of recovery codes, replacing any earlier one; only for a customer who holds
    /// a factor (recovery codes stand in for one).
    pub async fn create_recovery_codes(
        &self,
        session: &Session,
        client: &ClientContext,
    ) -> Result<RecoveryCodes, AuthError> {
        Self::require_active(session)?;
        let customer = self.customer_of(&session.customer_id).await?;
        if customer.factor.is_none() {
            return Err(AuthError::FactorRequired);
        }
        self.require_recent(session, &customer).await?;
        let now = self.clock.now();
        let codes = recovery::generate_set()?;
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|code| self.policies.recovery.hash(&customer.id, code))
            .collect();
        let notices = self
            .notices_of(&customer, AccountChange::RecoveryCodesCreated, now)
            .await?;
        let event = session_event(
            AuditKind::RecoveryCodesCreated,
            Outcome::Success,
            now,
            &customer,
            &session.id,
            client,
        )
        .detail("count", codes.len())
        .detail("notices", notices.len());
        if !self
            .store
            .replace_recovery_codes(&customer.id, &hashes, now, &notices, &event)
            .await?
        {
            return Err(AuthError::FactorRequired);
        }
        for notice in &notices {
            self.courier.queued(notice);
        }
        Ok(RecoveryCodes {
            codes,
            created_at: now,
        })
    }
}
