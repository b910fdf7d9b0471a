//! Two-factor challenges: sending limits, guess reservation and completion.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{SqlStore, Tx, audit, customers, devices, factors, outbox, places, sessions};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{
    Challenge, ChallengeId, CodeGuess, CodeHash, Completion, GuessOutcome, NewChallenge,
    SendBudget, SendOutcome, Spend, TwoFactorPolicy,
};
use crate::domain::credentials::factor::FactorId;
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::customers::{CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::ports::{StoreResult, TwoFactorStore};
use crate::domain::sessions::{Rotation, SessionId, SessionLimit, SessionState};
use crate::store::backend::{Backend, query, query_built};
use crate::store::rows::{CHALLENGE_COLUMNS, ChallengeRow};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

/// Locks the session row if the session is still in `state` (awaiting 2FA for a login, ACTIVE
/// for a step-up); otherwise says what became of it.
async fn hold_session<B: Backend>(
    tx: &mut Tx<B>,
    session: &SessionId,
    state: SessionState,
) -> StoreResult<Option<GuessOutcome>> {
    let held = query::<B>(
        "UPDATE sessions SET state = state WHERE id = $1 AND state = $2 AND revoked_at IS NULL",
    )
    .bind(session.as_str())
    .bind(state.as_str())
    .execute(tx)
    .await?;
    if held == 1 {
        return Ok(None);
    }
    let revoked: Option<(Option<i64>,)> =
        query::<B>("SELECT revoked_at FROM sessions WHERE id = $1")
            .bind(session.as_str())
            .fetch_optional(tx)
            .await?;
    Ok(Some(GuessOutcome::SessionMoved {
        revoked: !matches!(revoked, Some((None,))),
    }))
}

/// What the stored state alone says of a guess, read without the writer: the refusals a
/// guess can meet before its code is compared (a session no longer pending, a challenge
/// unknown, closed, expired or exhausted, a username locked). Each of them stays true once
/// read (challenges and sessions only move on; a lock lifted meanwhile puts the guess before
/// the unlock), so such a guess is answered here, and a flood of them never queues behind the
/// writer nor commits anything.
///
/// The reads are separate statements, so the lock is read first, as the write transaction
/// does: the wrong guess that locks a username also uses up the challenge in the same commit,
/// so a lock seen here means the challenge read after it is seen at least as far on, and the
/// guess gets the answer the write transaction would give (exhausted before locked).
async fn refused_on_read<B: Backend>(
    conn: &mut B::Connection,
    guess: &CodeGuess,
    now: OffsetDateTime,
) -> StoreResult<Option<GuessOutcome>> {
    let lockout = customers::lockout_row::<B>(conn, &guess.username).await?;
    let session: Option<(String, Option<i64>)> =
        query::<B>("SELECT state, revoked_at FROM sessions WHERE id = $1")
            .bind(guess.session_id.as_str())
            .fetch_optional(conn)
            .await?;
    match session {
        None | Some((_, Some(_))) => return Ok(Some(GuessOutcome::SessionMoved { revoked: true })),
        Some((state, None)) if state != guess.completion.purpose().session_state().as_str() => {
            return Ok(Some(GuessOutcome::SessionMoved { revoked: false }));
        }
        Some(_) => {}
    }
    if let Some(refused) = unusable::<B>(conn, guess, now).await? {
        return Ok(Some(refused));
    }
    Ok(lockout.lock_at(now).map(|lock| GuessOutcome::Locked {
        until: lock.until(),
    }))
}

/// Why the challenge cannot take a guess, if it cannot.
async fn unusable<B: Backend>(
    conn: &mut B::Connection,
    guess: &CodeGuess,
    now: OffsetDateTime,
) -> StoreResult<Option<GuessOutcome>> {
    let found: Option<(String, i64, i64)> = query::<B>(
        "SELECT status, attempts, expires_at FROM challenges \
         WHERE id = $1 AND session_id = $2 AND purpose = $3",
    )
    .bind(guess.challenge_id.as_str())
    .bind(guess.session_id.as_str())
    .bind(guess.completion.purpose().as_str())
    .fetch_optional(conn)
    .await?;
    Ok(match found {
        None => Some(GuessOutcome::Unknown),
        Some((status, _, _)) if status != "OPEN" => Some(GuessOutcome::Closed),
        Some((_, _, expires_at)) if expires_at <= to_unix_millis(now) => {
            Some(GuessOutcome::Expired)
        }
        Some((_, attempts, _)) if attempts >= i64::from(guess.max_attempts) => {
            Some(GuessOutcome::Exhausted)
        }
        Some(_) => None,
    })
}

/// Uses one guess of the challenge, by a conditional update.
async fn use_attempt<B: Backend>(
    tx: &mut Tx<B>,
    guess: &CodeGuess,
    now: OffsetDateTime,
) -> StoreResult<Option<Challenge>> {
    let row: Option<ChallengeRow> = query_built::<B>(format!(
        "UPDATE challenges SET attempts = attempts + 1 \
         WHERE id = $1 AND session_id = $2 AND purpose = $3 AND status = 'OPEN' AND attempts < $4 \
         AND expires_at > $5 RETURNING {CHALLENGE_COLUMNS}"
    ))
    .bind(guess.challenge_id.as_str())
    .bind(guess.session_id.as_str())
    .bind(guess.completion.purpose().as_str())
    .bind(i64::from(guess.max_attempts))
    .bind(to_unix_millis(now))
    .fetch_optional(tx)
    .await?;
    row.map(Challenge::try_from).transpose()
}

/// The right answer: closes the challenge, clears the failure count, completes what the
/// challenge was for and queues its notices.
async fn complete<B: Backend>(
    tx: &mut Tx<B>,
    guess: &CodeGuess,
    challenge: &Challenge,
) -> StoreResult<Vec<AuditEvent>> {
    let mut ended = Vec::new();
    query::<B>("UPDATE challenges SET status = 'VERIFIED' WHERE id = $1")
        .bind(guess.challenge_id.as_str())
        .execute(tx)
        .await?;
    let at = match &guess.completion {
        Completion::Login(rotation) => {
            customers::reset_failures(tx, &guess.username).await?;
            ended = activate(tx, rotation, &guess.username, &guess.limit).await?;
            rotation.at
        }
        Completion::StepUp { at } => {
            customers::reset_failures(tx, &guess.username).await?;
            mark_recent::<B>(tx, &guess.session_id, *at).await?;
            *at
        }
        Completion::Confirm {
            factor,
            at,
            activation,
        } => {
            factors::confirm(tx, factor).await?;
            match activation {
                // The login completes with the factor it enrolled. Another factor the session
                // added meanwhile is now confirmed as an ACTIVE session confirms one.
                Some(rotation) => {
                    customers::reset_failures(tx, &guess.username).await?;
                    ended = activate(tx, rotation, &guess.username, &guess.limit).await?;
                    query::<B>(
                        "UPDATE challenges SET purpose = 'CONFIRM' \
                         WHERE session_id = $1 AND status = 'OPEN' AND purpose = 'ENROL'",
                    )
                    .bind(guess.session_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                // Confirming proves the new factor, not the password: the failure count stays.
                None => mark_recent::<B>(tx, &guess.session_id, *at).await?,
            }
            *at
        }
        // The reset's session stays one (it may only set the password), its factor done; the
        // failure count is cleared when the password is set.
        Completion::Reset(rotation) => {
            sessions::retire_refresh(tx, &rotation.session_id, rotation.at).await?;
            query::<B>(
                "UPDATE sessions SET two_factor_verified = TRUE, access_hash = $1, \
                 refresh_hash = $2, expires_at = $3, last_seen_at = $4 WHERE id = $5",
            )
            .bind(rotation.access_hash.as_bytes().as_slice())
            .bind(rotation.refresh_hash.as_bytes().as_slice())
            .bind(to_unix_millis(rotation.expires_at))
            .bind(to_unix_millis(rotation.at))
            .bind(rotation.session_id.as_str())
            .execute(&mut *tx)
            .await?;
            rotation.at
        }
    };
    let spent = guess.answer.spends();
    if let Some(factor) = spent
        .as_ref()
        .and_then(Spend::factor)
        .or(challenge.factor_id.as_ref())
    {
        factors::mark_used(tx, factor, at).await?;
    }
    for notice in &guess.notices {
        outbox::enqueue(tx, notice).await?;
    }
    Ok(ended)
}

async fn mark_recent<B: Backend>(
    tx: &mut Tx<B>,
    session: &SessionId,
    at: OffsetDateTime,
) -> StoreResult<()> {
    query::<B>("UPDATE sessions SET recent_auth_at = $1 WHERE id = $2")
        .bind(to_unix_millis(at))
        .bind(session.as_str())
        .execute(tx)
        .await?;
    Ok(())
}

/// Spends what a right answer uses up, by a conditional update; `false` when it was spent
/// already (the same code, on any instance).
pub(super) async fn spend<B: Backend>(
    tx: &mut Tx<B>,
    spend: &Spend,
    at: OffsetDateTime,
) -> StoreResult<bool> {
    let spent = match spend {
        Spend::TotpStep { customer, step } => {
            query::<B>(
                "INSERT INTO totp_steps (customer_id, last_step) VALUES ($1, $2) \
                 ON CONFLICT (customer_id) DO UPDATE SET last_step = excluded.last_step \
                 WHERE totp_steps.last_step < excluded.last_step",
            )
            .bind(customer.as_str())
            .bind(*step)
            .execute(tx)
            .await?
        }
        Spend::RecoveryCode { id } => {
            query::<B>("UPDATE recovery_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(to_unix_millis(at))
                .bind(id.as_str())
                .execute(tx)
                .await?
        }
        // The rule of `counter_advances`, held by the row: two assertions with one counter
        // (a cloned authenticator, on any instance) cannot both pass.
        Spend::PasskeyCounter {
            factor,
            counter,
            credential,
        } => {
            query::<B>(
                "UPDATE factors SET sign_count = $1, passkey = $2 WHERE id = $3 \
                 AND pending_until IS NULL AND credential_id IS NOT NULL \
                 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))",
            )
            .bind(i64::from(*counter))
            .bind(credential.as_str())
            .bind(factor.as_str())
            .execute(tx)
            .await?
        }
        // A credential already registered (to anyone) leaves the factor unconfirmed.
        Spend::PasskeyRegistration { factor, passkey } => {
            query::<B>(
                "UPDATE factors SET credential_id = $1, passkey = $2, sign_count = 0 \
                 WHERE id = $3 AND credential_id IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM factors WHERE credential_id = $1)",
            )
            .bind(passkey.credential_id.as_str())
            .bind(passkey.credential.as_str())
            .bind(factor.as_str())
            .execute(tx)
            .await?
        }
    };
    Ok(spent == 1)
}

/// Records the login and makes the session ACTIVE (and recently authenticated) with its new
/// tokens, retiring the pending refresh token; the customer's oldest sessions past `limit` end
/// (their events returned).
async fn activate<B: Backend>(
    tx: &mut Tx<B>,
    r: &Rotation,
    username: &Username,
    limit: &SessionLimit,
) -> StoreResult<Vec<AuditEvent>> {
    sessions::retire_refresh(tx, &r.session_id, r.at).await?;
    let (customer,): (String,) = query::<B>("SELECT customer_id FROM sessions WHERE id = $1")
        .bind(r.session_id.as_str())
        .fetch_one(tx)
        .await?;
    let customer = CustomerId::from_stored(customer);
    let login = sessions::record_login(tx, &customer, r.at).await?;
    query::<B>(
        "UPDATE sessions SET state = 'ACTIVE', two_factor_verified = TRUE, access_hash = $1, refresh_hash = $2, \
         expires_at = $3, last_seen_at = $4, login_at = $5, previous_login_at = $6, recent_auth_at = $4 \
         WHERE id = $7",
    )
    .bind(r.access_hash.as_bytes().as_slice())
    .bind(r.refresh_hash.as_bytes().as_slice())
    .bind(to_unix_millis(r.expires_at))
    .bind(to_unix_millis(r.at))
    .bind(to_unix_millis(login.login_at))
    .bind(login.previous_login_at.map(to_unix_millis))
    .bind(r.session_id.as_str())
    .execute(tx)
    .await?;
    devices::mark_verified(tx, &r.session_id, r.at).await?;
    places::record_completed_login(tx, &r.session_id, r.at).await?;
    sessions::end_past_limit(tx, &r.session_id, (&customer, username), limit, r.at).await
}

/// When the session's customer was sent `budget.count` codes within the window before this one:
/// the moment the oldest of them leaves it.
async fn session_budget_spent<B: Backend>(
    tx: &mut Tx<B>,
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
    tx: &mut Tx<B>,
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
    tx: &mut Tx<B>,
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

/// Whether the answer is right, spending what it uses up.
async fn right<B: Backend>(
    tx: &mut Tx<B>,
    guess: &CodeGuess,
    challenge: &Challenge,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    if !guess.answer.is_right(challenge) {
        return Ok(false);
    }
    match guess.answer.spends() {
        Some(spent) => spend(tx, &spent, now).await,
        None => Ok(true),
    }
}

/// A wrong answer: counted towards the username's lock, except a confirmation's (whose code
/// went where the caller chose), whose last allowed wrong answer drops the factor instead.
async fn wrong<B: Backend>(
    tx: &mut Tx<B>,
    guess: &CodeGuess,
    challenge: &Challenge,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> StoreResult<GuessOutcome> {
    let locked = match &guess.completion {
        Completion::Confirm { factor, .. } => {
            if challenge.attempts >= guess.max_attempts {
                factors::drop_pending(tx, factor).await?;
            }
            None
        }
        _ => {
            let (_, locked) = customers::count_failure(tx, &guess.username, policy, now).await?;
            if let Some((until, _)) = locked {
                for notice in &guess.lock_notices {
                    outbox::enqueue(tx, &notice.locked_until(until)).await?;
                }
            }
            locked
        }
    };
    Ok(GuessOutcome::Wrong {
        attempts: challenge.attempts,
        locked,
    })
}

/// Opens challenge `c` in `tx` under the sending limits (when `message` sends a code), replacing
/// the session's open challenge of the same purpose, and queues `message`; `Some` says why not
/// (then `tx` holds nothing to keep). The caller appends its audit event and commits.
pub(super) async fn open_in<B: Backend>(
    tx: &mut Tx<B>,
    c: &NewChallenge,
    policy: &TwoFactorPolicy,
    message: Option<&Message>,
) -> StoreResult<Option<SendOutcome>> {
    let now = to_unix_millis(c.created_at);
    // The lock is checked again here, holding the username's counters (rows in the usual
    // order: counters first), so a username locked after the caller looked gets no code.
    let lockout = customers::lockout_in(tx, &c.username).await?;
    if let Some(lock) = lockout.lock_at(c.created_at) {
        return Ok(Some(SendOutcome::Locked {
            until: lock.until(),
        }));
    }
    let state = c.purpose.session_state();
    if message.is_none() {
        // Nothing is sent, so no sending limit applies: the session need only still be in
        // the state the challenge is for.
        if let Some(moved) = hold_session(tx, &c.session_id, state).await? {
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

#[async_trait]
impl<B: Backend> TwoFactorStore for SqlStore<B> {
    async fn challenge(
        &self,
        id: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<Challenge>> {
        let row: Option<ChallengeRow> = query_built::<B>(format!(
            "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = $1 AND session_id = $2"
        ))
        .bind(id.as_str())
        .bind(session.as_str())
        .fetch_optional(&mut *self.read().await?)
        .await?;
        row.map(Challenge::try_from).transpose()
    }

    async fn open_challenge(
        &self,
        c: &NewChallenge,
        policy: &TwoFactorPolicy,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        let mut tx = self.write().await?;
        if let Some(refused) = open_in(&mut tx, c, policy, message).await? {
            return Ok(refused);
        }
        audit::append(&mut tx, &self.seal, &[event]).await?;
        tx.commit().await?;
        Ok(SendOutcome::Opened)
    }

    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        let now = context.at;
        if let Some(refused) = refused_on_read::<B>(&mut *self.read().await?, guess, now).await? {
            return Ok(refused);
        }
        let mut tx = self.write().await?;
        // Rows are taken in the order every transaction takes them: failure counters, session,
        // challenge, customer, audit head.
        let lockout = customers::lockout_in(&mut tx, &guess.username).await?;
        let state = guess.completion.purpose().session_state();
        let mut ended = Vec::new();
        let outcome = if let Some(moved) = hold_session(&mut tx, &guess.session_id, state).await? {
            moved
        } else if let Some(refused) = unusable::<B>(&mut tx, guess, now).await? {
            refused
        } else if let Some(lock) = lockout.lock_at(now) {
            GuessOutcome::Locked {
                until: lock.until(),
            }
        } else {
            match use_attempt(&mut tx, guess, now).await? {
                None => GuessOutcome::Exhausted,
                Some(challenge) if right(&mut tx, guess, &challenge, now).await? => {
                    ended = complete(&mut tx, guess, &challenge).await?;
                    GuessOutcome::Verified
                }
                Some(challenge) => wrong(&mut tx, guess, &challenge, policy, now).await?,
            }
        };
        if !outcome.was_checked() {
            // Refused after all (the state moved since the read): nothing to keep.
            tx.rollback().await?;
            return Ok(outcome);
        }
        let mut events = outcome.audit_events(context, guess.completion.purpose());
        if let GuessOutcome::Wrong { .. } = outcome {
            events.extend(guess.wrong_events.iter().cloned());
        }
        events.extend(ended);
        audit::append(&mut tx, &self.seal, &events.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
