//! Spawns the real service on a random port against a fresh database (a SQLite file or a
//! PostgreSQL schema of its own), with a clock the test can move, and offers typed helpers for
//! the calls the tests make.

use std::path::PathBuf;
use std::sync::Arc;

use finhub_auth::clock::ManualClock;
use finhub_auth::config::Settings;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::domain::credentials::password::Password;
use finhub_auth::domain::customers::{
    CustomerId, Email, KycStatus, PersonName, Phone, Profile, Username,
};
use finhub_auth::startup::{Application, Jobs, Services};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "../common/pg.rs"]
mod pg;
pub use pg::PgSchema;

pub const PASSWORD: &str = "Corr3ct-horse-battery";
/// A browser's user agent, which notices describe as "Firefox on Windows".
pub const FIREFOX_ON_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `async fn $name(backend: Backend)` as two tests, `$name::sqlite` and `$name::postgres`,
/// so that every API test holds for both stores. Anything after the name goes to `#[tokio::test]`.
/// The body stays an ordinary function, which rustfmt formats.
macro_rules! on_both_stores {
    ($name:ident $(, $($runtime:tt)+)?) => {
        mod $name {
            #[tokio::test$(($($runtime)+))?]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test$(($($runtime)+))?]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

pub struct TestApp {
    pub base: String,
    /// The operations address (`FINHUB_OPS_LISTEN`), when the test set one.
    pub ops_base: Option<String>,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub services: Services,
    /// The service's background jobs, started as `serve` starts them.
    pub jobs: Jobs,
    pub settings: Settings,
    /// The test's own PostgreSQL schema, when it runs against PostgreSQL.
    pub _schema: Option<PgSchema>,
    /// Holds the database and outbox; removed when the test ends.
    pub _workdir: TempDir,
}

/// Settings for a test: a fresh database and outbox in `dir`, any port.
pub fn test_settings(dir: &TempDir) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.url = format!("sqlite://{}/auth.db", dir.path().display());
    settings.notifier.outbox_path = dir.path().join("outbox.jsonl");
    // Tests deliver codes when they choose (`TestApp::latest_code`, `Courier::deliver_due`).
    settings.notifier.delivery_worker = false;
    settings.hashing.queue = 1024;
    // Tests make many calls from one address; the limits have tests of their own.
    settings.limits.api_per_ip = None;
    settings.limits.login_per_ip = None;
    settings.limits.login_per_account = None;
    // Passkeys as the software authenticator (`authenticator.rs`) signs for them.
    settings.passkeys.webauthn_rp_id = Some(crate::authenticator::RP_ID.to_owned());
    settings.passkeys.webauthn_origin = Some(crate::authenticator::ORIGIN.to_owned());
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        finhub_auth::telemetry::init_logging(finhub_auth::config::LogFormat::Pretty);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&dir);
    let schema = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgSchema::create().await),
    };
    if let Some(schema) = &schema {
        settings.store.url = schema.url();
    }
    configure(&mut settings);
    start(settings, ManualClock::new(), schema, dir).await
}

/// Another instance of the service over `app`'s database, with the same settings and clock: what
/// one instance stores, the other sees, as in a deployment of several.
pub async fn second_instance(app: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = app.settings.clone();
    settings.notifier.outbox_path = dir.path().join("outbox.jsonl");
    start(settings, app.clock.clone(), None, dir).await
}

/// The same, with its settings changed by `configure` (another audit key, say).
pub async fn second_instance_with(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = app.settings.clone();
    settings.notifier.outbox_path = dir.path().join("outbox.jsonl");
    configure(&mut settings);
    start(settings, app.clock.clone(), None, dir).await
}

