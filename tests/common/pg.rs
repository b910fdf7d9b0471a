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

/// A schema created for one test and dropped when the test ends.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        use sqlx::Connection as _;
        let name = format!("finhub_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("PostgreSQL for tests (FINHUB_TEST_POSTGRES_URL)");
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
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
