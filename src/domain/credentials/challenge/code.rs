//! Six-digit codes: drawn, hashed for storage (keyed), and compared as a challenge's answer.

use std::fmt;

use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Answer, Challenge, ChallengeId};
use crate::domain::InvalidValue;
use crate::domain::keys::{Purpose, PurposeKey};

/// The number of digits in a code.
pub const CODE_LENGTH: usize = 6;

/// A six-digit one-time code. `Debug` never shows it.
#[derive(Clone)]
pub struct OtpCode(SecretString);

impl OtpCode {
    /// A uniformly random code from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        // Rejection sampling: 4_294_000_000 is the largest multiple of 10^6 below 2^32, so every
        // code is equally likely.
        loop {
            let n = getrandom::u32()?;
            if n < 4_294_000_000 {
                return Ok(Self(SecretString::from(format!("{:06}", n % 1_000_000))));
            }
        }
    }

    /// A code as typed by the customer: exactly six ASCII digits, or refused before any guess is
    /// used.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.len() == CODE_LENGTH && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(SecretString::from(raw.to_owned())))
        } else {
            Err(InvalidValue("must be 6 digits"))
        }
    }

    /// For the notifier only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode([REDACTED])")
    }
}

/// How codes are hashed for storage: HMAC-SHA256 under a key derived from the audit key, so
/// that reading the database is not enough to find a live code (a six-digit code under a plain
/// hash falls to a million guesses offline). Without an audit key, a plain SHA-256, as start-up
/// warns.
pub type CodeKey = PurposeKey<ChallengeCodes>;

/// The purpose of [`CodeKey`].
#[derive(Debug)]
pub struct ChallengeCodes;

impl Purpose for ChallengeCodes {
    const NAME: &'static [u8] = b"finhub challenge code v1";
}

impl CodeKey {
    /// The stored form of `code` for `challenge`; the challenge id is part of what is hashed,
    /// so equal codes in two challenges hash differently.
    pub fn hash(&self, code: &OtpCode, challenge: &ChallengeId) -> CodeHash {
        self.hash_for(code, challenge.as_str())
    }

    /// The stored form of `code` sent for `subject` (a challenge's or a password reset's id).
    pub fn hash_for(&self, code: &OtpCode, subject: &str) -> CodeHash {
        match self.mac() {
            Some(mac) => CodeHash::Keyed(keyed_digest(mac, code, subject)),
            None => CodeHash::Plain(plain_digest(code, subject)),
        }
    }

    /// A presented code, hashed in every scheme a stored challenge may use.
    pub fn presented(&self, code: &OtpCode, challenge: &ChallengeId) -> PresentedCode {
        self.presented_for(code, challenge.as_str())
    }

    /// A code presented for `subject`, hashed in every scheme its stored hash may use.
    pub fn presented_for(&self, code: &OtpCode, subject: &str) -> PresentedCode {
        PresentedCode {
            plain: plain_digest(code, subject),
            keyed: self.mac().map(|mac| keyed_digest(mac, code, subject)),
            // Codes sent before a rotation of the audit key still verify while they live.
            previous: self
                .previous_macs()
                .iter()
                .map(|mac| keyed_digest(mac, code, subject))
                .collect(),
        }
    }
}

pub(super) fn plain_digest(code: &OtpCode, subject: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(subject.as_bytes());
    h.update(b":");
    h.update(code.expose().as_bytes());
    h.finalize().into()
}

fn keyed_digest(mac: &Hmac<Sha256>, code: &OtpCode, subject: &str) -> [u8; 32] {
    mac.clone()
        .chain_update(subject.as_bytes())
        .chain_update(b":")
        .chain_update(code.expose().as_bytes())
        .finalize()
        .into_bytes()
        .into()
}

/// The stored hash of a code, with its scheme. The scheme is marked in the stored bytes (a
/// keyed hash is a tag byte and 32 bytes, a plain one 32 bytes), so no migration was needed.
///
/// Challenges opened before codes were keyed hold plain hashes; they are still accepted, until
/// they expire (a few minutes after the upgrade), so that a customer mid-login is not refused
/// a right code. Every challenge opened with a key holds a keyed hash.
#[derive(Clone, Copy)]
pub enum CodeHash {
    /// SHA-256 over the challenge id and the code: without an audit key, or from before codes
    /// were keyed.
    Plain([u8; 32]),
    /// HMAC-SHA256 under the code key.
    Keyed([u8; 32]),
}

const KEYED_CODE_TAG: u8 = 1;

impl CodeHash {
    /// The bytes stored in `challenges.code_hash`.
    pub fn to_stored(&self) -> Vec<u8> {
        match self {
            Self::Plain(digest) => digest.to_vec(),
            Self::Keyed(digest) => [&[KEYED_CODE_TAG][..], digest].concat(),
        }
    }

    /// Reads `challenges.code_hash` back; `None` if the bytes fit neither scheme.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [KEYED_CODE_TAG, digest @ ..] if digest.len() == 32 => {
                digest.try_into().ok().map(Self::Keyed)
            }
            digest => digest.try_into().ok().map(Self::Plain),
        }
    }

    /// Whether `presented` is the code this hash was made of, compared in constant time in the
    /// hash's own scheme.
    pub fn matches(&self, presented: &PresentedCode) -> bool {
        match (self, &presented.keyed) {
            (Self::Plain(stored), _) => stored.ct_eq(&presented.plain).into(),
            (Self::Keyed(stored), Some(keyed)) => {
                let previous = presented
                    .previous
                    .iter()
                    .fold(subtle::Choice::from(0), |found, digest| {
                        found | stored.ct_eq(digest)
                    });
                (stored.ct_eq(keyed) | previous).into()
            }
            // A keyed hash cannot be checked without the key.
            (Self::Keyed(_), None) => false,
        }
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "CodeHash::Plain(..)",
            Self::Keyed(_) => "CodeHash::Keyed(..)",
        })
    }
}

impl Answer for PresentedCode {
    /// The code the challenge's hash was made of, compared in constant time.
    fn is_right(&self, challenge: &Challenge) -> bool {
        challenge.method.factor().is_some()
            && challenge
                .code_hash
                .as_ref()
                .is_some_and(|hash| hash.matches(self))
    }
}

/// A presented code, hashed in each scheme (see [`CodeHash`]).
#[derive(Clone)]
pub struct PresentedCode {
    plain: [u8; 32],
    keyed: Option<[u8; 32]>,
    /// Under each previous audit key, newest first.
    previous: Vec<[u8; 32]>,
}

impl fmt::Debug for PresentedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedCode(..)")
    }
}
