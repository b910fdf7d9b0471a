use finhub_auth::domain::customer::TwoFactorMethod;
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, tokens};

store_tests! {
    #[tokio::test]
    async fn a_full_flow_leaves_a_complete_audit_trail() {
        let app = spawn_app().await;
        let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
        app.login(&bob.username, "wrong").await;
        let pending = app.login_ok(&bob).await;
        let challenge = app.initiate_ok(&pending.bff).await;
        app.verify(&pending.bff, &challenge, &app.wrong_code(&bob))
            .await;
        let active = tokens(
            app.verify(&pending.bff, &challenge, &app.latest_code(&bob))
                .await,
        )
        .await;
        let renewed = tokens(app.refresh(&active.refresh).await).await;
        app.refresh(&active.refresh).await;
        let again = app.login_with_2fa(&bob).await;
        app.logout(&again.bff, &json!({})).await;
        let _ = renewed;

        let kinds: Vec<String> = app
            .audit()
            .await
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();

        for kind in [
            "customer.created",
            "login.failed",
            "login.succeeded",
            "2fa.initiated",
            "2fa.failed",
            "2fa.verified",
            "session.refreshed",
            "session.refresh_reused",
            "session.logout",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{kind} missing from {kinds:?}"
            );
        }
        let seqs: Vec<i64> = app
            .audit()
            .await
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_audit_trail_never_holds_a_password_code_or_token() {
        let app = spawn_app().await;
        let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
        let pending = app.login_ok(&bob).await;
        let challenge = app.initiate_ok(&pending.bff).await;
        let code = app.latest_code(&bob);
        let active = tokens(app.verify(&pending.bff, &challenge, &code).await).await;
        let renewed = tokens(app.refresh(&active.refresh).await).await;

        let trail = serde_json::to_string(&app.audit().await).unwrap();

        for secret in [
            PASSWORD,
            &code,
            &pending.bff,
            &pending.refresh,
            &active.bff,
            &active.refresh,
            &renewed.bff,
            &renewed.refresh,
        ] {
            assert!(!trail.contains(secret), "a secret reached the audit trail");
        }
    }
}
