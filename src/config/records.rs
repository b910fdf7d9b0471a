//! What is kept, and how: the audit chain's seal and housekeeping's retention.

use std::num::NonZeroU32;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_with::As;
use time::Duration;

use super::ConfigError;
use super::values::{NonNegative, OrOff, Positive, Span};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use crate::domain::audit::{AnchorKeys, ChainSeal};
use crate::domain::credentials::challenge::CodeKey;
use crate::domain::credentials::lockdown::LockdownSeal;
use crate::domain::credentials::lockout::LockoutPolicy;
use crate::domain::credentials::passkey_login::CeremonySeal;
use crate::domain::credentials::recovery::RecoveryKey;
use crate::domain::credentials::totp::TotpSeal;
use crate::domain::delivery::CodeSeal;
use crate::domain::housekeeping::RetentionPolicy;
use crate::domain::keys::AuditKeys;
use crate::domain::risk::device::DeviceKey;

/// How the audit chain is sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditSection {
    /// Seals the audit chain with HMAC-SHA256 under this key (at least 32 bytes); unset, links
    /// are plain SHA-256. Never has a default and is never written out.
    #[serde(rename = "audit_key", serialize_with = "unset")]
    pub key: Option<SecretString>,
    /// A file holding the key, for secret stores that mount files.
    #[serde(rename = "audit_key_file")]
    pub key_file: Option<PathBuf>,
    /// A file of the audit keys used before the current one, one per line, newest first: what
    /// was sealed or hashed under them still opens and matches (and is moved to the current key
    /// on its next use), and `audit verify` checks the links they sealed.
    #[serde(rename = "audit_previous_keys_file")]
    pub previous_keys_file: Option<PathBuf>,
    /// The keys read from `previous_keys_file`.
    #[serde(skip)]
    pub previous_keys: Vec<SecretString>,
    /// `serve` appends an anchor of the chain's head (`audit anchor`) to this file every
    /// `anchor_interval`; point it at storage the database's writers cannot change.
    #[serde(rename = "audit_anchor_path")]
    pub anchor_path: Option<PathBuf>,
    /// How often `serve` appends an anchor to `anchor_path`; events since the last one are covered
    /// by no anchor yet.
    #[serde(rename = "audit_anchor_interval", with = "As::<Span<Positive>>")]
    pub anchor_interval: Duration,
    /// An Ed25519 private key (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`) that signs
    /// anchors instead of the audit key's HMAC: its public half checks them without any secret.
    #[serde(rename = "audit_anchor_key_file")]
    pub anchor_key_file: Option<PathBuf>,
    /// Lets `serve` on PostgreSQL run without an audit key: the chain is then plain SHA-256
    /// and queued codes are sealed under a key of each process, so a restart drops them.
    /// Without it such a start is refused (on SQLite a key is generated beside the database).
    #[serde(rename = "allow_no_audit_key")]
    pub allow_no_key: bool,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            key: None,
            key_file: None,
            previous_keys_file: None,
            previous_keys: Vec::new(),
            anchor_path: None,
            anchor_interval: Duration::hours(1),
            anchor_key_file: None,
            allow_no_key: false,
        }
    }
}

/// The shortest audit key accepted, current or previous.
const MIN_KEY_BYTES: usize = 32;

/// The keys of a previous-keys file: one per line, newest first; blank lines and lines
/// beginning with `#` are skipped.
fn previous_keys(text: &str) -> Result<Vec<SecretString>, ConfigError> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .enumerate()
        .map(|(at, key)| {
            if key.len() < MIN_KEY_BYTES {
                return Err(ConfigError(format!(
                    "FINHUB_AUDIT_PREVIOUS_KEYS_FILE: key {} is shorter than 32 bytes",
                    at + 1
                )));
            }
            Ok(SecretString::from(key))
        })
        .collect()
}

