//! Authenticator apps: time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), with the
//! parameters every app understands (HMAC-SHA1, 6 digits, 30-second steps) and one step of
//! clock drift either way. A step is accepted at most once per customer; the store records the
//! last one ([`Spend::TotpStep`](super::challenge::Spend::TotpStep)).
//!
//! The secret is shown once, when the app is added, and stored sealed
//! ([`TotpSeal`]) under a key derived from the audit key, which every instance shares and which
//! survives restarts.

use std::fmt;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretBox};
use sha1::Sha1;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use super::challenge::OtpCode;
use super::factor::FactorId;
use crate::domain::keys::{AuditKeys, SealingKey};

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of the current one, for a phone's clock that is a little off.
pub const DRIFT_STEPS: i64 = 1;
/// Bytes of a secret: 160 bits, as RFC 4226 recommends for HMAC-SHA1.
pub const SECRET_BYTES: usize = 20;
/// The issuer named in the app.
pub const ISSUER: &str = "FinHub";

/// An authenticator app's shared secret. `Debug` never shows it.
pub struct TotpSecret(SecretBox<[u8; SECRET_BYTES]>);

impl TotpSecret {
    /// 160 random bits from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// Base32 without padding, as apps take it typed in: for the one answer that shows it.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(self.0.expose_secret())
    }

    /// The `otpauth://` URI an app reads from a QR code, labelled with the issuer and the
    /// customer's username.
    pub fn otpauth_uri(&self, username: &str) -> String {
        // The label is `issuer:account`; the account is percent-encoded, the colon kept.
        let account =
            percent_encoding::utf8_percent_encode(username, percent_encoding::NON_ALPHANUMERIC);
        let label = format!("{ISSUER}:{account}");
        format!(
            "otpauth://totp/{label}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
            self.base32()
        )
    }

    /// The time step whose code `code` is, among the current one and its neighbours, compared
    /// in constant time; `None` when it is none of them.
    pub fn matching_step(&self, code: &OtpCode, now: OffsetDateTime) -> Option<i64> {
        let current = now.unix_timestamp().div_euclid(STEP_SECONDS);
        let mut found = None;
        // Every candidate is computed and compared, so the time taken says nothing of which
        // (if any) matched.
        for step in current - DRIFT_STEPS..=current + DRIFT_STEPS {
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let expected = format!("{:06}", hotp(self.0.expose_secret(), counter, 6));
            if bool::from(expected.as_bytes().ct_eq(code.expose().as_bytes())) {
                found = Some(step);
            }
        }
        found
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// RFC 4226's HOTP: the `digits`-digit code for `counter`.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes keys of any length, so this cannot fail; a zero code if it ever did matches
    // nothing but a guess of zeros, which the attempt limits bound like any other.
    let Ok(mut mac) = <Hmac<Sha1> as hmac::Mac>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// Seals authenticator-app secrets at rest: ChaCha20-Poly1305 under a key derived from the
/// audit key, bound to the factor's id (a sealed secret copied to another customer's factor
/// does not open). Without an audit key there is none, and apps cannot be added.
#[derive(Debug, Clone)]
pub struct TotpSeal {
    key: SealingKey,
}

const SEALED_V1: u8 = 1;

/// A secret could not be sealed, or a stored one opened (another key, another factor, altered).
#[derive(Debug, thiserror::Error)]
#[error("an authenticator-app secret could not be sealed or opened")]
pub struct TotpSealError;

impl TotpSeal {
    /// Under the key derived from the audit key for this purpose alone.
    pub fn derived_from(audit_keys: &AuditKeys) -> Result<Self, TotpSealError> {
        let key = SealingKey::derived_from(audit_keys, b"finhub totp secret key v1")
            .ok_or(TotpSealError)?;
        Ok(Self { key })
    }

    /// The stored form of `secret` for `factor`, under a fresh random nonce.
    pub fn seal(&self, secret: &TotpSecret, factor: &FactorId) -> Result<Vec<u8>, TotpSealError> {
        self.key
            .seal(
                SEALED_V1,
                secret.0.expose_secret(),
                factor.as_str().as_bytes(),
            )
            .ok_or(TotpSealError)
    }

    /// The secret sealed for `factor`.
    pub fn open(&self, sealed: &[u8], factor: &FactorId) -> Result<TotpSecret, TotpSealError> {
        self.open_noting_key(sealed, factor)
            .map(|(secret, _)| secret)
    }

    /// The same, and whether it was sealed under a previous audit key (to be sealed again
    /// under the current one).
    pub fn open_noting_key(
        &self,
        sealed: &[u8],
        factor: &FactorId,
    ) -> Result<(TotpSecret, bool), TotpSealError> {
        let opened = self
            .key
            .open_noting_key(sealed, |version| {
                (version == SEALED_V1).then(|| factor.as_str().as_bytes().to_vec())
            })
            .ok_or(TotpSealError)?;
        let bytes: [u8; SECRET_BYTES] = opened
            .message
            .as_slice()
            .try_into()
            .map_err(|_| TotpSealError)?;
        Ok((
            TotpSecret(SecretBox::new(Box::new(bytes))),
            opened.under_previous_key,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(bytes: [u8; SECRET_BYTES]) -> TotpSecret {
        TotpSecret(SecretBox::new(Box::new(bytes)))
    }

    /// RFC 6238, appendix B: the SHA-1 vectors (8 digits, the seed "12345678901234567890").
    #[test]
    fn the_rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59_u64, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(seed, time / 30, 8), code, "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_and_no_further() {
        let s = secret(*b"12345678901234567890");
        let at = |unix| OffsetDateTime::from_unix_timestamp(unix).unwrap();
        // 6 digits of the RFC's T = 59 vector: step 1.
        let code = OtpCode::parse("287082").unwrap();
        assert_eq!(s.matching_step(&code, at(59)), Some(1));
        assert_eq!(s.matching_step(&code, at(89)), Some(1), "a step late");
        assert_eq!(s.matching_step(&code, at(5)), Some(1), "a step early");
        assert_eq!(s.matching_step(&code, at(95)), None, "two steps late");
        assert_eq!(
            s.matching_step(&OtpCode::parse("287083").unwrap(), at(59)),
            None
        );
    }

    #[test]
    fn the_uri_names_the_issuer_and_carries_the_secret_in_base32() {
        let s = secret(*b"12345678901234567890");
        assert_eq!(s.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            s.otpauth_uri("alice@example.com"),
            "otpauth://totp/FinHub:alice%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=FinHub&algorithm=SHA1&digits=6&period=30"
        );
        assert!(!format!("{s:?}").contains("GEZ"));
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_factor_and_key() {
        let seal = TotpSeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let s = TotpSecret::generate().unwrap();
        let factor = FactorId::from_stored("factor-1".into());
        let sealed = seal.seal(&s, &factor).unwrap();
        assert_eq!(seal.open(&sealed, &factor).unwrap().base32(), s.base32());
        // The attack: someone who can write the table copies their own app's sealed secret
        // onto the victim's factor.
        let other = FactorId::from_stored("factor-2".into());
        assert!(seal.open(&sealed, &other).is_err());
        assert!(
            TotpSeal::derived_from(&AuditKeys::single(&[8; 32]))
                .unwrap()
                .open(&sealed, &factor)
                .is_err()
        );
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(seal.open(&altered, &factor).is_err());
    }
}
