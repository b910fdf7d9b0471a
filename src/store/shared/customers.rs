//! Customers and their failure counters.

use time::OffsetDateTime;

use super::{Conn, Pool, audit, sessions, write_tx};
use crate::clock::to_unix_millis;
use crate::domain::audit::{AuditEvent, ChainSeal};
use crate::domain::customer::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::lockout::{LockoutPolicy, LockoutRecord};
use crate::store::rows::{CustomerRow, LockoutRow, customer_columns};
use crate::store::{FailureOutcome, StoreError, StoreResult};

async fn insert_row(conn: &mut Conn, c: &NewCustomer, created_at: i64) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO customers (id, username, email, phone, first_name, last_name, kyc_status, \
         two_factor_method, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(c.id.as_str())
    .bind(c.username.as_str())
    .bind(c.email.as_str())
    .bind(c.phone.as_ref().map(|p| p.as_str()))
    .bind(c.first_name.as_str())
    .bind(c.last_name.as_str())
    .bind(c.kyc_status.as_str())
    .bind(c.two_factor.map(|m| m.as_str()))
    .bind(&c.password_hash)
    .bind(created_at)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub(super) async fn insert(
    pool: &Pool,
    seal: &ChainSeal,
    c: &NewCustomer,
    event: &AuditEvent,
) -> StoreResult<()> {
    let mut tx = write_tx(pool).await?;
    if !insert_row(&mut tx, c, to_unix_millis(event.at)).await? {
        return Err(StoreError::Conflict("username"));
    }
    audit::append(&mut tx, seal, &[event]).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn insert_batch(
    pool: &Pool,
    seal: &ChainSeal,
    batch: &[(NewCustomer, AuditEvent)],
) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let mut events = Vec::with_capacity(batch.len());
    for (c, event) in batch {
        if insert_row(&mut tx, c, to_unix_millis(event.at)).await? {
            events.push(event);
        }
    }
    audit::append(&mut tx, seal, &events).await?;
    tx.commit().await?;
    Ok(events.len() as u64)
}

pub(super) async fn by_username(pool: &Pool, username: &Username) -> StoreResult<Option<Customer>> {
    let row: Option<CustomerRow> = sqlx::query_as(concat!(
        "SELECT ",
        customer_columns!(),
        " FROM customers WHERE username = $1"
    ))
    .bind(username.as_str())
    .fetch_optional(pool)
    .await?;
    row.map(Customer::try_from).transpose()
}

pub(super) async fn by_id(pool: &Pool, id: &CustomerId) -> StoreResult<Option<Customer>> {
    let row: Option<CustomerRow> = sqlx::query_as(concat!(
        "SELECT ",
        customer_columns!(),
        " FROM customers WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?;
    row.map(Customer::try_from).transpose()
}

pub(super) async fn replace_password_hash(
    pool: &Pool,
    seal: &ChainSeal,
    id: &CustomerId,
    old: &str,
    new: &str,
    event: &AuditEvent,
) -> StoreResult<bool> {
    let mut tx = write_tx(pool).await?;
    let updated =
        sqlx::query("UPDATE customers SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
            .bind(new)
            .bind(id.as_str())
            .bind(old)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if updated {
        audit::append(&mut tx, seal, &[event]).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

pub(super) async fn lockout(pool: &Pool, username: &Username) -> StoreResult<LockoutRecord> {
    Ok(lockout_row(pool, username)
        .await?
        .map(Into::into)
        .unwrap_or_default())
}

async fn lockout_row<'c, E>(conn: E, username: &Username) -> StoreResult<Option<LockoutRow>>
where
    E: sqlx::Executor<'c, Database = super::Db>,
{
    Ok(sqlx::query_as(
        "SELECT failures, lock_count, locked_until, operator_locked FROM lockouts WHERE username = $1",
    )
    .bind(username.as_str())
    .fetch_optional(conn)
    .await?)
}

/// Reads a username's counters under the backend's lock on the username (SQLite's single
/// writer; an advisory lock in PostgreSQL), so that concurrent failures, guesses and logins for
/// one username, from any instance, take their turn, whether or not it has a counter row yet.
pub(super) async fn lockout_in(conn: &mut Conn, username: &Username) -> StoreResult<LockoutRecord> {
    super::lock_username(&mut *conn, username).await?;
    Ok(lockout_row(conn, username)
        .await?
        .map(Into::into)
        .unwrap_or_default())
}

/// Clears a username's counters after a successful login; an operator lock stays.
pub(super) async fn reset_failures(conn: &mut Conn, username: &Username) -> StoreResult<()> {
    sqlx::query("DELETE FROM lockouts WHERE username = $1 AND operator_locked = FALSE")
        .bind(username.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts one failure for a username that is not locked, inside the caller's transaction
/// (which holds the username's counters); locks it when the policy says so. Returns the new
/// counters and, if this failure locked, until when and the how-manieth lock it is.
pub(super) async fn count_failure(
    conn: &mut Conn,
    username: &Username,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> StoreResult<(LockoutRecord, Option<(OffsetDateTime, u32)>)> {
    let row: LockoutRow = sqlx::query_as(
        "INSERT INTO lockouts (username, failures, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (username) DO UPDATE SET failures = lockouts.failures + 1, updated_at = excluded.updated_at \
         RETURNING failures, lock_count, locked_until, operator_locked",
    )
    .bind(username.as_str())
    .bind(to_unix_millis(now))
    .fetch_one(&mut *conn)
    .await?;
    let record = LockoutRecord::from(row);
    if !policy.should_lock(record.failures) {
        return Ok((record, None));
    }
    let nth = record.lock_count.saturating_add(1);
    let until = now + policy.lock_duration(nth);
    sqlx::query(
        "UPDATE lockouts SET failures = 0, lock_count = $1, locked_until = $2 WHERE username = $3",
    )
    .bind(i64::from(nth))
    .bind(to_unix_millis(until))
    .bind(username.as_str())
    .execute(&mut *conn)
    .await?;
    let locked = LockoutRecord {
        failures: 0,
        lock_count: nth,
        locked_until: Some(until),
        ..record
    };
    Ok((locked, Some((until, nth))))
}

pub(super) async fn record_failure(
    pool: &Pool,
    seal: &ChainSeal,
    username: &Username,
    policy: &LockoutPolicy,
    event: &AuditEvent,
) -> StoreResult<FailureOutcome> {
    let now = event.at;
    let mut tx = write_tx(pool).await?;
    let current = lockout_in(&mut tx, username).await?;
    if current.lock_at(now).is_some() {
        audit::append(&mut tx, seal, &[event]).await?;
        tx.commit().await?;
        return Ok(FailureOutcome {
            record: current,
            counted: false,
        });
    }
    let (record, locked) = count_failure(&mut tx, username, policy, now).await?;
    match locked {
        Some((until, nth)) => {
            audit::append(&mut tx, seal, &[event, &event.lock_caused(until, nth)]).await?
        }
        None => audit::append(&mut tx, seal, &[event]).await?,
    }
    tx.commit().await?;
    Ok(FailureOutcome {
        record,
        counted: true,
    })
}

pub(super) async fn set_operator_lock(
    pool: &Pool,
    seal: &ChainSeal,
    username: &Username,
    customer: &CustomerId,
    locked: bool,
    event: &AuditEvent,
) -> StoreResult<()> {
    let now = to_unix_millis(event.at);
    let mut tx = write_tx(pool).await?;
    lockout_in(&mut tx, username).await?;
    if locked {
        sqlx::query(
            "INSERT INTO lockouts (username, operator_locked, updated_at) VALUES ($1, TRUE, $2) \
             ON CONFLICT (username) DO UPDATE SET operator_locked = TRUE, updated_at = excluded.updated_at",
        )
        .bind(username.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sessions::end_customer_sessions(&mut tx, customer, "operator_lock", event.at).await?;
    } else {
        sqlx::query("DELETE FROM lockouts WHERE username = $1")
            .bind(username.as_str())
            .execute(&mut *tx)
            .await?;
    }
    audit::append(&mut tx, seal, &[event]).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn purge_lockouts(
    pool: &Pool,
    cutoff: OffsetDateTime,
    batch: u32,
) -> StoreResult<u64> {
    Ok(sqlx::query(super::sql::PURGE_LOCKOUTS)
        .bind(to_unix_millis(cutoff))
        .bind(i64::from(batch))
        .execute(pool)
        .await?
        .rows_affected())
}
