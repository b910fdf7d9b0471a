//! Session and refresh tokens: 256 bits from the operating system's CSPRNG, sent as base64url,
//! stored only as SHA-256 hashes. A token's hash is its lookup key, so a database reader learns
//! no usable token and lookup timing says nothing about the token's bytes.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const TOKEN_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const TOKEN_CHARS: usize = 43;

/// Marks a bearer (`bffToken`) token.
#[derive(Debug, Clone, Copy)]
pub enum Access {}
/// Marks a refresh token.
#[derive(Debug, Clone, Copy)]
pub enum Refresh {}

/// An opaque secret token of kind `K`. `Debug` never shows it.
pub struct Token<K> {
    secret: SecretString,
    kind: PhantomData<K>,
}

/// The bearer token a session's calls carry.
pub type SessionToken = Token<Access>;
/// The token that renews a session.
pub type RefreshToken = Token<Refresh>;

impl<K> Token<K> {
    /// A fresh random token.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_encoded(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accepts only strings of the exact shape this service issues, so garbage never reaches
    /// the store.
    pub fn parse(raw: &str) -> Option<Self> {
        let shaped = raw.len() == TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then(|| Self::from_encoded(raw.to_owned()))
    }

    fn from_encoded(encoded: String) -> Self {
        Self {
            secret: SecretString::from(encoded),
            kind: PhantomData,
        }
    }

    /// What goes to the customer, once.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// What the store keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.expose().as_bytes()).into())
    }
}

impl<K> fmt::Debug for Token<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

/// The SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The 32 bytes the store keeps.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps a hash read back from storage; `None` if it has the wrong length.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A freshly issued pair, with the hashes the store keeps.
#[derive(Debug)]
pub struct TokenPair {
    /// The bffToken, sent with every call.
    pub access: SessionToken,
    /// The refresh token, sent only to renew.
    pub refresh: RefreshToken,
}

impl TokenPair {
    /// A new pair from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Ok(Self {
            access: SessionToken::generate()?,
            refresh: RefreshToken::generate()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_base64url_chars_and_differ() {
        let a = SessionToken::generate().unwrap();
        let b = SessionToken::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert!(SessionToken::parse(a.expose()).is_some());
    }

    #[test]
    fn parsing_refuses_anything_not_shaped_like_a_token() {
        assert!(SessionToken::parse("garbage").is_none());
        assert!(SessionToken::parse(&"a".repeat(44)).is_none());
        assert!(SessionToken::parse(&format!("{}=", "a".repeat(42))).is_none());
    }

    #[test]
    fn the_hash_is_stable_and_debug_hides_the_secret() {
        let t = RefreshToken::generate().unwrap();
        let again = RefreshToken::parse(t.expose()).unwrap();
        assert_eq!(t.hash(), again.hash());
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
