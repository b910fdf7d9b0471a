//! The soak's traffic: customers' visits, each a few requests spread over both instances, in
//! the proportions of a working day: most sign in, read and sign out; some leave their session to
//! expire; some mistype their password first; some sign in with a code by SMS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::sampling::Recorder;
use crate::outbox::Outbox;
use crate::target::PASSWORD;

/// Customers who sign in with a password alone, and customers with SMS two-factor.
pub const CUSTOMERS: u64 = 1_000;
pub const TWO_FACTOR_CUSTOMERS: u64 = 200;

/// Sends visits to two instances and records what they answer.
pub struct Visitor {
    client: reqwest::Client,
    bases: [String; 2],
    outbox: Arc<Outbox>,
    pub recorder: Arc<Recorder>,
}

/// What an answer must be for the visit to go on.
#[derive(Clone, Copy)]
enum Expect {
    Success,
    Status(StatusCode),
}

struct Tokens {
    bff: String,
    refresh: String,
}

/// No answer within this counts as a failure rather than holding the soak's end.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The service closes an HTTP/1.1 connection idle for `FINHUB_HEADER_READ_TIMEOUT` (10 s): a
/// client that keeps one longer may send on it just as it closes, and get a reset. (The soak
/// of 2026-12-06 lost one visit of 177,017 so, with reqwest's default of 90 s.)
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

