//! The API description, generated from the handlers' annotations so it cannot drift from them.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{customers, health, sessions, two_factor};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FinHub Auth",
        description = "Signs in FinHub's individual (B2C) customers: login, two-factor authentication, session renewal and logout. Every error is an RFC 9457 problem document whose `code` is stable.",
        version = "1"
    ),
    paths(
        sessions::create_token, sessions::refresh_token, sessions::logout,
        two_factor::initiate, two_factor::verify,
        customers::me,
        health::healthz, health::readyz, health::metrics, health::openapi,
    ),
    modifiers(&BearerAuth, &CommonErrors),
    tags(
        (name = "auth", description = "Sessions"),
        (name = "two-factor", description = "Six-digit codes by SMS or e-mail"),
        (name = "customers", description = "The signed-in customer"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
pub struct ApiDoc;

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

/// Adds the errors any API call can meet to every `/api/v1` operation, so that no operation's
/// list leaves them out.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
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
            if !path.starts_with("/api/v1/") || path.ends_with("openapi.json") {
                continue;
            }
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/problem+json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ProblemDocument")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// The document as served, rendered once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".into())
    })
}
