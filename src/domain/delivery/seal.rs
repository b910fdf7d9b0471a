//! Codes sealed while they wait in the outbox.

use crate::domain::credentials::challenge::OtpCode;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::keys::{AuditKeys, SealingKey};

/// Seals codes while they wait in the outbox: ChaCha20-Poly1305 under a key derived from the
/// audit key, bound to the challenge, channel and address (a sealed code copied to another row,
/// or a row whose address was changed to the attacker's, does not open).
/// Without an audit key the key is random and lives only in this process: codes are still never
/// stored in clear, but one queued by another instance, or before a restart, cannot be opened
/// (its send is given back, so the customer can ask again), as `serve` warns.
#[derive(Debug, Clone)]
pub struct CodeSeal {
    key: SealingKey,
}

const SEALED: u8 = 1;
const SEALED_FOR_ADDRESS: u8 = 2;

/// Whom a sealed code is for: it opens only for the same challenge (or reset), channel and
/// address.
#[derive(Debug, Clone, Copy)]
pub struct SealedFor<'a> {
    /// The id of what the code answers: a challenge's, or a password reset's.
    pub subject: &'a str,
    /// The channel it is to go by.
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address it is to go to: a sealed code moved to another
    /// address does not open.
    pub address: &'a str,
}

impl SealedFor<'_> {
    /// Length-prefixed parts, so that no two different triples share a byte string.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        for part in [self.subject, self.channel.as_str(), self.address] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl CodeSeal {
    /// Under a random key of this process alone.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        Ok(Self {
            key: SealingKey::ephemeral()?,
        })
    }

    /// Under a key derived from the audit key, so that no other secret needs managing.
    pub fn derived_from(audit_keys: &AuditKeys) -> Result<Self, SealError> {
        let key =
            SealingKey::derived_from(audit_keys, b"finhub outbox code key v1").ok_or(SealError)?;
        Ok(Self { key })
    }

    /// Encrypts `code` for `to` with a fresh random nonce, so that the outbox row never holds it in
    /// clear.
    pub fn seal(&self, code: &OtpCode, to: &SealedFor<'_>) -> Result<Vec<u8>, SealError> {
        self.key
            .seal(
                SEALED_FOR_ADDRESS,
                code.expose().as_bytes(),
                &to.associated_data(),
            )
            .ok_or(SealError)
    }

    /// The code, or `None` when it was sealed under another key, for another challenge or
    /// address, or altered.
    pub fn open(&self, sealed: &[u8], to: &SealedFor<'_>) -> Option<OtpCode> {
        let plain = self.key.open(sealed, |version| match version {
            SEALED_FOR_ADDRESS => Some(to.associated_data()),
            // Queued by an earlier version, bound to the challenge alone; gone within minutes.
            SEALED => Some(to.subject.as_bytes().to_vec()),
            _ => None,
        })?;
        OtpCode::parse(std::str::from_utf8(&plain).ok()?).ok()
    }
}

/// A code could not be sealed, or the key derived; no challenge is opened without its sealed code.
#[derive(Debug, thiserror::Error)]
#[error("the code could not be sealed")]
pub struct SealError;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::challenge::ChallengeId;

    #[test]
    fn a_sealed_code_opens_only_for_its_challenge_address_and_key() {
        let seal = CodeSeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let code = OtpCode::parse("123456").unwrap();
        let challenge = ChallengeId::parse("challenge-1").unwrap();
        let for_ = |subject, address| SealedFor {
            subject,
            channel: TwoFactorMethod::Sms,
            address,
        };
        let to_alice = for_(challenge.as_str(), "+447700900001");
        let sealed = seal.seal(&code, &to_alice).unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"123456"),
            "the code is not readable at rest"
        );
        let opened = seal.open(&sealed, &to_alice).unwrap();
        assert_eq!(opened.expose(), "123456");
        let other = ChallengeId::parse("challenge-2").unwrap();
        assert!(
            seal.open(&sealed, &for_(other.as_str(), "+447700900001"))
                .is_none(),
            "bound to its challenge"
        );
        // The attack: someone who can write the outbox row points it at their own phone.
        assert!(
            seal.open(&sealed, &for_(challenge.as_str(), "+447700900666"))
                .is_none(),
            "bound to its address"
        );
        let by_email = SealedFor {
            channel: TwoFactorMethod::Email,
            ..to_alice
        };
        assert!(
            seal.open(&sealed, &by_email).is_none(),
            "bound to its channel"
        );
        assert!(
            CodeSeal::derived_from(&AuditKeys::single(&[8; 32]))
                .unwrap()
                .open(&sealed, &to_alice)
                .is_none()
        );
        assert!(
            CodeSeal::ephemeral()
                .unwrap()
                .open(&sealed, &to_alice)
                .is_none()
        );
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(seal.open(&altered, &to_alice).is_none());
        assert_ne!(
            sealed,
            seal.seal(&code, &to_alice).unwrap(),
            "a fresh nonce each time"
        );
    }
}
