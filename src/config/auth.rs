//! The sign-in rules: sessions, two-factor codes, lockout and request rates, each section with
//! the domain policy it describes.

use std::num::NonZeroU32;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_with::{As, DisplayFromStr};
use time::Duration;

use super::ConfigError;
use super::values::{NonNegative, OrOff, Positive, PositiveOrOff, Span};
use crate::domain::credentials::challenge::{SendBudget, TwoFactorPolicy};
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::credentials::password::PasswordPolicy;
use crate::domain::risk::RiskAction;
use crate::domain::risk::rate_limit::{Per, Rate, RateLimits};
use crate::domain::sessions::SessionPolicy;

/// How long sessions live.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSection {
    /// How long an active session's access token lasts before it must be renewed.
    #[serde(rename = "session_ttl", with = "As::<Span<Positive>>")]
    pub ttl: Duration,
    /// How long a session waiting for its second factor lasts: a password alone buys little time.
    #[serde(rename = "pending_session_ttl", with = "As::<Span<Positive>>")]
    pub pending_ttl: Duration,
    /// No session outlives this, however often it is renewed.
    #[serde(rename = "session_absolute_ttl", with = "As::<Span<Positive>>")]
    pub absolute_ttl: Duration,
    /// `None` when set to `off`.
    #[serde(
        rename = "session_idle_timeout",
        with = "As::<OrOff<Span<PositiveOrOff>>>"
    )]
    pub idle_timeout: Option<Duration>,
    /// How long a proved second factor (or, for a customer without one, the password) counts as
    /// recent, for the calls that need it.
    #[serde(rename = "recent_auth_window", with = "As::<Span<Positive>>")]
    pub recent_auth_window: Duration,
    /// ACTIVE sessions a customer may hold; a login past it ends their oldest.
    pub max_sessions: NonZeroU32,
}

impl Default for SessionSection {
    fn default() -> Self {
        Self {
            ttl: Duration::hours(1),
            pending_ttl: Duration::minutes(10),
            absolute_ttl: Duration::hours(12),
            idle_timeout: Some(Duration::minutes(15)),
            recent_auth_window: Duration::minutes(5),
            max_sessions: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        }
    }
}

impl SessionSection {
    /// The domain's session rules from these settings.
    pub fn policy(&self) -> SessionPolicy {
        SessionPolicy {
            ttl: self.ttl,
            pending_ttl: self.pending_ttl,
            absolute_ttl: self.absolute_ttl,
            idle_timeout: self.idle_timeout,
            recent_auth_window: self.recent_auth_window,
            max_active: self.max_sessions,
        }
    }
}

/// Limits on two-factor codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoFactorSection {
    /// How long a sent code may be used.
    #[serde(rename = "2fa_code_ttl", with = "As::<Span<Positive>>")]
    pub code_ttl: Duration,
    /// Guesses one code takes before the customer must ask for another.
    #[serde(rename = "2fa_max_attempts")]
    pub max_attempts: NonZeroU32,
    /// Least time between two codes for one session; 0 allows an immediate resend.
    #[serde(rename = "2fa_resend_interval", with = "As::<Span<NonNegative>>")]
    pub resend_interval: Duration,
    /// Codes one session may be sent in all.
    #[serde(rename = "2fa_max_sends")]
    pub max_sends: NonZeroU32,
    /// Codes sent to one customer over all their sessions, e.g. `10/h`: repeated logins cannot
    /// pump messages to one phone.
    #[serde(rename = "2fa_customer_sends", with = "As::<OrOff<DisplayFromStr>>")]
    pub customer_sends: Option<Rate>,
    /// Every customer must hold a second factor: one without enrols one at login.
    #[serde(rename = "require_2fa")]
    pub require: bool,
}

impl Default for TwoFactorSection {
    fn default() -> Self {
        Self {
            code_ttl: Duration::minutes(10),
            max_attempts: const { NonZeroU32::new(5).unwrap() },
            resend_interval: Duration::seconds(30),
            max_sends: const { NonZeroU32::new(5).unwrap() },
            customer_sends: Some(Rate {
                count: const { NonZeroU32::new(10).unwrap() },
                per: Per::Hour,
            }),
            require: false,
        }
    }
}

