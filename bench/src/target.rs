//! The system under test: a `finhub-auth serve` process on a fresh database, its customers and
//! sessions, and what the operating system says about its memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use serde_json::json;
use tokio::process::{Child, Command};

pub const PASSWORD: &str = "Bench-password-2026";

/// Where the service keeps its state for one run.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    /// A schema of its own in a PostgreSQL database, dropped at the end.
    Postgres {
        admin_url: String,
        schema: String,
    },
}

impl Database {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres { admin_url, schema } => {
                format!("{admin_url}?options=-c%20search_path%3D{schema}")
            }
        }
    }

    /// A fresh PostgreSQL schema, if the server answers.
    pub async fn postgres(admin_url: &str) -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        let schema = format!("finhub_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        let create = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut conn)
            .await?;
        Ok(Self::Postgres {
            admin_url: admin_url.to_owned(),
            schema,
        })
    }

    /// Removes what the run created.
    pub async fn drop_all(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Self::Postgres { admin_url, schema } => {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(admin_url).await?;
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                    .execute(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds `count` ACTIVE sessions spread over the customers, straight into the tables: a
    /// million logins through the service would take a million password hashes.
    pub async fn add_sessions(&self, count: u64) -> anyhow::Result<()> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let sql = match self {
            Self::Sqlite(_) => format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {count} - 1), \
                     total(t) AS (SELECT MAX(rowid) FROM customers) \
                     INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, \
                     expires_at, absolute_expires_at, last_seen_at) \
                     SELECT 'seeded-' || n.i, c.id, 'ACTIVE', randomblob(32), randomblob(32), {now_ms}, \
                     {now_ms} + 3600000, {now_ms} + 43200000, {now_ms} \
                     FROM n, total JOIN customers c ON c.rowid = 1 + (n.i % total.t)"
            ),
            Self::Postgres { .. } => format!(
                "WITH c AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM customers), \
                     t AS (SELECT COUNT(*) AS total FROM customers), \
                     n AS (SELECT i, i % t.total AS k FROM generate_series(1, {count}) AS i, t) \
                     INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, \
                     expires_at, absolute_expires_at, last_seen_at) \
                     SELECT 'seeded-' || n.i, c.id, 'ACTIVE', \
                     sha256(('a' || n.i || random())::text::bytea), sha256(('r' || n.i || random())::text::bytea), \
                     {now_ms}, {now_ms} + 3600000, {now_ms} + 43200000, {now_ms} \
                     FROM n JOIN c ON c.k = n.k"
            ),
        };
        self.execute(sql).await.context("seeding sessions")
    }

    /// Runs SQL on the service's database directly.
    async fn execute(&self, sql: String) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Self::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
            }
            Self::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
            }
        }
        Ok(())
    }
}

/// Writes `count` customers as `customers import` reads them, all with one pre-computed argon2id
/// hash (each login still verifies it in full). Customers `flow-*` have SMS two-factor.
pub fn write_customers(path: &Path, count: u64, flow_customers: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let params = crate::hash_bound::default_params()?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..count {
        let name = format!("bench-{i}@example.com");
        let line = json!({"username": name, "email": name, "firstName": "Bench", "lastName": "Customer",
            "kycStatus": "VERIFIED", "passwordHash": hash});
        writeln!(out, "{line}")?;
    }
    for i in 0..flow_customers {
        let name = format!("flow-{i}@example.com");
        let line = json!({"username": name, "email": name, "phone": "+447700900123", "firstName": "Flow",
            "lastName": "Customer", "twoFactor": {"enabled": true, "method": "SMS"}, "passwordHash": hash});
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Logs a bench customer in at `base`; returns the bffToken.
pub async fn login_at(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> anyhow::Result<String> {
    let body: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/token"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body["bffToken"]
        .as_str()
        .map(str::to_owned)
        .context("a bffToken in the login response")
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in MiB.
pub fn memory_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// A running `finhub-auth serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub outbox: PathBuf,
}

/// How a server is started.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub database: &'a Database,
    pub work_dir: &'a Path,
    /// Rate limits as the defaults have them (`false`: all off, for throughput runs).
    pub default_limits: bool,
    /// Settings of this run, applied last (`FINHUB_*` name, value).
    pub settings: &'a [(&'static str, String)],
}

impl Launch<'_> {
    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(self.binary);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FINHUB_")) {
            cmd.env_remove(k);
        }
        cmd.current_dir(self.work_dir)
            .env("FINHUB_DATABASE_URL", self.database.url())
            .env("FINHUB_LISTEN", format!("127.0.0.1:{port}"))
            .env("FINHUB_OUTBOX_PATH", self.work_dir.join("outbox.jsonl"))
            .env("FINHUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !self.default_limits {
            for limit in ["IP", "LOGIN_IP", "LOGIN_ACCOUNT"] {
                cmd.env(format!("FINHUB_RATE_LIMIT_{limit}"), "off");
            }
        }
        cmd.env("FINHUB_WEBAUTHN_RP_ID", crate::passkeys::RP_ID)
            .env("FINHUB_WEBAUTHN_ORIGIN", crate::passkeys::ORIGIN);
        // The flow scenario sends each of its few customers thousands of codes an hour.
        cmd.env("FINHUB_2FA_CUSTOMER_SENDS", "off");
        // As production runs: `serve` on PostgreSQL refuses to start without an audit key.
        cmd.env(
            "FINHUB_AUDIT_KEY",
            "finhub-bench-audit-key-of-32-bytes-or-more",
        );
        for (name, value) in self.settings {
            cmd.env(name, value);
        }
        cmd
    }

    /// `customers import FILE`, timed.
    pub async fn import(&self, file: &Path) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = self
            .command(0)
            .args(["customers", "import"])
            .arg(file)
            .status()
            .await
            .context("running customers import")?;
        if !status.success() {
            bail!("customers import failed: {status}");
        }
        Ok(started.elapsed())
    }

    /// Starts the server and waits until it is ready.
    pub async fn start(&self) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = self
            .command(port)
            .arg("serve")
            .kill_on_drop(true)
            .spawn()
            .context("starting finhub-auth serve")?;
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            outbox: self.work_dir.join("outbox.jsonl"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/readyz", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("finhub-auth did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Server {
    /// The peak resident memory of the server process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        memory_mib(self.pid()?, "VmHWM:")
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the server has exited")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A fresh bffToken for a customer.
    pub async fn login(&self, client: &reqwest::Client, username: &str) -> anyhow::Result<String> {
        login_at(client, &self.base, username).await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
