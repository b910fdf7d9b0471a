//! Customers and their failure counters.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{SqlStore, Tx, audit, insert, outbox, session_ends};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::credentials::password::{ChangeOutcome, PasswordChange};
use crate::domain::customers::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::delivery::message::Message;
use crate::domain::ports::{
    CustomerStore, FailureOutcome, Insertion, LoginCandidate, StoreError, StoreResult, Taken,
};
use crate::store::backend::{Backend, Runs, SELECT_LOCKOUT, query};
use crate::store::rows::{
    CustomerRow, LockoutRow, LoginCandidateRow, customer_columns, default_factor_join,
    device_counts, lockout_columns, select_customer,
};

const CUSTOMER_BY_USERNAME: &str = select_customer!("WHERE c.username = $1");
const CUSTOMER_BY_ID: &str = select_customer!("WHERE c.id = $1");
/// The username's counters and its customer, with the counts of their devices the login's
/// (`$2`) is judged by: always one row, whichever exists.
const LOGIN_CANDIDATE: &str = concat!(
    "SELECT ",
    lockout_columns!("l."),
    ", ",
    customer_columns!(),
    ", ",
    device_counts!("c.id"),
    " FROM (SELECT CAST($1 AS TEXT) AS username) asked \
     LEFT JOIN lockouts l ON l.username = asked.username \
     LEFT JOIN customers c ON c.username = asked.username ",
    default_factor_join!()
);

pub(super) async fn lockout_row<B: Backend>(
    conn: &mut (impl Runs<B> + ?Sized),
    username: &Username,
) -> StoreResult<LockoutRecord> {
    read_lockout::<B>(conn, SELECT_LOCKOUT, username).await
}

/// Reads a username's counters under the backend's lock on the username (SQLite's single
/// writer; an advisory lock in PostgreSQL, taken by the same statement), so that concurrent
/// failures, guesses and logins for one username, from any instance, take their turn, whether
/// or not it has a counter row yet.
pub(super) async fn lockout_in<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
) -> StoreResult<LockoutRecord> {
    read_lockout::<B>(tx, B::LOCKOUT_UNDER_LOCK, username).await
}

/// A username's counters as `sql` reads them (`$1` the username); none counted without a row.
async fn read_lockout<B: Backend>(
    conn: &mut (impl Runs<B> + ?Sized),
    sql: &'static str,
    username: &Username,
) -> StoreResult<LockoutRecord> {
    let row: Option<LockoutRow> = query::<B>(sql)
        .bind(username.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Into::into).unwrap_or_default())
}

