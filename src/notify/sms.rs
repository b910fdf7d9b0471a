//! SMS through an HTTP gateway: each code is one JSON `POST`, signed so that the gateway's
//! adapter can check it came from this service and refuse replays.
//!
//! Request headers:
//! - `Idempotency-Key`: the challenge id, the same on every retry of one message;
//! - `X-FinHub-Timestamp`: Unix seconds when the request was signed;
//! - `X-FinHub-Signature`: `v1=` and the lower-case hex HMAC-SHA256, under
//!   `FINHUB_SMS_GATEWAY_SECRET`, of the timestamp, a `.`, and the exact body bytes.
//!
//! A gateway should refuse a timestamp more than five minutes from its clock and an idempotency
//! key it has already accepted. Body: `{"to": "+447700900123", "text": "…", "reference": "…"}`.
//! 2xx is delivered; 429, 5xx and network errors are retried (by the delivery worker); any other
//! 4xx is refused for good.

use hmac::{Hmac, Mac as _};
use reqwest::{StatusCode, header};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::domain::ports::{NotifyError, Outgoing};

/// The gateway's client: one connection pool, reused for every message.
pub struct SmsGateway {
    client: reqwest::Client,
    url: url::Url,
    secret: SecretString,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("url", &self.url.as_str())
            .finish()
    }
}

/// Why the gateway's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The URL does not parse.
    #[error("FINHUB_SMS_GATEWAY_URL is not a URL")]
    Url,
    /// Plain HTTP to another host would expose codes on the way.
    #[error("FINHUB_SMS_GATEWAY_URL must be https:// (plain http only to a loopback address)")]
    Insecure,
    /// A short secret makes signatures guessable.
    #[error("FINHUB_SMS_GATEWAY_SECRET must be at least 32 bytes")]
    ShortSecret,
    /// The TLS configuration was refused.
    #[error("TLS for the SMS gateway: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client for the SMS gateway: {0}")]
    Client(#[source] reqwest::Error),
}

#[derive(serde::Serialize)]
struct Sms<'a> {
    to: &'a str,
    text: &'a str,
    reference: &'a str,
}

impl SmsGateway {
    /// A client for the gateway at `url`, signing with `secret`; refuses settings that would be
    /// unsafe to send codes with.
    pub fn new(url: &str, secret: SecretString) -> Result<Self, GatewayError> {
        let url = url::Url::parse(url).map_err(|_| GatewayError::Url)?;
        let loopback = super::is_loopback(&url);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(GatewayError::Insecure),
        }
        if secret.expose_secret().len() < 32 {
            return Err(GatewayError::ShortSecret);
        }
        let client = super::outbound_client()?
            .build()
            .map_err(GatewayError::Client)?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }

    /// `v1=` and the hex HMAC-SHA256 of `timestamp.body`.
    pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(format!("v1={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Sends one message: delivered on 2xx; otherwise the error says whether it may have gone.
    pub async fn send(&self, message: &Outgoing) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&Sms {
            to: &message.to,
            text: &message.text,
            reference: &message.id,
        })
        .map_err(|e| NotifyError::permanent(format!("SMS body: {e}")))?;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = Self::signature(self.secret.expose_secret().as_bytes(), timestamp, &body)
            .ok_or_else(|| NotifyError::permanent("SMS signature key unusable"))?;
        // The errors name the kind of failure, never the body or the URL (which may hold a key).
        let response = self
            .client
            .post(self.url.clone())
            .timeout(super::SEND_TIMEOUT)
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", message.id.as_str())
            .header("X-FinHub-Timestamp", timestamp)
            .header("X-FinHub-Signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Not connected: the message cannot have gone. Any later failure: it may have.
                if e.is_builder() {
                    // A header that cannot be sent: no retry will change it.
                    NotifyError::permanent(format!("SMS request: {}", e.without_url()))
                } else if e.is_connect() {
                    NotifyError::transient(format!("SMS gateway unreachable: {}", e.without_url()))
                } else if e.is_timeout() {
                    NotifyError::uncertain("SMS gateway: no answer within 10 s")
                } else {
                    NotifyError::uncertain(format!(
                        "SMS gateway connection failed: {}",
                        e.without_url()
                    ))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
        {
            // Turned away before the message was taken.
            Err(NotifyError::transient(format!(
                "SMS gateway answered {status}"
            )))
        } else if status.is_server_error() {
            Err(NotifyError::uncertain(format!(
                "SMS gateway answered {status}"
            )))
        } else {
            Err(NotifyError::permanent(format!(
                "SMS gateway refused the message: {status}"
            )))
        }
    }
}
