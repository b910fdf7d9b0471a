//! The PostgreSQL store, for running several instances side by side.
//!
//! Every counter and state change is a conditional `UPDATE … RETURNING`, an upsert, or runs
//! under a lock: a transaction-scoped advisory lock per username for the failure counters, and
//! the chain's head row for audit appends, which orders the events of every instance into one
//! chain. Nothing is read, changed in Rust and written back unprotected.
//!
//! The queries themselves are shared with SQLite (`sql/`); this module is PostgreSQL's
//! [`Backend`]: the few statements that differ, and the username lock.

mod token_reads;

use std::str::FromStr;

use anyhow::Context as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Pool, Postgres, Transaction};

use self::token_reads::PgTokenReads;
use super::backend::{Backend, HeadMove, Query, Record, WriteTx, locking_statements};
use super::sql::SqlStore;
use super::{ConnectOptions, Migrations};
use crate::store::Trail;
use crate::store::rows::lockout_columns;

/// Explicit row locks, and `SKIP LOCKED` so that instances purging at once take different rows
/// instead of waiting for each other.
impl Backend for Postgres {
    type TokenReads = PgTokenReads;

    /// Transactions run side by side, and PostgreSQL already flushes the commits that arrive
    /// together at once; logins of different customers in one transaction would only hold
    /// each other's locks (and could deadlock with another instance's).
    const GROUP_LOGINS: bool = false;

    const HEAD_MOVE: HeadMove = HeadMove::With;

    const MOVE_LAST_LOGIN: Option<&'static str> = Some(
        "UPDATE customers SET last_login_at = $1 FROM customers AS before \
         WHERE customers.id = $2 AND before.id = customers.id RETURNING before.last_login_at",
    );

    /// `lock_username` (migration 0020) takes the advisory lock, then reads: one round trip.
    const LOCKOUT_UNDER_LOCK: &'static str =
        concat!("SELECT ", lockout_columns!(), " FROM lock_username($1)");

    const AUDIT_IP_BYTEWISE: &'static str = "ip COLLATE \"C\"";
    const NON_ASCII_USERNAMES: &'static str =
        "SELECT id, username FROM customers WHERE username ~ '[^ -~]'";

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    type Writer = Pool<Self>;
    type Tx<'c> = Transaction<'c, Self>;

    async fn begin_write(pool: &Pool<Self>) -> sqlx::Result<Transaction<'static, Self>> {
        pool.begin().await
    }

    /// Outside a transaction: saves the `BEGIN` and `COMMIT` round trips.
    async fn execute_alone(pool: &Pool<Self>, query: Query<Self>) -> sqlx::Result<u64> {
        query.execute(&mut *pool.acquire().await?).await
    }

    async fn fetch_all_alone<R: Record>(
        pool: &Pool<Self>,
        query: Query<Self>,
    ) -> sqlx::Result<Vec<R>> {
        query.fetch_all(&mut *pool.acquire().await?).await
    }

    async fn close_writer(pool: &Pool<Self>) {
        pool.close().await;
    }

    type Reader = Pool<Self>;
    type Read = PoolConnection<Self>;

    async fn read(pool: &Pool<Self>) -> sqlx::Result<PoolConnection<Self>> {
        pool.acquire().await
    }

    async fn close_reader(pool: &Pool<Self>) {
        pool.close().await;
    }

    locking_statements!(read = " FOR UPDATE", batch = " FOR UPDATE SKIP LOCKED");
}

impl WriteTx<Postgres> for Transaction<'_, Postgres> {
    async fn commit(self) -> sqlx::Result<()> {
        Transaction::commit(self).await
    }

    async fn rollback(self) -> sqlx::Result<()> {
        Transaction::rollback(self).await
    }

    async fn savepoint(&mut self) -> sqlx::Result<Transaction<'_, Postgres>> {
        sqlx::Connection::begin(&mut **self).await
    }
}

