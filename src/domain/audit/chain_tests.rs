//! Tests of `chain.rs`.

use time::OffsetDateTime;

use super::*;
use crate::domain::audit::test_chains::{self, chain_end, failed_login as event, verify_from};
use crate::domain::audit::{ChainBreak, ChainedEvent, is_keyed_link};
use crate::domain::keys::{AuditKeys, KeyId};

fn seal() -> ChainSeal {
    ChainSeal::keyed(&AuditKeys::single(b"0123456789abcdef0123456789abcdef")).unwrap()
}

/// `n` links after the chain's end, in `scheme`, as written by hand (earlier versions).
fn extend_as(chain: &mut Vec<ChainedEvent>, scheme: Scheme, n: usize) {
    for _ in 0..n {
        let (seq, prev) = chain_end(chain);
        let event = event();
        let hash = seal().hash_as(scheme, 0, &event, seq + 1, &prev).unwrap();
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
    let raw = seal().hash_as(Scheme::Raw, 0, &e, 1, GENESIS_HASH).unwrap();
    assert!(derived.starts_with(DERIVED), "{derived}");
    // Once a rotation is configured, links name their key.
    let named = ring(A, &[B]).hash(&e, 1, GENESIS_HASH);
    assert!(named.starts_with(&under(A)), "{named}");
    assert_eq!(named.rsplit(':').next(), derived.rsplit(':').next());
    assert!(raw.starts_with(KEYED));
    let digest = |link: &str| link.rsplit(':').next().unwrap().to_owned();
    assert_ne!(digest(&derived), digest(&raw));
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
        .hash_as(Scheme::Raw, 0, &marker, 3, &chain[1].hash)
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

fn ring(current: &[u8; 32], previous: &[&[u8; 32]]) -> ChainSeal {
    let keys = AuditKeys::new(current, previous.iter().map(|k| &k[..])).unwrap();
    ChainSeal::keyed(&keys).unwrap()
}

/// What `serve` does at start-up: the chain switched to `seal`'s current key at its marker.
fn switch(chain: &mut Vec<ChainedEvent>, seal: &ChainSeal) {
    let (seq, hash) = chain_end(chain);
    let marker = seal
        .switch_marker(seq, &hash, OffsetDateTime::UNIX_EPOCH)
        .expect("a known key")
        .expect("a switch");
    let links = seal.link(seq, hash, &[&marker]).expect("a known key");
    chain.extend(links.into_iter().map(|l| ChainedEvent {
        seq: l.seq,
        event: l.event.into_owned(),
        prev_hash: l.prev_hash,
        hash: l.hash,
    }));
}

fn under(key: &[u8]) -> String {
    format!("{NAMED}{}:", KeyId::of(key))
}

const A: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const B: &[u8; 32] = b"a second audit key, 32 bytes lon";

#[test]
fn a_rotation_of_the_audit_key_is_marked_and_the_chain_verifies_across_it() {
    // Links of earlier versions under A, which do not name their key; an upgrade alone keeps
    // writing them, so that instances not yet upgraded can continue the chain.
    let mut chain = Vec::new();
    extend_as(&mut chain, Scheme::Derived, 2);
    test_chains::extend(&mut chain, &ring(A, &[]), 1);
    assert!(chain[2].hash.starts_with(DERIVED), "{}", chain[2].hash);
    // The rotation's first step: B known, A still current. Links begin to name A.
    switch(&mut chain, &ring(A, &[B]));
    assert_eq!(chain[3].event.kind, AuditKind::KeyRotated);
    assert_eq!(chain[3].event.details["keyId"], KeyId::of(A).as_str());
    assert!(chain[3].hash.starts_with(&under(A)));
    // The second: B current, A previous.
    let rotated = ring(B, &[A]);
    switch(&mut chain, &rotated);
    test_chains::extend(&mut chain, &rotated, 2);
    assert_eq!(chain.len(), 7);
    let marker = &chain[4].event;
    assert_eq!(marker.kind, AuditKind::KeyRotated);
    assert_eq!(marker.details["keyId"], KeyId::of(B).as_str());
    assert_eq!(marker.details["previousKeyId"], KeyId::of(A).as_str());
    assert_eq!(marker.details["previousKeyThroughSeq"], 4);
    assert!(chain[4..].iter().all(|e| e.hash.starts_with(&under(B))));
    assert_eq!(verify_from(&rotated, &chain, 0), Ok(7));
    assert_eq!(verify_from(&rotated, &chain, 3), Ok(4), "from a checkpoint");

    // Without the previous key, the links it sealed cannot be checked, and say which key
    // (or, for links that do not name theirs, that none of the keys matches).
    let b_alone = ring(B, &[]);
    match verify_from(&b_alone, &chain, 3) {
        Err(ChainBreak::UnknownKey { seq: 4, key_id, .. }) => {
            assert_eq!(key_id, KeyId::of(A).as_str())
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verify_from(&b_alone, &chain, 0),
        Err(ChainBreak::NoKeyMatches { seq: 1, .. })
    ));
    assert!(matches!(
        verify_from(&ring(A, &[]), &chain, 0),
        Err(ChainBreak::UnknownKey { seq: 5, .. })
    ));
}

#[test]
fn a_holder_of_a_retired_key_can_neither_rotate_back_nor_switch_keys_unmarked() {
    let rotated = ring(B, &[A]);
    let mut chain = Vec::new();
    test_chains::extend(&mut chain, &ring(A, &[B]), 2);
    switch(&mut chain, &rotated);
    test_chains::extend(&mut chain, &rotated, 2);
    assert_eq!(verify_from(&rotated, &chain, 0), Ok(5));

    // The attack: whoever kept the retired key A appends a marker of their own, "rotating"
    // the chain back to A, and then events of their choosing. Caught however late checking
    // starts (retention may have purged the real rotation).
    let mut back = chain.clone();
    let (seq, prev) = chain_end(&back);
    let forged = AuditEvent::new(
        AuditKind::KeyRotated,
        Outcome::Success,
        OffsetDateTime::UNIX_EPOCH,
    );
    let hash = ring(A, &[B]).hash(&forged, seq + 1, &prev);
    back.push(ChainedEvent {
        seq: seq + 1,
        event: forged,
        prev_hash: prev,
        hash,
    });
    for from in [0, 4] {
        assert!(matches!(
            verify_from(&rotated, &back, from),
            Err(ChainBreak::RetiredKey { seq: 6, .. })
        ));
    }

    // A link under another key without the marker.
    let mut unmarked = Vec::new();
    test_chains::extend(&mut unmarked, &ring(A, &[B]), 2);
    let (seq, prev) = chain_end(&unmarked);
    let e = event();
    let hash = rotated.hash(&e, seq + 1, &prev);
    unmarked.push(ChainedEvent {
        seq: seq + 1,
        event: e,
        prev_hash: prev,
        hash,
    });
    assert!(matches!(
        verify_from(&rotated, &unmarked, 0),
        Err(ChainBreak::UnmarkedRotation { seq: 3, .. })
    ));

    // A link of the earlier, unnamed scheme after named ones.
    let mut older = chain;
    extend_as(&mut older, Scheme::Derived, 1);
    assert!(matches!(
        verify_from(&rotated, &older, 0),
        Err(ChainBreak::OlderScheme { seq: 6, .. })
    ));
}

#[test]
fn during_a_rolling_rotation_instances_not_yet_restarted_keep_the_chain_under_the_new_key() {
    let mut chain = Vec::new();
    test_chains::extend(&mut chain, &ring(A, &[B]), 1);
    // The first instance restarted with B (A previous) switches the chain to B.
    switch(&mut chain, &ring(B, &[A]));
    // One not yet restarted (A current, B known since the rotation's first step) continues
    // under B rather than rotate the chain back to A; so does a command run meanwhile.
    test_chains::extend(&mut chain, &ring(A, &[B]), 2);
    assert_eq!(chain.len(), 4, "no marker");
    assert!(chain[1..].iter().all(|e| e.hash.starts_with(&under(B))));
    assert_eq!(verify_from(&ring(B, &[A]), &chain, 0), Ok(4));
    // One that does not know B at all refuses to write, rather than rotate the chain back.
    let (seq, hash) = chain_end(&chain);
    let e = event();
    match ring(A, &[]).link(seq, hash, &[&e]) {
        Err(UnknownChainKey(id)) => assert_eq!(id, KeyId::of(B).as_str()),
        Ok(links) => panic!("linked under {}", links[0].hash),
    }
}
