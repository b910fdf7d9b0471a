//! The [`Store`] implementation both backends share: each method hands the work to the shared
//! query modules, with the write pool for changes and the read pool for reads.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{audit, customers, sessions, two_factor, write_tx};
use crate::domain::audit::{AuditEvent, ChainedEvent};
use crate::domain::customer::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::session::{NewSession, Rotation, Session, SessionId};
use crate::domain::token::TokenHash;
use crate::domain::two_factor::{
    ChallengeId, CodeGuess, GuessOutcome, NewChallenge, SendOutcome, TwoFactorPolicy,
};
use crate::store::{AuditQuery, FailureOutcome, SessionStart, Store, StoreResult};

#[async_trait]
impl Store for super::ThisStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()> {
        customers::insert(&self.writer, &self.seal, customer, event).await
    }

    async fn insert_customers(&self, batch: &[(NewCustomer, AuditEvent)]) -> StoreResult<u64> {
        customers::insert_batch(&self.writer, &self.seal, batch).await
    }

    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>> {
        customers::by_username(&self.reader, username).await
    }

    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>> {
        customers::by_id(&self.reader, id).await
    }

    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        customers::replace_password_hash(&self.writer, &self.seal, id, old, new, event).await
    }

    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord> {
        customers::lockout(&self.reader, username).await
    }

    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
    ) -> StoreResult<FailureOutcome> {
        customers::record_failure(&self.writer, &self.seal, username, policy, event).await
    }

    async fn set_operator_lock(
        &self,
        username: &Username,
        customer: &CustomerId,
        locked: bool,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        customers::set_operator_lock(&self.writer, &self.seal, username, customer, locked, event)
            .await
    }

    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = write_tx(&self.writer).await?;
        audit::append(&mut tx, &self.seal, &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_session(
        &self,
        session: &NewSession,
        username: &Username,
        event: &AuditEvent,
    ) -> StoreResult<SessionStart> {
        sessions::start(&self.writer, &self.seal, session, username, event).await
    }

    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_access(&self.reader, hash).await
    }

    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_refresh(&self.reader, hash).await
    }

    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_retired_refresh(&self.reader, hash).await
    }

    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()> {
        sessions::touch(&self.writer, id, at).await
    }

    async fn rotate_session(&self, rotation: &Rotation, event: &AuditEvent) -> StoreResult<bool> {
        sessions::rotate(&self.writer, &self.seal, rotation, event).await
    }

    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        sessions::revoke(&self.writer, &self.seal, id, reason, event).await
    }

    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        sessions::revoke_all(&self.writer, &self.seal, customer, reason, event).await
    }

    async fn open_challenge(
        &self,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        two_factor::open(&self.writer, &self.seal, challenge, policy, event).await
    }

    async fn release_send(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        two_factor::release_send(&self.writer, &self.seal, challenge, session, event).await
    }

    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        two_factor::check_code(&self.writer, &self.seal, guess, policy, context).await
    }

    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        sessions::purge(&self.writer, cutoff, batch).await
    }

    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        customers::purge_lockouts(&self.writer, cutoff, batch).await
    }

    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        audit::purge(&self.writer, &self.seal, cutoff, batch, event).await
    }

    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)> {
        audit::checkpoint(&self.reader).await
    }

    async fn audit_events(&self, query: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
        audit::events(&self.reader, query).await
    }

    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>> {
        audit::tail(&self.reader, n).await
    }

    async fn audit_head(&self) -> StoreResult<(i64, String)> {
        audit::head(&self.reader).await
    }
}
