//! Keys derived from one secret (the audit key), one per purpose: no other secret needs
//! managing, and no purpose's key can stand in for another's. The audit key can be rotated:
//! the service then knows several ([`AuditKeys`]), each by its id; everything new is sealed or
//! hashed under the current one, and what was made under a previous one still opens.

use std::marker::PhantomData;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{AeadCore as _, ChaCha20Poly1305};
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretSlice};
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

/// An audit key's public name: the first 8 bytes of HMAC-SHA256("finhub key id v1") under it,
/// hex. It names the key in links, anchors and logs without giving anything of it away, and
/// needs no setting of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id of `secret`.
    pub fn of(secret: &[u8]) -> Self {
        let digest = derive(secret, b"finhub key id v1").unwrap_or_default();
        Self(hex::encode(&digest[..8]))
    }

    /// 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The audit keys the service knows: the current one, which seals and hashes everything new,
/// then the previous ones, newest first, which only open and match what was made under them
/// (until it is re-sealed or re-hashed on its next use, or expires). Never shows a key.
#[derive(Clone)]
pub struct AuditKeys {
    keys: Arc<[(KeyId, SecretSlice<u8>)]>,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

/// Two configured keys with one id: the same key twice (or, with odds of 2^-64, a collision).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit key {0} is configured twice")]
pub struct DuplicateKey(pub KeyId);

impl AuditKeys {
    /// `current` and the `previous` keys, newest first.
    pub fn new<'a>(
        current: &'a [u8],
        previous: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, DuplicateKey> {
        let mut keys: Vec<(KeyId, SecretSlice<u8>)> = Vec::new();
        for secret in std::iter::once(current).chain(previous) {
            let id = KeyId::of(secret);
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(DuplicateKey(id));
            }
            keys.push((id, SecretSlice::from(secret.to_vec())));
        }
        Ok(Self { keys: keys.into() })
    }

    /// One key, none before it.
    pub fn single(current: &[u8]) -> Self {
        Self {
            keys: Arc::new([(KeyId::of(current), SecretSlice::from(current.to_vec()))]),
        }
    }

    /// The key everything new is made under.
    pub fn current_id(&self) -> &KeyId {
        &self.keys[0].0
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }

    /// Every key, the current one first.
    pub fn secrets(&self) -> impl Iterator<Item = (&KeyId, &[u8])> {
        self.keys.iter().map(|(id, key)| (id, key.expose_secret()))
    }

    /// The purpose key for `purpose` under every key, the current one first.
    pub fn purpose_macs(&self, purpose: &[u8]) -> Result<Vec<Hmac<Sha256>>, KeyError> {
        self.secrets()
            .map(|(_, key)| purpose_mac(key, purpose))
            .collect()
    }
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
    /// Under each audit key, the current one first; empty when unkeyed.
    macs: Arc<[Hmac<Sha256>]>,
    purpose: PhantomData<P>,
}

impl<P> Clone for PurposeKey<P> {
    fn clone(&self) -> Self {
        Self {
            macs: Arc::clone(&self.macs),
            purpose: PhantomData,
        }
    }
}

impl<P: Purpose> std::fmt::Debug for PurposeKey<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyed = if self.is_keyed() { "keyed" } else { "unkeyed" };
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
            macs: Arc::new([]),
            purpose: PhantomData,
        }
    }

    /// The key for the purpose derived from each of `keys`; an error, never an unkeyed hash,
    /// if one cannot be.
    pub fn derived_from(keys: &AuditKeys) -> Result<Self, KeyError> {
        Ok(Self {
            macs: keys.purpose_macs(P::NAME)?.into(),
            purpose: PhantomData,
        })
    }

    fn is_keyed(&self) -> bool {
        !self.macs.is_empty()
    }

    /// The keyed MAC under the current key, ready for a message (clone it first); `None` when
    /// unkeyed.
    pub fn mac(&self) -> Option<&Hmac<Sha256>> {
        self.macs.first()
    }

    /// The keyed MACs under the previous keys, newest first: what a hash made before a
    /// rotation is matched with.
    pub fn previous_macs(&self) -> &[Hmac<Sha256>] {
        self.macs.get(1..).unwrap_or_default()
    }
}

/// ChaCha20-Poly1305 under one purpose's key: what it seals reads `[version][nonce][ciphertext]`,
/// under a fresh random nonce each time, and opens only under the same key and associated data
/// (what it is bound to: a factor, a challenge and address, a purpose). Never shows the key.
#[derive(Clone)]
pub struct SealingKey {
    /// Under each audit key, the current one first.
    ciphers: Arc<[ChaCha20Poly1305]>,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey")
    }
}

const NONCE_BYTES: usize = 12;

/// What [`SealingKey::open_noting_key`] opened.
#[derive(Debug)]
pub struct Opened {
    /// The message.
    pub message: Vec<u8>,
    /// Sealed under a previous key, not the current one.
    pub under_previous_key: bool,
}

impl SealingKey {
    /// The key derived from each of `keys` for `purpose`; `None` only if HMAC refused one.
    pub fn derived_from(keys: &AuditKeys, purpose: &[u8]) -> Option<Self> {
        let ciphers: Option<Vec<_>> = keys
            .secrets()
            .map(|(_, secret)| derive(secret, purpose).map(Self::cipher))
            .collect();
        Some(Self {
            ciphers: ciphers?.into(),
        })
    }

    /// A random key of this process alone: what it seals does not open elsewhere, or after a
    /// restart.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self {
            ciphers: Arc::new([Self::cipher(key)]),
        })
    }

    fn cipher(key: [u8; 32]) -> ChaCha20Poly1305 {
        <ChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(&key.into())
    }

    /// `message` sealed and bound to `aad`, tagged with the format's `version`. `None` only if
    /// the cipher refused it (a message of gigabytes).
    pub fn seal(&self, version: u8, message: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
        let sealed = self
            .ciphers
            .first()?
            .encrypt(&nonce, Payload { msg: message, aad })
            .ok()?;
        Some([&[version][..], &nonce[..], &sealed].concat())
    }

    /// The message, with the associated data `aad_of` gives for the sealed version (`None`: a
    /// version not opened any more); `None` when it was sealed under none of the keys, bound to
    /// other data, or altered.
    pub fn open(
        &self,
        sealed: &[u8],
        aad_of: impl FnOnce(u8) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        self.open_noting_key(sealed, aad_of).map(|o| o.message)
    }

    /// The same, saying whether it was sealed under a previous key (and is worth sealing again
    /// under the current one).
    pub fn open_noting_key(
        &self,
        sealed: &[u8],
        aad_of: impl FnOnce(u8) -> Option<Vec<u8>>,
    ) -> Option<Opened> {
        let (&version, rest) = sealed.split_first()?;
        let aad = aad_of(version)?;
        if rest.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let payload = || Payload {
            msg: body,
            aad: &aad,
        };
        // A previous key is tried only after the current one refused: nothing sealed since the
        // rotation pays for it.
        self.ciphers.iter().enumerate().find_map(|(at, cipher)| {
            let message = cipher.decrypt(nonce.into(), payload()).ok()?;
            Some(Opened {
                message,
                under_previous_key: at > 0,
            })
        })
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

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