impl Visitor {
    pub fn new(
        bases: [String; 2],
        outbox: Arc<Outbox>,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build()?,
            bases,
            outbox,
            recorder,
        })
    }

    /// Visit number `i`, due at `due` (its first request's latency counts from then, so a
    /// schedule the service cannot keep shows as latency rather than hiding).
    pub async fn visit(&self, i: u64, due: Instant) -> anyhow::Result<()> {
        // Ten kinds in turn over the customers; which instance answers first alternates within
        // each kind too.
        let (a, b) = if (i / 10 + i).is_multiple_of(2) {
            (0, 1)
        } else {
            (1, 0)
        };
        let customer = format!("bench-{}@example.com", (i / 10) % CUSTOMERS);
        match i % 10 {
            0..=4 => self.sign_in_and_out(a, b, &customer, due).await,
            5 | 6 => self.sign_in_and_leave(a, b, &customer, due).await,
            7 => self.mistype_first(a, b, &customer, due).await,
            _ => {
                let customer = format!("flow-{}@example.com", (i / 10) % TWO_FACTOR_CUSTOMERS);
                self.two_factor(a, b, &customer, due).await
            }
        }
    }

    /// Signs in, reads on the other instance, renews there, reads and signs out; the other
    /// instance refuses the ended session at once.
    async fn sign_in_and_out(
        &self,
        a: usize,
        b: usize,
        customer: &str,
        due: Instant,
    ) -> anyhow::Result<()> {
        let tokens = self.login(a, customer, due).await?;
        self.me(b, &tokens.bff).await?;
        let renewed = self.refresh(b, &tokens.refresh).await?;
        self.me(a, &renewed.bff).await?;
        self.logout(a, &renewed.bff).await?;
        self.me_refused(b, &renewed.bff).await
    }

    /// Signs in, reads, and leaves the session to expire: housekeeping's work.
    async fn sign_in_and_leave(
        &self,
        a: usize,
        b: usize,
        customer: &str,
        due: Instant,
    ) -> anyhow::Result<()> {
        let tokens = self.login(a, customer, due).await?;
        self.me(b, &tokens.bff).await?;
        self.me(a, &tokens.bff).await
    }

    /// A mistyped password, then the right one.
    async fn mistype_first(
        &self,
        a: usize,
        b: usize,
        customer: &str,
        due: Instant,
    ) -> anyhow::Result<()> {
        let wrong = json!({"username": customer, "password": "Not-the-password-2026"});
        self.call(
            due,
            "POST /auth/token (wrong password)",
            self.client
                .post(self.url(b, "/api/v1/auth/token"))
                .json(&wrong),
            Expect::Status(StatusCode::UNAUTHORIZED),
        )
        .await?;
        let tokens = self.login(a, customer, Instant::now()).await?;
        self.me(b, &tokens.bff).await?;
        self.logout(b, &tokens.bff).await
    }

    /// Two-factor by SMS, the code read from the outbox.
    async fn two_factor(
        &self,
        a: usize,
        b: usize,
        customer: &str,
        due: Instant,
    ) -> anyhow::Result<()> {
        let pending = self.login(a, customer, due).await?.bff;
        self.me(b, &pending).await?;
        let challenge = self
            .call(
                Instant::now(),
                "POST /auth/2fa/initiate",
                self.client
                    .post(self.url(b, "/api/v1/auth/2fa/initiate"))
                    .bearer_auth(&pending)
                    .json(&json!({})),
                Expect::Success,
            )
            .await?;
        let challenge = challenge["challengeId"]
            .as_str()
            .context("challengeId")?
            .to_owned();
        let code = self.outbox.code(&challenge).await?;
        let active = self
            .call(
                Instant::now(),
                "POST /auth/2fa/verify",
                self.client
                    .post(self.url(a, "/api/v1/auth/2fa/verify"))
                    .bearer_auth(&pending)
                    .json(&json!({"challengeId": challenge, "code": code})),
                Expect::Success,
            )
            .await?;
        let active = active["bffToken"].as_str().context("bffToken")?;
        self.me(b, active).await?;
        self.logout(a, active).await
    }

    fn url(&self, instance: usize, path: &str) -> String {
        format!("{}{path}", self.bases[instance])
    }

    async fn login(&self, at: usize, username: &str, since: Instant) -> anyhow::Result<Tokens> {
        let body = self
            .call(
                since,
                "POST /auth/token",
                self.client
                    .post(self.url(at, "/api/v1/auth/token"))
                    .json(&json!({"username": username, "password": PASSWORD})),
                Expect::Success,
            )
            .await?;
        tokens(&body)
    }

    async fn refresh(&self, at: usize, refresh: &str) -> anyhow::Result<Tokens> {
        let body = self
            .call(
                Instant::now(),
                "POST /auth/token/refresh",
                self.client
                    .post(self.url(at, "/api/v1/auth/token/refresh"))
                    .json(&json!({"refreshToken": refresh})),
                Expect::Success,
            )
            .await?;
        tokens(&body)
    }

    async fn me(&self, at: usize, bff: &str) -> anyhow::Result<()> {
        self.me_expecting(at, bff, Expect::Success).await
    }

    async fn me_refused(&self, at: usize, bff: &str) -> anyhow::Result<()> {
        self.me_expecting(at, bff, Expect::Status(StatusCode::UNAUTHORIZED))
            .await
    }

    async fn me_expecting(&self, at: usize, bff: &str, expect: Expect) -> anyhow::Result<()> {
        self.call(
            Instant::now(),
            ME,
            self.client
                .get(self.url(at, "/api/v1/customers/me"))
                .bearer_auth(bff),
            expect,
        )
        .await
        .map(drop)
    }

    async fn logout(&self, at: usize, bff: &str) -> anyhow::Result<()> {
        self.call(
            Instant::now(),
            "POST /auth/logout",
            self.client
                .post(self.url(at, "/api/v1/auth/logout"))
                .bearer_auth(bff)
                .json(&json!({})),
            Expect::Success,
        )
        .await
        .map(drop)
    }

    /// Sends one request, records its latency from `since`, and checks its status.
    async fn call(
        &self,
        since: Instant,
        what: &'static str,
        request: reqwest::RequestBuilder,
        expect: Expect,
    ) -> anyhow::Result<Value> {
        let response = request.send().await.context(what)?;
        let status = response.status();
        // A 204 has no body; a problem's `code` names what went wrong.
        let body: Value = response.json().await.unwrap_or(Value::Null);
        self.recorder.request(since.elapsed(), what == ME);
        let expected = match expect {
            Expect::Success => status.is_success(),
            Expect::Status(s) => status == s,
        };
        anyhow::ensure!(
            expected,
            "{what}: {status} {}",
            body["code"].as_str().unwrap_or_default()
        );
        Ok(body)
    }
}

const ME: &str = "GET /customers/me";

fn tokens(body: &Value) -> anyhow::Result<Tokens> {
    let token = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{name} in the token response"))
    };
    Ok(Tokens {
        bff: token("bffToken")?,
        refresh: token("refreshToken")?,
    })
}
