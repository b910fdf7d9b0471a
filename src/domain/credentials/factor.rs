//! Second factors: what a customer holds, beyond the password, to finish a login. A factor is
//! its method and what the method needs: a code by text message needs a phone, by e-mail a
//! mailbox. Stored in one `factors` table whose methods are named here, not listed in SQL.
//!
//! A new method is a variant of [`FactorKind`] (with what it keeps), its name in
//! [`TwoFactorMethod`], and, if it judges answers otherwise than by a code the service sent, an
//! [`Answer`](super::challenge::Answer) of its own (docs/architecture.md, "Adding a
//! second-factor method").

use crate::domain::InvalidValue;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use time::OffsetDateTime;

use crate::domain::customers::{CustomerId, Email, Phone};

/// A second-factor method, as the API and the store name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TwoFactorMethod {
    /// A code by text message to the customer's phone.
    Sms,
    /// A code by e-mail.
    Email,
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// A passkey (WebAuthn, user verification required).
    Passkey,
}

impl TwoFactorMethod {
    /// Every method, in the order documented.
    pub const ALL: [Self; 4] = [Self::Sms, Self::Email, Self::Totp, Self::Passkey];

    /// The stable name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Email => "EMAIL",
            Self::Totp => "TOTP",
            Self::Passkey => "PASSKEY",
        }
    }
}

impl FromStr for TwoFactorMethod {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SMS" => Ok(Self::Sms),
            "EMAIL" => Ok(Self::Email),
            "TOTP" => Ok(Self::Totp),
            "PASSKEY" => Ok(Self::Passkey),
            _ => Err(InvalidValue("must be SMS, EMAIL, TOTP or PASSKEY")),
        }
    }
}

crate::domain::opaque_id!(
    /// An opaque factor identifier.
    FactorId
);

/// What a factor is, with what using it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorKind {
    /// Codes by text message to this phone.
    Sms(Phone),
    /// Codes by e-mail to this mailbox.
    Email(Email),
    /// Codes from an authenticator app; its secret is read, sealed, only to judge a code.
    Totp,
    /// A passkey; its public key is read only to judge an assertion.
    Passkey,
}

impl FactorKind {
    /// The method, as the API and the store name it.
    pub fn method(&self) -> TwoFactorMethod {
        match self {
            Self::Sms(_) => TwoFactorMethod::Sms,
            Self::Email(_) => TwoFactorMethod::Email,
            Self::Totp => TwoFactorMethod::Totp,
            Self::Passkey => TwoFactorMethod::Passkey,
        }
    }

    /// Where codes go, in full: for the notifier only.
    pub fn address(&self) -> Option<&str> {
        match self {
            Self::Sms(phone) => Some(phone.as_str()),
            Self::Email(mailbox) => Some(mailbox.as_str()),
            Self::Totp | Self::Passkey => None,
        }
    }

    /// Where codes go, masked: what the customer is shown.
    pub fn destination(&self) -> Option<String> {
        match self {
            Self::Sms(phone) => Some(phone.masked()),
            Self::Email(mailbox) => Some(mailbox.masked()),
            Self::Totp | Self::Passkey => None,
        }
    }

    /// Reads a stored method and address back; an unknown method or an address that does not
    /// fit it is refused, never guessed at.
    pub fn from_stored(method: &str, address: Option<&str>) -> Result<Self, InvalidValue> {
        let address = address.ok_or(InvalidValue("a factor that sends needs an address"));
        match method.parse::<TwoFactorMethod>()? {
            TwoFactorMethod::Sms => Ok(Self::Sms(Phone::parse(address?)?)),
            TwoFactorMethod::Email => Ok(Self::Email(Email::parse(address?)?)),
            TwoFactorMethod::Totp => Ok(Self::Totp),
            TwoFactorMethod::Passkey => Ok(Self::Passkey),
        }
    }
}

/// A factor a customer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    /// Opaque and stable.
    pub id: FactorId,
    /// The method and what it needs.
    pub kind: FactorKind,
}

impl Factor {
    /// A new factor of `kind`, with a fresh id.
    pub fn new(kind: FactorKind) -> Self {
        Self {
            id: FactorId::generate(),
            kind,
        }
    }

