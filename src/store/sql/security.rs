//! The customer's own security view: live sessions, devices, sign-in history.

use anyhow::Context as _;
use async_trait::async_trait;

use super::{SqlStore, audit};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::{AuditEvent, AuditKind, Outcome};
use crate::domain::auth::security::{Cursor, HISTORY_KINDS, LiveSession, Liveness, SecurityEvent};
use crate::domain::customers::{CustomerId, Username};
use crate::domain::ports::{SecurityStore, StoreError, StoreResult};
use crate::domain::risk::device::{DeviceId, DeviceRef, KnownDevice};
use crate::domain::risk::location::Coordinates;
use crate::domain::risk::{DeviceStanding, LoginHistory};
use crate::domain::sessions::{SessionId, SessionState};
use crate::store::backend::{Backend, Query, query, query_built};
use crate::store::record::record;
use crate::store::rows::device_counts;

/// Sessions none of whose lifetimes had ended at `$2`, last seen after `$3`: as
/// `SessionPolicy::check_renewal` decides, in SQL.
macro_rules! within_lifetimes {
    () => {
        "s.absolute_expires_at > $2 AND (s.state = 'ACTIVE' OR s.expires_at > $2) \
         AND s.last_seen_at > $3"
    };
}

/// Live sessions of customer `$1` at `$2` (now), last seen after `$3`.
macro_rules! live {
    () => {
        concat!(
            "s.customer_id = $1 AND s.revoked_at IS NULL AND ",
            within_lifetimes!()
        )
    };
}

/// Sessions of customer `$1` that were live at `$2` (a past moment), last seen after `$3`,
/// whether or not they have ended since.
macro_rules! live_then {
    () => {
        concat!(
            "s.customer_id = $1 AND s.created_at < $2 \
             AND (s.revoked_at IS NULL OR s.revoked_at >= $2) AND ",
            $crate::store::sql::security::within_lifetimes!()
        )
    };
}
pub(super) use {live_then, within_lifetimes};

/// Binds `$1`, `$2`, `$3` of [`live!`] and [`live_then!`].
pub(super) fn bind_live<B: Backend>(
    q: Query<B>,
    customer: &CustomerId,
    live: &Liveness,
) -> Query<B> {
    q.bind(customer.as_str().to_owned())
        .bind(to_unix_millis(live.now))
        .bind(live.idle_before.map_or(i64::MIN, to_unix_millis))
}

record! {
    struct LiveSessionRow {
        id: String,
        state: String,
        created_at: i64,
        last_seen_at: i64,
        expires_at: i64,
        ip: Option<String>,
        country: Option<String>,
        user_agent: Option<String>,
        device_id: Option<String>,
        device_name: Option<String>,
    }
}

fn device_ref(id: Option<String>, name: Option<String>) -> Option<DeviceRef> {
    id.map(|id| DeviceRef {
        id: DeviceId::from_stored(id),
        name,
    })
}

impl TryFrom<LiveSessionRow> for LiveSession {
    type Error = StoreError;

    fn try_from(r: LiveSessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: SessionId::from_stored(r.id),
            state: SessionState::from_stored(&r.state)
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("corrupt session state")))?,
            created_at: from_unix_millis(r.created_at),
            last_seen_at: from_unix_millis(r.last_seen_at),
            expires_at: from_unix_millis(r.expires_at),
            ip: r.ip,
            country: r.country,
            user_agent: r.user_agent,
            device: device_ref(r.device_id, r.device_name),
        })
    }
}

record! {
    struct DeviceRow {
        id: String,
        name: Option<String>,
        first_seen_at: i64,
        last_seen_at: i64,
        last_ip: Option<String>,
        last_country: Option<String>,
        active_sessions: i64,
    }
}

impl From<DeviceRow> for KnownDevice {
    fn from(r: DeviceRow) -> Self {
        Self {
            id: DeviceId::from_stored(r.id),
            name: r.name,
            first_seen_at: from_unix_millis(r.first_seen_at),
            last_seen_at: from_unix_millis(r.last_seen_at),
            last_ip: r.last_ip,
            last_country: r.last_country,
            active_sessions: u64::try_from(r.active_sessions).unwrap_or(0),
        }
    }
}

