//! Databases for tests: a fresh PostgreSQL schema with every migration applied and an
//! in-memory SQLite database likewise, for tests that ask the database about the schema
//! itself; and a SQLite file of a test's own, for tests of the connections to one.

use std::path::PathBuf;
use std::str::FromStr as _;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, PgConnection, SqliteConnection};

/// A connection whose search path is a new schema named after `purpose` and this process,
/// migrated; [`drop_postgres`] removes it.
pub async fn migrated_postgres(purpose: &str) -> (PgConnection, String) {
    let url = std::env::var("FINHUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL for tests at {url}: {e}"));
    let schema = format!("{purpose}_{}", std::process::id());
    let setup = format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; \
         SET search_path TO {schema}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::migrate!("./migrations/postgres")
        .run(&mut conn)
        .await
        .unwrap();
    (conn, schema)
}

pub async fn drop_postgres(conn: &mut PgConnection, schema: &str) {
    let drop = format!("DROP SCHEMA {schema} CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(conn)
        .await
        .unwrap();
}

/// An in-memory SQLite database, migrated.
pub async fn migrated_sqlite() -> SqliteConnection {
    let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut conn)
        .await
        .unwrap();
    conn
}

/// A SQLite database file in a directory of its own (removed when the `TempDir` is dropped),
/// set up by `setup` on a connection closed before it returns.
pub fn sqlite_file(setup: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.db");
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(setup)
        .unwrap();
    (dir, file)
}
