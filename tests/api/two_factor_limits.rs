//! Limits on second-factor guesses and sends: per challenge, per session, per customer.

use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use futures::future::join_all;
use serde_json::json;
use time::Duration;

use crate::helpers::{Backend, assert_problem, spawn_app, spawn_app_with};
use crate::recorded::StoreCalls;

on_both_stores!(wrong_codes_count_down_and_the_fifth_burns_the_challenge);
async fn wrong_codes_count_down_and_the_fifth_burns_the_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;

    for remaining in (0..5).rev() {
        let body = assert_problem(
            app.verify(&pending.bff, &challenge, &wrong).await,
            400,
            "INVALID_2FA_CODE",
        )
        .await;
        assert_eq!(body["attemptsRemaining"], remaining);
    }
    let burned = app
        .verify(&pending.bff, &challenge, &app.latest_code(&bob).await)
        .await;
    assert!(burned.headers().contains_key("retry-after"));
    assert_problem(burned, 429, "TOO_MANY_2FA_ATTEMPTS").await;
}

on_both_stores!(
    a_refused_guess_with_the_right_code_takes_the_same_read_as_a_wrong_one,
    flavor = "multi_thread",
    worker_threads = 2
);
/// The attack: guesses the stored state refuses (at a used-up, closed or expired challenge, or
/// a locked username) are never counted. If a right one took another path than a wrong one (to
/// the writer, under the username's lock), its time would tell a guesser which code, or on a
/// step-up which password, is right, without limit. Every refused guess is answered from the
/// same read instead: with every write about the username held elsewhere, the right code is
/// still refused at once.
async fn a_refused_guess_with_the_right_code_takes_the_same_read_as_a_wrong_one(backend: Backend) {
    let app = spawn_app(backend).await;
    // A name of its own: PostgreSQL's advisory locks span the test database's every schema.
    let guesser = app
        .create_customer("refused-right-guess", Some(TwoFactorMethod::Sms))
        .await;
    let pending = app.login_ok(&guesser).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let (right, wrong) = (
        app.latest_code(&guesser).await,
        app.wrong_code(&guesser).await,
    );
    for _ in 0..5 {
        app.verify(&pending.bff, &challenge, &wrong).await;
    }

    let _held = app.hold_writes_of(&guesser.username).await;
    for code in [&wrong, &right] {
        let answered = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            app.verify(&pending.bff, &challenge, code),
        )
        .await
        .expect("refused from a read, without waiting for a write");
        assert_problem(answered, 429, "TOO_MANY_2FA_ATTEMPTS").await;
    }
}

on_both_stores!(a_refused_guess_with_a_right_recovery_code_calls_the_store_as_a_wrong_one);
/// The same attack with a recovery code, which is looked up by its hash before the stored state
/// is read: if a right one then read more (its notice's count of codes left and the customer's
/// factors) or less (the first of its forms under each key to match), its time would tell a
/// guesser it was right at a challenge that refuses every guess. Both must call the store alike.
async fn a_refused_guess_with_a_right_recovery_code_calls_the_store_as_a_wrong_one(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the audit key the recovery codes are hashed with".into());
        s.audit.previous_keys = vec!["a previous audit key, kept after a rotation".into()];
    })
    .await;
    let carol = app
        .create_customer("carol", Some(TwoFactorMethod::Sms))
        .await;
    let session = app.login_with_2fa(&carol).await;
    let replaced = app.recovery_codes(&session.bff).await;
    let codes = app.recovery_codes(&session.bff).await;
    let (right, wrong) = (&codes[0], &replaced[0]);
    let pending = app.login_ok(&carol).await;
    let challenge = app
        .initiate_with_ok(&pending.bff, json!({"method": "RECOVERY_CODE"}))
        .await;
    let challenge = challenge["challengeId"].as_str().expect("challengeId");
    for _ in 0..5 {
        app.verify(&pending.bff, challenge, wrong).await;
    }

    let mut calls = Vec::new();
    for code in [wrong, right] {
        let recorded = StoreCalls::record();
        assert_problem(
            app.verify(&pending.bff, challenge, code).await,
            429,
            "TOO_MANY_2FA_ATTEMPTS",
        )
        .await;
        calls.push(recorded.calls());
    }
    assert!(
        calls[0].contains(&"store.unused_recovery_code"),
        "the store's calls were not recorded: {:?}",
        calls[0]
    );
    assert_eq!(calls[0], calls[1], "wrong, then right");
}

on_both_stores!(
    concurrent_wrong_guesses_never_get_more_than_five_codes_checked,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_wrong_guesses_never_get_more_than_five_codes_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;

    let responses = join_all((0..30).map(|_| app.verify(&pending.bff, &challenge, &wrong))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        25,
        "{statuses:?}"
    );
    let checked = app
        .audit_of_kind("2fa.failed")
        .await
        .into_iter()
        .filter(|e| e["reason"] == "invalid_code")
        .count();
    assert_eq!(checked, 5);
}

