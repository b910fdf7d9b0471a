//! Configuration: defaults, then an optional TOML file, then `FINHUB_*` environment variables.
//! Every value is checked as it is read; a bad one stops the service with a message naming the
//! variable.
//!
//! Files and variables are flat (`session_ttl`, `FINHUB_SESSION_TTL`); the settings are grouped
//! by what they configure. Each group is a section struct whose fields are renamed to the flat
//! names, whose serde adaptors (`values`) carry the accepted forms and ranges, and which builds
//! its part of the domain's policies. [`Settings`] composes the sections with `#[serde(flatten)]`
//! to *serialise* them into one flat map of defaults; the keys of that map are the names this
//! version reads, so no list of names is kept beside the types. Each section is *deserialised*
//! on its own from the layered values instead of through `flatten`, which would lose figment's
//! key path (and with it the variable an error names) and cannot `deny_unknown_fields`: a file
//! key outside the defaults is refused, an unknown variable is reported for a warning.

mod auth;
mod records;
mod server;
mod values;
mod webhooks;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::Path;

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Dict;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use auth::{
    LimitsSection, LockoutSection, PasskeySection, PasswordSection, RiskSection, SessionSection,
    TwoFactorSection,
};
pub use records::{AuditSection, HousekeepingSection};
pub use server::{
    HashingSection, LogFormat, NotifierKind, NotifierSection, ServerSection, StoreSection,
};
pub use values::parse_duration;
pub use webhooks::WebhookSection;

use crate::domain::auth::Policies;
use crate::domain::credentials::lockdown::LockdownLinks;
use crate::domain::housekeeping::RetentionPolicy;

/// Every setting, by section. A later section is one more field here and one more line in
/// `Settings::extract`; its names are known from then on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settings {
    /// The listener, TLS and the proxies trusted to name clients.
    #[serde(flatten)]
    pub server: ServerSection,
    /// The database and its pool.
    #[serde(flatten)]
    pub store: StoreSection,
    /// Session lifetimes.
    #[serde(flatten)]
    pub sessions: SessionSection,
    /// Codes' lifetime and the limits on guessing and sending them.
    #[serde(flatten)]
    pub two_factor: TwoFactorSection,
    /// When failures lock a username.
    #[serde(flatten)]
    pub lockout: LockoutSection,
    /// What a new password must be.
    #[serde(flatten)]
    pub passwords: PasswordSection,
    /// Passkeys' relying party, and passkey login.
    #[serde(flatten)]
    pub passkeys: PasskeySection,
    /// Request rates per address and per account.
    #[serde(flatten)]
    pub limits: LimitsSection,
    /// Unusual logins: location databases and what a flagged login triggers.
    #[serde(flatten)]
    pub risk: RiskSection,
    /// The cost of password hashes and the threads that compute them.
    #[serde(flatten)]
    pub hashing: HashingSection,
    /// How codes and notices are delivered.
    #[serde(flatten)]
    pub notifier: NotifierSection,
    /// How the audit chain is sealed: its key and signed anchors.
    #[serde(flatten)]
    pub audit: AuditSection,
    /// How long ended sessions and old audit events are kept, and how often they are removed.
    #[serde(flatten)]
    pub housekeeping: HousekeepingSection,
    /// Security events for FinHub's fraud systems.
    #[serde(flatten)]
    pub webhooks: WebhookSection,
    /// `FINHUB_*` variables in the environment that this version does not read.
    #[serde(skip)]
    pub unknown_variables: Vec<String>,
}

