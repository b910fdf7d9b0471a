//! The security webhook: where FinHub's fraud systems hear of security events, and which.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::domain::delivery::webhook::{DEFAULT_WEBHOOK_EVENTS, WebhookKinds};

/// `FINHUB_WEBHOOK_URL`, `_SECRET` and `_EVENTS`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookSection {
    /// Where events are posted; unset: no webhook, nothing queued.
    pub webhook_url: Option<String>,
    /// The signing key (Standard Webhooks' `whsec_` base64 form, or the raw secret); it is never
    /// printed.
    #[serde(serialize_with = "super::records::unset")]
    pub webhook_secret: Option<SecretString>,
    /// The audit kinds sent, comma-separated.
    pub webhook_events: String,
}

impl Default for WebhookSection {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            webhook_events: DEFAULT_WEBHOOK_EVENTS.to_owned(),
        }
    }
}

impl WebhookSection {
    /// The kinds queued for the webhook: none without a URL. A URL without a secret (or the
    /// other way round) and an unknown kind stop start-up.
    pub fn kinds(&self) -> Result<WebhookKinds, ConfigError> {
        match (&self.webhook_url, &self.webhook_secret) {
            (None, None) => Ok(WebhookKinds::none()),
            (Some(_), Some(_)) => WebhookKinds::parse(&self.webhook_events)
                .map_err(|e| ConfigError(format!("FINHUB_WEBHOOK_EVENTS: {e}"))),
            _ => Err(ConfigError(
                "FINHUB_WEBHOOK_URL and FINHUB_WEBHOOK_SECRET are set together, or neither".into(),
            )),
        }
    }
}
