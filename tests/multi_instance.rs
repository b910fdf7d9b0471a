//! Two `serve` processes on one PostgreSQL database behave as one service: tokens, logouts,
//! lockouts, 2FA limits, refresh reuse and the audit chain hold across them; and the
//! username's lock they share orders their reads of its counters.

#[path = "common/pg.rs"]
mod pg;
#[path = "common/process.rs"]
mod process;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use pg::PgSchema;
use process::{Instance, Setup};

const PASSWORD: &str = "Corr3ct-horse-battery";

struct Cluster {
    setup: Setup,
    a: Instance,
    b: Instance,
    _schema: PgSchema,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    // One audit key for both, as in production: either instance can open the codes the
    // other queued.
    let setup = Setup::new(schema.url(), dir.path()).with(
        "FINHUB_AUDIT_KEY",
        "the-cluster-audit-key-kept-outside-the-db",
    );
    let out = setup.run(&["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = tokio::join!(setup.serve("a"), setup.serve("b"));
    Cluster {
        setup,
        a,
        b,
        _schema: schema,
        _dir: dir,
    }
}

impl Cluster {
    async fn post(
        &self,
        on: &Instance,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        on.post(path, &body, token).await
    }

    async fn me(&self, on: &Instance, token: &str) -> StatusCode {
        on.get("/api/v1/customers/me", Some(token)).await.0
    }

    async fn login(&self, on: &Instance, username: &str, password: &str) -> (StatusCode, Value) {
        on.login(username, password).await
    }

    fn instance(&self, i: usize) -> &Instance {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    async fn audit(&self) -> Vec<Value> {
        audit_of(&self.setup)
    }
}

/// Every audit event of the database, oldest first.
fn audit_of(setup: &Setup) -> Vec<Value> {
    let out = setup.run(&["audit", "tail", "-n", "100000"], None);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_instance_works_on_the_other_and_a_logout_on_either_ends_it_everywhere() {
    let c = cluster().await;
    c.setup.create_customer("alice", "off", PASSWORD);

    let (status, login) = c.login(&c.a, "alice@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = login["bffToken"].as_str().unwrap();
    assert_eq!(c.me(&c.b, token).await, StatusCode::OK);

    let (status, _) = c
        .post(&c.b, "/api/v1/auth/logout", json!({}), Some(token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(c.me(&c.a, token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_customer_ends_or_a_device_they_forget_on_one_instance_is_refused_on_the_other()
 {
    let c = cluster().await;
    c.setup.create_customer("alice", "off", PASSWORD);
    let c = &c;
    let login = |fingerprint: &'static str| {
        let body = json!({"username": "alice@example.com", "password": PASSWORD,
                          "device": {"fingerprint": fingerprint}});
        async move { c.post(&c.a, "/api/v1/auth/token", body, None).await }
    };
    let (_, phone_login) = login("phone").await;
    let (_, laptop) = login("laptop").await;
    let (_, tablet) = login("tablet").await;
    let token = |t: &Value| t["bffToken"].as_str().unwrap().to_owned();
    let (phone, laptop, tablet) = (token(&phone_login), token(&laptop), token(&tablet));
    let phone_session = phone_login["sessionId"].as_str().unwrap();
    assert_eq!(c.me(&c.b, &phone).await, StatusCode::OK);

    // The laptop ends the phone's session through instance A; B refuses it at once.
    let ended =
        c.a.client
            .delete(c.a.url(&format!("/api/v1/sessions/{phone_session}")))
            .bearer_auth(&laptop)
            .send()
            .await
            .unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.me(&c.b, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(c.me(&c.b, &laptop).await, StatusCode::OK);

    // Forgetting the tablet on B ends its session on A.
    let (_, devices) = c.b.get("/api/v1/customers/me/devices", Some(&laptop)).await;
    let tablet_device = devices["devices"][0]["id"].as_str().unwrap().to_owned();
    let forgotten =
        c.b.client
            .delete(c.b.url(&format!("/api/v1/customers/me/devices/{tablet_device}")))
            .bearer_auth(&laptop)
            .send()
            .await
            .unwrap();
    assert_eq!(forgotten.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.me(&c.a, &tablet).await, StatusCode::UNAUTHORIZED);
    assert_eq!(c.me(&c.a, &laptop).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_over_both_instances_lock_exactly_as_one_instance_would() {
    let c = cluster().await;
    c.setup.create_customer("alice", "off", PASSWORD);

    let attempts = (0..40).map(|i| c.login(c.instance(i), "alice@example.com", "wrong"));
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .iter()
        .map(|(s, _)| s.as_u16())
        .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 423).count(),
        35,
        "{statuses:?}"
    );
    assert_eq!(
        c.login(&c.b, "alice@example.com", PASSWORD).await.0,
        StatusCode::LOCKED
    );
    // Stopped gracefully, each instance audits the refusals it counted; with the attempts
    // audited one by one, every one of the 41 is in the trail exactly once.
    let Cluster {
        setup,
        a,
        b,
        _schema,
        _dir,
    } = c;
    a.terminate();
    b.terminate();
    let audit = audit_of(&setup);
    let failures: u64 = audit
        .iter()
        .filter(|e| e["kind"] == "login.failed")
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(failures, 41);
    assert_eq!(
        audit
            .iter()
            .filter(|e| e["kind"] == "account.locked")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_2fa_guesses_over_both_instances_get_at_most_five_codes_checked() {
    let c = cluster().await;
    let bob = c.setup.create_customer("bob", "sms", PASSWORD);
    let (_, login) = c.login(&c.a, "bob@example.com", PASSWORD).await;
    let pending = login["bffToken"].as_str().unwrap().to_owned();
    let (status, challenge) = c
        .post(&c.b, "/api/v1/auth/2fa/initiate", json!({}), Some(&pending))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let _ = bob;
    let code = c
        .setup
        .code_for(challenge["challengeId"].as_str().unwrap())
        .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let body = json!({"challengeId": challenge["challengeId"], "code": wrong});

    let guesses = (0..40).map(|i| {
        c.post(
            c.instance(i),
            "/api/v1/auth/2fa/verify",
            body.clone(),
            Some(&pending),
        )
    });
    let statuses: Vec<u16> = join_all(guesses)
        .await
        .iter()
        .map(|(s, _)| s.as_u16())
        .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        35,
        "{statuses:?}"
    );
    let checked = c
        .audit()
        .await
        .iter()
        .filter(|e| e["kind"] == "2fa.failed" && e["reason"] == "invalid_code")
        .count();
    assert_eq!(checked, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_reused_on_the_other_instance_revokes_the_session() {
    let c = cluster().await;
    c.setup.create_customer("alice", "off", PASSWORD);
    let (_, login) = c.login(&c.a, "alice@example.com", PASSWORD).await;
    let refresh = login["refreshToken"].clone();

    let (status, renewed) = c
        .post(
            &c.a,
            "/api/v1/auth/token/refresh",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, reused) = c
        .post(
            &c.b,
            "/api/v1/auth/token/refresh",
            json!({"refreshToken": refresh}),
            None,
        )
        .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reused}");
    assert_eq!(reused["code"], "UNAUTHENTICATED");
    assert_eq!(
        c.me(&c.a, renewed["bffToken"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_stays_valid_under_concurrent_writers_on_both_instances() {
    let cluster = cluster().await;
    for name in ["alice", "bob", "carol", "dave"] {
        cluster.setup.create_customer(name, "off", PASSWORD);
    }
    let c = &cluster;
    let load = (0..60).map(|i| {
        let name = ["alice", "bob", "carol", "dave"][i % 4];
        let password = if i % 3 == 0 { "wrong" } else { PASSWORD };
        async move {
            let (status, body) = c
                .login(c.instance(i), &format!("{name}@example.com"), password)
                .await;
            if status == StatusCode::OK {
                let token = body["bffToken"].as_str().unwrap().to_owned();
                c.me(c.instance(i + 1), &token).await;
                c.post(
                    c.instance(i),
                    "/api/v1/auth/logout",
                    json!({}),
                    Some(&token),
                )
                .await;
            }
        }
    });
    join_all(load).await;

    let out = c.setup.run(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stopped gracefully, each instance audits the refusals it counted in aggregate.
    let Cluster {
        setup,
        a,
        b,
        _schema,
        _dir,
    } = cluster;
    a.terminate();
    b.terminate();
    let audit = audit_of(&setup);
    let count = |kind: &str| audit.iter().filter(|e| e["kind"] == kind).count();
    let attempts: u64 = audit
        .iter()
        .filter(|e| e["kind"] == "login.failed")
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    // Every attempt is audited, and every session that started was logged out.
    assert_eq!(count("customer.created"), 4);
    assert_eq!(count("login.succeeded") as u64 + attempts, 60);
    assert_eq!(count("session.logout"), count("login.succeeded"));
    let seqs: Vec<i64> = audit.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=audit.len() as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_deliver_and_never_the_same_message_twice() {
    let c = cluster().await;
    let names: Vec<String> = (0..12).map(|i| format!("courier{i}")).collect();
    for name in &names {
        c.setup.create_customer(name, "sms", PASSWORD);
    }
    // Every customer asks for a code on one instance or the other, all at once; both
    // instances' workers deliver from the one outbox table.
    let cluster = &c;
    let initiated = names.iter().enumerate().map(|(i, name)| async move {
        let c = cluster;
        let on = c.instance(i);
        let (_, login) = c.login(on, &format!("{name}@example.com"), PASSWORD).await;
        let pending = login["bffToken"].as_str().unwrap().to_owned();
        let (status, challenge) = c
            .post(on, "/api/v1/auth/2fa/initiate", json!({}), Some(&pending))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{challenge}");
        challenge["challengeId"].as_str().unwrap().to_owned()
    });
    let challenges = futures::future::join_all(initiated).await;
    for challenge in &challenges {
        c.setup.code_for(challenge).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let messages = c.setup.messages();
    for challenge in &challenges {
        let copies = messages
            .iter()
            .filter(|m| m["challengeId"] == challenge.as_str())
            .count();
        assert_eq!(copies, 1, "challenge {challenge} delivered {copies} times");
    }
    let delivered = c
        .audit()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "2fa.delivered")
        .count();
    assert_eq!(delivered, challenges.len());
}

/// What stops a second instance counting a username's failures from zero past a lock: the
/// counters a transaction reads under the username's lock are those the transaction that held
/// it before committed. A read whose snapshot was taken before its lock was granted (the lock
/// and the read in one plain statement) would see no row here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_read_under_a_usernames_lock_are_what_its_previous_holder_committed() {
    use sqlx::Connection as _;
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let out = Setup::new(schema.url(), dir.path()).run(&["migrate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = schema.url();
    let connect = || sqlx::PgConnection::connect(&url);
    let (mut first, mut second, mut watcher) = (
        connect().await.unwrap(),
        connect().await.unwrap(),
        connect().await.unwrap(),
    );
    // A name of its own: advisory locks span every schema, and other tests sign alice in.
    const READ: &str = "SELECT failures FROM lock_username('counters-under-lock@example.com')";

    let mut holder = first.begin().await.unwrap();
    let before: Option<i64> = sqlx::query_scalar(READ)
        .fetch_optional(&mut *holder)
        .await
        .unwrap();
    assert_eq!(before, None);
    sqlx::query(
        "INSERT INTO lockouts (username, failures, updated_at) \
         VALUES ('counters-under-lock@example.com', 3, 0)",
    )
    .execute(&mut *holder)
    .await
    .unwrap();
    let waiter: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut second)
        .await
        .unwrap();
    let next = tokio::spawn(async move {
        let mut tx = second.begin().await.unwrap();
        let failures: Option<i64> = sqlx::query_scalar(READ)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
        failures
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks \
             WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)",
        )
        .bind(waiter)
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second transaction never waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    holder.commit().await.unwrap();

    assert_eq!(next.await.unwrap(), Some(3));
}
