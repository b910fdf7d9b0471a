//! Security events for FinHub's fraud systems: queued with the audit events they are, posted
//! signed (Standard Webhooks) by the delivery worker, at least once, retried for a day, and
//! once only across instances.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use time::Duration;

use crate::helpers::{
    Backend, Customer, PASSWORD, TestApp, second_instance, spawn_app_with, tokens,
};

/// Standard Webhooks' form of a 32-byte key.
fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}
const KEY: [u8; 32] = *b"the-webhook-key-of-these-tests!!";

/// What the receiver got, and the answers it still has to give (then 204).
#[derive(Default)]
struct Receiver {
    received: Vec<(HeaderMap, Bytes)>,
    answers: VecDeque<StatusCode>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(State(receiver): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut receiver = receiver.lock().unwrap();
    receiver.received.push((headers, body));
    receiver
        .answers
        .pop_front()
        .unwrap_or(StatusCode::NO_CONTENT)
}

/// A receiver on loopback that answers `answers` first; its URL.
async fn receiver(answers: &[StatusCode]) -> (Shared, String) {
    let shared = Shared::default();
    shared.lock().unwrap().answers = answers.iter().copied().collect();
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (shared, url)
}

async fn app_posting_to(backend: Backend, url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(backend, move |s| {
        s.audit.key = Some("the-audit-key-of-the-webhook-tests".into());
        s.notifier.public_url = Some("https://app.finhub.test/".into());
        s.webhooks.webhook_url = Some(url);
        s.webhooks.webhook_secret = Some(secret().into());
    })
    .await
}

/// One request as the receiver checks it: the signature verified apart from the service's own
/// code, then the id and the body.
fn verified(headers: &HeaderMap, body: &[u8]) -> (String, Value) {
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&KEY).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(
        headers["webhook-signature"],
        expected.as_str(),
        "signature of {id}"
    );
    assert_eq!(headers["content-type"], "application/json");
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "signed just now: {age}");
    (id.to_owned(), serde_json::from_slice(body).unwrap())
}

fn requests(receiver: &Shared) -> Vec<(String, Value)> {
    receiver
        .lock()
        .unwrap()
        .received
        .iter()
        .map(|(headers, body)| verified(headers, body))
        .collect()
}

async fn post_all(app: &TestApp) {
    while app.services.courier.post_due_webhooks().await.unwrap() > 0 {}
}

async fn queued(app: &TestApp, customer: &Customer, status: &str) -> i64 {
    app.customer_scalar(
        &format!(
            "SELECT COUNT(*) FROM webhook_events WHERE status = '{status}' \
             AND body LIKE '%' || $1 || '%'"
        ),
        customer,
    )
    .await
}

on_both_stores!(security_events_are_posted_signed_and_retried_until_taken);
async fn security_events_are_posted_signed_and_retried_until_taken(backend: Backend) {
    let (receiver, url) = receiver(&[
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    let app = app_posting_to(backend, &url).await;
    let eve = app.create_customer("eve", None).await;
    assert_eq!(
        app.login(&eve.username, "not-the-password").await.status(),
        401
    );
    let session = app.login_ok(&eve).await;
    // Not among the kinds sent by default.
    assert_eq!(app.logout(&session.bff, &json!({})).await.status(), 204);

    post_all(&app).await;
    assert_eq!(requests(&receiver).len(), 2, "both tried, both refused");
    assert_eq!(queued(&app, &eve, "PENDING").await, 2, "kept for a retry");
    app.clock.advance(Duration::minutes(2));
    post_all(&app).await;

    let posted = requests(&receiver);
    assert_eq!(posted.len(), 4, "{posted:?}");
    assert_eq!(queued(&app, &eve, "SENT").await, 2);
    // Each retry is the same event: the same id and the same body.
    let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
    for (id, body) in posted {
        by_id.entry(id).or_default().push(body);
    }
    assert_eq!(by_id.len(), 2);
    let mut kinds: Vec<String> = Vec::new();
    for (id, bodies) in &by_id {
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], bodies[1]);
        let body = &bodies[0];
        assert_eq!(
            body["data"]["id"],
            id.as_str(),
            "webhook-id is the audit event's id"
        );
        assert_eq!(body["data"]["customerId"], eve.id.as_str());
        assert!(body["timestamp"].is_string());
        kinds.push(body["type"].as_str().unwrap().to_owned());
        // No secret in any body: neither password nor token.
        let text = body.to_string();
        assert!(!text.contains(PASSWORD) && !text.contains("not-the-password"));
        assert!(!text.contains(&session.bff) && !text.contains(&session.refresh));
    }
    kinds.sort();
    assert_eq!(kinds, ["login.failed", "login.succeeded"]);
    // The audit trail has the same events.
    let failed = &app.audit_of_kind("login.failed").await[0];
    assert!(by_id.contains_key(failed["id"].as_str().unwrap()));
}