/// How long a pooled connection may sit idle before it is checked on its way out.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Connects, applying or checking migrations. One pool serves reads and writes: PostgreSQL has
/// no single-writer limit.
pub(super) async fn open(
    url: &str,
    options: &ConnectOptions,
    migrations: Migrations,
    trail: Trail,
) -> anyhow::Result<SqlStore<Postgres>> {
    let statement_timeout = options.statement_timeout.as_millis().to_string();
    let url = PgConnectOptions::from_str(url)
        .context("FINHUB_DATABASE_URL is not a valid postgres:// URL")?;
    // Decided before the first connection, so a downgradable setting never sends a byte.
    match transport(
        url.get_host(),
        url.get_socket().is_some(),
        url.get_ssl_mode(),
    )? {
        Transport::Local | Transport::Verified => {}
        Transport::Unverified(risk) => tracing::warn!(
            host = url.get_host(),
            "PostgreSQL connections {risk}, as sslmode chose; use sslmode=verify-full where the network is not trusted"
        ),
    }
    // Migrations may rightly take longer than any request's statement (an index on a large
    // table): they run on a connection of their own without the statement timeout.
    let migrating = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(url.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    migrations
        .run(sqlx::migrate!("./migrations/postgres"), &migrating)
        .await?;
    migrating.close().await;
    let connect = session_settings(url, &statement_timeout);
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        // sqlx's default pings every connection it hands out: a second round trip for each
        // query, half of what a signed-in read cost. Only a connection idle long enough to
        // have been dropped (a restarted server, a proxy's idle timeout) is pinged now; one
        // that breaks under use fails its query, which answers 503 and discards it.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(connect.clone())
        .await
        .context("cannot connect to PostgreSQL")?;
    let token_reads = PgTokenReads::new(
        connect,
        session_read_connections(options.max_connections),
        options.acquire_timeout,
        options.statement_timeout,
    );
    Ok(SqlStore::new(pool.clone(), pool, trail, token_reads))
}

/// The settings of every connection that serves requests, over any the URL or the server's
/// defaults give: a statement timeout, and READ COMMITTED, the isolation the store's locking is
/// written for (`Backend::LOCKOUT_UNDER_LOCK`). Under a stricter default (`ALTER DATABASE … SET
/// default_transaction_isolation`), concurrent logins on one username would fail each other
/// with serialization errors instead of taking their turn: anyone could keep a customer from
/// signing in by sending wrong passwords for their username at the same time.
fn session_settings(url: PgConnectOptions, statement_timeout_ms: &str) -> PgConnectOptions {
    url.options([
        ("statement_timeout", statement_timeout_ms),
        ("default_transaction_isolation", "read committed"),
    ])
}

/// Connections for the session lookups: one per core of this instance, within the pool's size.
/// Lookups that arrive while every one is busy are read together, so fewer connections read in
/// larger batches: on two cores, 2 connections answered 21.5k reads/s, 4 about 16k and 8 about
/// 15k (docs/performance.md).
fn session_read_connections(max_connections: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    max_connections
        .min(u32::try_from(cores).unwrap_or(u32::MAX))
        .max(1)
}

/// How connections to PostgreSQL are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A Unix socket or a loopback address: nothing crosses a network.
    Local,
    /// TLS with the server's certificate checked (`verify-full`, `verify-ca`).
    Verified,
    /// Chosen explicitly (`disable`, `require`): what an attacker on the path could do.
    Unverified(&'static str),
}

/// Refuses TLS settings that an attacker on the network could downgrade. sqlx's default,
/// `prefer` (and `allow`), falls back to cleartext when TLS fails and accepts any certificate,
/// so without an explicit `sslmode` (or `PGSSLMODE`) a remote database's traffic, passwords
/// and all, could be read and changed in transit. Loopback hosts and Unix sockets keep working
/// as they are.
fn transport(host: &str, socket: bool, mode: PgSslMode) -> anyhow::Result<Transport> {
    if socket || host.starts_with('/') || is_loopback(host) {
        return Ok(Transport::Local);
    }
    match mode {
        PgSslMode::VerifyFull | PgSslMode::VerifyCa => Ok(Transport::Verified),
        PgSslMode::Require => Ok(Transport::Unverified(
            "are encrypted but the server's certificate is not checked",
        )),
        PgSslMode::Disable => Ok(Transport::Unverified("are not encrypted")),
        PgSslMode::Prefer | PgSslMode::Allow => anyhow::bail!(
            "FINHUB_DATABASE_URL: refusing PostgreSQL at {host} without sslmode=verify-full: sslmode {} (the default when the URL and PGSSLMODE name none) falls back to cleartext and accepts any certificate; add ?sslmode=verify-full (and sslrootcert=CA-FILE for a private CA), or sslmode=require or sslmode=disable to accept the risk explicitly",
            if matches!(mode, PgSslMode::Allow) {
                "allow"
            } else {
                "prefer"
            }
        ),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1 (also written IPv4-mapped).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection as _, PgConnection};

    use super::*;

    /// Under a stricter isolation, concurrent logins on one username fail each other: wrong
    /// passwords sent at the right moment would keep the customer from signing in.
    #[tokio::test]
    async fn connections_run_read_committed_whatever_the_url_or_server_asks() {
        let url = std::env::var("FINHUB_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        // Client options outrank the database's and the role's defaults; this one is the
        // strictest a URL could ask for, and the service's own setting must still win.
        let stricter = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("default_transaction_isolation", "serializable")]);
        let mut conn = PgConnection::connect_with(&session_settings(stricter, "5000"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL for tests at {url}: {e}"));
        let (isolation,): (String,) = sqlx::query_as("SHOW default_transaction_isolation")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(isolation, "read committed");
        let (timeout,): (String,) = sqlx::query_as("SHOW statement_timeout")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(timeout, "5s");
    }

    /// A TLS downgrade: without an explicit sslmode a remote database would be reached with
    /// `prefer`, which an attacker on the path turns into cleartext (or a certificate of their
    /// own). Refused; the explicit choices pass, the loopback ones as before.
    #[test]
    fn a_remote_database_without_a_verifying_sslmode_is_refused() {
        for mode in [PgSslMode::Prefer, PgSslMode::Allow] {
            for host in [
                "db.example.invalid",
                "10.0.0.7",
                "[2001:db8::7]",
                "localhost.example",
            ] {
                let refused = transport(host, false, mode).unwrap_err().to_string();
                assert!(refused.contains("sslmode=verify-full"), "{refused}");
                assert!(refused.contains(host), "{refused}");
            }
        }
        let remote = |mode| transport("db.example.invalid", false, mode).unwrap();
        assert_eq!(remote(PgSslMode::VerifyFull), Transport::Verified);
        assert_eq!(remote(PgSslMode::VerifyCa), Transport::Verified);
        assert!(matches!(
            remote(PgSslMode::Require),
            Transport::Unverified(_)
        ));
        assert!(matches!(
            remote(PgSslMode::Disable),
            Transport::Unverified(_)
        ));
    }

    #[test]
    fn loopback_hosts_and_sockets_keep_the_default() {
        for host in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "/var/run/postgresql",
        ] {
            assert_eq!(
                transport(host, false, PgSslMode::Prefer).unwrap(),
                Transport::Local,
                "{host}"
            );
        }
        assert_eq!(
            transport("db.example.invalid", true, PgSslMode::Prefer).unwrap(),
            Transport::Local
        );
    }

    /// What sqlx reads from a URL reaches the decision: the host and an explicit sslmode.
    #[test]
    fn the_url_decides() {
        let decide = |url: &str| {
            let o = PgConnectOptions::from_str(url).unwrap();
            transport(o.get_host(), o.get_socket().is_some(), o.get_ssl_mode())
        };
        assert!(decide("postgres://u@db.example.invalid/x?sslmode=prefer").is_err());
        assert_eq!(
            decide("postgres://u@db.example.invalid/x?sslmode=verify-full").unwrap(),
            Transport::Verified
        );
        assert_eq!(
            decide("postgres://u@127.0.0.1:5432/x?sslmode=prefer").unwrap(),
            Transport::Local
        );
        assert_eq!(
            decide("postgres:///x?host=/var/run/postgresql").unwrap(),
            Transport::Local
        );
    }
}
