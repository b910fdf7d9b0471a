//! OpenAPI schemas of the domain values that appear in bodies. The domain stays free of the
//! documentation crate; each schema lists the values the domain type itself writes.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::auth::security::HISTORY_KINDS;
use crate::domain::credentials::{challenge, factor, password};
use crate::domain::delivery::message;
use crate::domain::{audit, customers, risk, sessions};

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// Declares, for each `Name => values`, a unit type whose OpenAPI schema is the string enum
/// `values`, under the type's own name (utoipa names a schema after its type).
macro_rules! string_enum_schemas {
    ($($(#[$doc:meta])* $name:ident => $values:expr),* $(,)?) => {$(
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_enum($values)
            }
        }

        impl ToSchema for $name {}
    )*};
}

string_enum_schemas! {
    /// [`customers::KycStatus`] as it is written.
    KycStatus => customers::KycStatus::ALL.map(customers::KycStatus::as_str),
    /// [`factor::TwoFactorMethod`] as it is written.
    TwoFactorMethod => factor::TwoFactorMethod::ALL.map(factor::TwoFactorMethod::as_str),
    /// [`ChallengeMethod`](challenge::ChallengeMethod) as it is written: how a challenge is
    /// answered.
    ChallengeMethod => challenge::ChallengeMethod::ALL.map(challenge::ChallengeMethod::as_str),
    /// [`Rejection`](password::Rejection) as it is written: a rule a new password breaks.
    PasswordRejection => password::Rejection::ALL.map(password::Rejection::as_str),
    /// [`risk::RiskFlag`] as it is written: why a login was judged unusual.
    RiskFlag => risk::RiskFlag::ALL.map(risk::RiskFlag::as_str),
    /// [`DeliveryState`](message::DeliveryState) as it is written: where a code's message stands.
    DeliveryState => message::DeliveryState::ALL.map(message::DeliveryState::as_str),
    /// The [`AuditKind`](audit::AuditKind)s a customer's own history holds ([`HISTORY_KINDS`]),
    /// as they are written.
    AuditKind => HISTORY_KINDS.iter().map(|kind| kind.as_str()),
    /// [`SessionState`](sessions::SessionState) as it is written.
    SessionState => sessions::SessionState::ALL.map(sessions::SessionState::as_str),
    /// [`Outcome`](audit::Outcome) as it is written: whether an audited step succeeded.
    Outcome => audit::Outcome::ALL.map(audit::Outcome::as_str),
}
