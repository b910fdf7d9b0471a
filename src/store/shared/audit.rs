//! Appending to and reading the hash-chained audit trail.

use time::OffsetDateTime;

use super::{Conn, Pool, write_tx};

use crate::clock::to_unix_millis;
use crate::domain::audit::{AuditEvent, ChainSeal, ChainedEvent};
use crate::store::rows::{AuditRow, audit_columns};
use crate::store::{AuditQuery, StoreResult};

/// Appends events to the chain inside the caller's transaction. The head is read with the
/// backend's lock (SQLite's single writer; a row lock in PostgreSQL), so concurrent appenders,
/// from this instance or another, take their turn.
pub(super) async fn append(
    conn: &mut Conn,
    seal: &ChainSeal,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let (mut seq, mut hash): (i64, String) = sqlx::query_as(super::sql::HEAD_FOR_APPEND)
        .fetch_one(&mut *conn)
        .await?;
    for event in events {
        let prev_hash = hash;
        seq += 1;
        hash = seal.hash(event, seq, &prev_hash);
        sqlx::query(
            "INSERT INTO audit_events (seq, id, at, kind, outcome, reason, username, customer_id, \
             session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(seq)
        .bind(&event.id)
        .bind(to_unix_millis(event.at))
        .bind(event.kind.as_str())
        .bind(event.outcome.as_str())
        .bind(&event.reason)
        .bind(&event.username)
        .bind(&event.customer_id)
        .bind(&event.session_id)
        .bind(&event.ip)
        .bind(&event.user_agent)
        .bind(&event.device_fingerprint)
        .bind(&event.device_name)
        .bind(serde_json::Value::Object(event.details.clone()).to_string())
        .bind(prev_hash)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn events(pool: &Pool, q: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
    let rows: Vec<AuditRow> = sqlx::query_as(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events WHERE seq > $1 AND at >= $2 ORDER BY seq LIMIT $3"
    ))
    .bind(q.after_seq)
    .bind(q.since.map_or(i64::MIN, to_unix_millis))
    .bind(i64::from(q.limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(ChainedEvent::try_from).collect()
}

pub(super) async fn tail(pool: &Pool, n: u32) -> StoreResult<Vec<ChainedEvent>> {
    let rows: Vec<AuditRow> = sqlx::query_as(concat!(
        "SELECT * FROM (SELECT ",
        audit_columns!(),
        " FROM audit_events ORDER BY seq DESC LIMIT $1) AS newest ORDER BY seq"
    ))
    .bind(i64::from(n))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(ChainedEvent::try_from).collect()
}

pub(super) async fn head(pool: &Pool) -> StoreResult<(i64, String)> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

pub(super) async fn checkpoint(pool: &Pool) -> StoreResult<(i64, String)> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// Reads the checkpoint with the backend's lock, so that instances purging at once take turns.
pub(super) async fn purge(
    pool: &Pool,
    seal: &ChainSeal,
    cutoff: OffsetDateTime,
    batch: u32,
    event: &AuditEvent,
) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let (from, _): (i64, String) = sqlx::query_as(super::sql::CHECKPOINT_FOR_PURGE)
        .fetch_one(&mut *tx)
        .await?;
    let oldest: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT seq, hash, at FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(from)
    .bind(i64::from(batch))
    .fetch_all(&mut *tx)
    .await?;
    let cutoff = to_unix_millis(cutoff);
    let Some((through, hash, _)) = oldest
        .into_iter()
        .take_while(|(_, _, at)| *at < cutoff)
        .last()
    else {
        return Ok(0);
    };
    sqlx::query("UPDATE audit_checkpoint SET seq = $1, hash = $2 WHERE id = 1")
        .bind(through)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
        .bind(through)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let record = event
        .clone()
        .detail("deleted", deleted)
        .detail("throughSeq", through);
    append(&mut tx, seal, &[&record]).await?;
    tx.commit().await?;
    Ok(deleted)
}
