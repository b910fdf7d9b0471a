//! What the service runs on: its listener, the store, password hashing and the notifier.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_with::As;
use time::Duration;

use super::ConfigError;
use super::values::{Networks, Positive, Span, out_of_range};
use crate::domain::credentials::password::HashCost;
use crate::http::client_ip::ClientIpHeader;
use crate::http::ops_token::OpsToken;
use crate::store::{ConnectOptions, DatabaseKind};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object a line, for a log collector.
    Json,
}

/// Which notifier delivers codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// Codes and notices appended to a local file instead of sent: for development and demos.
    Outbox,
    /// Real delivery: SMS through the gateway, e-mail through the SMTP relay.
    Live,
}

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSection {
    /// The public API's address; `127.0.0.1:8080` unless set.
    pub listen: SocketAddr,
    /// Pretty for a terminal, JSON for a log collector.
    pub log_format: LogFormat,
    /// The longest any request may take before it is answered 503.
    #[serde(with = "As::<Span<Positive>>")]
    pub request_timeout: Duration,
    /// How long a connection may take to send a request's head (from when the server waits for
    /// it): slow senders and idle keep-alive connections are closed after it.
    #[serde(with = "As::<Span<Positive>>")]
    pub header_read_timeout: Duration,
    /// Networks whose `Forwarded` / `X-Forwarded-For` headers are believed.
    #[serde(with = "As::<Networks>")]
    pub trusted_proxies: Vec<IpNet>,
    /// The one forwarding header the trusted proxies write; the other is ignored.
    pub client_ip_header: ClientIpHeader,
    /// A second address for `/metrics`, which then leaves the public one, and for `/readyz`
    /// with its details (the public one says only ready or not).
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: with both, the listener speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert`; set both or neither.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A file holding the bearer token the operations address asks for on `/metrics` and
    /// `/readyz` (liveness stays open).
    #[serde(default)]
    pub ops_token_file: Option<PathBuf>,
    /// The operations address speaks HTTPS with the public address's certificate.
    #[serde(default)]
    pub ops_tls: bool,
    /// An OpenTelemetry collector (OTLP/HTTP) that receives the service's traces.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Pretty,
            request_timeout: Duration::seconds(30),
            header_read_timeout: Duration::seconds(10),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::XForwardedFor,
            ops_listen: None,
            tls_cert: None,
            tls_key: None,
            ops_token_file: None,
            ops_tls: false,
            otlp_endpoint: None,
        }
    }
}

impl ServerSection {
    /// The collector traces are exported to: an http(s) address (its `/v1/traces`), or none.
    pub fn otlp_endpoint(&self) -> Result<Option<url::Url>, ConfigError> {
        let Some(raw) = &self.otlp_endpoint else {
            return Ok(None);
        };
        let refused = || {
            ConfigError(format!(
                "FINHUB_OTLP_ENDPOINT must be an http:// or https:// address, not {raw:?}"
            ))
        };
        let url = url::Url::parse(raw).map_err(|_| refused())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(refused());
        }
        Ok(Some(url))
    }

    /// Refuses a certificate without its key (or the other way round): half a TLS
    /// configuration must not fall back to plain HTTP.
    pub fn refuse_half_tls(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError(
                "FINHUB_TLS_CERT and FINHUB_TLS_KEY go together: set both (HTTPS only) or neither"
                    .into(),
            ));
        }
        if self.ops_listen.is_none() && (self.ops_tls || self.ops_token_file.is_some()) {
            return Err(ConfigError(
                "FINHUB_OPS_TLS and FINHUB_OPS_TOKEN_FILE protect FINHUB_OPS_LISTEN: set it too"
                    .into(),
            ));
        }
        if self.ops_tls && self.tls_cert.is_none() {
            return Err(ConfigError(
                "FINHUB_OPS_TLS serves the operations address with FINHUB_TLS_CERT and FINHUB_TLS_KEY: set them too"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The operations address's token, read from `ops_token_file`; a file that cannot be read
    /// or holds fewer than 32 characters stops start-up.
    pub fn ops_token(&self) -> Result<Option<OpsToken>, ConfigError> {
        let Some(path) = &self.ops_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "FINHUB_OPS_TOKEN_FILE: cannot read {}: {e}",
                path.display()
            ))
        })?;
        OpsToken::new(&text).map(Some).ok_or_else(|| {
            ConfigError(format!(
                "FINHUB_OPS_TOKEN_FILE: {} must hold a token of at least {} characters",
                path.display(),
                OpsToken::MIN_LEN
            ))
        })
    }
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSection {
    /// `sqlite://PATH` or `postgres://…`.
    #[serde(rename = "database_url", deserialize_with = "database_url")]
    pub url: String,
    /// Pool size: the most connections one instance opens to the database.
    #[serde(rename = "db_max_connections")]
    pub max_connections: NonZeroU32,
    /// How long a request waits for a pooled connection before it fails with 503.
    #[serde(rename = "db_acquire_timeout", with = "As::<Span<Positive>>")]
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels statements running longer than this.
    #[serde(rename = "db_statement_timeout", with = "As::<Span<Positive>>")]
    pub statement_timeout: Duration,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: "sqlite://./data/finhub-auth.db".into(),
            max_connections: const { NonZeroU32::new(8).unwrap() },
            acquire_timeout: Duration::seconds(5),
            statement_timeout: Duration::seconds(5),
        }
    }
}

