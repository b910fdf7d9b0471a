//! Password resets: requested under the customer's sending budget, guessed at under the
//! username's lock, completed with every session ended.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{SqlStore, Tx, audit, customers, outbox, sends, session_ends, sessions};
use crate::clock::to_unix_millis;
use crate::domain::audit::{AuditEvent, AuditKind};
use crate::domain::credentials::challenge::{CodeHash, GuessOutcome, SendBudget};
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::credentials::reset::{
    NewReset, PasswordReset, ResetDone, ResetGuess, ResetId, ResetOpened, StoredReset,
};
use crate::domain::customers::{CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::ports::{ResetStore, StoreError, StoreResult};
use crate::store::backend::{Backend, query};

/// Why the reset cannot take a guess, if it cannot.
async fn unusable<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &ResetGuess,
    now: OffsetDateTime,
) -> StoreResult<GuessOutcome> {
    let found: Option<(String, i64, i64)> =
        query::<B>("SELECT status, attempts, expires_at FROM password_resets WHERE id = $1")
            .bind(guess.reset.as_str())
            .fetch_optional(tx)
            .await?;
    Ok(match found {
        None => GuessOutcome::Unknown,
        Some((status, _, _)) if status != "OPEN" => GuessOutcome::Closed,
        Some((_, _, expires_at)) if expires_at <= to_unix_millis(now) => GuessOutcome::Expired,
        Some(_) => GuessOutcome::Exhausted,
    })
}

/// Uses one guess of the reset by a conditional update; its stored code hash and the guesses
/// used, or `None` when it cannot take one.
async fn use_attempt<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &ResetGuess,
    now: OffsetDateTime,
) -> StoreResult<Option<(Option<CodeHash>, u32)>> {
    let row: Option<(Option<Vec<u8>>, i64)> = query::<B>(
        "UPDATE password_resets SET attempts = attempts + 1 \
         WHERE id = $1 AND status = 'OPEN' AND attempts < $2 AND expires_at > $3 \
         RETURNING code_hash, attempts",
    )
    .bind(guess.reset.as_str())
    .bind(i64::from(guess.max_attempts))
    .bind(to_unix_millis(now))
    .fetch_optional(tx)
    .await?;
    row.map(|(hash, attempts)| {
        let hash = hash
            .map(|bytes| {
                CodeHash::from_stored(&bytes)
                    .ok_or_else(|| StoreError::Other(anyhow::anyhow!("corrupt reset code hash")))
            })
            .transpose()?;
        Ok((hash, u32::try_from(attempts).unwrap_or(u32::MAX)))
    })
    .transpose()
}

/// Wrong codes guessed at the username's resets over the last day, whichever reset they named:
/// a lock from failures does not stop a reset, so this is what bounds guessing at its codes.
async fn wrong_guesses<B: Backend>(
    tx: &mut Tx<'_, B>,
    username: &Username,
    now: OffsetDateTime,
) -> StoreResult<i64> {
    let (wrong,): (Option<i64>,) = query::<B>(
        "SELECT CAST(SUM(attempts) AS BIGINT) FROM password_resets \
         WHERE username = $1 AND created_at > $2 AND status <> 'VERIFIED'",
    )
    .bind(username.as_str())
    .bind(to_unix_millis(now - time::Duration::DAY))
    .fetch_one(tx)
    .await?;
    Ok(wrong.unwrap_or(0))
}

/// A wrong code: counted toward the username's lock unless a lock from failures holds already
/// (a reset may be answered while one does: completing it clears the lock).
async fn wrong<B: Backend>(
    tx: &mut Tx<'_, B>,
    guess: &ResetGuess,
    attempts: u32,
    locked_already: bool,
    policy: &LockoutPolicy,
    now: OffsetDateTime,
) -> StoreResult<GuessOutcome> {
    let locked = if locked_already {
        None
    } else {
        let (_, locked) = customers::count_failure(tx, &guess.username, policy, now).await?;
        if let Some((until, _)) = locked {
            for notice in &guess.lock_notices {
                outbox::enqueue(tx, &notice.locked_until(until)).await?;
            }
        }
        locked
    };
    Ok(GuessOutcome::Wrong { attempts, locked })
}