impl TwoFactorSection {
    /// The domain's code rules from these settings.
    pub fn policy(&self) -> TwoFactorPolicy {
        TwoFactorPolicy {
            code_ttl: self.code_ttl,
            max_attempts: self.max_attempts.get(),
            resend_interval: self.resend_interval,
            max_sends: self.max_sends.get(),
            customer_sends: self.customer_sends.map(|rate| SendBudget {
                count: rate.count.get(),
                window: Duration::try_from(rate.period()).unwrap_or(Duration::HOUR),
            }),
        }
    }
}

/// Failed-login locks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockoutSection {
    /// Consecutive failures that lock; 0 disables locking.
    #[serde(rename = "lockout_threshold")]
    pub threshold: u32,
    /// The first lock's length, doubled on each repeat.
    #[serde(rename = "lockout_duration", with = "As::<Span<Positive>>")]
    pub duration: Duration,
    /// The longest a doubled lock lasts.
    #[serde(rename = "lockout_max_duration", with = "As::<Span<Positive>>")]
    pub max_duration: Duration,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            threshold: 5,
            duration: Duration::minutes(15),
            max_duration: Duration::hours(24),
        }
    }
}

impl LockoutSection {
    /// A maximum shorter than the first lock is taken as the first lock's length, so that no
    /// lock is ever cut shorter than configured.
    pub fn policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            threshold: self.threshold,
            base: self.duration,
            max: self.max_duration.max(self.duration),
        }
    }
}

/// Request rates such as `300/min`; `None` (`off`) disables a limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsSection {
    /// All API calls per client IP.
    #[serde(rename = "rate_limit_ip", with = "As::<OrOff<DisplayFromStr>>")]
    pub api_per_ip: Option<Rate>,
    /// Logins per client IP.
    #[serde(rename = "rate_limit_login_ip", with = "As::<OrOff<DisplayFromStr>>")]
    pub login_per_ip: Option<Rate>,
    /// Logins per username.
    #[serde(
        rename = "rate_limit_login_account",
        with = "As::<OrOff<DisplayFromStr>>"
    )]
    pub login_per_account: Option<Rate>,
    /// Redis that keeps the counts for every instance (`redis://…`); unset, each instance counts
    /// for itself. It may hold a password, so it is never printed.
    #[serde(rename = "redis_url", serialize_with = "super::records::unset")]
    pub redis_url: Option<SecretString>,
    /// The CAs (PEM) that a `rediss://` server's certificate must chain to; unset, the
    /// system's roots.
    #[serde(rename = "redis_ca_file")]
    pub redis_ca_file: Option<PathBuf>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let per_minute = |n| {
            NonZeroU32::new(n).map(|count| Rate {
                count,
                per: Per::Minute,
            })
        };
        Self {
            api_per_ip: per_minute(600),
            login_per_ip: per_minute(60),
            login_per_account: per_minute(20),
            redis_url: None,
            redis_ca_file: None,
        }
    }
}

impl LimitsSection {
    /// The limiters for these rates, counting in this process; start-up shares them through Redis
    /// when `redis_url` is set.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits::new(self.api_per_ip, self.login_per_ip, self.login_per_account)
    }
}

/// Unusual logins: where addresses are located, and what a flagged login triggers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RiskSection {
    /// A MaxMind-format database (GeoLite2, DB-IP and compatible) with country, ASN and
    /// optionally coordinates; several files (a City and an ASN database) separated by commas.
    /// Unset: no location checks.
    #[serde(rename = "geoip_db", default, with = "As::<Option<GeoipFiles>>")]
    pub geoip_db: Option<Vec<PathBuf>>,
    /// What a flagged login triggers: record it, tell the customer, or ask for a code as well.
    #[serde(rename = "risk_action")]
    pub action: RiskAction,
}

/// `a.mmdb,b.mmdb`: one or more paths.
struct GeoipFiles;

impl serde_with::SerializeAs<Vec<PathBuf>> for GeoipFiles {
    fn serialize_as<S: serde::Serializer>(paths: &Vec<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        let joined: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        s.serialize_str(&joined.join(","))
    }
}

