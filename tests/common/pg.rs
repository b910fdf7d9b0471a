//! PostgreSQL for tests: a schema of its own per test, dropped when the test ends.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part"
)]

/// The PostgreSQL server tests use; each test gets a schema of its own in its database.
pub fn postgres_admin_url() -> String {
    std::env::var("FINHUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn unreachable_server(url: &str, why: &str) -> ! {
    let url = without_password(url);
    let line = format!(
        "PostgreSQL for tests is unreachable at {url}: {why}; start it or set FINHUB_TEST_POSTGRES_URL"
    );
    eprintln!("{line}");
    // Fails the test without the panic hook, so no backtrace follows the line even when
    // RUST_BACKTRACE is set: the line says all there is to say.
    std::panic::resume_unwind(Box::new(line))
}

/// `url` with any password replaced by `***`, fit for a test's output.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A schema created for one test and dropped when the test ends.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    /// Fails the test with one line naming `FINHUB_TEST_POSTGRES_URL` when the server cannot be
    /// reached: a run without PostgreSQL must not pass by skipping half the suite.
    pub async fn create() -> Self {
        use sqlx::Connection as _;
        let name = format!("finhub_test_{}", uuid::Uuid::new_v4().simple());
        let url = postgres_admin_url();
        let connect = sqlx::PgConnection::connect(&url);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => unreachable_server(&url, &e.to_string()),
            Err(_) => unreachable_server(&url, "no answer within 10 s"),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        Self { name }
    }

    /// A database URL whose connections work inside this schema.
    pub fn url(&self) -> String {
        format!(
            "{}?options=-c%20search_path%3D{}",
            postgres_admin_url(),
            self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    // A transaction of the test's service may still hold a lock here, on the
                    // test's runtime, which this drop blocks: give up rather than wait for ever
                    // (the schema is then left behind).
                    let sql = format!("SET lock_timeout = '10s'; {sql}");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
