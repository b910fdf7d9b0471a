//! The audit trail: one event for every authentication step, hash-chained so that an edited,
//! reordered or deleted event is detected.
//!
//! Each stored event carries `hash = SHA-256(prev_hash ‖ seq ‖ canonical JSON of the event)`.
//! Events never hold a password, code or token: the types that carry those cannot be put here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod anchor;
mod chain;

pub use anchor::{Anchor, AnchorBreak, AnchorKeys};
pub use chain::{ChainBreak, ChainSeal, ChainVerifier, GENESIS_HASH, Link, is_keyed_link};

use super::client::ClientContext;
use super::customer::{CustomerId, Username};
use super::session::SessionId;

/// What happened. The string forms are stable: operators filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    #[serde(rename = "login.failed")]
    LoginFailed,
    #[serde(rename = "account.locked")]
    AccountLocked,
    #[serde(rename = "account.unlocked")]
    AccountUnlocked,
    #[serde(rename = "2fa.initiated")]
    TwoFactorInitiated,
    #[serde(rename = "2fa.verified")]
    TwoFactorVerified,
    #[serde(rename = "2fa.failed")]
    TwoFactorFailed,
    /// A code's message was handed to the SMS gateway or mail relay (or the outbox file).
    #[serde(rename = "2fa.delivered")]
    CodeDelivered,
    /// A code's message was not sent: expired first, or given up on after the last attempt.
    #[serde(rename = "2fa.undelivered")]
    CodeUndelivered,
    /// A security notice was handed to the mail relay (or the outbox file).
    #[serde(rename = "notice.delivered")]
    NoticeDelivered,
    /// A security notice was not sent: expired first, or given up on after the last attempt.
    #[serde(rename = "notice.undelivered")]
    NoticeUndelivered,
    #[serde(rename = "session.refreshed")]
    SessionRefreshed,
    #[serde(rename = "session.refresh_reused")]
    RefreshReused,
    #[serde(rename = "session.logout")]
    Logout,
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    #[serde(rename = "device.forgotten")]
    DeviceForgotten,
    #[serde(rename = "customer.created")]
    CustomerCreated,
    #[serde(rename = "customer.password_rehashed")]
    PasswordRehashed,
    #[serde(rename = "audit.purged")]
    AuditPurged,
    /// From here on the chain is sealed with the audit key; the links before it are plain
    /// SHA-256, from before a key was set.
    #[serde(rename = "audit.sealed_with_key")]
    SealedWithKey,
    /// From here on the chain is sealed with its own key derived from the audit key; the keyed
    /// links before it are sealed with the audit key itself, as earlier versions did.
    #[serde(rename = "audit.chain_key_derived")]
    ChainKeyDerived,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::AccountLocked => "account.locked",
            Self::AccountUnlocked => "account.unlocked",
            Self::TwoFactorInitiated => "2fa.initiated",
            Self::TwoFactorVerified => "2fa.verified",
            Self::TwoFactorFailed => "2fa.failed",
            Self::CodeDelivered => "2fa.delivered",
            Self::CodeUndelivered => "2fa.undelivered",
            Self::NoticeDelivered => "notice.delivered",
            Self::NoticeUndelivered => "notice.undelivered",
            Self::SessionRefreshed => "session.refreshed",
            Self::RefreshReused => "session.refresh_reused",
            Self::Logout => "session.logout",
            Self::SessionRevoked => "session.revoked",
            Self::DeviceForgotten => "device.forgotten",
            Self::CustomerCreated => "customer.created",
            Self::PasswordRehashed => "customer.password_rehashed",
            Self::AuditPurged => "audit.purged",
            Self::SealedWithKey => "audit.sealed_with_key",
            Self::ChainKeyDerived => "audit.chain_key_derived",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Whether the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// One event, before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: AuditKind,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub username: Option<String>,
    pub customer_id: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub device_fingerprint: Option<String>,
    pub device_name: Option<String>,
    /// Small facts specific to the kind (e.g. `lockedUntil`, `method`); keys sort, so the
    /// canonical form is stable.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    pub fn new(kind: AuditKind, outcome: Outcome, at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            at,
            kind,
            outcome,
            reason: None,
            username: None,
            customer_id: None,
            session_id: None,
            ip: None,
            user_agent: None,
            device_fingerprint: None,
            device_name: None,
            details: serde_json::Map::new(),
        }
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn username(mut self, username: &Username) -> Self {
        self.username = Some(username.as_str().to_owned());
        self
    }

    pub fn customer(mut self, id: &CustomerId) -> Self {
        self.customer_id = Some(id.as_str().to_owned());
        self
    }

    pub fn session(mut self, id: &SessionId) -> Self {
        self.session_id = Some(id.as_str().to_owned());
        self
    }

    pub fn client(mut self, client: &ClientContext) -> Self {
        self.ip = client.ip.map(|ip| ip.to_string());
        self.user_agent.clone_from(&client.user_agent);
        if let Some(device) = &client.device {
            self.device_fingerprint = Some(device.fingerprint.clone());
            self.device_name = device.name.as_ref().map(|n| n.as_str().to_owned());
        }
        if let Some(country) = &client.location.country {
            self.details
                .insert("country".into(), country.clone().into());
        }
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A new event of another kind about the same actor and context (who, from where, which
    /// session, and the details so far).
    pub fn recast(&self, kind: AuditKind, outcome: Outcome, reason: Option<&str>) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            kind,
            outcome,
            reason: reason.map(str::to_owned),
            ..self.clone()
        }
    }

    /// The event that records a lock caused by the failure `self` records.
    pub fn lock_caused(&self, until: OffsetDateTime, nth_lock: u32) -> Self {
        let mut lock = self.recast(
            AuditKind::AccountLocked,
            Outcome::Success,
            Some("too_many_failures"),
        );
        lock.details = serde_json::Map::new();
        lock.detail("lockedUntil", rfc3339(until))
            .detail("lockCount", nth_lock)
    }

    /// The canonical bytes that are sealed into the chain.
    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainedEvent {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// RFC 3339 in UTC, the form every API and audit time takes.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainedEvent> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent::new(
                    AuditKind::LoginFailed,
                    Outcome::Failure,
                    OffsetDateTime::UNIX_EPOCH,
                )
                .reason("invalid_credentials");
                let hash = ChainSeal::unkeyed().hash(&event, seq, &prev);
                let e = ChainedEvent {
                    seq,
                    event,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(events: &[ChainedEvent], head: &ChainedEvent) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::starting_after(ChainSeal::unkeyed(), 0, GENESIS_HASH);
        for e in events {
            v.check(e)?;
        }
        v.finish(head.seq, &head.hash)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        assert_eq!(verify(&events, &events[4]), Ok(5));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].event.reason = Some("nothing to see".into());
        let id = events[2].event.id.clone();
        assert_eq!(
            verify(&events, &events[4].clone()),
            Err(ChainBreak::Altered { seq: 3, id })
        );
    }

    #[test]
    fn a_deleted_event_is_named() {
        let mut events = chain(5);
        let head = events[4].clone();
        events.remove(1);
        let id = events[1].event.id.clone();
        assert_eq!(
            verify(&events, &head),
            Err(ChainBreak::Unlinked { seq: 3, id })
        );
    }

    #[test]
    fn a_cut_off_tail_is_detected() {
        let events = chain(5);
        assert_eq!(
            verify(&events[..3], &events[4]),
            Err(ChainBreak::Truncated {
                expected: 5,
                found: 3
            })
        );
    }

    #[test]
    fn a_keyed_chain_cannot_be_recomputed_without_the_key_nor_checked_without_it() {
        let event = AuditEvent::new(
            AuditKind::LoginFailed,
            Outcome::Failure,
            OffsetDateTime::UNIX_EPOCH,
        );
        let keyed = ChainSeal::keyed(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = ChainSeal::keyed(b"another key, another chain.......").unwrap();
        let link = keyed.hash(&event, 1, GENESIS_HASH);
        assert!(link.starts_with("hmac2:"));
        assert_ne!(link, other.hash(&event, 1, GENESIS_HASH));
        let stored = ChainedEvent {
            seq: 1,
            event: event.clone(),
            prev_hash: GENESIS_HASH.into(),
            hash: link,
        };
        assert!(
            ChainVerifier::starting_after(keyed.clone(), 0, GENESIS_HASH)
                .check(&stored)
                .is_ok()
        );
        assert!(matches!(
            ChainVerifier::starting_after(ChainSeal::unkeyed(), 0, GENESIS_HASH).check(&stored),
            Err(ChainBreak::NeedsKey { .. })
        ));
        let forged = ChainedEvent {
            hash: ChainSeal::unkeyed().hash(&event, 1, GENESIS_HASH),
            ..stored
        };
        // A plain link could only be the prefix from before a key; with no marker after it,
        // the chain fails.
        let mut verifier = ChainVerifier::starting_after(keyed, 0, GENESIS_HASH);
        assert_eq!(verifier.check(&forged), Ok(()));
        assert!(matches!(
            verifier.finish(1, &forged.hash),
            Err(ChainBreak::Unsealed { seq: 1, .. })
        ));
    }

    /// The stored name of every kind, as the serde derive lists them: a new variant joins the
    /// list by itself, so no round trip below can leave one out.
    fn every_kind_name() -> &'static [&'static str] {
        use serde::de::{self, Deserializer, Visitor};
        use std::cell::Cell;

        /// Asked for an enum, keeps the names of its variants and deserializes nothing.
        struct VariantNames<'a>(&'a Cell<&'static [&'static str]>);

        impl<'de> Deserializer<'de> for VariantNames<'_> {
            type Error = de::value::Error;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("only an enum is expected"))
            }

            fn deserialize_enum<V: Visitor<'de>>(
                self,
                _name: &'static str,
                variants: &'static [&'static str],
                _visitor: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.set(variants);
                Err(de::Error::custom("the names are all that was wanted"))
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
                identifier ignored_any
            }
        }

        let names = Cell::new(&[][..]);
        let _ = AuditKind::deserialize(VariantNames(&names));
        names.get()
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        let names = every_kind_name();
        // The last variant, so the list was caught whole.
        assert!(names.contains(&"audit.purged"), "{names:?}");
        for &name in names {
            let kind = AuditKind::from_stored(name).expect(name);
            assert_eq!(kind.as_str(), name);
            assert_eq!(serde_json::to_value(kind).expect("json"), name);
        }
        assert_eq!(AuditKind::from_stored("login.unknown"), None);
    }

    /// Appends `n` failed logins to `chain` as `seal` links them.
    fn extend(chain: &mut Vec<ChainedEvent>, seal: &ChainSeal, n: usize) {
        let events: Vec<AuditEvent> = (0..n)
            .map(|_| {
                AuditEvent::new(
                    AuditKind::LoginFailed,
                    Outcome::Failure,
                    OffsetDateTime::UNIX_EPOCH,
                )
            })
            .collect();
        let refs: Vec<&AuditEvent> = events.iter().collect();
        let (seq, hash) = chain
            .last()
            .map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()));
        chain.extend(
            seal.link(seq, hash, &refs)
                .into_iter()
                .map(|l| ChainedEvent {
                    seq: l.seq,
                    event: l.event.into_owned(),
                    prev_hash: l.prev_hash,
                    hash: l.hash,
                }),
        );
    }

    fn verify_with(seal: &ChainSeal, events: &[ChainedEvent]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::starting_after(seal.clone(), 0, GENESIS_HASH);
        for e in events {
            v.check(e)?;
        }
        let head = events.last().expect("events");
        v.finish(head.seq, &head.hash)
    }

    fn keyed() -> ChainSeal {
        ChainSeal::keyed(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_chain_begun_without_a_key_is_switched_at_a_marked_event() {
        let mut events = Vec::new();
        extend(&mut events, &ChainSeal::unkeyed(), 3);
        extend(&mut events, &keyed(), 2);
        assert_eq!(events.len(), 6, "a marker between the parts");
        assert_eq!(events[3].event.kind, AuditKind::SealedWithKey);
        assert_eq!(events[3].event.details["plainThroughSeq"], 3);
        assert!(is_keyed_link(&events[3].hash));
        assert_eq!(verify_with(&keyed(), &events), Ok(6));
        // Linking again with the key adds no second marker.
        extend(&mut events, &keyed(), 1);
        assert_eq!(events.len(), 7);
        assert_eq!(verify_with(&keyed(), &events), Ok(7));
        // Without the key the keyed part cannot be checked.
        assert!(matches!(
            verify_with(&ChainSeal::unkeyed(), &events),
            Err(ChainBreak::NeedsKey { seq: 4, .. })
        ));
    }

    #[test]
    fn the_plain_part_of_a_switched_chain_cannot_be_rewritten_or_extended() {
        let mut events = Vec::new();
        extend(&mut events, &ChainSeal::unkeyed(), 3);
        extend(&mut events, &keyed(), 1);

        // A plain prefix rewritten (and relinked) no longer leads to the marker.
        let mut rewritten = events.clone();
        rewritten[1].event.reason = Some("nothing to see".into());
        let mut prev = rewritten[0].hash.clone();
        for e in &mut rewritten[1..3] {
            e.prev_hash.clone_from(&prev);
            e.hash = ChainSeal::unkeyed().hash(&e.event, e.seq, &prev);
            prev.clone_from(&e.hash);
        }
        assert!(matches!(
            verify_with(&keyed(), &rewritten),
            Err(ChainBreak::Unlinked { seq: 4, .. })
        ));

        // A plain link after the keyed part.
        let mut appended = events.clone();
        extend(&mut appended, &ChainSeal::unkeyed(), 1);
        assert!(matches!(
            verify_with(&keyed(), &appended),
            Err(ChainBreak::Unsealed { seq: 6, .. })
        ));
    }

    #[test]
    fn with_a_key_a_plain_chain_needs_its_marker() {
        let mut plain = Vec::new();
        extend(&mut plain, &ChainSeal::unkeyed(), 2);
        assert!(matches!(
            verify_with(&keyed(), &plain),
            Err(ChainBreak::Unsealed { seq: 1, .. })
        ));

        // Keyed links straight after plain ones, with the marker removed and the chain
        // relinked: the first keyed link is not the marker.
        let mut events = Vec::new();
        extend(&mut events, &ChainSeal::unkeyed(), 2);
        extend(&mut events, &keyed(), 1);
        events.remove(2);
        events[2].seq = 3;
        events[2].prev_hash = events[1].hash.clone();
        assert!(matches!(
            verify_with(&keyed(), &events),
            Err(ChainBreak::Unsealed { seq: 1, .. }) | Err(ChainBreak::Altered { seq: 3, .. })
        ));
    }
}
