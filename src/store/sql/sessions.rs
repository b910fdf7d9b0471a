//! Sessions and their tokens.

use anyhow::anyhow;
use async_trait::async_trait;
use time::OffsetDateTime;

use super::login_commits::Login;
use super::{
    SqlStore, Tx, audit, completion, customers, devices, factor_changes, outbox, passkeys, places,
    session_ends,
};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::customers::{Customer, CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::ports::{SessionStart, SessionStore, StoreError, StoreResult};
use crate::domain::risk::client::DeviceName;
use crate::domain::risk::location::Location;
use crate::domain::sessions::token::TokenHash;
use crate::domain::sessions::{NewSession, Rotation, Session, SessionId, SessionState};
use crate::store::Trail;
use crate::store::backend::{Backend, TokenRead, query, token_read_batch};
use crate::store::rows::{
    SessionCustomerRow, SessionRow, select_session, select_session_with_customer,
};

/// When a completed login happened and the one before it.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoginTimes {
    pub login_at: OffsetDateTime,
    pub previous_login_at: Option<OffsetDateTime>,
}

/// Moves the customer's last login to `at`, returning the one it replaces.
pub(super) async fn record_login<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &CustomerId,
    at: OffsetDateTime,
) -> StoreResult<LoginTimes> {
    let previous: Option<(Option<i64>,)> = match B::MOVE_LAST_LOGIN {
        Some(move_returning_previous) => {
            query::<B>(move_returning_previous)
                .bind(to_unix_millis(at))
                .bind(customer.as_str())
                .fetch_optional(tx)
                .await?
        }
        None => {
            let previous = query::<B>("SELECT last_login_at FROM customers WHERE id = $1")
                .bind(customer.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            query::<B>("UPDATE customers SET last_login_at = $1 WHERE id = $2")
                .bind(to_unix_millis(at))
                .bind(customer.as_str())
                .execute(tx)
                .await?;
            previous
        }
    };
    let (previous,) =
        previous.ok_or_else(|| StoreError::Other(anyhow!("session for a missing customer")))?;
    Ok(LoginTimes {
        login_at: at,
        previous_login_at: previous.map(from_unix_millis),
    })
}

/// Retires the session's current refresh token so that presenting it again is seen as reuse.
pub(super) async fn retire_refresh<B: Backend>(
    tx: &mut Tx<'_, B>,
    id: &SessionId,
    at: OffsetDateTime,
) -> StoreResult<bool> {
    let retired = query::<B>(
        "INSERT INTO retired_refresh_tokens (hash, session_id, retired_at) \
         SELECT refresh_hash, id, $1 FROM sessions WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(to_unix_millis(at))
    .bind(id.as_str())
    .execute(tx)
    .await?;
    Ok(retired == 1)
}

static BY_ACCESS: TokenRead = TokenRead {
    one: select_session!("FROM sessions s WHERE s.access_hash = $1"),
    batch: token_read_batch!(select_session!(
        "FROM sessions s WHERE s.access_hash = k.hash"
    )),
};
static WITH_CUSTOMER_BY_ACCESS: TokenRead = TokenRead {
    one: select_session_with_customer!("WHERE s.access_hash = $1"),
    batch: token_read_batch!(select_session_with_customer!(
        "WHERE s.access_hash = k.hash"
    )),
};
const BY_REFRESH: &str = select_session!("FROM sessions s WHERE s.refresh_hash = $1");
const BY_RETIRED_REFRESH: &str = select_session!(
    "FROM retired_refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1"
);

/// Writes a new session's row; `login` when it starts ACTIVE (a completed login).
pub(super) async fn insert_session<B: Backend>(
    tx: &mut Tx<'_, B>,
    s: &NewSession,
    login: Option<LoginTimes>,
) -> StoreResult<()> {
    let device = s.client.device.as_ref();
    let location = &s.client.location;
    query::<B>(
            "INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, \
             expires_at, absolute_expires_at, last_seen_at, login_at, previous_login_at, ip, user_agent, \
             device_fingerprint, device_name, country, asn, latitude, longitude, recent_auth_at, \
             two_factor_verified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(s.id.as_str())
        .bind(s.customer_id.as_str())
        .bind(s.state.as_str())
        .bind(s.access_hash.as_bytes().as_slice())
        .bind(s.refresh_hash.as_bytes().as_slice())
        .bind(to_unix_millis(s.created_at))
        .bind(to_unix_millis(s.expires_at))
        .bind(to_unix_millis(s.absolute_expires_at))
        .bind(to_unix_millis(s.created_at))
        .bind(login.map(|l| to_unix_millis(l.login_at)))
        .bind(login.and_then(|l| l.previous_login_at).map(to_unix_millis))
        .bind(s.client.ip.map(|ip| ip.to_string()))
        .bind(s.client.user_agent.as_deref())
        .bind(device.map(|d| d.fingerprint.as_str()))
        .bind(device.and_then(|d| d.name.as_ref()).map(DeviceName::as_str))
        .bind(location.country.as_deref())
        .bind(location.asn.map(i64::from))
        .bind(location.coordinates.map(|c| c.latitude))
        .bind(location.coordinates.map(|c| c.longitude))
        .bind(s.recent_auth_at.map(to_unix_millis))
        .bind(s.proof.is_some())
        .execute(tx)
        .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> SessionStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.start_session",
        skip_all
    )]
    async fn start_session(
        &self,
        s: &NewSession,
        username: &Username,
        event: &AuditEvent,
        notice: Option<&Message>,
    ) -> StoreResult<SessionStart> {
        if B::GROUP_LOGINS {
            let login = Login {
                session: s.clone(),
                username: username.clone(),
                event: event.clone(),
                notice: notice.cloned(),
                span: tracing::Span::current(),
            };
            return self.start_session_grouped(login).await;
        }
        let mut tx = self.write().await?;
        let start = start_in(&mut tx, &self.trail, s, username, event, notice).await?;
        if matches!(start, SessionStart::Started { .. }) {
            tx.commit().await?;
        }
        Ok(start)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.session_by_access",
        skip_all
    )]
    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        self.read_by_token::<SessionRow, _>(&BY_ACCESS, hash).await
    }

    #[tracing::instrument(
        level = "debug",
        name = "store.session_with_customer_by_access",
        skip_all
    )]
    async fn session_with_customer_by_access(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<(Session, Customer)>> {
        self.read_by_token::<SessionCustomerRow, _>(&WITH_CUSTOMER_BY_ACCESS, hash)
            .await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.session_by_refresh",
        skip_all
    )]
    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        self.read_one::<SessionRow, _>(BY_REFRESH, hash.as_bytes().as_slice())
            .await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.session_by_retired_refresh",
        skip_all
    )]
    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        self.read_one::<SessionRow, _>(BY_RETIRED_REFRESH, hash.as_bytes().as_slice())
            .await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.touch_session",
        skip_all
    )]
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()> {
        self.write_alone(
            query::<B>("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
                .bind(to_unix_millis(at))
                .bind(id.as_str())
                .bind(to_unix_millis(at)),
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.rotate_session",
        skip_all
    )]
    async fn rotate_session(&self, r: &Rotation, event: &AuditEvent) -> StoreResult<bool> {
        let old = r.old_refresh.ok_or_else(|| {
            StoreError::Other(anyhow!("a refresh rotation needs the presented token"))
        })?;
        let mut tx = self.write().await?;
        let swapped = query::<B>(
            "UPDATE sessions SET access_hash = $1, refresh_hash = $2, expires_at = $3 \
             WHERE id = $4 AND refresh_hash = $5 AND revoked_at IS NULL AND state = 'ACTIVE'",
        )
        .bind(r.access_hash.as_bytes().as_slice())
        .bind(r.refresh_hash.as_bytes().as_slice())
        .bind(to_unix_millis(r.expires_at))
        .bind(r.session_id.as_str())
        .bind(old.as_bytes().as_slice())
        .execute(&mut tx)
        .await?
            == 1;
        if !swapped {
            return Ok(false);
        }
        query::<B>(
            "INSERT INTO retired_refresh_tokens (hash, session_id, retired_at) VALUES ($1, $2, $3)",
        )
        .bind(old.as_bytes().as_slice())
        .bind(r.session_id.as_str())
        .bind(to_unix_millis(r.at))
        .execute(&mut tx)
        .await?;
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.revoke_session",
        skip_all
    )]
    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        Ok(session_ends::end_sessions_audited(
            self,
            session_ends::END_SESSION,
            id.as_str(),
            reason,
            event,
        )
        .await?
            == 1)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.revoke_customer_sessions",
        skip_all
    )]
    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        session_ends::end_sessions_audited(
            self,
            session_ends::END_CUSTOMER_SESSIONS,
            customer.as_str(),
            reason,
            event,
        )
        .await
    }

    async fn end_sessions_for_operator(
        &self,
        whose: Option<&CustomerId>,
        reason: &str,
        at: OffsetDateTime,
        audit: &(dyn Fn(u64) -> AuditEvent + Send + Sync),
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        // `$3` NULL: every customer's.
        let ended = query::<B>(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
             WHERE revoked_at IS NULL AND absolute_expires_at > $1 \
             AND (state = 'ACTIVE' OR expires_at > $1) \
             AND ($3 IS NULL OR customer_id = $3)",
        )
        .bind(to_unix_millis(at))
        .bind(reason)
        .bind(whose.map(CustomerId::as_str))
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, &self.trail, &[&audit(ended)]).await?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// Starts a session in `tx` unless the username is locked or the proof or ceremony was used
/// meanwhile; only a `Started` answer leaves anything written for the caller to commit.
pub(super) async fn start_in<B: Backend>(
    tx: &mut Tx<'_, B>,
    trail: &Trail,
    s: &NewSession,
    username: &Username,
    event: &AuditEvent,
    notice: Option<&Message>,
) -> StoreResult<SessionStart> {
    let lockout = customers::lockout_in(&mut *tx, username).await?;
    if lockout.lock_at(s.created_at).is_some() {
        return Ok(SessionStart::Locked(lockout));
    }
    if let Some(proof) = &s.proof {
        if let Some(ceremony) = &proof.ceremony
            && !passkeys::answer(&mut *tx, ceremony).await?
        {
            return Ok(SessionStart::CeremonyAnswered);
        }
        if !completion::spend(&mut *tx, &proof.spend, s.created_at).await? {
            return Ok(SessionStart::ProofSpent);
        }
        factor_changes::mark_used(&mut *tx, &proof.factor, s.created_at).await?;
    }
    // Only a completed login resets the failure count: a password alone, for a customer
    // with 2FA, must not buy fresh guesses at the code.
    let login = match s.state {
        SessionState::Active => {
            customers::reset_failures(&mut *tx, username, &lockout).await?;
            Some(record_login(&mut *tx, &s.customer_id, s.created_at).await?)
        }
        SessionState::TwoFactorPending
        | SessionState::EnrolmentRequired
        | SessionState::PasswordReset => None,
    };
    insert_session(&mut *tx, s, login).await?;
    let ended = match login {
        Some(_) => {
            let whose = (&s.customer_id, username);
            session_ends::end_past_limit(&mut *tx, &s.id, whose, &s.limit, s.created_at).await?
        }
        None => Vec::new(),
    };
    let device = s.client.device.as_ref();
    let location = &s.client.location;
    // Only a located login has places to remember (no location database: no statements).
    if login.is_some() && *location != Location::default() {
        places::record_completed_login(&mut *tx, &s.id, s.created_at).await?;
    }
    if let Some(device) = device {
        devices::record_sighting(&mut *tx, s, device).await?;
    }
    if let Some(notice) = notice {
        outbox::enqueue(&mut *tx, notice).await?;
    }
    let events: Vec<&AuditEvent> = std::iter::once(event).chain(&ended).collect();
    audit::append(&mut *tx, trail, &events).await?;
    Ok(SessionStart::Started {
        previous_login_at: login.and_then(|l| l.previous_login_at),
    })
}
