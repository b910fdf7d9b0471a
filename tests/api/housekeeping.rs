use finhub_auth::domain::audit::trail;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use futures::future::join_all;
use reqwest::StatusCode;
use time::Duration;

use crate::helpers::{Backend, assert_problem, spawn_app, spawn_app_with};

on_both_stores!(housekeeping_removes_ended_sessions_and_stale_counters_and_keeps_the_rest);
async fn housekeeping_removes_ended_sessions_and_stale_counters_and_keeps_the_rest(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let old = app.login_ok(&alice).await;
    let old_pending = app.login_ok(&bob).await;
    app.login("ghost@example.com", "wrong").await;
    app.clock.advance(Duration::hours(30));
    let recent = app.login_ok(&alice).await;
    app.clock.advance(Duration::hours(7));

    let purged = app.services.housekeeper.run_once().await.unwrap();

    assert_eq!(purged.sessions, 2, "{purged:?}");
    assert_eq!(purged.lockouts, 1, "{purged:?}");
    assert_eq!(
        purged.audit_events, 0,
        "audit events are kept without a retention"
    );
    assert_problem(app.me(&old.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.me(&old_pending.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.me(&recent.bff).await, 401, "SESSION_EXPIRED").await;
    assert_eq!(
        app.services.housekeeper.run_once().await.unwrap(),
        Default::default()
    );
}

on_both_stores!(audit_retention_removes_old_events_and_verification_starts_from_the_checkpoint);
async fn audit_retention_removes_old_events_and_verification_starts_from_the_checkpoint(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.housekeeping.audit_retention = Some(Duration::hours(1))
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    app.login_ok(&alice).await;
    app.login(&alice.username, "wrong").await;
    let old = app.audit().await.len() as u64;
    app.clock.advance(Duration::hours(2));
    app.login_ok(&alice).await;

    let purged = app.services.housekeeper.run_once().await.unwrap();

    assert_eq!(purged.audit_events, old);
    let remaining = app.audit().await;
    assert_eq!(remaining[0]["seq"].as_i64().unwrap(), old as i64 + 1);
    let purge_event = remaining
        .iter()
        .find(|e| e["kind"] == "audit.purged")
        .expect("the purge is audited");
    assert_eq!(purge_event["details"]["deleted"], old);
    let verified = trail::verify(app.services.store.as_ref(), &app.services.seal)
        .await
        .unwrap();
    assert_eq!(verified.from_seq, old as i64);
    assert_eq!(verified.events, remaining.len() as u64);
}

on_both_stores!(
    concurrent_housekeeping_runs_share_the_work_without_errors,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_housekeeping_runs_share_the_work_without_errors(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.housekeeping.batch = 3.try_into().unwrap();
        s.housekeeping.audit_retention = Some(Duration::minutes(30));
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    for _ in 0..20 {
        app.login_ok(&alice).await;
    }
    app.clock.advance(Duration::hours(37));
    let live = app.login_ok(&alice).await;

    let runs = join_all((0..4).map(|_| app.services.housekeeper.run_once())).await;

    let total: u64 = runs
        .iter()
        .map(|r| r.as_ref().expect("a run").sessions)
        .sum();
    assert_eq!(total, 20);
    assert_eq!(app.me(&live.bff).await.status(), StatusCode::OK);
    trail::verify(app.services.store.as_ref(), &app.services.seal)
        .await
        .expect("the trail stays intact");
}

on_both_stores!(delivered_notices_are_purged_after_the_session_retention);
async fn delivered_notices_are_purged_after_the_session_retention(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    for fingerprint in ["laptop", "phone"] {
        let body = serde_json::json!({
            "username": alice.username,
            "password": crate::helpers::PASSWORD,
            "device": {"fingerprint": fingerprint},
        });
        let response = app.post_json("/api/v1/auth/token", &body, None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.audit_of_kind("notice.delivered").await.len(), 1);
    assert_eq!(
        app.services.housekeeper.run_once().await.unwrap().notices,
        0
    );

    app.clock.advance(Duration::days(31));
    let purged = app.services.housekeeper.run_once().await.unwrap();
    assert_eq!(purged.notices, 1, "{purged:?}");
}

on_both_stores!(expired_resets_go_after_the_session_retention_and_unconfirmed_factors_at_once);
async fn expired_resets_go_after_the_session_retention_and_unconfirmed_factors_at_once(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-housekeeping-tests".into());
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    for username in [alice.username.as_str(), "nobody@example.com"] {
        let body = serde_json::json!({"username": username});
        let response = app
            .post_json("/api/v1/auth/password-reset", &body, None)
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    app.services.auth.settle().await;
    // A factor added and never confirmed.
    let signed_in = app.login_ok(&alice).await;
    let body = serde_json::json!({"method": "TOTP"});
    let added = app
        .post_json("/api/v1/customers/me/factors", &body, Some(&signed_in.bff))
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);

    let purged = app.services.housekeeper.run_once().await.unwrap();
    assert_eq!(
        (purged.resets, purged.unconfirmed_factors),
        (0, 0),
        "{purged:?}"
    );
    // Past the code's lifetime the factor goes; the resets stay while the sending budget and
    // the day's cap on wrong codes may count them.
    app.clock.advance(Duration::minutes(20));
    let purged = app.services.housekeeper.run_once().await.unwrap();
    assert_eq!(
        (purged.resets, purged.unconfirmed_factors),
        (0, 1),
        "{purged:?}"
    );
    app.clock.advance(Duration::days(31));
    let purged = app.services.housekeeper.run_once().await.unwrap();
    assert_eq!(purged.resets, 2, "{purged:?}");
}

on_both_stores!(a_login_left_waiting_for_its_second_factor_is_purged_a_retention_after_it_expired);
/// A pending session ends when its short lifetime does, long before its absolute one: the purge
/// finds it by its own expiry (a statement and an index of its own since each batch stopped
/// reading the whole table), and a live session beside it stays.
async fn a_login_left_waiting_for_its_second_factor_is_purged_a_retention_after_it_expired(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let alice = app.create_customer("alice", None).await;
    let pending = app.login_ok(&bob).await;
    // Past the pending lifetime (10 minutes) and the retention (24 hours), within the absolute
    // lifetime (12 hours) plus the retention.
    app.clock
        .advance(Duration::hours(24) + Duration::minutes(11));
    let live = app.login_ok(&alice).await;

    let purged = app.services.housekeeper.run_once().await.unwrap();

    assert_eq!(purged.sessions, 1, "{purged:?}");
    assert_problem(app.me(&pending.bff).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.me(&live.bff).await.status(), StatusCode::OK);
}
