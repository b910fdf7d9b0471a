//! Customers and the values that describe them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use super::InvalidValue;

/// A customer's login name: normalised (NFKC), trimmed and lower-cased once, here, so that every comparison and
/// every failure counter keys on the same form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the customer stands in know-your-customer checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KycStatus {
    NotStarted,
    Pending,
    Verified,
    Rejected,
}

impl KycStatus {
    pub const ALL: [Self; 4] = [
        Self::NotStarted,
        Self::Pending,
        Self::Verified,
        Self::Rejected,
    ];

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

/// The channel a two-factor code travels by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TwoFactorMethod {
    Sms,
    Email,
}

impl TwoFactorMethod {
    pub const ALL: [Self; 2] = [Self::Sms, Self::Email];

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

super::opaque_id!(
    /// An opaque customer identifier.
    CustomerId
);

/// A customer as stored.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: CustomerId,
    pub username: Username,
    pub email: Email,
    pub phone: Option<Phone>,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub kyc_status: KycStatus,
    pub two_factor: Option<TwoFactorMethod>,
    /// An argon2 PHC string; never leaves the store and the password module.
    pub password_hash: String,
    pub last_login_at: Option<OffsetDateTime>,
}

impl Customer {
    /// The masked address a code for `method` goes to, if the customer has one.
    pub fn destination(&self, method: TwoFactorMethod) -> Option<String> {
        match method {
            TwoFactorMethod::Sms => self.phone.as_ref().map(Phone::masked),
            TwoFactorMethod::Email => Some(self.email.masked()),
        }
    }

    /// The unmasked address, for the notifier only.
    pub fn address(&self, method: TwoFactorMethod) -> Option<&str> {
        match method {
            TwoFactorMethod::Sms => self.phone.as_ref().map(Phone::as_str),
            TwoFactorMethod::Email => Some(self.email.as_str()),
        }
    }
}

/// A customer about to be created, with the password already hashed.
#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: CustomerId,
    pub username: Username,
    pub email: Email,
    pub phone: Option<Phone>,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub kyc_status: KycStatus,
    pub two_factor: Option<TwoFactorMethod>,
    pub password_hash: String,
}

impl NewCustomer {
    /// Checks the one rule that spans fields: SMS 2FA needs a phone number.
    pub fn check(&self) -> Result<(), InvalidValue> {
        if self.two_factor == Some(TwoFactorMethod::Sms) && self.phone.is_none() {
            return Err(InvalidValue("SMS two-factor needs a phone number"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_lower_cased() {
        let u = Username::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(u.as_str(), "alice@example.com");
    }

    #[test]
    fn one_name_in_any_unicode_form_is_one_username() {
        let composed = Username::parse("Jos\u{e9}@example.com").unwrap();
        let decomposed = Username::parse("Jose\u{301}@example.com").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.as_str(), "jos\u{e9}@example.com");
        // Full-width letters are compatibility forms of the ASCII ones.
        let wide = Username::parse("\u{ff21}lice@example.com").unwrap();
        assert_eq!(wide.as_str(), "alice@example.com");
    }

    #[test]
    fn invisible_formatting_characters_are_refused() {
        for sneaky in [
            "ali\u{200b}ce",
            "\u{feff}alice",
            "al\u{200d}ice",
            "alice\u{2066}",
        ] {
            assert!(Username::parse(sneaky).is_err(), "{sneaky:?}");
        }
    }

    #[test]
    fn empty_overlong_and_control_usernames_are_refused() {
        assert!(Username::parse("   ").is_err());
        assert!(Username::parse(&"a".repeat(255)).is_err());
        assert!(Username::parse("al\u{0}ice").is_err());
        assert!(Username::parse(&"a".repeat(254)).is_ok());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("alice@example.com").is_ok());
        for bad in [
            "alice",
            "@example.com",
            "alice@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_e164_and_masked_to_country_and_last_two_digits() {
        let p = Phone::parse("+44 7700 900189").unwrap();
        assert_eq!(p.as_str(), "+447700900189");
        assert_eq!(p.masked(), "+44********89");
        assert!(Phone::parse("07700900189").is_err());
        assert!(Phone::parse("+44abc").is_err());
    }

    #[test]
    fn emails_are_masked_to_first_and_last_letter() {
        assert_eq!(
            Email::parse("alice@example.com").unwrap().masked(),
            "a***e@example.com"
        );
        assert_eq!(
            Email::parse("al@example.com").unwrap().masked(),
            "a***@example.com"
        );
    }

    #[test]
    fn kyc_and_method_parse_case_insensitively() {
        assert_eq!(
            "verified".parse::<KycStatus>().unwrap(),
            KycStatus::Verified
        );
        assert_eq!(
            "sms".parse::<TwoFactorMethod>().unwrap(),
            TwoFactorMethod::Sms
        );
        assert!("maybe".parse::<KycStatus>().is_err());
    }
}
