use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{PASSWORD, assert_problem, spawn_app, spawn_app_with, tokens};

store_tests! {
    #[tokio::test]
    async fn customers_me_needs_a_valid_bearer_token() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn the_full_view_carries_profile_kyc_two_factor_and_login_history() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn a_session_expires_after_its_lifetime() {
        let app = spawn_app_with(|s| s.sessions.idle_timeout = None).await;
        let alice = app.create_customer("alice", None).await;
        let t = app.login_ok(&alice).await;
        app.clock.advance(Duration::minutes(59));
        assert_eq!(app.me(&t.bff).await.status(), StatusCode::OK);
        app.clock.advance(Duration::minutes(1));
        assert_problem(app.me(&t.bff).await, 401, "SESSION_EXPIRED").await;
    }

    #[tokio::test]
    async fn an_idle_session_expires_but_activity_keeps_it_alive() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn refresh_rotates_both_tokens_and_extends_the_session() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn a_reused_refresh_token_revokes_the_whole_session() {
        let app = spawn_app().await;
        let alice = app.create_customer("alice", None).await;
        let t = app.login_ok(&alice).await;
        let renewed = tokens(app.refresh(&t.refresh).await).await;

        assert_problem(app.refresh(&t.refresh).await, 401, "UNAUTHENTICATED").await;

        assert_problem(app.me(&renewed.bff).await, 401, "UNAUTHENTICATED").await;
        assert_problem(app.refresh(&renewed.refresh).await, 401, "UNAUTHENTICATED").await;
        let reuse = app.audit_of_kind("session.refresh_reused").await;
        assert_eq!(reuse[0]["sessionId"], t.session_id.as_str());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_refreshes_with_one_token_leave_at_most_one_winner() {
        let app = spawn_app().await;
        let alice = app.create_customer("alice", None).await;
        let t = app.login_ok(&alice).await;

        let responses = futures::future::join_all((0..10).map(|_| app.refresh(&t.refresh))).await;

        let ok = responses
            .iter()
            .filter(|r| r.status() == StatusCode::OK)
            .count();
        assert!(ok <= 1, "{ok} refreshes succeeded");
        assert_eq!(
            responses
                .iter()
                .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
                .count(),
            10 - ok
        );
    }

    #[tokio::test]
    async fn refresh_never_reaches_past_the_absolute_lifetime_and_is_not_activity() {
        let app = spawn_app_with(|s| s.sessions.idle_timeout = None).await;
        let alice = app.create_customer("alice", None).await;
        let mut t = app.login_ok(&alice).await;
        for _ in 0..11 {
            app.clock.advance(Duration::minutes(61));
            t = tokens(app.refresh(&t.refresh).await).await;
        }
        // 11h11m in: the last renewal is capped at the 12 h mark.
        let expires_in = t.body["expiresIn"].as_i64().unwrap();
        assert!(expires_in <= 49 * 60, "{expires_in}");
        app.clock.advance(Duration::minutes(50));
        assert_problem(app.refresh(&t.refresh).await, 401, "SESSION_EXPIRED").await;
    }

    #[tokio::test]
    async fn a_refresh_alone_does_not_keep_a_session_from_idling_out() {
        let app = spawn_app().await;
        let alice = app.create_customer("alice", None).await;
        let t = app.login_ok(&alice).await;
        app.clock.advance(Duration::minutes(10));
        let renewed = tokens(app.refresh(&t.refresh).await).await;
        app.clock.advance(Duration::minutes(6));
        assert_problem(app.me(&renewed.bff).await, 401, "SESSION_EXPIRED").await;
    }

    #[tokio::test]
    async fn bad_refresh_tokens_are_unauthenticated() {
        let app = spawn_app().await;
        assert_problem(app.refresh("garbage").await, 401, "UNAUTHENTICATED").await;
        assert_problem(app.refresh(&"B".repeat(43)).await, 401, "UNAUTHENTICATED").await;
        let missing = app
            .post_json("/api/v1/auth/token/refresh", &json!({}), None)
            .await;
        assert_problem(missing, 400, "VALIDATION_ERROR").await;
    }

    #[tokio::test]
    async fn logout_ends_the_session_at_once() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn logout_without_a_body_works_too() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn logout_with_scope_all_ends_every_session_of_the_customer() {
        let app = spawn_app().await;
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

    #[tokio::test]
    async fn login_and_refresh_responses_are_not_cached() {
        let app = spawn_app().await;
        let alice = app.create_customer("alice", None).await;
        let t = app.login_ok(&alice).await;
        let response = app.refresh(&t.refresh).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let _ = app.login(&alice.username, PASSWORD).await;
    }
}
