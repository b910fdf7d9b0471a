//! Keys derived from one secret (the audit key), one per purpose: no other secret needs
//! managing, and no purpose's key can stand in for another's.

use std::marker::PhantomData;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// HMAC-SHA256 of `purpose` under `secret`. (HMAC takes keys of any length; `None` would mean
/// a library that refused one.)
pub fn derive(secret: &[u8], purpose: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(purpose);
    Some(mac.finalize().into_bytes().into())
}

/// A purpose key that could not be derived. Start-up stops on it: hashing without the key
/// would silently weaken what the key protects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key for {purpose} cannot be derived from the audit key")]
pub struct KeyError {
    /// What the key was for (device hashes, anchors, …).
    pub purpose: String,
}

/// An HMAC-SHA256 under the key derived from `secret` for `purpose`, keyed once: each message
/// takes a clone of it, so hashing a message cannot fail and needs no fallback.
pub fn purpose_mac(secret: &[u8], purpose: &[u8]) -> Result<Hmac<Sha256>, KeyError> {
    let refused = || KeyError {
        purpose: String::from_utf8_lossy(purpose).into_owned(),
    };
    let key = derive(secret, purpose).ok_or_else(refused)?;
    Hmac::<Sha256>::new_from_slice(&key).map_err(|_| refused())
}

/// The same, under `secret` itself: for links sealed before purpose keys were derived.
pub fn raw_mac(secret: &[u8]) -> Result<Hmac<Sha256>, KeyError> {
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| KeyError {
        purpose: "the audit chain (the audit key itself)".into(),
    })
}

/// What a [`PurposeKey`] is for: its name is what its key is derived for, and what unkeyed
/// hashes take as a prefix, so no two purposes' hashes collide.
pub trait Purpose {
    /// The purpose's name, versioned.
    const NAME: &'static [u8];
}

/// A keyed hash for one purpose: HMAC-SHA256 under the key derived for it from the audit key,
/// or, with no audit key set, none (each purpose then hashes plainly in its own way, as start-up
/// warns). Never shows the key.
pub struct PurposeKey<P> {
    mac: Option<Hmac<Sha256>>,
    purpose: PhantomData<P>,
}

impl<P> Clone for PurposeKey<P> {
    fn clone(&self) -> Self {
        Self {
            mac: self.mac.clone(),
            purpose: PhantomData,
        }
    }
}

impl<P: Purpose> std::fmt::Debug for PurposeKey<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyed = if self.mac.is_some() {
            "keyed"
        } else {
            "unkeyed"
        };
        write!(
            f,
            "PurposeKey({}, {keyed})",
            String::from_utf8_lossy(P::NAME)
        )
    }
}

impl<P: Purpose> PurposeKey<P> {
    /// No key: for when no audit key is set.
    pub fn unkeyed() -> Self {
        Self {
            mac: None,
            purpose: PhantomData,
        }
    }

    /// The key for the purpose derived from `secret` (the audit key); an error, never an
    /// unkeyed hash, if it cannot be.
    pub fn derived_from(secret: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            mac: Some(purpose_mac(secret, P::NAME)?),
            purpose: PhantomData,
        })
    }

    /// The keyed MAC, ready for a message (clone it first); `None` when unkeyed.
    pub fn mac(&self) -> Option<&Hmac<Sha256>> {
        self.mac.as_ref()
    }
}
