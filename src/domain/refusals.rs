//! Refused logins, audited in aggregate. A login refused by a rate limit, a lock or an
//! overloaded hashing pool is cheap to refuse, and must stay cheap: a flood of them must not
//! cost a durable write each, fill the disk or queue behind the store's writer. So each refusal
//! is counted here, in memory, and [`Refusals::drain`] turns each key's count into one audit
//! event per window (`login.failed` with `details.count`, `details.firstAt`, `details.lastAt`).
//! Accepted attempts, right or wrong password, are still audited one by one.
//!
//! What a crash loses is the current window's counts, never an accepted attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::audit::{AuditEvent, AuditKind, Outcome, rfc3339};
use super::client::ClientContext;
use super::customer::Username;

/// Keys counted at once; past this, refusals of new keys are counted under one key per reason
/// with no username or address, so memory stays bounded under a distributed flood.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    reason: &'static str,
    username: Option<String>,
    ip: Option<IpAddr>,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
    user_agent: Option<String>,
}

#[derive(Debug, Default)]
pub struct Refusals {
    tallies: Mutex<HashMap<Key, Tally>>,
}

impl Refusals {
    /// Counts one refused login.
    pub fn count(
        &self,
        reason: &'static str,
        username: &Username,
        client: &ClientContext,
        at: OffsetDateTime,
    ) {
        let mut tallies = self
            .tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key = Key {
            reason,
            username: Some(username.as_str().to_owned()),
            ip: client.ip,
        };
        if tallies.len() >= MAX_KEYS && !tallies.contains_key(&key) {
            key = Key {
                reason,
                username: None,
                ip: None,
            };
        }
        tallies
            .entry(key)
            .and_modify(|t| {
                t.count += 1;
                t.last_at = at;
            })
            .or_insert_with(|| Tally {
                count: 1,
                first_at: at,
                last_at: at,
                user_agent: client.user_agent.clone(),
            });
    }

    /// One audit event per key counted since the last drain, and a fresh window.
    pub fn drain(&self) -> Vec<AuditEvent> {
        let tallies = std::mem::take(
            &mut *self
                .tallies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        tallies
            .into_iter()
            .map(|(key, tally)| {
                let mut event =
                    AuditEvent::new(AuditKind::LoginFailed, Outcome::Failure, tally.last_at)
                        .reason(key.reason)
                        .detail("count", tally.count)
                        .detail("firstAt", rfc3339(tally.first_at))
                        .detail("lastAt", rfc3339(tally.last_at));
                event.username = key.username;
                event.ip = key.ip.map(|ip| ip.to_string());
                event.user_agent = tally.user_agent;
                event
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> ClientContext {
        ClientContext::new(Some(ip.parse().unwrap()), Some("flood/1.0"))
    }

    #[test]
    fn a_flood_becomes_one_event_per_key_and_window() {
        let refusals = Refusals::default();
        let alice = Username::parse("alice@example.com").unwrap();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..10_000 {
            refusals.count(
                "rate_limited",
                &alice,
                &client("203.0.113.9"),
                t0 + time::Duration::milliseconds(i),
            );
        }
        refusals.count("account_locked", &alice, &client("203.0.113.9"), t0);
        refusals.count("rate_limited", &alice, &client("198.51.100.1"), t0);
        let mut events = refusals.drain();
        events.sort_by_key(|e| (e.reason.clone(), e.ip.clone()));
        assert_eq!(events.len(), 3);
        let flood = &events[2];
        assert_eq!(flood.reason.as_deref(), Some("rate_limited"));
        assert_eq!(flood.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(flood.details["count"], 10_000);
        assert_eq!(flood.details["firstAt"], "1970-01-01T00:00:00Z");
        assert_eq!(flood.details["lastAt"], "1970-01-01T00:00:09.999Z");
        assert_eq!(flood.username.as_deref(), Some("alice@example.com"));
        assert!(refusals.drain().is_empty(), "a new window starts empty");
    }

    #[test]
    fn memory_stays_bounded_under_a_distributed_flood() {
        let refusals = Refusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..(MAX_KEYS as u32 + 500) {
            let name = Username::parse(&format!("user{i}@example.com")).unwrap();
            refusals.count("rate_limited", &name, &client("203.0.113.9"), t0);
        }
        let events = refusals.drain();
        assert_eq!(events.len(), MAX_KEYS + 1);
        let overflow = events.iter().find(|e| e.username.is_none()).unwrap();
        assert_eq!(overflow.details["count"], 500);
    }
}
