//! Keys derived from one secret (the audit key), one per purpose: no other secret needs
//! managing, and no purpose's key can stand in for another's.

use std::marker::PhantomData;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{AeadCore as _, ChaCha20Poly1305};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::clock::{from_unix_millis, to_unix_millis};

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

/// What a [`PurposeKey`] is for: its name is what its key is derived for, and what unkeyed
/// hashes take as a prefix, so no two purposes' hashes collide.
pub trait Purpose {
    /// The purpose's name, versioned.
    const NAME: &'static [u8];
}

/// A keyed hash for one purpose: HMAC-SHA256 under the key derived for it from the audit key,
/// or, with no audit key set, none (each purpose then hashes plainly in its own way, as start-up
/// warns). Never shows the key.
pub struct PurposeKey<P> {
    mac: Option<Hmac<Sha256>>,
    purpose: PhantomData<P>,
}

impl<P> Clone for PurposeKey<P> {
    fn clone(&self) -> Self {
        Self {
            mac: self.mac.clone(),
            purpose: PhantomData,
        }
    }
}

impl<P: Purpose> std::fmt::Debug for PurposeKey<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyed = if self.mac.is_some() {
            "keyed"
        } else {
            "unkeyed"
        };
        write!(
            f,
            "PurposeKey({}, {keyed})",
            String::from_utf8_lossy(P::NAME)
        )
    }
}

impl<P: Purpose> PurposeKey<P> {
    /// No key: for when no audit key is set.
    pub fn unkeyed() -> Self {
        Self {
            mac: None,
            purpose: PhantomData,
        }
    }

    /// The key for the purpose derived from `secret` (the audit key); an error, never an
    /// unkeyed hash, if it cannot be.
    pub fn derived_from(secret: &[u8]) -> Result<Self, KeyError> {
        Ok(Self {
            mac: Some(purpose_mac(secret, P::NAME)?),
            purpose: PhantomData,
        })
    }

    /// The keyed MAC, ready for a message (clone it first); `None` when unkeyed.
    pub fn mac(&self) -> Option<&Hmac<Sha256>> {
        self.mac.as_ref()
    }
}

/// ChaCha20-Poly1305 under one purpose's key: what it seals reads `[version][nonce][ciphertext]`,
/// under a fresh random nonce each time, and opens only under the same key and associated data
/// (what it is bound to: a factor, a challenge and address, a purpose). Never shows the key.
#[derive(Clone)]
pub struct SealingKey {
    cipher: Arc<ChaCha20Poly1305>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey")
    }
}

const NONCE_BYTES: usize = 12;

impl SealingKey {
    /// The key derived from `secret` (the audit key) for `purpose`; `None` only if HMAC refused
    /// the secret.
    pub fn derived_from(secret: &[u8], purpose: &[u8]) -> Option<Self> {
        let key = derive(secret, purpose)?;
        Some(Self::new(key))
    }

    /// A random key of this process alone: what it seals does not open elsewhere, or after a
    /// restart.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: Arc::new(<ChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(
                &key.into(),
            )),
        }
    }

    /// `message` sealed and bound to `aad`, tagged with the format's `version`. `None` only if
    /// the cipher refused it (a message of gigabytes).
    pub fn seal(&self, version: u8, message: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: message, aad })
            .ok()?;
        Some([&[version][..], &nonce[..], &sealed].concat())
    }

    /// The message, with the associated data `aad_of` gives for the sealed version (`None`: a
    /// version not opened any more); `None` when it was sealed under another key, bound to
    /// other data, or altered.
    pub fn open(
        &self,
        sealed: &[u8],
        aad_of: impl FnOnce(u8) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        let aad = aad_of(version)?;
        if rest.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()
    }
}

/// What a sealed ticket carries: a random id (hex), when it stops being valid, and its payload.
/// Passkey logins' ceremonies and lockdown links travel as tickets, so that issuing one stores
/// nothing and nobody but the service can read or alter one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// 16 random bytes, hex: what using the ticket once records.
    pub id: String,
    /// When the ticket stops opening.
    pub expires_at: OffsetDateTime,
    /// What the ticket's purpose seals into it.
    pub payload: Vec<u8>,
}

const TICKET_V1: u8 = 1;
const TICKET_ID_BYTES: usize = 16;
const TICKET_EXPIRY_BYTES: usize = 8;

/// Whether `raw` could be a sealed ticket: base64url, not empty, at most `max` characters. (Whether
/// it opens is the key's to say; this only bounds what is decoded.)
pub fn is_ticket(raw: &str, max: usize) -> bool {
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    !raw.is_empty() && raw.len() <= max && raw.bytes().all(base64url)
}

impl SealingKey {
    /// A new ticket carrying `payload` until `expires_at`, under a fresh random id, bound to
    /// `aad` (its purpose), as base64url; `None` without a random source.
    pub fn seal_ticket(
        &self,
        aad: &[u8],
        expires_at: OffsetDateTime,
        payload: &[u8],
    ) -> Option<String> {
        let mut id = [0u8; TICKET_ID_BYTES];
        getrandom::fill(&mut id).ok()?;
        let plain = [&id[..], &to_unix_millis(expires_at).to_be_bytes(), payload].concat();
        let sealed = self.seal(TICKET_V1, &plain, aad)?;
        Some(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The ticket, unless it is not base64url, was sealed under another key or for another
    /// purpose, was altered, or has expired at `now`.
    pub fn open_ticket(&self, aad: &[u8], ticket: &str, now: OffsetDateTime) -> Option<Ticket> {
        let sealed = URL_SAFE_NO_PAD.decode(ticket).ok()?;
        let plain = self.open(&sealed, |version| {
            (version == TICKET_V1).then(|| aad.to_vec())
        })?;
        let (id, rest) = plain.split_at_checked(TICKET_ID_BYTES)?;
        let (expiry, payload) = rest.split_at_checked(TICKET_EXPIRY_BYTES)?;
        let expires_at = from_unix_millis(i64::from_be_bytes(expiry.try_into().ok()?));
        (expires_at > now).then(|| Ticket {
            id: hex::encode(id),
            expires_at,
            payload: payload.to_vec(),
        })
    }
}
