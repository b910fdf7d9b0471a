//! Breached passwords: a new password is looked up by its SHA-1 digest, as Pwned Passwords
//! publishes them, in a source the operator chooses (a file on disk, or a k-anonymity range
//! service that is sent only the digest's first five hex digits). A source that cannot answer
//! skips the check: a new password is never refused for an outage.

use sha1::{Digest as _, Sha1};

use super::Password;

/// The SHA-1 digest of a password as received (not normalised: Pwned Passwords hashes what was
/// typed), in upper-case hex.
#[derive(Clone, PartialEq, Eq)]
pub struct BreachDigest(String);

impl BreachDigest {
    /// The digest of `password`.
    pub fn of(password: &Password) -> Self {
        let digest = Sha1::digest(password.expose().as_bytes());
        Self(hex::encode_upper(digest))
    }

    /// The digest of an already computed upper- or lower-case hex SHA-1 (40 digits).
    pub fn from_hex(hex: &str) -> Option<Self> {
        (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(hex.to_ascii_uppercase()))
    }

    /// All 40 upper-case hex digits.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first five digits: all a range service is sent.
    pub fn prefix(&self) -> &str {
        &self.0[..5]
    }

    /// The other 35, compared with what the range service answers.
    pub fn suffix(&self) -> &str {
        &self.0[5..]
    }
}

impl std::fmt::Debug for BreachDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A password's unsalted digest is as good as the password to anyone with a list.
        f.write_str("BreachDigest([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha1_in_upper_case_hex_split_after_five_digits() {
        let digest = BreachDigest::of(&Password::parse("password".into()).unwrap());
        assert_eq!(digest.hex(), "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert_eq!(digest.prefix(), "5BAA6");
        assert_eq!(digest.suffix(), "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        assert!(!format!("{digest:?}").contains("5BAA6"));
        assert_eq!(
            BreachDigest::from_hex("5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"),
            Some(digest)
        );
        assert_eq!(BreachDigest::from_hex("5BAA6"), None);
    }
}