pub(super) fn unset<S: Serializer>(_: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

impl AuditSection {
    /// Reads the key from `key_file` when one is named, then refuses a key too short to seal
    /// with, wherever it came from.
    pub(super) fn read_key(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.key_file {
            if self.key.is_some() {
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
            self.key = Some(key.trim_end_matches(['\r', '\n']).into());
        }
        if self
            .key
            .as_ref()
            .is_some_and(|k| k.expose_secret().len() < MIN_KEY_BYTES)
        {
            return Err(ConfigError(
                "FINHUB_AUDIT_KEY must be at least 32 bytes".into(),
            ));
        }
        if let Some(path) = &self.previous_keys_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "FINHUB_AUDIT_PREVIOUS_KEYS_FILE: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            self.previous_keys = previous_keys(&text)?;
        }
        Ok(())
    }

    /// The audit keys: the current one and those before it; `None` without a current key.
    /// Previous keys without a current one, or a key given twice, stop start-up.
    pub fn audit_keys(&self) -> Result<Option<AuditKeys>, ConfigError> {
        let Some(current) = &self.key else {
            if self.previous_keys.is_empty() {
                return Ok(None);
            }
            return Err(ConfigError(
                "FINHUB_AUDIT_PREVIOUS_KEYS_FILE names keys used before the current one, but no \
                 current key is set (FINHUB_AUDIT_KEY or FINHUB_AUDIT_KEY_FILE)"
                    .into(),
            ));
        };
        let previous = self
            .previous_keys
            .iter()
            .map(|k| k.expose_secret().as_bytes());
        AuditKeys::new(current.expose_secret().as_bytes(), previous)
            .map(Some)
            .map_err(|e| ConfigError(format!("FINHUB_AUDIT_PREVIOUS_KEYS_FILE: {e}")))
    }

    /// How the audit chain is sealed; a key from which the chain's key cannot be derived stops
    /// start-up rather than leave the chain unkeyed.
    pub fn chain_seal(&self) -> Result<ChainSeal, ConfigError> {
        self.derived_or_unkeyed(ChainSeal::keyed, ChainSeal::unkeyed)
    }

    /// The keys anchors are signed with: the Ed25519 key of `anchor_key_file` when one is
    /// named, else the audit key's HMAC.
    pub fn anchor_keys(&self) -> Result<AnchorKeys, ConfigError> {
        let keys = AnchorKeys::new(&self.chain_seal()?)
            .map_err(|e| ConfigError(format!("FINHUB_AUDIT_KEY: {e}")))?;
        let Some(path) = &self.anchor_key_file else {
            return Ok(keys);
        };
        let pem = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "FINHUB_AUDIT_ANCHOR_KEY_FILE: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
            ConfigError(format!(
                "FINHUB_AUDIT_ANCHOR_KEY_FILE: {} is not an Ed25519 private key in PKCS#8 PEM",
                path.display()
            ))
        })?;
        Ok(keys.signing_with(key))
    }

    /// Codes waiting in the outbox are sealed under a key derived from the audit key, or
    /// without one under a random key of this process (see [`CodeSeal`]).
    pub fn code_seal(&self) -> Result<CodeSeal, ConfigError> {
        self.derived_or_ephemeral(
            CodeSeal::derived_from,
            CodeSeal::ephemeral,
            "the outbox key",
        )
    }

    /// Passkey logins' ceremonies are sealed under a key derived from the audit key, or without
    /// one under a random key of this process (see [`CeremonySeal`]).
    pub fn ceremony_seal(&self) -> Result<CeremonySeal, ConfigError> {
        self.derived_or_ephemeral(
            CeremonySeal::derived_from,
            CeremonySeal::ephemeral,
            "the passkey login key",
        )
    }

    /// Lockdown links are sealed under a key derived from the audit key, or without one under
    /// a random key of this process (see [`LockdownSeal`]).
    pub fn lockdown_seal(&self) -> Result<LockdownSeal, ConfigError> {
        self.derived_or_ephemeral(
            LockdownSeal::derived_from,
            LockdownSeal::ephemeral,
            "the lockdown link key",
        )
    }

    /// Device fingerprints are hashed under a key derived from the audit key, when there is one
    /// (a key that cannot be derived stops start-up, never an unkeyed fallback).
    pub fn device_key(&self) -> Result<DeviceKey, ConfigError> {
        self.derived_or_unkeyed(DeviceKey::derived_from, DeviceKey::unkeyed)
    }

    /// Codes are stored as HMACs under a key derived from the audit key, when there is one
    /// (without one, plain SHA-256, as start-up warns).
    pub fn code_key(&self) -> Result<CodeKey, ConfigError> {
        self.derived_or_unkeyed(CodeKey::derived_from, CodeKey::unkeyed)
    }

    /// Recovery codes are stored as HMACs under a key derived from the audit key, when there is
    /// one.
    pub fn recovery_key(&self) -> Result<RecoveryKey, ConfigError> {
        self.derived_or_unkeyed(RecoveryKey::derived_from, RecoveryKey::unkeyed)
    }

    /// Authenticator apps' secrets are sealed under a key derived from the audit key, which
    /// every instance shares and which survives restarts; without one, apps cannot be added.
    pub fn totp_seal(&self) -> Result<Option<TotpSeal>, ConfigError> {
        self.audit_keys()?
            .map(|keys| {
                TotpSeal::derived_from(&keys)
                    .map_err(|e| ConfigError(format!("FINHUB_AUDIT_KEY: {e}")))
            })
            .transpose()
    }

    /// A sealing key derived from the audit key by `derive`, or without an audit key a random
    /// one of this process (`ephemeral`); `what` names it in the error.
    fn derived_or_ephemeral<K, E: std::fmt::Display, R: std::fmt::Display>(
        &self,
        derive: impl FnOnce(&AuditKeys) -> Result<K, E>,
        ephemeral: impl FnOnce() -> Result<K, R>,
        what: &str,
    ) -> Result<K, ConfigError> {
        match &self.audit_keys()? {
            Some(keys) => {
                derive(keys).map_err(|e| ConfigError(format!("FINHUB_AUDIT_KEY, {what}: {e}")))
            }
            None => {
                ephemeral().map_err(|e| ConfigError(format!("no random source for {what}: {e}")))
            }
        }
    }

    /// A key derived from the audit key by `derive`, or `unkeyed()` when there is no audit key.
    /// A key that cannot be derived is an error, never a fallback to `unkeyed()`.
    fn derived_or_unkeyed<K, E: std::fmt::Display>(
        &self,
        derive: impl FnOnce(&AuditKeys) -> Result<K, E>,
        unkeyed: impl FnOnce() -> K,
    ) -> Result<K, ConfigError> {
        match &self.audit_keys()? {
            Some(keys) => derive(keys).map_err(|e| ConfigError(format!("FINHUB_AUDIT_KEY: {e}"))),
            None => Ok(unkeyed()),
        }
    }
}

