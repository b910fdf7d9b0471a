//! OpenAPI schemas of the domain values that appear in bodies. The domain stays free of the
//! documentation crate; each schema lists the values the domain type itself writes.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::auth::security::HISTORY_KINDS;
use crate::domain::delivery::message;
use crate::domain::{audit, customers, risk, sessions};

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// [`customers::KycStatus`] as it is written.
pub struct KycStatus;

impl PartialSchema for KycStatus {
    fn schema() -> RefOr<Schema> {
        string_enum(customers::KycStatus::ALL.map(customers::KycStatus::as_str))
    }
}

impl ToSchema for KycStatus {}

/// [`customers::TwoFactorMethod`] as it is written.
pub struct TwoFactorMethod;

impl PartialSchema for TwoFactorMethod {
    fn schema() -> RefOr<Schema> {
        string_enum(customers::TwoFactorMethod::ALL.map(customers::TwoFactorMethod::as_str))
    }
}

impl ToSchema for TwoFactorMethod {}

/// [`risk::RiskFlag`] as it is written: why a login was judged unusual.
pub struct RiskFlag;

impl PartialSchema for RiskFlag {
    fn schema() -> RefOr<Schema> {
        string_enum(risk::RiskFlag::ALL.map(risk::RiskFlag::as_str))
    }
}

impl ToSchema for RiskFlag {}

/// [`DeliveryState`](message::DeliveryState) as it is written: where a code's message stands.
pub struct DeliveryState;

impl PartialSchema for DeliveryState {
    fn schema() -> RefOr<Schema> {
        string_enum(message::DeliveryState::ALL.map(message::DeliveryState::as_str))
    }
}

impl ToSchema for DeliveryState {}

/// The [`AuditKind`](audit::AuditKind)s a customer's own history holds ([`HISTORY_KINDS`]),
/// as they are written.
pub struct AuditKind;

impl PartialSchema for AuditKind {
    fn schema() -> RefOr<Schema> {
        string_enum(HISTORY_KINDS.iter().map(|kind| kind.as_str()))
    }
}

impl ToSchema for AuditKind {}

/// [`SessionState`](sessions::SessionState) as it is written.
pub struct SessionState;

impl PartialSchema for SessionState {
    fn schema() -> RefOr<Schema> {
        string_enum(sessions::SessionState::ALL.map(sessions::SessionState::as_str))
    }
}

impl ToSchema for SessionState {}

/// [`Outcome`](audit::Outcome) as it is written: whether an audited step succeeded.
pub struct Outcome;

impl PartialSchema for Outcome {
    fn schema() -> RefOr<Schema> {
        string_enum(audit::Outcome::ALL.map(audit::Outcome::as_str))
    }
}

impl ToSchema for Outcome {}