record! {
    struct EventRow {
        seq: i64,
        id: String,
        at: i64,
        kind: String,
        outcome: String,
        reason: Option<String>,
        ip: Option<String>,
        details: String,
        device_id: Option<String>,
        device_name: Option<String>,
    }
}

impl TryFrom<EventRow> for SecurityEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Other(anyhow::anyhow!("corrupt audit {what}"));
        let details: serde_json::Value = serde_json::from_str(&r.details)
            .with_context(|| format!("audit event {} has unreadable details", r.seq))?;
        let flags = details["flags"]
            .as_array()
            .map(|flags| {
                flags
                    .iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            seq: r.seq,
            id: r.id,
            at: from_unix_millis(r.at),
            kind: AuditKind::from_stored(&r.kind).ok_or_else(|| corrupt("kind"))?,
            outcome: Outcome::from_stored(&r.outcome).ok_or_else(|| corrupt("outcome"))?,
            reason: r.reason,
            ip: r.ip,
            country: details["country"].as_str().map(str::to_owned),
            device: device_ref(r.device_id, r.device_name),
            flags,
        })
    }
}

/// The customer's history: events of theirs, or naming their username (failed logins before
/// the customer was looked up), each side read newest first through its own index.
fn history_query() -> String {
    let kinds: Vec<String> = HISTORY_KINDS
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect();
    let kinds = kinds.join(", ");
    format!(
        "SELECT a.seq, a.id, a.at, a.kind, a.outcome, a.reason, a.ip, a.details, \
         d.id AS device_id, d.name AS device_name \
         FROM (SELECT seq FROM (SELECT seq FROM audit_events WHERE customer_id = $1 AND seq < $3 \
         AND kind IN ({kinds}) ORDER BY seq DESC LIMIT $4) AS mine \
         UNION SELECT seq FROM (SELECT seq FROM audit_events WHERE username = $2 AND seq < $3 \
         AND kind IN ({kinds}) ORDER BY seq DESC LIMIT $4) AS named) AS picked \
         JOIN audit_events a ON a.seq = picked.seq \
         LEFT JOIN devices d ON d.id = COALESCE( \
         (SELECT id FROM devices WHERE customer_id = $1 AND fingerprint_hash = a.device_fingerprint), \
         (SELECT device_id FROM device_former_hashes \
         WHERE customer_id = $1 AND fingerprint_hash = a.device_fingerprint)) \
         ORDER BY a.seq DESC LIMIT $4"
    )
}

