//! Passkeys: the credentials of confirmed PASSKEY factors, and passkey logins' ceremonies.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::SqlStore;
use crate::clock::to_unix_millis;
use crate::domain::credentials::challenge::ChallengeId;
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::passkey::{CeremonyState, StoredPasskey};
use crate::domain::customers::CustomerId;
use crate::domain::ports::{PasskeyStore, StoreResult};
use crate::store::backend::{Backend, query, query_built};

const COLUMNS: &str = "id, customer_id, credential_id, passkey, user_handle, sign_count";

#[derive(Debug, sqlx::FromRow)]
struct PasskeyRow {
    id: String,
    customer_id: String,
    credential_id: String,
    passkey: String,
    user_handle: Vec<u8>,
    sign_count: i64,
}

impl From<PasskeyRow> for StoredPasskey {
    fn from(r: PasskeyRow) -> Self {
        Self {
            factor: FactorId::from_stored(r.id),
            customer: CustomerId::from_stored(r.customer_id),
            credential_id: r.credential_id,
            credential: r.passkey,
            user_handle: r.user_handle,
            counter: u32::try_from(r.sign_count).unwrap_or(u32::MAX),
        }
    }
}

/// Confirmed passkeys only: a credential is written as its factor is confirmed.
const CONFIRMED: &str = "method = 'PASSKEY' AND pending_until IS NULL \
     AND credential_id IS NOT NULL AND passkey IS NOT NULL AND user_handle IS NOT NULL \
     AND sign_count IS NOT NULL";

#[async_trait]
impl<B: Backend> PasskeyStore for SqlStore<B> {
    async fn passkeys(&self, customer: &CustomerId) -> StoreResult<Vec<StoredPasskey>> {
        let rows: Vec<PasskeyRow> = query_built::<B>(format!(
            "SELECT {COLUMNS} FROM factors WHERE customer_id = $1 AND {CONFIRMED} \
             ORDER BY created_at, id"
        ))
        .bind(customer.as_str())
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(rows.into_iter().map(StoredPasskey::from).collect())
    }

    async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>> {
        let row: Option<PasskeyRow> = query_built::<B>(format!(
            "SELECT {COLUMNS} FROM factors WHERE credential_id = $1 AND {CONFIRMED}"
        ))
        .bind(credential_id)
        .fetch_optional(&mut *self.read().await?)
        .await?;
        Ok(row.map(StoredPasskey::from))
    }

    async fn open_passkey_login(
        &self,
        id: &ChallengeId,
        state: &CeremonyState,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        query::<B>(
            "INSERT INTO passkey_logins (id, ceremony, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(state.0.as_str())
        .bind(to_unix_millis(created_at))
        .bind(to_unix_millis(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_passkey_login(
        &self,
        id: &ChallengeId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<CeremonyState>> {
        let mut tx = self.write().await?;
        // Deleted as it is read: of two answers at once, on any instance, one gets it.
        let row: Option<(String, i64)> =
            query::<B>("DELETE FROM passkey_logins WHERE id = $1 RETURNING ceremony, expires_at")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(row
            .filter(|(_, expires_at)| *expires_at > to_unix_millis(now))
            .map(|(state, _)| CeremonyState(state)))
    }
}
