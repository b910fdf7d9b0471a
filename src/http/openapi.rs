//! The API: its routes and their description, declared once. Each route is registered with
//! the annotation of its handler (`routes!`), so the document cannot drift from the router.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::problem::ProblemDocument;
use super::routes::{
    customers, factors, health, lockdown, passkey_login, password, password_reset,
    problem_response, recovery_codes, security, sessions, step_up, two_factor,
};
use super::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FinHub Auth",
        description = "Signs in FinHub's individual (B2C) customers: login, two-factor authentication, session renewal and logout. Every error is an RFC 9457 problem document whose `code` is stable.",
        version = "1"
    ),
    // Referred to by name from the shared error responses (`CommonErrors`, `NeedsSession`).
    components(schemas(ProblemDocument)),
    tags(
        (name = "auth", description = "Sessions"),
        (name = "two-factor", description = "Six-digit codes by SMS or e-mail"),
        (name = "customers", description = "The signed-in customer"),
        (name = "account security", description = "The customer's own sessions, devices and sign-in history"),
        (name = "credentials", description = "The customer's own ways in: password, second factors, recovery codes, step-up"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds the errors any API call can meet to every `/api/v1` operation (the body's errors to
/// those that take one), so that no operation's list leaves them out.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let common = [
            ("400", "MALFORMED_REQUEST (not JSON), VALIDATION_ERROR"),
            ("413", "MALFORMED_REQUEST: the body is larger than 16 KiB"),
            ("415", "MALFORMED_REQUEST: the body is not application/json"),
            (
                "429",
                "RATE_LIMITED: over the request rate for this client or account (Retry-After)",
            ),
            (
                "500",
                "INTERNAL_ERROR: details only in the server log, under the requestId",
            ),
            (
                "503",
                "SERVICE_UNAVAILABLE: overloaded or store unreachable (Retry-After)",
            ),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            // This document itself meets only the limits and failures every call meets.
            let document = path.ends_with("openapi.json");
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                for (status, description) in common {
                    let applies = match status {
                        "413" | "415" => has_body,
                        "400" => !document,
                        _ => true,
                    };
                    if !applies {
                        continue;
                    }
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem_response(description));
                }
            }
        }
    }
}

/// Every route of the API, each with its description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sessions::router())
        .merge(passkey_login::router())
        .merge(two_factor::router())
        .merge(step_up::router())
        .merge(customers::router())
        .merge(password::router())
        .merge(password_reset::router())
        .merge(lockdown::router())
        .merge(factors::router())
        .merge(recovery_codes::router())
        .merge(security::router())
        .merge(health::router())
}

/// The document as served, rendered once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut api = routes().merge(health::ops_router()).into_openapi();
        BearerAuth.modify(&mut api);
        CommonErrors.modify(&mut api);
        api.to_pretty_json().unwrap_or_else(|_| "{}".into())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_schema_the_document_refers_to_is_in_it() {
        let doc: Value = serde_json::from_str(super::document()).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 10, "{found:?}");
        for target in found {
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} is not in the document"
            );
        }
        let typed = [
            "KycStatus",
            "TwoFactorMethod",
            "RiskFlag",
            "DeliveryState",
            "AuditKind",
            "SessionState",
            "Outcome",
            "ProblemDocument",
        ];
        for schema in typed {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
}
