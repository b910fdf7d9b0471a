//! Appending to and reading the hash-chained audit trail.

use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::write_tx;

use crate::clock::to_unix_millis;
use crate::domain::audit::{AuditEvent, ChainSeal, ChainedEvent};
use crate::store::rows::{AuditRow, audit_columns};
use crate::store::{AuditQuery, StoreResult};

/// Appends events to the chain inside the caller's transaction. The caller's transaction holds
/// SQLite's write lock, so no other writer can interleave between reading and moving the head.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    seal: &ChainSeal,
    events: &[&AuditEvent],
) -> StoreResult<()> {
    let (mut seq, mut hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    for event in events {
        let prev_hash = hash;
        seq += 1;
        hash = seal.hash(event, seq, &prev_hash);
        sqlx::query(
            "INSERT INTO audit_events (seq, id, at, kind, outcome, reason, username, customer_id, \
             session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn events(pool: &SqlitePool, q: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
    let rows: Vec<AuditRow> = sqlx::query_as(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_events WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?"
    ))
    .bind(q.after_seq)
    .bind(q.since.map_or(i64::MIN, to_unix_millis))
    .bind(i64::from(q.limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(ChainedEvent::try_from).collect()
}

pub(super) async fn tail(pool: &SqlitePool, n: u32) -> StoreResult<Vec<ChainedEvent>> {
    let rows: Vec<AuditRow> = sqlx::query_as(concat!(
        "SELECT * FROM (SELECT ",
        audit_columns!(),
        " FROM audit_events ORDER BY seq DESC LIMIT ?) ORDER BY seq"
    ))
    .bind(i64::from(n))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(ChainedEvent::try_from).collect()
}

pub(super) async fn head(pool: &SqlitePool) -> StoreResult<(i64, String)> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

pub(super) async fn checkpoint(pool: &SqlitePool) -> StoreResult<(i64, String)> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

pub(super) async fn purge(
    pool: &SqlitePool,
    seal: &ChainSeal,
    cutoff: OffsetDateTime,
    batch: u32,
    event: &AuditEvent,
) -> StoreResult<u64> {
    let mut tx = write_tx(pool).await?;
    let (from, _): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    let oldest: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, at FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
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
    sqlx::query("UPDATE audit_checkpoint SET seq = ?, hash = ? WHERE id = 1")
        .bind(through)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM audit_events WHERE seq <= ?")
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
