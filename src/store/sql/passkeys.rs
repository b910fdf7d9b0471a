//! Passkeys: the credentials of confirmed PASSKEY factors, and the passkey logins answered.

use async_trait::async_trait;

use super::{SqlStore, Tx};
use crate::clock::to_unix_millis;
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::passkey::StoredPasskey;
use crate::domain::credentials::passkey_login::AnsweredCeremony;
use crate::domain::customers::CustomerId;
use crate::domain::ports::{PasskeyStore, StoreResult};
use crate::store::backend::{Backend, query, query_built};
use crate::store::record::record;

const COLUMNS: &str = "id, customer_id, credential_id, passkey, user_handle, sign_count";

record! {
    #[derive(Debug)]
    struct PasskeyRow {
        id: String,
        customer_id: String,
        credential_id: String,
        passkey: String,
        user_handle: Vec<u8>,
        sign_count: i64,
    }
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
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.passkeys",
        skip_all
    )]
    async fn passkeys(&self, customer: &CustomerId) -> StoreResult<Vec<StoredPasskey>> {
        let rows: Vec<PasskeyRow> = query_built::<B>(format!(
            "SELECT {COLUMNS} FROM factors WHERE customer_id = $1 AND {CONFIRMED} \
             ORDER BY created_at, id"
        ))
        .bind(customer.as_str())
        .fetch_all(&mut self.read().await?)
        .await?;
        Ok(rows.into_iter().map(StoredPasskey::from).collect())
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.passkey_by_credential",
        skip_all
    )]
    async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>> {
        let row: Option<PasskeyRow> = query_built::<B>(format!(
            "SELECT {COLUMNS} FROM factors WHERE credential_id = $1 AND {CONFIRMED}"
        ))
        .bind(credential_id)
        .fetch_optional(&mut self.read().await?)
        .await?;
        Ok(row.map(StoredPasskey::from))
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.passkey_login_answered",
        skip_all
    )]
    async fn passkey_login_answered(&self, id: &str) -> StoreResult<bool> {
        let answered: Option<(i64,)> =
            query::<B>("SELECT expires_at FROM answered_passkey_logins WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut self.read().await?)
                .await?;
        Ok(answered.is_some())
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.answer_passkey_login",
        skip_all
    )]
    async fn answer_passkey_login(&self, ceremony: &AnsweredCeremony) -> StoreResult<()> {
        let mut tx = self.write().await?;
        answer(&mut tx, ceremony).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Records a passkey login's ceremony as answered; `false` when it already was (on any
/// instance: the primary key decides).
pub(super) async fn answer<B: Backend>(
    tx: &mut Tx<'_, B>,
    ceremony: &AnsweredCeremony,
) -> StoreResult<bool> {
    let inserted = query::<B>(
        "INSERT INTO answered_passkey_logins (id, expires_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(ceremony.id.as_str())
    .bind(to_unix_millis(ceremony.expires_at))
    .execute(tx)
    .await?;
    Ok(inserted == 1)
}