impl<'de> serde_with::DeserializeAs<'de, Vec<PathBuf>> for GeoipFiles {
    fn deserialize_as<D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        let text = String::deserialize(d)?;
        let paths: Vec<PathBuf> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if paths.is_empty() {
            return Err(serde::de::Error::custom(
                "must name at least one .mmdb file",
            ));
        }
        Ok(paths)
    }
}

/// What a new password must be.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordSection {
    /// The fewest characters a new password may have; 8 or more, else start-up stops.
    #[serde(rename = "password_min_length", deserialize_with = "at_least_eight")]
    pub min_length: usize,
    /// A Pwned-Passwords file (SHA-1 `HASH:COUNT` lines sorted by hash), searched on disk.
    pub breached_passwords_file: Option<PathBuf>,
    /// A k-anonymity range service (`{url}/range/{prefix}`).
    pub breached_passwords_url: Option<String>,
    /// How long a forgotten password's reset code is valid.
    #[serde(rename = "password_reset_ttl", with = "As::<Span<Positive>>")]
    pub reset_ttl: Duration,
}

impl Default for PasswordSection {
    fn default() -> Self {
        Self {
            min_length: PasswordPolicy::DEFAULT_MIN_LENGTH,
            breached_passwords_file: None,
            breached_passwords_url: None,
            reset_ttl: Duration::minutes(15),
        }
    }
}

impl PasswordSection {
    /// The domain's password policy from these settings, without a breach source (start-up
    /// opens the one set, in `startup/adapters.rs`).
    pub fn policy(&self) -> PasswordPolicy {
        PasswordPolicy {
            min_length: self.min_length,
            breaches: None,
        }
    }
}

/// A minimum password length no shorter than 8 characters nor longer than the longest password.
fn at_least_eight<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if (PasswordPolicy::LEAST_MIN_LENGTH..=PasswordPolicy::MAX_LENGTH).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(
            "must be between 8 and 128 characters",
        ))
    }
}

/// Passkeys: the relying party they are bound to, and passwordless login with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasskeySection {
    /// Passwordless login with a passkey, while passkeys are on.
    pub passkey_login: bool,
    /// The relying party's domain (`finhub.example`); unset: passkeys off.
    pub webauthn_rp_id: Option<String>,
    /// The web origins passkeys are used from, comma-separated (`https://app.finhub.example`).
    pub webauthn_origin: Option<String>,
}

impl Default for PasskeySection {
    fn default() -> Self {
        Self {
            passkey_login: true,
            webauthn_rp_id: None,
            webauthn_origin: None,
        }
    }
}

impl PasskeySection {
    /// The relying party on `localhost`, for the demo, where neither is set.
    pub fn or_localhost(&mut self, origin: &str) {
        if self.webauthn_rp_id.is_none() && self.webauthn_origin.is_none() {
            self.webauthn_rp_id = Some("localhost".to_owned());
            self.webauthn_origin = Some(origin.to_owned());
        }
    }

    /// The relying party's domain and origins; `None` when passkeys are off (neither set). One
    /// set without the other, or an origin that is not a URL, stops start-up.
    pub fn relying_party(&self) -> Result<Option<(String, Vec<url::Url>)>, ConfigError> {
        let (rp_id, origins) = match (&self.webauthn_rp_id, &self.webauthn_origin) {
            (None, None) => return Ok(None),
            (Some(rp_id), Some(origins)) => (rp_id, origins),
            _ => {
                return Err(ConfigError(
                    "FINHUB_WEBAUTHN_RP_ID and FINHUB_WEBAUTHN_ORIGIN are set together, or neither"
                        .to_owned(),
                ));
            }
        };
        let origins = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                url::Url::parse(o).map_err(|e| {
                    ConfigError(format!(
                        "FINHUB_WEBAUTHN_ORIGIN: `{o}` is not an origin: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(ConfigError(
                "FINHUB_WEBAUTHN_ORIGIN must name at least one origin".to_owned(),
            ));
        }
        Ok(Some((rp_id.trim().to_owned(), origins)))
    }
}
