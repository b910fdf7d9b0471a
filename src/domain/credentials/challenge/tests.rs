//! Tests of `two_factor.rs`.

use super::code::plain_digest;
use super::*;
use crate::domain::keys::AuditKeys;

#[test]
fn codes_are_six_digits() {
    for _ in 0..200 {
        let code = OtpCode::generate().unwrap();
        assert_eq!(code.expose().len(), 6);
        assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
    }
}

#[test]
fn only_six_digit_strings_parse() {
    assert!(OtpCode::parse("012345").is_ok());
    for bad in ["12345", "1234567", "12345a", " 123456", "١٢٣٤٥٦"] {
        assert!(OtpCode::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_code_matches_its_own_hash_only_for_its_challenge() {
    let a = ChallengeId::generate();
    let b = ChallengeId::generate();
    let code = OtpCode::parse("123456").unwrap();
    for key in [
        CodeKey::unkeyed(),
        CodeKey::derived_from(&AuditKeys::single(&[7; 32])).unwrap(),
    ] {
        let stored = key.hash(&code, &a);
        assert!(stored.matches(&key.presented(&OtpCode::parse("123456").unwrap(), &a)));
        assert!(!stored.matches(&key.presented(&code, &b)));
        assert!(!stored.matches(&key.presented(&OtpCode::parse("123457").unwrap(), &a)));
    }
    assert!(!format!("{code:?}").contains("123456"));
}

/// Reading the database must not be enough to find a live code: with a key, the stored
/// hash is not the SHA-256 a million offline guesses would find, and another key's hash
/// of the same code differs.
#[test]
fn a_keyed_code_hash_cannot_be_brute_forced_from_the_database() {
    let challenge = ChallengeId::generate();
    let code = OtpCode::parse("042042").unwrap();
    let keyed = CodeKey::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
    let stored = keyed.hash(&code, &challenge);
    let CodeHash::Keyed(digest) = stored else {
        panic!("a key makes keyed hashes");
    };
    assert_ne!(digest, plain_digest(&code, challenge.as_str()));
    let other = CodeKey::derived_from(&AuditKeys::single(&[8; 32])).unwrap();
    assert!(!stored.matches(&other.presented(&code, &challenge)));
    assert!(!stored.matches(&CodeKey::unkeyed().presented(&code, &challenge)));
    // The scheme is kept in the stored bytes.
    let bytes = stored.to_stored();
    assert_eq!(bytes.len(), 33);
    assert!(
        CodeHash::from_stored(&bytes)
            .unwrap()
            .matches(&keyed.presented(&code, &challenge))
    );
}

/// A challenge opened before codes were keyed holds a plain hash; its right code is still
/// accepted (until it expires), and a wrong one is not.
#[test]
fn a_plain_hash_from_before_the_key_still_verifies() {
    let challenge = ChallengeId::generate();
    let code = OtpCode::parse("314159").unwrap();
    let before = CodeKey::unkeyed().hash(&code, &challenge).to_stored();
    assert_eq!(before.len(), 32);
    let stored = CodeHash::from_stored(&before).unwrap();
    let keyed = CodeKey::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
    assert!(stored.matches(&keyed.presented(&code, &challenge)));
    assert!(!stored.matches(&keyed.presented(&OtpCode::parse("314158").unwrap(), &challenge)));
    assert!(CodeHash::from_stored(&[1; 31]).is_none());
}
