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
    modifiers(&BearerAuth),
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

/// The document as served, rendered once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".into())
    })
}
