use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_problem, spawn_app, spawn_app_with, tokens};

on_both_stores!(login_returns_tokens_and_an_active_session_for_a_customer_without_2fa);
async fn login_returns_tokens_and_an_active_session_for_a_customer_without_2fa(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;

    let response = app.login("  ALICE@Example.com ", PASSWORD).await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    let t = tokens(response).await;
    assert_eq!(t.body["tokenType"], "Bearer");
    assert_eq!(t.body["expiresIn"], 3600);
    assert_eq!(t.body["twoFactorRequired"], false);
    assert_eq!(t.bff.len(), 43);
    assert_ne!(t.bff, t.refresh);
    let me: Value = app.me(&t.bff).await.json().await.unwrap();
    assert_eq!(me["customerId"], alice.id.as_str());
    assert_eq!(me["session"]["state"], "ACTIVE");
    assert_eq!(me["session"]["id"], t.session_id.as_str());
    assert_eq!(me["session"]["expiresAt"], t.body["expiresAt"]);
}

on_both_stores!(a_wrong_password_and_an_unknown_user_get_the_same_answer);
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_customer("alice", None).await;

    let wrong = app.login("alice@example.com", "not-the-password").await;
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let mut wrong = assert_problem(wrong, 401, "INVALID_CREDENTIALS").await;
    let mut unknown = assert_problem(
        app.login("nobody@example.com", "whatever").await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;

    wrong.as_object_mut().unwrap().remove("requestId");
    unknown.as_object_mut().unwrap().remove("requestId");
    assert_eq!(wrong, unknown);
}

on_both_stores!(invalid_bodies_are_named_field_by_field_without_echoing_values);
async fn invalid_bodies_are_named_field_by_field_without_echoing_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({"password": "x"}), "username"),
        (json!({"username": "a@b.c"}), "password"),
        (json!({"username": 5, "password": "x"}), "username"),
        (
            json!({"username": "a@b.c", "password": ["secret-in-array"]}),
            "password",
        ),
        (json!({"username": "   ", "password": "x"}), "username"),
        (
            json!({"username": "a".repeat(300), "password": "x"}),
            "username",
        ),
        (
            json!({"username": "a@b.c", "password": "x".repeat(2000)}),
            "password",
        ),
        (
            json!({"username": "a@b.c", "password": "x", "device": {"fingerprint": ""}}),
            "device.fingerprint",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_problem(
            app.post_json("/api/v1/auth/token", &body, None).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        let errors = problem["errors"].as_array().expect("errors");
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "{field}: {problem}"
        );
        assert!(!problem.to_string().contains("secret-in-array"));
    }
}

on_both_stores!(malformed_oversized_and_wrongly_typed_requests_are_refused_cleanly);
async fn malformed_oversized_and_wrongly_typed_requests_are_refused_cleanly(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = app.url("/api/v1/auth/token");
    let not_json = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 400, "MALFORMED_REQUEST").await;
    let text = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("username=a")
        .send()
        .await
        .unwrap();
    assert_problem(text, 415, "MALFORMED_REQUEST").await;
    let huge = format!(
        r#"{{"username":"a@b.c","password":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let big = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_problem(big, 413, "MALFORMED_REQUEST").await;
    let array = app
        .client
        .post(&url)
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    assert_problem(array, 400, "VALIDATION_ERROR").await;
    let nul = app
        .client
        .post(&url)
        .json(&json!({"username": "a\u{0}b", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(nul, 400, "VALIDATION_ERROR").await;
}

on_both_stores!(a_hash_with_outdated_parameters_is_upgraded_on_login);
async fn a_hash_with_outdated_parameters_is_upgraded_on_login(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.hashing.memory_kib = 8 * 1024).await;
    let alice = app.create_customer("alice", None).await;
    let stronger = crate::helpers::spawn_app_with(backend, {
        let url = app.db_url().to_owned();
        let outbox = app.outbox_path();
        move |s| {
            s.store.url = url;
            s.notifier.outbox_path = outbox;
        }
    })
    .await;

    tokens(stronger.login(&alice.username, PASSWORD).await).await;

    let username = finhub_auth::domain::customers::Username::parse(&alice.username).unwrap();
    let stored = stronger
        .services
        .store
        .customer_by_username(&username)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash.contains("m=19456,t=2,p=1"),
        "{}",
        stored.password_hash
    );
    assert_eq!(
        stronger
            .audit_of_kind("customer.password_rehashed")
            .await
            .len(),
        1
    );
    tokens(stronger.login(&alice.username, PASSWORD).await).await;
}

on_both_stores!(an_account_locked_while_its_password_is_checked_is_not_rehashed);
async fn an_account_locked_while_its_password_is_checked_is_not_rehashed(backend: Backend) {
    // A costly stored hash keeps the check busy long enough to lock the account meanwhile.
    let costly = spawn_app_with(backend, |s| {
        s.hashing.memory_kib = 64 * 1024;
        s.hashing.iterations = 6;
    })
    .await;
    let alice = costly.create_customer("alice", None).await;
    let app = crate::helpers::spawn_app_with(backend, {
        let url = costly.db_url().to_owned();
        let outbox = costly.outbox_path();
        move |s| {
            s.store.url = url;
            s.notifier.outbox_path = outbox;
        }
    })
    .await;
    let username = finhub_auth::domain::customers::Username::parse(&alice.username).unwrap();
    let login = app.login(&alice.username, PASSWORD);
    let lock = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        app.services.accounts.lock(&username).await.unwrap();
    };
    let (response, ()) = tokio::join!(login, lock);
    // The right password, answered exactly as a locked account's wrong one would be...
    assert_problem(response, 423, "ACCOUNT_LOCKED").await;
    // ...and nothing about the account changed: no rehash, no session.
    assert!(
        app.audit_of_kind("customer.password_rehashed")
            .await
            .is_empty()
    );
    assert!(app.audit_of_kind("login.succeeded").await.is_empty());
}

