//! Refusals, audited in aggregate. A login refused by a rate limit, a lock or an overloaded
//! hashing pool, a guess at a code that the stored state already refuses (an unknown, closed,
//! expired or exhausted challenge, a locked username), a refresh token replayed after its
//! session ended, and any API call refused before it changed anything (`request.refused`) are
//! cheap to refuse, and must stay cheap: a flood of them must not cost a
//! durable write each, fill the disk or queue behind the store's writer. So each refusal is
//! counted here, in memory, and [`Refusals::drain`] turns each key's count into one audit event
//! per window (the refusal's kind and reason, with `details.count`, `details.firstAt`,
//! `details.lastAt`). Attempts that change something (a password checked, a guess used) are
//! still audited one by one, with the change.
//!
//! Memory is bounded: once `MAX_KEYS` keys are counted, a refusal under a new key keeps one
//! dimension (the username, else the address) within a budget of its own, and only past those
//! is counted under its reason alone; each such refusal is counted in
//! `finhub_refusals_overflow_total{kept}`. A spray of distinct usernames therefore cannot hide
//! the refusals against a real target that follow it.
//!
//! What a crash loses is the current window's counts, never an accepted attempt.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::domain::audit::{AuditEvent, AuditKind, Outcome, rfc3339};
use crate::domain::customers::Username;
use crate::domain::risk::client::ClientContext;

/// Keys counted at once with every dimension; as many again may keep only the username, and
/// as many only the address.
const MAX_KEYS: usize = 10_000;

/// Whom a refusal was about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Who {
    username: Option<String>,
    customer_id: Option<String>,
    session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: AuditKind,
    /// A refused login's reason is static: counting one allocates nothing for it.
    reason: Option<Cow<'static, str>>,
    who: Option<Who>,
    ip: Option<IpAddr>,
}

/// Which dimensions a key keeps; each shape but the last has its own budget of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Both,
    WhoOnly,
    IpOnly,
    Neither,
}

impl Key {
    fn shape(&self) -> Shape {
        match (self.who.is_some(), self.ip.is_some()) {
            (true, true) => Shape::Both,
            (true, false) => Shape::WhoOnly,
            (false, true) => Shape::IpOnly,
            (false, false) => Shape::Neither,
        }
    }

    fn without_ip(&self) -> Self {
        Self {
            ip: None,
            ..self.clone()
        }
    }

