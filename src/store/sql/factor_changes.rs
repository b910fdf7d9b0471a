//! What other transactions do to a customer's factors: the first one written with a new
//! customer, a factor confirmed by its code, marked used by an answer, or dropped when its
//! confirmation took every guess; and the customer's row held while the set changes.

use time::OffsetDateTime;

use super::Tx;
use crate::clock::to_unix_millis;
use crate::domain::credentials::factor::FactorId;
use crate::domain::customers::NewCustomer;
use crate::domain::ports::{StoreError, StoreResult};
use crate::store::backend::{Backend, query, query_built, row_placeholders};

const INSERT: &str =
    "INSERT INTO factors (id, customer_id, method, address, is_default, created_at) VALUES ";
const COLUMNS: usize = 6;
/// As many as the customers of one insert statement, so a batch's factors take one too.
const ROWS_PER_STATEMENT: usize = super::insert::ROWS_PER_STATEMENT;

/// Stores the first factor of each newly inserted customer that has one, as their default.
pub(super) async fn insert_first<B: Backend>(
    tx: &mut Tx<'_, B>,
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

/// Holds the session that makes a change (the event's), refusing the change once that session
/// has ended: a request checked before a lockdown or a logout must not commit after it.
pub(super) async fn hold_acting_session<B: Backend>(
    tx: &mut Tx<'_, B>,
    event: &crate::domain::audit::AuditEvent,
) -> StoreResult<()> {
    let Some(session) = &event.session_id else {
        return Ok(());
    };
    let live = query::<B>("UPDATE sessions SET state = state WHERE id = $1 AND revoked_at IS NULL")
        .bind(session.as_str())
        .execute(tx)
        .await?;
    if live == 1 {
        Ok(())
    } else {
        Err(StoreError::SessionEnded)
    }
}

/// Holds the customer's row for the rest of the transaction (on PostgreSQL; SQLite's single
/// writer orders every write already).
pub(super) async fn hold_customer<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &str,
) -> StoreResult<()> {
    let _: Option<(String,)> = query::<B>(B::CUSTOMER_FOR_SEND)
        .bind(customer)
        .fetch_optional(tx)
        .await?;
    Ok(())
}

/// Keeps `customers.two_factor_method` telling an instance of the previous version (during a
/// rolling upgrade) that the customer has two-factor: the default's method when that version
/// knows it, else `EMAIL`, which it can still send; `NULL` without factors.
pub(super) async fn sync_previous_version<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &str,
) -> StoreResult<()> {
    query::<B>(
        "UPDATE customers SET two_factor_method = (SELECT CASE WHEN f.method IN ('SMS', 'EMAIL') \
         THEN f.method ELSE 'EMAIL' END FROM factors f WHERE f.customer_id = $1 AND f.is_default = TRUE) \
         WHERE id = $1",
    )
    .bind(customer)
    .execute(tx)
    .await?;
    Ok(())
}

/// Confirms an unconfirmed factor: usable, and the customer's default if they have none. It
/// counts as enrolled from `at` (what a lockdown goes by), not from when its enrolment began.
pub(super) async fn confirm<B: Backend>(
    tx: &mut Tx<'_, B>,
    factor: &FactorId,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let owner: Option<(String,)> =
        query::<B>("SELECT customer_id FROM factors WHERE id = $1 AND pending_until IS NOT NULL")
            .bind(factor.as_str())
            .fetch_optional(tx)
            .await?;
    let Some((customer,)) = owner else {
        return Err(StoreError::Other(anyhow::anyhow!(
            "a confirmed challenge's factor is gone"
        )));
    };
    hold_customer(tx, &customer).await?;
    let (defaults,): (i64,) =
        query::<B>("SELECT COUNT(*) FROM factors WHERE customer_id = $1 AND is_default = TRUE")
            .bind(customer.as_str())
            .fetch_one(tx)
            .await?;
    let confirmed = query::<B>(
        "UPDATE factors SET pending_until = NULL, is_default = $1, created_at = $2 \
         WHERE id = $3 AND pending_until IS NOT NULL",
    )
    .bind(defaults == 0)
    .bind(to_unix_millis(at))
    .bind(factor.as_str())
    .execute(tx)
    .await?;
    if confirmed != 1 {
        // Purged at its expiry meanwhile: nothing of the answer is kept.
        return Err(StoreError::Other(anyhow::anyhow!(
            "a confirmed challenge's factor expired meanwhile"
        )));
    }
    sync_previous_version(tx, &customer).await
}

/// What a customer removes by a lockdown: the factors (confirmed or not) and recovery codes
/// enrolled at or after `since`, and the challenges open for those factors. The default moves to
/// the oldest factor left; without one, two-factor is off and the remaining recovery codes go
/// too. Returns how many factors and codes went.
pub(super) async fn remove_enrolled_since<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &str,
    since: OffsetDateTime,
) -> StoreResult<(u64, u64)> {
    let since = to_unix_millis(since);
    hold_customer(tx, customer).await?;
    query::<B>(
        "UPDATE challenges SET status = 'SUPERSEDED' WHERE status = 'OPEN' AND factor_id IN \
         (SELECT id FROM factors WHERE customer_id = $1 AND created_at >= $2)",
    )
    .bind(customer)
    .bind(since)
    .execute(&mut *tx)
    .await?;
    let factors = query::<B>("DELETE FROM factors WHERE customer_id = $1 AND created_at >= $2")
        .bind(customer)
        .bind(since)
        .execute(&mut *tx)
        .await?;
    let codes = query::<B>(
        "DELETE FROM recovery_codes WHERE customer_id = $1 AND (created_at >= $2 OR NOT EXISTS \
         (SELECT 1 FROM factors WHERE customer_id = $1 AND pending_until IS NULL))",
    )
    .bind(customer)
    .bind(since)
    .execute(&mut *tx)
    .await?;
    if factors > 0 {
        query::<B>(
            "UPDATE factors SET is_default = TRUE WHERE id = (SELECT id FROM factors \
             WHERE customer_id = $1 AND pending_until IS NULL ORDER BY created_at, id LIMIT 1) \
             AND NOT EXISTS (SELECT 1 FROM factors WHERE customer_id = $1 AND is_default = TRUE)",
        )
        .bind(customer)
        .execute(&mut *tx)
        .await?;
        sync_previous_version(tx, customer).await?;
    }
    Ok((factors, codes))
}

/// Records when a factor last answered a challenge.
pub(super) async fn mark_used<B: Backend>(
    tx: &mut Tx<'_, B>,
    factor: &FactorId,
    at: OffsetDateTime,
) -> StoreResult<()> {
    query::<B>("UPDATE factors SET last_used_at = $1 WHERE id = $2")
        .bind(to_unix_millis(at))
        .bind(factor.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// Drops an unconfirmed factor whose confirmation took every allowed guess.
pub(super) async fn drop_pending<B: Backend>(
    tx: &mut Tx<'_, B>,
    factor: &FactorId,
) -> StoreResult<()> {
    query::<B>("DELETE FROM factors WHERE id = $1 AND pending_until IS NOT NULL")
        .bind(factor.as_str())
        .execute(tx)
        .await?;
    Ok(())
}
