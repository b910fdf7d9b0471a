//! What the factor calls answer: a factor as listed, and one just added.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::audit::rfc3339;
use crate::domain::auth::FactorAdded;
use crate::domain::credentials::factor::{HeldFactor, TwoFactorMethod};
use crate::http::schema;

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorResponse {
    id: String,
    #[schema(value_type = schema::TwoFactorMethod)]
    method: TwoFactorMethod,
    name: Option<String>,
    /// Masked; `null` for an authenticator app.
    destination: Option<String>,
    /// Used by `2fa/initiate` without a method.
    default: bool,
    created_at: String,
    last_used_at: Option<String>,
}

impl From<HeldFactor> for FactorResponse {
    fn from(held: HeldFactor) -> Self {
        Self {
            id: held.factor.id.to_string(),
            method: held.factor.method(),
            name: held.name.map(|n| n.as_str().to_owned()),
            destination: held.factor.kind.destination(),
            default: held.is_default,
            created_at: rfc3339(held.created_at),
            last_used_at: held.last_used_at.map(rfc3339),
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorAddedResponse {
    id: String,
    #[schema(value_type = schema::TwoFactorMethod)]
    method: TwoFactorMethod,
    /// Always `UNCONFIRMED`: usable once confirmed.
    state: &'static str,
    /// Dropped unless confirmed by then.
    expires_at: String,
    /// `TOTP` only: the secret in base32 (160 bits), shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// `TOTP` only: what an authenticator app reads from a QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    otpauth_uri: Option<String>,
    /// `SMS`, `EMAIL`: where the confirmation code went, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
    /// `SMS`, `EMAIL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    resend_available_at: Option<String>,
    /// `PASSKEY` only: `PublicKeyCredentialCreationOptions` in their JSON form, for
    /// `navigator.credentials.create`.
    #[serde(rename = "publicKey", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    public_key: Option<serde_json::Value>,
}

impl From<FactorAdded> for FactorAddedResponse {
    fn from(added: FactorAdded) -> Self {
        let challenge = added.challenge;
        let (secret, otpauth_uri) = match added.app {
            Some((secret, uri)) => (Some(secret.base32()), Some(uri)),
            None => (None, None),
        };
        Self {
            id: added.id.to_string(),
            method: challenge.method.factor().unwrap_or(TwoFactorMethod::Totp),
            state: "UNCONFIRMED",
            expires_at: rfc3339(challenge.expires_at),
            secret,
            otpauth_uri,
            destination: challenge.destination,
            resend_available_at: challenge.resend_available_at.map(rfc3339),
            public_key: challenge.public_key,
        }
    }
}
