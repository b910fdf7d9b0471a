//! "This wasn't me": the link in an e-mailed security notice ends every session of the
//! customer at once, removes every factor and recovery code enrolled since that notice (or
//! since the oldest of those sessions began), and locks the account until a completed
//! password reset or an operator's unlock. Whoever holds the link may use it, without a
//! session; it is single-use, valid seven days, and rate-limited like a login.

use super::security::Liveness;
use super::{AuthService, count_outcome, rate_limited};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::credentials::lockdown::LockdownToken;
use crate::domain::delivery::message::{AccountChange, Message};
use crate::domain::error::AuthError;
use crate::domain::ports::{EnrolledSince, LockdownDone};
use crate::domain::risk::client::ClientContext;

/// Lockdowns, by outcome.
const LOCKDOWN_METRIC: &str = "finhub_lockdown_total";

impl AuthService {
    /// Locks down the account the link was sent for. An unknown, altered, expired or used link
    /// is `NotFound` and changes nothing; such refusals are audited in aggregate, by address.
    pub async fn lockdown(
        &self,
        token: &LockdownToken,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        if let Err(wait) = self.limits.check_login_from(client.ip).await {
            count_outcome(LOCKDOWN_METRIC, "rate_limited");
            return Err(rate_limited(wait));
        }
        let now = self.clock.now();
        let client = &self.prepared(client);
        let refused = |reason: &str| {
            let event = AuditEvent::new(AuditKind::AccountLockdown, Outcome::Failure, now)
                .client(client)
                .reason(reason);
            self.refusals.count_event(&event);
            count_outcome(LOCKDOWN_METRIC, "not_found");
            AuthError::NotFound
        };
        let Some(link) = self.courier.lockdown_seal().open(token, now) else {
            return Err(refused("unknown_link"));
        };
        let Some(customer) = self.store.customer_by_id(&link.customer).await? else {
            return Err(refused("unknown_link"));
        };
        // Told at the profile's own addresses only: a factor's phone or mailbox may be the
        // thief's, and goes with the lockdown.
        let notices = Message::account_notices(
            &customer,
            std::iter::empty(),
            AccountChange::LockedDown,
            now,
        );
        let event = AuditEvent::new(AuditKind::AccountLockdown, Outcome::Success, now)
            .client(client)
            .username(&customer.username)
            .customer(&customer.id)
            .reason("customer_lockdown");
        // Whatever was enrolled since the notice may be the thief's: an app, a passkey or a
        // phone of theirs would sign them in again, or answer the reset that lifts the lock.
        let removal = AuditEvent::new(AuditKind::FactorRemoved, Outcome::Success, now)
            .client(client)
            .username(&customer.username)
            .customer(&customer.id)
            .reason("lockdown");
        let enrolled = EnrolledSince {
            notice: Liveness::at(link.issued_at(), self.policies.session.idle_timeout),
            event: &removal,
        };
        match self
            .store
            .lock_down(&link, &customer.username, enrolled, &notices, &event)
            .await?
        {
            LockdownDone::LockedDown => {
                for notice in &notices {
                    self.courier.queued(notice);
                }
                count_outcome(LOCKDOWN_METRIC, "locked_down");
                Ok(())
            }
            LockdownDone::LinkUsed => Err(refused("link_used")),
        }
    }
}
