//! Sessions and their tokens.

use anyhow::anyhow;
use time::OffsetDateTime;

use super::{Conn, Pool, audit, customers, write_tx};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::{AuditEvent, ChainSeal};
use crate::domain::customer::{CustomerId, Username};
use crate::domain::session::{NewSession, Rotation, Session, SessionId, SessionState};
use crate::domain::token::TokenHash;
use crate::store::rows::{SessionRow, session_columns};
use crate::store::{LoginTimes, SessionStart, StoreError, StoreResult};

pub(super) async fn start(
    pool: &Pool,
    seal: &ChainSeal,
    s: &NewSession,
    username: &Username,
    event: &AuditEvent,
) -> StoreResult<SessionStart> {
    let mut tx = write_tx(pool).await?;
    let lockout = customers::lockout_in(&mut tx, username).await?;
    if lockout.lock_at(s.created_at).is_some() {
        return Ok(SessionStart::Locked(lockout));
    }
    // Only a completed login resets the failure count: a password alone, for a customer with
    // 2FA, must not buy fresh guesses at the code.
    let login = match s.state {
        SessionState::Active => {
            customers::reset_failures(&mut tx, username).await?;
            Some(record_login(&mut tx, &s.customer_id, s.created_at).await?)
        }
        SessionState::TwoFactorPending => None,
    };
    let device = s.client.device.as_ref();
    sqlx::query(
        "INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, \
         expires_at, absolute_expires_at, last_seen_at, login_at, previous_login_at, ip, user_agent, \
         device_fingerprint, device_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(s.id.as_str())
    .bind(s.customer_id.as_str())
    .bind(s.state.as_str())
    .bind(s.access_hash.as_bytes().as_slice())
    .bind(s.refresh_hash.as_bytes().as_slice())
    .bind(to_unix_millis(s.created_at))
    .bind(to_unix_millis(s.expires_at))
    .bind(to_unix_millis(s.absolute_expires_at))
    .bind(to_unix_millis(s.created_at))
    .bind(login.map(|l| to_unix_millis(l.login_at)))
    .bind(login.and_then(|l| l.previous_login_at).map(to_unix_millis))
    .bind(s.client.ip.map(|ip| ip.to_string()))
    .bind(s.client.user_agent.as_deref())
    .bind(device.map(|d| d.fingerprint.as_str()))
    .bind(device.and_then(|d| d.name.as_deref()))
    .execute(&mut *tx)
    .await?;
    audit::append(&mut tx, seal, &[event]).await?;
    tx.commit().await?;
    Ok(SessionStart::Started {
        previous_login_at: login.and_then(|l| l.previous_login_at),
    })
}

/// Moves the customer's last login to `at`, returning the one it replaces.
pub(super) async fn record_login(
    conn: &mut Conn,
    customer: &CustomerId,
    at: OffsetDateTime,
) -> StoreResult<LoginTimes> {
    let previous: Option<Option<i64>> =
        sqlx::query_scalar("SELECT last_login_at FROM customers WHERE id = $1")
            .bind(customer.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let previous =
        previous.ok_or_else(|| StoreError::Other(anyhow!("session for a missing customer")))?;
    sqlx::query("UPDATE customers SET last_login_at = $1 WHERE id = $2")
        .bind(to_unix_millis(at))
        .bind(customer.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(LoginTimes {
        login_at: at,
        previous_login_at: previous.map(from_unix_millis),
    })
}

async fn one(pool: &Pool, query: &'static str, hash: &TokenHash) -> StoreResult<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(query)
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(pool)
        .await?;
    row.map(Session::try_from).transpose()
}

pub(super) async fn by_access(pool: &Pool, hash: &TokenHash) -> StoreResult<Option<Session>> {
    one(
        pool,
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.access_hash = $1"
        ),
        hash,
    )
    .await
}

pub(super) async fn by_refresh(pool: &Pool, hash: &TokenHash) -> StoreResult<Option<Session>> {
    one(
        pool,
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.refresh_hash = $1"
        ),
        hash,
    )
    .await
}

pub(super) async fn by_retired_refresh(
    pool: &Pool,
    hash: &TokenHash,
) -> StoreResult<Option<Session>> {
    one(
        pool,
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM retired_refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1"
        ),
        hash,
    )
    .await
}

