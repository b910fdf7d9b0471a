//! The customer's own security view: sessions, devices, sign-in history.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::audit::AuditEvent;
use crate::domain::auth::security::{Cursor, LiveSession, Liveness, SecurityEvent};
use crate::domain::customers::{CustomerId, Username};
use crate::domain::risk::device::{DeviceId, KnownDevice};
use crate::domain::risk::{DeviceStanding, LoginHistory};
use crate::domain::sessions::SessionId;

/// What the customer sees of their own security: live sessions, known devices and the security
/// history, and what the risk checks read.
#[async_trait]
pub trait SecurityStore: Send + Sync + 'static {
    /// The customer's live sessions, newest first.
    async fn live_sessions(
        &self,
        customer: &CustomerId,
        live: &Liveness,
    ) -> StoreResult<Vec<LiveSession>>;
    /// Ends one live session of the customer's; false (and nothing written) when there is no
    /// such live session of theirs.
    async fn end_own_session(
        &self,
        customer: &CustomerId,
        session: &SessionId,
        live: &Liveness,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Whether the customer completed a login on the device with this fingerprint hash, or,
    /// for a login that names none, on any device.
    async fn device_standing(
        &self,
        customer: &CustomerId,
        fingerprint_hash: Option<&str>,
    ) -> StoreResult<DeviceStanding>;
    /// The customer's devices, last seen first, with their live ACTIVE sessions counted.
    async fn devices(
        &self,
        customer: &CustomerId,
        live: &Liveness,
    ) -> StoreResult<Vec<KnownDevice>>;
    /// Forgets a device of the customer's and ends its sessions; false (and nothing written)
    /// when the customer has no such device.
    async fn forget_device(
        &self,
        customer: &CustomerId,
        device: &DeviceId,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The places and time of the customer's completed logins, for judging a new one.
    async fn login_history(&self, customer: &CustomerId) -> StoreResult<LoginHistory>;
    /// Up to `limit` events of the customer's history (theirs, or naming their username),
    /// newest first, older than `before`.
    async fn security_events(
        &self,
        customer: &CustomerId,
        username: &Username,
        before: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Vec<SecurityEvent>>;
}
