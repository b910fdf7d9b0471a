//! Sealing events into the chain and verifying it: each link is SHA-256 (or HMAC-SHA256 under
//! a key derived from the audit key) of the previous link, the sequence number and the event's
//! canonical form.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac as _};
use sha2::{Digest, Sha256};

use time::OffsetDateTime;

use super::{AuditEvent, AuditKind, Outcome};
use crate::domain::keys::{self, AuditKeys, KeyError, KeyId};

/// The hash before the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How links of the chain are sealed. Unkeyed, a link is a SHA-256, which detects edits by
/// anyone who does not recompute every later link. Keyed, it is an HMAC-SHA256 under a key
/// derived from the audit key (kept outside the database, `FINHUB_AUDIT_KEY`), so even a
/// database writer cannot forge a link. Each link names the audit key it is sealed under, so
/// that after a rotation the links before it still verify under the previous key. Chains
/// linked by earlier versions (under the audit key itself, or under the derived key without
/// naming it) still verify; appending to one first marks the switch.
#[derive(Clone)]
pub struct ChainSeal {
    keys: Option<Arc<SealKeys>>,
}

/// The keys of a keyed seal, each ready to clone for a link: sealing cannot fail.
struct SealKeys {
    /// The audit keys, from which the anchors' keys are derived.
    audit: AuditKeys,
    /// Per audit key, the current one first.
    chain: Vec<ChainKeys>,
}

struct ChainKeys {
    id: KeyId,
    /// HMAC under the audit key itself: links written before the chain's key was derived.
    raw: Hmac<Sha256>,
    /// HMAC under the chain's purpose key.
    derived: Hmac<Sha256>,
}

impl fmt::Debug for ChainSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.keys {
            Some(keys) => write!(f, "ChainSeal(keyed: {:?})", keys.audit),
            None => f.write_str("ChainSeal(unkeyed)"),
        }
    }
}

/// Marks the links sealed under the audit key itself (before the chain's key was derived).
const KEYED: &str = "hmac:";
/// Marks the links sealed under the chain's derived key, before links named their key.
const DERIVED: &str = "hmac2:";
/// Marks the links sealed under the chain's key derived from the audit key they name:
/// `hmac3:<key id>:<hex>`.
const NAMED: &str = "hmac3:";
/// How new links are written: `hmac2:` (the key not named), or `hmac3:` naming the key at a
/// position of the seal's keys.
#[derive(Debug, Clone, Copy)]
enum Written {
    Unnamed,
    Named(usize),
}

/// The events that switch the chain to the current key.
const MARKERS: [AuditKind; 3] = [
    AuditKind::SealedWithKey,
    AuditKind::ChainKeyDerived,
    AuditKind::KeyRotated,
];
/// The purpose the chain's key is derived for (`domain/keys.rs`).
const CHAIN_KEY_PURPOSE: &[u8] = b"finhub audit chain v1";

/// How a stored link was sealed, read from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme<'a> {
    Plain,
    /// Under the audit key itself.
    Raw,
    /// Under the chain's derived key, its audit key not named.
    Derived,
    /// Under the chain's key derived from the audit key it names.
    Named(&'a str),
}

impl Scheme<'_> {
    /// Schemes in the order versions introduced them: a chain never goes back to an older one.
    pub(super) fn age(self) -> u8 {
        match self {
            Self::Plain => 0,
            Self::Raw => 1,
            Self::Derived => 2,
            Self::Named(_) => 3,
        }
    }
}

