//! Step-up: an ACTIVE session proves a second factor again and is recently authenticated for
//! `FINHUB_RECENT_AUTH_WINDOW`.

use finhub_auth::clock::Clock as _;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::Response;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app};

const STEP_UP: &str = "/api/v1/auth/step-up";
const STEP_UP_VERIFY: &str = "/api/v1/auth/step-up/verify";

impl TestApp {
    async fn ask_step_up(&self, bearer: &str, method: &str) -> Response {
        self.post_json(STEP_UP, &json!({"method": method}), Some(bearer))
            .await
    }

    async fn ask_step_up_ok(&self, bearer: &str, method: &str) -> Value {
        let response = self.ask_step_up(bearer, method).await;
        assert_eq!(response.status(), 202);
        response.json().await.unwrap()
    }

    async fn answer_step_up(&self, bearer: &str, challenge: &Value, answer: Value) -> Response {
        let mut body = answer;
        body["challengeId"] = challenge["challengeId"].clone();
        self.post_json(STEP_UP_VERIFY, &body, Some(bearer)).await
    }
}

fn at(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().unwrap(), &Rfc3339).unwrap()
}

on_both_stores!(a_code_to_the_customers_phone_makes_the_session_recent_for_the_window);
async fn a_code_to_the_customers_phone_makes_the_session_recent_for_the_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let active = app.login_with_2fa(&bob).await;
    // Step-up codes count with the session's other sends: the login's code was just sent.
    assert_problem(
        app.ask_step_up(&active.bff, "SMS").await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;
    app.clock.advance(Duration::seconds(31));

    let challenge = app.ask_step_up_ok(&active.bff, "SMS").await;
    assert_eq!(challenge["method"], "SMS");
    assert_eq!(challenge["destination"], "+44********23");
    assert_eq!(challenge["codeLength"], 6);
    assert!(challenge["resendAvailableAt"].is_string());
    let code = app.latest_code(&bob).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let refused = assert_problem(
        app.answer_step_up(&active.bff, &challenge, json!({"code": wrong}))
            .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    assert_eq!(refused["attemptsRemaining"], 4);
    let asked_at = app.clock.now();
    let verified = app
        .answer_step_up(&active.bff, &challenge, json!({"code": code}))
        .await;
    assert_eq!(verified.status(), 200);
    let body: Value = verified.json().await.unwrap();
    let until = at(&body["recentAuthenticationUntil"]);
    assert!(until >= asked_at + Duration::minutes(5) - Duration::seconds(1));
    assert!(until <= app.clock.now() + Duration::minutes(5) + Duration::seconds(1));
    assert_eq!(app.audit_of_kind("stepup.initiated").await.len(), 1);
    assert_eq!(app.audit_of_kind("stepup.verified").await.len(), 1);
    assert_eq!(app.audit_of_kind("stepup.failed").await.len(), 1);

    // The challenge is used: the same code again is refused, and the tokens did not change.
    assert_problem(
        app.answer_step_up(&active.bff, &challenge, json!({"code": code}))
            .await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
    assert_eq!(app.me(&active.bff).await.status(), 200);
}

on_both_stores!(only_a_method_the_customer_holds_can_step_up);
async fn only_a_method_the_customer_holds_can_step_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let with_factor = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::seconds(31));
    for method in ["EMAIL", "PASSWORD"] {
        let refused = assert_problem(
            app.ask_step_up(&with_factor.bff, method).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], "method", "{method}");
    }
    let eve = app.create_customer("eve", None).await;
    let without = app.login_ok(&eve).await;
    for method in ["SMS", "EMAIL"] {
        assert_problem(
            app.ask_step_up(&without.bff, method).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
    assert_problem(
        app.ask_step_up(&without.bff, "CARRIER_PIGEON").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(app.audit_of_kind("stepup.initiated").await.is_empty());
}

on_both_stores!(a_customer_without_a_factor_steps_up_with_the_password);
async fn a_customer_without_a_factor_steps_up_with_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let active = app.login_ok(&eve).await;

    let challenge = app.ask_step_up_ok(&active.bff, "PASSWORD").await;
    assert_eq!(challenge["method"], "PASSWORD");
    assert_eq!(challenge["destination"], Value::Null);
    assert_eq!(challenge["codeLength"], Value::Null);
    assert_eq!(challenge["resendAvailableAt"], Value::Null);
    // Nothing is sent for a password challenge.
    assert_eq!(app.pending_codes(&eve).await, 0);

    assert_problem(
        app.answer_step_up(
            &active.bff,
            &challenge,
            json!({"password": "not-the-password"}),
        )
        .await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    // A code cannot answer a password challenge.
    assert_problem(
        app.answer_step_up(&active.bff, &challenge, json!({"code": "123456"}))
            .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    let verified = app
        .answer_step_up(&active.bff, &challenge, json!({"password": PASSWORD}))
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(app.audit_of_kind("stepup.verified").await.len(), 1);
}

on_both_stores!(wrong_step_up_passwords_count_towards_the_lock_like_failed_logins);
async fn wrong_step_up_passwords_count_towards_the_lock_like_failed_logins(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let active = app.login_ok(&eve).await;
    let challenge = app.ask_step_up_ok(&active.bff, "PASSWORD").await;
    for _ in 0..5 {
        assert_problem(
            app.answer_step_up(
                &active.bff,
                &challenge,
                json!({"password": "not-the-password"}),
            )
            .await,
            401,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    // The fifth failure locked the username: a thief holding the session cannot guess the
    // password here any more than at the login.
    assert_problem(
        app.login(&eve.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert_problem(
        app.answer_step_up(&active.bff, &challenge, json!({"password": PASSWORD}))
            .await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;
}

on_both_stores!(one_channel_never_answers_for_another);
async fn one_channel_never_answers_for_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let active = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::seconds(31));
    let challenge = app.ask_step_up_ok(&active.bff, "SMS").await;

    // The password does not answer a challenge whose code went to the phone.
    assert_problem(
        app.answer_step_up(&active.bff, &challenge, json!({"password": PASSWORD}))
            .await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    // A login's challenge (of another, pending session) is not a step-up's.
    let pending = app.login_ok(&bob).await;
    let login_challenge = app.initiate_ok(&pending.bff).await;
    let login_code = app.latest_code(&bob).await;
    let refused = assert_problem(
        app.answer_step_up(
            &active.bff,
            &json!({"challengeId": login_challenge}),
            json!({"code": login_code}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "challengeId");
    // And a step-up's challenge does not finish a login.
    let step_up_code = {
        app.clock.advance(Duration::seconds(31));
        let fresh = app.ask_step_up_ok(&active.bff, "SMS").await;
        (fresh, app.latest_code(&bob).await)
    };
    assert_problem(
        app.verify(
            &pending.bff,
            step_up_code.0["challengeId"].as_str().unwrap(),
            &step_up_code.1,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

on_both_stores!(a_session_awaiting_its_second_factor_cannot_step_up);
async fn a_session_awaiting_its_second_factor_cannot_step_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_problem(
        app.ask_step_up(&pending.bff, "SMS").await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
    assert_problem(
        app.post_json(
            STEP_UP_VERIFY,
            &json!({"challengeId": "x", "code": "123456"}),
            Some(&pending.bff),
        )
        .await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
}
