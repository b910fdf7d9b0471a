//! Who is on the other end of a request, as far as security monitoring is concerned.

use std::net::IpAddr;

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

use crate::domain::InvalidValue;
use crate::domain::risk::location::Location;

/// The device a customer says they are on. Fingerprints are the client's own opaque strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The client's opaque string, hashed (see [`DeviceKey`](crate::domain::risk::device::DeviceKey)) before
    /// anything stores it.
    pub fingerprint: String,
    /// The name the client gave, if any and if it passed [`DeviceName::parse`].
    pub name: Option<DeviceName>,
    /// After a rotation of the audit key: the fingerprint hashed under previous keys, which a
    /// device known from before may still be stored under. The store moves a device it finds
    /// under one of them to `fingerprint`.
    pub hashed_before: Vec<String>,
}

impl Device {
    /// Longer fingerprints are refused: the client's own strings are short.
    pub const MAX_FINGERPRINT: usize = 512;
}

/// The name a client gives its device ("Alice's laptop"). Whoever logs in chooses it, so it is
/// shown only to the customer, marked as the device's own, and never copied into anything
/// FinHub sends: a name that reorders text (bidi controls), hides characters or reads as a
/// link or domain ("Call finhub-help.com") would put an attacker's words in FinHub's voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName(String);

impl DeviceName {
    /// Longer names are refused.
    pub const MAX_CHARS: usize = 128;

    /// The name, or why it may not be shown (length, controls, anything like a link or domain).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue("must be at most 128 characters"));
        }
        if raw
            .chars()
            .any(|c| c.is_control() || c.general_category() == GeneralCategory::Format)
        {
            return Err(InvalidValue(
                "must not contain control or formatting characters",
            ));
        }
        if looks_like_a_link(raw) {
            return Err(InvalidValue("must not look like a link or a domain"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A scheme, a `www.`, an `@`, or a word of the form `label.tld` (after NFKC, so full-width
/// and ideographic dots count as dots): what a reader could follow or type into a browser.
/// The one rule for "no link" in anything FinHub sends: device names, message templates.
pub(crate) fn looks_like_a_link(raw: &str) -> bool {
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    let folded = folded.replace(['\u{3002}', '\u{ff61}'], ".");
    if ["://", "www.", "@", "mailto:"]
        .iter()
        .any(|s| folded.contains(s))
    {
        return true;
    }
    folded
        .split(|c: char| c.is_whitespace() || c == '/' || c == ',')
        .any(|word| {
            let word = word.trim_end_matches(|c: char| c.is_ascii_punctuation());
            word.rsplit_once('.').is_some_and(|(label, tld)| {
                !label.is_empty()
                    && tld.chars().count() >= 2
                    && tld.chars().all(char::is_alphabetic)
            })
        })
}

/// The network and device facts recorded with every authentication event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientContext {
    /// The client's address, after trusted proxies.
    pub ip: Option<IpAddr>,
    /// The user agent as sent, cut to [`Self::MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
    /// The device the client says it is on.
    pub device: Option<Device>,
    /// Where `ip` is, when a location database is configured (filled in at login).
    pub location: Location,
}

impl ClientContext {
    /// User agents are kept to this many characters; longer ones are cut.
    pub const MAX_USER_AGENT: usize = 512;

    /// A context with the user agent cut to length and no device or location yet.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(Self::MAX_USER_AGENT).collect()),
            device: None,
            location: Location::default(),
        }
    }

    /// Adds the device the client named.
    pub fn with_device(mut self, device: Option<Device>) -> Self {
        self.device = device;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_device_names_are_accepted() {
        for name in [
            "Alice's laptop",
            "Pixel 8 Pro",
            "Work PC v2.0",
            "Mr. Smith's phone",
            "Ноутбук",
        ] {
            assert_eq!(DeviceName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_would_put_an_attackers_words_in_finhubs_mail_are_refused() {
        for name in [
            "Call finhub-help.com now",
            "https://evil.example",
            "www.finhub-secure",
            "support@evil.example",
            "evil\u{3002}com",
            "evil\u{ff0e}com",
            "Laptop \u{202e}moc.live",
            "Laptop\u{200b}",
            "Laptop\nReset your password",
            "Laptop\u{7}",
            &"x".repeat(129),
        ] {
            assert!(DeviceName::parse(name).is_err(), "{name:?}");
        }
    }
}
