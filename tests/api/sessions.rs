use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use finhub_auth::domain::credentials::factor::TwoFactorMethod;

use crate::helpers::{Backend, PASSWORD, assert_problem, spawn_app, spawn_app_with, tokens};

on_both_stores!(customers_me_needs_a_valid_bearer_token);
async fn customers_me_needs_a_valid_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let none = app.get("/api/v1/customers/me").await;
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="finhub""#
    );
    assert_problem(none, 401, "UNAUTHENTICATED").await;

    for bad in ["garbage", &"A".repeat(43), "Bearer", ""] {
        let response = app.me(bad).await;
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        assert_problem(response, 401, "UNAUTHENTICATED").await;
    }
    let basic = app
        .client
        .get(app.url("/api/v1/customers/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401, "UNAUTHENTICATED").await;
}

on_both_stores!(the_full_view_carries_profile_kyc_two_factor_and_login_history);
async fn the_full_view_carries_profile_kyc_two_factor_and_login_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let first = app.login_ok(&alice).await;
    let first_me: Value = app.me(&first.bff).await.json().await.unwrap();
    assert_eq!(first_me["previousLoginAt"], Value::Null);

    app.clock.advance(Duration::minutes(5));
    let second = app.login_ok(&alice).await;
    let response = app.me(&second.bff).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let me: Value = response.json().await.unwrap();

    assert_eq!(me["username"], "alice@example.com");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["phone"], "+447700900123");
    assert_eq!(me["firstName"], "alice");
    assert_eq!(me["lastName"], "Tester");
    assert_eq!(me["kycStatus"], "VERIFIED");
    assert_eq!(
        me["twoFactor"],
        json!({"enabled": false, "method": null, "destination": null})
    );
    assert_eq!(me["previousLoginAt"], first_me["lastLoginAt"]);
    assert_ne!(me["lastLoginAt"], first_me["lastLoginAt"]);
    assert_eq!(me["session"]["twoFactorVerified"], false);
}

on_both_stores!(a_session_expires_after_its_lifetime);
async fn a_session_expires_after_its_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sessions.idle_timeout = None).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    app.clock.advance(Duration::minutes(59));
    assert_eq!(app.me(&t.bff).await.status(), StatusCode::OK);
    app.clock.advance(Duration::minutes(1));
    assert_problem(app.me(&t.bff).await, 401, "SESSION_EXPIRED").await;
}

on_both_stores!(an_idle_session_expires_but_activity_keeps_it_alive);
async fn an_idle_session_expires_but_activity_keeps_it_alive(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    for _ in 0..3 {
        app.clock.advance(Duration::minutes(14));
        assert_eq!(app.me(&t.bff).await.status(), StatusCode::OK);
    }
    app.clock.advance(Duration::minutes(15));
    assert_problem(app.me(&t.bff).await, 401, "SESSION_EXPIRED").await;
    assert_problem(app.refresh(&t.refresh).await, 401, "SESSION_EXPIRED").await;
}

on_both_stores!(refresh_rotates_both_tokens_and_extends_the_session);
async fn refresh_rotates_both_tokens_and_extends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    app.clock.advance(Duration::minutes(10));

    let renewed = tokens(app.refresh(&t.refresh).await).await;

    assert_ne!(renewed.bff, t.bff);
    assert_ne!(renewed.refresh, t.refresh);
    assert_eq!(renewed.session_id, t.session_id);
    assert_eq!(renewed.body["expiresIn"], 3600);
    assert_problem(app.me(&t.bff).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.me(&renewed.bff).await.status(), StatusCode::OK);
    assert_eq!(app.audit_of_kind("session.refreshed").await.len(), 1);
}

on_both_stores!(a_reused_refresh_token_revokes_the_whole_session);
async fn a_reused_refresh_token_revokes_the_whole_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    let renewed = tokens(app.refresh(&t.refresh).await).await;

    assert_problem(app.refresh(&t.refresh).await, 401, "UNAUTHENTICATED").await;

    assert_problem(app.me(&renewed.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&renewed.refresh).await, 401, "UNAUTHENTICATED").await;
    let reuse = app.audit_of_kind("session.refresh_reused").await;
    assert_eq!(reuse[0]["sessionId"], t.session_id.as_str());
}

