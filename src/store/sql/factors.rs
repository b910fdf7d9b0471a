//! Second factors and recovery codes: written with their customer or added by the customer
//! (unconfirmed until their code arrives), read with the customer (the default, in the
//! customer's row) or here. Every change to a customer's set of factors holds the customer's
//! row, so two at once cannot both take (or leave) the default.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::factor_changes::{hold_acting_session, hold_customer, sync_previous_version};
use super::{SqlStore, audit, outbox, sends};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{
    ChallengeId, NewChallenge, SendOutcome, TwoFactorPolicy,
};
use crate::domain::credentials::factor::{
    Factor, FactorId, FactorKind, FactorName, FactorUpdate, HeldFactor, MAX_FACTORS, PendingFactor,
    Removal,
};
use crate::domain::customers::CustomerId;
use crate::domain::delivery::message::Message;
use crate::domain::ports::{FactorStore, StoreError, StoreResult};
use crate::store::backend::{Backend, Runs, query, query_built, row_placeholders};
use crate::store::record::record;

record! {
    #[derive(Debug)]
    struct FactorRow {
        id: String,
        method: String,
        address: Option<String>,
    }
}

impl TryFrom<FactorRow> for Factor {
    type Error = StoreError;

    fn try_from(r: FactorRow) -> Result<Self, StoreError> {
        Ok(Self {
            kind: FactorKind::from_stored(&r.method, r.address.as_deref()).map_err(corrupt)?,
            id: FactorId::from_stored(r.id),
        })
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt stored factor: {e}"))
}

record! {
    #[derive(Debug)]
    struct HeldRow {
        id: String,
        method: String,
        address: Option<String>,
        name: Option<String>,
        is_default: bool,
        created_at: i64,
        last_used_at: Option<i64>,
    }
}

const HELD_COLUMNS: &str = "id, method, address, name, is_default, created_at, last_used_at";

impl TryFrom<HeldRow> for HeldFactor {
    type Error = StoreError;

