//! Customers and the values that describe them.

pub mod accounts;
mod support;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use crate::domain::InvalidValue;
use crate::domain::credentials::factor::{Factor, FactorKind, TwoFactorMethod};

/// A customer's login name: normalised (NFKC), trimmed and lower-cased once, here, so that every comparison and
/// every failure counter keys on the same form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// The longest name accepted, in characters (an e-mail address's limit).
    pub const MAX_LEN: usize = 254;

    /// Normalises to NFKC, trimmed and lower-cased, so that one name typed in any Unicode
    /// form (composed "é" or "e" with a combining accent, full-width letters) is one account.
    /// Invisible formatting characters (category Cf, such as U+200B) are refused rather than
    /// dropped: they make look-alike names.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let lowered = raw.nfkc().collect::<String>().trim().to_lowercase();
        // Lower-casing can leave a string that NFKC would change again.
        let normalised: String = lowered.nfkc().collect();
        if normalised.is_empty() {
            return Err(InvalidValue("must not be empty"));
        }
        if normalised.chars().count() > Self::MAX_LEN {
            return Err(InvalidValue("must be at most 254 characters"));
        }
        if normalised.chars().any(char::is_control) {
            return Err(InvalidValue("must not contain control characters"));
        }
        if normalised
            .chars()
            .any(|c| c.general_category() == GeneralCategory::Format)
        {
            return Err(InvalidValue(
                "must not contain invisible formatting characters",
            ));
        }
        Ok(Self(normalised))
    }

    /// A username as the store holds it: parsed before it was written, so not normalised again
    /// on every read (the two NFKC passes were 3 % of a signed-in read).
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The normalised form, which every comparison and counter uses.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, with a deliberately loose check: one `@`, something either side, a dot in
/// the domain. Deliverability is proven by delivering, not by a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims and checks the loose shape; the case is kept (the local part may be case-sensitive).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let value = raw.trim();
        let valid = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(value.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidValue("must be an e-mail address"))
        }
    }

    /// The address as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `alice@example.com` → `a***e@example.com`: enough for the customer to recognise.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first = local.chars().next().unwrap_or('*');
        let last = local.chars().last().unwrap_or('*');
        if local.chars().count() <= 2 {
            format!("{first}***@{domain}")
        } else {
            format!("{first}***{last}@{domain}")
        }
    }
}

/// A phone number in E.164 form (`+` and 8 to 15 digits), the form SMS gateways take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Accepts spaces and dashes between digits and keeps the compact form.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(compact))
        } else {
            Err(InvalidValue(
                "must be an E.164 phone number such as +447700900123",
            ))
        }
    }

    /// The E.164 form, as the gateway takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+447700900189` → `+44********89`: the country and the last two digits.
    pub fn masked(&self) -> String {
        let shown_tail = &self.0[self.0.len() - 2..];
        format!(
            "{}{}{}",
            &self.0[..3],
            "*".repeat(self.0.len() - 5),
            shown_tail
        )
    }
}

/// A first or last name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Trims and checks the length (1 to 100 characters) and for control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let value = raw.trim();
        if value.is_empty() {
            Err(InvalidValue("must not be empty"))
        } else if value.chars().count() > 100 {
            Err(InvalidValue("must be at most 100 characters"))
        } else if value.chars().any(char::is_control) {
            Err(InvalidValue("must not contain control characters"))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    /// The name as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the customer stands in know-your-customer checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KycStatus {
    /// No check begun.
    NotStarted,
    /// A check is under way.
    Pending,
    /// Identity confirmed.
    Verified,
    /// Identity not confirmed.
    Rejected,
}

impl KycStatus {
    /// Every status, in the order documented.
    pub const ALL: [Self; 4] = [
        Self::NotStarted,
        Self::Pending,
        Self::Verified,
        Self::Rejected,
    ];

    /// The stable name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "NOT_STARTED",
            Self::Pending => "PENDING",
            Self::Verified => "VERIFIED",
            Self::Rejected => "REJECTED",
        }
    }
}

impl FromStr for KycStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "NOT_STARTED" => Ok(Self::NotStarted),
            "PENDING" => Ok(Self::Pending),
            "VERIFIED" => Ok(Self::Verified),
            "REJECTED" => Ok(Self::Rejected),
            _ => Err(InvalidValue(
                "must be NOT_STARTED, PENDING, VERIFIED or REJECTED",
            )),
        }
    }
}

crate::domain::opaque_id!(
    /// An opaque customer identifier.
    CustomerId
);

/// A customer as stored.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Stable and opaque; never the username.
    pub id: CustomerId,
    /// The login name, normalised.
    pub username: Username,
    /// Where e-mail codes and security notices go.
    pub email: Email,
    /// The profile's phone number.
    pub phone: Option<Phone>,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// Know-your-customer standing, shown to the customer.
    pub kyc_status: KycStatus,
    /// The default second factor; `None`: two-factor is off.
    pub factor: Option<Factor>,
    /// An argon2 PHC string; never leaves the store and the password module.
    pub password_hash: String,
    /// When the customer's last completed login was.
    pub last_login_at: Option<OffsetDateTime>,
}

/// Who a new customer is: everything the operator (or an import, or the demo) gives but the
/// password.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Chosen by the caller: an import may carry the id of the system it comes from.
    pub id: CustomerId,
    /// The login name, normalised.
    pub username: Username,
    /// Where e-mail codes and security notices go.
    pub email: Email,
    /// The profile's phone number; needed for SMS two-factor.
    pub phone: Option<Phone>,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// Know-your-customer standing.
    pub kyc_status: KycStatus,
    /// The second factor to hold, for the profile's phone or e-mail; `None`: two-factor off.
    pub two_factor: Option<TwoFactorMethod>,
}

impl Profile {
    /// The first factor the customer will hold: `two_factor` for the profile's phone or
    /// e-mail. SMS two-factor without a phone number is refused.
    pub fn first_factor(&self) -> Result<Option<FactorKind>, InvalidValue> {
        match self.two_factor {
            None => Ok(None),
            Some(TwoFactorMethod::Email) => Ok(Some(FactorKind::Email(self.email.clone()))),
            Some(TwoFactorMethod::Sms) => match &self.phone {
                Some(phone) => Ok(Some(FactorKind::Sms(phone.clone()))),
                None => Err(InvalidValue("SMS two-factor needs a phone number")),
            },
            Some(TwoFactorMethod::Totp) => Err(InvalidValue(
                "an authenticator app is added by the customer, who scans its secret",
            )),
            Some(TwoFactorMethod::Passkey) => Err(InvalidValue(
                "a passkey is added by the customer, on their own device",
            )),
        }
    }
}

/// A customer ready to be stored: a profile whose rules hold, the password's hash and the
/// first factor. The only way to make one is [`NewCustomer::new`], so no customer is stored
/// without a real hash or with a factor its profile cannot serve.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    profile: Profile,
    password_hash: String,
    factor: Option<Factor>,
}

impl NewCustomer {
    /// `profile` with the argon2 PHC string of its password (hashed here or imported).
    pub fn new(profile: Profile, password_hash: String) -> Result<Self, InvalidValue> {
        let factor = profile.first_factor()?.map(Factor::new);
        Ok(Self {
            profile,
            password_hash,
            factor,
        })
    }

    /// Who the customer is.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// An argon2 PHC string.
    pub fn password_hash(&self) -> &str {
        &self.password_hash
    }

    /// The factor the customer starts with, its default.
    pub fn factor(&self) -> Option<&Factor> {
        self.factor.as_ref()
    }
}

#[cfg(test)]
mod tests;
