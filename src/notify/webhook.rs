//! Security events to FinHub's fraud systems as Standard Webhooks: each event one JSON `POST`
//! with
//! - `webhook-id`: the audit event's id, the same on every retry (the receiver takes each once);
//! - `webhook-timestamp`: Unix seconds when the request was signed;
//! - `webhook-signature`: `v1,` and the base64 HMAC-SHA256, under the webhook secret, of
//!   `{id}.{timestamp}.{body}`.
//!
//! A secret in Standard Webhooks' form (`whsec_` and base64) is used as the key it encodes;
//! any other is used as its bytes. 2xx is delivered; anything else, and no answer, is tried
//! again later (the delivery worker decides when), for a day.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use reqwest::header;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::Sha256;

use crate::domain::delivery::webhook::Webhook;
use crate::domain::ports::{NotifyError, WebhookSender};

/// Shortest signing key accepted: Standard Webhooks' own keys are 24 bytes or more.
const MIN_KEY_BYTES: usize = 24;

/// The webhook's client: one connection pool, reused for every event.
pub struct WebhookClient {
    client: reqwest::Client,
    url: url::Url,
    key: SecretBox<Vec<u8>>,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Why the webhook's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse.
    #[error("FINHUB_WEBHOOK_URL is not a URL")]
    Url,
    /// Plain HTTP to another host would expose the events on the way.
    #[error("FINHUB_WEBHOOK_URL must be https:// (plain http only to a loopback address)")]
    Insecure,
    /// A short key makes signatures guessable; a `whsec_` key must be base64.
    #[error(
        "FINHUB_WEBHOOK_SECRET must be at least 24 bytes (or whsec_ and the base64 of as many)"
    )]
    WeakSecret,
    /// The TLS configuration was refused.
    #[error("TLS for the webhook: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client for the webhook: {0}")]
    Client(#[source] reqwest::Error),
}

impl WebhookClient {
    /// A client for the receiver at `url`, signing with `secret`; refuses settings that would
    /// be unsafe to send events with.
    pub fn new(url: &str, secret: &SecretString) -> Result<Self, WebhookError> {
        let url = url::Url::parse(url).map_err(|_| WebhookError::Url)?;
        match url.scheme() {
            "https" => {}
            "http" if super::is_loopback(&url) => {}
            _ => return Err(WebhookError::Insecure),
        }
        let key = signing_key(secret.expose_secret()).ok_or(WebhookError::WeakSecret)?;
        let client = super::outbound_client()?
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self {
            client,
            url,
            key: SecretBox::new(Box::new(key)),
        })
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under `key`.
    pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        Some(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }
}

/// The key a secret stands for: `whsec_` and base64, or the secret's own bytes.
fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).ok()?,
        None => secret.as_bytes().to_vec(),
    };
    (key.len() >= MIN_KEY_BYTES).then_some(key)
}

#[async_trait]
impl WebhookSender for WebhookClient {
    async fn post(&self, webhook: &Webhook) -> Result<(), NotifyError> {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = webhook.body.as_bytes();
        let signature = Self::signature(self.key.expose_secret(), &webhook.id, timestamp, body)
            .ok_or_else(|| NotifyError::permanent("webhook signing key unusable"))?;
        // The errors name the kind of failure, never the body or the URL.
        let response = self
            .client
            .post(self.url.clone())
            .timeout(super::SEND_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", webhook.id.as_str())
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(webhook.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    NotifyError::transient(format!("webhook unreachable: {}", e.without_url()))
                } else if e.is_timeout() {
                    NotifyError::uncertain("webhook: no answer within 10 s")
                } else {
                    NotifyError::uncertain(format!("webhook request failed: {}", e.without_url()))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            // Even a 4xx is tried again: a receiver mid-deploy or mid-rotation of its secret
            // answers 401 or 404 for a while, and a security event must not be lost to that.
            Err(NotifyError::transient(format!("webhook answered {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_a_whsec_key_or_its_own_bytes_and_never_short() {
        let key = [7u8; 32];
        let whsec = format!("whsec_{}", STANDARD.encode(key));
        assert_eq!(signing_key(&whsec).unwrap(), key);
        assert_eq!(
            signing_key("a-raw-secret-of-enough-bytes!").unwrap(),
            b"a-raw-secret-of-enough-bytes!"
        );
        assert!(signing_key("short").is_none());
        assert!(signing_key(&format!("whsec_{}", STANDARD.encode([1u8; 8]))).is_none());
        assert!(signing_key("whsec_not base64!").is_none());
    }

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        // The example of the Standard Webhooks specification.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = WebhookClient::signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn only_https_or_loopback_http_with_a_strong_secret() {
        let secret = SecretString::from("a-raw-secret-of-enough-bytes!");
        assert!(WebhookClient::new("https://fraud.finhub.example/hook", &secret).is_ok());
        assert!(WebhookClient::new("http://127.0.0.1:9/hook", &secret).is_ok());
        assert!(matches!(
            WebhookClient::new("http://fraud.finhub.example/hook", &secret),
            Err(WebhookError::Insecure)
        ));
        assert!(matches!(
            WebhookClient::new(
                "https://fraud.finhub.example/hook",
                &SecretString::from("x")
            ),
            Err(WebhookError::WeakSecret)
        ));
    }
}