/// A setting that cannot be used, named as the operator would set it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Settings {
    /// The names of every setting this version reads, as keys (`session_ttl`): those of the
    /// defaults, so the types are the only list.
    pub fn known_keys() -> Result<BTreeSet<String>, ConfigError> {
        Ok(Figment::from(Serialized::defaults(Settings::default()))
            .extract::<Dict>()
            .map_err(describe)?
            .into_keys()
            .collect())
    }

    /// Reads the settings: defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let known = Self::known_keys()?;
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} not found",
                    file.display()
                )));
            }
            let keys: Dict = Figment::from(Toml::file(file))
                .extract()
                .map_err(describe)?;
            if let Some(key) = keys.keys().find(|key| !known.contains(*key)) {
                return Err(ConfigError(format!(
                    "unknown setting `{key}` in {}",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let unknown_variables = environment_keys()
            .filter(|key| !known.contains(key))
            .map(|key| variable(&key))
            .collect();
        figment = figment.merge(
            Env::prefixed("FINHUB_").filter(move |k| known.contains(&k.as_str().to_lowercase())),
        );
        let mut settings = Self::extract(&figment)?;
        settings.server.refuse_half_tls()?;
        settings.server.ops_token()?;
        settings.server.otlp_endpoint()?;
        settings.audit.read_key()?;
        settings.passkeys.relying_party()?;
        settings.notifier.public_url(&settings.server)?;
        settings.webhooks.kinds()?;
        settings.unknown_variables = unknown_variables;
        Ok(settings)
    }

    /// Each section from the same layered values, so an error keeps the key it is about.
    fn extract(figment: &Figment) -> Result<Self, ConfigError> {
        fn section<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
            figment.extract().map_err(describe)
        }
        Ok(Self {
            server: section(figment)?,
            store: section(figment)?,
            sessions: section(figment)?,
            two_factor: section(figment)?,
            lockout: section(figment)?,
            passwords: section(figment)?,
            passkeys: section(figment)?,
            limits: section(figment)?,
            risk: section(figment)?,
            hashing: section(figment)?,
            notifier: section(figment)?,
            audit: section(figment)?,
            housekeeping: section(figment)?,
            webhooks: section(figment)?,
            unknown_variables: Vec::new(),
        })
    }

    /// The rules of the login flow these settings describe; an error if a purpose key cannot
    /// be derived from the audit key.
    pub fn policies(&self) -> Result<Policies, ConfigError> {
        Ok(Policies {
            session: self.sessions.policy(),
            lockout: self.lockout.policy(),
            two_factor: self.two_factor.policy(),
            devices: self.audit.device_key()?,
            codes: self.audit.code_key()?,
            risk: self.risk.action,
            passwords: self.passwords.policy(),
            recovery: self.audit.recovery_key()?,
            totp: self.audit.totp_seal()?,
            require_two_factor: self.two_factor.require,
            reset_ttl: self.passwords.reset_ttl,
            passkey_login: self.passkeys.passkey_login,
            passkey_logins: self.audit.ceremony_seal()?,
        })
    }

    /// How notices' "this wasn't me" links are written and their tokens sealed.
    pub fn lockdown_links(&self) -> Result<LockdownLinks, ConfigError> {
        let public_url = self.notifier.public_url(&self.server)?;
        Ok(LockdownLinks::new(self.audit.lockdown_seal()?, &public_url))
    }

    /// How long ended things are kept.
    pub fn retention(&self) -> RetentionPolicy {
        self.housekeeping.retention(&self.lockout.policy())
    }
}

/// The `FINHUB_*` variables set, as keys: prefix dropped, lower-cased. Names that are not
/// Unicode cannot be settings and are passed over.
fn environment_keys() -> impl Iterator<Item = String> {
    std::env::vars_os()
        .filter_map(|(name, _)| Some(name.to_str()?.strip_prefix("FINHUB_")?.to_lowercase()))
}

/// The variable a key is set by.
fn variable(key: &str) -> String {
    format!("FINHUB_{}", key.to_uppercase())
}

/// Turns figment's error into one line per bad value, naming the variable: "FINHUB_X must …"
/// for a value its setting does not allow, "FINHUB_X: …" for one that could not be read.
fn describe(errors: figment::Error) -> ConfigError {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let key = e.path.join("_");
            let name = if key.is_empty() {
                "configuration".to_owned()
            } else {
                variable(&key)
            };
            match &e.kind {
                Kind::InvalidValue(Actual::Other(what), rule) if what == values::OUT_OF_RANGE => {
                    format!("{name} {rule}")
                }
                // A `NonZero*` setting given 0.
                Kind::InvalidValue(Actual::Unsigned(0), expected)
                    if expected.starts_with("a nonzero") =>
                {
                    format!("{name} must be at least 1")
                }
                kind => format!("{name}: {kind}"),
            }
        })
        .collect();
    ConfigError(lines.join("; "))
}
