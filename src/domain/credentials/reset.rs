//! Forgotten passwords: a six-digit code mailed to the profile's address opens a session that
//! may only set a new password (after a second factor other than that mailbox, when the
//! customer holds one).
//!
//! Whether a username exists must not show, in the answer or its timing, nor later: a request
//! for any username stores a reset, and one whose code never went out (an unknown username, an
//! operator's lock, a spent sending budget) has no code hash, so no answer is right but its
//! attempts and expiry run as any other's. The rules that concurrent requests could race are
//! enforced by the store in one transaction each
//! ([`ResetStore`](crate::domain::ports::ResetStore)): a reset takes at most
//! [`ResetGuess::max_attempts`] guesses, each wrong one counting toward the username's lock, a
//! username's resets at most [`WRONG_RESET_CODES_PER_DAY`] wrong ones a day (a lock from
//! failures does not stop a reset, so the lock alone would not bound them), and the customer's
//! sending budget counts reset codes with every other code.

use time::OffsetDateTime;

use crate::domain::InvalidValue;
use crate::domain::credentials::challenge::{CodeHash, PresentedCode};
use crate::domain::customers::{CustomerId, Username};
use crate::domain::delivery::message::Message;
use crate::domain::sessions::{NewSession, SessionId};

/// Wrong reset codes a username's resets take in a day, whichever reset they name: two resets'
/// worth of guesses, so a customer who mistypes can still finish, while a guesser without the
/// mailbox has ten chances in a million a day.
pub const WRONG_RESET_CODES_PER_DAY: u32 = 10;

crate::domain::opaque_id!(
    /// An opaque password-reset identifier.
    ResetId
);

impl ResetId {
    /// Anything short and printable may be looked up; unknown ids simply match nothing.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            Err(InvalidValue(
                "must be the resetId returned by auth/password-reset",
            ))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }
}

/// A reset about to be stored, for every request.
#[derive(Debug)]
pub struct NewReset {
    /// Opaque; what the client presents with the code.
    pub id: ResetId,
    /// The username asked for, whether or not it is a customer's: wrong codes count toward its
    /// lock, and a newer request for it supersedes this one.
    pub username: Username,
    /// The customer it belongs to, if any.
    pub customer: Option<CustomerId>,
    /// The hash of the code sent; `None` when none is (then no answer is right).
    pub code_hash: Option<CodeHash>,
    /// When it was asked for.
    pub created_at: OffsetDateTime,
    /// After this its code is refused as expired.
    pub expires_at: OffsetDateTime,
}

/// A reset as stored.
#[derive(Debug, Clone)]
pub struct StoredReset {
    /// Opaque.
    pub id: ResetId,
    /// The username it was asked for.
    pub username: Username,
    /// The customer it belongs to, if any.
    pub customer: Option<CustomerId>,
}

/// What came of a request: whether its code went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOpened {
    /// Stored, with its code in the outbox.
    Sent,
    /// Stored without a code: the customer's sending budget is spent.
    BudgetSpent,
    /// Stored without a code, as asked (no customer, or an operator's lock).
    Unsent,
}

/// One guess at a reset's code, checked by the store in one transaction with the username's
/// lock, the reset's remaining guesses and the failure count.
#[derive(Debug)]
pub struct ResetGuess {
    /// The reset the client names.
    pub reset: ResetId,
    /// Whose lock an operator may hold and whose failures a wrong code counts towards.
    pub username: Username,
    /// The code presented, hashed for this reset.
    pub code: PresentedCode,
    /// Guesses one reset allows.
    pub max_attempts: u32,
    /// Wrong guesses all of a username's resets allow in a day: a lock from failures does not
    /// stop a reset (completing one clears it), so this bounds guessing at reset codes.
    pub max_wrong_per_day: u32,
    /// The PASSWORD_RESET session a right code starts; `None` for a reset of no customer.
    pub session: Option<NewSession>,
    /// Queued, completed with the lock's end, when a wrong code locks the username.
    pub lock_notices: Vec<Message>,
}

impl ResetGuess {
    /// Whether the code is the one whose hash the reset holds (a reset without one takes none),
    /// compared in constant time.
    pub fn is_right(&self, stored: Option<&CodeHash>) -> bool {
        self.session.is_some() && stored.is_some_and(|hash| hash.matches(&self.code))
    }
}

/// A new password set without the old one: by a completed reset, or by FinHub's support.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    /// Whose password.
    pub customer: CustomerId,
    /// Their username: its failure count and a lock from failures are cleared; an operator's
    /// lock refuses the reset.
    pub username: Username,
    /// The PASSWORD_RESET session that completes it, which must still be live; `None` for the
    /// support command.
    pub session: Option<SessionId>,
    /// The new password's argon2 PHC string.
    pub new_hash: String,
    /// When it was set.
    pub at: OffsetDateTime,
}

/// What came of setting a reset password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetDone {
    /// Set; every session of the customer ended and failure locks cleared.
    Reset,
    /// An operator's lock holds: nothing changed.
    OperatorLocked,
    /// The reset's session ended meanwhile: nothing changed.
    SessionEnded,
}
