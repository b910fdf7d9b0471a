//! The background jobs run from `Jobs::start` to `Jobs::stop`, as `serve` runs them: stopping
//! audits the refusals counted until then, and afterwards nothing works in the background.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, Customer, TestApp, spawn_app_with};
use finhub_auth::domain::credentials::factor::TwoFactorMethod;

/// Guesses at a challenge that does not exist: refused, and counted rather than audited.
const GUESSES: u64 = 3;

/// Whether the outbox file holds a code for `customer`, as only the delivery worker writes it
/// in this test.
fn has_code(app: &TestApp, customer: &Customer) -> bool {
    std::fs::read_to_string(app.outbox_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|l| l["customerId"] == customer.id.as_str() && l["code"].is_string())
}

/// The summed count of the aggregated events for guesses at unknown challenges.
async fn unknown_challenges_audited(app: &TestApp) -> u64 {
    app.audit_of_kind("2fa.failed")
        .await
        .iter()
        .filter(|e| e["reason"] == "unknown_challenge")
        .map(|e| e["details"]["count"].as_u64().unwrap_or(0))
        .sum()
}

on_both_stores!(stopping_the_jobs_audits_the_refusals_counted_and_leaves_none_running);
async fn stopping_the_jobs_audits_the_refusals_counted_and_leaves_none_running(backend: Backend) {
    let mut app = spawn_app_with(backend, |s| s.notifier.delivery_worker = true).await;
    assert!(app.jobs.running() > 0);

    // Running: the delivery worker sends a code without the test asking for a pass.
    let alice = app
        .create_customer("alice", Some(TwoFactorMethod::Sms))
        .await;
    let pending = app.login_ok(&alice).await;
    app.initiate_ok(&pending.bff).await;
    let mut waited = 0;
    while !has_code(&app, &alice) {
        assert!(waited < 250, "the delivery worker sent no code");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }

    // Refusals within the minute are counted, not yet audited.
    for _ in 0..GUESSES {
        let refused = app
            .verify(&pending.bff, "no-such-challenge", "123456")
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(unknown_challenges_audited(&app).await, 0);

    app.jobs.stop().await;

    assert_eq!(app.jobs.running(), 0);
    assert_eq!(unknown_challenges_audited(&app).await, GUESSES);
    // Stopped: a code queued now stays queued, however long the worker's poll.
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!has_code(&app, &bob), "a stopped worker delivered");
    assert_eq!(app.pending_codes(&bob).await, 1);

    // Last, the store's connections are closed.
    app.services.close().await;
    assert!(app.services.store.ping().await.is_err());
}