#[async_trait]
impl<B: Backend> SecurityStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.live_sessions",
        skip_all
    )]
    async fn live_sessions(
        &self,
        customer: &CustomerId,
        live: &Liveness,
    ) -> StoreResult<Vec<LiveSession>> {
        let rows: Vec<LiveSessionRow> = bind_live(
            query::<B>(concat!(
                "SELECT s.id, s.state, s.created_at, s.last_seen_at, s.expires_at, s.ip, \
                 s.country, s.user_agent, d.id AS device_id, d.name AS device_name FROM sessions s \
                 LEFT JOIN devices d ON d.customer_id = s.customer_id \
                 AND d.fingerprint_hash = s.device_fingerprint WHERE ",
                live!(),
                " ORDER BY s.created_at DESC, s.id DESC"
            )),
            customer,
            live,
        )
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.into_iter().map(LiveSession::try_from).collect()
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.end_own_session",
        skip_all
    )]
    async fn end_own_session(
        &self,
        customer: &CustomerId,
        session: &SessionId,
        live: &Liveness,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let ended = bind_live(
            query::<B>(concat!(
                "UPDATE sessions SET revoked_at = $4, revoke_reason = $5 \
                 WHERE id = $6 AND id IN (SELECT s.id FROM sessions s WHERE ",
                live!(),
                ")"
            )),
            customer,
            live,
        )
        .bind(to_unix_millis(event.at))
        .bind(if event.kind == AuditKind::Logout {
            "logout"
        } else {
            "ended_by_customer"
        })
        .bind(session.as_str())
        .execute(&mut tx)
        .await?;
        if ended == 0 {
            return Ok(false);
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.device_standing",
        skip_all
    )]
    async fn device_standing(
        &self,
        customer: &CustomerId,
        fingerprint_hash: Option<&str>,
    ) -> StoreResult<DeviceStanding> {
        // One read answers both, as a password login's first query does: is this device
        // known, and is any?
        let (this, any): (i64, i64) = query::<B>(concat!("SELECT ", device_counts!("$1")))
            .bind(customer.as_str())
            .bind(fingerprint_hash)
            .fetch_one(&mut self.read().await?)
            .await?;
        Ok(DeviceStanding::of(
            fingerprint_hash.is_some(),
            this > 0,
            any > 0,
        ))
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.devices",
        skip_all
    )]
    async fn devices(
        &self,
        customer: &CustomerId,
        live: &Liveness,
    ) -> StoreResult<Vec<KnownDevice>> {
        let rows: Vec<DeviceRow> = bind_live(
            query::<B>(concat!(
                "SELECT d.id, d.name, d.first_seen_at, d.last_seen_at, d.last_ip, d.last_country, \
                 (SELECT COUNT(*) FROM sessions s WHERE s.device_fingerprint = d.fingerprint_hash \
                 AND s.state = 'ACTIVE' AND ",
                live!(),
                ") AS active_sessions FROM devices d WHERE d.customer_id = $1 \
                 ORDER BY d.last_seen_at DESC, d.id DESC"
            )),
            customer,
            live,
        )
        .fetch_all(&mut self.read().await?)
        .await?;
        Ok(rows.into_iter().map(KnownDevice::from).collect())
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.forget_device",
        skip_all
    )]
    async fn forget_device(
        &self,
        customer: &CustomerId,
        device: &DeviceId,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let found: Option<(String,)> =
            query::<B>("SELECT fingerprint_hash FROM devices WHERE id = $1 AND customer_id = $2")
                .bind(device.as_str())
                .bind(customer.as_str())
                .fetch_optional(&mut tx)
                .await?;
        let Some((fingerprint_hash,)) = found else {
            return Ok(false);
        };
        query::<B>(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'device_forgotten' \
             WHERE customer_id = $2 AND device_fingerprint = $3 AND revoked_at IS NULL",
        )
        .bind(to_unix_millis(event.at))
        .bind(customer.as_str())
        .bind(fingerprint_hash.as_str())
        .execute(&mut tx)
        .await?;
        query::<B>("DELETE FROM devices WHERE id = $1")
            .bind(device.as_str())
            .execute(&mut tx)
            .await?;
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.login_history",
        skip_all
    )]
    async fn login_history(&self, customer: &CustomerId) -> StoreResult<LoginHistory> {
        let mut conn = self.read().await?;
        let row: Option<(Option<i64>, Option<i64>, Option<f64>, Option<f64>)> = query::<B>(
            "SELECT last_login_at, last_located_at, last_latitude, last_longitude \
             FROM customers WHERE id = $1",
        )
        .bind(customer.as_str())
        .fetch_optional(&mut conn)
        .await?;
        let Some((last_login, located_at, latitude, longitude)) = row else {
            return Ok(LoginHistory::default());
        };
        let places: Vec<(String, String)> =
            query::<B>("SELECT kind, value FROM login_places WHERE customer_id = $1")
                .bind(customer.as_str())
                .fetch_all(&mut conn)
                .await?;
        let mut history = LoginHistory {
            completed_before: last_login.is_some(),
            last_located: match (located_at, latitude, longitude) {
                (Some(at), Some(latitude), Some(longitude)) => Some((
                    from_unix_millis(at),
                    Coordinates {
                        latitude,
                        longitude,
                    },
                )),
                _ => None,
            },
            ..LoginHistory::default()
        };
        for (kind, value) in places {
            match kind.as_str() {
                "COUNTRY" => history.countries.push(value),
                _ => history.networks.extend(value.parse::<u32>().ok()),
            }
        }
        Ok(history)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.security_events",
        skip_all
    )]
    async fn security_events(
        &self,
        customer: &CustomerId,
        username: &Username,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEvent>> {
        let rows: Vec<EventRow> = query_built::<B>(history_query())
            .bind(customer.as_str())
            .bind(username.as_str())
            .bind(before.map_or(i64::MAX, Cursor::seq))
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.into_iter().map(SecurityEvent::try_from).collect()
    }
}
