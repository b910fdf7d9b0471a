use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, assert_problem, spawn_app};

on_both_stores!(unknown_routes_and_methods_answer_problem_json);
async fn unknown_routes_and_methods_answer_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.get("/api/v1/nope").await;
    assert_problem(missing, 404, "NOT_FOUND").await;
    let wrong_method = app.get("/api/v1/auth/token").await;
    assert_problem(wrong_method, 405, "METHOD_NOT_ALLOWED").await;
}

on_both_stores!(a_sane_request_id_is_echoed_and_anything_else_replaced);
async fn a_sane_request_id_is_echoed_and_anything_else_replaced(backend: Backend) {
    let app = spawn_app(backend).await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123_abc")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-123_abc");

    let hostile = app
        .client
        .get(app.url("/api/v1/nope"))
        .header("x-request-id", "a b\"<script>")
        .send()
        .await
        .unwrap();
    let id = hostile.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "a b\"<script>");
    assert_eq!(id.len(), 36);
    let body = assert_problem(hostile, 404, "NOT_FOUND").await;
    assert_eq!(body["requestId"], id.as_str());
}

on_both_stores!(health_readiness_and_metrics_answer);
async fn health_readiness_and_metrics_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.login("nobody@example.com", "wrong").await;

    let metrics = app.get("/metrics").await.text().await.unwrap();

    assert!(
        metrics.contains("# TYPE finhub_http_requests_total counter"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/api/v1/auth/token""#));
    assert!(metrics.contains("finhub_http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"finhub_logins_total{outcome="invalid_credentials"}"#));
}

on_both_stores!(public_readiness_says_ready_or_not_and_nothing_about_weakened_controls);
/// Reconnaissance through the readiness probe: on the public address it says ready or not and
/// nothing else, never that the shared rate limits fell back to per-instance counts or that
/// the audit chain is unkeyed (which would tell an attacker when to strike).
async fn public_readiness_says_ready_or_not_and_nothing_about_weakened_controls(backend: Backend) {
    let app = spawn_app(backend).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));
}

on_both_stores!(an_operations_address_takes_metrics_and_readiness_details_off_the_public_one);
/// With an operations address, the public one keeps the contract's ready-or-not probe but no
/// metrics (which describe traffic, failures and fallbacks to anyone who asks); the details
/// and metrics are on the operations address.
async fn an_operations_address_takes_metrics_and_readiness_details_off_the_public_one(
    backend: Backend,
) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.server.ops_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let ops = app.ops_base.clone().expect("an operations address");
    assert_problem(app.get("/metrics").await, 404, "NOT_FOUND").await;
    let public: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(public, serde_json::json!({"status": "ready"}));
    for path in ["/readyz", "/metrics"] {
        let on_ops = app.client.get(format!("{ops}{path}")).send().await.unwrap();
        assert_eq!(on_ops.status(), StatusCode::OK, "{path}");
    }
    for base in [&app.base, &ops] {
        let live = app
            .client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
    }
    let ready: Value = app
        .client
        .get(format!("{ops}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["details"]["rateLimits"], "local");
    assert!(ready["details"]["auditKey"].is_string(), "{ready}");
    assert!(ready["details"].get("auditKeyId").is_some(), "{ready}");
    assert_problem(app.get("/api/v1/auth/nothing").await, 404, "NOT_FOUND").await;
}

on_both_stores!(public_metrics_count_against_the_per_ip_limit);
/// Scraping metrics for free: where `/metrics` is public it counts against the caller's
/// per-IP limit like any other call, so it cannot be polled without bound.
async fn public_metrics_count_against_the_per_ip_limit(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.limits.api_per_ip = "3/min".parse().ok();
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/metrics").await.status(), StatusCode::OK);
    }
    assert_problem(app.get("/metrics").await, 429, "RATE_LIMITED").await;
    // Probes stay unlimited: a load balancer must always learn whether to route here.
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

on_both_stores!(an_ipv4_mapped_proxy_on_a_dual_stack_listener_is_trusted);
/// Per-IP limits made global through IPv4-mapped peers: on a dual-stack listener an IPv4 proxy
/// connects as `::ffff:127.0.0.1`, which must still match the trusted `127.0.0.0/8`, so each
/// forwarded client gets its own bucket instead of all sharing the proxy's.
async fn an_ipv4_mapped_proxy_on_a_dual_stack_listener_is_trusted(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.server.listen = "[::]:0".parse().unwrap();
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.limits.api_per_ip = "2/min".parse().ok();
    })
    .await;
    // Over IPv4 to the dual-stack socket: the peer is reported IPv4-mapped.
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let call = |client_ip: &'static str| {
        app.client
            .get(format!("http://127.0.0.1:{port}/api/v1/customers/me"))
            .header("x-forwarded-for", client_ip)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(call("203.0.113.1").await.unwrap().status(), 401);
    }
    assert_eq!(call("203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(
        call("203.0.113.2").await.unwrap().status(),
        401,
        "another client behind the proxy has a bucket of its own"
    );
}

on_both_stores!(the_openapi_document_is_3_1_and_describes_every_endpoint);
async fn the_openapi_document_is_3_1_and_describes_every_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/token",
        "/api/v1/auth/token/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/2fa/initiate",
        "/api/v1/auth/2fa/verify",
        "/api/v1/customers/me",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["ProblemDocument"].is_object());
    for (path, method) in [
        ("/api/v1/auth/token", "post"),
        ("/api/v1/auth/token/refresh", "post"),
        ("/api/v1/customers/me", "get"),
    ] {
        for status in ["400", "429", "503"] {
            assert!(
                doc["paths"][path][method]["responses"][status].is_object(),
                "{path} {status}"
            );
        }
    }
}
