//! Opening a challenge under the sending limits: the resend interval, the codes per session
//! and per customer in a window.

use time::{Duration, OffsetDateTime};

use super::{Tx, customers, outbox, two_factor};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::credentials::challenge::{
    CodeHash, GuessOutcome, NewChallenge, SendBudget, SendOutcome, TwoFactorPolicy,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::customers::CustomerId;
use crate::domain::delivery::message::Message;
use crate::domain::ports::StoreResult;
use crate::domain::sessions::SessionState;
use crate::store::backend::{Backend, query};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// When the session's customer was sent `budget.count` codes within the window before this one:
/// the moment the oldest of them leaves it.
async fn session_budget_spent<B: Backend>(
    tx: &mut Tx<'_, B>,
    c: &NewChallenge,
    budget: SendBudget,
) -> StoreResult<Option<OffsetDateTime>> {
    let (customer,): (String,) = query::<B>("SELECT customer_id FROM sessions WHERE id = $1")
        .bind(c.session_id.as_str())
        .fetch_one(tx)
        .await?;
    customer_budget_spent(tx, &CustomerId::from_stored(customer), c.created_at, budget).await
}

/// When `customer` was sent `budget.count` codes (a challenge's or a password reset's) within
/// the window before `at`: the moment the oldest of them leaves it. The customer's row is
/// locked first, so concurrent sends to one customer (from any session, reset or instance) are
/// counted one after the other. Messages that failed for good do not count: the customer never
/// got them.
pub(super) async fn customer_budget_spent<B: Backend>(
    tx: &mut Tx<'_, B>,
    customer: &CustomerId,
    at: OffsetDateTime,
    budget: SendBudget,
) -> StoreResult<Option<OffsetDateTime>> {
    let _: Option<(String,)> = query::<B>(B::CUSTOMER_FOR_SEND)
        .bind(customer.as_str())
        .fetch_optional(tx)
        .await?;
    let since = to_unix_millis(at - budget.window);
    let (sent, oldest): (i64, Option<i64>) = query::<B>(
        "SELECT COUNT(*), MIN(sent.created_at) FROM ( \
         SELECT c.created_at FROM challenges c JOIN sessions s ON s.id = c.session_id \
         LEFT JOIN messages o ON o.challenge_id = c.id \
         WHERE s.customer_id = $1 AND c.created_at > $2 AND c.code_hash IS NOT NULL \
         AND (o.status IS NULL OR o.status <> 'FAILED') \
         UNION ALL \
         SELECT r.created_at FROM password_resets r LEFT JOIN messages o ON o.reset_id = r.id \
         WHERE r.customer_id = $1 AND r.created_at > $2 AND r.code_hash IS NOT NULL \
         AND (o.status IS NULL OR o.status <> 'FAILED')) sent",
    )
    .bind(customer.as_str())
    .bind(since)
    .fetch_one(tx)
    .await?;
    Ok((sent >= i64::from(budget.count))
        .then(|| oldest.map(|t| from_unix_millis(t) + budget.window))
        .flatten())
}

/// Counts a send against the session's limits, in one conditional update, if the session is
/// still in `state` and the limits allow; otherwise says why not.
async fn count_send<B: Backend>(
    tx: &mut Tx<'_, B>,
    c: &NewChallenge,
    policy: &TwoFactorPolicy,
    state: SessionState,
) -> StoreResult<Option<SendOutcome>> {
    let now = to_unix_millis(c.created_at);
    let counted = query::<B>(
        "UPDATE sessions SET codes_sent = codes_sent + 1, last_code_sent_at = $1 \
         WHERE id = $2 AND state = $3 AND revoked_at IS NULL AND codes_sent < $4 \
         AND (last_code_sent_at IS NULL OR last_code_sent_at <= $5)",
    )
    .bind(now)
    .bind(c.session_id.as_str())
    .bind(state.as_str())
    .bind(i64::from(policy.max_sends))
    .bind(now.saturating_sub(millis(policy.resend_interval)))
    .execute(tx)
    .await?
        == 1;
    if counted {
        return Ok(None);
    }
    let standing: Option<(String, Option<i64>, i64, Option<i64>)> = query::<B>(
        "SELECT state, revoked_at, codes_sent, last_code_sent_at FROM sessions WHERE id = $1",
    )
    .bind(c.session_id.as_str())
    .fetch_optional(tx)
    .await?;
    Ok(Some(match standing {
        None | Some((_, Some(_), _, _)) => SendOutcome::SessionMoved { revoked: true },
        Some((stored, None, _, _)) if stored != state.as_str() => {
            SendOutcome::SessionMoved { revoked: false }
        }
        Some((_, None, sent, Some(last))) if sent < i64::from(policy.max_sends) => {
            SendOutcome::TooSoon {
                retry_at: from_unix_millis(last) + policy.resend_interval,
            }
        }
        Some(_) => SendOutcome::LimitReached,
    }))
}

/// Opens challenge `c` in `tx` under the sending limits (when `message` sends a code), replacing
/// the session's open challenge of the same purpose, and queues `message`; `Some` says why not
/// (then `tx` holds nothing to keep). The caller appends its audit event and commits.
pub(super) async fn open_in<B: Backend>(
    tx: &mut Tx<'_, B>,
    c: &NewChallenge,
    policy: &TwoFactorPolicy,
    message: Option<&Message>,
) -> StoreResult<Option<SendOutcome>> {
    let now = to_unix_millis(c.created_at);
    // The lock is checked again here, holding the username's counters (rows in the usual
    // order: counters first), so a username locked after the caller looked gets no code.
    let lockout = customers::lockout_in(tx, &c.username).await?;
    if let Some(lock) = lockout.lock_in(c.purpose.session_state(), c.created_at) {
        return Ok(Some(SendOutcome::Locked {
            until: lock.until(),
        }));
    }
    let state = c.purpose.session_state();
    if message.is_none() {
        // Nothing is sent, so no sending limit applies: the session need only still be in
        // the state the challenge is for.
        if let Some(moved) = two_factor::hold_session(tx, &c.session_id, state).await? {
            return Ok(Some(match moved {
                GuessOutcome::SessionMoved { revoked } => SendOutcome::SessionMoved { revoked },
                _ => SendOutcome::SessionMoved { revoked: true },
            }));
        }
    } else if let Some(refused) = count_send(tx, c, policy, state).await? {
        return Ok(Some(refused));
    }
    if message.is_some()
        && let Some(budget) = policy.customer_sends
        && let Some(retry_at) = session_budget_spent(tx, c, budget).await?
    {
        return Ok(Some(SendOutcome::CustomerBudgetSpent { retry_at }));
    }
    // A confirmation does not replace a step-up's challenge, nor one a confirmation of another
    // factor: each waits for its own code.
    query::<B>(
        "UPDATE challenges SET status = 'SUPERSEDED' WHERE session_id = $1 AND status = 'OPEN' \
         AND purpose = $2 AND purpose NOT IN ('CONFIRM', 'ENROL')",
    )
    .bind(c.session_id.as_str())
    .bind(c.purpose.as_str())
    .execute(&mut *tx)
    .await?;
    query::<B>(
        "INSERT INTO challenges (id, session_id, purpose, method, factor_id, destination, \
         code_hash, ceremony, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id.as_str())
    .bind(c.session_id.as_str())
    .bind(c.purpose.as_str())
    .bind(c.method.as_str())
    .bind(c.factor_id.as_ref().map(FactorId::as_str))
    .bind(c.destination.as_deref())
    .bind(c.code_hash.as_ref().map(CodeHash::to_stored))
    .bind(c.ceremony.as_ref().map(|state| state.0.as_str()))
    .bind(now)
    .bind(to_unix_millis(c.expires_at))
    .execute(&mut *tx)
    .await?;
    if let Some(message) = message {
        outbox::enqueue(tx, message).await?;
    }
    Ok(None)
}