on_both_stores!(two_instances_post_each_event_once);
async fn two_instances_post_each_event_once(backend: Backend) {
    let (receiver, url) = receiver(&[]).await;
    let app = app_posting_to(backend, &url).await;
    let other = second_instance(&app).await;
    let eve = app.create_customer("eve", None).await;
    for _ in 0..12 {
        tokens(app.login(&eve.username, PASSWORD).await).await;
    }
    // Both workers at once, until neither finds anything due.
    loop {
        let (a, b) = tokio::join!(
            app.services.courier.post_due_webhooks(),
            other.services.courier.post_due_webhooks()
        );
        if a.unwrap() + b.unwrap() == 0 {
            break;
        }
    }
    let posted = requests(&receiver);
    let mut ids: Vec<&String> = posted.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(posted.len(), 12, "each event posted once");
    assert_eq!(ids.len(), 12);
}

on_both_stores!(an_event_not_taken_within_a_day_is_given_up_whatever_the_receiver_answered);
async fn an_event_not_taken_within_a_day_is_given_up_whatever_the_receiver_answered(
    backend: Backend,
) {
    // A receiver mid-deploy answers 404, mid-rotation of its secret 401: neither loses the
    // event, which is taken once the receiver is back.
    let (receiver, url) = receiver(&[StatusCode::NOT_FOUND, StatusCode::UNAUTHORIZED]).await;
    let app = app_posting_to(backend, &url).await;
    let eve = app.create_customer("eve", None).await;
    tokens(app.login(&eve.username, PASSWORD).await).await;
    for _ in 0..3 {
        post_all(&app).await;
        app.clock.advance(Duration::minutes(2));
    }
    assert_eq!(requests(&receiver).len(), 3);
    assert_eq!(queued(&app, &eve, "SENT").await, 1);

    // A receiver that keeps failing: retried, then given up a day after the event.
    receiver.lock().unwrap().answers = [StatusCode::BAD_GATEWAY; 100].into_iter().collect();
    tokens(app.login(&eve.username, PASSWORD).await).await;
    let before = requests(&receiver).len();
    post_all(&app).await;
    for _ in 0..40 {
        app.clock.advance(Duration::hours(1));
        post_all(&app).await;
    }
    assert_eq!(queued(&app, &eve, "FAILED").await, 1);
    assert_eq!(queued(&app, &eve, "PENDING").await, 0);
    let tries = requests(&receiver).len();
    assert!(tries - before > 3, "retried: {tries}");
    app.clock.advance(Duration::hours(1));
    post_all(&app).await;
    assert_eq!(requests(&receiver).len(), tries, "nothing after giving up");
}

on_both_stores!(without_a_webhook_nothing_is_queued);
async fn without_a_webhook_nothing_is_queued(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let eve = app.create_customer("eve", None).await;
    tokens(app.login(&eve.username, PASSWORD).await).await;
    assert_eq!(queued(&app, &eve, "PENDING").await, 0);
}

on_both_stores!(a_lockdown_reaches_the_fraud_systems);
async fn a_lockdown_reaches_the_fraud_systems(backend: Backend) {
    let (receiver, url) = receiver(&[]).await;
    let app = app_posting_to(backend, &url).await;
    let eve = app.create_customer("eve", None).await;
    let (_, token) = app.thief_signs_in(&eve).await;
    assert_eq!(app.lockdown(&token).await.status(), 204);
    post_all(&app).await;
    let posted = requests(&receiver);
    let lockdown = posted
        .iter()
        .map(|(_, body)| body)
        .find(|body| body["type"] == "account.lockdown")
        .expect("the lockdown posted");
    assert_eq!(lockdown["data"]["customerId"], eve.id.as_str());
    assert_eq!(lockdown["data"]["details"]["sessionsEnded"], 2);
    assert!(
        !lockdown.to_string().contains(&token),
        "no link in the body"
    );
}
