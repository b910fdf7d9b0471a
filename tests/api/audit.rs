use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, assert_problem, spawn_app, tokens};

on_both_stores!(a_full_flow_leaves_a_complete_audit_trail);
async fn a_full_flow_leaves_a_complete_audit_trail(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    assert_problem(
        app.login(&bob.username, "wrong").await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;
    let refused = app.verify(&pending.bff, &challenge, &wrong).await;
    assert_problem(refused, 400, "INVALID_2FA_CODE").await;
    let code = app.latest_code(&bob).await;
    let active = tokens(app.verify(&pending.bff, &challenge, &code).await).await;
    tokens(app.refresh(&active.refresh).await).await;
    let reused = app.refresh(&active.refresh).await;
    assert_problem(reused, 401, "UNAUTHENTICATED").await;
    let again = app.login_with_2fa(&bob).await;
    let logout = app.logout(&again.bff, &json!({})).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let trail = app.audit().await;
    for event in &trail {
        let at = event["at"].as_str().expect("at");
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .is_ok_and(|t| t.offset().is_utc())
                && at.ends_with('Z'),
            "RFC 3339 in UTC: {at}"
        );
    }

    let kinds: Vec<&str> = trail
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "customer.created",
            "login.failed",
            "login.succeeded",
            "2fa.initiated",
            "2fa.delivered",
            "2fa.failed",
            "2fa.verified",
            "session.refreshed",
            "session.refresh_reused",
            "login.succeeded",
            "2fa.initiated",
            "2fa.delivered",
            "2fa.verified",
            "session.logout",
        ]
    );
    let seqs: Vec<i64> = trail
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
}

on_both_stores!(the_audit_trail_never_holds_a_password_code_or_token);
async fn the_audit_trail_never_holds_a_password_code_or_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let code = app.latest_code(&bob).await;
    let active = tokens(app.verify(&pending.bff, &challenge, &code).await).await;
    let renewed = tokens(app.refresh(&active.refresh).await).await;

    let trail = serde_json::to_string(&app.audit().await).unwrap();

    for secret in [
        PASSWORD,
        &code,
        &pending.bff,
        &pending.refresh,
        &active.bff,
        &active.refresh,
        &renewed.bff,
        &renewed.refresh,
    ] {
        assert!(!trail.contains(secret), "a secret reached the audit trail");
    }
}
