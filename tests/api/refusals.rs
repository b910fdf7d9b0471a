//! Refusals that change nothing must cost no write each: a flood of them would otherwise
//! queue every login behind the audit chain's head lock and fill the disk.

use std::collections::HashMap;

use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use time::Duration;

use crate::helpers::{Backend, PASSWORD, spawn_app_with};
use finhub_auth::domain::credentials::factor::TwoFactorMethod;

/// Each flood's size.
const FLOOD: usize = 10_000;
/// Requests in flight at once.
const WAVE: usize = 64;

/// Sends `FLOOD` requests made by `request`, `WAVE` at a time; every answer must have one
/// status, which is returned.
async fn flood<F, Fut>(request: F) -> StatusCode
where
    F: Fn() -> Fut,
    Fut: Future<Output = Response>,
{
    let mut statuses = HashMap::new();
    let mut sent = 0;
    while sent < FLOOD {
        let wave = WAVE.min(FLOOD - sent);
        for response in join_all((0..wave).map(|_| request())).await {
            *statuses.entry(response.status()).or_insert(0) += 1;
        }
        sent += wave;
    }
    assert_eq!(
        statuses.len(),
        1,
        "one answer for the whole flood: {statuses:?}"
    );
    statuses.into_keys().next().unwrap_or_default()
}

/// The summed `details.count` of the aggregated events of `kind` with `reason`.
fn counted(events: &[Value], kind: &str, reason: &str) -> u64 {
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["reason"] == reason)
        .map(|e| e["details"]["count"].as_u64().unwrap_or(0))
        .sum()
}

on_both_stores!(
    floods_of_replayed_refresh_tokens_and_refused_code_guesses_append_no_audit_event_each,
    flavor = "multi_thread",
    worker_threads = 2
);
/// The attack: any customer (or a thief with one spent token) replays a spent refresh token,
/// or guesses at an unknown, closed or exhausted challenge or while locked, in a loop; each
/// used to append an audit event under the chain's head lock, stalling logins for everyone
/// and filling the disk. Now each flood costs nothing durable until the minute's aggregate.
async fn floods_of_replayed_refresh_tokens_and_refused_code_guesses_append_no_audit_event_each(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.two_factor.resend_interval = Duration::ZERO;
        s.lockout.threshold = 10;
        s.limits.api_per_ip = None;
        s.limits.login_per_ip = None;
        s.limits.login_per_account = None;
    })
    .await;

    // A spent refresh token: rotated once, so presenting it again is reuse.
    let carol = app.create_customer("carol", None).await;
    let first = app.login_ok(&carol).await;
    assert_eq!(app.refresh(&first.refresh).await.status(), StatusCode::OK);

    // Alice awaits 2FA with a closed challenge (superseded) and an exhausted one.
    let alice = app
        .create_customer("alice", Some(TwoFactorMethod::Email))
        .await;
    let pending = app.login_ok(&alice).await;
    let closed = app.initiate_ok(&pending.bff).await;
    let exhausted = app.initiate_ok(&pending.bff).await;
    let wrong = app.wrong_code(&alice).await;
    for _ in 0..5 {
        app.verify(&pending.bff, &exhausted, &wrong).await;
    }

    // Bob awaits 2FA with an open challenge, and is locked by wrong passwords meanwhile.
    let bob = app
        .create_customer("bob", Some(TwoFactorMethod::Email))
        .await;
    let bobs = app.login_ok(&bob).await;
    let open = app.initiate_ok(&bobs.bff).await;
    for _ in 0..10 {
        app.login(&bob.username, "wrong password").await;
    }
    assert_eq!(
        app.login(&bob.username, PASSWORD).await.status(),
        StatusCode::LOCKED
    );
    app.services.auth.flush_refusals().await;
    let before = app.audit().await.len();

    let replayed = flood(|| app.refresh(&first.refresh)).await;
    assert_eq!(replayed, StatusCode::UNAUTHORIZED);
    let unknown = flood(|| app.verify(&pending.bff, "no-such-challenge", "123456")).await;
    assert_eq!(unknown, StatusCode::BAD_REQUEST);
    let superseded = flood(|| app.verify(&pending.bff, &closed, "123456")).await;
    assert!(superseded.is_client_error(), "{superseded}");
    let spent = flood(|| app.verify(&pending.bff, &exhausted, "123456")).await;
    assert_eq!(spent, StatusCode::TOO_MANY_REQUESTS);
    let locked = flood(|| app.verify(&bobs.bff, &open, "123456")).await;
    assert_eq!(locked, StatusCode::LOCKED);

    // One event of its own for all of them: the first replay, which ended carol's session.
    // (The service's own minute flush may run meanwhile; its aggregates are told apart by
    // their count.)
    app.services.auth.flush_refusals().await;
    let events = app.audit().await;
    let added = &events[before..];
    let single: Vec<&Value> = added
        .iter()
        .filter(|e| e["details"]["count"].is_null())
        .collect();
    assert_eq!(single.len(), 1, "{single:?}");
    assert_eq!(single[0]["kind"], "session.refresh_reused");
    assert_eq!(
        app.me(&first.bff).await.status(),
        StatusCode::UNAUTHORIZED,
        "the replay ended the session"
    );

    // The aggregates account for every refusal, one event per key and window.
    assert!(added.len() <= 1 + 5 * 3, "{} events", added.len());
    let kind = "2fa.failed";
    assert_eq!(
        counted(added, "session.refresh_reused", "refresh_token_reused"),
        FLOOD as u64 - 1
    );
    assert_eq!(counted(added, kind, "unknown_challenge"), FLOOD as u64);
    assert_eq!(counted(added, kind, "code_expired"), FLOOD as u64);
    assert_eq!(counted(added, kind, "too_many_attempts"), FLOOD as u64);
    assert_eq!(counted(added, kind, "account_locked"), FLOOD as u64);
    let locked = added
        .iter()
        .find(|e| e["reason"] == "account_locked")
        .unwrap();
    assert_eq!(locked["username"], bob.username.as_str());
    assert_eq!(locked["sessionId"], bobs.session_id.as_str());
}

