//! Security notices: queued with the login they tell of, delivered by the worker with retries,
//! marked told only once sent; and worded by the server alone.

use serde_json::{Value, json};

use crate::helpers::{Backend, Customer, TestApp, assert_problem, spawn_app, tokens};

impl TestApp {
    async fn login_on(&self, customer: &Customer, device: Value) -> reqwest::Response {
        self.login_from_browser(customer, Some(device)).await
    }

    async fn pending_notices(&self, customer: &Customer) -> i64 {
        self.customer_scalar(
            "SELECT COUNT(*) FROM messages WHERE customer_id = $1 AND purpose = 'security_notice' \
             AND status = 'PENDING'",
            customer,
        )
        .await
    }

    async fn told_signals(&self, customer: &Customer) -> i64 {
        self.customer_scalar(
            "SELECT COUNT(*) FROM risk_notices WHERE customer_id = $1",
            customer,
        )
        .await
    }
}

on_both_stores!(a_notice_the_mail_path_cannot_take_is_retried_not_lost);
/// The attack: a notice used to be sent inside the login, after its "told" mark was committed;
/// a failing or dropped relay connection lost it for good, and with it the customer's only word
/// of a thief's sign-in.
async fn a_notice_the_mail_path_cannot_take_is_retried_not_lost(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_on(&alice, json!({"fingerprint": "laptop"})).await).await;
    // The outbox file cannot be written: a directory stands where it should be.
    std::fs::create_dir(app.outbox_path()).unwrap();

    tokens(app.login_on(&alice, json!({"fingerprint": "thief"})).await).await;
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.pending_notices(&alice).await, 1, "kept for a retry");
    assert_eq!(app.told_signals(&alice).await, 0, "not marked told");
    // Another login on the same new device while it waits queues nothing more.
    tokens(app.login_on(&alice, json!({"fingerprint": "thief"})).await).await;
    assert_eq!(app.pending_notices(&alice).await, 1);

    std::fs::remove_dir(app.outbox_path()).unwrap();
    app.clock.advance(time::Duration::seconds(70));
    app.services.courier.deliver_due().await.unwrap();
    let notices = app.notice_lines();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["notice"], "unusual_login");
    assert_eq!(notices[0]["flags"], json!(["NEW_DEVICE"]));
    assert_eq!(app.pending_notices(&alice).await, 0);
    assert_eq!(app.told_signals(&alice).await, 1);
    let delivered = app.audit_of_kind("notice.delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["details"]["attempts"], 2);
}

on_both_stores!(a_device_name_that_could_speak_for_finhub_is_refused_at_login);
/// The attack: whoever logs in chooses `device.name`, which used to be copied into FinHub's own
/// sign-in e-mail: "Call finhub-help.com", or text reordered by bidi controls, in FinHub's voice.
async fn a_device_name_that_could_speak_for_finhub_is_refused_at_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    for name in [
        "Call finhub-help.com now",
        "https://evil.example/reset",
        "Laptop \u{202e}moc.pleh",
        "Laptop\u{200b}",
        "Laptop\r\nReset your password",
    ] {
        let refused = app
            .login_on(&alice, json!({"fingerprint": "laptop", "name": name}))
            .await;
        let problem = assert_problem(refused, 400, "VALIDATION_ERROR").await;
        assert_eq!(problem["errors"][0]["field"], "device.name", "{name:?}");
        assert!(!problem.to_string().contains("finhub-help"), "no echo");
    }
    assert!(app.audit_of_kind("login.succeeded").await.is_empty());
}

on_both_stores!(a_notice_describes_the_device_by_what_the_server_saw);
async fn a_notice_describes_the_device_by_what_the_server_saw(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_on(&alice, json!({"fingerprint": "laptop"})).await).await;
    let named = json!({"fingerprint": "other", "name": "Alice's spare laptop"});
    tokens(app.login_on(&alice, named).await).await;
    app.services.courier.deliver_due().await.unwrap();
    let notices = app.notice_lines();
    assert_eq!(notices.len(), 1);
    let text = notices[0]["text"].as_str().unwrap();
    assert!(text.contains("Firefox on Windows"), "{text}");
    assert!(
        !text.contains("spare laptop"),
        "never the client's words: {text}"
    );
}
