//! Configuration: defaults, then an optional TOML file, then `FINHUB_*` environment variables.
//! Every value is checked at start-up; a bad one stops the service with a message naming the
//! variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use time::Duration;

use crate::domain::audit::ChainSeal;
use crate::domain::auth::Policies;
use crate::domain::housekeeping::RetentionPolicy;
use crate::domain::lockout::LockoutPolicy;
use crate::domain::rate_limit::{Rate, RateLimits};
use crate::domain::session::SessionPolicy;
use crate::domain::two_factor::TwoFactorPolicy;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which notifier delivers codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    Outbox,
    Live,
}

/// Every setting, under the names of the `FINHUB_*` variables (lower-cased, prefix dropped).
/// Unknown keys in the file are refused, so a misspelt setting is never silently ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    #[serde(with = "duration")]
    pub session_ttl: Duration,
    #[serde(with = "duration")]
    pub pending_session_ttl: Duration,
    #[serde(with = "duration")]
    pub session_absolute_ttl: Duration,
    /// `None` when set to `off`.
    #[serde(with = "optional_duration")]
    pub session_idle_timeout: Option<Duration>,
    #[serde(rename = "2fa_code_ttl", with = "duration")]
    pub two_factor_code_ttl: Duration,
    #[serde(rename = "2fa_max_attempts")]
    pub two_factor_max_attempts: u32,
    #[serde(rename = "2fa_resend_interval", with = "duration")]
    pub two_factor_resend_interval: Duration,
    #[serde(rename = "2fa_max_sends")]
    pub two_factor_max_sends: u32,
    pub lockout_threshold: u32,
    #[serde(with = "duration")]
    pub lockout_duration: Duration,
    /// The longest a doubled lock lasts.
    #[serde(with = "duration")]
    pub lockout_max_duration: Duration,
    pub notifier: NotifierKind,
    pub outbox_path: PathBuf,
    pub log_format: LogFormat,
    /// Password-hashing threads; 0 means one per core.
    pub hash_workers: usize,
    /// Logins that may wait for a hashing thread before new ones are refused.
    pub hash_queue: usize,
    /// argon2id memory in KiB, iterations and lanes for new hashes.
    pub hash_memory_kib: u32,
    pub hash_iterations: u32,
    pub hash_parallelism: u32,
    pub db_max_connections: u32,
    #[serde(with = "duration")]
    pub db_acquire_timeout: Duration,
    /// PostgreSQL cancels statements running longer than this.
    #[serde(with = "duration")]
    pub db_statement_timeout: Duration,
    /// How long sessions are kept after they end, before housekeeping removes them.
    #[serde(with = "duration")]
    pub session_retention: Duration,
    /// Audit events older than this are removed; `None` (`off`) keeps them for ever.
    #[serde(with = "optional_duration")]
    pub audit_retention: Option<Duration>,
    /// How often each instance runs housekeeping.
    #[serde(with = "duration")]
    pub housekeeping_interval: Duration,
    /// Rows removed per statement.
    pub housekeeping_batch: u32,
    /// Networks whose `Forwarded` / `X-Forwarded-For` headers are believed.
    #[serde(with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// All API calls per client IP; `None` is `off`.
    #[serde(with = "optional_rate")]
    pub rate_limit_ip: Option<Rate>,
    /// Logins per client IP.
    #[serde(with = "optional_rate")]
    pub rate_limit_login_ip: Option<Rate>,
    /// Logins per username.
    #[serde(with = "optional_rate")]
    pub rate_limit_login_account: Option<Rate>,
    /// Seals the audit chain with HMAC-SHA256 under this key (at least 32 bytes); unset, links
    /// are plain SHA-256. Never has a default and is never printed.
    #[serde(default, skip_serializing)]
    pub audit_key: Option<SecretString>,
    /// A file holding the audit key, for secret stores that mount files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key_file: Option<PathBuf>,
    /// Documented settings of controls this version does not have, as they were given
    /// (`FINHUB_TLS_CERT`, …): see [`Settings::refuse_unsafe`].
    #[serde(skip)]
    pub unsupported: Vec<String>,
    /// The longest any request may take before it is answered 503.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./data/finhub-auth.db".into(),
            session_ttl: Duration::hours(1),
            pending_session_ttl: Duration::minutes(10),
            session_absolute_ttl: Duration::hours(12),
            session_idle_timeout: Some(Duration::minutes(15)),
            two_factor_code_ttl: Duration::minutes(10),
            two_factor_max_attempts: 5,
            two_factor_resend_interval: Duration::seconds(30),
            two_factor_max_sends: 5,
            lockout_threshold: 5,
            lockout_duration: Duration::minutes(15),
            lockout_max_duration: Duration::hours(24),
            notifier: NotifierKind::Outbox,
            outbox_path: "./data/outbox.jsonl".into(),
            log_format: LogFormat::Pretty,
            hash_workers: 0,
            hash_queue: 64,
            hash_memory_kib: 19 * 1024,
            hash_iterations: 2,
            hash_parallelism: 1,
            db_max_connections: 8,
            db_acquire_timeout: Duration::seconds(5),
            db_statement_timeout: Duration::seconds(5),
            request_timeout: Duration::seconds(30),
            audit_key: None,
            audit_key_file: None,
            unsupported: Vec::new(),
            session_retention: Duration::hours(24),
            audit_retention: None,
            housekeeping_interval: Duration::minutes(5),
            housekeeping_batch: 500,
            trusted_proxies: Vec::new(),
            rate_limit_ip: "600/min".parse().ok(),
            rate_limit_login_ip: "60/min".parse().ok(),
            rate_limit_login_account: "20/min".parse().ok(),
        }
    }
}

