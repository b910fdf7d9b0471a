//! The outbox's claims: a code that can no longer be used is never sent, and a worker whose
//! lease ran out cannot overwrite what another did since.

use finhub_auth::clock::Clock as _;
use finhub_auth::domain::audit::{AuditEvent, AuditKind, Outcome};
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::domain::delivery::message::{ClaimToken, DeliveryEnd, Finish};
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{Backend, TestApp, spawn_app};

impl TestApp {
    /// The challenge ids of the codes in the outbox file.
    fn sent_challenges(&self) -> Vec<String> {
        std::fs::read_to_string(self.outbox_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|l| l["challengeId"].as_str().map(str::to_owned))
            .collect()
    }
}

on_both_stores!(the_code_of_a_superseded_challenge_is_never_sent);
/// The attack: asking for codes faster than the worker sends them used to deliver every one,
/// stale codes included, to a phone or inbox the attacker may be watching.
async fn the_code_of_a_superseded_challenge_is_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let first = app.initiate_ok(&pending.bff).await;
    app.clock.advance(Duration::seconds(31));
    let second = app.initiate_ok(&pending.bff).await;
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.sent_challenges(), [second]);
    let dropped = app.audit_of_kind("2fa.undelivered").await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["reason"], "superseded");
    assert_eq!(dropped[0]["details"]["challengeId"], first.as_str());
}

on_both_stores!(the_code_of_an_ended_session_is_never_sent);
async fn the_code_of_an_ended_session_is_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    assert_eq!(app.logout(&pending.bff, &json!({})).await.status(), 204);
    app.services.courier.deliver_due().await.unwrap();
    assert!(app.sent_challenges().is_empty());
    assert_eq!(app.pending_codes(&bob).await, 0);
}

on_both_stores!(a_stale_workers_late_failure_cannot_overwrite_a_sent_code);
/// The attack on delivery itself: a worker whose claim outlived its lease (a slow batch) used to
/// finish the message anyway, so its late "failed" overwrote another instance's "sent" and gave
/// the send back: one more code for whoever holds the password.
async fn a_stale_workers_late_failure_cannot_overwrite_a_sent_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = &app.services.store;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    let lease = Duration::seconds(60);
    let stale = ClaimToken::generate();
    let claimed = store
        .claim_messages(app.clock.now(), lease, 5, &stale)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    app.clock.advance(lease + Duration::seconds(1));
    let fresh = ClaimToken::generate();
    let reclaimed = store
        .claim_messages(app.clock.now(), lease, 5, &fresh)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1, "the lease ran out: claimed again");
    let event = |kind, outcome| AuditEvent::new(kind, outcome, app.clock.now());
    let sent = store
        .finish_message(
            &reclaimed[0],
            DeliveryEnd::Sent,
            None,
            &event(AuditKind::CodeDelivered, Outcome::Success),
        )
        .await
        .unwrap();
    assert_eq!(sent, Finish::Recorded);
    let late = store
        .finish_message(
            &claimed[0],
            DeliveryEnd::Undelivered,
            Some("refused"),
            &event(AuditKind::CodeUndelivered, Outcome::Failure),
        )
        .await
        .unwrap();
    assert_eq!(late, Finish::ClaimLost);

    let status: String = app
        .customer_scalar("SELECT status FROM messages WHERE customer_id = $1", &bob)
        .await;
    assert_eq!(status, "SENT");
    let codes_sent: i64 = app
        .customer_scalar(
            "SELECT codes_sent FROM sessions WHERE customer_id = $1",
            &bob,
        )
        .await;
    assert_eq!(codes_sent, 1, "the send was not given back");
    assert!(app.audit_of_kind("2fa.undelivered").await.is_empty());
}

on_both_stores!(a_message_of_a_newer_version_does_not_hold_up_the_codes_claimed_with_it);
/// The failure: during a rolling upgrade, a worker of this version claimed a message whose
/// purpose only a newer version knows, failed the whole batch, and the codes claimed with it
/// waited out their lease, again on every pass, while customers waited for them.
async fn a_message_of_a_newer_version_does_not_hold_up_the_codes_claimed_with_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let now = (app.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    let _: String = app
        .customer_scalar(
            &format!(
                "INSERT INTO messages (id, purpose, customer_id, channel, address, created_at, \
                 expires_at, next_attempt_at) VALUES ('from-a-newer-version', 'not_known_yet', $1, \
                 'EMAIL', 'bob@example.com', {now}, {}, {}) RETURNING id",
                now + 600_000,
                now - 1
            ),
            &bob,
        )
        .await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;

    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.sent_challenges(), [challenge]);
    // Given back unspent: a newer instance can claim and send it.
    let waiting: String = app
        .customer_scalar(
            "SELECT status || ':' || attempts || ':' || COALESCE(claim_token, 'unclaimed') \
             FROM messages WHERE id = 'from-a-newer-version' AND customer_id = $1",
            &bob,
        )
        .await;
    assert_eq!(waiting, "PENDING:0:unclaimed");
}
