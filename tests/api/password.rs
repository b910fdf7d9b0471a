//! A signed-in customer changes their password.

use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::Response;
use serde_json::{Value, json};
use time::Duration;

use std::sync::{Arc, Mutex};

use crate::helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with};

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
    // The customer is told of the lock (PSD2 Art. 4(4)), once, at the profile's mailbox and
    // phone.
    while app.services.courier.deliver_due().await.unwrap() > 0 {}
    let mut told: Vec<String> = app
        .notice_lines()
        .into_iter()
        .filter(|l| l["notice"] == "account.locked")
        .map(|l| l["to"].as_str().unwrap().to_owned())
        .collect();
    told.sort_unstable();
    assert_eq!(told, ["+447700900123", "eve@example.com"]);
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

    // The SMS factor is the profile's phone: told there once, and at the e-mail address.
    app.services.courier.deliver_due().await.unwrap();
    let told: Vec<Value> = app
        .notice_lines()
        .into_iter()
        .filter(|l| l["notice"] == "password.changed")
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
}

on_both_stores!(a_change_checked_before_a_lock_or_a_logout_is_not_committed_after_it);
/// The race: a burst of password changes on a stolen session is checked (each hash verified)
/// before the first wrong guesses lock the username, or before the owner signs out everywhere;
/// a right guess still in flight then must not set a password. The store checks the lock and
/// the session again in the transaction that changes the password; asked after them (as the
/// service would, having looked before), it refuses and changes nothing.
async fn a_change_checked_before_a_lock_or_a_logout_is_not_committed_after_it(backend: Backend) {
    use finhub_auth::clock::Clock as _;
    use finhub_auth::domain::audit::{AuditEvent, AuditKind, Outcome};
    use finhub_auth::domain::credentials::password::{ChangeOutcome, PasswordChange};
    use finhub_auth::domain::customers::{CustomerId, Username};
    use finhub_auth::domain::sessions::SessionId;

    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let thief = app.login_ok(&eve).await;
    let stored: String = app
        .customer_scalar("SELECT password_hash FROM customers WHERE id = $1", &eve)
        .await;
    let change = PasswordChange {
        customer: CustomerId::from_stored(eve.id.clone()),
        username: Username::parse(&eve.username).unwrap(),
        keep_session: SessionId::from_stored(thief.session_id.clone()),
        old_hash: stored.clone(),
        new_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        at: app.clock.now(),
    };
    let event = AuditEvent::new(
        AuditKind::PasswordChanged,
        Outcome::Success,
        app.clock.now(),
    );
    let store = &app.services.store;

    for _ in 0..5 {
        app.login(&eve.username, "wrong").await;
    }
    let locked = store.change_password(&change, &[], &event).await.unwrap();
    assert!(matches!(locked, ChangeOutcome::Locked { .. }), "{locked:?}");

    app.services
        .accounts
        .unlock(&Username::parse(&eve.username).unwrap())
        .await
        .unwrap();
    app.post_json(
        "/api/v1/auth/logout",
        &json!({"scope": "all"}),
        Some(&thief.bff),
    )
    .await;
    let ended = store.change_password(&change, &[], &event).await.unwrap();
    assert_eq!(ended, ChangeOutcome::SessionEnded);

    let after: String = app
        .customer_scalar("SELECT password_hash FROM customers WHERE id = $1", &eve)
        .await;
    assert_eq!(after, stored, "nothing changed");
    assert!(app.audit_of_kind("password.changed").await.is_empty());
}

/// The SHA-1 of `password` in upper-case hex, as breach lists hold it.
fn sha1_hex(password: &str) -> String {
    use sha1::Digest as _;
    hex::encode_upper(sha1::Sha1::digest(password.as_bytes()))
}

