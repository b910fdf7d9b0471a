//! A signed-in customer changes their password.

use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::Response;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app};

const NEW_PASSWORD: &str = "Plum-orbit-lantern-61";

impl TestApp {
    async fn change_password(&self, bearer: &str, current: &str, new: &str) -> Response {
        self.post_json(
            "/api/v1/customers/me/password",
            &json!({"currentPassword": current, "newPassword": new}),
            Some(bearer),
        )
        .await
    }
}

on_both_stores!(a_changed_password_ends_every_other_session_and_is_told_everywhere);
async fn a_changed_password_ends_every_other_session_and_is_told_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let here = app.login_ok(&eve).await;
    let elsewhere = app.login_ok(&eve).await;

    let changed = app.change_password(&here.bff, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status(), 204);

    // A thief's session ends at once; the one that changed it stays.
    assert_problem(app.me(&elsewhere.bff).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.me(&here.bff).await.status(), 200);
    assert_problem(
        app.login(&eve.username, PASSWORD).await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    assert_eq!(app.login(&eve.username, NEW_PASSWORD).await.status(), 200);
    let events = app.audit_of_kind("password.changed").await;
    assert_eq!(events.len(), 1);
    assert!(!events[0].to_string().contains(NEW_PASSWORD));

    // Told at the profile's e-mail address and phone, once each, with no secret in them.
    app.services.courier.deliver_due().await.unwrap();
    let mut told: Vec<(String, String)> = app
        .notice_lines()
        .iter()
        .filter(|l| l["notice"] == "password.changed")
        .map(|l| {
            assert!(!l.to_string().contains(NEW_PASSWORD));
            (
                l["channel"].as_str().unwrap().to_owned(),
                l["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            ("EMAIL".to_owned(), "eve@example.com".to_owned()),
            ("SMS".to_owned(), "+447700900123".to_owned())
        ]
    );
}

on_both_stores!(a_wrong_current_password_counts_toward_the_lock);
async fn a_wrong_current_password_counts_toward_the_lock(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    for _ in 0..5 {
        assert_problem(
            app.change_password(&session.bff, "not-the-password", NEW_PASSWORD)
                .await,
            401,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    // A thief holding a session cannot guess the password here more than at the login.
    assert_problem(
        app.login(&eve.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert_problem(
        app.change_password(&session.bff, PASSWORD, NEW_PASSWORD)
            .await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert_eq!(app.audit_of_kind("password.change_failed").await.len(), 5);
    assert!(app.audit_of_kind("password.changed").await.is_empty());
}

on_both_stores!(a_new_password_must_pass_the_policy_and_every_broken_rule_is_named);
async fn a_new_password_must_pass_the_policy_and_every_broken_rule_is_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    for (new, reasons) in [
        ("short-9", json!(["TOO_SHORT"])),
        ("password1234", json!(["COMMON"])),
        ("my-name-is-Tester-7", json!(["CONTEXT"])),
        (PASSWORD, json!(["REUSED"])),
        ("finhub", json!(["TOO_SHORT", "CONTEXT"])),
    ] {
        let refused = assert_problem(
            app.change_password(&session.bff, PASSWORD, new).await,
            400,
            "PASSWORD_REJECTED",
        )
        .await;
        assert_eq!(refused["reasons"], reasons, "{new}");
    }
    assert_eq!(app.login(&eve.username, PASSWORD).await.status(), 200);
}

on_both_stores!(a_customer_with_a_factor_must_have_proved_it_recently);
async fn a_customer_with_a_factor_must_have_proved_it_recently(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_problem(
        app.change_password(&pending.bff, PASSWORD, NEW_PASSWORD)
            .await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
    let active = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::minutes(6));
    let refused = assert_problem(
        app.change_password(&active.bff, PASSWORD, NEW_PASSWORD)
            .await,
        403,
        "RECENT_AUTHENTICATION_REQUIRED",
    )
    .await;
    assert_eq!(refused["methods"], json!(["SMS"]));

    let challenge: Value = app
        .post_json(
            "/api/v1/auth/step-up",
            &json!({"method": "SMS"}),
            Some(&active.bff),
        )
        .await
        .json()
        .await
        .unwrap();
    let code = app.latest_code(&bob).await;
    let verified = app
        .post_json(
            "/api/v1/auth/step-up/verify",
            &json!({"challengeId": challenge["challengeId"], "code": code}),
            Some(&active.bff),
        )
        .await;
    assert_eq!(verified.status(), 200);
    let changed = app
        .change_password(&active.bff, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), 204);
}
