//! "This wasn't me": the single-use link in every e-mailed security notice that lets the
//! customer stop a thief. The link's token is sealed (ChaCha20-Poly1305 under a key derived from
//! the audit key) with whose it is and until when, so sending one stores nothing; using one
//! stores its random id until the link would have expired, so that each is used once on any
//! instance.

use time::{Duration, OffsetDateTime};

use crate::domain::InvalidValue;
use crate::domain::customers::CustomerId;
use crate::domain::keys::{AuditKeys, SealingKey, is_ticket};

/// Binds the seal to this use of the key.
const ASSOCIATED: &[u8] = b"finhub lockdown link v1";
/// Far above any sealed link (about a hundred characters); bounds what is decoded.
const MAX_TOKEN_CHARS: usize = 512;

/// A lockdown link's token, as the customer brings it back: base64url, opaque to everyone but
/// the service. (No `Debug`: whoever holds it can lock the account.)
#[derive(Clone, PartialEq, Eq)]
pub struct LockdownToken(String);

impl LockdownToken {
    /// Anything of base64url's alphabet, not too long; whether it opens is the seal's to say.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if is_ticket(raw, MAX_TOKEN_CHARS) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue("must be the token of a lockdown link"))
        }
    }

    /// As written into the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// An opened link: still within its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockdownLink {
    /// Random, hex; what using the link stores.
    pub id: String,
    /// Whose account it locks.
    pub customer: CustomerId,
    /// When it stops working, and its id may go.
    pub expires_at: OffsetDateTime,
}

impl LockdownLink {
    /// When the link was issued: with the notice that carried it, so the time of the change
    /// or sign-in that notice told of.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.expires_at - LockdownSeal::VALIDITY
    }
}

/// A link could not be sealed (no random source, a key that could not be derived).
#[derive(Debug, thiserror::Error)]
#[error("a lockdown link could not be sealed")]
pub struct LockdownSealError;

/// Seals lockdown links. Under a key derived from the audit key every instance opens what any
/// other sealed, after restarts too; without an audit key the key is this process's own.
#[derive(Debug, Clone)]
pub struct LockdownSeal {
    key: SealingKey,
}

impl LockdownSeal {
    /// How long a link works.
    pub const VALIDITY: Duration = Duration::days(7);

    /// Under the key derived from the audit key for this purpose alone.
    pub fn derived_from(audit_keys: &AuditKeys) -> Result<Self, LockdownSealError> {
        let key = SealingKey::derived_from(audit_keys, b"finhub lockdown link key v1")
            .ok_or(LockdownSealError)?;
        Ok(Self { key })
    }

    /// Under a random key of this process alone.
    pub fn ephemeral() -> Result<Self, getrandom::Error> {
        Ok(Self {
            key: SealingKey::ephemeral()?,
        })
    }

    /// A fresh link for `customer`, working for [`Self::VALIDITY`] from `issued_at`.
    pub fn issue(
        &self,
        customer: &CustomerId,
        issued_at: OffsetDateTime,
    ) -> Result<LockdownToken, LockdownSealError> {
        let expires_at = issued_at + Self::VALIDITY;
        self.key
            .seal_ticket(ASSOCIATED, expires_at, customer.as_str().as_bytes())
            .map(LockdownToken)
            .ok_or(LockdownSealError)
    }

    /// The link, unless it was sealed under another key, altered, or has expired at `now`.
    pub fn open(&self, token: &LockdownToken, now: OffsetDateTime) -> Option<LockdownLink> {
        let ticket = self.key.open_ticket(ASSOCIATED, token.expose(), now)?;
        Some(LockdownLink {
            id: ticket.id,
            customer: CustomerId::from_stored(String::from_utf8(ticket.payload).ok()?),
            expires_at: ticket.expires_at,
        })
    }
}

/// Writes lockdown links into notices: the web client's public address and a fresh sealed
/// token in its fragment (`{FINHUB_PUBLIC_URL}/#lockdown={token}`), so that no server's access
/// log sees the token on the way.
#[derive(Debug, Clone)]
pub struct LockdownLinks {
    seal: LockdownSeal,
    public_url: String,
}

