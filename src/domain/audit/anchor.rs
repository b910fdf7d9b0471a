//! Anchors: signed checkpoints of the chain's head, kept where the database's writers cannot
//! change them (a WORM bucket, a syslog host). A database writer can cut the newest events off
//! the chain and rewrite its head row so that the chain alone still verifies; an anchor taken
//! before remembers a head beyond the cut, and verification against it fails.

use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{ChainSeal, rfc3339};
use crate::domain::keys::{self, AuditKeys, KeyError, KeyId};

/// One anchor, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The head's seq when the anchor was made.
    pub seq: i64,
    /// The head's hash then: the chain must still reach it.
    pub hash: String,
    /// When, RFC 3339.
    pub at: String,
    /// `ed25519` (a key of its own, whose public half checks it), `hmac-sha256` (under a key
    /// derived from `FINHUB_AUDIT_KEY`), or `none` without either (the storage the anchor is
    /// kept in is then its only protection).
    pub seal: String,
    /// The signature over seq, hash and time, hex; none when `seal` is `none`.
    pub sig: Option<String>,
    /// For `hmac-sha256`: the id of the audit key it is signed under (anchors made before keys
    /// could be rotated carry none, and are checked under each key known).
    #[serde(rename = "keyId", default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Why an anchor does not match the trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorBreak {
    /// The signature is not this key's over the anchor.
    #[error(
        "anchor {anchor} (seq {seq}): its signature does not match (not made with this key, or altered)"
    )]
    BadSignature {
        /// The anchor's line in the file.
        anchor: usize,
        /// The anchored event's seq.
        seq: i64,
    },
    /// Signed, but the key that checks it is not set.
    #[error("anchor {anchor} is sealed with {seal}, and no key to check it is set")]
    CannotCheck {
        /// The anchor's line in the file.
        anchor: usize,
        /// The seal the anchor names.
        seal: String,
    },
    /// Unsigned although signing keys are set: it may have been forged.
    #[error("anchor {anchor} (seq {seq}) is not signed, but anchors are signed with the keys set")]
    Unsigned {
        /// The anchor's line in the file.
        anchor: usize,
        /// The anchored event's seq.
        seq: i64,
    },
    /// The chain ends before the anchored event.
    #[error(
        "anchor {anchor}: the chain ends at seq {head}, before the anchored seq {seq}: events were cut off"
    )]
    ChainEndsBefore {
        /// The anchor's line in the file.
        anchor: usize,
        /// The anchored event's seq.
        seq: i64,
        /// The last seq the chain holds.
        head: i64,
    },
    /// The anchored event's hash changed.
    #[error("anchor {anchor}: event seq {seq} differs from the anchored hash")]
    Differs {
        /// The anchor's line in the file.
        anchor: usize,
        /// The anchored event's seq.
        seq: i64,
    },
}

const DOMAIN: &[u8] = b"finhub audit anchor v1";
const HMAC: &str = "hmac-sha256";
const ED25519: &str = "ed25519";
const UNSIGNED: &str = "none";

/// What an anchor signs.
fn message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
    [DOMAIN, b"\n", format!("{seq}\n{hash}\n{at}").as_bytes()].concat()
}

