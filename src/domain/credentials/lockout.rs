//! Failed-login lockout: consecutive failures per normalised username (existing or not) lock it
//! for a while, twice as long on each repeated lock.
//!
//! The policy is decided here; the counting is enforced atomically by the store, so that no
//! number of concurrent attempts from any number of instances gets more than `threshold`
//! failures through before the lock:
//! [`CustomerStore::record_failure`](crate::domain::ports::CustomerStore::record_failure) and the wrong
//! code in [`TwoFactorStore::check_code`](crate::domain::ports::TwoFactorStore::check_code) count a
//! failure with one upsert while holding the username's lock (`store/sql/customers.rs`,
//! `count_failure`), and [`SessionStore::start_session`](crate::domain::ports::SessionStore::start_session)
//! checks the lock in the transaction that starts the session.

use time::{Duration, OffsetDateTime};

use crate::domain::sessions::SessionState;

/// How failures turn into locks.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock; 0 disables locking.
    pub threshold: u32,
    /// The first lock's length.
    pub base: Duration,
    /// No lock lasts longer than this, however often it repeats.
    pub max: Duration,
}

impl LockoutPolicy {
    /// Whether `failures` consecutive failures call for a lock.
    pub fn should_lock(&self, failures: u32) -> bool {
        self.threshold > 0 && failures >= self.threshold
    }

    /// The length of the `nth` lock (1 for the first): base, 2×base, 4×base, … up to `max`.
    pub fn lock_duration(&self, nth: u32) -> Duration {
        let doublings = nth.saturating_sub(1).min(30);
        let factor = 1i32 << doublings;
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// The failure counters kept for one username.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockoutRecord {
    /// Failed logins since the last success or lock.
    pub failures: u32,
    /// Locks so far, which double each new lock's length (up to the cap).
    pub lock_count: u32,
    /// The end of the current automatic lock, if any.
    pub locked_until: Option<OffsetDateTime>,
    /// Locked by an operator until unlocked.
    pub operator_locked: bool,
    /// Locked down by the customer ("this wasn't me") until a completed password reset or an
    /// operator's unlock.
    pub locked_down: bool,
}

/// Why a login is refused before any password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Until an operator unlocks.
    Operator,
    /// The customer's lockdown, until a completed password reset or an operator's unlock.
    Lockdown,
    /// An automatic lock, until this moment.
    Until(OffsetDateTime),
}

impl LockoutRecord {
    /// The lock in force at `now`, if any.
    pub fn lock_at(&self, now: OffsetDateTime) -> Option<Lock> {
        if self.locked_down && !self.operator_locked {
            return Some(Lock::Lockdown);
        }
        self.lock_on_reset_at(now)
    }

    /// The lock in force at `now` for a step of a session in `state`: a reset's session is held
    /// only by what may stop a reset.
    pub fn lock_in(&self, state: SessionState, now: OffsetDateTime) -> Option<Lock> {
        match state {
            SessionState::PasswordReset => self.lock_on_reset_at(now),
            _ => self.lock_at(now),
        }
    }

    /// The lock in force at `now` for a step of a password reset: a lockdown waits for that very
    /// reset, so it cannot stop one; an operator's lock and a lock from failures do.
    pub fn lock_on_reset_at(&self, now: OffsetDateTime) -> Option<Lock> {
        if self.operator_locked {
            return Some(Lock::Operator);
        }
        self.locked_until
            .filter(|until| *until > now)
            .map(Lock::Until)
    }
}

impl Lock {
    /// When the lock ends; `None` while an operator's lock or a lockdown lasts.
    pub fn until(self) -> Option<OffsetDateTime> {
        match self {
            Self::Operator | Self::Lockdown => None,
            Self::Until(t) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            threshold: 5,
            base: Duration::minutes(15),
            max: Duration::hours(24),
        }
    }

    #[test]
    fn the_fifth_consecutive_failure_locks() {
        assert!(!policy().should_lock(4));
        assert!(policy().should_lock(5));
        let off = LockoutPolicy {
            threshold: 0,
            ..policy()
        };
        assert!(!off.should_lock(1000));
    }

    #[test]
    fn locks_double_and_stop_at_the_maximum() {
        let p = policy();
        assert_eq!(p.lock_duration(1), Duration::minutes(15));
        assert_eq!(p.lock_duration(2), Duration::minutes(30));
        assert_eq!(p.lock_duration(3), Duration::minutes(60));
        assert_eq!(p.lock_duration(8), Duration::hours(24));
        assert_eq!(p.lock_duration(u32::MAX), Duration::hours(24));
    }

    #[test]
    fn a_lock_holds_until_its_time_and_an_operator_lock_until_unlocked() {
        let now = OffsetDateTime::now_utc();
        let timed = LockoutRecord {
            locked_until: Some(now + Duration::minutes(1)),
            ..Default::default()
        };
        assert_eq!(
            timed.lock_at(now),
            Some(Lock::Until(now + Duration::minutes(1)))
        );
        assert_eq!(timed.lock_at(now + Duration::minutes(2)), None);
        let operator = LockoutRecord {
            operator_locked: true,
            ..Default::default()
        };
        assert_eq!(
            operator.lock_at(now + Duration::days(999)),
            Some(Lock::Operator)
        );
    }

    #[test]
    fn a_lockdown_holds_until_cleared_but_never_stops_the_reset_that_clears_it() {
        let now = OffsetDateTime::now_utc();
        let down = LockoutRecord {
            locked_down: true,
            ..Default::default()
        };
        assert_eq!(
            down.lock_at(now + Duration::days(999)),
            Some(Lock::Lockdown)
        );
        assert_eq!(Lock::Lockdown.until(), None, "no end to tell");
        assert_eq!(down.lock_on_reset_at(now), None);
        let and_failures = LockoutRecord {
            locked_until: Some(now + Duration::minutes(1)),
            ..down
        };
        assert_eq!(
            and_failures.lock_on_reset_at(now),
            Some(Lock::Until(now + Duration::minutes(1)))
        );
        let and_operator = LockoutRecord {
            operator_locked: true,
            ..down
        };
        assert_eq!(and_operator.lock_at(now), Some(Lock::Operator));
        assert_eq!(and_operator.lock_on_reset_at(now), Some(Lock::Operator));
    }
}
