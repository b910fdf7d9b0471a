//! WebAuthn ceremonies: the cryptography of passkeys, behind a port so that the rules (who may
//! register, what an assertion proves, counters, locks) stay in the domain.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::credentials::passkey::{
    Ceremony, CeremonyState, PasskeyRejected, PasskeyUser, RegisteredPasskey, StoredPasskey,
    VerifiedAssertion,
};
use crate::domain::credentials::passkey_login::AnsweredCeremony;
use crate::domain::customers::CustomerId;

/// The relying party's side of WebAuthn, for one configured domain and its origins. Every call
/// is computation alone: the states it returns are stored by the caller.
pub trait PasskeyCeremonies: Send + Sync + 'static {
    /// Starts registering a passkey for `user` (user verification required, a resident key
    /// preferred), excluding the credentials they hold (base64url ids).
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[String],
    ) -> anyhow::Result<Ceremony>;

    /// Finishes a registration with the browser's `RegistrationResponseJSON`.
    fn finish_registration(
        &self,
        response: &serde_json::Value,
        state: &CeremonyState,
    ) -> Result<RegisteredPasskey, PasskeyRejected>;

    /// Starts an authentication: by `credentials` (a second factor, a step-up), or, when
    /// there are none, by whichever discoverable credential the browser offers (a login).
    fn start_authentication(&self, credentials: &[StoredPasskey]) -> anyhow::Result<Ceremony>;

    /// The credential (base64url id) an `AuthenticationResponseJSON` names, and the user handle
    /// it carries, if any: read before anything is verified, to find the stored passkey.
    fn credential_named(
        &self,
        response: &serde_json::Value,
    ) -> Result<(String, Option<Vec<u8>>), PasskeyRejected>;

    /// Verifies an assertion by `passkey` against the ceremony's state.
    fn finish_authentication(
        &self,
        response: &serde_json::Value,
        state: &CeremonyState,
        passkey: &StoredPasskey,
    ) -> Result<VerifiedAssertion, PasskeyRejected>;
}

/// Customers' passkeys, and the ceremonies of passkey logins (opened before anyone is known).
/// A passkey's credential is written when its factor is confirmed and its counter when it is
/// used, both as a [`Spend`](crate::domain::credentials::challenge::Spend) of the transaction
/// that accepts it.
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// The customer's confirmed passkeys, oldest first.
    async fn passkeys(&self, customer: &CustomerId) -> StoreResult<Vec<StoredPasskey>>;
    /// The confirmed passkey with this credential id, whoever holds it.
    async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> StoreResult<Option<StoredPasskey>>;
    /// Whether a passkey login's ceremony (by its [`AnsweredCeremony::id`]) was answered. A
    /// read: an answer that starts a session records its ceremony in that session's
    /// transaction ([`OneStepProof::ceremony`](crate::domain::sessions::OneStepProof)).
    async fn passkey_login_answered(&self, id: &str) -> StoreResult<bool>;
    /// Records a refused answer's ceremony as answered (again: nothing changes).
    async fn answer_passkey_login(&self, ceremony: &AnsweredCeremony) -> StoreResult<()>;
}
