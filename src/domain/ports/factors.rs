//! Second factors a customer holds, and their recovery codes.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::credentials::challenge::{
    ChallengeId, NewChallenge, SendOutcome, TwoFactorPolicy,
};
use crate::domain::credentials::factor::{
    Factor, FactorId, FactorUpdate, HeldFactor, PendingFactor, Removal,
};
use crate::domain::customers::CustomerId;
use crate::domain::delivery::message::Message;

/// The factors customers hold. A customer's default factor is read with the customer
/// ([`Customer::factor`](crate::domain::customers::Customer::factor)), so the hot reads need no
/// second query; this port answers for the others.
#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    /// Every confirmed factor the customer holds, oldest first.
    async fn factors(&self, customer: &CustomerId) -> StoreResult<Vec<HeldFactor>>;
    /// An authenticator app's sealed secret, confirmed or not; `None` for another method or an
    /// unknown factor.
    async fn totp_secret(&self, factor: &FactorId) -> StoreResult<Option<Vec<u8>>>;
    /// Replaces an app's sealed secret `before` with `now` (the same secret, sealed under the
    /// current audit key after a rotation); nothing changes if it is no longer `before`.
    async fn reseal_totp_secret(
        &self,
        factor: &FactorId,
        before: &[u8],
        now: &[u8],
    ) -> StoreResult<()>;
    /// The customer's unconfirmed factor `factor`, if it has not expired by `now`, with the
    /// challenge that confirms it.
    async fn pending_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<(Factor, ChallengeId)>>;
    /// Stores `pending` with the challenge that confirms it, in one transaction, like
    /// [`TwoFactorStore::open_challenge`](super::TwoFactorStore::open_challenge) (under the
    /// sending limits when a code is sent); nothing is stored unless the challenge opens.
    async fn add_pending_factor(
        &self,
        pending: &PendingFactor,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        message: Option<&Message>,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome>;
    /// Renames the customer's factor or makes it the default; `None` when they hold no such
    /// (confirmed) factor.
    async fn update_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        update: &FactorUpdate,
        event: &AuditEvent,
    ) -> StoreResult<Option<HeldFactor>>;
    /// Removes the customer's factor, queueing `notices`; the default moves to the oldest
    /// remaining factor, and removing the last drops the recovery codes, unless `keep_last`
    /// (two-factor required), when the last one stays. Nothing changes unless `Removed`.
    async fn remove_factor(
        &self,
        customer: &CustomerId,
        factor: &FactorId,
        keep_last: bool,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<Removal>;
    /// Removes every factor the customer holds (confirmed or not) and their recovery codes,
    /// closing the challenges open for those factors, and queues `notices`; returns how many
    /// factors went.
    async fn remove_all_factors(
        &self,
        customer: &CustomerId,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<u64>;
    /// Replaces the customer's recovery codes with these hashes, queueing `notices`. `false`
    /// (nothing changes) when the customer no longer holds a factor.
    async fn replace_recovery_codes(
        &self,
        customer: &CustomerId,
        hashes: &[[u8; 32]],
        at: OffsetDateTime,
        notices: &[Message],
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The customer's unused recovery codes.
    async fn recovery_codes_remaining(&self, customer: &CustomerId) -> StoreResult<u32>;
    /// The id of the customer's unused recovery code stored under any of these hashes (the
    /// forms one code takes under each key), in one read whichever matches.
    async fn unused_recovery_code(
        &self,
        customer: &CustomerId,
        hashes: &[[u8; 32]],
    ) -> StoreResult<Option<String>>;
}
