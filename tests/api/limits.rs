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
    let refused = app.audit_of_kind("login.failed").await;
    assert!(refused.iter().any(|e| e["reason"] == "rate_limited"));
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
