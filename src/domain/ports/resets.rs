//! Forgotten passwords' resets.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{GuessOutcome, SendBudget};
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::credentials::reset::{
    NewReset, PasswordReset, ResetDone, ResetGuess, ResetId, ResetOpened, StoredReset,
};
use crate::domain::delivery::message::Message;

/// Password resets: requested, guessed at and completed, each in one transaction.
#[async_trait]
pub trait ResetStore: Send + Sync + 'static {
    /// Stores `reset`, superseding the username's open one, with `event`, holding the
    /// username's counters as a guess does. A `message` (its
    /// code) goes into the outbox in the same transaction if the customer's `budget` of codes
    /// over all their sessions and resets allows, counted under the customer's row lock;
    /// otherwise the reset is stored without its code hash and nothing is sent.
    async fn open_reset(
        &self,
        reset: &NewReset,
        budget: Option<SendBudget>,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<ResetOpened>;
    /// The reset `id` as stored, in whatever state.
    async fn reset(&self, id: &ResetId) -> StoreResult<Option<StoredReset>>;
    /// Checks one guess (see [`ResetGuess`]) in one transaction holding the username's
    /// counters: refuses it if an operator locked the username, the username's resets took
    /// their wrong guesses of the day, or the reset cannot take a guess, otherwise uses one of the reset's guesses by a conditional update; a wrong code
    /// counts toward the lock (unless one holds already), the right one closes the reset and
    /// starts the guess's session. Appends the outcome's events, built on `context`, for a
    /// guess that was checked; one refused on the stored state alone writes nothing.
    async fn check_reset(
        &self,
        guess: &ResetGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome>;
    /// Sets the reset password in one transaction with `notices` and `event`: ends every
    /// session of the customer (the reset's own too) and clears the username's failure count
    /// and a lock from failures. Refused while an operator's lock holds, or (for a reset's
    /// session) once that session has ended.
    async fn set_reset_password(
        &self,
        reset: &PasswordReset,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<ResetDone>;
}
