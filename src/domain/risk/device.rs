//! Devices: the `device` a login names. The service keeps a fingerprint only as a keyed hash,
//! taken as the login arrives, so neither the database, the audit trail nor a response ever holds
//! one; per customer, a device is its hash.

use hmac::Mac as _;
use sha2::{Digest as _, Sha256};

use crate::domain::keys::{Purpose, PurposeKey};
use time::OffsetDateTime;

crate::domain::opaque_id!(
    /// An opaque device identifier, per customer.
    DeviceId
);

/// How fingerprints are hashed: HMAC-SHA256 under a key derived from the audit key (kept
/// outside the database), else a plain SHA-256 with a fixed prefix. Fingerprints from FinHub's
/// web client are random 128-bit ids, which a plain hash already protects.
pub type DeviceKey = PurposeKey<DeviceFingerprints>;

/// The purpose of [`DeviceKey`].
#[derive(Debug)]
pub struct DeviceFingerprints;

impl Purpose for DeviceFingerprints {
    const NAME: &'static [u8] = b"finhub device fingerprint v1";
}

impl DeviceKey {
    /// The stored form of `fingerprint`: 64 hex digits.
    pub fn hash(&self, fingerprint: &str) -> String {
        let digest = match self.mac() {
            Some(mac) => mac
                .clone()
                .chain_update(fingerprint.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec(),
            None => Sha256::new()
                .chain_update(DeviceFingerprints::NAME)
                .chain_update(fingerprint.as_bytes())
                .finalize()
                .to_vec(),
        };
        hex::encode(digest)
    }

    /// The stored forms of `fingerprint` under the previous audit keys, newest first.
    pub fn previous_hashes(&self, fingerprint: &str) -> Vec<String> {
        self.previous_macs()
            .iter()
            .map(|mac| {
                hex::encode(
                    mac.clone()
                        .chain_update(fingerprint.as_bytes())
                        .finalize()
                        .into_bytes(),
                )
            })
            .collect()
    }
}

/// A device as the customer sees it in their own lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// Stable per customer and fingerprint; never the fingerprint.
    pub id: DeviceId,
    /// The name the client gave it, last time it named one.
    pub name: Option<String>,
}

/// A device the customer has signed in from with the right password.
#[derive(Debug, Clone)]
pub struct KnownDevice {
    /// Stable per customer and fingerprint; never the fingerprint.
    pub id: DeviceId,
    /// The name the client gave it, last time it named one.
    pub name: Option<String>,
    /// The first completed login from it.
    pub first_seen_at: OffsetDateTime,
    /// The latest login from it.
    pub last_seen_at: OffsetDateTime,
    /// The address of that latest login.
    pub last_ip: Option<String>,
    /// Its country, where the address could be placed.
    pub last_country: Option<String>,
    /// Its ACTIVE, live sessions.
    pub active_sessions: u64,
}

/// What the server can say of a device from its user agent: browser and operating system
/// families ("Firefox on Windows"), never the client's own words. `None` when the agent tells
/// neither.
pub fn describe_user_agent(user_agent: &str) -> Option<String> {
    let parsed = woothee::parser::Parser::new().parse(user_agent)?;
    let known =
        |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_owned());
    match (known(parsed.name), known(parsed.os)) {
        (Some(browser), Some(os)) => Some(format!("{browser} on {os}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::AuditKeys;

    #[test]
    fn a_device_is_described_by_its_browser_and_system_families_only() {
        let firefox =
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let described = describe_user_agent(firefox).unwrap();
        assert!(described.starts_with("Firefox on Windows"), "{described}");
        assert_eq!(describe_user_agent("evil.example says hello"), None);
    }

    #[test]
    fn hashes_depend_on_the_key_and_hide_the_fingerprint() {
        let fingerprint = "0123456789abcdef|Linux|en-GB";
        let unkeyed = DeviceKey::unkeyed().hash(fingerprint);
        let keyed = DeviceKey::derived_from(&AuditKeys::single(&[7; 32]))
            .unwrap()
            .hash(fingerprint);
        let other = DeviceKey::derived_from(&AuditKeys::single(&[8; 32]))
            .unwrap()
            .hash(fingerprint);
        assert_eq!(unkeyed.len(), 64);
        assert_eq!(keyed.len(), 64);
        assert_ne!(unkeyed, keyed);
        assert_ne!(keyed, other);
        assert_eq!(
            keyed,
            DeviceKey::derived_from(&AuditKeys::single(&[7; 32]))
                .unwrap()
                .hash(fingerprint)
        );
        assert!(!keyed.contains("0123456789abcdef"));
    }
}
