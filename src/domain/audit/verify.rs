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
    /// A switch to another audit key without its marker.
    #[error(
        "event seq {seq} (id {id}) is sealed under another audit key than the event before it, and is not the audit.key_rotated event that marks a rotation"
    )]
    UnmarkedRotation {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// A link under an audit key the verifier was not given.
    #[error(
        "event seq {seq} (id {id}) is sealed under the audit key {key_id}, which is not configured: verify with it in FINHUB_AUDIT_PREVIOUS_KEYS_FILE"
    )]
    UnknownKey {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
        /// The id of the key the link names.
        key_id: String,
    },
    /// A switch to an audit key older than the one before it (listed after it).
    #[error(
        "event seq {seq} (id {id}) switches the chain to the audit key {key_id}, which is older than the key before it (configured after it): a rotation back to a retired key, written by something else than this service"
    )]
    RetiredKey {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
        /// The id of the key the link names.
        key_id: String,
    },
    /// A link that does not name its key and is sealed under none of the configured keys.
    #[error(
        "event seq {seq} (id {id}) is sealed under none of the configured audit keys: altered, or sealed under a key no longer configured (links before key ids were recorded do not name theirs; add it to FINHUB_AUDIT_PREVIOUS_KEYS_FILE)"
    )]
    NoKeyMatches {
        /// The event's place in the chain.
        seq: i64,
        /// The event's id.
        id: String,
    },
    /// A link in a scheme older than the link before it.
    #[error(
        "event seq {seq} (id {id}) is sealed the way earlier versions did, after links sealed the way this one does: written by something else than this service"
    )]
    OlderScheme {
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
/// under the derived key, which begin with `audit.chain_key_derived`; and links under one audit
/// key come only before those under the next, which begin with `audit.key_rotated`, sealed under
/// the next key. A link names its key (`hmac3:<key id>:`); links of earlier versions that do not
/// are checked under whichever configured key sealed the first of them, and every later one
/// must be sealed under the same. Each link's prefix names its scheme, so checking can start at
/// any checkpoint.
#[derive(Debug)]
pub struct ChainVerifier {
    seal: ChainSeal,
    last_seq: i64,
    last_hash: String,
    checked: u64,
    /// With a key: the first plain link, while no keyed link has followed it.
    plain_since: Option<(i64, String)>,
    /// The audit key that sealed the links that do not name theirs, once one is checked.
    unnamed_key: Option<usize>,
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
            unnamed_key: None,
        }
    }

    /// Checks the next event in order; the first break is returned, and checking stops there.
    pub fn check(&mut self, e: &ChainedEvent) -> Result<(), ChainBreak> {
        let at = || (e.seq, e.event.id.clone());
        if e.seq != self.last_seq + 1 || e.prev_hash != self.last_hash {
            let (seq, id) = at();
            return Err(ChainBreak::Unlinked { seq, id });
        }
        let scheme = scheme_of(&e.hash);
        self.check_order(e, scheme)?;
        let matches = |key: usize| {
            self.seal
                .hash_as(scheme, key, &e.event, e.seq, &e.prev_hash)
                .is_some_and(|expected| expected == e.hash)
        };
        let sealed = match scheme {
            Scheme::Plain | Scheme::Named(_) => matches(0),
            // Links that do not name their key: the key that sealed the first of them seals
            // every other.
            Scheme::Raw | Scheme::Derived => match self.unnamed_key {
                Some(key) => matches(key),
                None => {
                    self.unnamed_key = (0..self.seal.key_count()).find(|&key| matches(key));
                    if self.unnamed_key.is_none() {
                        let (seq, id) = at();
                        return Err(ChainBreak::NoKeyMatches { seq, id });
                    }
                    true
                }
            },
        };
        if !sealed {
            let (seq, id) = at();
            return Err(ChainBreak::Altered { seq, id });
        }
        self.last_seq = e.seq;
        self.last_hash.clone_from(&e.hash);
        self.checked += 1;
        Ok(())
    }

    /// Whether a link in `scheme` may follow the one before it, and its key is known.
    fn check_order(&mut self, e: &ChainedEvent, scheme: Scheme<'_>) -> Result<(), ChainBreak> {
        let (seq, id) = (e.seq, e.event.id.clone());
        let before = scheme_of(&self.last_hash);
        if !self.seal.is_keyed() {
            return match scheme {
                Scheme::Plain => Ok(()),
                _ => Err(ChainBreak::NeedsKey { seq, id }),
            };
        }
        let marked = |kind: AuditKind| e.event.kind == kind;
        match scheme {
            // Plain links are the prefix from before the key, never after a keyed one.
            Scheme::Plain if before != Scheme::Plain => Err(ChainBreak::Unsealed { seq, id }),
            Scheme::Plain => {
                if self.plain_since.is_none() {
                    self.plain_since = Some((seq, id));
                }
                Ok(())
            }
            _ => {
                if let Some((seq, id)) = self.plain_since.take()
                    && !marked(AuditKind::SealedWithKey)
                {
                    return Err(ChainBreak::Unsealed { seq, id });
                }
                if let Scheme::Named(key_id) = scheme {
                    let Some(key) = self.seal.key_index(key_id) else {
                        let key_id = key_id.to_owned();
                        return Err(ChainBreak::UnknownKey { seq, id, key_id });
                    };
                    // Keys are configured newest first, so a switch only ever goes to a key
                    // listed before the one it leaves: a holder of a retired key cannot rotate
                    // the chain back to it, whatever checkpoint checking starts from.
                    let left = match before {
                        Scheme::Named(was) => self.seal.key_index(was),
                        Scheme::Raw | Scheme::Derived => self.unnamed_key,
                        Scheme::Plain => None,
                    };
                    if left.is_some_and(|left| key > left) {
                        let key_id = key_id.to_owned();
                        return Err(ChainBreak::RetiredKey { seq, id, key_id });
                    }
                }
                if scheme.age() < before.age() {
                    return Err(if scheme == Scheme::Raw {
                        ChainBreak::RawAfterDerived { seq, id }
                    } else {
                        ChainBreak::OlderScheme { seq, id }
                    });
                }
                match (before, scheme) {
                    (Scheme::Raw, Scheme::Derived | Scheme::Named(_))
                        if !marked(AuditKind::ChainKeyDerived) =>
                    {
                        Err(ChainBreak::UnmarkedRekey { seq, id })
                    }
                    (Scheme::Derived, Scheme::Named(_)) if !marked(AuditKind::KeyRotated) => {
                        Err(ChainBreak::UnmarkedRotation { seq, id })
                    }
                    (Scheme::Named(was), Scheme::Named(is))
                        if was != is && !marked(AuditKind::KeyRotated) =>
                    {
                        Err(ChainBreak::UnmarkedRotation { seq, id })
                    }
                    _ => Ok(()),
                }
            }
        }
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
