//! Removing ended sessions, stale failure counters and expired audit events, in small batches.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{SqlStore, audit};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::ports::{HousekeepingStore, StoreResult};
use crate::store::backend::{Backend, query};

impl<B: Backend> SqlStore<B> {
    /// Runs one batch deletion (`$1` cutoff, `$2` batch size) in its own statement.
    async fn purge_batch(
        &self,
        sql: &'static str,
        cutoff: OffsetDateTime,
        batch: u32,
    ) -> StoreResult<u64> {
        self.write_alone(
            query::<B>(sql)
                .bind(to_unix_millis(cutoff))
                .bind(i64::from(batch)),
        )
        .await
    }
}

#[async_trait]
impl<B: Backend> HousekeepingStore for SqlStore<B> {
    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        let ended = self
            .purge_batch(B::PURGE_ENDED_SESSIONS, cutoff, batch)
            .await?;
        // A short batch tells housekeeping there is no more: only once both kinds are done.
        let room = batch.saturating_sub(u32::try_from(ended).unwrap_or(batch));
        if room == 0 {
            return Ok(ended);
        }
        let unfinished = self
            .purge_batch(B::PURGE_UNFINISHED_SESSIONS, cutoff, room)
            .await?;
        Ok(ended + unfinished)
    }

    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        self.purge_batch(B::PURGE_LOCKOUTS, cutoff, batch).await
    }

    async fn purge_notices(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        // Finished rows are never written again, so instances purging at once need no lock.
        // A code's message goes with its challenge, when its session is purged.
        self.purge_batch(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
             WHERE challenge_id IS NULL AND status <> 'PENDING' AND finished_at <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    async fn purge_webhooks(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        self.purge_batch(
            "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events \
             WHERE (status <> 'PENDING' AND finished_at <= $1) OR expires_at <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    async fn purge_unconfirmed_factors(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
    ) -> StoreResult<u64> {
        self.purge_batch(
            "DELETE FROM factors WHERE id IN (SELECT id FROM factors \
             WHERE pending_until IS NOT NULL AND pending_until <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    async fn purge_resets(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        self.purge_batch(
            "DELETE FROM password_resets WHERE id IN (SELECT id FROM password_resets \
             WHERE expires_at <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    async fn purge_passkey_logins(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        self.purge_batch(
            "DELETE FROM answered_passkey_logins WHERE id IN (SELECT id FROM answered_passkey_logins \
             WHERE expires_at <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    async fn purge_lockdown_links(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        self.purge_batch(
            "DELETE FROM used_lockdown_links WHERE id IN (SELECT id FROM used_lockdown_links \
             WHERE expires_at <= $1 LIMIT $2)",
            cutoff,
            batch,
        )
        .await
    }

    /// Reads the checkpoint with the backend's lock, so that instances purging at once take
    /// turns.
    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let (from, _): (i64, String) = query::<B>(B::CHECKPOINT_FOR_PURGE)
            .fetch_one(&mut tx)
            .await?;
        let oldest: Vec<(i64, String, i64)> = query::<B>(
            "SELECT seq, hash, at FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(from)
        .bind(i64::from(batch))
        .fetch_all(&mut tx)
        .await?;
        let cutoff = to_unix_millis(cutoff);
        let Some((through, hash, _)) = oldest
            .into_iter()
            .take_while(|(_, _, at)| *at < cutoff)
            .last()
        else {
            return Ok(0);
        };
        query::<B>("UPDATE audit_checkpoint SET seq = $1, hash = $2 WHERE id = 1")
            .bind(through)
            .bind(hash)
            .execute(&mut tx)
            .await?;
        let deleted = query::<B>("DELETE FROM audit_events WHERE seq <= $1")
            .bind(through)
            .execute(&mut tx)
            .await?;
        let record = event
            .clone()
            .detail("deleted", deleted)
            .detail("throughSeq", through);
        audit::append(&mut tx, &self.trail, &[&record]).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