/// Clears a username's counters after a successful login; an operator's lock and a lockdown
/// stay (neither lets a login succeed, but a lockdown taken meanwhile must outlast it).
/// `record` is the one [`lockout_in`] read in this transaction: one that counts nothing (no
/// row, most logins) has nothing to clear, and the delete would be a round trip for nothing.
pub(super) async fn reset_failures<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
    record: &LockoutRecord,
) -> StoreResult<()> {
    if *record == LockoutRecord::default() {
        return Ok(());
    }
    query::<B>(
        "DELETE FROM lockouts WHERE username = $1 AND operator_locked = FALSE AND locked_down = FALSE",
    )
    .bind(username.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// Clears a username's counters and lockdown once a password reset completes; an operator's
/// lock stays.
pub(super) async fn clear_after_reset<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
) -> StoreResult<()> {
    query::<B>("DELETE FROM lockouts WHERE username = $1 AND operator_locked = FALSE")
        .bind(username.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// A lock that holds until it is lifted, as `set_lock` takes it.
pub(super) enum Locking {
    /// An operator's, until an operator unlocks.
    Operator,
    /// The customer's lockdown, until a completed reset or an operator's unlock.
    Lockdown,
}

/// Takes `lock` on a username, whether or not it has a counter row yet, inside the caller's
/// transaction (which holds the username's counters).
pub(super) async fn set_lock<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
    lock: Locking,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let sql = match lock {
        Locking::Operator => {
            "INSERT INTO lockouts (username, operator_locked, updated_at) VALUES ($1, TRUE, $2) \
             ON CONFLICT (username) DO UPDATE SET operator_locked = TRUE, updated_at = excluded.updated_at"
        }
        Locking::Lockdown => {
            "INSERT INTO lockouts (username, locked_down, updated_at) VALUES ($1, TRUE, $2) \
             ON CONFLICT (username) DO UPDATE SET locked_down = TRUE, updated_at = excluded.updated_at"
        }
    };
    query::<B>(sql)
        .bind(username.as_str())
        .bind(to_unix_millis(at))
        .execute(tx)
        .await?;
    Ok(())
}

/// Counts one failure for a username that is not locked, inside the caller's transaction
/// (which holds the username's counters); locks it when the policy says so. Returns the new
/// counters and, if this failure locked, until when and the how-manieth lock it is.
pub(super) async fn count_failure<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> StoreResult<(LockoutRecord, Option<(OffsetDateTime, u32)>)> {
    let row: LockoutRow = query::<B>(concat!(
        "INSERT INTO lockouts (username, failures, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (username) DO UPDATE SET failures = lockouts.failures + 1, updated_at = excluded.updated_at \
         RETURNING ",
        lockout_columns!()
    ))
    .bind(username.as_str())
    .bind(to_unix_millis(now))
    .fetch_one(tx)
    .await?;
    let record = LockoutRecord::from(row);
    if !policy.should_lock(record.failures) {
        return Ok((record, None));
    }
    let nth = record.lock_count.saturating_add(1);
    let until = now + policy.lock_duration(nth);
    query::<B>(
        "UPDATE lockouts SET failures = 0, lock_count = $1, locked_until = $2 WHERE username = $3",
    )
    .bind(i64::from(nth))
    .bind(to_unix_millis(until))
    .bind(username.as_str())
    .execute(tx)
    .await?;
    let locked = LockoutRecord {
        failures: 0,
        lock_count: nth,
        locked_until: Some(until),
        ..record
    };
    Ok((locked, Some((until, nth))))
}

#[async_trait]
impl<B: Backend> CustomerStore for SqlStore<B> {
    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        match insert::one(&mut tx, customer, to_unix_millis(event.at)).await? {
            Insertion::Inserted => {}
            Insertion::CustomerIdExists => return Err(StoreError::Conflict(Taken::CustomerId)),
            Insertion::UsernameExists => return Err(StoreError::Conflict(Taken::Username)),
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_customers(
        &self,
        batch: &[(NewCustomer, AuditEvent)],
    ) -> StoreResult<Vec<Insertion>> {
        let mut tx = self.write().await?;
        let outcomes = insert::batch(&mut tx, batch).await?;
        let events: Vec<&AuditEvent> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == Insertion::Inserted)
            .map(|((_, event), _)| event)
            .collect();
        audit::append(&mut tx, &self.trail, &events).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.customer_by_username",
        skip_all
    )]
    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>> {
        self.read_one::<CustomerRow, _>(CUSTOMER_BY_USERNAME, username.as_str())
            .await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.login_candidate",
        skip_all
    )]
    async fn login_candidate(
        &self,
        username: &Username,
        device: Option<&str>,
    ) -> StoreResult<LoginCandidate> {
        let row: LoginCandidateRow = query::<B>(LOGIN_CANDIDATE)
            .bind(username.as_str())
            .bind(device)
            .fetch_one(&mut self.read().await?)
            .await?;
        Ok(row.into_candidate(device.is_some()))
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.customer_by_id",
        skip_all
    )]
    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>> {
        self.read_one::<CustomerRow, _>(CUSTOMER_BY_ID, id.as_str())
            .await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.replace_password_hash",
        skip_all
    )]
    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let updated = query::<B>(
            "UPDATE customers SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
        )
        .bind(new)
        .bind(id.as_str())
        .bind(old)
        .execute(&mut tx)
        .await?
            == 1;
        if updated {
            audit::append(&mut tx, &self.trail, &[event]).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.change_password",
        skip_all
    )]
    async fn change_password(
        &self,
        change: &PasswordChange,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<ChangeOutcome> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the username's counters, the session, the customer.
        let lockout = lockout_in(&mut tx, &change.username).await?;
        if let Some(lock) = lockout.lock_at(change.at) {
            tx.rollback().await?;
            return Ok(ChangeOutcome::Locked {
                until: lock.until(),
            });
        }
        let live = query::<B>(
            "UPDATE sessions SET state = state \
             WHERE id = $1 AND customer_id = $2 AND state = 'ACTIVE' AND revoked_at IS NULL",
        )
        .bind(change.keep_session.as_str())
        .bind(change.customer.as_str())
        .execute(&mut tx)
        .await?
            == 1;
        if !live {
            tx.rollback().await?;
            return Ok(ChangeOutcome::SessionEnded);
        }
        let updated = query::<B>(
            "UPDATE customers SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
        )
        .bind(change.new_hash.as_str())
        .bind(change.customer.as_str())
        .bind(change.old_hash.as_str())
        .execute(&mut tx)
        .await?
            == 1;
        if !updated {
            tx.rollback().await?;
            return Ok(ChangeOutcome::HashMoved);
        }
        session_ends::end_other_sessions(
            &mut tx,
            &change.customer,
            &change.keep_session,
            "password_changed",
            change.at,
        )
        .await?;
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(ChangeOutcome::Changed)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.lockout",
        skip_all
    )]
    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord> {
        lockout_row::<B>(&mut self.read().await?, username).await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.record_failure",
        skip_all
    )]
    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
        lock_notices: &[Message],
    ) -> StoreResult<FailureOutcome> {
        let now = event.at;
        let mut tx = self.write().await?;
        let current = lockout_in(&mut tx, username).await?;
        if current.lock_at(now).is_some() {
            audit::append(&mut tx, &self.trail, &[event]).await?;
            tx.commit().await?;
            return Ok(FailureOutcome {
                record: current,
                counted: false,
            });
        }
        let (record, locked) = count_failure(&mut tx, username, policy, now).await?;
        match locked {
            Some((until, nth)) => {
                let lock = event.lock_caused(until, nth);
                for notice in lock_notices {
                    outbox::enqueue(&mut tx, &notice.locked_until(until)).await?;
                }
                audit::append(&mut tx, &self.trail, &[event, &lock]).await?
            }
            None => audit::append(&mut tx, &self.trail, &[event]).await?,
        }
        tx.commit().await?;
        Ok(FailureOutcome {
            record,
            counted: true,
        })
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.set_operator_lock",
        skip_all
    )]
    async fn set_operator_lock(
        &self,
        username: &Username,
        customer: &CustomerId,
        locked: bool,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        lockout_in(&mut tx, username).await?;
        if locked {
            set_lock(&mut tx, username, Locking::Operator, event.at).await?;
            session_ends::end_customer_sessions(&mut tx, customer, "operator_lock", event.at)
                .await?;
        } else {
            query::<B>("DELETE FROM lockouts WHERE username = $1")
                .bind(username.as_str())
                .execute(&mut tx)
                .await?;
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl<B: Backend> SqlStore<B> {
    /// Rewrites usernames stored by earlier versions, which only trimmed and lower-cased them,
    /// into today's form ([`Username::parse`]). Only names with non-ASCII characters can change,
    /// so only those are read; a name whose new form another customer holds is left for an
    /// operator (and reported). Returns how many were rewritten.
    pub(crate) async fn normalise_usernames(&self) -> StoreResult<u64> {
        let candidates: Vec<(String, String)> = query::<B>(B::NON_ASCII_USERNAMES)
            .fetch_all(&mut self.read().await?)
            .await?;
        let mut rewritten = 0;
        for (id, stored) in candidates {
            let Ok(username) = Username::parse(&stored) else {
                tracing::warn!(customer.id = %id, "stored username is not valid today; left as it is");
                continue;
            };
            if username.as_str() == stored {
                continue;
            }
            let mut tx = self.write().await?;
            let changed = query::<B>(
                "UPDATE customers SET username = $1 WHERE id = $2 AND username = $3 \
                 AND NOT EXISTS (SELECT 1 FROM customers o WHERE o.username = $1)",
            )
            .bind(username.as_str())
            .bind(id.as_str())
            .bind(stored.as_str())
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            if changed == 1 {
                rewritten += 1;
            } else {
                tracing::warn!(customer.id = %id, "normalised username belongs to another customer; left as it is");
            }
        }
        Ok(rewritten)
    }
}
