//! Lockdowns: the link used, the account locked, every session ended, what was enrolled since
//! the notice removed, in one transaction.

use async_trait::async_trait;

use super::security::{bind_live, live_then};
use super::{SqlStore, audit, customers, factor_changes, outbox, session_ends};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::lockdown::LockdownLink;
use crate::domain::customers::Username;
use crate::domain::delivery::message::Message;
use crate::domain::ports::{EnrolledSince, LockdownDone, LockdownStore, StoreResult};
use crate::store::backend::{Backend, query};

#[async_trait]
impl<B: Backend> LockdownStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.lock_down",
        skip_all
    )]
    async fn lock_down(
        &self,
        link: &LockdownLink,
        username: &Username,
        enrolled: EnrolledSince<'_>,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<LockdownDone> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the username's counters first.
        customers::lockout_in(&mut tx, username).await?;
        // Each link once, on any instance: the primary key decides.
        let first_use = query::<B>(
            "INSERT INTO used_lockdown_links (id, expires_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(link.id.as_str())
        .bind(to_unix_millis(link.expires_at))
        .execute(&mut tx)
        .await?
            == 1;
        if !first_use {
            tx.rollback().await?;
            return Ok(LockdownDone::LinkUsed);
        }
        customers::set_lock(&mut tx, username, customers::Locking::Lockdown, event.at).await?;
        // The customer may answer a later notice first (the thief's new recovery codes, say):
        // what the sessions live when it was sent enrolled goes too, whenever they did, even
        // if they have ended since. Live as `SessionPolicy::check_renewal` decides, at `since`.
        let notice = &enrolled.notice;
        let (oldest_session,): (Option<i64>,) = bind_live(
            query::<B>(concat!(
                "SELECT MIN(s.created_at) FROM sessions s WHERE ",
                live_then!()
            )),
            &link.customer,
            notice,
        )
        .fetch_one(&mut tx)
        .await?;
        let since = oldest_session
            .map(from_unix_millis)
            .map_or(notice.now, |started| started.min(notice.now));
        let ended =
            session_ends::end_customer_sessions(&mut tx, &link.customer, "lockdown", event.at)
                .await?;
        // After the sessions: a change a session made before it ended is removed too.
        let (factors, codes) =
            factor_changes::remove_enrolled_since(&mut tx, link.customer.as_str(), since).await?;
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        let event = event.clone().detail("sessionsEnded", ended);
        let removal = enrolled
            .event
            .clone()
            .detail("removed", factors)
            .detail("recoveryCodesRemoved", codes);
        let events: &[&AuditEvent] = if factors + codes > 0 {
            &[&event, &removal]
        } else {
            &[&event]
        };
        audit::append(&mut tx, &self.trail, events).await?;
        tx.commit().await?;
        Ok(LockdownDone::LockedDown)
    }
}
