//! Tests of `mod.rs`.

use super::test_chains::{extend, verify_from};
use super::*;
use crate::domain::keys::AuditKeys;

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
    let keyed = ChainSeal::keyed(&AuditKeys::single(b"0123456789abcdef0123456789abcdef")).unwrap();
    let other = ChainSeal::keyed(&AuditKeys::single(b"another key, another chain.......")).unwrap();
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

fn verify_with(seal: &ChainSeal, events: &[ChainedEvent]) -> Result<u64, ChainBreak> {
    verify_from(seal, events, 0)
}

fn keyed() -> ChainSeal {
    ChainSeal::keyed(&AuditKeys::single(b"0123456789abcdef0123456789abcdef")).unwrap()
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
