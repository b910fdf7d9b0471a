//! Two-factor challenges: sending limits, guess reservation and completion.

use sqlx::SqlitePool;
use time::{Duration, OffsetDateTime};

use super::{audit, customers, sessions, write_tx};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::customer::{CustomerId, Username};
use crate::domain::session::{Rotation, SessionId};
use crate::domain::two_factor::{
    AttemptClaim, Challenge, ChallengeId, NewChallenge, SendOutcome, TwoFactorPolicy,
};
use crate::store::rows::ChallengeRow;
use crate::store::{LoginTimes, StoreResult};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

pub(super) async fn open(
    pool: &SqlitePool,
    c: &NewChallenge,
    policy: &TwoFactorPolicy,
    event: &AuditEvent,
) -> StoreResult<SendOutcome> {
    let now = to_unix_millis(c.created_at);
    let mut tx = write_tx(pool).await?;
    // Counting the send and checking the limits is one conditional update.
    let counted = sqlx::query(
        "UPDATE sessions SET codes_sent = codes_sent + 1, last_code_sent_at = ? \
         WHERE id = ? AND state = 'TWO_FACTOR_PENDING' AND revoked_at IS NULL AND codes_sent < ? \
         AND (last_code_sent_at IS NULL OR last_code_sent_at <= ?)",
    )
    .bind(now)
    .bind(c.session_id.as_str())
    .bind(i64::from(policy.max_sends))
    .bind(now.saturating_sub(millis(policy.resend_interval)))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !counted {
        let (sent, last): (i64, Option<i64>) =
            sqlx::query_as("SELECT codes_sent, last_code_sent_at FROM sessions WHERE id = ?")
                .bind(c.session_id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or((i64::MAX, None));
        return Ok(match last {
            Some(last) if sent < i64::from(policy.max_sends) => SendOutcome::TooSoon {
                retry_at: from_unix_millis(last) + policy.resend_interval,
            },
            _ => SendOutcome::LimitReached,
        });
    }
    sqlx::query(
        "UPDATE challenges SET status = 'SUPERSEDED' WHERE session_id = ? AND status = 'OPEN'",
    )
    .bind(c.session_id.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO challenges (id, session_id, method, destination, code_hash, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.id.as_str())
    .bind(c.session_id.as_str())
    .bind(c.method.as_str())
    .bind(&c.destination)
    .bind(c.code_hash.as_bytes().as_slice())
    .bind(now)
    .bind(to_unix_millis(c.expires_at))
    .execute(&mut *tx)
    .await?;
    audit::append(&mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(SendOutcome::Opened)
}

pub(super) async fn claim_attempt(
    pool: &SqlitePool,
    session: &SessionId,
    challenge: &ChallengeId,
    max_attempts: u32,
    now: OffsetDateTime,
) -> StoreResult<AttemptClaim> {
    let now = to_unix_millis(now);
    let claimed: Option<ChallengeRow> = sqlx::query_as(
        "UPDATE challenges SET attempts = attempts + 1 \
         WHERE id = ? AND session_id = ? AND status = 'OPEN' AND attempts < ? AND expires_at > ? \
         RETURNING id, session_id, code_hash, expires_at, attempts, status",
    )
    .bind(challenge.as_str())
    .bind(session.as_str())
    .bind(i64::from(max_attempts))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = claimed {
        return Ok(AttemptClaim::Claimed(Challenge::try_from(row)?));
    }
    let why: Option<(String, i64)> =
        sqlx::query_as("SELECT status, expires_at FROM challenges WHERE id = ? AND session_id = ?")
            .bind(challenge.as_str())
            .bind(session.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(match why {
        None => AttemptClaim::Unknown,
        Some((status, _)) if status != "OPEN" => AttemptClaim::Closed,
        Some((_, expires_at)) if expires_at <= now => AttemptClaim::Expired,
        Some(_) => AttemptClaim::Exhausted,
    })
}

pub(super) async fn complete(
    pool: &SqlitePool,
    challenge: &ChallengeId,
    r: &Rotation,
    event: &AuditEvent,
) -> StoreResult<Option<LoginTimes>> {
    let mut tx = write_tx(pool).await?;
    // Rows are taken in the order every transaction takes them: failure counters, session,
    // challenge, customer, audit head.
    let owner: Option<(String, String)> = sqlx::query_as(
        "SELECT c.id, c.username FROM sessions s JOIN customers c ON c.id = s.customer_id WHERE s.id = ?",
    )
    .bind(r.session_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((customer, username)) = owner else {
        return Ok(None);
    };
    let customer = CustomerId::from_stored(customer);
    let username =
        Username::parse(&username).map_err(|e| anyhow::anyhow!("stored username: {e}"))?;
    customers::reset_failures(&mut tx, &username).await?;
    let still_pending = sqlx::query(
        "UPDATE sessions SET state = state WHERE id = ? AND state = 'TWO_FACTOR_PENDING' AND revoked_at IS NULL",
    )
    .bind(r.session_id.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let verified = still_pending
        && sqlx::query(
            "UPDATE challenges SET status = 'VERIFIED' WHERE id = ? AND session_id = ? AND status = 'OPEN'",
        )
        .bind(challenge.as_str())
        .bind(r.session_id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
    if !verified || !sessions::retire_refresh(&mut tx, &r.session_id, r.at).await? {
        return Ok(None);
    }
    let login = sessions::record_login(&mut tx, &customer, r.at).await?;
    let activated = sqlx::query(
        "UPDATE sessions SET state = 'ACTIVE', two_factor_verified = 1, access_hash = ?, refresh_hash = ?, \
         expires_at = ?, last_seen_at = ?, login_at = ?, previous_login_at = ? \
         WHERE id = ? AND state = 'TWO_FACTOR_PENDING' AND revoked_at IS NULL",
    )
    .bind(r.access_hash.as_bytes().as_slice())
    .bind(r.refresh_hash.as_bytes().as_slice())
    .bind(to_unix_millis(r.expires_at))
    .bind(to_unix_millis(r.at))
    .bind(to_unix_millis(login.login_at))
    .bind(login.previous_login_at.map(to_unix_millis))
    .bind(r.session_id.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !activated {
        return Ok(None);
    }
    audit::append(&mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(Some(login))
}