on_both_stores!(
    concurrent_refreshes_with_one_token_have_exactly_one_winner,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn concurrent_refreshes_with_one_token_have_exactly_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;

    let responses = join_all((0..10).map(|_| app.refresh(&t.refresh))).await;

    let (won, lost): (Vec<_>, Vec<_>) = responses
        .into_iter()
        .partition(|r| r.status() == StatusCode::OK);
    assert_eq!(won.len(), 1, "refreshes that succeeded");
    // Every loser presented a token that was spent by then: that is reuse, which the contract
    // answers with UNAUTHENTICATED and by revoking the whole session, the winner's tokens too.
    for response in lost {
        assert_problem(response, 401, "UNAUTHENTICATED").await;
    }
    let winner = tokens(won.into_iter().next().expect("one winner")).await;
    assert_problem(app.me(&winner.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&winner.refresh).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.audit_of_kind("session.refreshed").await.len(), 1);
    // The one reuse that ended the session is audited with it; the others found it ended and
    // are audited in aggregate.
    let ended = app.audit_of_kind("session.refresh_reused").await;
    assert_eq!(ended.len(), 1);
    app.services.auth.flush_refusals().await;
    let reuses: u64 = app
        .audit_of_kind("session.refresh_reused")
        .await
        .iter()
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(reuses, 9);
}

on_both_stores!(refresh_never_reaches_past_the_absolute_lifetime_and_is_not_activity);
async fn refresh_never_reaches_past_the_absolute_lifetime_and_is_not_activity(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.sessions.idle_timeout = None).await;
    let alice = app.create_customer("alice", None).await;
    let mut t = app.login_ok(&alice).await;
    for _ in 0..11 {
        app.clock.advance(Duration::minutes(61));
        t = tokens(app.refresh(&t.refresh).await).await;
    }
    // 11h11m in: the last renewal is capped at the 12 h mark, 49 minutes on (less the seconds
    // the test itself took, as the test clock runs on from real time).
    let expires_in = t.body["expiresIn"].as_i64().expect("expiresIn");
    assert!((48 * 60..=49 * 60).contains(&expires_in), "{expires_in}");
    app.clock.advance(Duration::minutes(50));
    assert_problem(app.refresh(&t.refresh).await, 401, "SESSION_EXPIRED").await;
}

on_both_stores!(a_refresh_alone_does_not_keep_a_session_from_idling_out);
async fn a_refresh_alone_does_not_keep_a_session_from_idling_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    app.clock.advance(Duration::minutes(10));
    let renewed = tokens(app.refresh(&t.refresh).await).await;
    app.clock.advance(Duration::minutes(6));
    assert_problem(app.me(&renewed.bff).await, 401, "SESSION_EXPIRED").await;
}

on_both_stores!(bad_refresh_tokens_are_unauthenticated);
async fn bad_refresh_tokens_are_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_problem(app.refresh("garbage").await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&"B".repeat(43)).await, 401, "UNAUTHENTICATED").await;
    let missing = app
        .post_json("/api/v1/auth/token/refresh", &json!({}), None)
        .await;
    assert_problem(missing, 400, "VALIDATION_ERROR").await;
}

on_both_stores!(logout_ends_the_session_at_once);
async fn logout_ends_the_session_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    let other = app.login_ok(&alice).await;

    let response = app.logout(&t.bff, &json!({})).await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(app.me(&t.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&t.refresh).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.logout(&t.bff, &json!({})).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(
        app.me(&other.bff).await.status(),
        StatusCode::OK,
        "other sessions live on"
    );
}

on_both_stores!(logout_without_a_body_works_too);
async fn logout_without_a_body_works_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let t = app.login_ok(&alice).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&t.bff)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(app.me(&t.bff).await, 401, "UNAUTHENTICATED").await;
}