async fn start(
    settings: Settings,
    clock: ManualClock,
    schema: Option<PgSchema>,
    dir: TempDir,
) -> TestApp {
    let services = Services::build(&settings, Arc::new(clock.clone()))
        .await
        .expect("services");
    let app = Application::build(&settings, &services)
        .await
        .expect("application");
    let base = format!("http://{}", app.address());
    let ops_base = app.ops_address().map(|a| format!("http://{a}"));
    let jobs = Jobs::start(&settings, &services).expect("background jobs");
    tokio::spawn(app.run_until(std::future::pending()));
    // reqwest has rustls without a provider chosen (the SMS client brings its own): ring, as
    // everywhere else, for the test's client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestApp {
        base,
        ops_base,
        client: reqwest::Client::new(),
        clock,
        services,
        jobs,
        settings,
        _schema: schema,
        _workdir: dir,
    }
}

/// A customer the test created.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub username: String,
}

/// The token fields of a 200 from login, verify or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub bff: String,
    pub refresh: String,
    pub session_id: String,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create_customer(
        &self,
        name: &str,
        two_factor: Option<TwoFactorMethod>,
    ) -> Customer {
        let username = format!("{name}@example.com");
        let profile = Profile {
            id: CustomerId::generate(),
            username: Username::parse(&username).expect("username"),
            email: Email::parse(&username).expect("email"),
            phone: Some(Phone::parse("+447700900123").expect("phone")),
            first_name: PersonName::parse(name).expect("name"),
            last_name: PersonName::parse("Tester").expect("name"),
            kyc_status: KycStatus::Verified,
            two_factor,
        };
        let id = profile.id.to_string();
        self.services
            .accounts
            .create(
                profile,
                &Password::parse(PASSWORD.into()).expect("password"),
            )
            .await
            .expect("create customer");
        Customer { id, username }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value, bearer: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/token",
            &json!({"username": username, "password": password}),
            None,
        )
        .await
    }

    /// A login from Firefox on Windows naming `device` (the login body's `device`), or none.
    pub async fn login_from_browser(&self, customer: &Customer, device: Option<Value>) -> Response {
        let mut body = json!({"username": customer.username, "password": PASSWORD});
        if let Some(device) = device {
            body["device"] = device;
        }
        self.client
            .post(self.url("/api/v1/auth/token"))
            .header("user-agent", FIREFOX_ON_WINDOWS)
            .json(&body)
            .send()
            .await
            .expect("login request")
    }

    /// The security notices in the outbox file, as they stand.
    pub fn notice_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.outbox_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("outbox line"))
            .filter(|l| l["kind"] == "security_notice")
            .collect()
    }

    pub async fn login_ok(&self, customer: &Customer) -> Tokens {
        let response = self.login(&customer.username, PASSWORD).await;
        tokens(response).await
    }

    pub async fn me(&self, bearer: &str) -> Response {
        self.client
            .get(self.url("/api/v1/customers/me"))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/v1/auth/token/refresh",
            &json!({"refreshToken": refresh_token}),
            None,
        )
        .await
    }

    pub async fn logout(&self, bearer: &str, body: &Value) -> Response {
        self.post_json("/api/v1/auth/logout", body, Some(bearer))
            .await
    }

    pub async fn initiate(&self, bearer: &str) -> Response {
        self.post_json("/api/v1/auth/2fa/initiate", &json!({}), Some(bearer))
            .await
    }

    /// Initiates 2FA and returns the challenge id.
    pub async fn initiate_ok(&self, bearer: &str) -> String {
        let response = self.initiate(bearer).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("json");
        body["challengeId"]
            .as_str()
            .expect("challengeId")
            .to_owned()
    }

    pub async fn verify(&self, bearer: &str, challenge_id: &str, code: &str) -> Response {
        self.post_json(
            "/api/v1/auth/2fa/verify",
            &json!({"challengeId": challenge_id, "code": code}),
            Some(bearer),
        )
        .await
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.settings.notifier.outbox_path.clone()
    }

    /// The newest code the outbox file holds for a customer, after delivering what is due (the
    /// test's instance runs no worker of its own: tests deliver when they choose).
    pub async fn latest_code(&self, customer: &Customer) -> String {
        for _ in 0..250 {
            self.services
                .courier
                .deliver_due()
                .await
                .expect("delivery pass");
            let text = std::fs::read_to_string(self.outbox_path()).unwrap_or_default();
            let code = text
                .lines()
                .rev()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["customerId"] == customer.id.as_str() && l["code"].is_string())
                .and_then(|l| l["code"].as_str().map(str::to_owned));
            if let Some(code) = code {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no code in the outbox for {}", customer.username)
    }

    /// How many of the customer's messages wait in the outbox (read from the database itself).
    pub async fn pending_codes(&self, customer: &Customer) -> i64 {
        self.customer_scalar(
            "SELECT COUNT(*) FROM messages WHERE customer_id = $1 AND purpose = '2fa_code' \
             AND status = 'PENDING'",
            customer,
        )
        .await
    }

    /// The sealed code of the customer's newest outbox message, as stored (`None` once erased).
    pub async fn queued_code_bytes(&self, customer: &Customer) -> Option<Vec<u8>> {
        self.customer_scalar(
            "SELECT sealed_code FROM messages WHERE customer_id = $1 AND purpose = '2fa_code' \
             ORDER BY created_at DESC LIMIT 1",
            customer,
        )
        .await
    }

    /// The one value `sql` (whose `$1` is the customer's id) reads, past the service.
    pub async fn customer_scalar<T>(&self, sql: &str, customer: &Customer) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + Send
            + Unpin,
    {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let url = &self.settings.store.url;
        let value = if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_scalar(sql)
                .bind(&customer.id)
                .fetch_one(&mut conn)
                .await
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query_scalar(sql)
                .bind(&customer.id)
                .fetch_one(&mut conn)
                .await
        };
        value.expect("a value from the database")
    }

    /// A code that is certainly wrong.
    pub async fn wrong_code(&self, customer: &Customer) -> String {
        if self.latest_code(customer).await == "000000" {
            "111111".into()
        } else {
            "000000".into()
        }
    }

    /// Logs a 2FA customer in up to an ACTIVE session.
    pub async fn login_with_2fa(&self, customer: &Customer) -> Tokens {
        let pending = self.login_ok(customer).await;
        let challenge = self.initiate_ok(&pending.bff).await;
        let code = self.latest_code(customer).await;
        tokens(self.verify(&pending.bff, &challenge, &code).await).await
    }

    /// Every audit event, oldest first.
    pub async fn audit(&self) -> Vec<Value> {
        let events = self
            .services
            .store
            .audit_events(finhub_auth::domain::ports::AuditQuery {
                after_seq: 0,
                since: None,
                limit: 100_000,
            })
            .await
            .expect("audit events");
        events
            .iter()
            .map(|e| serde_json::to_value(e).expect("json"))
            .collect()
    }

    pub async fn audit_of_kind(&self, kind: &str) -> Vec<Value> {
        self.audit()
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    pub fn db_url(&self) -> &str {
        &self.settings.store.url
    }

    /// Holds, from outside the service until dropped, what any write about `username` waits
    /// for: SQLite's write lock, or the username's advisory lock in PostgreSQL.
    pub async fn hold_writes_of(&self, username: &str) -> HeldWrites {
        use sqlx::{Connection as _, Executor as _};
        let url = self.db_url();
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
                .bind(username)
                .execute(&mut conn)
                .await
                .expect("the username's lock");
            HeldWrites::Postgres { _held: conn }
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            conn.execute("BEGIN IMMEDIATE")
                .await
                .expect("the write lock");
            HeldWrites::Sqlite { _held: conn }
        }
    }
}

/// A lock [`TestApp::hold_writes_of`] holds until dropped.
pub enum HeldWrites {
    Postgres { _held: sqlx::PgConnection },
    Sqlite { _held: sqlx::SqliteConnection },
}

pub async fn tokens(response: Response) -> Tokens {
    assert_eq!(response.status(), StatusCode::OK, "expected tokens");
    let body: Value = response.json().await.expect("json");
    Tokens {
        bff: body["bffToken"].as_str().expect("bffToken").to_owned(),
        refresh: body["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_owned(),
        session_id: body["sessionId"].as_str().expect("sessionId").to_owned(),
        body,
    }
}

/// Asserts a problem+json response with `status` and `code`, returning its body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"].as_str(), request_id.as_deref());
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
    body
}