on_both_stores!(a_password_in_the_breached_file_is_refused_and_others_pass);
async fn a_password_in_the_breached_file_is_refused_and_others_pass(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pwned.txt");
    let breached = "Velvet-harbour-stairs-88";
    let mut lines: Vec<String> = vec![
        format!("{}:3", sha1_hex(breached)),
        format!("{}:1", sha1_hex("another-leaked-phrase")),
        format!("{}:9", "0".repeat(40)),
        format!("{}:2", "F".repeat(40)),
    ];
    lines.sort();
    std::fs::write(&path, lines.join("\r\n") + "\r\n").unwrap();
    let app = spawn_app_with(backend, |s| {
        s.passwords.breached_passwords_file = Some(path.clone());
    })
    .await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    let refused = assert_problem(
        app.change_password(&session.bff, PASSWORD, breached).await,
        400,
        "PASSWORD_REJECTED",
    )
    .await;
    assert_eq!(refused["reasons"], json!(["BREACHED"]));
    assert!(!refused.to_string().contains(&sha1_hex(breached)));
    assert_eq!(
        app.change_password(&session.bff, PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        204
    );
}

/// A range service on loopback that knows `breached`, recording the paths asked for.
async fn range_service(breached: &str) -> (Arc<Mutex<Vec<String>>>, String) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let hash = sha1_hex(breached);
    let (prefix, suffix) = (hash[..5].to_owned(), hash[5..].to_owned());
    let app = axum::Router::new()
        .route(
            "/range/{prefix}",
            axum::routing::get(
                move |axum::extract::Path(asked_prefix): axum::extract::Path<String>,
                      axum::extract::State(asked): axum::extract::State<
                    Arc<Mutex<Vec<String>>>,
                >| {
                    let (prefix, suffix) = (prefix.clone(), suffix.clone());
                    async move {
                        asked.lock().unwrap().push(asked_prefix.clone());
                        // Padding lines (count 0) and other suffixes, as the real service sends.
                        let mut body = format!(
                            "{}:0\r\n0123456789ABCDEF0123456789ABCDEF012:4\r\n",
                            "A".repeat(35)
                        );
                        if asked_prefix == prefix {
                            body.push_str(&format!("{suffix}:12\r\n"));
                        }
                        body
                    }
                },
            ),
        )
        .with_state(Arc::clone(&asked));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (asked, url)
}

on_both_stores!(a_range_service_is_sent_only_the_prefix_and_an_unreachable_one_is_skipped);
async fn a_range_service_is_sent_only_the_prefix_and_an_unreachable_one_is_skipped(
    backend: Backend,
) {
    let breached = "Velvet-harbour-stairs-88";
    let (asked, url) = range_service(breached).await;
    let app = spawn_app_with(backend, |s| {
        s.passwords.breached_passwords_url = Some(url.clone());
    })
    .await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    let refused = assert_problem(
        app.change_password(&session.bff, PASSWORD, breached).await,
        400,
        "PASSWORD_REJECTED",
    )
    .await;
    assert_eq!(refused["reasons"], json!(["BREACHED"]));
    // The attack this stops: the service learning the password; it sees five hex digits.
    assert_eq!(*asked.lock().unwrap(), [sha1_hex(breached)[..5].to_owned()]);
    assert_eq!(
        app.change_password(&session.bff, PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        204
    );

    // A service that answers without end: read up to 1 MiB, then skipped as unavailable.
    let endless = axum::Router::new().route(
        "/range/{prefix}",
        axum::routing::get(|| async {
            let line = axum::body::Bytes::from_static(b"0123456789ABCDEF0123456789ABCDEF012:1\r\n");
            axum::body::Body::from_stream(futures::stream::repeat_with(move || {
                Ok::<_, std::io::Error>(line.clone())
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, endless).await });
    breach_check_is_skipped(backend, &endless_url, breached).await;

    // Nothing listens there: the check is skipped, never a refused change.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    breach_check_is_skipped(backend, &nowhere, breached).await;
}

/// With the range service at `url` out of use, a change to `breached` goes through: the check
/// is skipped, never a refused change.
async fn breach_check_is_skipped(backend: Backend, url: &str, breached: &str) {
    let app = spawn_app_with(backend, |s| {
        s.passwords.breached_passwords_url = Some(url.to_owned());
    })
    .await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    assert_eq!(
        app.change_password(&session.bff, PASSWORD, breached)
            .await
            .status(),
        204
    );
}
