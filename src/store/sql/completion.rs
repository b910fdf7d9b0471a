//! What a right answer completes: a login (the session made ACTIVE, the customer's oldest
//! sessions past the limit ended), a step-up, a factor's confirmation or a reset's factor; and
//! what it spends (an app's time step, a recovery code, a passkey's counter or registration).

use time::OffsetDateTime;

use super::{Tx, customers, devices, factor_changes, outbox, places, session_ends, sessions};
use crate::clock::to_unix_millis;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{Challenge, CodeGuess, Completion, Spend};
use crate::domain::credentials::lockout::LockoutRecord;
use crate::domain::ports::StoreResult;
use crate::domain::sessions::{Rotation, SessionId};
use crate::store::backend::{Backend, query};

/// The right answer: closes the challenge, clears the failure count (`lockout`, as read under
/// the username's lock in this transaction), completes what the challenge was for and queues
/// its notices.
pub(super) async fn complete<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &CodeGuess,
    challenge: &Challenge,
    lockout: &LockoutRecord,
) -> StoreResult<Vec<AuditEvent>> {
    let mut ended = Vec::new();
    query::<B>("UPDATE challenges SET status = 'VERIFIED' WHERE id = $1")
        .bind(guess.challenge_id.as_str())
        .execute(tx)
        .await?;
    let at = match &guess.completion {
        Completion::Login(rotation) => {
            customers::reset_failures(tx, &guess.username, lockout).await?;
            ended = activate(tx, rotation, guess).await?;
            rotation.at
        }
        Completion::StepUp { at } => {
            customers::reset_failures(tx, &guess.username, lockout).await?;
            mark_recent::<B>(tx, &guess.session_id, *at).await?;
            *at
        }
        Completion::Confirm {
            factor,
            at,
            activation,
        } => {
            factor_changes::confirm(tx, factor, *at).await?;
            match activation {
                // The login completes with the factor it enrolled. Another factor the session
                // added meanwhile is now confirmed as an ACTIVE session confirms one.
                Some(rotation) => {
                    customers::reset_failures(tx, &guess.username, lockout).await?;
                    ended = activate(tx, rotation, guess).await?;
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
        factor_changes::mark_used(tx, factor, at).await?;
    }
    for notice in &guess.notices {
        outbox::enqueue(tx, notice).await?;
    }
    Ok(ended)
}

async fn mark_recent<B: Backend>(
    tx: &mut Tx<'_, B>,
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
    tx: &mut Tx<'_, B>,
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

/// Records the login of the guess's customer and makes the session ACTIVE (and recently
/// authenticated) with its new tokens, retiring the pending refresh token; the customer's
/// oldest sessions past the guess's limit end (their events returned).
async fn activate<B: Backend>(
    tx: &mut Tx<'_, B>,
    r: &Rotation,
    guess: &CodeGuess,
) -> StoreResult<Vec<AuditEvent>> {
    let (customer, username) = (&guess.customer_id, &guess.username);
    sessions::retire_refresh(tx, &r.session_id, r.at).await?;
    let login = sessions::record_login(tx, customer, r.at).await?;
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
    session_ends::end_past_limit(tx, &r.session_id, (customer, username), &guess.limit, r.at).await
}
