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

    /// Gives every customer a session whose absolute lifetime ended an hour ago, straight into
    /// the table: it fills the tables and indexes as a live one would (a million logins through
    /// the service would take a million password hashes), and housekeeping purges it once
    /// `FINHUB_SESSION_RETENTION` no longer keeps it.
    pub async fn add_ended_sessions(&self) -> anyhow::Result<()> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let (created, ended) = (now_ms - 13 * 3_600_000, now_ms - 3_600_000);
        // What a login stores beside the hashes: address, browser, device, place.
        let (prefix, hashes, fingerprint) = match self {
            // The seeding statement's own cache: the random hashes' indexes outgrow the default.
            Self::Sqlite(_) => (
                "PRAGMA cache_size = -1048576; ",
                "randomblob(32), randomblob(32)",
                "lower(hex(randomblob(32)))",
            ),
            Self::Postgres { .. } => (
                "",
                "sha256(('a' || c.id || random())::text::bytea), \
                 sha256(('r' || c.id || random())::text::bytea)",
                "encode(sha256(('d' || c.id)::bytea), 'hex')",
            ),
        };
        let sql = format!(
            "{prefix}INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, \
             created_at, expires_at, absolute_expires_at, last_seen_at, login_at, \
             previous_login_at, recent_auth_at, ip, user_agent, device_fingerprint, device_name, \
             country, asn, latitude, longitude) \
             SELECT 'seeded-' || c.id, c.id, 'ACTIVE', {hashes}, {created}, {ended}, {ended}, \
             {created}, {created}, {created} - 86400000, {created}, '203.0.113.77', \
             'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1', {fingerprint}, \
             'iPhone', 'GB', 64496, 51.5072, -0.1276 FROM customers c"
        );
        self.execute(sql).await.context("seeding sessions")?;
        if let Self::Postgres { .. } = self {
            // What autovacuum does after a bulk load (this machine's PostgreSQL runs without
            // it): the planner sees tables of millions, not the empty ones it last analysed.
            self.execute("ANALYZE customers, sessions, audit_events".to_owned())
                .await?;
        }
        Ok(())
    }

    /// The database's size: tables and indexes (SQLite: its pages, the WAL checkpointed first).
    pub async fn size_bytes(&self) -> anyhow::Result<i64> {
        use sqlx::Connection as _;
        Ok(match self {
            Self::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut conn)
                    .await?;
                sqlx::query_scalar(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .fetch_one(&mut conn)
                .await?
            }
            Self::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
                sqlx::query_scalar(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                )
                .fetch_one(&mut conn)
                .await?
            }
        })
    }

    /// How many sessions the database holds whose absolute lifetime has ended.
    pub async fn ended_sessions(&self) -> anyhow::Result<i64> {
        use sqlx::Connection as _;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let count = "SELECT COUNT(*) FROM sessions WHERE absolute_expires_at < $1";
        Ok(match self {
            Self::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await?;
                sqlx::query_scalar(count)
                    .bind(now_ms)
                    .fetch_one(&mut conn)
                    .await?
            }
            Self::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
                sqlx::query_scalar(count)
                    .bind(now_ms)
                    .fetch_one(&mut conn)
                    .await?
            }
        })
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

/// `customers import`, watched.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Import {
    pub secs: f64,
    /// The importer's peak resident memory (VmHWM as last read before it exited).
    pub peak_rss_mib: f64,
    /// Its resident memory a tenth of the way through (none when it ran too briefly to
    /// sample).
    pub rss_after_a_tenth_mib: Option<f64>,
}

impl Import {
    /// Memory stays flat: the peak within a quarter above what a tenth of the import needed.
    pub fn flat(&self) -> bool {
        self.rss_after_a_tenth_mib
            .is_some_and(|tenth| self.peak_rss_mib <= tenth * 1.25)
    }
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
            .stderr(self.log());
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

    /// Where the service's warnings and errors go: a file beside its database, named when it
    /// fails (standard error if the file cannot be opened).
    fn log(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_or_else(|_| Stdio::inherit(), Stdio::from)
    }

    fn log_path(&self) -> PathBuf {
        self.work_dir.join("finhub-auth.log")
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

    /// `customers import FILE`, timed, with the importer's memory watched as it runs.
    pub async fn import_watched(&self, file: &Path) -> anyhow::Result<Import> {
        let started = Instant::now();
        let mut child = self
            .command(0)
            .args(["customers", "import"])
            .arg(file)
            .kill_on_drop(true)
            .spawn()
            .context("running customers import")?;
        let pid = child.id().context("customers import exited at once")?;
        // (seconds since the start, VmRSS), and the last VmHWM read before it exited.
        let (mut rss, mut peak) = (Vec::new(), 0.0f64);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let (Ok(now), Ok(hwm)) = (memory_mib(pid, "VmRSS:"), memory_mib(pid, "VmHWM:")) {
                rss.push((started.elapsed().as_secs_f64(), now));
                peak = peak.max(hwm);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if !status.success() {
            bail!("customers import failed: {status}");
        }
        let secs = started.elapsed().as_secs_f64();
        let tenth = rss
            .iter()
            .find(|(at, _)| *at >= secs / 10.0)
            .map(|(_, mib)| *mib);
        Ok(Import {
            secs,
            peak_rss_mib: peak,
            rss_after_a_tenth_mib: tenth,
        })
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
        let mut server = Server {
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
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "finhub-auth serve exited ({status}); see {}",
                    self.log_path().display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "finhub-auth did not become ready within a minute; see {}",
                    self.log_path().display()
                );
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
