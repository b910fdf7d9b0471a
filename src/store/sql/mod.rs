//! The storage ports, implemented once for every [`Backend`]: one file per port, with the
//! queries written in the SQL both databases accept.
//!
//! Writes go through the backend's write transaction ([`Backend::begin_write`]) and take rows in
//! one order everywhere (failure counters, session, challenge, customer, audit head), so that
//! concurrent transactions never wait on each other in a cycle.

mod audit;
mod completion;
mod customers;
mod devices;
mod factor_changes;
mod factors;
mod housekeeping;
mod insert;
mod lockdown;
mod login_commits;
mod outbox;
mod passkeys;
mod places;
mod resets;
mod security;
mod sends;
mod session_ends;
mod sessions;
mod two_factor;
mod webhooks;

use async_trait::async_trait;

use self::login_commits::LoginQueue;
use super::backend::TokenReads as _;
use super::backend::{Backend, Param, Query, Record, Runs, TokenRead, WriteTx as _, query};
use super::token_rows::TokenRecord;
use crate::domain::ports::{Store, StoreError, StoreResult};
use crate::domain::sessions::token::TokenHash;
use crate::store::Trail;

/// A write transaction on backend `B` (or a savepoint in one). Dropped without
/// [`Tx::commit`], it rolls back.
struct Tx<'c, B: Backend>(B::Tx<'c>);

impl<B: Backend> Tx<'_, B> {
    async fn commit(self) -> sqlx::Result<()> {
        self.0.commit().await
    }

    async fn rollback(self) -> sqlx::Result<()> {
        self.0.rollback().await
    }

    /// A savepoint in this transaction, as a transaction of its own.
    async fn savepoint(&mut self) -> sqlx::Result<Tx<'_, B>> {
        Ok(Tx(self.0.savepoint().await?))
    }
}

impl<'c, B: Backend> std::ops::Deref for Tx<'c, B> {
    type Target = B::Tx<'c>;
    fn deref(&self) -> &B::Tx<'c> {
        &self.0
    }
}

impl<B: Backend> std::ops::DerefMut for Tx<'_, B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<B: Backend> Runs<B> for Tx<'_, B> {
    async fn execute(&mut self, query: Query<B>) -> sqlx::Result<u64> {
        self.0.execute(query).await
    }

    async fn fetch_optional<R: Record>(&mut self, query: Query<B>) -> sqlx::Result<Option<R>> {
        self.0.fetch_optional(query).await
    }

    async fn fetch_all<R: Record>(&mut self, query: Query<B>) -> sqlx::Result<Vec<R>> {
        self.0.fetch_all(query).await
    }
}

/// The database of backend `B`, with the seal its audit chain is written under.
#[derive(Debug)]
pub struct SqlStore<B: Backend> {
    /// Where every write transaction starts (on SQLite, its one writer connection).
    writer: B::Writer,
    reader: B::Reader,
    /// The backend's own way to read a session by its token, if it has one.
    token_reads: B::TokenReads,
    /// How audit events are sealed and which are queued for the webhook.
    trail: Trail,
    /// Logins waiting to share a commit, where the backend groups them.
    logins: LoginQueue,
}

impl<B: Backend> SqlStore<B> {
    pub(super) fn new(
        writer: B::Writer,
        reader: B::Reader,
        trail: Trail,
        token_reads: B::TokenReads,
    ) -> Self {
        Self {
            writer,
            reader,
            token_reads,
            trail,
            logins: LoginQueue::default(),
        }
    }

    async fn write(&self) -> StoreResult<Tx<'static, B>> {
        Ok(Tx(B::begin_write(&self.writer).await?))
    }

    async fn read(&self) -> StoreResult<B::Read> {
        Ok(B::read(&self.reader).await?)
    }

    /// Runs one write statement as a write of its own ([`Backend::execute_alone`]).
    async fn write_alone(&self, query: Query<B>) -> StoreResult<u64> {
        Ok(B::execute_alone(&self.writer, query).await?)
    }

    /// The row `sql` selects by one key, converted to its domain value.
    async fn read_one<R, T>(&self, sql: &'static str, key: impl Param) -> StoreResult<Option<T>>
    where
        R: Record,
        T: TryFrom<R, Error = StoreError>,
    {
        let row: Option<R> = query::<B>(sql)
            .bind(key)
            .fetch_optional(&mut self.read().await?)
            .await?;
        row.map(T::try_from).transpose()
    }

    /// The row `read` selects by a token hash: the per-request read, the backend's own way
    /// where it has one.
    async fn read_by_token<R, T>(
        &self,
        read: &'static TokenRead,
        hash: &TokenHash,
    ) -> StoreResult<Option<T>>
    where
        R: Record + TokenRecord,
        T: TryFrom<R, Error = StoreError>,
    {
        let key = hash.as_bytes().as_slice();
        if let Some(row) = self.token_reads.read_one::<R>(read, key).await {
            return row?.map(T::try_from).transpose();
        }
        self.read_one::<R, T>(read.one, key).await
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.read().await?;
        query::<B>("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    async fn close(&self) {
        self.token_reads.close();
        B::close_writer(&self.writer).await;
        B::close_reader(&self.reader).await;
    }
}
