//! Sealing events into the chain and verifying it: each link is SHA-256 (or HMAC-SHA256 under
//! the audit key) of the previous link, the sequence number and the event's canonical form.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditKind, ChainedEvent, Outcome};

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How links of the chain are sealed. Unkeyed, a link is a SHA-256, which detects edits by
/// anyone who does not recompute every later link. Keyed, it is an HMAC-SHA256 under a key kept
/// outside the database (`FINHUB_AUDIT_KEY`), so even a database writer cannot forge a link.
#[derive(Clone)]
pub struct ChainSeal {
    key: Option<Arc<SecretSlice<u8>>>,
}

impl fmt::Debug for ChainSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.key.is_some() {
            "ChainSeal(keyed)"
        } else {
            "ChainSeal(unkeyed)"
        })
    }
}

/// Marks the links sealed with a key.
const KEYED: &str = "hmac:";

impl ChainSeal {
    pub fn unkeyed() -> Self {
        Self { key: None }
    }

    pub fn keyed(key: &[u8]) -> Self {
        Self {
            key: Some(Arc::new(SecretSlice::from(key.to_vec()))),
        }
    }

    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The key, for sealing what belongs with the chain (its anchors).
    pub(super) fn key_bytes(&self) -> Option<Vec<u8>> {
        self.key.as_ref().map(|k| k.expose_secret().to_vec())
    }

    /// The link of `event` stored at `seq` after the link `prev_hash`.
    pub fn hash(&self, event: &AuditEvent, seq: i64, prev_hash: &str) -> String {
        let seq = seq.to_string();
        let parts: [&[u8]; 5] = [
            prev_hash.as_bytes(),
            b"\n",
            seq.as_bytes(),
            b"\n",
            &event.canonical(),
        ];
        match &self.key {
            None => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                hex::encode(h.finalize())
            }
            // HMAC takes keys of any length; were that ever refused, an empty link would fail
            // every verification rather than pass unsealed.
            Some(key) => match Hmac::<Sha256>::new_from_slice(key.expose_secret()) {
                Ok(mut mac) => {
                    parts.iter().for_each(|p| mac.update(p));
                    format!("{KEYED}{}", hex::encode(mac.finalize().into_bytes()))
                }
                Err(_) => String::new(),
            },
        }
    }
}

/// One event's place in the chain, ready to store.
#[derive(Debug)]
pub struct Link<'a> {
    pub event: Cow<'a, AuditEvent>,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

impl ChainSeal {
    /// Links `events` after the head `(seq, hash)`. A keyed seal on a chain that is plain so far
    /// (begun before the key was set) first appends `audit.sealed_with_key`: the verifier
    /// accepts plain links only before that marker.
    pub fn link<'a>(
        &self,
        mut seq: i64,
        mut hash: String,
        events: &[&'a AuditEvent],
    ) -> Vec<Link<'a>> {
        let switching = self.is_keyed() && seq > 0 && !is_keyed_link(&hash);
        let marker = events.first().filter(|_| switching).map(|first| {
            AuditEvent::new(AuditKind::SealedWithKey, Outcome::Success, first.at)
                .detail("plainThroughSeq", seq)
        });
        let events = marker
            .into_iter()
            .map(Cow::Owned)
            .chain(events.iter().map(|e| Cow::Borrowed(*e)));
        events
            .map(|event| {
                let prev_hash = std::mem::take(&mut hash);
                seq += 1;
                hash = self.hash(&event, seq, &prev_hash);
                Link {
                    event,
                    seq,
                    prev_hash,
                    hash: hash.clone(),
                }
            })
            .collect()
    }
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event seq {seq} (id {id}): its hash does not match its contents")]
    Altered { seq: i64, id: String },
    #[error(
        "event seq {seq} (id {id}): it does not follow the event before it (deleted or reordered events)"
    )]
    Unlinked { seq: i64, id: String },
    #[error(
        "the chain ends at seq {found} but the recorded head is seq {expected}: events were removed from the end"
    )]
    Truncated { expected: i64, found: i64 },
    #[error(
        "the chain starts after seq {checkpoint}, but no audit.purged event accounts for removing events up to it"
    )]
    UnaccountedCheckpoint { checkpoint: i64 },
    #[error("event seq {seq} (id {id}) is sealed with a key: verify with FINHUB_AUDIT_KEY set")]
    NeedsKey { seq: i64, id: String },
    #[error(
        "event seq {seq} (id {id}) is not sealed with the audit key, and no audit.sealed_with_key event follows it: written by something else than this service, or `serve` has not yet sealed a chain begun without a key"
    )]
    Unsealed { seq: i64, id: String },
}

/// Whether the link `hash` was sealed with a key.
pub fn is_keyed_link(hash: &str) -> bool {
    hash.starts_with(KEYED)
}

/// Checks events in order, one at a time, so that a chain of any length verifies in constant
/// memory.
///
/// With a key, every link must be keyed, except a plain prefix from before the key was set:
/// the first keyed link after plain ones must be an `audit.sealed_with_key` event, and no plain
/// link may follow a keyed one. The marker's link seals the plain prefix's last hash, so the
/// prefix cannot be rewritten, and a chain that is plain to its end fails.
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
        let keyed = is_keyed_link(&e.hash);
        let expected = match (keyed, self.seal.is_keyed()) {
            (true, false) => {
                return Err(ChainBreak::NeedsKey {
                    seq: e.seq,
                    id: e.event.id.clone(),
                });
            }
            (false, true) => {
                // Plain links are the prefix from before the key, never after a keyed one.
                if is_keyed_link(&self.last_hash) {
                    return Err(unsealed());
                }
                if self.plain_since.is_none() {
                    self.plain_since = Some((e.seq, e.event.id.clone()));
                }
                ChainSeal::unkeyed().hash(&e.event, e.seq, &e.prev_hash)
            }
            (true, true) => {
                if let Some((seq, id)) = self.plain_since.take()
                    && e.event.kind != AuditKind::SealedWithKey
                {
                    return Err(ChainBreak::Unsealed { seq, id });
                }
                self.seal.hash(&e.event, e.seq, &e.prev_hash)
            }
            (false, false) => self.seal.hash(&e.event, e.seq, &e.prev_hash),
        };
        if expected != e.hash {
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