on_both_stores!(refused_api_calls_are_recorded_by_code_and_address_once_a_minute);
/// The attack: probing the API (stolen or guessed tokens, other customers' sessions, unknown
/// routes, malformed bodies) to map it, too cheap to notice. Each is counted now, and the
/// trail shows the probing by code and address, without a write per probe.
async fn refused_api_calls_are_recorded_by_code_and_address_once_a_minute(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.limits.api_per_ip = "40/min".parse().ok();
    })
    .await;
    let carol = app.create_customer("carol", None).await;
    let dave = app.create_customer("dave", None).await;
    let carols = app.login_ok(&carol).await;
    let daves = app.login_ok(&dave).await;
    app.services.auth.flush_refusals().await;
    let before = app.audit().await.len();

    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/customers/me").await.status(), 401);
        assert_eq!(app.me("not-a-token").await.status(), 401);
    }
    assert_eq!(app.get("/api/v1/no-such-route").await.status(), 404);
    let other = format!("/api/v1/sessions/{}", daves.session_id);
    let ended = app
        .client
        .delete(app.url(&other))
        .bearer_auth(&carols.bff)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 404, "dave's session is not carol's to end");
    let malformed = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    // A refresh token replayed after its rotation: audited by the renewal itself, once.
    let spent = app.login_ok(&carol).await;
    assert_eq!(app.refresh(&spent.refresh).await.status(), 200);
    assert_eq!(app.refresh(&spent.refresh).await.status(), 401);
    // The per-address limit: whatever is left of its 40 a minute, and one more.
    while app.me(&daves.bff).await.status() != 429 {}
    assert_eq!(app.me(&daves.bff).await.status(), 429);

    // Nothing was written per refusal: only aggregates, one per code and address a minute.
    // (The service's own minute flush may run meanwhile: the counts are summed.)
    app.services.auth.flush_refusals().await;
    let events = app.audit().await;
    let added = &events[before..];
    assert!(
        added
            .iter()
            .filter(|e| e["kind"] == "request.refused")
            .all(|e| e["ip"] == "127.0.0.1" && e["details"]["count"].is_u64()),
        "{added:?}"
    );
    let kind = "request.refused";
    assert_eq!(
        counted(added, kind, "UNAUTHENTICATED"),
        6,
        "the replay is not counted twice"
    );
    assert_eq!(counted(added, kind, "NOT_FOUND"), 2);
    assert_eq!(counted(added, kind, "MALFORMED_REQUEST"), 1);
    assert_eq!(counted(added, kind, "RATE_LIMITED"), 2);
}