impl LockdownLinks {
    /// Links to the web client at `public_url`, sealed by `seal`.
    pub fn new(seal: LockdownSeal, public_url: &str) -> Self {
        Self {
            seal,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// How the links' tokens are sealed, for opening the ones that come back.
    pub fn seal(&self) -> &LockdownSeal {
        &self.seal
    }

    /// A fresh link for `customer`, working for seven days from `issued_at`.
    pub fn link(
        &self,
        customer: &CustomerId,
        issued_at: OffsetDateTime,
    ) -> Result<String, LockdownSealError> {
        let token = self.seal.issue(customer, issued_at)?;
        Ok(format!("{}/#lockdown={}", self.public_url, token.expose()))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-04 12:00 UTC);

    fn customer() -> CustomerId {
        CustomerId::from_stored("0193a1b2-0000-7000-8000-000000000001".to_owned())
    }

    #[test]
    fn a_link_opens_for_its_customer_for_seven_days() {
        let seal = LockdownSeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let token = seal.issue(&customer(), NOW).unwrap();
        assert!(
            LockdownToken::parse(token.expose()).is_ok(),
            "parses as sent"
        );
        let link = seal.open(&token, NOW + Duration::days(6)).unwrap();
        assert_eq!(link.customer, customer());
        assert_eq!(link.expires_at, NOW + Duration::days(7));
        assert_eq!(link.issued_at(), NOW, "dated from its notice");
        assert_eq!(link.id.len(), 32, "16 random bytes");
        assert!(
            seal.open(&token, NOW + Duration::days(7)).is_none(),
            "expired"
        );
        let again = seal.issue(&customer(), NOW).unwrap();
        assert_ne!(
            seal.open(&again, NOW).unwrap().id,
            link.id,
            "each link its own id"
        );
    }

    /// The attack: a link edited to lock someone else's account, to last longer, or brought
    /// from another deployment.
    #[test]
    fn an_altered_or_foreign_link_does_not_open() {
        let seal = LockdownSeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap();
        let token = seal.issue(&customer(), NOW).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        for at in [1, 13, 30, bytes.len() - 1] {
            bytes[at] ^= 1;
            let altered = LockdownToken(URL_SAFE_NO_PAD.encode(&bytes));
            assert!(seal.open(&altered, NOW).is_none(), "byte {at} altered");
            bytes[at] ^= 1;
        }
        let other = LockdownSeal::derived_from(&AuditKeys::single(&[8; 32])).unwrap();
        assert!(other.open(&token, NOW).is_none(), "another key");
        assert!(
            LockdownSeal::ephemeral()
                .unwrap()
                .open(&token, NOW)
                .is_none(),
            "another process's key"
        );
        let truncated = LockdownToken(token.expose()[..20].to_owned());
        assert!(seal.open(&truncated, NOW).is_none());
    }

    #[test]
    fn a_link_carries_its_token_in_the_fragment() {
        let links = LockdownLinks::new(
            LockdownSeal::derived_from(&AuditKeys::single(&[7; 32])).unwrap(),
            "https://app.finhub.test/",
        );
        let link = links.link(&customer(), NOW).unwrap();
        let token = link
            .strip_prefix("https://app.finhub.test/#lockdown=")
            .unwrap();
        let token = LockdownToken::parse(token).unwrap();
        assert_eq!(links.seal().open(&token, NOW).unwrap().customer, customer());
    }

    #[test]
    fn only_base64url_of_a_bounded_length_parses() {
        assert!(LockdownToken::parse("").is_err());
        assert!(LockdownToken::parse("abc=").is_err());
        assert!(LockdownToken::parse("a/b").is_err());
        assert!(LockdownToken::parse(&"a".repeat(MAX_TOKEN_CHARS + 1)).is_err());
        assert!(LockdownToken::parse(&"a".repeat(MAX_TOKEN_CHARS)).is_ok());
    }
}