pub(super) async fn touch(pool: &Pool, id: &SessionId, at: OffsetDateTime) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
        .bind(to_unix_millis(at))
        .bind(id.as_str())
        .bind(to_unix_millis(at))
        .execute(pool)
        .await?;
    Ok(())
}

/// Retires the session's current refresh token so that presenting it again is seen as reuse.
pub(super) async fn retire_refresh(
    conn: &mut Conn,
    id: &SessionId,
    at: OffsetDateTime,
) -> StoreResult<bool> {
    let retired = sqlx::query(
        "INSERT INTO retired_refresh_tokens (hash, session_id, retired_at) \
         SELECT refresh_hash, id, $1 FROM sessions WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(to_unix_millis(at))
    .bind(id.as_str())
    .execute(conn)
    .await?;
    Ok(retired.rows_affected() == 1)
}

pub(super) async fn rotate(
    pool: &Pool,
    seal: &ChainSeal,
    r: &Rotation,
    event: &AuditEvent,
) -> StoreResult<bool> {
    let old = r.old_refresh.ok_or_else(|| {
        StoreError::Other(anyhow!("a refresh rotation needs the presented token"))
    })?;
    let mut tx = write_tx(pool).await?;
    let swapped = sqlx::query(
        "UPDATE sessions SET access_hash = $1, refresh_hash = $2, expires_at = $3 \
         WHERE id = $4 AND refresh_hash = $5 AND revoked_at IS NULL AND state = 'ACTIVE'",
    )
    .bind(r.access_hash.as_bytes().as_slice())
    .bind(r.refresh_hash.as_bytes().as_slice())
    .bind(to_unix_millis(r.expires_at))
    .bind(r.session_id.as_str())
    .bind(old.as_bytes().as_slice())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !swapped {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO retired_refresh_tokens (hash, session_id, retired_at) VALUES ($1, $2, $3)",
    )
    .bind(old.as_bytes().as_slice())
    .bind(r.session_id.as_str())
    .bind(to_unix_millis(r.at))
    .execute(&mut *tx)
    .await?;
    audit::append(&mut tx, seal, &[event]).await?;
    tx.commit().await?;
    Ok(true)
}

const END_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
const END_CUSTOMER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
     WHERE customer_id = $3 AND revoked_at IS NULL";

/// Ends the live sessions `sql` selects by `key`; returns how many there were.
async fn end_sessions(
    conn: &mut Conn,
    sql: &'static str,
    key: &str,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    Ok(sqlx::query(sql)
        .bind(to_unix_millis(at))
        .bind(reason)
        .bind(key)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Ends every live session of a customer inside the caller's transaction.
pub(super) async fn end_customer_sessions(
    conn: &mut Conn,
    customer: &CustomerId,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<u64> {
    end_sessions(conn, END_CUSTOMER_SESSIONS, customer.as_str(), reason, at).await
}

async fn revoke_audited(
    pool: &Pool,
    seal: &ChainSeal,
    sql: &'static str,
    key: &str,
    reason: &str,
    event: &AuditEvent,
) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let ended = end_sessions(&mut tx, sql, key, reason, event.at).await?;
    audit::append(&mut tx, seal, &[event]).await?;
    tx.commit().await?;
    Ok(ended)
}

pub(super) async fn revoke(
    pool: &Pool,
    seal: &ChainSeal,
    id: &SessionId,
    reason: &str,
    event: &AuditEvent,
) -> StoreResult<bool> {
    Ok(revoke_audited(pool, seal, END_SESSION, id.as_str(), reason, event).await? == 1)
}

pub(super) async fn revoke_all(
    pool: &Pool,
    seal: &ChainSeal,
    customer: &CustomerId,
    reason: &str,
    event: &AuditEvent,
) -> StoreResult<u64> {
    revoke_audited(
        pool,
        seal,
        END_CUSTOMER_SESSIONS,
        customer.as_str(),
        reason,
        event,
    )
    .await
}

pub(super) async fn purge(pool: &Pool, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
    Ok(sqlx::query(super::sql::PURGE_SESSIONS)
        .bind(to_unix_millis(cutoff))
        .bind(i64::from(batch))
        .execute(pool)
        .await?
        .rows_affected())
}