fn hmac_signature(mac: &Hmac<Sha256>, seq: i64, hash: &str, at: &str) -> String {
    let mut mac = mac.clone();
    mac.update(format!("{seq}\n{hash}\n{at}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The keys anchors are signed and checked with: an Ed25519 key of their own when one is set
/// (its public half is enough to check, so auditors need no secret), else the audit key's HMAC.
#[derive(Clone)]
pub struct AnchorKeys {
    /// HMAC under the anchors' key derived from each audit key, the current one first; empty
    /// without an audit key.
    hmac: Vec<(KeyId, Hmac<Sha256>)>,
    signing: Option<Arc<SigningKey>>,
    verifying: Option<VerifyingKey>,
}

impl std::fmt::Debug for AnchorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorKeys")
            .field(
                "hmac",
                &self.hmac.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("ed25519_signing", &self.signing.is_some())
            .field("ed25519_checking", &self.verifying.is_some())
            .finish()
    }
}

impl AnchorKeys {
    /// HMAC under a key derived from the audit key, if `seal` has one; a key that cannot be
    /// derived is an error, never unsigned anchors.
    pub fn new(seal: &ChainSeal) -> Result<Self, KeyError> {
        let hmac = seal
            .audit_keys()
            .into_iter()
            .flat_map(AuditKeys::secrets)
            .map(|(id, key)| Ok((id.clone(), keys::purpose_mac(key, DOMAIN)?)))
            .collect::<Result<_, KeyError>>()?;
        Ok(Self {
            hmac,
            signing: None,
            verifying: None,
        })
    }

    /// Signs with `key`, and checks with its public half.
    pub fn signing_with(self, key: SigningKey) -> Self {
        Self {
            verifying: Some(key.verifying_key()),
            signing: Some(Arc::new(key)),
            ..self
        }
    }

    /// Checks Ed25519 anchors with `key`.
    pub fn checking_with(self, key: VerifyingKey) -> Self {
        Self {
            verifying: Some(key),
            ..self
        }
    }

    /// Whether anchors must carry a signature: any key is set.
    fn expects_signatures(&self) -> bool {
        !self.hmac.is_empty() || self.verifying.is_some()
    }
}

impl Anchor {
    /// An anchor of the head `(seq, hash)` at `at`, signed with the strongest key set.
    pub fn new(keys: &AnchorKeys, seq: i64, hash: String, at: OffsetDateTime) -> Self {
        let at = rfc3339(at);
        let (seal, sig, key_id) = if let Some(key) = &keys.signing {
            let sig = key.sign(&message(seq, &hash, &at));
            (ED25519, Some(hex::encode(sig.to_bytes())), None)
        } else if let Some((id, mac)) = keys.hmac.first() {
            let sig = hmac_signature(mac, seq, &hash, &at);
            (HMAC, Some(sig), Some(id.to_string()))
        } else {
            (UNSIGNED, None, None)
        };
        Self {
            seal: seal.to_owned(),
            seq,
            hash,
            at,
            sig,
            key_id,
        }
    }

    /// Checks the signature of the anchor numbered `anchor` (its line in the file). With any
    /// key set, an unsigned anchor is refused: removing the signature must not help a forger.
    pub fn check(&self, keys: &AnchorKeys, anchor: usize) -> Result<(), AnchorBreak> {
        let bad = || AnchorBreak::BadSignature {
            anchor,
            seq: self.seq,
        };
        let cannot = || AnchorBreak::CannotCheck {
            anchor,
            seal: self.seal.clone(),
        };
        let Some(sig) = &self.sig else {
            return if keys.expects_signatures() {
                Err(AnchorBreak::Unsigned {
                    anchor,
                    seq: self.seq,
                })
            } else {
                Ok(())
            };
        };
        match self.seal.as_str() {
            ED25519 => {
                let key = keys.verifying.as_ref().ok_or_else(cannot)?;
                let bytes: [u8; 64] = hex::decode(sig)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(bad)?;
                key.verify_strict(
                    &message(self.seq, &self.hash, &self.at),
                    &Signature::from_bytes(&bytes),
                )
                .map_err(|_| bad())
            }
            HMAC => {
                // Under the key the anchor names, or, for one that names none, any key known.
                let macs: Vec<_> = keys
                    .hmac
                    .iter()
                    .filter(|(id, _)| {
                        self.key_id
                            .as_deref()
                            .is_none_or(|named| named == id.as_str())
                    })
                    .collect();
                if macs.is_empty() {
                    return Err(cannot());
                }
                let signed = macs.iter().any(|(_, mac)| {
                    let expected = hmac_signature(mac, self.seq, &self.hash, &self.at);
                    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into()
                });
                if signed { Ok(()) } else { Err(bad()) }
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    #[test]
    fn hmac_anchors_verify_only_unaltered_and_under_their_key() {
        let keys =
            AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[9; 32])).unwrap()).unwrap();
        let anchor = Anchor::new(&keys, 42, "hmac:abc".into(), at());
        assert_eq!(anchor.seal, "hmac-sha256");
        assert_eq!(anchor.check(&keys, 1), Ok(()));
        let moved = Anchor {
            seq: 41,
            ..anchor.clone()
        };
        assert_eq!(
            moved.check(&keys, 1),
            Err(AnchorBreak::BadSignature { anchor: 1, seq: 41 })
        );
        let other =
            AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[8; 32])).unwrap()).unwrap();
        assert!(anchor.check(&other, 1).is_err());
        assert!(matches!(
            anchor.check(&AnchorKeys::new(&ChainSeal::unkeyed()).unwrap(), 2),
            Err(AnchorBreak::CannotCheck { anchor: 2, .. })
        ));
    }

    #[test]
    fn an_hmac_anchor_names_its_key_and_is_checked_under_it_after_a_rotation() {
        let keys = |current: &[u8; 32], previous: &[&[u8; 32]]| {
            let audit = AuditKeys::new(current, previous.iter().map(|k| &k[..])).unwrap();
            AnchorKeys::new(&ChainSeal::keyed(&audit).unwrap()).unwrap()
        };
        let before = Anchor::new(&keys(&[9; 32], &[]), 42, "hmac:abc".into(), at());
        assert_eq!(before.key_id.as_deref(), Some(KeyId::of(&[9; 32]).as_str()));
        assert_eq!(before.check(&keys(&[8; 32], &[&[9; 32]]), 1), Ok(()));
        // Without the key it names, it cannot be checked; it is not tried under another.
        assert!(matches!(
            before.check(&keys(&[8; 32], &[]), 1),
            Err(AnchorBreak::CannotCheck { anchor: 1, .. })
        ));
    }

    #[test]
    fn ed25519_anchors_are_checked_with_the_public_half_alone() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let public = signing.verifying_key();
        let keys = AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[9; 32])).unwrap())
            .unwrap()
            .signing_with(signing);
        let anchor = Anchor::new(&keys, 42, "hmac:abc".into(), at());
        assert_eq!(anchor.seal, "ed25519", "the key of its own wins");
        let auditor = AnchorKeys::new(&ChainSeal::unkeyed())
            .unwrap()
            .checking_with(public);
        assert_eq!(anchor.check(&auditor, 1), Ok(()));
        let moved = Anchor {
            hash: "hmac:abd".into(),
            ..anchor.clone()
        };
        assert_eq!(
            moved.check(&auditor, 1),
            Err(AnchorBreak::BadSignature { anchor: 1, seq: 42 })
        );
        let stranger = AnchorKeys::new(&ChainSeal::unkeyed())
            .unwrap()
            .checking_with(SigningKey::from_bytes(&[6; 32]).verifying_key());
        assert!(anchor.check(&stranger, 1).is_err());
        assert!(matches!(
            anchor.check(
                &AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[9; 32])).unwrap()).unwrap(),
                3
            ),
            Err(AnchorBreak::CannotCheck { anchor: 3, .. })
        ));
        let garbled = Anchor {
            sig: Some("not hex".into()),
            ..anchor
        };
        assert!(garbled.check(&auditor, 4).is_err());
    }

    #[test]
    fn an_unsigned_anchor_passes_only_where_no_key_is_set() {
        let unsigned = Anchor::new(
            &AnchorKeys::new(&ChainSeal::unkeyed()).unwrap(),
            42,
            "abc".into(),
            at(),
        );
        assert_eq!(
            (unsigned.seal.as_str(), unsigned.sig.is_none()),
            ("none", true)
        );
        assert_eq!(
            unsigned.check(&AnchorKeys::new(&ChainSeal::unkeyed()).unwrap(), 1),
            Ok(())
        );
        assert_eq!(
            unsigned.check(
                &AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[9; 32])).unwrap()).unwrap(),
                2
            ),
            Err(AnchorBreak::Unsigned { anchor: 2, seq: 42 })
        );
        let auditor = AnchorKeys::new(&ChainSeal::unkeyed())
            .unwrap()
            .checking_with(SigningKey::from_bytes(&[7; 32]).verifying_key());
        assert_eq!(
            unsigned.check(&auditor, 3),
            Err(AnchorBreak::Unsigned { anchor: 3, seq: 42 })
        );
        // A signed anchor stripped of its signature is an unsigned one.
        let keys =
            AnchorKeys::new(&ChainSeal::keyed(&AuditKeys::single(&[9; 32])).unwrap()).unwrap();
        let stripped = Anchor {
            sig: None,
            seal: "none".into(),
            ..Anchor::new(&keys, 42, "hmac:abc".into(), at())
        };
        assert!(stripped.check(&keys, 4).is_err());
    }
}
