//! The `finhub-auth` binary as operators and scripts use it: real processes, a real database
//! file, real signals.

#[path = "../common/pg.rs"]
mod pg;
#[path = "../common/process.rs"]
mod process;

mod audit;
mod building;
mod commands;
mod customers;
mod serve;

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use process::{Instance, Setup};

const PASSWORD: &str = "Corr3ct-horse-battery";

/// A working directory with a SQLite database, and the setup that points the binary at it. Debug
/// logging is on, so that the log shows as much as it ever would.
fn sandbox() -> (Setup, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let setup = Setup::sqlite(dir.path()).with("RUST_LOG", "debug,sqlx=warn");
    (setup, dir)
}

/// The store a test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the test `name(Backend)` once on each store, as `name::sqlite` and `name::postgres`.
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    };
}
pub(crate) use on_both_stores;

/// A test's database: a SQLite file in its directory, or a PostgreSQL schema of its own
/// (dropped with it).
enum Database {
    Sqlite(PathBuf),
    Postgres(pg::PgSchema),
}

impl Database {
    /// Runs `sql` on the database directly, past the service, as an intruder with write access
    /// would.
    async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        let result = match self {
            Self::Sqlite(path) => sqlite_result(path, sql).await,
            Self::Postgres(schema) => {
                let mut conn = sqlx::PgConnection::connect(&schema.url())
                    .await
                    .expect("connect");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// The statement that lets events be deleted: the trigger guarding them dropped.
    fn allow_deleting_events(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "DROP TRIGGER audit_events_are_not_deleted;",
            Self::Postgres(_) => "DROP TRIGGER audit_events_are_not_changed ON audit_events;",
        }
    }
}

/// [`sandbox`] on `backend`.
async fn sandbox_on(backend: Backend) -> (Setup, TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    match backend {
        Backend::Sqlite => {
            let setup = Setup::sqlite(dir.path()).with("RUST_LOG", "debug,sqlx=warn");
            let db = Database::Sqlite(database(&setup));
            (setup, dir, db)
        }
        Backend::Postgres => {
            let schema = pg::PgSchema::create().await;
            let setup = Setup::new(schema.url(), dir.path()).with("RUST_LOG", "debug,sqlx=warn");
            (setup, dir, Database::Postgres(schema))
        }
    }
}

fn database(setup: &Setup) -> PathBuf {
    setup.path("auth.db")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args` and asserts that the command succeeded.
fn run_ok(setup: &Setup, args: &[&str]) -> Output {
    let out = setup.run(args, None);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

/// The `kind` of an event as `audit tail` and `audit export` print it.
fn kind(line: &str) -> String {
    let event: Value = serde_json::from_str(line).expect("an event per line");
    event["kind"].as_str().expect("kind").to_owned()
}

/// The audit trail as `audit export` writes it, oldest first.
fn exported_events(setup: &Setup) -> Vec<Value> {
    let out = run_ok(
        setup,
        &["audit", "export", "--since", "2000-01-01T00:00:00Z"],
    );
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect()
}

/// Logs in `username` and returns the bffToken.
async fn login(server: &Instance, username: &str) -> String {
    let (status, body) = server.login(username, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["bffToken"].as_str().expect("bffToken").to_owned()
}

/// bob (2FA by SMS) logs in, passes 2FA and renews the session. Returns every secret the flow
/// handled: the password, the code and each token.
async fn full_flow(setup: &Setup, server: &Instance) -> Vec<String> {
    let (status, login) = server.login("bob@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let pending = login["bffToken"].as_str().expect("bffToken");
    let (status, challenge) = server
        .post("/api/v1/auth/2fa/initiate", &json!({}), Some(pending))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{challenge}");
    let code = setup
        .code_for(challenge["challengeId"].as_str().expect("challengeId"))
        .await;
    let verify = json!({"challengeId": challenge["challengeId"], "code": code});
    let (status, active) = server
        .post("/api/v1/auth/2fa/verify", &verify, Some(pending))
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    let refresh = json!({"refreshToken": active["refreshToken"]});
    let (status, renewed) = server
        .post("/api/v1/auth/token/refresh", &refresh, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let token = |body: &Value, field: &str| body[field].as_str().expect(field).to_owned();
    vec![
        PASSWORD.to_owned(),
        code,
        token(&login, "bffToken"),
        token(&login, "refreshToken"),
        token(&active, "bffToken"),
        token(&active, "refreshToken"),
        token(&renewed, "bffToken"),
        token(&renewed, "refreshToken"),
    ]
}

/// Runs SQL on a database file with a raw connection, as an insider with file access could.
async fn sqlite(db: &Path, sql: &str) {
    if let Err(e) = sqlite_result(db, sql).await {
        panic!("{e}");
    }
}

async fn sqlite_result(db: &Path, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut open_file(db).await)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// How many rows `sql` returns, run on the database file directly.
async fn sqlite_rows(db: &Path, sql: &str) -> usize {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut open_file(db).await)
        .await
        .expect("query")
        .len()
}

async fn open_file(db: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", db.display());
    sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the database file")
}
