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