impl StoreSection {
    /// The pool's limits, as the store takes them.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.max_connections.get(),
            acquire_timeout: self.acquire_timeout.unsigned_abs(),
            statement_timeout: self.statement_timeout.unsigned_abs(),
        }
    }
}

/// Refuses a store this version cannot open while the settings are read, before any command
/// starts work.
fn database_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    if DatabaseKind::of(&url).is_some() {
        Ok(url)
    } else {
        Err(out_of_range("must start with sqlite:// or postgres://"))
    }
}

/// Password hashing: the argon2id cost of new hashes and the threads that compute them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashingSection {
    /// Hashing threads; 0 means one per core.
    #[serde(rename = "hash_workers")]
    pub workers: usize,
    /// Logins that may wait for a hashing thread before new ones are refused.
    #[serde(rename = "hash_queue")]
    pub queue: usize,
    /// Memory cost of each new hash: the more, the dearer offline guessing of a stolen hash.
    #[serde(rename = "hash_memory_kib")]
    pub memory_kib: u32,
    /// Passes over the memory for each new hash.
    #[serde(rename = "hash_iterations")]
    pub iterations: u32,
    /// Argon2 lanes per hash; like the other costs, stored in each hash it makes.
    #[serde(rename = "hash_parallelism")]
    pub parallelism: u32,
}

impl Default for HashingSection {
    fn default() -> Self {
        Self {
            workers: 0,
            queue: 64,
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashingSection {
    /// Checked by argon2 when the hasher is built, which names all three variables.
    pub fn cost(&self) -> HashCost {
        HashCost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }

    /// Hashing threads, resolving 0 to the number of cores.
    pub fn threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

/// How two-factor codes are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifierSection {
    /// Whether codes are sent for real or appended to a file.
    #[serde(rename = "notifier")]
    pub kind: NotifierKind,
    /// The JSON Lines file the outbox notifier appends to.
    pub outbox_path: PathBuf,
    /// Whether this instance runs a delivery worker (`false` for instances that only answer
    /// the API while others deliver; at least one instance must).
    pub delivery_worker: bool,
    /// The SMTP relay (`live`): it may hold a password, so it is never printed.
    #[serde(serialize_with = "super::records::unset")]
    pub smtp_url: Option<SecretString>,
    /// The sender address of e-mails.
    pub smtp_from: Option<String>,
    /// CAs (PEM) a private relay's certificate chains to, beside the public roots.
    pub smtp_ca_file: Option<PathBuf>,
    /// The text of a code's message, with `{code}` and `{minutes}` (see `CodeTemplate`).
    pub code_template: Option<String>,
    /// Attempts at delivering one message before it is given up on.
    pub delivery_attempts: NonZeroU32,
    /// The SMS gateway's endpoint (`live`).
    pub sms_gateway_url: Option<String>,
    /// The key that signs requests to the SMS gateway.
    #[serde(serialize_with = "super::records::unset")]
    pub sms_gateway_secret: Option<SecretString>,
    /// The web client's public address, which links in e-mails lead to; required for live
    /// e-mail, else the listener's own address.
    pub public_url: Option<String>,
}

impl Default for NotifierSection {
    fn default() -> Self {
        Self {
            kind: NotifierKind::Outbox,
            outbox_path: "./data/outbox.jsonl".into(),
            delivery_worker: true,
            smtp_url: None,
            smtp_from: None,
            smtp_ca_file: None,
            code_template: None,
            delivery_attempts: NonZeroU32::new(6).unwrap_or(NonZeroU32::MIN),
            sms_gateway_url: None,
            sms_gateway_secret: None,
            public_url: None,
        }
    }
}

impl NotifierSection {
    /// Where links in e-mails lead: `public_url`, an http(s) address without query or
    /// fragment; unset, the listener's own address, except for live e-mail, which reaches
    /// customers who could not follow such a link (start-up stops instead).
    pub fn public_url(&self, server: &ServerSection) -> Result<String, ConfigError> {
        let Some(raw) = &self.public_url else {
            if self.kind == NotifierKind::Live {
                return Err(ConfigError(
                    "FINHUB_PUBLIC_URL is required with FINHUB_NOTIFIER=live: e-mailed notices link to the web client there"
                        .to_owned(),
                ));
            }
            let scheme = if server.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            return Ok(format!("{scheme}://{}", server.listen));
        };
        let refused = |why: &str| ConfigError(format!("FINHUB_PUBLIC_URL {why}"));
        let url = url::Url::parse(raw).map_err(|_| refused("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(refused("must be an http:// or https:// address"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refused(
                "must have no query or fragment: the link's token goes in the fragment",
            ));
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }
}