/// A setting that cannot be used, named as the operator would set it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Settings {
    /// Reads the settings: defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let mut unsupported = Vec::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} not found",
                    file.display()
                )));
            }
            let keys: BTreeMap<String, figment::value::Value> = Figment::from(Toml::file(file))
                .extract()
                .map_err(describe)?;
            for key in keys.keys() {
                if FUTURE.contains(&key.as_str()) {
                    unsupported.push(format!("FINHUB_{}", key.to_uppercase()));
                } else if !KNOWN.contains(&key.as_str()) {
                    return Err(ConfigError(format!(
                        "unknown setting `{key}` in {}",
                        file.display()
                    )));
                }
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed("FINHUB_")
                .filter(|k| KNOWN.contains(&k.as_str().to_lowercase().as_str())),
        );
        let mut settings: Settings = figment.extract().map_err(describe)?;
        settings.read_audit_key_file()?;
        settings.check()?;
        unsupported.extend(
            std::env::vars()
                .filter_map(|(k, _)| k.strip_prefix("FINHUB_").map(str::to_lowercase))
                .filter(|k| FUTURE.contains(&k.as_str()))
                .map(|k| format!("FINHUB_{}", k.to_uppercase())),
        );
        settings.unsupported = unsupported;
        Ok(settings)
    }

    fn read_audit_key_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.audit_key_file else {
            return Ok(());
        };
        if self.audit_key.is_some() {
            return Err(ConfigError(
                "set FINHUB_AUDIT_KEY or FINHUB_AUDIT_KEY_FILE, not both".into(),
            ));
        }
        let key = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "FINHUB_AUDIT_KEY_FILE: cannot read {}: {e}",
                path.display()
            ))
        })?;
        self.audit_key = Some(SecretString::from(
            key.trim_end_matches(['\r', '\n']).to_owned(),
        ));
        Ok(())
    }

    /// How the audit chain is sealed.
    pub fn chain_seal(&self) -> ChainSeal {
        match &self.audit_key {
            Some(key) => ChainSeal::keyed(key.expose_secret().as_bytes()),
            None => ChainSeal::unkeyed(),
        }
    }

    /// `FINHUB_*` variables in the environment that this version does not read.
    pub fn unknown_variables() -> Vec<String> {
        std::env::vars()
            .filter_map(|(k, _)| k.strip_prefix("FINHUB_").map(str::to_lowercase))
            .filter(|k| !KNOWN.contains(&k.as_str()) && !FUTURE.contains(&k.as_str()))
            .map(|k| format!("FINHUB_{}", k.to_uppercase()))
            .collect()
    }

    /// Refuses to start when TLS is asked for: this version cannot serve it, and serving
    /// passwords and tokens over plain HTTP instead would fail open. The other documented
    /// controls this version lacks are returned, for the caller to warn about.
    pub fn refuse_unsafe(&self) -> Result<Vec<&str>, ConfigError> {
        if let Some(tls) = self
            .unsupported
            .iter()
            .find(|n| n.starts_with("FINHUB_TLS_"))
        {
            return Err(ConfigError(format!(
                "{tls} is set, but this version cannot serve TLS yet; terminate TLS in front of it and unset {tls}"
            )));
        }
        Ok(self.unsupported.iter().map(String::as_str).collect())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("SESSION_TTL", self.session_ttl),
            ("PENDING_SESSION_TTL", self.pending_session_ttl),
            ("SESSION_ABSOLUTE_TTL", self.session_absolute_ttl),
            ("2FA_CODE_TTL", self.two_factor_code_ttl),
            ("LOCKOUT_DURATION", self.lockout_duration),
            ("LOCKOUT_MAX_DURATION", self.lockout_max_duration),
            ("DB_ACQUIRE_TIMEOUT", self.db_acquire_timeout),
            ("DB_STATEMENT_TIMEOUT", self.db_statement_timeout),
            ("REQUEST_TIMEOUT", self.request_timeout),
            ("SESSION_RETENTION", self.session_retention),
            ("HOUSEKEEPING_INTERVAL", self.housekeeping_interval),
        ];
        for (name, value) in positive {
            if value <= Duration::ZERO {
                return Err(ConfigError(format!(
                    "FINHUB_{name} must be longer than zero"
                )));
            }
        }
        let bounded = positive
            .iter()
            .copied()
            .chain([("2FA_RESEND_INTERVAL", self.two_factor_resend_interval)])
            .chain(
                self.session_idle_timeout
                    .map(|d| ("SESSION_IDLE_TIMEOUT", d)),
            )
            .chain(self.audit_retention.map(|d| ("AUDIT_RETENTION", d)));
        for (name, value) in bounded {
            if value > MAX_DURATION {
                return Err(ConfigError(format!(
                    "FINHUB_{name} must be at most 3650 days"
                )));
            }
        }
        if self
            .audit_key
            .as_ref()
            .is_some_and(|k| k.expose_secret().len() < 32)
        {
            return Err(ConfigError(
                "FINHUB_AUDIT_KEY must be at least 32 bytes".into(),
            ));
        }
        if self.two_factor_resend_interval < Duration::ZERO {
            return Err(ConfigError(
                "FINHUB_2FA_RESEND_INTERVAL must not be negative".into(),
            ));
        }
        if self
            .session_idle_timeout
            .is_some_and(|d| d <= Duration::ZERO)
        {
            return Err(ConfigError(
                "FINHUB_SESSION_IDLE_TIMEOUT must be longer than zero, or off".into(),
            ));
        }
        for (name, value) in [
            ("2FA_MAX_ATTEMPTS", self.two_factor_max_attempts),
            ("2FA_MAX_SENDS", self.two_factor_max_sends),
            ("DB_MAX_CONNECTIONS", self.db_max_connections),
            ("HOUSEKEEPING_BATCH", self.housekeeping_batch),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("FINHUB_{name} must be at least 1")));
            }
        }
        if !self.database_url.starts_with("sqlite:")
            && !self.database_url.starts_with("postgres:")
            && !self.database_url.starts_with("postgresql:")
        {
            return Err(ConfigError(
                "FINHUB_DATABASE_URL must start with sqlite:// or postgres://".into(),
            ));
        }
        Ok(())
    }

    /// The rules of the login flow these settings describe.
    pub fn policies(&self) -> Policies {
        Policies {
            session: SessionPolicy {
                ttl: self.session_ttl,
                pending_ttl: self.pending_session_ttl,
                absolute_ttl: self.session_absolute_ttl,
                idle_timeout: self.session_idle_timeout,
            },
            lockout: LockoutPolicy {
                threshold: self.lockout_threshold,
                base: self.lockout_duration,
                max: self.lockout_max_duration.max(self.lockout_duration),
            },
            two_factor: TwoFactorPolicy {
                code_ttl: self.two_factor_code_ttl,
                max_attempts: self.two_factor_max_attempts,
                resend_interval: self.two_factor_resend_interval,
                max_sends: self.two_factor_max_sends,
            },
        }
    }

    /// How long ended things are kept.
    pub fn retention(&self) -> RetentionPolicy {
        RetentionPolicy {
            sessions: self.session_retention,
            lockouts: self.lockout_max_duration.max(self.lockout_duration),
            audit: self.audit_retention,
            batch: self.housekeeping_batch,
        }
    }

    /// The rate limiters these settings describe.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits::new(
            self.rate_limit_ip,
            self.rate_limit_login_ip,
            self.rate_limit_login_account,
        )
    }

    /// Hashing threads, resolving 0 to the number of cores.
    pub fn hash_threads(&self) -> usize {
        match self.hash_workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

/// Longer settings are surely mistakes, and would overflow date arithmetic.
const MAX_DURATION: Duration = Duration::days(3650);

/// The variables this version reads (without the `FINHUB_` prefix, lower-cased).
const KNOWN: &[&str] = &[
    "listen",
    "database_url",
    "session_ttl",
    "pending_session_ttl",
    "session_absolute_ttl",
    "session_idle_timeout",
    "2fa_code_ttl",
    "2fa_max_attempts",
    "2fa_resend_interval",
    "2fa_max_sends",
    "lockout_threshold",
    "lockout_duration",
    "lockout_max_duration",
    "notifier",
    "outbox_path",
    "log_format",
    "hash_workers",
    "hash_queue",
    "hash_memory_kib",
    "hash_iterations",
    "hash_parallelism",
    "db_max_connections",
    "db_acquire_timeout",
    "db_statement_timeout",
    "request_timeout",
    "session_retention",
    "audit_retention",
    "housekeeping_interval",
    "housekeeping_batch",
    "trusted_proxies",
    "audit_key",
    "audit_key_file",
    "rate_limit_ip",
    "rate_limit_login_ip",
    "rate_limit_login_account",
];

/// Documented variables of controls that later versions add.
const FUTURE: &[&str] = &[
    "redis_url",
    "geoip_db",
    "risk_action",
    "tls_cert",
    "tls_key",
    "smtp_url",
    "smtp_from",
    "sms_gateway_url",
    "sms_gateway_secret",
];

/// Turns figment's error into one line per bad value, naming the variable.
fn describe(errors: figment::Error) -> ConfigError {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let key = e.path.join("_");
            let name = if key.is_empty() {
                "configuration".to_owned()
            } else {
                format!("FINHUB_{}", key.to_uppercase())
            };
            format!("{name}: {}", e.kind)
        })
        .collect();
    ConfigError(lines.join("; "))
}

