//! Inserting customers: one, or an import's batch a few dozen rows to a statement (a
//! statement per row would cost a round trip to the database each).

use std::collections::HashSet;

use super::{Tx, factor_changes};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::customers::NewCustomer;
use crate::domain::ports::{Insertion, StoreResult};
use crate::store::backend::{Backend, Query, query, query_built, row_placeholders};

const INSERT: &str = "INSERT INTO customers (id, username, email, phone, first_name, last_name, \
     kyc_status, two_factor_method, password_hash, created_at) VALUES ";
const COLUMNS: usize = 10;
/// Typical rows (~250 bytes of values) keep a statement within one TLS record (see "Batch
/// sizes" in `store/backend.rs`).
pub(super) const ROWS_PER_STATEMENT: usize = 40;

fn bind_customer<B: Backend>(
    insert: Query<B>,
    customer: &NewCustomer,
    created_at: i64,
) -> Query<B> {
    let c = customer.profile();
    insert
        .bind(c.id.as_str())
        .bind(c.username.as_str())
        .bind(c.email.as_str())
        .bind(c.phone.as_ref().map(|p| p.as_str()))
        .bind(c.first_name.as_str())
        .bind(c.last_name.as_str())
        .bind(c.kyc_status.as_str())
        // No longer read (the factor is): written while an instance of the previous version
        // may still read it, during a rolling upgrade.
        .bind(customer.factor().map(|f| f.method().as_str()))
        .bind(customer.password_hash())
        .bind(created_at)
}

/// Inserts one customer unless its customerId or username is taken, and says which.
pub(super) async fn one<B: Backend>(
    tx: &mut Tx<'_, B>,
    c: &NewCustomer,
    created_at: i64,
) -> StoreResult<Insertion> {
    let sql = format!(
        "{INSERT}{} ON CONFLICT DO NOTHING",
        row_placeholders::<B>(1, COLUMNS)
    );
    let inserted = bind_customer(query_built::<B>(sql), c, created_at)
        .execute(tx)
        .await?;
    if inserted == 1 {
        factor_changes::insert_first(tx, &[(c, created_at)]).await?;
        return Ok(Insertion::Inserted);
    }
    why_not_inserted(tx, c).await
}

/// Why a customer was not inserted. The same customer imported again (same customerId and
/// username) counts as its username existing.
async fn why_not_inserted<B: Backend>(
    tx: &mut Tx<'_, B>,
    c: &NewCustomer,
) -> StoreResult<Insertion> {
    let c = c.profile();
    let holder: Option<(String,)> = query::<B>("SELECT username FROM customers WHERE id = $1")
        .bind(c.id.as_str())
        .fetch_optional(tx)
        .await?;
    Ok(match holder {
        Some((username,)) if username != c.username.as_str() => Insertion::CustomerIdExists,
        _ => Insertion::UsernameExists,
    })
}

/// Inserts a batch, skipping customers whose customerId or username exists; says what became
/// of each, in order. Lines that repeat a customerId or username seen earlier in the batch go
/// one at a time after the rest, so that the first one wins, as it would line by line.
pub(super) async fn batch<B: Backend>(
    tx: &mut Tx<'_, B>,
    batch: &[(NewCustomer, AuditEvent)],
) -> StoreResult<Vec<Insertion>> {
    let (mut ids, mut usernames) = (HashSet::new(), HashSet::new());
    let (mut distinct, mut repeated) = (Vec::new(), Vec::new());
    for (i, (c, _)) in batch.iter().enumerate() {
        let new_id = ids.insert(c.profile().id.as_str());
        let new_username = usernames.insert(c.profile().username.as_str());
        if new_id && new_username {
            distinct.push(i);
        } else {
            repeated.push(i);
        }
    }
    let mut outcomes = vec![Insertion::UsernameExists; batch.len()];
    for rows in distinct.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "{INSERT}{} ON CONFLICT DO NOTHING RETURNING id",
            row_placeholders::<B>(rows.len(), COLUMNS)
        );
        let mut insert = query_built::<B>(sql);
        for &i in rows {
            let (c, event) = &batch[i];
            insert = bind_customer(insert, c, to_unix_millis(event.at));
        }
        let inserted: Vec<(String,)> = insert.fetch_all(tx).await?;
        let inserted: HashSet<String> = inserted.into_iter().map(|(id,)| id).collect();
        let mut new_customers = Vec::with_capacity(rows.len());
        for &i in rows {
            let (c, event) = &batch[i];
            outcomes[i] = if inserted.contains(c.profile().id.as_str()) {
                new_customers.push((c, to_unix_millis(event.at)));
                Insertion::Inserted
            } else {
                why_not_inserted(tx, c).await?
            };
        }
        factor_changes::insert_first(tx, &new_customers).await?;
    }
    for i in repeated {
        let (c, event) = &batch[i];
        outcomes[i] = one(tx, c, to_unix_millis(event.at)).await?;
    }
    Ok(outcomes)
}
