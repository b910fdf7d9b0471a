//! Time as the service sees it. Every rule that depends on "now" asks a [`Clock`], so tests can
//! move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A source of the current time, truncated to whole milliseconds so that every stored instant
/// round-trips exactly (the audit chain hashes them).
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC, to the millisecond.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_millis(OffsetDateTime::now_utc())
    }
}

/// A clock that tests (and only tests) move by hand. It starts at the system time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    offset_ms: Arc<AtomicI64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at the system time, until moved.
    pub fn new() -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        SystemClock.now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Drops sub-millisecond precision.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_unix_millis(to_unix_millis(t))
}

/// Milliseconds since the Unix epoch, the form instants take in storage.
pub fn to_unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`to_unix_millis`]; out-of-range values clamp to the Unix epoch.
pub fn from_unix_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_shares_its_offset() {
        let clock = ManualClock::new();
        let copy = clock.clone();
        let before = clock.now();
        copy.advance(Duration::hours(2));
        let after = clock.now();
        assert!(after - before >= Duration::hours(2));
        assert!(after - before < Duration::hours(2) + Duration::seconds(5));
    }

    #[test]
    fn millis_round_trip_exactly() {
        let now = SystemClock.now();
        assert_eq!(from_unix_millis(to_unix_millis(now)), now);
    }
}
