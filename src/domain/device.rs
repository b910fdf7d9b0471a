//! Devices: the `device` a login names. The service keeps a fingerprint only as a keyed hash,
//! taken as the login arrives, so neither the database, the audit trail nor a response ever holds
//! one; per customer, a device is its hash.

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

super::opaque_id!(
    /// An opaque device identifier, per customer.
    DeviceId
);

/// How fingerprints are hashed: HMAC-SHA256 under a key derived from the audit key (kept
/// outside the database), else a plain SHA-256 with a fixed prefix. Fingerprints from FinHub's
/// web client are random 128-bit ids, which a plain hash already protects.
#[derive(Clone)]
pub struct DeviceKey(Option<SecretSlice<u8>>);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "DeviceKey(keyed)"
        } else {
            "DeviceKey(unkeyed)"
        })
    }
}

const DOMAIN: &[u8] = b"finhub device fingerprint v1";

impl DeviceKey {
    pub fn unkeyed() -> Self {
        Self(None)
    }

    /// A key for device hashes derived from `secret`, so the secret itself is never reused.
    pub fn derived_from(secret: &[u8]) -> Self {
        Self(super::keys::derive(secret, DOMAIN).map(|key| SecretSlice::from(key.to_vec())))
    }

    /// The stored form of `fingerprint`: 64 hex digits.
    pub fn hash(&self, fingerprint: &str) -> String {
        let digest = match &self.0 {
            Some(key) => match Hmac::<Sha256>::new_from_slice(key.expose_secret()) {
                Ok(mut mac) => {
                    mac.update(fingerprint.as_bytes());
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            None => Sha256::new()
                .chain_update(DOMAIN)
                .chain_update(fingerprint.as_bytes())
                .finalize()
                .to_vec(),
        };
        hex::encode(digest)
    }
}

/// A device as the customer sees it in their own lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    pub id: DeviceId,
    pub name: Option<String>,
}

/// A device the customer has signed in from with the right password.
#[derive(Debug, Clone)]
pub struct KnownDevice {
    pub id: DeviceId,
    pub name: Option<String>,
    pub first_seen_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub last_ip: Option<String>,
    pub last_country: Option<String>,
    /// Its ACTIVE, live sessions.
    pub active_sessions: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_the_key_and_hide_the_fingerprint() {
        let fingerprint = "0123456789abcdef|Linux|en-GB";
        let unkeyed = DeviceKey::unkeyed().hash(fingerprint);
        let keyed = DeviceKey::derived_from(&[7; 32]).hash(fingerprint);
        let other = DeviceKey::derived_from(&[8; 32]).hash(fingerprint);
        assert_eq!(unkeyed.len(), 64);
        assert_eq!(keyed.len(), 64);
        assert_ne!(unkeyed, keyed);
        assert_ne!(keyed, other);
        assert_eq!(keyed, DeviceKey::derived_from(&[7; 32]).hash(fingerprint));
        assert!(!keyed.contains("0123456789abcdef"));
    }
}
