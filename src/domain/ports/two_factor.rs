//! Two-factor challenges.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{
    Admission, Challenge, ChallengeId, CodeGuess, GuessOutcome, NewChallenge, SendOutcome,
    TwoFactorPolicy,
};
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::delivery::message::Message;
use crate::domain::sessions::SessionId;

/// Two-factor challenges: opened under the sending limits and guessed at, each in one transaction.
#[async_trait]
pub trait TwoFactorStore: Send + Sync + 'static {
    /// Opens a challenge for a pending session, replacing any open one, if the session's
    /// sending limits allow: the send is counted and the limits checked in one conditional
    /// update, so concurrent requests cannot exceed them. A `message` (a code to send; a
    /// method whose answer is not sent, such as an authenticator app, has none) goes into the
    /// outbox in the same transaction. A username locked by then gets no challenge: the lock is
    /// checked again in that transaction, holding the username's counters.
    async fn open_challenge(
        &self,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome>;
    /// The session's challenge `id` as stored, in whatever state: how it is answered tells the
    /// caller how to judge an answer.
    async fn challenge(
        &self,
        id: &ChallengeId,
        session: &SessionId,
    ) -> StoreResult<Option<Challenge>>;
    /// Whether the stored state already refuses `guess` at `now` (the session no longer in its
    /// state, the challenge unknown, closed, expired or out of guesses, the username locked),
    /// read without the writer: every such guess, right or wrong, is answered the same way,
    /// and a flood of them never queues behind the writer nor commits anything. Otherwise the
    /// username's counters as read.
    async fn admit_guess(&self, guess: &CodeGuess, now: OffsetDateTime) -> StoreResult<Admission>;
    /// Checks one guess at a code in one transaction (see [`CodeGuess`]) that holds the
    /// username's counters and the session: refuses it if the challenge is unusable or the
    /// username locked, otherwise uses one of the challenge's guesses by a conditional update
    /// and compares the code; a wrong code counts towards the lock per `policy`, the right one
    /// activates the session. Appends the outcome's audit events, built on `context`, for a
    /// guess that was checked ([`GuessOutcome::was_checked`]); a guess refused on the stored
    /// state alone changes nothing and writes nothing (the caller audits it in aggregate).
    /// Only for a guess [`TwoFactorStore::admit_guess`] admitted: the rest would take the
    /// writer, and a right one would take longer than a wrong one.
    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome>;
}
