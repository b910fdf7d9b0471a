//! Recovery codes: ten single-use codes a customer keeps on paper for when their factors are
//! out of reach. Each is ten symbols of Crockford's base32 (50 bits), shown as `XXXXX-XXXXX`,
//! accepted without regard to case, spaces or dashes (and with `I`/`L` read as `1`, `O` as `0`,
//! as Crockford's alphabet reads them), and stored only as a keyed hash.

use std::fmt;

use hmac::Hmac;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::domain::InvalidValue;
use crate::domain::customers::CustomerId;
use crate::domain::keys::{Purpose, PurposeKey};

/// Codes in a set.
pub const CODES_PER_SET: usize = 10;
/// Symbols in a code: 5 bits each.
const SYMBOLS: usize = 10;
/// Crockford's base32: no I, L, O or U, so nothing reads as something else.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One recovery code, normalised (ten upper-case symbols). `Debug` never shows it.
#[derive(Clone)]
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    /// A fresh code from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SYMBOLS];
        getrandom::fill(&mut bytes)?;
        // 256 is a multiple of 32: each symbol is uniform.
        let code: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect();
        Ok(Self(SecretString::from(code)))
    }

    /// A code as typed: case, spaces and dashes do not matter; anything else that is not one
    /// of the alphabet's symbols (or its look-alikes) is refused before a guess is used.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let mut code = String::with_capacity(SYMBOLS);
        for c in raw.chars().filter(|c| !matches!(c, ' ' | '-' | '\t')) {
            let symbol = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return Err(InvalidValue("must be a recovery code")),
            };
            if code.len() == SYMBOLS {
                return Err(InvalidValue("must be a recovery code"));
            }
            code.push(symbol);
        }
        if code.len() == SYMBOLS {
            Ok(Self(SecretString::from(code)))
        } else {
            Err(InvalidValue("must be a recovery code"))
        }
    }

    /// As shown to the customer, once: `XXXXX-XXXXX`.
    pub fn display(&self) -> String {
        let code = self.0.expose_secret();
        format!("{}-{}", &code[..SYMBOLS / 2], &code[SYMBOLS / 2..])
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

/// How recovery codes are hashed for storage: HMAC-SHA256 under a key derived from the audit
/// key, over the customer's id and the code (the same code of two customers hashes apart).
/// Without an audit key, a plain SHA-256 with this purpose's name as a prefix.
pub type RecoveryKey = PurposeKey<RecoveryCodes>;

/// The purpose of [`RecoveryKey`].
#[derive(Debug)]
pub struct RecoveryCodes;

impl Purpose for RecoveryCodes {
    const NAME: &'static [u8] = b"finhub recovery code v1";
}

impl RecoveryKey {
    /// The stored form of `code` for `customer`.
    pub fn hash(&self, customer: &CustomerId, code: &RecoveryCode) -> [u8; 32] {
        match self.mac() {
            Some(mac) => keyed_hash(mac, customer, code),
            None => {
                let mut h = Sha256::new();
                h.update(RecoveryCodes::NAME);
                for part in parts(customer, code) {
                    h.update(part);
                }
                h.finalize().into()
            }
        }
    }

    /// The forms `code` may be stored in: under the current key, then under each previous key
    /// (codes made before a rotation of the audit key stay usable until used).
    pub fn hashes(&self, customer: &CustomerId, code: &RecoveryCode) -> Vec<[u8; 32]> {
        std::iter::once(self.hash(customer, code))
            .chain(
                self.previous_macs()
                    .iter()
                    .map(|mac| keyed_hash(mac, customer, code)),
            )
            .collect()
    }
}

fn parts<'a>(customer: &'a CustomerId, code: &'a RecoveryCode) -> [&'a [u8]; 3] {
    [
        customer.as_str().as_bytes(),
        b":",
        code.0.expose_secret().as_bytes(),
    ]
}

fn keyed_hash(mac: &Hmac<Sha256>, customer: &CustomerId, code: &RecoveryCode) -> [u8; 32] {
    let mut mac = mac.clone();
    for part in parts(customer, code) {
        hmac::Mac::update(&mut mac, part);
    }
    hmac::Mac::finalize(mac).into_bytes().into()
}

/// A fresh set of codes.
pub fn generate_set() -> Result<Vec<RecoveryCode>, getrandom::Error> {
    (0..CODES_PER_SET)
        .map(|_| RecoveryCode::generate())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::AuditKeys;

    #[test]
    fn a_code_is_accepted_without_regard_to_case_spaces_dashes_or_look_alikes() {
        let code = RecoveryCode::parse("ab1d0-fgh2k").unwrap();
        for typed in [
            "AB1D0-FGH2K",
            "ab1d0fgh2k",
            " AB1D0 FGH2K ",
            "abId-O-fgh2k",
            "ABLD0FGH2K",
        ] {
            let again = RecoveryCode::parse(typed).unwrap();
            assert_eq!(again.display(), code.display(), "{typed}");
        }
        assert_eq!(code.display(), "AB1D0-FGH2K");
        for wrong in [
            "",
            "AB1D0-FGH2",
            "AB1D0-FGH2KX",
            "AB1D0-FGH2U",
            "AB1D0-FGH2é",
            "123456",
        ] {
            assert!(RecoveryCode::parse(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn generated_codes_parse_back_and_differ() {
        let set = generate_set().unwrap();
        assert_eq!(set.len(), CODES_PER_SET);
        for code in &set {
            assert_eq!(
                RecoveryCode::parse(&code.display()).unwrap().display(),
                code.display()
            );
            assert!(!format!("{code:?}").contains(&code.display()));
        }
        let mut shown: Vec<String> = set.iter().map(RecoveryCode::display).collect();
        shown.sort();
        shown.dedup();
        assert_eq!(shown.len(), CODES_PER_SET);
    }

    #[test]
    fn hashes_are_keyed_and_per_customer() {
        let code = RecoveryCode::parse("AB1D0-FGH2K").unwrap();
        let alice = CustomerId::from_stored("alice".into());
        let bob = CustomerId::from_stored("bob".into());
        let keyed = RecoveryKey::derived_from(&AuditKeys::single(&[1; 32])).unwrap();
        assert_ne!(keyed.hash(&alice, &code), keyed.hash(&bob, &code));
        assert_ne!(
            keyed.hash(&alice, &code),
            RecoveryKey::unkeyed().hash(&alice, &code)
        );
        assert_eq!(
            keyed.hash(&alice, &code),
            keyed.hash(&alice, &RecoveryCode::parse("ab1d0fgh2k").unwrap())
        );
    }
}
