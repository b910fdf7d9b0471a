use finhub_auth::domain::credentials::factor::TwoFactorMethod;
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
    assert_eq!(app.latest_code(&bob).await.len(), 6);
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
    app.latest_code(&bob).await;
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
        app.verify(&pending.bff, &challenge, &app.latest_code(&bob).await)
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
    let code = app.latest_code(&bob).await;
    app.clock.advance(Duration::minutes(2));
    assert_problem(
        app.verify(&pending.bff, &challenge, &code).await,
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
    let first_code = app.latest_code(&bob).await;
    app.clock.advance(Duration::seconds(30));
    let second = app.initiate_ok(&pending.bff).await;

    assert_problem(
        app.verify(&pending.bff, &first, &first_code).await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
    tokens(
        app.verify(&pending.bff, &second, &app.latest_code(&bob).await)
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

on_both_stores!(a_message_that_fails_for_good_gives_the_send_back);
async fn a_message_that_fails_for_good_gives_the_send_back(backend: Backend) {
    // A directory where the outbox file should be: every delivery attempt fails. One code an
    // hour per customer: the failed one must not use it up.
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.notifier.outbox_path = std::env::temp_dir();
        s.two_factor.customer_sends = Some("1/h".parse().unwrap());
    })
    .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;

    // Queued with the challenge: the answer does not wait for the SMS gateway.
    let first = app.initiate(&pending.bff).await;
    assert_eq!(first.status().as_u16(), 202);
    assert_problem(
        app.initiate(&pending.bff).await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;

    // Each attempt fails; retries wait longer each time; the sixth is the last.
    for _ in 0..6 {
        app.services.courier.deliver_due().await.unwrap();
        app.clock.advance(Duration::seconds(70));
    }
    assert_eq!(app.pending_codes(&bob).await, 0);
    let given_up = app.audit_of_kind("2fa.undelivered").await;
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    assert_eq!(given_up[0]["reason"], "gave_up");
    assert_eq!(given_up[0]["details"]["attempts"], 6);
    assert!(app.audit_of_kind("2fa.delivered").await.is_empty());

    // The send is the customer's again, at once, and does not count toward the hour's budget.
    let again = app.initiate(&pending.bff).await;
    assert_eq!(again.status().as_u16(), 202);
}

on_both_stores!(a_code_that_expires_before_it_can_be_sent_is_dropped);
async fn a_code_that_expires_before_it_can_be_sent_is_dropped(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    app.clock.advance(Duration::minutes(10));

    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.pending_codes(&bob).await, 0);
    let sent = std::fs::read_to_string(app.outbox_path()).unwrap_or_default();
    assert!(!sent.contains("\"code\""), "never sent late: {sent}");
    let dropped = app.audit_of_kind("2fa.undelivered").await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["reason"], "expired");
}

on_both_stores!(a_queued_code_is_sealed_at_rest_and_erased_once_sent);
async fn a_queued_code_is_sealed_at_rest_and_erased_once_sent(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.audit.key = Some("an-audit-key-of-at-least-32-bytes-long".into());
    })
    .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    let waiting = app.queued_code_bytes(&bob).await.expect("a sealed code");

    let code = app.latest_code(&bob).await;
    assert!(
        !waiting.windows(6).any(|w| w == code.as_bytes()),
        "the code is not readable in the outbox table"
    );
    assert_eq!(app.queued_code_bytes(&bob).await, None, "erased once sent");
    let delivered = app.audit_of_kind("2fa.delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["details"]["attempts"], 1);
}

on_both_stores!(the_message_text_follows_the_configured_template);
async fn the_message_text_follows_the_configured_template(backend: Backend) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.notifier.code_template = Some("FinHub code {code}, valid {minutes} min.".into());
    })
    .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    let code = app.latest_code(&bob).await;
    let sent = std::fs::read_to_string(app.outbox_path()).unwrap();
    let line: Value = serde_json::from_str(sent.lines().last().unwrap()).unwrap();
    assert_eq!(line["text"], format!("FinHub code {code}, valid 10 min."));
}

on_both_stores!(a_waiting_client_can_see_whether_its_code_was_sent);
async fn a_waiting_client_can_see_whether_its_code_was_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let state = |bearer: String, id: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url(&format!("/api/v1/auth/2fa/challenges/{id}")))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = state(pending.bff.clone(), challenge.clone()).await;
    assert_eq!((status, body["delivery"].as_str()), (200, Some("PENDING")));
    app.latest_code(&bob).await;
    let (_, body) = state(pending.bff.clone(), challenge.clone()).await;
    assert_eq!(body["delivery"], "SENT");
    assert_eq!(body["challengeId"], challenge.as_str());

    // Only the session's own challenges.
    let other = app.login_ok(&bob).await;
    assert_eq!(state(other.bff.clone(), challenge.clone()).await.0, 404);
    assert_eq!(state(pending.bff.clone(), "nope".into()).await.0, 404);

    // A message given up on says so.
    let failing = crate::helpers::spawn_app_with(backend, |s| {
        s.notifier.outbox_path = std::env::temp_dir();
        s.notifier.delivery_attempts = std::num::NonZeroU32::MIN;
    })
    .await;
    let carol = failing
        .create_customer("carol", Some(TwoFactorMethod::Sms))
        .await;
    let waiting = failing.login_ok(&carol).await;
    let lost = failing.initiate_ok(&waiting.bff).await;
    failing.services.courier.deliver_due().await.unwrap();
    let response = failing
        .client
        .get(failing.url(&format!("/api/v1/auth/2fa/challenges/{lost}")))
        .bearer_auth(&waiting.bff)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["delivery"], "FAILED");
}
