//! Locking an account after failed logins, and operator locks.

use futures::future::join_all;
use reqwest::StatusCode;
use time::Duration;

use crate::helpers::{Backend, PASSWORD, assert_problem, spawn_app, tokens};

on_both_stores!(five_failures_lock_the_account_and_then_even_the_right_password_is_refused);
async fn five_failures_lock_the_account_and_then_even_the_right_password_is_refused(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;

    for _ in 0..5 {
        assert_problem(
            app.login(&alice.username, "wrong").await,
            401,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    let locked_right = assert_problem(
        app.login(&alice.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    let mut locked_wrong = assert_problem(
        app.login(&alice.username, "wrong").await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;

    assert!(locked_right["lockedUntil"].is_string());
    let mut locked_right = locked_right;
    locked_right.as_object_mut().unwrap().remove("requestId");
    locked_wrong.as_object_mut().unwrap().remove("requestId");
    assert_eq!(locked_right, locked_wrong);
    assert_eq!(app.audit_of_kind("account.locked").await.len(), 1);
}

on_both_stores!(a_locked_username_is_refused_before_its_customer_is_read);
/// A lock answers 423 on the counters alone: a customer row that cannot be read (here an
/// address no longer valid) does not turn it into a 500 that tells the username exists.
async fn a_locked_username_is_refused_before_its_customer_is_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    for _ in 0..5 {
        assert_eq!(
            app.login(&alice.username, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let corrupt = "UPDATE customers SET email = 'not an address' WHERE id = $1 \
                   RETURNING CAST(1 AS BIGINT)";
    assert_eq!(app.customer_scalar::<i64>(corrupt, &alice).await, 1);
    assert_problem(
        app.login(&alice.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
}

on_both_stores!(unknown_usernames_lock_exactly_like_real_ones);
async fn unknown_usernames_lock_exactly_like_real_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..5 {
        assert_problem(
            app.login("ghost@example.com", "wrong").await,
            401,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    let body = assert_problem(
        app.login("ghost@example.com", "wrong").await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert!(body["lockedUntil"].is_string());
}

on_both_stores!(a_lock_expires_and_the_next_one_lasts_twice_as_long);
async fn a_lock_expires_and_the_next_one_lasts_twice_as_long(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    for _ in 0..5 {
        app.login(&alice.username, "wrong").await;
    }
    app.clock
        .advance(Duration::minutes(15) + Duration::seconds(1));
    assert_eq!(
        app.login(&alice.username, "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );

    for _ in 0..4 {
        app.login(&alice.username, "wrong").await;
    }
    assert_eq!(
        app.login(&alice.username, PASSWORD).await.status(),
        StatusCode::LOCKED
    );
    app.clock.advance(Duration::minutes(16));
    assert_eq!(
        app.login(&alice.username, PASSWORD).await.status(),
        StatusCode::LOCKED,
        "second lock lasts 30 minutes"
    );
    app.clock.advance(Duration::minutes(15));
    tokens(app.login(&alice.username, PASSWORD).await).await;
}

on_both_stores!(a_successful_login_resets_the_failure_count);
async fn a_successful_login_resets_the_failure_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    for _ in 0..4 {
        app.login(&alice.username, "wrong").await;
    }
    app.login_ok(&alice).await;
    for _ in 0..4 {
        assert_eq!(
            app.login(&alice.username, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

on_both_stores!(
    concurrent_wrong_logins_are_all_counted_and_lock_the_account,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_wrong_logins_are_all_counted_and_lock_the_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;

    let attempts = (0..20).map(|_| app.login(&alice.username, "wrong"));
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 423).count(),
        15,
        "{statuses:?}"
    );
    // Attempts refused by the lock before their password was checked are audited in aggregate.
    app.services.auth.flush_refusals().await;
    let failures: u64 = app
        .audit_of_kind("login.failed")
        .await
        .iter()
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(failures, 20);
    assert_eq!(app.audit_of_kind("account.locked").await.len(), 1);
    assert_eq!(
        app.login(&alice.username, PASSWORD).await.status(),
        StatusCode::LOCKED
    );
}

on_both_stores!(an_operator_lock_has_no_end_time_ends_sessions_and_lifts_on_unlock);
async fn an_operator_lock_has_no_end_time_ends_sessions_and_lifts_on_unlock(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;
    let username = finhub_auth::domain::customers::Username::parse(&alice.username).unwrap();

    app.services.accounts.lock(&username).await.unwrap();

    let body = assert_problem(
        app.login(&alice.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert!(body.get("lockedUntil").is_none());
    assert_problem(app.me(&session.bff).await, 401, "UNAUTHENTICATED").await;
    app.clock.advance(Duration::days(30));
    assert_eq!(
        app.login(&alice.username, PASSWORD).await.status(),
        StatusCode::LOCKED
    );
    app.services.accounts.unlock(&username).await.unwrap();
    app.login_ok(&alice).await;
}

on_both_stores!(a_username_locked_after_initiate_looked_gets_no_challenge_and_no_code);
/// The race: wrong passwords elsewhere lock the username between `2fa/initiate`'s lock check
/// and the challenge's insert, and a code went out anyway. The store checks the lock again in
/// the transaction that opens the challenge; asked to open one after the lock (as initiate
/// would, having looked before it), it refuses, and nothing is queued.
async fn a_username_locked_after_initiate_looked_gets_no_challenge_and_no_code(backend: Backend) {
    use finhub_auth::clock::Clock as _;
    use finhub_auth::domain::audit::{AuditEvent, AuditKind, Outcome};
    use finhub_auth::domain::credentials::challenge::{
        ChallengeId, ChallengeMethod, ChallengePurpose, CodeKey, NewChallenge, OtpCode, SendOutcome,
    };
    use finhub_auth::domain::credentials::factor::TwoFactorMethod;
    use finhub_auth::domain::customers::{CustomerId, Username};
    use finhub_auth::domain::delivery::message::Message;
    use finhub_auth::domain::sessions::SessionId;

    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    for _ in 0..5 {
        app.login(&bob.username, "wrong").await;
    }

    let now = app.clock.now();
    let id = ChallengeId::generate();
    let session_id = SessionId::from_stored(pending.session_id.clone());
    let challenge = NewChallenge {
        code_hash: Some(CodeKey::unkeyed().hash(&OtpCode::parse("123456").unwrap(), &id)),
        ceremony: None,
        id,
        session_id,
        username: Username::parse(&bob.username).unwrap(),
        purpose: ChallengePurpose::Login,
        method: ChallengeMethod::Sms,
        factor_id: None,
        destination: Some("+44********23".into()),
        created_at: now,
        expires_at: now + Duration::minutes(10),
    };
    let message = Message::code(
        &challenge,
        TwoFactorMethod::Sms,
        &CustomerId::from_stored(bob.id.clone()),
        "+447700900123".into(),
        vec![0; 16],
    );
    let event = AuditEvent::new(AuditKind::TwoFactorInitiated, Outcome::Success, now);
    let outcome = app
        .services
        .store
        .open_challenge(
            &challenge,
            &app.settings.two_factor.policy(),
            Some(&message),
            &event,
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, SendOutcome::Locked { until: Some(_) }),
        "{outcome:?}"
    );
    assert_eq!(app.pending_codes(&bob).await, 0, "no code queued");
    let challenges: i64 = app
        .customer_scalar(
            "SELECT COUNT(*) FROM challenges c JOIN sessions s ON s.id = c.session_id \
             WHERE s.customer_id = $1",
            &bob,
        )
        .await;
    assert_eq!(challenges, 0, "no challenge opened");
    assert!(app.audit_of_kind("2fa.initiated").await.is_empty());
}

on_both_stores!(a_lock_by_failures_is_told_to_the_customer_once_with_its_end);
async fn a_lock_by_failures_is_told_to_the_customer_once_with_its_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app
        .create_customer(
            "bob",
            Some(finhub_auth::domain::credentials::factor::TwoFactorMethod::Sms),
        )
        .await;
    // Four wrong passwords, then a wrong code locks: told at the profile's mailbox and phone.
    for _ in 0..4 {
        app.login(&bob.username, "wrong").await;
    }
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&bob).await;
    let locked = app.verify(&pending.bff, &challenge, &wrong).await;
    assert_eq!(locked.status(), 400);
    // Failures while locked tell nothing more, and neither does a wrong password's own lock
    // of a name that belongs to no customer.
    for _ in 0..3 {
        app.login(&bob.username, "wrong").await;
    }
    for _ in 0..5 {
        app.login("nobody@example.com", "wrong").await;
    }
    while app.services.courier.deliver_due().await.unwrap() > 0 {}
    let told: Vec<serde_json::Value> = app
        .notice_lines()
        .into_iter()
        .filter(|l| l["notice"] == "account.locked")
        .collect();
    let mut to: Vec<&str> = told.iter().map(|l| l["to"].as_str().unwrap()).collect();
    to.sort_unstable();
    assert_eq!(to, ["+447700900123", "bob@example.com"]);
    let until = assert_problem(
        app.login(&bob.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await["lockedUntil"]
        .clone();
    assert!(
        told.iter().all(|l| l["lockedUntil"] == until),
        "{told:?} {until}"
    );
    assert!(
        told.iter()
            .all(|l| l["text"].as_str().unwrap().contains("reset your password"))
    );
}
