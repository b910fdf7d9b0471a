//! Sealing events into the chain and verifying it: each link is SHA-256 (or HMAC-SHA256 under
//! a key derived from the audit key) of the previous link, the sequence number and the event's
//! canonical form.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditKind, Outcome};
use crate::domain::keys::{self, KeyError};

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How links of the chain are sealed. Unkeyed, a link is a SHA-256, which detects edits by
/// anyone who does not recompute every later link. Keyed, it is an HMAC-SHA256 under a key
/// derived from the audit key (kept outside the database, `FINHUB_AUDIT_KEY`), so even a
/// database writer cannot forge a link. Chains linked by earlier versions under the audit key
/// itself still verify; appending to one first marks the switch (`audit.chain_key_derived`).
#[derive(Clone)]
pub struct ChainSeal {
    keys: Option<Arc<SealKeys>>,
}

/// The keys of a keyed seal, each ready to clone for a link: sealing cannot fail.
struct SealKeys {
    /// The audit key itself, from which the anchors' key is derived.
    audit: SecretSlice<u8>,
    /// HMAC under the audit key itself: links written before the chain's key was derived.
    raw: Hmac<Sha256>,
    /// HMAC under the chain's purpose key: every link written now.
    derived: Hmac<Sha256>,
}

impl fmt::Debug for ChainSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.keys.is_some() {
            "ChainSeal(keyed)"
        } else {
            "ChainSeal(unkeyed)"
        })
    }
}

/// Marks the links sealed under the audit key itself (before the chain's key was derived).
const KEYED: &str = "hmac:";
/// Marks the links sealed under the chain's key derived from the audit key.
const DERIVED: &str = "hmac2:";
/// The purpose the chain's key is derived for (`domain/keys.rs`).
const CHAIN_KEY_PURPOSE: &[u8] = b"finhub audit chain v1";

/// How a stored link was sealed, read from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Plain,
    /// Under the audit key itself.
    Raw,
    /// Under the chain's derived key.
    Derived,
}

pub(super) fn scheme_of(hash: &str) -> Scheme {
    if hash.starts_with(DERIVED) {
        Scheme::Derived
    } else if hash.starts_with(KEYED) {
        Scheme::Raw
    } else {
        Scheme::Plain
    }
}

impl ChainSeal {
    /// Plain SHA-256 links: a chain begun before an audit key was set.
    pub fn unkeyed() -> Self {
        Self { keys: None }
    }

    /// Keyed by `audit_key`: new links under the chain's key derived from it. A key that cannot
    /// be derived is an error, never an unkeyed chain.
    pub fn keyed(audit_key: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            keys: Some(Arc::new(SealKeys {
                audit: SecretSlice::from(audit_key.to_vec()),
                raw: keys::raw_mac(audit_key)?,
                derived: keys::purpose_mac(audit_key, CHAIN_KEY_PURPOSE)?,
            })),
        })
    }

    /// Whether new links are sealed with a key.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// The audit key, for sealing what belongs with the chain (its anchors).
    pub(super) fn key_bytes(&self) -> Option<Vec<u8>> {
        self.keys.as_ref().map(|k| k.audit.expose_secret().to_vec())
    }

    /// The link of `event` stored at `seq` after the link `prev_hash`, as this seal writes it.
    pub fn hash(&self, event: &AuditEvent, seq: i64, prev_hash: &str) -> String {
        let scheme = if self.is_keyed() {
            Scheme::Derived
        } else {
            Scheme::Plain
        };
        self.hash_as(scheme, event, seq, prev_hash)
            .unwrap_or_default()
    }

    /// The link in `scheme`; `None` for a keyed scheme without a key.
    pub(super) fn hash_as(
        &self,
        scheme: Scheme,
        event: &AuditEvent,
        seq: i64,
        prev_hash: &str,
    ) -> Option<String> {
        let seq = seq.to_string();
        let parts: [&[u8]; 5] = [
            prev_hash.as_bytes(),
            b"\n",
            seq.as_bytes(),
            b"\n",
            &event.canonical(),
        ];
        let keyed = |mac: &Hmac<Sha256>, prefix: &str| {
            let mut mac = mac.clone();
            parts.iter().for_each(|p| mac.update(p));
            format!("{prefix}{}", hex::encode(mac.finalize().into_bytes()))
        };
        match scheme {
            Scheme::Plain => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                Some(hex::encode(h.finalize()))
            }
            Scheme::Raw => self.keys.as_ref().map(|k| keyed(&k.raw, KEYED)),
            Scheme::Derived => self.keys.as_ref().map(|k| keyed(&k.derived, DERIVED)),
        }
    }
}

/// One event's place in the chain, ready to store.
#[derive(Debug)]
pub struct Link<'a> {
    /// The event, borrowed unless the seal added it (a marker).
    pub event: Cow<'a, AuditEvent>,
    /// Its place in the chain.
    pub seq: i64,
    /// The hash of the link before it.
    pub prev_hash: String,
    /// This link's hash (or keyed MAC).
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
        // A chain begun without a key, or linked under the audit key itself, is switched at a
        // marker, so that the verifier knows where the earlier links end.
        let marker = match (self.is_keyed() && seq > 0, scheme_of(&hash)) {
            (true, Scheme::Plain) => Some((AuditKind::SealedWithKey, "plainThroughSeq")),
            (true, Scheme::Raw) => Some((AuditKind::ChainKeyDerived, "rawKeyThroughSeq")),
            _ => None,
        };
        // A caller that seals the chain on purpose (`serve` at start-up) passes the marker
        // itself: it is not doubled.
        let marker = events
            .first()
            .zip(marker)
            .filter(|(first, (kind, _))| first.kind != *kind)
            .map(|(first, (kind, through))| {
                AuditEvent::new(kind, Outcome::Success, first.at).detail(through, seq)
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

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
