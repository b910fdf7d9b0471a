//! Second factors: written with their customer, read with it (the default, in the customer's
//! row) or here (all of them).

use async_trait::async_trait;

use super::{SqlStore, Tx};
use crate::domain::credentials::factor::{Factor, FactorId, FactorKind};
use crate::domain::customers::{CustomerId, NewCustomer};
use crate::domain::ports::{FactorStore, StoreError, StoreResult};
use crate::store::backend::{Backend, query, query_built, row_placeholders};

const INSERT: &str =
    "INSERT INTO factors (id, customer_id, method, address, is_default, created_at) VALUES ";
const COLUMNS: usize = 6;
/// As many as the customers of one insert statement, so a batch's factors take one too.
const ROWS_PER_STATEMENT: usize = super::insert::ROWS_PER_STATEMENT;

#[derive(Debug, sqlx::FromRow)]
struct FactorRow {
    id: String,
    method: String,
    address: Option<String>,
}

impl TryFrom<FactorRow> for Factor {
    type Error = StoreError;

    fn try_from(r: FactorRow) -> Result<Self, StoreError> {
        Ok(Self {
            kind: FactorKind::from_stored(&r.method, r.address.as_deref())
                .map_err(|e| StoreError::Other(anyhow::anyhow!("corrupt stored factor: {e}")))?,
            id: FactorId::from_stored(r.id),
        })
    }
}

/// Stores the first factor of each newly inserted customer that has one, as their default.
pub(super) async fn insert_first<B: Backend>(
    tx: &mut Tx<B>,
    customers: &[(&NewCustomer, i64)],
) -> StoreResult<()> {
    let with_factor: Vec<_> = customers
        .iter()
        .filter_map(|&(c, at)| c.factor().map(|f| (c, f, at)))
        .collect();
    for rows in with_factor.chunks(ROWS_PER_STATEMENT) {
        let mut insert = query_built::<B>(format!(
            "{INSERT}{}",
            row_placeholders::<B>(rows.len(), COLUMNS)
        ));
        for &(customer, factor, at) in rows {
            insert = insert
                .bind(factor.id.as_str())
                .bind(customer.profile().id.as_str())
                .bind(factor.method().as_str())
                .bind(factor.kind.address())
                .bind(true)
                .bind(at);
        }
        insert.execute(tx).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> FactorStore for SqlStore<B> {
    async fn factors(&self, customer: &CustomerId) -> StoreResult<Vec<Factor>> {
        let rows: Vec<FactorRow> = query::<B>(
            "SELECT id, method, address FROM factors WHERE customer_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(customer.as_str())
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter().map(Factor::try_from).collect()
    }
}
