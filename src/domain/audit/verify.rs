//! Checking a stored chain, event by event.

use super::chain::{ChainSeal, Scheme, scheme_of};
use super::{AuditKind, ChainedEvent};

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An event changed after it was chained.
    #[error("event seq {seq} (id {id}): its hash does not match its contents")]
    Altered {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// An event that does not follow the one before it.
    #[error(
        "event seq {seq} (id {id}): it does not follow the event before it (deleted or reordered events)"
    )]
    Unlinked {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// Events missing from the end.
    #[error(
        "the chain ends at seq {found} but the recorded head is seq {expected}: events were removed from the end"
    )]
    Truncated {
        /// The head's seq, as recorded.
        expected: i64,
        /// The last seq the chain holds.
        found: i64,
    },
    /// Events missing from the start with no purge to account for them.
    #[error(
        "the chain starts after seq {checkpoint}, but no audit.purged event accounts for removing events up to it"
    )]
    UnaccountedCheckpoint {
        /// The seq the chain was purged up to.
        checkpoint: i64,
    },
    /// A keyed link, checked without the key.
    #[error("event seq {seq} (id {id}) is sealed with a key: verify with FINHUB_AUDIT_KEY set")]
    NeedsKey {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// A plain link where only keyed ones may be.
    #[error(
        "event seq {seq} (id {id}) is not sealed with the audit key, and no audit.sealed_with_key event follows it: written by something else than this service, or `serve` has not yet sealed a chain begun without a key"
    )]
    Unsealed {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// A switch to the derived key without its marker.
    #[error(
        "event seq {seq} (id {id}) is sealed with the chain's derived key right after links sealed with the audit key itself, and is not the audit.chain_key_derived event that marks that switch"
    )]
    UnmarkedRekey {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// A link under the audit key itself after the switch to the derived key.
    #[error(
        "event seq {seq} (id {id}) is sealed with the audit key itself after links sealed with the chain's derived key: written by something else than this service"
    )]
    RawAfterDerived {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
}

/// Whether the link `hash` was sealed with a key (the audit key itself, or the chain's key
/// derived from it).
pub fn is_keyed_link(hash: &str) -> bool {
    scheme_of(hash) != Scheme::Plain
}

/// Checks events in order, one at a time, so that a chain of any length verifies in constant
/// memory.
///
/// With a key, every link must be keyed, except a plain prefix from before the key was set:
/// the first keyed link after plain ones must be an `audit.sealed_with_key` event, and no plain
/// link may follow a keyed one. The marker's link seals the plain prefix's last hash, so the
/// prefix cannot be rewritten, and a chain that is plain to its end fails. Likewise links under
/// the audit key itself (written before the chain's key was derived) come only before those
/// under the derived key, which begin with `audit.chain_key_derived`. Each link's prefix names
/// its scheme, so checking can start at any checkpoint.
#[derive(Debug)]
pub struct ChainVerifier {
    seal: ChainSeal,
    last_seq: i64,
    last_hash: String,
    checked: u64,
    /// With a key: the first plain link, while no keyed link has followed it.
    plain_since: Option<(i64, String)>,
}

impl ChainVerifier {
    /// Starts after a trusted point (`GENESIS_HASH` at seq 0 for the whole chain).
    pub fn starting_after(seal: ChainSeal, seq: i64, hash: &str) -> Self {
        Self {
            seal,
            last_seq: seq,
            last_hash: hash.to_owned(),
            checked: 0,
            plain_since: None,
        }
    }

    /// Checks the next event in order; the first break is returned, and checking stops there.
    pub fn check(&mut self, e: &ChainedEvent) -> Result<(), ChainBreak> {
        let unsealed = || ChainBreak::Unsealed {
            seq: e.seq,
            id: e.event.id.clone(),
        };
        if e.seq != self.last_seq + 1 || e.prev_hash != self.last_hash {
            return Err(ChainBreak::Unlinked {
                seq: e.seq,
                id: e.event.id.clone(),
            });
        }
        let scheme = scheme_of(&e.hash);
        let before = scheme_of(&self.last_hash);
        match (scheme, self.seal.is_keyed()) {
            (Scheme::Raw | Scheme::Derived, false) => {
                return Err(ChainBreak::NeedsKey {
                    seq: e.seq,
                    id: e.event.id.clone(),
                });
            }
            (Scheme::Plain, true) => {
                // Plain links are the prefix from before the key, never after a keyed one.
                if before != Scheme::Plain {
                    return Err(unsealed());
                }
                if self.plain_since.is_none() {
                    self.plain_since = Some((e.seq, e.event.id.clone()));
                }
            }
            (Scheme::Raw | Scheme::Derived, true) => {
                if let Some((seq, id)) = self.plain_since.take()
                    && e.event.kind != AuditKind::SealedWithKey
                {
                    return Err(ChainBreak::Unsealed { seq, id });
                }
                // The audit key itself seals only links older than the derived key's.
                if scheme == Scheme::Raw && before == Scheme::Derived {
                    return Err(ChainBreak::RawAfterDerived {
                        seq: e.seq,
                        id: e.event.id.clone(),
                    });
                }
                if scheme == Scheme::Derived
                    && before == Scheme::Raw
                    && e.event.kind != AuditKind::ChainKeyDerived
                {
                    return Err(ChainBreak::UnmarkedRekey {
                        seq: e.seq,
                        id: e.event.id.clone(),
                    });
                }
            }
            (Scheme::Plain, false) => {}
        }
        let expected = self.seal.hash_as(scheme, &e.event, e.seq, &e.prev_hash);
        if expected.as_deref() != Some(e.hash.as_str()) {
            return Err(ChainBreak::Altered {
                seq: e.seq,
                id: e.event.id.clone(),
            });
        }
        self.last_seq = e.seq;
        self.last_hash.clone_from(&e.hash);
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the chain with the head the store recorded.
    pub fn finish(self, head_seq: i64, head_hash: &str) -> Result<u64, ChainBreak> {
        if self.last_seq != head_seq || self.last_hash != head_hash {
            return Err(ChainBreak::Truncated {
                expected: head_seq,
                found: self.last_seq,
            });
        }
        if let Some((seq, id)) = self.plain_since {
            return Err(ChainBreak::Unsealed { seq, id });
        }
        Ok(self.checked)
    }
}
