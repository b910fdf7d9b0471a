//! Devices, known by the keyed hash of their fingerprint (sessions hold the same hash).

use super::Tx;
use crate::clock::to_unix_millis;
use crate::domain::ports::StoreResult;
use crate::domain::risk::client::{Device, DeviceName};
use crate::domain::risk::device::DeviceId;
use crate::domain::sessions::{NewSession, SessionId, SessionState};
use crate::store::backend::{Backend, query};

/// A login with the right password names this device: records it, or brings it up to date. A
/// completed login (no 2FA owed) also makes it known.
pub(super) async fn record_sighting<B: Backend>(
    tx: &mut Tx<'_, B>,
    s: &NewSession,
    device: &Device,
) -> StoreResult<()> {
    for former in &device.hashed_before {
        rehash(tx, s, former, &device.fingerprint).await?;
    }
    let verified_at = (s.state == SessionState::Active).then(|| to_unix_millis(s.created_at));
    query::<B>(
        "INSERT INTO devices (id, customer_id, fingerprint_hash, name, first_seen_at, last_seen_at, \
         last_ip, last_country, verified_at, last_user_agent) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9) \
         ON CONFLICT (customer_id, fingerprint_hash) DO UPDATE SET \
         name = COALESCE(excluded.name, devices.name), last_seen_at = excluded.last_seen_at, \
         last_ip = excluded.last_ip, last_country = excluded.last_country, \
         last_user_agent = excluded.last_user_agent, \
         verified_at = COALESCE(devices.verified_at, excluded.verified_at)",
    )
    .bind(DeviceId::generate().as_str())
    .bind(s.customer_id.as_str())
    .bind(device.fingerprint.as_str())
    .bind(device.name.as_ref().map(DeviceName::as_str))
    .bind(to_unix_millis(s.created_at))
    .bind(s.client.ip.map(|ip| ip.to_string()))
    .bind(s.client.location.country.as_deref())
    .bind(verified_at)
    .bind(s.client.user_agent.as_deref())
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves the customer's device stored under `former` (its fingerprint's hash under a previous
/// audit key) to `current`, with its live sessions, and remembers `former` for the audit events
/// that name it. Nothing happens if no device is stored under `former`, or one already is under
/// `current`.
async fn rehash<B: Backend>(
    tx: &mut Tx<'_, B>,
    s: &NewSession,
    former: &str,
    current: &str,
) -> StoreResult<()> {
    let customer = s.customer_id.as_str();
    query::<B>(
        "INSERT INTO device_former_hashes (customer_id, fingerprint_hash, device_id) \
         SELECT customer_id, fingerprint_hash, id FROM devices \
         WHERE customer_id = $1 AND fingerprint_hash = $2 ON CONFLICT DO NOTHING",
    )
    .bind(customer)
    .bind(former)
    .execute(&mut *tx)
    .await?;
    let moved = query::<B>(
        "UPDATE devices SET fingerprint_hash = $3 WHERE customer_id = $1 AND fingerprint_hash = $2 \
         AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.customer_id = $1 AND d.fingerprint_hash = $3)",
    )
    .bind(customer)
    .bind(former)
    .bind(current)
    .execute(&mut *tx)
    .await?;
    if moved > 0 {
        query::<B>(
            "UPDATE sessions SET device_fingerprint = $3 \
             WHERE customer_id = $1 AND device_fingerprint = $2",
        )
        .bind(customer)
        .bind(former)
        .bind(current)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The session's second factor is verified: its device (if any) is known from now on.
pub(super) async fn mark_verified<B: Backend>(
    tx: &mut Tx<'_, B>,
    session: &SessionId,
    at: time::OffsetDateTime,
) -> StoreResult<()> {
    query::<B>(
        "UPDATE devices SET verified_at = $1 WHERE verified_at IS NULL \
         AND customer_id = (SELECT customer_id FROM sessions WHERE id = $2) \
         AND fingerprint_hash = (SELECT device_fingerprint FROM sessions WHERE id = $2)",
    )
    .bind(to_unix_millis(at))
    .bind(session.as_str())
    .execute(tx)
    .await?;
    Ok(())
}
