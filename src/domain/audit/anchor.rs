//! Anchors: signed checkpoints of the chain's head, kept where the database's writers cannot
//! change them (a WORM bucket, a syslog host). A database writer can cut the newest events off
//! the chain and rewrite its head row so that the chain alone still verifies; an anchor taken
//! before remembers a head beyond the cut, and verification against it fails.

use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{ChainSeal, rfc3339};

/// One anchor, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    pub at: String,
    /// `hmac-sha256` under a key derived from `FINHUB_AUDIT_KEY`, or `none` without one (the
    /// storage the anchor is kept in is then its only protection).
    pub seal: String,
    pub sig: Option<String>,
}

/// Why an anchor does not match the trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorBreak {
    #[error(
        "anchor {anchor} (seq {seq}): its signature does not match (not made with this audit key, or altered)"
    )]
    BadSignature { anchor: usize, seq: i64 },
    #[error("anchor {anchor} is signed, and no FINHUB_AUDIT_KEY is set to check it")]
    CannotCheck { anchor: usize },
    #[error(
        "anchor {anchor}: the chain ends at seq {head}, before the anchored seq {seq}: events were cut off"
    )]
    ChainEndsBefore { anchor: usize, seq: i64, head: i64 },
    #[error("anchor {anchor}: event seq {seq} differs from the anchored hash")]
    Differs { anchor: usize, seq: i64 },
}

const DOMAIN: &[u8] = b"finhub audit anchor v1";

fn signature(key: &[u8], seq: i64, hash: &str, at: &str) -> Option<String> {
    let mut derive = Hmac::<Sha256>::new_from_slice(key).ok()?;
    derive.update(DOMAIN);
    let derived = derive.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&derived).ok()?;
    mac.update(format!("{seq}\n{hash}\n{at}").as_bytes());
    Some(
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

impl Anchor {
    /// An anchor of the head `(seq, hash)` at `at`, signed when `seal` has a key.
    pub fn new(seal: &ChainSeal, seq: i64, hash: String, at: OffsetDateTime) -> Self {
        let at = rfc3339(at);
        let sig = seal
            .key_bytes()
            .and_then(|key| signature(&key, seq, &hash, &at));
        Self {
            seal: if sig.is_some() { "hmac-sha256" } else { "none" }.to_owned(),
            seq,
            hash,
            at,
            sig,
        }
    }

    /// Checks the signature of the anchor numbered `anchor` (its line in the file).
    pub fn check(&self, seal: &ChainSeal, anchor: usize) -> Result<(), AnchorBreak> {
        let Some(sig) = &self.sig else {
            return Ok(());
        };
        let Some(key) = seal.key_bytes() else {
            return Err(AnchorBreak::CannotCheck { anchor });
        };
        let expected = signature(&key, self.seq, &self.hash, &self.at).unwrap_or_default();
        if subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into() {
            Ok(())
        } else {
            Err(AnchorBreak::BadSignature {
                anchor,
                seq: self.seq,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_anchors_verify_only_unaltered_and_under_their_key() {
        let seal = ChainSeal::keyed(&[9; 32]);
        let anchor = Anchor::new(&seal, 42, "hmac:abc".into(), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(anchor.seal, "hmac-sha256");
        assert_eq!(anchor.check(&seal, 1), Ok(()));
        let moved = Anchor {
            seq: 41,
            ..anchor.clone()
        };
        assert_eq!(
            moved.check(&seal, 1),
            Err(AnchorBreak::BadSignature { anchor: 1, seq: 41 })
        );
        assert!(anchor.check(&ChainSeal::keyed(&[8; 32]), 1).is_err());
        assert_eq!(
            anchor.check(&ChainSeal::unkeyed(), 2),
            Err(AnchorBreak::CannotCheck { anchor: 2 })
        );
        let unsigned = Anchor::new(
            &ChainSeal::unkeyed(),
            42,
            "abc".into(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(
            (unsigned.seal.as_str(), unsigned.sig.is_none()),
            ("none", true)
        );
        assert_eq!(unsigned.check(&seal, 3), Ok(()));
    }
}