#[async_trait]
impl<B: Backend> ResetStore for SqlStore<B> {
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.open_reset",
        skip_all
    )]
    async fn open_reset(
        &self,
        reset: &NewReset,
        budget: Option<SendBudget>,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<ResetOpened> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the username's counters first (as a guess takes them), so
        // a request racing a guess cannot deadlock with it, and two requests for one username
        // supersede one another in turn.
        customers::lockout_in(&mut tx, &reset.username).await?;
        let spent = match (&reset.customer, message, budget) {
            (Some(customer), Some(_), Some(budget)) => {
                sends::customer_budget_spent(&mut tx, customer, reset.created_at, budget)
                    .await?
                    .is_some()
            }
            _ => false,
        };
        let sends = message.filter(|_| !spent);
        query::<B>(
            "UPDATE password_resets SET status = 'SUPERSEDED' WHERE username = $1 AND status = 'OPEN'",
        )
        .bind(reset.username.as_str())
        .execute(&mut tx)
        .await?;
        query::<B>(
            "INSERT INTO password_resets (id, username, customer_id, code_hash, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(reset.id.as_str())
        .bind(reset.username.as_str())
        .bind(reset.customer.as_ref().map(CustomerId::as_str))
        .bind(sends.and(reset.code_hash.as_ref()).map(CodeHash::to_stored))
        .bind(to_unix_millis(reset.created_at))
        .bind(to_unix_millis(reset.expires_at))
        .execute(&mut tx)
        .await?;
        if let Some(message) = sends {
            outbox::enqueue(&mut tx, message).await?;
        }
        let event = event.clone().detail("codeSent", sends.is_some());
        let event = if spent {
            event.reason("customer_budget_spent")
        } else {
            event
        };
        audit::append(&mut tx, &self.trail, &[&event]).await?;
        tx.commit().await?;
        Ok(match (sends, spent) {
            (Some(_), _) => ResetOpened::Sent,
            (None, true) => ResetOpened::BudgetSpent,
            (None, false) => ResetOpened::Unsent,
        })
    }

    async fn reset(&self, id: &ResetId) -> StoreResult<Option<StoredReset>> {
        let row: Option<(String, Option<String>)> =
            query::<B>("SELECT username, customer_id FROM password_resets WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut self.read().await?)
                .await?;
        row.map(|(username, customer)| {
            Ok(StoredReset {
                id: id.clone(),
                username: Username::parse(&username).map_err(|e| {
                    StoreError::Other(anyhow::anyhow!("corrupt reset username: {}", e.0))
                })?,
                customer: customer.map(CustomerId::from_stored),
            })
        })
        .transpose()
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.check_reset",
        skip_all
    )]
    async fn check_reset(
        &self,
        guess: &ResetGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        let now = context.at;
        let mut tx = self.write().await?;
        // Rows in the usual order: the username's counters first.
        let lockout = customers::lockout_in(&mut tx, &guess.username).await?;
        let outcome = if lockout.operator_locked {
            GuessOutcome::Locked { until: None }
        } else if wrong_guesses::<B>(&mut tx, &guess.username, now).await?
            >= i64::from(guess.max_wrong_per_day)
        {
            GuessOutcome::Exhausted
        } else {
            match use_attempt(&mut tx, guess, now).await? {
                None => unusable(&mut tx, guess, now).await?,
                Some((hash, _)) if guess.is_right(hash.as_ref()) => {
                    query::<B>("UPDATE password_resets SET status = 'VERIFIED' WHERE id = $1")
                        .bind(guess.reset.as_str())
                        .execute(&mut tx)
                        .await?;
                    if let Some(session) = &guess.session {
                        sessions::insert_session(&mut tx, session, None).await?;
                    }
                    GuessOutcome::Verified
                }
                Some((_, attempts)) => {
                    let locked = lockout.lock_on_reset_at(now).is_some();
                    wrong(&mut tx, guess, attempts, locked, policy, now).await?
                }
            }
        };
        if !outcome.was_checked() {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let events = outcome.audit_events_as(
            context,
            AuditKind::PasswordResetVerified,
            AuditKind::PasswordResetFailed,
        );
        audit::append(&mut tx, &self.trail, &events.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "store.set_reset_password",
        skip_all
    )]
    async fn set_reset_password(
        &self,
        reset: &PasswordReset,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<ResetDone> {
        let mut tx = self.write().await?;
        // Rows in the usual order: the username's counters, the session, the customer.
        let lockout = customers::lockout_in(&mut tx, &reset.username).await?;
        if lockout.operator_locked {
            tx.rollback().await?;
            return Ok(ResetDone::OperatorLocked);
        }
        if let Some(session) = &reset.session {
            let live = query::<B>(
                "UPDATE sessions SET state = state WHERE id = $1 AND customer_id = $2 \
                 AND state = 'PASSWORD_RESET' AND revoked_at IS NULL",
            )
            .bind(session.as_str())
            .bind(reset.customer.as_str())
            .execute(&mut tx)
            .await?
                == 1;
            if !live {
                tx.rollback().await?;
                return Ok(ResetDone::SessionEnded);
            }
        }
        query::<B>("UPDATE customers SET password_hash = $1 WHERE id = $2")
            .bind(reset.new_hash.as_str())
            .bind(reset.customer.as_str())
            .execute(&mut tx)
            .await?;
        session_ends::end_customer_sessions(&mut tx, &reset.customer, "password_reset", reset.at)
            .await?;
        customers::clear_after_reset(&mut tx, &reset.username).await?;
        // Any other reset of the customer's still open is moot now.
        query::<B>(
            "UPDATE password_resets SET status = 'SUPERSEDED' WHERE customer_id = $1 AND status = 'OPEN'",
        )
        .bind(reset.customer.as_str())
        .execute(&mut tx)
        .await?;
        for notice in notices {
            outbox::enqueue(&mut tx, notice).await?;
        }
        audit::append(&mut tx, &self.trail, &[event]).await?;
        tx.commit().await?;
        Ok(ResetDone::Reset)
    }
}
