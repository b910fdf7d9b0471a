use finhub_auth::domain::customer::TwoFactorMethod;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{Backend, assert_problem, spawn_app, tokens};

on_both_stores!(a_pending_session_sees_only_the_restricted_view);
async fn a_pending_session_sees_only_the_restricted_view(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;

    let me: Value = app.me(&pending.bff).await.json().await.unwrap();

    let keys: Vec<&str> = me.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{me}");
    assert_eq!(me["customerId"], bob.id.as_str());
    assert_eq!(
        me["twoFactor"],
        json!({"enabled": true, "method": "SMS", "destination": "+44********23"})
    );
    assert_eq!(me["session"]["state"], "TWO_FACTOR_PENDING");
    assert_eq!(me["session"]["twoFactorVerified"], false);
}

on_both_stores!(a_pending_session_cannot_be_refreshed);
async fn a_pending_session_cannot_be_refreshed(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_problem(
        app.refresh(&pending.refresh).await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
}

on_both_stores!(initiate_sends_a_six_digit_code_through_the_outbox);
async fn initiate_sends_a_six_digit_code_through_the_outbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;

    let response = app.initiate(&pending.bff).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["method"], "SMS");
    assert_eq!(body["destination"], "+44********23");
    assert_eq!(body["codeLength"], 6);
    assert!(body["expiresAt"].is_string() && body["resendAvailableAt"].is_string());
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(app.outbox_path())
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["channel"], "SMS");
    assert_eq!(line["to"], "+447700900123");
    assert_eq!(line["challengeId"], body["challengeId"]);
    assert!(
        line["text"]
            .as_str()
            .unwrap()
            .contains(line["code"].as_str().unwrap())
    );
    assert_eq!(app.latest_code(&bob).len(), 6);
}