/// Parses `90s`, `10m`, `1h`, `1h30m`, or a whole number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<i64>() {
        return Ok(Duration::seconds(secs));
    }
    let std = humantime::parse_duration(raw)
        .map_err(|_| format!("`{raw}` is not a duration such as 90s, 10m or 1h"))?;
    Duration::try_from(std).map_err(|_| format!("`{raw}` is too long"))
}

fn format_duration(d: Duration) -> String {
    format!("{}s", d.whole_seconds())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Text(String),
    Seconds(i64),
}

mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match RawDuration::deserialize(d)? {
            RawDuration::Seconds(s) => Ok(Duration::seconds(s)),
            RawDuration::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

mod optional_duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match RawDuration::deserialize(d)? {
            RawDuration::Text(t) if t.trim().eq_ignore_ascii_case("off") => Ok(None),
            RawDuration::Text(t) => parse_duration(&t)
                .map(Some)
                .map_err(serde::de::Error::custom),
            RawDuration::Seconds(s) => Ok(Some(Duration::seconds(s))),
        }
    }
}

mod networks {
    use super::*;

    pub fn serialize<S: serde::Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(
            &nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// A comma-separated list of CIDRs; a bare address means just that host.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let raw = String::deserialize(d)?;
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        serde::de::Error::custom(format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
                    })
            })
            .collect()
    }
}

