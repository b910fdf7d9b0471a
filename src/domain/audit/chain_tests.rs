//! Tests of `chain.rs`.

use time::OffsetDateTime;

use super::*;
use crate::domain::audit::test_chains::{self, chain_end, failed_login as event, verify_from};
use crate::domain::audit::{ChainBreak, ChainedEvent, is_keyed_link};

fn seal() -> ChainSeal {
    ChainSeal::keyed(b"0123456789abcdef0123456789abcdef").unwrap()
}

/// `n` links after the chain's end, in `scheme`, as written by hand (earlier versions).
fn extend_as(chain: &mut Vec<ChainedEvent>, scheme: Scheme, n: usize) {
    for _ in 0..n {
        let (seq, prev) = chain_end(chain);
        let event = event();
        let hash = seal().hash_as(scheme, &event, seq + 1, &prev).unwrap();
        chain.push(ChainedEvent {
            seq: seq + 1,
            event,
            prev_hash: prev,
            hash,
        });
    }
}

/// Links appended by this version.
fn extend(chain: &mut Vec<ChainedEvent>, n: usize) {
    test_chains::extend(chain, &seal(), n);
}

fn verify(chain: &[ChainedEvent], from: usize) -> Result<u64, ChainBreak> {
    verify_from(&seal(), chain, from)
}

#[test]
fn the_chain_key_is_derived_and_differs_from_the_audit_key() {
    let e = event();
    let derived = seal().hash(&e, 1, GENESIS_HASH);
    let raw = seal().hash_as(Scheme::Raw, &e, 1, GENESIS_HASH).unwrap();
    assert!(derived.starts_with(DERIVED));
    assert!(raw.starts_with(KEYED));
    assert_ne!(derived[DERIVED.len()..], raw[KEYED.len()..]);
    assert!(is_keyed_link(&derived) && is_keyed_link(&raw));
}

#[test]
fn a_chain_linked_under_the_audit_key_itself_is_continued_after_a_marker() {
    let mut chain = Vec::new();
    extend_as(&mut chain, Scheme::Plain, 2);
    // Plain, then the earlier version's switch to the audit key, then this version.
    let marker = AuditEvent::new(
        AuditKind::SealedWithKey,
        Outcome::Success,
        OffsetDateTime::UNIX_EPOCH,
    );
    let raw = seal()
        .hash_as(Scheme::Raw, &marker, 3, &chain[1].hash)
        .unwrap();
    chain.push(ChainedEvent {
        seq: 3,
        event: marker,
        prev_hash: chain[1].hash.clone(),
        hash: raw,
    });
    extend_as(&mut chain, Scheme::Raw, 2);
    assert_eq!(verify(&chain, 0), Ok(5), "an old chain verifies as it is");

    extend(&mut chain, 2);
    assert_eq!(chain.len(), 8, "one marker, then the two events");
    assert_eq!(chain[5].event.kind, AuditKind::ChainKeyDerived);
    assert_eq!(chain[5].event.details["rawKeyThroughSeq"], 5);
    assert!(chain[5..].iter().all(|e| e.hash.starts_with(DERIVED)));
    assert_eq!(verify(&chain, 0), Ok(8));
    // From a checkpoint in either part.
    assert_eq!(verify(&chain, 4), Ok(4));
    assert_eq!(verify(&chain, 6), Ok(2));
    // No second marker.
    extend(&mut chain, 1);
    assert_eq!(chain.len(), 9);
    assert_eq!(verify(&chain, 0), Ok(9));
}

#[test]
fn the_switch_cannot_be_unmarked_or_undone() {
    let mut chain = Vec::new();
    extend_as(&mut chain, Scheme::Raw, 2);
    // Derived links straight after raw ones, with no marker.
    let mut unmarked = chain.clone();
    extend_as(&mut unmarked, Scheme::Derived, 1);
    assert!(matches!(
        verify(&unmarked, 0),
        Err(ChainBreak::UnmarkedRekey { seq: 3, .. })
    ));
    // A raw link after derived ones.
    extend(&mut chain, 1);
    extend_as(&mut chain, Scheme::Raw, 1);
    assert!(matches!(
        verify(&chain, 0),
        Err(ChainBreak::RawAfterDerived { seq: 5, .. })
    ));
    // A raw link edited after the fact.
    let mut edited = Vec::new();
    extend_as(&mut edited, Scheme::Raw, 2);
    extend(&mut edited, 1);
    edited[1].event.reason = Some("nothing to see".into());
    assert!(matches!(
        verify(&edited, 0),
        Err(ChainBreak::Altered { seq: 2, .. })
    ));
}