    /// The method, as the API and the store name it.
    pub fn method(&self) -> TwoFactorMethod {
        self.kind.method()
    }
}

/// What a customer calls a factor ("Phone app"): 1 to 64 characters after trimming, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorName(String);

impl FactorName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// A name as the customer typed it.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_CHARS {
            Err(InvalidValue("must be 1 to 64 characters"))
        } else if name.chars().any(char::is_control) {
            Err(InvalidValue("must not contain control characters"))
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    /// As stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A confirmed factor with what the customer sees of it in their list.
#[derive(Debug, Clone)]
pub struct HeldFactor {
    /// The factor itself.
    pub factor: Factor,
    /// What the customer called it.
    pub name: Option<FactorName>,
    /// Whether `2fa/initiate` without a method uses it.
    pub is_default: bool,
    /// When it was confirmed (for factors from before confirmation existed: created).
    pub created_at: OffsetDateTime,
    /// When it last answered a challenge.
    pub last_used_at: Option<OffsetDateTime>,
}

/// The most factors a customer may hold, counting those awaiting confirmation. Adding an app or
/// a passkey sends nothing, so no sending limit bounds it: without this, one signed-in session
/// could add factor rows (each with its challenge) as fast as it can make requests.
pub const MAX_FACTORS: u32 = 20;

/// Why a factor was not added at [`MAX_FACTORS`].
pub const FACTORS_FULL: InvalidValue = InvalidValue(
    "a customer holds at most 20 factors, counting those awaiting confirmation: remove one, or let an unconfirmed one expire",
);

/// A factor being added: unusable, unlisted and never the default until its confirmation
/// code arrives, and dropped at `expires_at` if it does not.
#[derive(Debug)]
pub struct PendingFactor {
    /// The factor it will be.
    pub factor: Factor,
    /// Whose it is.
    pub customer: CustomerId,
    /// What the customer called it.
    pub name: Option<FactorName>,
    /// An authenticator app's secret, sealed ([`TotpSeal`](super::totp::TotpSeal)).
    pub sealed_secret: Option<Vec<u8>>,
    /// A passkey's user handle ([`PasskeyUser`](super::passkey::PasskeyUser)).
    pub passkey_handle: Option<Vec<u8>>,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// When it is dropped unless confirmed.
    pub expires_at: OffsetDateTime,
}

/// What came of removing a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed.
    Removed,
    /// The customer holds no such factor.
    NotHeld,
    /// It is the customer's last, and two-factor is required: it stays.
    LastKept,
}

/// What changes of a held factor (`None`: unchanged).
#[derive(Debug, Default)]
pub struct FactorUpdate {
    /// Make it the default (only `true` means anything: another factor is made the default by
    /// naming it).
    pub make_default: bool,
    /// A new name.
    pub name: Option<FactorName>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_at_the_cap_names_the_cap() {
        assert!(FACTORS_FULL.0.contains(&format!(" {MAX_FACTORS} ")));
    }

    #[test]
    fn stored_factors_read_back_only_when_the_address_fits_the_method() {
        let sms = FactorKind::from_stored("SMS", Some("+447700900123")).unwrap();
        assert_eq!(sms.method(), TwoFactorMethod::Sms);
        assert_eq!(sms.address(), Some("+447700900123"));
        assert_eq!(sms.destination().as_deref(), Some("+44********23"));
        let email = FactorKind::from_stored("EMAIL", Some("alice@example.com")).unwrap();
        assert_eq!(email.destination().as_deref(), Some("a***e@example.com"));

        assert!(FactorKind::from_stored("SMS", Some("alice@example.com")).is_err());
        assert!(FactorKind::from_stored("EMAIL", None).is_err());
        assert!(FactorKind::from_stored("CARRIER_PIGEON", Some("+447700900123")).is_err());
        let app = FactorKind::from_stored("TOTP", None).unwrap();
        assert_eq!((app.address(), app.destination()), (None, None));
    }

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(
            FactorName::parse("  Phone app ").unwrap().as_str(),
            "Phone app"
        );
        assert!(FactorName::parse("   ").is_err());
        assert!(FactorName::parse(&"x".repeat(65)).is_err());
        assert!(FactorName::parse(&"é".repeat(64)).is_ok());
        assert!(FactorName::parse("bad\u{7}name").is_err());
    }
}
