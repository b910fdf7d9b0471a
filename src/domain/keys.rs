//! Keys derived from one secret (the audit key), one per purpose: no other secret needs
//! managing, and no purpose's key can stand in for another's.

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
