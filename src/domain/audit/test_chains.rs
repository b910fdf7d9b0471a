//! Chains built by the tests of `mod.rs` and `chain.rs`.

use time::OffsetDateTime;

use super::{
    AuditEvent, AuditKind, ChainBreak, ChainSeal, ChainVerifier, ChainedEvent, GENESIS_HASH,
    Outcome,
};

/// The event the chain tests link: a failed login at the epoch.
pub(super) fn failed_login() -> AuditEvent {
    AuditEvent::new(
        AuditKind::LoginFailed,
        Outcome::Failure,
        OffsetDateTime::UNIX_EPOCH,
    )
}

/// The seq and hash that the next link of `chain` follows.
pub(super) fn chain_end(chain: &[ChainedEvent]) -> (i64, String) {
    chain
        .last()
        .map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()))
}

/// Appends `n` failed logins to `chain` as `seal` links them.
pub(super) fn extend(chain: &mut Vec<ChainedEvent>, seal: &ChainSeal, n: usize) {
    let events: Vec<AuditEvent> = (0..n).map(|_| failed_login()).collect();
    let refs: Vec<&AuditEvent> = events.iter().collect();
    let (seq, hash) = chain_end(chain);
    chain.extend(
        seal.link(seq, hash, &refs)
            .expect("a chain under a key the seal knows")
            .into_iter()
            .map(|l| ChainedEvent {
                seq: l.seq,
                event: l.event.into_owned(),
                prev_hash: l.prev_hash,
                hash: l.hash,
            }),
    );
}

/// Verifies `chain` under `seal` from its `from`th link (a retention checkpoint just before it)
/// to its last.
pub(super) fn verify_from(
    seal: &ChainSeal,
    chain: &[ChainedEvent],
    from: usize,
) -> Result<u64, ChainBreak> {
    let (seq, hash) = chain_end(&chain[..from]);
    let mut v = ChainVerifier::starting_after(seal.clone(), seq, &hash);
    for e in &chain[from..] {
        v.check(e)?;
    }
    let head = chain.last().expect("a chain to verify");
    v.finish(head.seq, &head.hash)
}
