use futures::future::join_all;
use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, assert_problem, spawn_app_with, tokens};

on_both_stores!(logins_per_username_are_rate_limited_with_retry_after);
async fn logins_per_username_are_rate_limited_with_retry_after(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.login_per_account = "3/min".parse().ok()
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    for _ in 0..3 {
        assert_eq!(
            app.login(&alice.username, PASSWORD).await.status(),
            StatusCode::OK
        );
    }
    let limited = app.login(&alice.username, PASSWORD).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_problem(limited, 429, "RATE_LIMITED").await;
    assert_eq!(
        app.login("other@example.com", "x").await.status(),
        StatusCode::UNAUTHORIZED,
        "other usernames are unaffected"
    );
    // Refusals are audited in aggregate, when the window closes.
    let refused = |events: Vec<serde_json::Value>| {
        events
            .into_iter()
            .filter(|e| e["reason"] == "rate_limited")
            .collect::<Vec<_>>()
    };
    assert!(refused(app.audit_of_kind("login.failed").await).is_empty());
    app.services.auth.flush_refusals().await;
    let events = refused(app.audit_of_kind("login.failed").await);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["count"], 1);
}

on_both_stores!(a_flood_of_refused_logins_costs_one_audit_event_per_key_and_window);
async fn a_flood_of_refused_logins_costs_one_audit_event_per_key_and_window(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.login_per_account = "1/h".parse().ok();
        s.lockout.threshold = 3;
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    let before = app.audit().await.len();
    assert_eq!(app.login(&alice.username, PASSWORD).await.status(), 200);
    // 10,000 refused logins on one username from one address, 64 at a time.
    let body = serde_json::json!({"username": alice.username, "password": "guess"});
    let mut statuses = Vec::new();
    for _ in 0..(10_000 / 64 + 1) {
        let batch = (0..64).map(|_| app.post_json("/api/v1/auth/token", &body, None));
        statuses.extend(join_all(batch).await.into_iter().map(|r| r.status()));
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
    // Not one write for all of them: the trail holds the accepted login only.
    assert_eq!(app.audit().await.len(), before + 1);
    app.services.auth.flush_refusals().await;
    let events = app.audit().await;
    assert_eq!(events.len(), before + 2, "one event for the whole window");
    let flood = events.last().unwrap();
    assert_eq!(flood["kind"], "login.failed");
    assert_eq!(flood["reason"], "rate_limited");
    assert_eq!(flood["username"], alice.username.as_str());
    assert_eq!(flood["details"]["count"], statuses.len());
    // The next window starts empty.
    app.services.auth.flush_refusals().await;
    assert_eq!(app.audit().await.len(), before + 2);
}

on_both_stores!(logins_per_client_ip_are_rate_limited);
async fn logins_per_client_ip_are_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.login_per_ip = "2/min".parse().ok()).await;
    app.login("a@example.com", "x").await;
    app.login("b@example.com", "x").await;
    assert_problem(app.login("c@example.com", "x").await, 429, "RATE_LIMITED").await;
}

on_both_stores!(every_api_call_counts_towards_the_per_ip_limit_but_probes_do_not);
async fn every_api_call_counts_towards_the_per_ip_limit_but_probes_do_not(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.limits.api_per_ip = "5/min".parse().ok()).await;
    for _ in 0..5 {
        assert_eq!(app.me("garbage").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_problem(app.me("garbage").await, 429, "RATE_LIMITED").await;
    let unknown = app.get("/api/v1/nope").await;
    assert_problem(unknown, 429, "RATE_LIMITED").await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

on_both_stores!(
    a_login_storm_past_the_hashing_queue_is_shed_with_503,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn a_login_storm_past_the_hashing_queue_is_shed_with_503(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.hashing.workers = 1;
        s.hashing.queue = 1;
        // Slow hashes, so that the concurrent logins surely overlap.
        s.hashing.iterations = 6;
    })
    .await;
    let alice = app.create_customer("alice", None).await;

    let responses = join_all((0..12).map(|_| app.login(&alice.username, PASSWORD))).await;

    let (shed, served): (Vec<_>, Vec<_>) = responses
        .into_iter()
        .partition(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE);
    assert!(!shed.is_empty(), "some logins are refused at once");
    assert!(!served.is_empty(), "the queue still serves some");
    for response in served {
        tokens(response).await;
    }
    for response in shed {
        assert_eq!(response.headers()["retry-after"], "1");
        assert_problem(response, 503, "SERVICE_UNAVAILABLE").await;
    }
    assert_eq!(
        app.me("garbage").await.status(),
        StatusCode::UNAUTHORIZED,
        "other calls still answer"
    );
}

/// Reads from `stream` until the server closes it; what it sent, or `None` when it is still
/// open after `patience`.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    patience: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

on_both_stores!(slow_request_heads_and_idle_connections_are_closed);
async fn slow_request_heads_and_idle_connections_are_closed(backend: Backend) {
    use tokio::io::AsyncWriteExt as _;
    let app = spawn_app_with(backend, |s| {
        s.server.header_read_timeout = time::Duration::seconds(1);
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let patience = std::time::Duration::from_secs(5);

    // A head that never ends (slowloris): closed without an answer.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: finhub\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        read_until_closed(&mut slow, patience).await.as_deref(),
        Some("")
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // A kept-alive connection is answered, then closed once idle for as long.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: finhub\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle, patience)
        .await
        .expect("closed after idling");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A patient but complete client is unaffected.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
