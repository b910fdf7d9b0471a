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

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, header};
use hmac::{Hmac, Mac as _};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::domain::ports::{CodeMessage, NotifyError};

/// How long one request may take, connecting included.
const TIMEOUT: Duration = super::SEND_TIMEOUT;

pub struct SmsGateway {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
    #[error("FINHUB_SMS_GATEWAY_URL is not a URL")]
    Url,
    #[error("FINHUB_SMS_GATEWAY_URL must be https:// (plain http only to a loopback address)")]
    Insecure,
    #[error("FINHUB_SMS_GATEWAY_SECRET must be at least 32 bytes")]
    ShortSecret,
    #[error("TLS for the SMS gateway: {0}")]
    Tls(#[from] rustls::Error),
}

#[derive(serde::Serialize)]
struct Sms<'a> {
    to: &'a str,
    text: &'a str,
    reference: &'a str,
}

impl SmsGateway {
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
        // The gateway's certificate is checked against the Mozilla roots.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
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

    pub async fn send(&self, message: &CodeMessage) -> Result<(), NotifyError> {
        let text = message.text();
        let body = serde_json::to_vec(&Sms {
            to: &message.to,
            text: &text,
            reference: message.challenge_id.as_str(),
        })
        .map_err(|e| NotifyError::permanent(format!("SMS body: {e}")))?;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = Self::signature(self.secret.expose_secret().as_bytes(), timestamp, &body)
            .ok_or_else(|| NotifyError::permanent("SMS signature key unusable"))?;
        let request = Request::post(self.url.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", message.challenge_id.as_str())
            .header("X-FinHub-Timestamp", timestamp)
            .header("X-FinHub-Signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NotifyError::permanent(format!("SMS request: {e}")))?;
        // The errors name the kind of failure, never the body.
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| NotifyError::uncertain("SMS gateway: no answer within 10 s"))?
            .map_err(|e| {
                // Not connected: the message cannot have gone. Any later failure: it may have.
                if e.is_connect() {
                    NotifyError::transient(format!("SMS gateway unreachable: {e}"))
                } else {
                    NotifyError::uncertain(format!("SMS gateway connection failed: {e}"))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status == axum::http::StatusCode::TOO_MANY_REQUESTS
            || status == axum::http::StatusCode::SERVICE_UNAVAILABLE
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