    fn try_from(r: HeldRow) -> Result<Self, StoreError> {
        Ok(Self {
            name: r
                .name
                .as_deref()
                .map(FactorName::parse)
                .transpose()
                .map_err(corrupt)?,
            is_default: r.is_default,
            created_at: from_unix_millis(r.created_at),
            last_used_at: r.last_used_at.map(from_unix_millis),
            factor: Factor::try_from(FactorRow {
                id: r.id,
                method: r.method,
                address: r.address,
            })?,
        })
    }
}

async fn held<B: Backend>(
    conn: &mut (impl Runs<B> + ?Sized),
    customer: &CustomerId,
    factor: &FactorId,
) -> StoreResult<Option<HeldFactor>> {
    let row: Option<HeldRow> = query_built::<B>(format!(
        "SELECT {HELD_COLUMNS} FROM factors WHERE id = $1 AND customer_id = $2 \
         AND pending_until IS NULL"
    ))
    .bind(factor.as_str())
    .bind(customer.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(HeldFactor::try_from).transpose()
}

#[async_trait]
impl<B: Backend> FactorStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.factors",
        skip_all
    )]
    async fn factors(&self, customer: &CustomerId) -> StoreResult<Vec<HeldFactor>> {
        let rows: Vec<HeldRow> = query_built::<B>(format!(
            "SELECT {HELD_COLUMNS} FROM factors WHERE customer_id = $1 AND pending_until IS NULL \
             ORDER BY created_at, id"
        ))
        .bind(customer.as_str())
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.into_iter().map(HeldFactor::try_from).collect()
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.totp_secret",
        skip_all
    )]
    async fn totp_secret(&self, factor: &FactorId) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(Option<Vec<u8>>,)> =
            query::<B>("SELECT secret FROM factors WHERE id = $1 AND method = 'TOTP'")
                .bind(factor.as_str())
                .fetch_optional(&mut self.read().await?)
                .await?;
        Ok(row.and_then(|(secret,)| secret))
    }

    async fn reseal_totp_secret(
        &self,
        factor: &FactorId,
        before: &[u8],
        now: &[u8],
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>("UPDATE factors SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(now.to_vec())
            .bind(factor.as_str())
            .bind(before.to_vec())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Factor, ChallengeId)>> {
        let row: Option<(String, String, Option<String>, String)> = query::<B>(
            "SELECT f.id, f.method, f.address, c.id FROM factors f \
             JOIN challenges c ON c.factor_id = f.id AND c.purpose IN ('CONFIRM', 'ENROL') \
             WHERE f.id = $1 AND f.customer_id = $2 AND f.pending_until > $3 \
             ORDER BY c.created_at DESC LIMIT 1",
        )
        .bind(factor.as_str())
        .bind(customer.as_str())
        .bind(to_unix_millis(now))
        .fetch_optional(&mut self.read().await?)
        .await?;
        row.map(|(id, method, address, challenge)| {
            Ok((
                Factor::try_from(FactorRow {
                    id,
                    method,
                    address,
                })?,
                ChallengeId::from_stored(challenge),
            ))
        })
        .transpose()
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.add_pending_factor",
        skip_all
    )]
    async fn add_pending_factor(
        &self,
        pending: &PendingFactor,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        let mut tx = self.write().await?;
        if let Some(refused) = sends::open_in(&mut tx, challenge, policy, message).await? {
            return Ok(refused);
        }
        // Counted under the username's lock that `open_in` took, so adds racing on several
        // instances take their turn and cannot pass the cap together.
        let (held,): (i64,) = query::<B>(
            "SELECT COUNT(*) FROM factors WHERE customer_id = $1 \
             AND (pending_until IS NULL OR pending_until > $2)",
        )
        .bind(pending.customer.as_str())
        .bind(to_unix_millis(pending.created_at))
        .fetch_one(&mut tx)
        .await?;
        if held >= i64::from(MAX_FACTORS) {
            return Ok(SendOutcome::FactorsFull);
        }
        query::<B>(
            "INSERT INTO factors (id, customer_id, method, address, name, secret, user_handle, \
             is_default, created_at, pending_until) VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $9)",
        )
        .bind(pending.factor.id.as_str())
        .bind(pending.customer.as_str())
        .bind(pending.factor.method().as_str())
        .bind(pending.factor.kind.address())
        .bind(pending.name.as_ref().map(FactorName::as_str))
        .bind(pending.sealed_secret.as_deref())
        .bind(pending.passkey_handle.as_deref())
        .bind(to_unix_millis(pending.created_at))
        .bind(to_unix_millis(pending.expires_at))
        .execute(&mut tx)
        .await?;
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(SendOutcome::Opened)
    }

    async fn update_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        update: &FactorUpdate,
        event: &AuditEvent,
    ) -> StoreResult<Option<HeldFactor>> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the session, then the customer.
        hold_acting_session(&mut tx, event).await?;
        hold_customer(&mut tx, customer.as_str()).await?;
        if held::<B>(&mut tx, customer, factor).await?.is_none() {
            return Ok(None);
        }
        if update.make_default {
            // The old default steps down first: one default per customer, by a unique index.
            query::<B>(
                "UPDATE factors SET is_default = FALSE WHERE customer_id = $1 AND is_default = TRUE \
                 AND id <> $2",
            )
            .bind(customer.as_str())
            .bind(factor.as_str())
            .execute(&mut tx)
            .await?;
            query::<B>("UPDATE factors SET is_default = TRUE WHERE id = $1")
                .bind(factor.as_str())
                .execute(&mut tx)
                .await?;
            sync_previous_version(&mut tx, customer.as_str()).await?;
        }
        if let Some(name) = &update.name {
            query::<B>("UPDATE factors SET name = $1 WHERE id = $2")
                .bind(name.as_str())
                .bind(factor.as_str())
                .execute(&mut tx)
                .await?;
        }
        let updated = held::<B>(&mut tx, customer, factor).await?;
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn remove_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        keep_last: bool,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<Removal> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the session, then the customer.
        hold_acting_session(&mut tx, event).await?;
        hold_customer(&mut tx, customer.as_str()).await?;
        let Some(removed) = held::<B>(&mut tx, customer, factor).await? else {
            return Ok(Removal::NotHeld);
        };
        query::<B>("DELETE FROM factors WHERE id = $1")
            .bind(factor.as_str())
            .execute(&mut tx)
            .await?;
        // A code already sent to a removed phone or mailbox (a swapped SIM, say) no longer
        // answers anything.
        query::<B>(
            "UPDATE challenges SET status = 'SUPERSEDED' WHERE factor_id = $1 AND status = 'OPEN'",
        )
        .bind(factor.as_str())
        .execute(&mut tx)
        .await?;
        let oldest: Option<(String,)> = query::<B>(
            "SELECT id FROM factors WHERE customer_id = $1 AND pending_until IS NULL \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(customer.as_str())
        .fetch_optional(&mut tx)
        .await?;
        match oldest {
            Some((oldest,)) if removed.is_default => {
                query::<B>("UPDATE factors SET is_default = TRUE WHERE id = $1")
                    .bind(oldest.as_str())
                    .execute(&mut tx)
                    .await?;
            }
            Some(_) => {}
            None if keep_last => return Ok(Removal::LastKept),
            // Without a factor, two-factor is off, and recovery codes would be a second factor
            // of their own: they go too.
            None => {
                query::<B>("DELETE FROM recovery_codes WHERE customer_id = $1")
                    .bind(customer.as_str())
                    .execute(&mut tx)
                    .await?;
            }
        }
        sync_previous_version(&mut tx, customer.as_str()).await?;
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(Removal::Removed)
    }

    async fn remove_all_factors(
        &self,
        customer: &CustomerId,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        hold_customer(&mut tx, customer.as_str()).await?;
        query::<B>(
            "UPDATE challenges SET status = 'SUPERSEDED' WHERE status = 'OPEN' \
             AND factor_id IN (SELECT id FROM factors WHERE customer_id = $1)",
        )
        .bind(customer.as_str())
        .execute(&mut tx)
        .await?;
        let removed = query::<B>("DELETE FROM factors WHERE customer_id = $1")
            .bind(customer.as_str())
            .execute(&mut tx)
            .await?;
        query::<B>("DELETE FROM recovery_codes WHERE customer_id = $1")
            .bind(customer.as_str())
            .execute(&mut tx)
            .await?;
        sync_previous_version(&mut tx, customer.as_str()).await?;
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        audit::append(
            &mut tx,
            &self.trail,
            &[&event.clone().detail("removed", removed)],
        )
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn replace_recovery_codes(
        &self,
        customer: &CustomerId,
        hashes: &[[u8; 32]],
        at: OffsetDateTime,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the session, then the customer.
        hold_acting_session(&mut tx, event).await?;
        hold_customer(&mut tx, customer.as_str()).await?;
        let (factors,): (i64,) = query::<B>(
            "SELECT COUNT(*) FROM factors WHERE customer_id = $1 AND pending_until IS NULL",
        )
        .bind(customer.as_str())
        .fetch_one(&mut tx)
        .await?;
        if factors == 0 {
            return Ok(false);
        }
        query::<B>("DELETE FROM recovery_codes WHERE customer_id = $1")
            .bind(customer.as_str())
            .execute(&mut tx)
            .await?;
        if !hashes.is_empty() {
            let mut insert = query_built::<B>(format!(
                "INSERT INTO recovery_codes (id, customer_id, code_hash, created_at) VALUES {}",
                row_placeholders::<B>(hashes.len(), 4)
            ));
            for hash in hashes {
                insert = insert
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(customer.as_str())
                    .bind(hash.to_vec())
                    .bind(to_unix_millis(at));
            }
            insert.execute(&mut tx).await?;
        }
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.recovery_codes_remaining",
        skip_all
    )]
    async fn recovery_codes_remaining(&self, customer: &CustomerId) -> StoreResult<u32> {
        let (count,): (i64,) = query::<B>(
            "SELECT COUNT(*) FROM recovery_codes WHERE customer_id = $1 AND used_at IS NULL",
        )
        .bind(customer.as_str())
        .fetch_one(&mut self.read().await?)
        .await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.unused_recovery_code",
        skip_all
    )]
    async fn unused_recovery_code(
        &self,
        customer: &CustomerId,
        hashes: &[[u8; 32]],
    ) -> StoreResult<Option<String>> {
        let forms: Vec<String> = (2..hashes.len() + 2).map(B::placeholder).collect();
        if forms.is_empty() {
            return Ok(None);
        }
        // No `LIMIT`: every form is probed whether or not one matches (a code is stored in one).
        let mut lookup = query_built::<B>(format!(
            "SELECT id FROM recovery_codes WHERE customer_id = {} AND used_at IS NULL \
             AND code_hash IN ({})",
            B::placeholder(1),
            forms.join(", ")
        ))
        .bind(customer.as_str());
        for hash in hashes {
            lookup = lookup.bind(hash.to_vec());
        }
        let row: Option<(String,)> = lookup.fetch_optional(&mut self.read().await?).await?;
        Ok(row.map(|(id,)| id))
    }
}