/// What housekeeping removes, and how often it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HousekeepingSection {
    /// How long sessions are kept after they end.
    #[serde(with = "As::<Span<Positive>>")]
    pub session_retention: Duration,
    /// Audit events older than this are removed; `None` (`off`) keeps them for ever.
    #[serde(with = "As::<OrOff<Span<NonNegative>>>")]
    pub audit_retention: Option<Duration>,
    /// How often each instance runs housekeeping.
    #[serde(rename = "housekeeping_interval", with = "As::<Span<Positive>>")]
    pub interval: Duration,
    /// Rows removed per statement.
    #[serde(rename = "housekeeping_batch")]
    pub batch: NonZeroU32,
}

impl Default for HousekeepingSection {
    fn default() -> Self {
        Self {
            session_retention: Duration::hours(24),
            audit_retention: None,
            interval: Duration::minutes(5),
            batch: const { NonZeroU32::new(500).unwrap() },
        }
    }
}

impl HousekeepingSection {
    /// Failure counters are kept as long as the longest lock, so a repeat still doubles it.
    pub fn retention(&self, lockout: &LockoutPolicy) -> RetentionPolicy {
        RetentionPolicy {
            sessions: self.session_retention,
            lockouts: lockout.max,
            audit: self.audit_retention,
            batch: self.batch.get(),
        }
    }
}