on_both_stores!(logout_with_scope_all_ends_every_session_of_the_customer);
async fn logout_with_scope_all_ends_every_session_of_the_customer(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", None).await;
    let sessions = [
        app.login_ok(&alice).await,
        app.login_ok(&alice).await,
        app.login_ok(&alice).await,
    ];
    let bobs = app.login_ok(&bob).await;

    assert_eq!(
        app.logout(&sessions[0].bff, &json!({"scope": "all"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    for s in &sessions {
        assert_problem(app.me(&s.bff).await, 401, "UNAUTHENTICATED").await;
        assert_problem(app.refresh(&s.refresh).await, 401, "UNAUTHENTICATED").await;
    }
    assert_eq!(app.me(&bobs.bff).await.status(), StatusCode::OK);
    let bad_scope = app.logout(&bobs.bff, &json!({"scope": "everything"})).await;
    assert_problem(bad_scope, 400, "VALIDATION_ERROR").await;
}

on_both_stores!(login_and_refresh_responses_are_not_cached);
async fn login_and_refresh_responses_are_not_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;

    let login = app.login(&alice.username, PASSWORD).await;
    assert_eq!(login.headers()["cache-control"], "no-store", "login");
    let t = tokens(login).await;
    let refresh = app.refresh(&t.refresh).await;
    assert_eq!(refresh.headers()["cache-control"], "no-store", "refresh");
    tokens(refresh).await;
}

on_both_stores!(a_login_completed_past_the_session_limit_ends_the_customers_oldest);
async fn a_login_completed_past_the_session_limit_ends_the_customers_oldest(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sessions.max_sessions = std::num::NonZeroU32::new(2).unwrap();
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.login_ok(&alice).await);
        app.clock.advance(Duration::seconds(1));
    }
    assert_problem(app.me(&sessions[0].bff).await, 401, "UNAUTHENTICATED").await;
    for kept in &sessions[1..] {
        assert_eq!(app.me(&kept.bff).await.status(), StatusCode::OK);
    }
    let ended = app.audit_of_kind("session.revoked").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "session_limit");
    assert_eq!(ended[0]["sessionId"], sessions[0].session_id.as_str());
    assert_eq!(ended[0]["customerId"], alice.id);

    // The attack: whoever knows bob's password, but not his second factor, logs in again and
    // again to sign him out. Pending sessions end nothing.
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let phone = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::seconds(1));
    let laptop = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::seconds(1));
    for _ in 0..3 {
        app.login_ok(&bob).await;
    }
    for live in [&phone, &laptop] {
        assert_eq!(app.me(&live.bff).await.status(), StatusCode::OK);
    }
    // A login completed by its code counts: the oldest of his goes.
    let tablet = app.login_with_2fa(&bob).await;
    assert_problem(app.me(&phone.bff).await, 401, "UNAUTHENTICATED").await;
    for live in [&laptop, &tablet] {
        assert_eq!(app.me(&live.bff).await.status(), StatusCode::OK);
    }
}

on_both_stores!(
    reads_that_arrive_together_each_get_their_own_session,
    flavor = "multi_thread",
    worker_threads = 2
);
/// On PostgreSQL the session lookups of requests that arrive together are read in one
/// statement. A customer must get their own details and sessions, never a neighbour's answered
/// in the same statement, and an unknown token nothing: many customers' reads of both kinds of
/// lookup at once, with bad tokens among them, over a single connection so that they share
/// statements.
async fn reads_that_arrive_together_each_get_their_own_session(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.store.max_connections = std::num::NonZeroU32::MIN;
    })
    .await;
    let sessions = |bff: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/v1/sessions"))
                .bearer_auth(bff)
                .send()
                .await
                .unwrap()
        }
    };
    let mut signed_in = Vec::new();
    for i in 0..8 {
        let customer = app.create_customer(&format!("c{i}"), None).await;
        let bff = app.login_ok(&customer).await.bff;
        let listed: Value = sessions(bff.clone()).await.json().await.unwrap();
        let session_id = listed["sessions"][0]["id"].as_str().unwrap().to_owned();
        signed_in.push((customer.username, session_id, bff));
    }
    let unknown = "A".repeat(43);
    let calls = (0..6).flat_map(|_| {
        signed_in
            .iter()
            .map(|(username, session_id, bff)| (Some((username, session_id)), bff))
            .chain([(None, &unknown)])
            .collect::<Vec<_>>()
    });
    let (app, sessions) = (&app, &sessions);
    let answers = join_all(calls.map(|(owner, bff)| async move {
        (owner, app.me(bff).await, sessions(bff.clone()).await)
    }))
    .await;
    assert_eq!(answers.len(), 54);
    for (owner, me, listed) in answers {
        let Some((username, session_id)) = owner else {
            assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(listed.status(), StatusCode::UNAUTHORIZED);
            continue;
        };
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        assert_eq!(&me["username"], username.as_str());
        assert_eq!(listed.status(), StatusCode::OK);
        let listed: Value = listed.json().await.unwrap();
        assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
        assert_eq!(&listed["sessions"][0]["id"], session_id.as_str());
    }
}
