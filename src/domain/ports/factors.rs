//! Second factors a customer holds.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::credentials::factor::Factor;
use crate::domain::customers::CustomerId;

/// The factors customers hold. A customer's default factor is read with the customer
/// ([`Customer::factor`](crate::domain::customers::Customer::factor)), so the hot reads need no
/// second query; this port answers for the others.
#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    /// Every factor the customer holds, oldest first.
    async fn factors(&self, customer: &CustomerId) -> StoreResult<Vec<Factor>>;
}
