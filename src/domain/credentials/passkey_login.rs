//! A passkey login's ceremony travels sealed in the `challengeId` the browser answers with, so
//! opening one writes nothing: a passkey login commits once, as a password login does. The
//! seal (ChaCha20-Poly1305 under a key derived from the audit key) keeps the state from being
//! altered and carries its expiry; the store keeps only the ids of answered ceremonies, until
//! they expire, so that each is answered once on any instance.

use time::OffsetDateTime;

use super::passkey::CeremonyState;
use crate::domain::InvalidValue;
use crate::domain::keys::{AuditKeys, SealingKey, is_ticket};

/// Binds the seal to this use of the key.
const ASSOCIATED: &[u8] = b"finhub passkey login v1";
/// Far above any sealed ceremony (a few hundred characters); bounds what is decoded.
const MAX_TICKET_CHARS: usize = 2048;

/// The `challengeId` of a passkey login: its sealed ceremony, base64url. Opaque to everyone
/// but the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyLoginId(String);

impl PasskeyLoginId {
    /// Anything of base64url's alphabet, not too long; whether it opens is the seal's to say.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if is_ticket(raw, MAX_TICKET_CHARS) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(
                "must be the challengeId returned by auth/passkey/options",
            ))
        }
    }

    /// As given to the browser.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PasskeyLoginId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an answered ceremony leaves in the store: its random id, kept until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredCeremony {
    /// Random, hex; nothing else names the ceremony.
    pub id: String,
    /// When the ceremony stops being answerable, and its id may go.
    pub expires_at: OffsetDateTime,
}

/// A sealed ceremony, opened: still within its time.
#[derive(Debug, Clone)]
pub struct OpenedCeremony {
    /// What answering it stores.
    pub answered: AnsweredCeremony,
    /// The state its answer is verified against.
    pub state: CeremonyState,
}

/// A ceremony could not be sealed (no random source, a key that could not be derived).
#[derive(Debug, thiserror::Error)]
#[error("a passkey login's ceremony could not be sealed")]
pub struct CeremonySealError;

/// Seals passkey logins' ceremonies. Under a key derived from the audit key every instance
/// opens what any other sealed; without an audit key the key is this process's own, and a
/// ceremony is answered on the instance that opened it (as `serve` warns).
#[derive(Debug, Clone)]
pub struct CeremonySeal {
    key: SealingKey,
}

impl CeremonySeal {
    /// Under the key derived from the audit key for this purpose alone.
    pub fn derived_from(audit_keys: &AuditKeys) -> Result<Self, CeremonySealError> {
        let key = SealingKey::derived_from(audit_keys, b"finhub passkey login key v1")
            .ok_or(CeremonySealError)?;
        Ok(Self { key })
    }

    /// Under a random key of this process alone.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        Ok(Self {
            key: SealingKey::ephemeral()?,
        })
    }

    /// `state`, answerable until `expires_at`, under a fresh random id.
    pub fn seal(
        &self,
        state: &CeremonyState,
        expires_at: OffsetDateTime,
    ) -> Result<PasskeyLoginId, CeremonySealError> {
        self.key
            .seal_ticket(ASSOCIATED, expires_at, state.0.as_bytes())
            .map(PasskeyLoginId)
            .ok_or(CeremonySealError)
    }

    /// The ceremony, unless it was sealed under another key, altered, or has expired at `now`.
    pub fn open(&self, id: &PasskeyLoginId, now: OffsetDateTime) -> Option<OpenedCeremony> {
        let ticket = self.key.open_ticket(ASSOCIATED, id.as_str(), now)?;
        Some(OpenedCeremony {
            answered: AnsweredCeremony {
                id: ticket.id,
                expires_at: ticket.expires_at,
            },
            state: CeremonyState(String::from_utf8(ticket.payload).ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 12:00 UTC);

    fn state() -> CeremonyState {
        CeremonyState(r#"{"ast":{"challenge":"abc"}}"#.to_owned())
    }

    #[test]
    fn a_sealed_ceremony_opens_with_its_state_until_it_expires() {
        let seal = CeremonySeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let expires_at = NOW + Duration::minutes(5);
        let id = seal.seal(&state(), expires_at).unwrap();
        assert!(PasskeyLoginId::parse(id.as_str()).is_ok(), "parses as sent");
        let opened = seal.open(&id, NOW).unwrap();
        assert_eq!(opened.state, state());
        assert_eq!(opened.answered.expires_at, expires_at);
        assert_eq!(opened.answered.id.len(), 32, "16 random bytes");
        assert!(seal.open(&id, expires_at).is_none(), "expired");
        let again = seal.seal(&state(), expires_at).unwrap();
        assert_ne!(
            seal.open(&again, NOW).unwrap().answered.id,
            opened.answered.id,
            "each ceremony its own id"
        );
    }

    /// The attack: a client that edits its ceremony (a later expiry, a challenge of its choosing,
    /// a spent ceremony's id) or brings one from another deployment.
    #[test]
    fn an_altered_or_foreign_ceremony_does_not_open() {
        let seal = CeremonySeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let id = seal.seal(&state(), NOW + Duration::minutes(5)).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(id.as_str()).unwrap();
        for at in [1, 13, bytes.len() - 1] {
            bytes[at] ^= 1;
            let altered = PasskeyLoginId(URL_SAFE_NO_PAD.encode(&bytes));
            assert!(seal.open(&altered, NOW).is_none(), "byte {at} altered");
            bytes[at] ^= 1;
        }
        let other = CeremonySeal::derived_from(&AuditKeys::single(&[8; 32])).unwrap();
        assert!(other.open(&id, NOW).is_none(), "another key");
        assert!(
            CeremonySeal::ephemeral().unwrap().open(&id, NOW).is_none(),
            "another process's key"
        );
        let truncated = PasskeyLoginId(id.as_str()[..20].to_owned());
        assert!(seal.open(&truncated, NOW).is_none());
    }

    #[test]
    fn only_base64url_of_a_bounded_length_parses() {
        assert!(PasskeyLoginId::parse("").is_err());
        assert!(PasskeyLoginId::parse("abc=").is_err());
        assert!(PasskeyLoginId::parse("a b").is_err());
        assert!(PasskeyLoginId::parse(&"a".repeat(MAX_TICKET_CHARS + 1)).is_err());
        assert!(PasskeyLoginId::parse("AZaz09-_").is_ok());
    }
}
