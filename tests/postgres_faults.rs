//! PostgreSQL going away and coming back, on a throw-away server of the test's own (stopping the
//! shared one would disturb every other test).

#[path = "common/pg_cluster.rs"]
mod pg_cluster;
#[path = "common/process.rs"]
mod process;

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use pg_cluster::TempPostgres;
use process::Setup;

const PASSWORD: &str = "Corr3ct-horse-battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_down_calls_answer_503_and_the_service_recovers_when_it_returns() {
    let pg = TempPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = alice_signed_in(&pg, dir.path()).await;
    let client = Client::new();
    let login = || {
        client
            .post(server.url("/api/v1/auth/token"))
            .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
            .send()
    };

    pg.down();

    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    for response in [
        login().await.unwrap(),
        client
            .get(server.url("/api/v1/customers/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers()["retry-after"].to_str().expect("ascii");
        let seconds: u64 = retry_after.parse().expect("Retry-After in whole seconds");
        assert!(seconds >= 1, "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    }
    // Counted for the dashboard and the FinhubStoreUnavailable alert.
    let counted = server
        .metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("finhub_store_unavailable_total "))
        .and_then(|n| n.parse::<f64>().ok());
    assert_eq!(
        counted,
        Some(3.0),
        "the readiness probe and both calls counted"
    );

    pg.up();

    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "the service did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let me = client
        .get(server.url("/api/v1/customers/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the session survived the outage"
    );
    assert_eq!(login().await.unwrap().status(), StatusCode::OK);
}

/// Runs one statement on the throw-away server as its superuser.
async fn superuser(pg: &TempPostgres, sql: &'static str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_turns_read_only_answers_503_until_it_takes_writes_again() {
    let pg = TempPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(pg.url(), dir.path());
    setup.create_customer("alice", "off", PASSWORD);
    let server = setup.serve("a").await;
    let client = Client::new();
    let login = || async {
        client
            .post(server.url("/api/v1/auth/token"))
            .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(login().await.status(), StatusCode::OK);

    // What a client sees after a failover to a server that is still read-only (SQLSTATE 25006).
    superuser(&pg, "ALTER SYSTEM SET default_transaction_read_only = on").await;
    superuser(&pg, "SELECT pg_reload_conf()").await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let response = login().await;
        if response.status() != StatusCode::OK {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "the server never turned read-only"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");

    superuser(&pg, "ALTER SYSTEM RESET default_transaction_read_only").await;
    superuser(&pg, "SELECT pg_reload_conf()").await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while login().await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "logins did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The per-request session reads keep connections of their own, which a restart of the server
/// leaves dead. The first signed-in call after the restart still succeeds: a read on a
/// connection that was lost is retried once on a new one instead of answering 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_signed_in_read_after_postgresql_restarts_succeeds() {
    let pg = TempPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = alice_signed_in(&pg, dir.path()).await;
    let client = Client::new();
    let me = || {
        client
            .get(server.url("/api/v1/customers/me"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);

    pg.down();
    pg.up();

    let me = me().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "{:?}", me.text().await);
}

/// A server on `pg` with one customer, alice, and her bffToken.
async fn alice_signed_in(pg: &TempPostgres, dir: &std::path::Path) -> (process::Instance, String) {
    let setup = Setup::new(pg.url(), dir).with("FINHUB_DB_ACQUIRE_TIMEOUT", "1s");
    setup.create_customer("alice", "off", PASSWORD);
    let server = setup.serve("a").await;
    let token = Client::new()
        .post(server.url("/api/v1/auth/token"))
        .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["bffToken"]
        .as_str()
        .unwrap()
        .to_owned();
    (server, token)
}