    fn without_who(&self) -> Self {
        Self {
            who: None,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
    user_agent: Option<String>,
}

#[derive(Debug, Default)]
struct Window {
    tallies: HashMap<Key, Tally>,
    /// Keys of each shape, to keep each within its budget.
    keys_of: [usize; 3],
}

impl Window {
    /// The budget a shape's keys are counted in; `None` for keys with neither dimension (kinds
    /// times reasons: a handful), which need none.
    fn slot(shape: Shape) -> Option<usize> {
        match shape {
            Shape::Both => Some(0),
            Shape::WhoOnly => Some(1),
            Shape::IpOnly => Some(2),
            Shape::Neither => None,
        }
    }

    fn takes(&self, key: &Key) -> bool {
        Self::slot(key.shape()).is_none_or(|slot| self.keys_of[slot] < MAX_KEYS)
            || self.tallies.contains_key(key)
    }

    /// The key a refusal under `key` is counted under: `key` itself while there is room for
    /// it, else the first narrower key there is room for, named by what it kept. Narrower keys
    /// are built only when the wider one has no room.
    fn place(&self, key: Key) -> (Key, Option<&'static str>) {
        if self.takes(&key) {
            return (key, None);
        }
        let by_username = key.without_ip();
        if self.takes(&by_username) {
            return (by_username, Some("username"));
        }
        let by_ip = key.without_who();
        if self.takes(&by_ip) {
            return (by_ip, Some("ip"));
        }
        (by_username.without_who(), Some("none"))
    }

    fn add(&mut self, key: Key, at: OffsetDateTime, user_agent: Option<&str>) {
        let (key, kept) = self.place(key);
        if let Some(kept) = kept {
            metrics::counter!("finhub_refusals_overflow_total", "kept" => kept).increment(1);
        }
        if let Some(tally) = self.tallies.get_mut(&key) {
            tally.count += 1;
            tally.last_at = at;
            return;
        }
        if let Some(slot) = Self::slot(key.shape()) {
            self.keys_of[slot] += 1;
        }
        self.tallies.insert(
            key,
            Tally {
                count: 1,
                first_at: at,
                last_at: at,
                user_agent: user_agent.map(str::to_owned),
            },
        );
    }
}

/// The refusals counted since the last flush, one tally per key (see the module's docs).
#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one refused login.
    pub fn count(
        &self,
        reason: &'static str,
        username: &Username,
        client: &ClientContext,
        at: OffsetDateTime,
    ) {
        let key = Key {
            kind: AuditKind::LoginFailed,
            reason: Some(Cow::Borrowed(reason)),
            who: Some(Who {
                username: Some(username.as_str().to_owned()),
                customer_id: None,
                session_id: None,
            }),
            ip: client.ip,
        };
        self.window().add(key, at, client.user_agent.as_deref());
    }

    /// Counts one refused API call by its error code (`UNAUTHENTICATED`, `NOT_FOUND`, …) and
    /// the client's address: nobody is known yet when most are refused.
    pub fn count_request(&self, code: &'static str, ip: Option<IpAddr>, at: OffsetDateTime) {
        let key = Key {
            kind: AuditKind::RequestRefused,
            reason: Some(Cow::Borrowed(code)),
            who: None,
            ip,
        };
        self.window().add(key, at, None);
    }

    /// Counts the refusal `event` records (its kind, reason, who and from where), instead of
    /// appending it.
    pub fn count_event(&self, event: &AuditEvent) {
        let who = Who {
            username: event.username.clone(),
            customer_id: event.customer_id.clone(),
            session_id: event.session_id.clone(),
        };
        let anyone =
            who.username.is_some() || who.customer_id.is_some() || who.session_id.is_some();
        let key = Key {
            kind: event.kind,
            reason: event.reason.clone().map(Cow::Owned),
            who: anyone.then_some(who),
            ip: event.ip.as_deref().and_then(|ip| ip.parse().ok()),
        };
        self.window()
            .add(key, event.at, event.user_agent.as_deref());
    }

    /// One audit event per key counted since the last drain, and a fresh window.
    pub fn drain(&self) -> Vec<AuditEvent> {
        let window = std::mem::take(&mut *self.window());
        window
            .tallies
            .into_iter()
            .map(|(key, tally)| {
                let mut event = AuditEvent::new(key.kind, Outcome::Failure, tally.last_at)
                    .detail("count", tally.count)
                    .detail("firstAt", rfc3339(tally.first_at))
                    .detail("lastAt", rfc3339(tally.last_at));
                event.reason = key.reason.map(Cow::into_owned);
                if let Some(who) = key.who {
                    event.username = who.username;
                    event.customer_id = who.customer_id;
                    event.session_id = who.session_id;
                }
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
        assert_eq!(flood.kind, AuditKind::LoginFailed);
        assert_eq!(flood.reason.as_deref(), Some("rate_limited"));
        assert_eq!(flood.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(flood.details["count"], 10_000);
        assert_eq!(flood.details["firstAt"], "1970-01-01T00:00:00Z");
        assert_eq!(flood.details["lastAt"], "1970-01-01T00:00:09.999Z");
        assert_eq!(flood.username.as_deref(), Some("alice@example.com"));
        assert!(refusals.drain().is_empty(), "a new window starts empty");
    }

    #[test]
    fn refusals_of_other_kinds_keep_their_kind_and_subject() {
        let refusals = Refusals::default();
        let guess = AuditEvent::new(
            AuditKind::TwoFactorFailed,
            Outcome::Failure,
            OffsetDateTime::UNIX_EPOCH,
        )
        .reason("unknown_challenge")
        .client(&client("203.0.113.9"))
        .detail("challengeId", "c-1");
        let mut guess = guess;
        guess.customer_id = Some("cust-1".into());
        guess.session_id = Some("sess-1".into());
        for _ in 0..3 {
            refusals.count_event(&guess);
        }
        let events = refusals.drain();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.kind, AuditKind::TwoFactorFailed);
        assert_eq!(event.reason.as_deref(), Some("unknown_challenge"));
        assert_eq!(event.customer_id.as_deref(), Some("cust-1"));
        assert_eq!(event.session_id.as_deref(), Some("sess-1"));
        assert_eq!(event.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(event.details["count"], 3);
    }

    #[test]
    fn memory_stays_bounded_under_a_distributed_flood() {
        let refusals = Refusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        // Every key distinct in both dimensions, past every budget.
        for i in 0..(3 * MAX_KEYS as u32 + 500) {
            let name = Username::parse(&format!("user{i}@example.com")).unwrap();
            let ip = std::net::Ipv6Addr::from(u128::from(i)).to_string();
            refusals.count("rate_limited", &name, &client(&ip), t0);
        }
        let events = refusals.drain();
        assert_eq!(events.len(), 3 * MAX_KEYS + 1);
        let overflow = events
            .iter()
            .find(|e| e.username.is_none() && e.ip.is_none())
            .unwrap();
        assert_eq!(overflow.details["count"], 500);
    }

    /// A spray of distinct usernames that fills the tally must not hide the refusals against a
    /// real target that follow it: they are still counted under the target's username.
    #[test]
    fn a_username_spray_that_fills_the_tally_does_not_hide_a_real_target() {
        let refusals = Refusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..(MAX_KEYS as u32 + 2_000) {
            let name = Username::parse(&format!("spray{i}@example.com")).unwrap();
            refusals.count("rate_limited", &name, &client("203.0.113.9"), t0);
        }
        let target = Username::parse("ceo@bank.example").unwrap();
        for _ in 0..50 {
            refusals.count("account_locked", &target, &client("198.51.100.7"), t0);
        }
        let events = refusals.drain();
        let named: u64 = events
            .iter()
            .filter(|e| e.username.as_deref() == Some("ceo@bank.example"))
            .map(|e| e.details["count"].as_u64().unwrap())
            .sum();
        assert_eq!(named, 50, "every refusal against the target names it");
        let total: u64 = events
            .iter()
            .map(|e| e.details["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, MAX_KEYS as u64 + 2_000 + 50, "nothing is lost");
        assert!(
            events.iter().all(|e| e.username.is_some()),
            "the spray's own overflow keeps its usernames"
        );
    }
}