mod optional_rate {
    use super::*;

    pub fn serialize<S: serde::Serializer>(r: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_str(&r.to_string()),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
        let raw = String::deserialize(d)?;
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail fixes the closure's error type"
)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_forms() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::minutes(10));
        assert_eq!(parse_duration("1h").unwrap(), Duration::hours(1));
        assert_eq!(parse_duration("45").unwrap(), Duration::seconds(45));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn defaults_follow_the_operations_guide() {
        figment::Jail::expect_with(|_| {
            let s = Settings::load(None).unwrap();
            assert_eq!(s.session_ttl, Duration::hours(1));
            assert_eq!(s.session_idle_timeout, Some(Duration::minutes(15)));
            assert_eq!(s.two_factor_max_sends, 5);
            assert_eq!(s.rate_limit_login_ip.unwrap().to_string(), "60/min");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_and_off_disables_the_idle_timeout() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "finhub.toml",
                "session_ttl = \"2h\"\nlockout_threshold = 3\n",
            )?;
            jail.set_env("FINHUB_SESSION_TTL", "30m");
            jail.set_env("FINHUB_SESSION_IDLE_TIMEOUT", "off");
            jail.set_env("FINHUB_2FA_CODE_TTL", "5m");
            jail.set_env("FINHUB_RATE_LIMIT_IP", "off");
            jail.set_env("FINHUB_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1");
            jail.set_env("FINHUB_RATE_LIMIT_LOGIN_ACCOUNT", "10/s");
            let s = Settings::load(Some(Path::new("finhub.toml"))).unwrap();
            assert_eq!(s.session_ttl, Duration::minutes(30));
            assert_eq!(s.lockout_threshold, 3);
            assert_eq!(s.session_idle_timeout, None);
            assert_eq!(s.two_factor_code_ttl, Duration::minutes(5));
            assert_eq!(s.rate_limit_ip, None);
            assert_eq!(s.trusted_proxies.len(), 2);
            assert_eq!(s.rate_limit_login_account.unwrap().to_string(), "10/s");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused_and_tls_is_refused_until_supported() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "sesion_ttl = \"1h\"\n")?;
            let err = Settings::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("sesion_ttl"), "{err}");

            jail.create_file("later.toml", "redis_url = \"redis://127.0.0.1\"\n")?;
            let s = Settings::load(Some(Path::new("later.toml"))).unwrap();
            assert_eq!(s.refuse_unsafe().unwrap(), vec!["FINHUB_REDIS_URL"]);

            jail.set_env("FINHUB_TLS_CERT", "/etc/cert.pem");
            let err = Settings::load(None)
                .unwrap()
                .refuse_unsafe()
                .unwrap_err()
                .to_string();
            assert!(err.contains("FINHUB_TLS_CERT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_audit_key_comes_from_the_environment_or_a_file_but_not_both() {
        figment::Jail::expect_with(|jail| {
            assert!(!Settings::load(None).unwrap().chain_seal().is_keyed());
            jail.create_file("audit.key", "0123456789abcdef0123456789abcdef\n")?;
            jail.set_env("FINHUB_AUDIT_KEY_FILE", "audit.key");
            assert!(Settings::load(None).unwrap().chain_seal().is_keyed());
            jail.set_env("FINHUB_AUDIT_KEY", "0123456789abcdef0123456789abcdef");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("not both"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FINHUB_LOCKOUT_DURATION", "a while");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("FINHUB_LOCKOUT_DURATION"), "{err}");
            jail.set_env("FINHUB_LOCKOUT_DURATION", "15m");
            jail.set_env("FINHUB_2FA_MAX_ATTEMPTS", "0");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("FINHUB_2FA_MAX_ATTEMPTS"), "{err}");
            jail.set_env("FINHUB_2FA_MAX_ATTEMPTS", "5");
            jail.set_env("FINHUB_SESSION_TTL", "100000d");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("FINHUB_SESSION_TTL"), "{err}");
            Ok(())
        });
    }
}
