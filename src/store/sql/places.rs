//! The places of each customer's completed logins: the baseline unusual logins are judged by.

use super::Tx;
use crate::clock::to_unix_millis;
use crate::domain::ports::StoreResult;
use crate::domain::sessions::SessionId;
use crate::store::backend::{Backend, query};

/// The session's login completed: its country and network join the customer's known places,
/// and its coordinates (if any) become the customer's last located login.
pub(super) async fn record_completed_login<B: Backend>(
    tx: &mut Tx<'_, B>,
    session: &SessionId,
    at: time::OffsetDateTime,
) -> StoreResult<()> {
    // Both kinds in one statement: each is a round trip on PostgreSQL.
    query::<B>(
        "INSERT INTO login_places (customer_id, kind, value, first_seen_at, last_seen_at) \
         SELECT customer_id, 'COUNTRY', country, $2, $2 FROM sessions \
         WHERE id = $1 AND country IS NOT NULL \
         UNION ALL \
         SELECT customer_id, 'NETWORK', CAST(asn AS TEXT), $2, $2 FROM sessions \
         WHERE id = $1 AND asn IS NOT NULL \
         ON CONFLICT (customer_id, kind, value) DO UPDATE SET last_seen_at = excluded.last_seen_at",
    )
    .bind(session.as_str())
    .bind(to_unix_millis(at))
    .execute(&mut *tx)
    .await?;
    query::<B>(
        "UPDATE customers SET last_located_at = $2, \
         last_latitude = (SELECT latitude FROM sessions WHERE id = $1), \
         last_longitude = (SELECT longitude FROM sessions WHERE id = $1) \
         WHERE id = (SELECT customer_id FROM sessions WHERE id = $1) \
         AND (SELECT latitude FROM sessions WHERE id = $1) IS NOT NULL \
         AND (SELECT longitude FROM sessions WHERE id = $1) IS NOT NULL",
    )
    .bind(session.as_str())
    .bind(to_unix_millis(at))
    .execute(tx)
    .await?;
    Ok(())
}
