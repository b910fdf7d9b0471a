//! OpenAPI schemas of the domain values that appear in bodies. The domain stays free of the
//! documentation crate; each schema lists the values the domain type itself writes.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::customer;

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// [`customer::KycStatus`] as it is written.
pub struct KycStatus;

impl PartialSchema for KycStatus {
    fn schema() -> RefOr<Schema> {
        string_enum(customer::KycStatus::ALL.map(customer::KycStatus::as_str))
    }
}

impl ToSchema for KycStatus {}

/// [`customer::TwoFactorMethod`] as it is written.
pub struct TwoFactorMethod;

impl PartialSchema for TwoFactorMethod {
    fn schema() -> RefOr<Schema> {
        string_enum(customer::TwoFactorMethod::ALL.map(customer::TwoFactorMethod::as_str))
    }
}

impl ToSchema for TwoFactorMethod {}