on_both_stores!(a_2fa_customer_starts_pending_with_a_ten_minute_session);
async fn a_2fa_customer_starts_pending_with_a_ten_minute_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let t = app.login_ok(&bob).await;
    assert_eq!(t.body["twoFactorRequired"], true);
    assert_eq!(t.body["expiresIn"], 600);
}

on_both_stores!(every_login_attempt_is_audited_with_ip_user_agent_and_device);
async fn every_login_attempt_is_audited_with_ip_user_agent_and_device(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let body = json!({
        "username": alice.username,
        "password": PASSWORD,
        "device": {"fingerprint": "fp-123", "name": "Alice's phone"},
    });
    let ok = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("user-agent", "FinHubApp/1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.login(&alice.username, "wrong").await;

    let success = &app.audit_of_kind("login.succeeded").await[0];
    assert_eq!(success["ip"], "127.0.0.1");
    assert_eq!(success["userAgent"], "FinHubApp/1.0");
    // The device is recorded by the keyed hash of its fingerprint, never the fingerprint.
    let fingerprint = success["deviceFingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 64);
    assert_ne!(fingerprint, "fp-123");
    assert_eq!(success["deviceName"], "Alice's phone");
    assert_eq!(success["outcome"], "success");
    let failure = &app.audit_of_kind("login.failed").await[0];
    assert_eq!(failure["reason"], "invalid_credentials");
    assert_eq!(failure["username"], "alice@example.com");
}

on_both_stores!(forwarded_client_addresses_are_believed_only_from_trusted_proxies);
async fn forwarded_client_addresses_are_believed_only_from_trusted_proxies(backend: Backend) {
    let trusting = spawn_app_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    let plain = spawn_app(backend).await;
    for app in [&trusting, &plain] {
        app.client
            .post(app.url("/api/v1/auth/token"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"username": "ghost@example.com", "password": "x"}))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        trusting.audit_of_kind("login.failed").await[0]["ip"],
        "203.0.113.9"
    );
    assert_eq!(
        plain.audit_of_kind("login.failed").await[0]["ip"],
        "127.0.0.1"
    );
}

on_both_stores!(a_client_cannot_spoof_its_address_with_the_header_the_proxies_do_not_write);
async fn a_client_cannot_spoof_its_address_with_the_header_the_proxies_do_not_write(
    backend: Backend,
) {
    use finhub_auth::http::client_ip::ClientIpHeader;
    // Proxies that append to X-Forwarded-For pass a client's own Forwarded through untouched,
    // and proxies that write Forwarded pass its X-Forwarded-For.
    for (header, believed) in [
        (ClientIpHeader::XForwardedFor, "203.0.113.9"),
        (ClientIpHeader::Forwarded, "198.51.100.20"),
    ] {
        let app = spawn_app_with(backend, |s| {
            s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            s.server.client_ip_header = header;
        })
        .await;
        let response = app
            .client
            .post(app.url("/api/v1/auth/token"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("forwarded", "for=198.51.100.20")
            .json(&json!({"username": "ghost@example.com", "password": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(
            app.audit_of_kind("login.failed").await[0]["ip"],
            believed,
            "{header:?}"
        );
    }
}
