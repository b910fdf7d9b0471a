//! Two-factor challenges: reading them, checking a guess (its reservation under the username's
//! lock, right or wrong); opening one under the sending limits is `sends.rs`, what a right answer
//! completes is `completion.rs`.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{SqlStore, Tx, audit, completion, customers, factor_changes, outbox, sends};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{
    Admission, Challenge, ChallengeId, CodeGuess, Completion, GuessOutcome, NewChallenge,
    SendOutcome, TwoFactorPolicy,
};
use crate::domain::credentials::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::delivery::message::Message;
use crate::domain::ports::{StoreResult, TwoFactorStore};
use crate::domain::sessions::{SessionId, SessionState};
use crate::store::backend::{Backend, Runs, query, query_built};
use crate::store::rows::{AdmissionRow, CHALLENGE_COLUMNS, ChallengeRow, lockout_columns};

/// Locks the session row if the session is still in `state` (awaiting 2FA for a login, ACTIVE
/// for a step-up); otherwise says what became of it.
pub(super) async fn hold_session<B: Backend>(
    tx: &mut Tx<'_, B>,
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

/// A guess's username's counters, its session and its challenge (`$1` username, `$2` session,
/// `$3` challenge, `$4` purpose): always one row, whichever exist.
const ADMISSION: &str = concat!(
    "SELECT ",
    lockout_columns!("l."),
    ", s.state AS session_state, s.revoked_at AS session_revoked_at, \
     c.status AS challenge_status, c.attempts AS challenge_attempts, \
     c.expires_at AS challenge_expires_at \
     FROM (SELECT CAST($1 AS TEXT) AS username) asked \
     LEFT JOIN lockouts l ON l.username = asked.username \
     LEFT JOIN sessions s ON s.id = $2 \
     LEFT JOIN challenges c ON c.id = $3 AND c.session_id = $2 AND c.purpose = $4"
);

/// What the stored state alone says of a guess, read without the writer: the refusals a
/// guess can meet before its code is compared (a session no longer in its state, a challenge
/// unknown, closed, expired or exhausted, a username locked). Each of them stays true once
/// read (challenges and sessions only move on; a lock lifted meanwhile puts the guess before
/// the unlock), so such a guess is answered here, and a flood of them never queues behind the
/// writer nor commits anything.
///
/// The three are read in one statement, so in one snapshot: the wrong guess that locks a
/// username also uses up the challenge in the same commit, so a lock seen here comes with the
/// challenge as that commit left it, and the guess gets the answer the write transaction would
/// give (exhausted before locked).
async fn admission<B: Backend>(
    conn: &mut (impl Runs<B> + ?Sized),
    guess: &CodeGuess,
    now: OffsetDateTime,
) -> StoreResult<Admission> {
    let refused = |outcome| Ok(Admission::Refused(outcome));
    let read: AdmissionRow = query::<B>(ADMISSION)
        .bind(guess.username.as_str())
        .bind(guess.session_id.as_str())
        .bind(guess.challenge_id.as_str())
        .bind(guess.completion.purpose().as_str())
        .fetch_one(conn)
        .await?;
    let state = guess.completion.purpose().session_state();
    match read.session {
        None | Some((_, Some(_))) => return refused(GuessOutcome::SessionMoved { revoked: true }),
        Some((found, None)) if found != state.as_str() => {
            return refused(GuessOutcome::SessionMoved { revoked: false });
        }
        Some(_) => {}
    }
    if let Some(outcome) = unusable_as_found(read.challenge, guess, now) {
        return refused(outcome);
    }
    let lockout: LockoutRecord = read.lockout.map(Into::into).unwrap_or_default();
    match lockout.lock_in(state, now) {
        Some(lock) => refused(GuessOutcome::Locked {
            until: lock.until(),
        }),
        None => Ok(Admission::Admitted(lockout)),
    }
}

/// Why the challenge cannot take a guess, if it cannot.
async fn unusable<B: Backend>(
    conn: &mut (impl Runs<B> + ?Sized),
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
    Ok(unusable_as_found(found, guess, now))
}

/// Why a challenge `found` (status, attempts, expiry) cannot take a guess, if it cannot.
fn unusable_as_found(
    found: Option<(String, i64, i64)>,
    guess: &CodeGuess,
    now: OffsetDateTime,
) -> Option<GuessOutcome> {
    match found {
        None => Some(GuessOutcome::Unknown),
        Some((status, _, _)) if status != "OPEN" => Some(GuessOutcome::Closed),
        Some((_, _, expires_at)) if expires_at <= to_unix_millis(now) => {
            Some(GuessOutcome::Expired)
        }
        Some((_, attempts, _)) if attempts >= i64::from(guess.max_attempts) => {
            Some(GuessOutcome::Exhausted)
        }
        Some(_) => None,
    }
}

/// Uses one guess of the challenge, by a conditional update.
async fn use_attempt<B: Backend>(
    tx: &mut Tx<'_, B>,
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

/// Whether the answer is right, spending what it uses up.
async fn right<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &CodeGuess,
    challenge: &Challenge,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    if !guess.answer.is_right(challenge) {
        return Ok(false);
    }
    match guess.answer.spends() {
        Some(spent) => completion::spend(tx, &spent, now).await,
        None => Ok(true),
    }
}

/// A wrong answer: counted towards the username's lock, except a confirmation's (whose code
/// went where the caller chose), whose last allowed wrong answer drops the factor instead.
async fn wrong<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &CodeGuess,
    challenge: &Challenge,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> StoreResult<GuessOutcome> {
    let locked = match &guess.completion {
        Completion::Confirm { factor, .. } => {
            if challenge.attempts >= guess.max_attempts {
                factor_changes::drop_pending(tx, factor).await?;
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

#[async_trait]
impl<B: Backend> TwoFactorStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.challenge",
        skip_all
    )]
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
        .fetch_optional(&mut self.read().await?)
        .await?;
        row.map(Challenge::try_from).transpose()
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.open_challenge",
        skip_all
    )]
    async fn open_challenge(
        &self,
        c: &NewChallenge,
        policy: &TwoFactorPolicy,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        let mut tx = self.write().await?;
        if let Some(refused) = sends::open_in(&mut tx, c, policy, message).await? {
            return Ok(refused);
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(SendOutcome::Opened)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.admit_guess",
        skip_all
    )]
    async fn admit_guess(&self, guess: &CodeGuess, now: OffsetDateTime) -> StoreResult<Admission> {
        admission::<B>(&mut self.read().await?, guess, now).await
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.check_code",
        skip_all
    )]
    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        let now = context.at;
        let mut tx = self.write().await?;
        // Rows are taken in the order every transaction takes them: failure counters, session,
        // challenge, customer, audit head.
        let lockout = customers::lockout_in(&mut tx, &guess.username).await?;
        let state = guess.completion.purpose().session_state();
        let mut ended = Vec::new();
        let outcome = if let Some(moved) = hold_session(&mut tx, &guess.session_id, state).await? {
            moved
        } else if let Some(lock) = lockout.lock_in(state, now) {
            // A challenge that cannot take a guess says so before the lock does, as on the read.
            unusable::<B>(&mut tx, guess, now)
                .await?
                .unwrap_or(GuessOutcome::Locked {
                    until: lock.until(),
                })
        } else {
            match use_attempt(&mut tx, guess, now).await? {
                // Why it took no guess, read only then: most guesses take one.
                None => unusable::<B>(&mut tx, guess, now)
                    .await?
                    .unwrap_or(GuessOutcome::Exhausted),
                Some(challenge) if right(&mut tx, guess, &challenge, now).await? => {
                    ended = completion::complete(&mut tx, guess, &challenge, &lockout).await?;
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
        audit::append(&mut tx, &self.trail, &events.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}