pub(super) fn scheme_of(hash: &str) -> Scheme<'_> {
    if let Some(named) = hash.strip_prefix(NAMED) {
        Scheme::Named(named.split_once(':').map_or("", |(id, _)| id))
    } else if hash.starts_with(DERIVED) {
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

    /// Keyed by the audit keys: new links under the chain's key derived from the current one.
    /// A key that cannot be derived is an error, never an unkeyed chain.
    pub fn keyed(audit: &AuditKeys) -> Result<Self, KeyError> {
        let chain = audit
            .secrets()
            .map(|(id, key)| {
                Ok(ChainKeys {
                    id: id.clone(),
                    raw: keys::raw_mac(key)?,
                    derived: keys::purpose_mac(key, CHAIN_KEY_PURPOSE)?,
                })
            })
            .collect::<Result<_, KeyError>>()?;
        Ok(Self {
            keys: Some(Arc::new(SealKeys {
                audit: audit.clone(),
                chain,
            })),
        })
    }

    /// Whether new links are sealed with a key.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// The audit keys, for sealing what belongs with the chain (its anchors).
    pub(super) fn audit_keys(&self) -> Option<&AuditKeys> {
        self.keys.as_ref().map(|k| &k.audit)
    }

    /// How many audit keys the seal knows (the current one first).
    pub(super) fn key_count(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.chain.len())
    }

    /// The position of the audit key named `id`.
    pub(super) fn key_index(&self, id: &str) -> Option<usize> {
        self.keys
            .as_ref()?
            .chain
            .iter()
            .position(|k| k.id.as_str() == id)
    }

    /// The id of the key new links are sealed under.
    pub fn current_key(&self) -> Option<&KeyId> {
        self.keys
            .as_ref()
            .and_then(|k| k.chain.first())
            .map(|k| &k.id)
    }

    /// The link of `event` stored at `seq` after the link `prev_hash`, under the current key
    /// (named once a rotation is configured).
    pub fn hash(&self, event: &AuditEvent, seq: i64, prev_hash: &str) -> String {
        let scheme = if self.names_keys() {
            Written::Named(0)
        } else {
            Written::Unnamed
        };
        self.hash_written(scheme, event, seq, prev_hash)
    }

    /// The link as written in `scheme`: plain without a key, `hmac2:` under the current key, or
    /// `hmac3:` under the key at its position (the current one is 0).
    fn hash_written(&self, scheme: Written, event: &AuditEvent, seq: i64, prev: &str) -> String {
        let named = |key: usize| self.keys.as_ref()?.chain.get(key).map(|k| k.id.as_str());
        let scheme = match scheme {
            _ if !self.is_keyed() => Scheme::Plain,
            Written::Unnamed => Scheme::Derived,
            Written::Named(key) => named(key).map_or(Scheme::Plain, Scheme::Named),
        };
        self.hash_as(scheme, 0, event, seq, prev)
            .unwrap_or_default()
    }

    /// The link in `scheme`, under the audit key at `key` for the schemes that do not name
    /// theirs; `None` for a keyed scheme without that key.
    pub(super) fn hash_as(
        &self,
        scheme: Scheme<'_>,
        key: usize,
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
        let chain = |at: usize| self.keys.as_ref()?.chain.get(at);
        match scheme {
            Scheme::Plain => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                Some(hex::encode(h.finalize()))
            }
            Scheme::Raw => chain(key).map(|k| keyed(&k.raw, KEYED)),
            Scheme::Derived => chain(key).map(|k| keyed(&k.derived, DERIVED)),
            Scheme::Named(id) => {
                chain(self.key_index(id)?).map(|k| keyed(&k.derived, &format!("{NAMED}{}:", k.id)))
            }
        }
    }

    /// Whether new links name their key (`hmac3:`): once a rotation is configured (a previous
    /// key is known), or the chain already names its keys. Until then links stay `hmac2:`,
    /// which instances of earlier versions, in a rolling upgrade, read and continue.
    fn names_keys(&self) -> bool {
        self.key_count() > 1
    }

    /// The event that must come first when this seal continues the chain whose head is
    /// `(seq, hash)` under its current key: a chain begun without a key, linked under the audit
    /// key itself, or (once a rotation is configured) under a key not named or another key, is
    /// switched at a marked event, so that the verifier knows where the earlier links end.
    /// `serve` appends it at start-up. A chain under a key this seal does not know is an error:
    /// an instance with a stale configuration must not rotate the chain back to its own key.
    pub fn switch_marker(
        &self,
        seq: i64,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<Option<AuditEvent>, UnknownChainKey> {
        let Some(current) = self.current_key() else {
            return Ok(None);
        };
        let marker = |kind, through: &str| {
            AuditEvent::new(kind, Outcome::Success, at)
                .detail(through, seq)
                .detail("keyId", current.as_str())
        };
        Ok(match scheme_of(hash) {
            _ if seq == 0 => None,
            Scheme::Plain => Some(marker(AuditKind::SealedWithKey, "plainThroughSeq")),
            Scheme::Raw => Some(marker(AuditKind::ChainKeyDerived, "rawKeyThroughSeq")),
            Scheme::Derived if self.names_keys() => {
                Some(marker(AuditKind::KeyRotated, "previousKeyThroughSeq"))
            }
            Scheme::Derived => None,
            Scheme::Named(id) if self.key_index(id).is_none() => {
                return Err(UnknownChainKey(id.to_owned()));
            }
            Scheme::Named(id) if id != current.as_str() => Some(
                marker(AuditKind::KeyRotated, "previousKeyThroughSeq").detail("previousKeyId", id),
            ),
            Scheme::Named(_) => None,
        })
    }
}

/// The chain's head is sealed under an audit key this instance does not know: its
/// configuration is older than the chain's (a rotation it has not been given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the audit chain is sealed under the audit key {0}, which this instance does not know: give it the keys of the current configuration (docs/keys.md, rotating the audit key)"
)]
pub struct UnknownChainKey(pub String);

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
    /// accepts plain links only before that marker; likewise on a chain under a key it does not
    /// know, or one not named, it first appends the marker of [`Self::switch_marker`].
    pub fn link<'a>(
        &self,
        mut seq: i64,
        mut hash: String,
        events: &[&'a AuditEvent],
    ) -> Result<Vec<Link<'a>>, UnknownChainKey> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        // A caller that switches the chain on purpose (`serve` at start-up) passes the marker
        // itself: it is not doubled, and it switches to the current key.
        let switching = MARKERS.contains(&first.kind);
        let (marker, scheme) = match scheme_of(&hash) {
            // A chain under a key this seal knows is continued under that key, even a previous
            // one: during a rolling rotation, instances not yet restarted (which already know
            // the new key) keep the chain under it rather than rotate it back to theirs.
            Scheme::Named(id) if !switching => match self.key_index(id) {
                Some(key) => (None, Written::Named(key)),
                None => return Err(UnknownChainKey(id.to_owned())),
            },
            _ => {
                let marker = self
                    .switch_marker(seq, &hash, first.at)?
                    .filter(|marker| marker.kind != first.kind);
                let scheme = if self.names_keys() || matches!(scheme_of(&hash), Scheme::Named(_)) {
                    Written::Named(0)
                } else {
                    Written::Unnamed
                };
                (marker, scheme)
            }
        };
        let events = marker
            .into_iter()
            .map(Cow::Owned)
            .chain(events.iter().map(|e| Cow::Borrowed(*e)));
        let links = events
            .map(|event| {
                let prev_hash = std::mem::take(&mut hash);
                seq += 1;
                hash = self.hash_written(scheme, &event, seq, &prev_hash);
                Link {
                    event,
                    seq,
                    prev_hash,
                    hash: hash.clone(),
                }
            })
            .collect();
        Ok(links)
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
