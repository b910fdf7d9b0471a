//! The storage ports of [`crate::domain::ports`], implemented once in `sql` for both
//! databases; each backend (`sqlite`, `postgres`) supplies what differs through
//! `backend::Backend`. The backend is chosen once, at start-up, from the database URL.

mod backend;
mod error;
#[cfg(test)]
mod index_overlap;
#[cfg(test)]
mod index_use;
mod postgres;
mod record;
mod rows;
mod sql;
mod sqlite;
#[cfg(test)]
mod test_schema;
mod token_rows;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Database, Pool};

use self::backend::Backend;
use self::sql::SqlStore;
/// The embedded database's files: owner-only, and the audit key generated beside them.
pub use self::sqlite::files as sqlite_files;
use crate::domain::audit::ChainSeal;
use crate::domain::delivery::webhook::WebhookKinds;
use crate::domain::ports::Store;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` URLs: one file, one writer.
    Sqlite,
    /// `postgres:` URLs: several instances side by side.
    Postgres,
}

impl DatabaseKind {
    /// The kind of database `url` names, if it is one this service supports.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// What opening a store does about the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Applies pending migrations (concurrent starters on PostgreSQL wait on the migrator's
    /// advisory lock, so they run once); creates a missing SQLite file.
    Apply,
    /// Changes nothing: refuses a database whose schema is behind this binary.
    Check,
}

impl Migrations {
    async fn run<DB>(self, mut migrator: Migrator, pool: &Pool<DB>) -> anyhow::Result<()>
    where
        DB: Database,
        DB::Connection: Migrate,
    {
        // A binary that predates a migration keeps working against the newer schema (rolling
        // deployments); migrations only ever add.
        migrator.set_ignore_missing(true);
        if self == Self::Apply {
            return migrator.run(pool).await.context("applying migrations");
        }
        let mut conn = pool.acquire().await.context("connecting to the database")?;
        let applied = conn
            .list_applied_migrations(&migrator.table_name)
            .await
            .context("the database has no schema yet; run `finhub-auth migrate`")?;
        if let Some(missing) = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .find(|m| !applied.iter().any(|a| a.version == m.version))
        {
            anyhow::bail!(
                "the database schema is behind this version (migration {} `{}` not applied); run `finhub-auth migrate`",
                missing.version,
                missing.description
            );
        }
        Ok(())
    }
}

/// Connection settings shared by the backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The pool's size.
    pub max_connections: u32,
    /// How long a caller waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels statements running longer than this.
    pub statement_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// How the store writes audit events: sealed into the chain, and queued for the security
/// webhook when their kind is one it sends, in the same transaction.
#[derive(Debug, Clone)]
pub struct Trail {
    /// How each event is linked into the chain.
    pub seal: ChainSeal,
    /// The kinds queued for the webhook; none without one.
    pub webhooks: WebhookKinds,
}

/// Opens the store a database URL names. Audit events are written as `trail` says.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    migrations: Migrations,
    trail: Trail,
) -> anyhow::Result<Arc<dyn Store>> {
    match DatabaseKind::of(url) {
        Some(DatabaseKind::Sqlite) => {
            finish(
                sqlite::open(url, options, migrations, trail).await?,
                migrations,
            )
            .await
        }
        Some(DatabaseKind::Postgres) => {
            finish(
                postgres::open(url, options, migrations, trail).await?,
                migrations,
            )
            .await
        }
        None => anyhow::bail!("FINHUB_DATABASE_URL must start with sqlite:// or postgres://"),
    }
}

/// Brings data written by earlier versions into today's form, once the schema is current.
async fn finish<B: Backend>(
    store: SqlStore<B>,
    migrations: Migrations,
) -> anyhow::Result<Arc<dyn Store>> {
    if migrations == Migrations::Apply {
        let rewritten = store
            .normalise_usernames()
            .await
            .context("normalising stored usernames")?;
        if rewritten > 0 {
            tracing::info!(customers = rewritten, "stored usernames normalised");
        }
    }
    Ok(Arc::new(store))
}

/// Locks a list that its holders only push to, pop from and filter: whatever a panicking holder
/// was doing, the list is valid, so a poisoned lock is taken as it is.
fn lock_list<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