on_both_stores!(sends_are_limited_in_pace_and_number);
async fn sends_are_limited_in_pace_and_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;

    let too_soon = app.initiate(&pending.bff).await;
    assert_eq!(too_soon.headers()["retry-after"], "30");
    assert_problem(too_soon, 429, "TOO_MANY_2FA_ATTEMPTS").await;

    for _ in 0..4 {
        app.clock.advance(Duration::seconds(30));
        app.initiate_ok(&pending.bff).await;
    }
    app.clock.advance(Duration::seconds(30));
    assert_problem(
        app.initiate(&pending.bff).await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;
}

on_both_stores!(wrong_codes_count_towards_the_lockout_across_challenges);
async fn wrong_codes_count_towards_the_lockout_across_challenges(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let first = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;
    for _ in 0..3 {
        app.verify(&pending.bff, &first, &wrong).await;
    }
    app.clock.advance(Duration::seconds(30));
    let second = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;
    for _ in 0..2 {
        app.verify(&pending.bff, &second, &wrong).await;
    }

    assert_problem(
        app.login(&bob.username, crate::helpers::PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert_problem(
        app.verify(&pending.bff, &second, &app.latest_code(&bob).await)
            .await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    app.clock.advance(Duration::seconds(30));
    assert_problem(app.initiate(&pending.bff).await, 423, "ACCOUNT_LOCKED").await;
}

on_both_stores!(logging_in_again_buys_no_extra_guesses);
async fn logging_in_again_buys_no_extra_guesses(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let first = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&first.bff).await;
    let wrong = app.wrong_code(&bob).await;
    for _ in 0..4 {
        app.verify(&first.bff, &challenge, &wrong).await;
    }

    let second = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&second.bff).await;
    let wrong = app.wrong_code(&bob).await;
    app.verify(&second.bff, &challenge, &wrong).await;

    assert_problem(
        app.login(&bob.username, crate::helpers::PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
}

on_both_stores!(
    concurrent_guesses_over_several_sessions_get_no_more_codes_checked_than_the_lockout_allows,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_guesses_over_several_sessions_get_no_more_codes_checked_than_the_lockout_allows(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let mut targets = Vec::new();
    for _ in 0..3 {
        let pending = app.login_ok(&bob).await;
        let challenge = app.initiate_ok(&pending.bff).await;
        targets.push((pending.bff, challenge));
    }
    let wrong = app.wrong_code(&bob).await;

    let guesses = targets
        .iter()
        .flat_map(|(bff, challenge)| (0..10).map(move |_| (bff, challenge)))
        .map(|(bff, challenge)| app.verify(bff, challenge, &wrong));
    join_all(guesses).await;

    let checked = app
        .audit_of_kind("2fa.failed")
        .await
        .into_iter()
        .filter(|e| e["reason"] == "invalid_code")
        .count();
    assert_eq!(checked, 5);
    assert_problem(
        app.login(&bob.username, crate::helpers::PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
}

on_both_stores!(guesses_at_unknown_challenges_are_audited);
async fn guesses_at_unknown_challenges_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_problem(
        app.verify(&pending.bff, "made-up", "123456").await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    // Refused without a guess used: audited in aggregate, when the window closes.
    assert!(app.audit_of_kind("2fa.failed").await.is_empty());
    app.services.auth.flush_refusals().await;
    let failures = app.audit_of_kind("2fa.failed").await;
    assert_eq!(failures[0]["reason"], "unknown_challenge");
    assert_eq!(failures[0]["details"]["count"], 1);
    assert_eq!(failures[0]["username"], bob.username.as_str());
}

on_both_stores!(repeated_logins_cannot_pump_codes_past_the_customers_budget);
async fn repeated_logins_cannot_pump_codes_past_the_customers_budget(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.two_factor.customer_sends = Some("3/h".parse().unwrap());
    })
    .await;
    let carol = app
        .create_customer("carol", Some(TwoFactorMethod::Sms))
        .await;
    let dave = app
        .create_customer("dave", Some(TwoFactorMethod::Sms))
        .await;
    for _ in 0..3 {
        let pending = app.login_ok(&carol).await;
        assert_eq!(app.initiate(&pending.bff).await.status(), 202);
        app.clock.advance(Duration::minutes(1));
    }
    // A fourth session within the hour: refused, and no code goes out.
    let pending = app.login_ok(&carol).await;
    app.services.courier.deliver_due().await.unwrap();
    let sent = std::fs::read_to_string(app.outbox_path())
        .unwrap()
        .lines()
        .count();
    let refused = app.initiate(&pending.bff).await;
    let retry_after: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_problem(refused, 429, "TOO_MANY_2FA_ATTEMPTS").await;
    // The test clock runs with real time: a busy machine may take a second or two from here.
    assert!(
        (57 * 60 - 5..=57 * 60).contains(&retry_after),
        "when the oldest send leaves the hour: {retry_after}"
    );
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(app.outbox_path())
            .unwrap()
            .lines()
            .count(),
        sent
    );
    // Another customer is not affected; and once the oldest send leaves the hour, one more goes.
    let other = app.login_ok(&dave).await;
    assert_eq!(app.initiate(&other.bff).await.status(), 202);
    app.clock.advance(Duration::minutes(57));
    let later = app.login_ok(&carol).await;
    assert_eq!(app.initiate(&later.bff).await.status(), 202);
    assert_problem(
        app.initiate(&app.login_ok(&carol).await.bff).await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;
}
