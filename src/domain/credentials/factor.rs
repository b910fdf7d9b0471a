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

use crate::domain::customers::{Email, Phone};

/// A second-factor method, as the API and the store name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TwoFactorMethod {
    /// A code by text message to the customer's phone.
    Sms,
    /// A code by e-mail.
    Email,
}

impl TwoFactorMethod {
    /// Every method, in the order documented.
    pub const ALL: [Self; 2] = [Self::Sms, Self::Email];

    /// The stable name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Email => "EMAIL",
        }
    }
}

impl FromStr for TwoFactorMethod {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SMS" => Ok(Self::Sms),
            "EMAIL" => Ok(Self::Email),
            _ => Err(InvalidValue("must be SMS or EMAIL")),
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
}

impl FactorKind {
    /// The method, as the API and the store name it.
    pub fn method(&self) -> TwoFactorMethod {
        match self {
            Self::Sms(_) => TwoFactorMethod::Sms,
            Self::Email(_) => TwoFactorMethod::Email,
        }
    }

    /// Where codes go, in full: for the notifier only.
    pub fn address(&self) -> Option<&str> {
        match self {
            Self::Sms(phone) => Some(phone.as_str()),
            Self::Email(mailbox) => Some(mailbox.as_str()),
        }
    }

    /// Where codes go, masked: what the customer is shown.
    pub fn destination(&self) -> Option<String> {
        match self {
            Self::Sms(phone) => Some(phone.masked()),
            Self::Email(mailbox) => Some(mailbox.masked()),
        }
    }

    /// Reads a stored method and address back; an unknown method or an address that does not
    /// fit it is refused, never guessed at.
    pub fn from_stored(method: &str, address: Option<&str>) -> Result<Self, InvalidValue> {
        let address = address.ok_or(InvalidValue("a factor that sends needs an address"));
        match method.parse::<TwoFactorMethod>()? {
            TwoFactorMethod::Sms => Ok(Self::Sms(Phone::parse(address?)?)),
            TwoFactorMethod::Email => Ok(Self::Email(Email::parse(address?)?)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
