//! What a session may see of its customer: the rule of the restricted view.

use crate::domain::credentials::factor::Factor;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::customers::{Customer, CustomerId};
use crate::domain::sessions::{Session, SessionState};

/// A customer's two-factor settings as the customer may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactorSettings {
    /// `None` when two-factor is off.
    pub method: Option<TwoFactorMethod>,
    /// Where codes go, masked.
    pub masked_destination: Option<String>,
}

impl TwoFactorSettings {
    fn of(customer: &Customer) -> Self {
        Self {
            method: customer.factor.as_ref().map(Factor::method),
            masked_destination: customer.factor.as_ref().and_then(|f| f.kind.destination()),
        }
    }
}

/// The customer behind a session, as much of it as the session may see.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per request and consumed by the response at once: boxing would only add an allocation"
)]
pub enum CustomerDetails {
    /// An ACTIVE session sees the whole record.
    Full {
        /// The customer's whole record, personal data included.
        customer: Customer,
        /// The method and masked destination that codes use.
        two_factor: TwoFactorSettings,
        /// The ACTIVE session asking.
        session: Session,
    },
    /// A session awaiting two-factor has proved only a password: it sees what finishing
    /// two-factor needs, and no personal or KYC data.
    Restricted {
        /// Only the id: no personal or KYC data before the second factor.
        customer_id: CustomerId,
        /// What the customer needs to finish two-factor: the method and where codes go, masked.
        two_factor: TwoFactorSettings,
        /// The pending session asking.
        session: Session,
    },
}

impl CustomerDetails {
    /// Applies the rule: the session's state decides the view.
    pub fn for_session(customer: Customer, session: Session) -> Self {
        let two_factor = TwoFactorSettings::of(&customer);
        match session.state {
            SessionState::Active => Self::Full {
                customer,
                two_factor,
                session,
            },
            SessionState::TwoFactorPending
            | SessionState::EnrolmentRequired
            | SessionState::PasswordReset => Self::Restricted {
                customer_id: customer.id,
                two_factor,
                session,
            },
        }
    }
}
