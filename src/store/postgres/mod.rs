//! The PostgreSQL store, for running several instances side by side.
//!
//! Every counter and state change is a conditional `UPDATE … RETURNING` or runs under a row
//! lock (`SELECT … FOR UPDATE`), never a read-modify-write in Rust. Appends to the audit chain
//! lock its head row, which orders the events of every instance into one chain.

mod audit;
mod customers;
mod sessions;
mod two_factor;

use std::str::FromStr;

use anyhow::Context as _;
use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;

use super::{AuditQuery, ConnectOptions, FailureOutcome, SessionStart, Store, StoreResult};
use crate::domain::audit::{AuditEvent, ChainSeal, ChainedEvent};
use crate::domain::customer::{Customer, CustomerId, NewCustomer, Username};
use crate::domain::lockout::{LockoutPolicy, LockoutRecord};
use crate::domain::session::{NewSession, Rotation, Session, SessionId};
use crate::domain::token::TokenHash;
use crate::domain::two_factor::{
    ChallengeId, CodeGuess, GuessOutcome, NewChallenge, SendOutcome, TwoFactorPolicy,
};

/// A PostgreSQL database shared by any number of instances.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    seal: ChainSeal,
}

impl PgStore {
    /// Connects and applies pending migrations; concurrent starters wait on the migrator's
    /// advisory lock, so migrations run once.
    pub async fn open(
        url: &str,
        options: &ConnectOptions,
        seal: ChainSeal,
    ) -> anyhow::Result<Self> {
        let statement_timeout = options.statement_timeout.as_millis().to_string();
        let connect = PgConnectOptions::from_str(url)
            .context("FINHUB_DATABASE_URL is not a valid postgres:// URL")?
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .context("cannot connect to PostgreSQL")?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // A binary that predates a migration keeps working against the newer schema (rolling
        // deployments); migrations only ever add.
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .context("applying the PostgreSQL migrations")?;
        Ok(Self { pool, seal })
    }
}

async fn write_tx(pool: &PgPool) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(pool.begin().await?)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_customer(&self, customer: &NewCustomer, event: &AuditEvent) -> StoreResult<()> {
        customers::insert(&self.pool, &self.seal, customer, event).await
    }

    async fn insert_customers(&self, batch: &[(NewCustomer, AuditEvent)]) -> StoreResult<u64> {
        customers::insert_batch(&self.pool, &self.seal, batch).await
    }

    async fn customer_by_username(&self, username: &Username) -> StoreResult<Option<Customer>> {
        customers::by_username(&self.pool, username).await
    }

    async fn customer_by_id(&self, id: &CustomerId) -> StoreResult<Option<Customer>> {
        customers::by_id(&self.pool, id).await
    }

    async fn replace_password_hash(
        &self,
        id: &CustomerId,
        old: &str,
        new: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        customers::replace_password_hash(&self.pool, &self.seal, id, old, new, event).await
    }

    async fn lockout(&self, username: &Username) -> StoreResult<LockoutRecord> {
        customers::lockout(&self.pool, username).await
    }

    async fn record_failure(
        &self,
        username: &Username,
        policy: &LockoutPolicy,
        event: &AuditEvent,
    ) -> StoreResult<FailureOutcome> {
        customers::record_failure(&self.pool, &self.seal, username, policy, event).await
    }

    async fn set_operator_lock(
        &self,
        username: &Username,
        customer: &CustomerId,
        locked: bool,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        customers::set_operator_lock(&self.pool, &self.seal, username, customer, locked, event)
            .await
    }

    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = write_tx(&self.pool).await?;
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
        sessions::start(&self.pool, &self.seal, session, username, event).await
    }

    async fn session_by_access(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_access(&self.pool, hash).await
    }

    async fn session_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_refresh(&self.pool, hash).await
    }

    async fn session_by_retired_refresh(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        sessions::by_retired_refresh(&self.pool, hash).await
    }

    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> StoreResult<()> {
        sessions::touch(&self.pool, id, at).await
    }

    async fn rotate_session(&self, rotation: &Rotation, event: &AuditEvent) -> StoreResult<bool> {
        sessions::rotate(&self.pool, &self.seal, rotation, event).await
    }

    async fn revoke_session(
        &self,
        id: &SessionId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        sessions::revoke(&self.pool, &self.seal, id, reason, event).await
    }

    async fn revoke_customer_sessions(
        &self,
        customer: &CustomerId,
        reason: &str,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        sessions::revoke_all(&self.pool, &self.seal, customer, reason, event).await
    }

    async fn open_challenge(
        &self,
        challenge: &NewChallenge,
        policy: &TwoFactorPolicy,
        event: &AuditEvent,
    ) -> StoreResult<SendOutcome> {
        two_factor::open(&self.pool, &self.seal, challenge, policy, event).await
    }

    async fn release_send(
        &self,
        challenge: &ChallengeId,
        session: &SessionId,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        two_factor::release_send(&self.pool, &self.seal, challenge, session, event).await
    }

    async fn check_code(
        &self,
        guess: &CodeGuess,
        policy: &LockoutPolicy,
        context: &AuditEvent,
    ) -> StoreResult<GuessOutcome> {
        two_factor::check_code(&self.pool, &self.seal, guess, policy, context).await
    }

    async fn purge_sessions(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        sessions::purge(&self.pool, cutoff, batch).await
    }

    async fn purge_lockouts(&self, cutoff: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        customers::purge_lockouts(&self.pool, cutoff, batch).await
    }

    async fn purge_audit(
        &self,
        cutoff: OffsetDateTime,
        batch: u32,
        event: &AuditEvent,
    ) -> StoreResult<u64> {
        audit::purge(&self.pool, &self.seal, cutoff, batch, event).await
    }

    async fn audit_checkpoint(&self) -> StoreResult<(i64, String)> {
        audit::checkpoint(&self.pool).await
    }

    async fn audit_events(&self, query: AuditQuery) -> StoreResult<Vec<ChainedEvent>> {
        audit::events(&self.pool, query).await
    }

    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<ChainedEvent>> {
        audit::tail(&self.pool, n).await
    }

    async fn audit_head(&self) -> StoreResult<(i64, String)> {
        audit::head(&self.pool).await
    }
}