on_both_stores!(the_code_goes_only_by_the_customers_own_method);
async fn the_code_goes_only_by_the_customers_own_method(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let initiate = |body: Value| {
        let app = &app;
        let bff = pending.bff.clone();
        async move {
            app.post_json("/api/v1/auth/2fa/initiate", &body, Some(&bff))
                .await
        }
    };

    // A stolen password must not route the code to a channel the customer never chose.
    let elsewhere = assert_problem(
        initiate(json!({"method": "EMAIL"})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(elsewhere["errors"][0]["field"], "method");
    let unknown = assert_problem(
        initiate(json!({"method": "PIGEON"})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "method");
    let sent = std::fs::read_to_string(app.outbox_path()).unwrap_or_default();
    assert!(sent.is_empty(), "nothing was sent for a refused method");

    let own = initiate(json!({"method": "SMS"})).await;
    assert_eq!(own.status().as_u16(), 202);
    let body: Value = own.json().await.unwrap();
    assert_eq!(body["method"], "SMS");
    assert_eq!(body["destination"], "+44********23");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(app.outbox_path()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the outbox holds codes: owner only");
}

on_both_stores!(the_right_code_activates_the_session_rotates_tokens_and_extends_it);
async fn the_right_code_activates_the_session_rotates_tokens_and_extends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    app.clock.advance(Duration::minutes(2));

    let active = tokens(
        app.verify(&pending.bff, &challenge, &app.latest_code(&bob))
            .await,
    )
    .await;

    assert_eq!(active.body["twoFactorRequired"], false);
    assert_eq!(active.body["expiresIn"], 3600);
    assert_eq!(active.session_id, pending.session_id);
    assert_problem(app.me(&pending.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&pending.refresh).await, 401, "UNAUTHENTICATED").await;
    // Reusing the pending refresh token counts as reuse: the session is gone.
    assert_problem(app.me(&active.bff).await, 401, "UNAUTHENTICATED").await;
}

on_both_stores!(after_verification_the_full_view_shows_two_factor_verified);
async fn after_verification_the_full_view_shows_two_factor_verified(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let active = app.login_with_2fa(&bob).await;
    let me: Value = app.me(&active.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "ACTIVE");
    assert_eq!(me["session"]["twoFactorVerified"], true);
    assert!(me["lastLoginAt"].is_string());
    assert_eq!(app.audit_of_kind("2fa.verified").await.len(), 1);
    assert_problem(
        app.initiate(&active.bff).await,
        409,
        "TWO_FACTOR_NOT_PENDING",
    )
    .await;
    assert_problem(
        app.verify(&active.bff, "x", "123456").await,
        409,
        "TWO_FACTOR_NOT_PENDING",
    )
    .await;
}

on_both_stores!(an_expired_code_is_refused_while_the_session_lives);
async fn an_expired_code_is_refused_while_the_session_lives(backend: Backend) {
    let app =
        crate::helpers::spawn_app_with(backend, |s| s.two_factor.code_ttl = Duration::minutes(2))
            .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    app.clock.advance(Duration::minutes(2));
    assert_problem(
        app.verify(&pending.bff, &challenge, &app.latest_code(&bob))
            .await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
}

on_both_stores!(a_new_code_replaces_the_previous_one);
async fn a_new_code_replaces_the_previous_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let first = app.initiate_ok(&pending.bff).await;
    let first_code = app.latest_code(&bob);
    app.clock.advance(Duration::seconds(30));
    let second = app.initiate_ok(&pending.bff).await;

    assert_problem(
        app.verify(&pending.bff, &first, &first_code).await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
    tokens(
        app.verify(&pending.bff, &second, &app.latest_code(&bob))
            .await,
    )
    .await;
}

on_both_stores!(verify_validates_its_fields);
async fn verify_validates_its_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    for code in ["12345", "abcdef", "1234567"] {
        let body = assert_problem(
            app.verify(&pending.bff, &challenge, code).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "code");
    }
    let unknown = app
        .verify(&pending.bff, "no-such-challenge", "123456")
        .await;
    assert_problem(unknown, 400, "VALIDATION_ERROR").await;
    let missing = app
        .post_json(
            "/api/v1/auth/2fa/verify",
            &json!({"code": "123456"}),
            Some(&pending.bff),
        )
        .await;
    assert_problem(missing, 400, "VALIDATION_ERROR").await;
}

on_both_stores!(a_pending_session_lasts_ten_minutes);
async fn a_pending_session_lasts_ten_minutes(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.clock.advance(Duration::minutes(10));
    assert_problem(app.me(&pending.bff).await, 401, "SESSION_EXPIRED").await;
    assert_problem(app.initiate(&pending.bff).await, 401, "SESSION_EXPIRED").await;
}

on_both_stores!(a_pending_session_can_log_out);
async fn a_pending_session_can_log_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_eq!(
        app.logout(&pending.bff, &json!({})).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(app.initiate(&pending.bff).await, 401, "UNAUTHENTICATED").await;
}

on_both_stores!(a_pending_session_cannot_end_the_customers_other_sessions);
async fn a_pending_session_cannot_end_the_customers_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let active = app.login_with_2fa(&bob).await;
    let pending = app.login_ok(&bob).await;

    assert_problem(
        app.logout(&pending.bff, &json!({"scope": "all"})).await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;

    assert_eq!(app.me(&active.bff).await.status(), StatusCode::OK);
    assert_eq!(
        app.logout(&pending.bff, &json!({})).await.status(),
        StatusCode::NO_CONTENT
    );
}

on_both_stores!(a_failed_delivery_gives_the_send_back);
async fn a_failed_delivery_gives_the_send_back(backend: Backend) {
    // A directory where the outbox file should be: every append fails.
    let app =
        crate::helpers::spawn_app_with(backend, |s| s.notifier.outbox_path = std::env::temp_dir())
            .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;

    let first = app.initiate(&pending.bff).await;
    assert!(first.headers().contains_key("retry-after"));
    assert_problem(first, 503, "SERVICE_UNAVAILABLE").await;
    assert_problem(app.initiate(&pending.bff).await, 503, "SERVICE_UNAVAILABLE").await;

    let failed = app.audit_of_kind("2fa.initiated").await;
    assert_eq!(failed.len(), 4, "each attempt is recorded, then released");
    assert_eq!(
        failed
            .iter()
            .filter(|e| e["reason"] == "delivery_failed")
            .count(),
        2
    );
}
