//! Which refusals the per-address guard counts (`http/limit.rs`): those nothing else audits,
//! marked on the answer so the guard need not read its body.

use super::error::ApiError;
use crate::domain::error::AuthError;

/// Marks an answer that refused the call before anything changed and that nothing else
/// audits: the per-address guard counts it under this code.
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub &'static str);

/// A refusal the domain does not audit itself: a missing or dead token, a session not yet
/// allowed the call, an unknown route or resource, a body that is unreadable or fails its
/// fields' checks. (Refused logins, wrong codes and unknown challenges, locks and the login
/// limits are audited where they are decided, and answered as [`ApiError::Audited`] where
/// their error would otherwise look like these.)
pub(super) fn is_unaudited(error: &ApiError) -> bool {
    match error {
        ApiError::MissingToken
        | ApiError::Validation(_)
        | ApiError::Malformed { .. }
        | ApiError::NotFound
        | ApiError::MethodNotAllowed => true,
        ApiError::Auth(e) => matches!(
            e,
            AuthError::Unauthenticated
                | AuthError::SessionExpired
                | AuthError::TwoFactorRequired
                | AuthError::EnrolmentRequired
                | AuthError::PasswordResetInProgress
                | AuthError::RecentAuthenticationRequired { .. }
                | AuthError::FactorRequired
                | AuthError::NotFound
        ),
        ApiError::Audited(_) | ApiError::Timeout | ApiError::Internal(_) => false,
    }
}
