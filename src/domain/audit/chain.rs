//! Sealing events into the chain and verifying it: each link is SHA-256 (or HMAC-SHA256 under
//! the audit key) of the previous link, the sequence number and the event's canonical form.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::{AuditEvent, ChainedEvent};

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
                hex(&h.finalize())
            }
            // HMAC takes keys of any length; were that ever refused, an empty link would fail
            // every verification rather than pass unsealed.
            Some(key) => match Hmac::<Sha256>::new_from_slice(key.expose_secret()) {
                Ok(mut mac) => {
                    parts.iter().for_each(|p| mac.update(p));
                    format!("{KEYED}{}", hex(&mac.finalize().into_bytes()))
                }
                Err(_) => String::new(),
            },
        }
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
        "event seq {seq} (id {id}) is not sealed with the audit key: written by something else than this service"
    )]
    Unsealed { seq: i64, id: String },
}

/// Checks events in order, one at a time, so that a chain of any length verifies in constant
/// memory.
#[derive(Debug)]
pub struct ChainVerifier {
    seal: ChainSeal,
    last_seq: i64,
    last_hash: String,
    checked: u64,
}

impl ChainVerifier {
    /// Starts after a trusted point (`GENESIS_HASH` at seq 0 for the whole chain).
    pub fn starting_after(seal: ChainSeal, seq: i64, hash: &str) -> Self {
        Self {
            seal,
            last_seq: seq,
            last_hash: hash.to_owned(),
            checked: 0,
        }
    }

    pub fn check(&mut self, e: &ChainedEvent) -> Result<(), ChainBreak> {
        if e.seq != self.last_seq + 1 || e.prev_hash != self.last_hash {
            return Err(ChainBreak::Unlinked {
                seq: e.seq,
                id: e.event.id.clone(),
            });
        }
        let keyed = e.hash.starts_with(KEYED);
        if keyed && !self.seal.is_keyed() {
            return Err(ChainBreak::NeedsKey {
                seq: e.seq,
                id: e.event.id.clone(),
            });
        }
        if !keyed && self.seal.is_keyed() {
            return Err(ChainBreak::Unsealed {
                seq: e.seq,
                id: e.event.id.clone(),
            });
        }
        if self.seal.hash(&e.event, e.seq, &e.prev_hash) != e.hash {
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
        Ok(self.checked)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
