//! The customer's own security view: sessions, devices, sign-in history.

use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, Tokens, assert_problem, spawn_app, spawn_app_with, tokens,
};

impl TestApp {
    async fn call(&self, method: Method, path: &str, bearer: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request")
    }

    async fn json_of(&self, path: &str, bearer: &str) -> Value {
        let response = self.call(Method::GET, path, bearer).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
        response.json().await.expect("json")
    }

    async fn login_from(&self, username: &str, fingerprint: &str, name: Option<&str>) -> Tokens {
        let response = self
            .client
            .post(self.url("/api/v1/auth/token"))
            .header("user-agent", "SecurityTest/1.0")
            .json(&json!({"username": username, "password": PASSWORD,
                          "device": {"fingerprint": fingerprint, "name": name}}))
            .send()
            .await
            .expect("request");
        tokens(response).await
    }
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

on_both_stores!(sessions_are_listed_newest_first_with_the_current_one_marked);
async fn sessions_are_listed_newest_first_with_the_current_one_marked(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", None).await;
    let first = app
        .login_from(&alice.username, "laptop-1", Some("Laptop"))
        .await;
    app.clock.advance(time::Duration::seconds(5));
    let second = app.login_ok(&alice).await;
    let ended = app.login_ok(&alice).await;
    app.logout(&ended.bff, &json!({})).await;
    app.login_ok(&bob).await;

    let list = app.json_of("/api/v1/sessions", &second.bff).await;
    let ids = ids(&list, "sessions");
    assert_eq!(ids, [second.session_id.clone(), first.session_id.clone()]);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(sessions[1]["state"], "ACTIVE");
    assert_eq!(sessions[1]["ip"], "127.0.0.1");
    assert_eq!(sessions[1]["country"], Value::Null);
    assert_eq!(sessions[1]["device"]["name"], "Laptop");
    assert_eq!(sessions[0]["device"], Value::Null);
    assert_eq!(sessions[1]["userAgent"], "SecurityTest/1.0");
    for field in ["createdAt", "lastSeenAt", "expiresAt"] {
        assert!(
            sessions[0][field].as_str().unwrap().ends_with('Z'),
            "{field}"
        );
    }
    let body = list.to_string();
    assert!(
        !body.contains("laptop-1"),
        "no fingerprint is ever returned"
    );
}

on_both_stores!(a_login_pending_or_complete_is_listed_and_a_reset_in_progress_is_not);
async fn a_login_pending_or_complete_is_listed_and_a_reset_in_progress_is_not(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app
        .create_customer("alice", Some(TwoFactorMethod::Sms))
        .await;
    let pending = app.login_ok(&alice).await;
    let resetting = app.reset_session(&alice).await;
    let active = app.login_with_2fa(&alice).await;

    let list = app.json_of("/api/v1/sessions", &active.bff).await;
    assert_eq!(
        ids(&list, "sessions"),
        [active.session_id.clone(), pending.session_id.clone()]
    );
    assert_eq!(list["sessions"][1]["state"], "TWO_FACTOR_PENDING");
    // Not listed, yet live until it is spent, expires, or every session ends.
    let me: Value = app.me(&resetting.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "PASSWORD_RESET", "{me}");
}

on_both_stores!(ending_a_session_works_at_once_and_only_on_the_customers_own);
async fn ending_a_session_works_at_once_and_only_on_the_customers_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", None).await;
    let phone = app.login_ok(&alice).await;
    let laptop = app.login_ok(&alice).await;
    let bobs = app.login_ok(&bob).await;

    let path = format!("/api/v1/sessions/{}", phone.session_id);
    assert_eq!(
        app.call(Method::DELETE, &path, &laptop.bff).await.status(),
        204
    );
    assert_problem(app.me(&phone.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.refresh(&phone.refresh).await, 401, "UNAUTHENTICATED").await;
    // Already ended, someone else's, unknown, absurd: 404, and nothing ends.
    for (path, bearer) in [
        (path.clone(), &laptop.bff),
        (format!("/api/v1/sessions/{}", bobs.session_id), &laptop.bff),
        ("/api/v1/sessions/nope".to_owned(), &laptop.bff),
        (format!("/api/v1/sessions/{}", "x".repeat(500)), &laptop.bff),
    ] {
        assert_problem(
            app.call(Method::DELETE, &path, bearer).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    assert_eq!(app.me(&bobs.bff).await.status(), 200);
    let revoked = app.audit_of_kind("session.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["sessionId"], phone.session_id.as_str());
    assert_eq!(revoked[0]["details"]["by"], "customer");

    // Ending the current session is a logout.
    let own = format!("/api/v1/sessions/{}", laptop.session_id);
    assert_eq!(
        app.call(Method::DELETE, &own, &laptop.bff).await.status(),
        204
    );
    assert_problem(app.me(&laptop.bff).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.audit_of_kind("session.logout").await.len(), 1);
}

on_both_stores!(a_pending_session_sees_none_of_it);
async fn a_pending_session_sees_none_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let carol = app
        .create_customer("carol", Some(TwoFactorMethod::Sms))
        .await;
    let pending = app.login_ok(&carol).await;
    for (method, path) in [
        (Method::GET, "/api/v1/sessions".to_owned()),
        (
            Method::DELETE,
            format!("/api/v1/sessions/{}", pending.session_id),
        ),
        (Method::GET, "/api/v1/customers/me/devices".to_owned()),
        (Method::DELETE, "/api/v1/customers/me/devices/x".to_owned()),
        (
            Method::GET,
            "/api/v1/customers/me/security-events".to_owned(),
        ),
    ] {
        let response = app.call(method, &path, &pending.bff).await;
        assert_problem(response, 403, "TWO_FACTOR_REQUIRED").await;
    }
    assert_problem(
        app.call(Method::GET, "/api/v1/sessions", "not-a-token")
            .await,
        401,
        "UNAUTHENTICATED",
    )
    .await;
}

on_both_stores!(idle_and_expired_sessions_are_not_live);
async fn idle_and_expired_sessions_are_not_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let idle = app.login_ok(&alice).await;
    app.clock.advance(time::Duration::minutes(14));
    let recent = app.login_ok(&alice).await;
    app.clock.advance(time::Duration::minutes(2));
    let list = app.json_of("/api/v1/sessions", &recent.bff).await;
    assert_eq!(
        ids(&list, "sessions"),
        std::slice::from_ref(&recent.session_id)
    );
    let path = format!("/api/v1/sessions/{}", idle.session_id);
    assert_problem(
        app.call(Method::DELETE, &path, &recent.bff).await,
        404,
        "NOT_FOUND",
    )
    .await;
}

on_both_stores!(devices_are_recorded_at_right_passwords_and_can_be_forgotten);
async fn devices_are_recorded_at_right_passwords_and_can_be_forgotten(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", None).await;
    // A wrong password records no device.
    let wrong = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"username": alice.username, "password": "wrong-password",
                    "device": {"fingerprint": "stolen-laptop", "name": "Thief"}}),
            None,
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let laptop = app
        .login_from(&alice.username, "laptop-1", Some("Laptop"))
        .await;
    app.clock.advance(time::Duration::seconds(10));
    let phone = app
        .login_from(&alice.username, "phone-1", Some("Phone"))
        .await;
    app.clock.advance(time::Duration::seconds(10));
    // The same device again, renamed; and one login with no device at all.
    let laptop_again = app
        .login_from(&alice.username, "laptop-1", Some("Work laptop"))
        .await;
    app.login_ok(&alice).await;
    let bobs = app.login_from(&bob.username, "laptop-1", None).await;

    let list = app
        .json_of("/api/v1/customers/me/devices", &phone.bff)
        .await;
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{list}");
    assert_eq!(devices[0]["name"], "Work laptop");
    assert_eq!(devices[0]["activeSessions"], 2);
    assert_eq!(devices[1]["name"], "Phone");
    assert_eq!(devices[1]["activeSessions"], 1);
    assert_eq!(devices[0]["lastIp"], "127.0.0.1");
    assert_eq!(devices[0]["lastCountry"], Value::Null);
    assert_ne!(devices[0]["firstSeenAt"], devices[0]["lastSeenAt"]);
    assert!(!list.to_string().contains("laptop-1"));

    let laptop_id = devices[0]["id"].as_str().unwrap().to_owned();
    let bobs_devices = app.json_of("/api/v1/customers/me/devices", &bobs.bff).await;
    let bobs_laptop = bobs_devices["devices"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(bobs_laptop, laptop_id, "devices are per customer");
    // Someone else's device, or none: 404.
    for id in [bobs_laptop.as_str(), "unknown"] {
        let path = format!("/api/v1/customers/me/devices/{id}");
        assert_problem(
            app.call(Method::DELETE, &path, &phone.bff).await,
            404,
            "NOT_FOUND",
        )
        .await;
    }
    let path = format!("/api/v1/customers/me/devices/{laptop_id}");
    assert_eq!(
        app.call(Method::DELETE, &path, &phone.bff).await.status(),
        204
    );
    // Its sessions end at once; the others stay.
    assert_problem(app.me(&laptop.bff).await, 401, "UNAUTHENTICATED").await;
    assert_problem(app.me(&laptop_again.bff).await, 401, "UNAUTHENTICATED").await;
    assert_eq!(app.me(&phone.bff).await.status(), 200);
    assert_eq!(app.me(&bobs.bff).await.status(), 200);
    assert_problem(
        app.call(Method::DELETE, &path, &phone.bff).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let list = app
        .json_of("/api/v1/customers/me/devices", &phone.bff)
        .await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    let forgotten = app.audit_of_kind("device.forgotten").await;
    assert_eq!(forgotten.len(), 1);
    assert_eq!(forgotten[0]["details"]["deviceId"], laptop_id.as_str());

    // Its next login records it as new again.
    let back = app.login_from(&alice.username, "laptop-1", None).await;
    let history = app
        .json_of("/api/v1/customers/me/security-events?limit=1", &back.bff)
        .await;
    assert_eq!(history["events"][0]["flags"], json!(["NEW_DEVICE"]));
}

on_both_stores!(the_audit_trail_never_holds_a_fingerprint);
async fn the_audit_trail_never_holds_a_fingerprint(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    app.login_from(&alice.username, "secret-fingerprint-123", Some("Laptop"))
        .await;
    let audit = serde_json::to_string(&app.audit().await).unwrap();
    assert!(!audit.contains("secret-fingerprint-123"));
    assert!(audit.contains("Laptop"));
}

on_both_stores!(a_device_is_new_until_a_login_on_it_completes_and_announced_once);
async fn a_device_is_new_until_a_login_on_it_completes_and_announced_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let carol = app
        .create_customer("carol", Some(TwoFactorMethod::Sms))
        .await;
    // A first completed login, with no device named: nothing to compare with yet.
    let first = app
        .login_from(&carol.username, "laptop", Some("Laptop"))
        .await;
    let challenge = app.initiate_ok(&first.bff).await;
    tokens(
        app.verify(&first.bff, &challenge, &app.latest_code(&carol).await)
            .await,
    )
    .await;
    // The password alone on a tablet, twice: recorded, still new.
    app.login_from(&carol.username, "tablet", Some("Tablet"))
        .await;
    let pending = app
        .login_from(&carol.username, "tablet", Some("Tablet"))
        .await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let active = tokens(
        app.verify(&pending.bff, &challenge, &app.latest_code(&carol).await)
            .await,
    )
    .await;
    // Completed once: known from now on.
    app.login_from(&carol.username, "tablet", Some("Tablet"))
        .await;
    let flags: Vec<Value> = app
        .audit_of_kind("login.succeeded")
        .await
        .iter()
        .map(|e| e["details"]["flags"].clone())
        .collect();
    assert_eq!(
        flags,
        [
            json!([]),
            json!(["NEW_DEVICE"]),
            json!(["NEW_DEVICE"]),
            json!([])
        ]
    );
    let devices = app
        .json_of("/api/v1/customers/me/devices", &active.bff)
        .await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 2);
    // The customer is told once, by e-mail, not once per login.
    let outbox = std::fs::read_to_string(app.outbox_path()).unwrap();
    let notices: Vec<Value> = outbox
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "security_notice")
        .collect();
    assert_eq!(notices.len(), 1, "{outbox}");
    assert_eq!(notices[0]["to"], carol.username.as_str());
    assert_eq!(notices[0]["channel"], "EMAIL");
    assert_eq!(notices[0]["flags"], json!(["NEW_DEVICE"]));
    let text = notices[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("New sign-in to your FinHub account from"),
        "{text}"
    );
    assert!(
        !text.contains("Tablet"),
        "the device's own name never reaches a notice: {text}"
    );
    assert!(notices[0].get("code").is_none());
}

on_both_stores!(security_events_page_through_the_customers_own_history);
async fn security_events_page_through_the_customers_own_history(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.lockout.threshold = 100).await;
    let alice = app.create_customer("alice", None).await;
    let bob = app.create_customer("bob", None).await;
    assert_eq!(app.login(&alice.username, "wrong-one").await.status(), 401);
    let first = app
        .login_from(&alice.username, "laptop-1", Some("Laptop"))
        .await;
    app.refresh(&first.refresh).await;
    app.login_ok(&bob).await;
    assert_eq!(app.login(&bob.username, "wrong-two").await.status(), 401);
    let current = app.login_ok(&alice).await;

    let all = app
        .json_of("/api/v1/customers/me/security-events", &current.bff)
        .await;
    let kinds: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "login.succeeded",
            "session.refreshed",
            "login.succeeded",
            "login.failed"
        ],
        "{all}"
    );
    assert_eq!(all["next"], Value::Null);
    let events = all["events"].as_array().unwrap();
    assert_eq!(events[3]["outcome"], "failure");
    assert_eq!(events[3]["reason"], "invalid_credentials");
    assert_eq!(events[2]["device"]["name"], "Laptop");
    assert_eq!(
        events[2]["flags"],
        json!([]),
        "a first login has nothing to compare with"
    );
    assert_eq!(
        events[0]["flags"],
        json!(["NEW_DEVICE"]),
        "no device named, while the customer has a known one"
    );
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert_eq!(events[0]["country"], Value::Null);

    // Pages of two: no overlap, no gap, and a null `next` at the end.
    let page1 = app
        .json_of("/api/v1/customers/me/security-events?limit=2", &current.bff)
        .await;
    let next = page1["next"].as_str().unwrap().to_owned();
    let page2 = app
        .json_of(
            &format!("/api/v1/customers/me/security-events?limit=2&before={next}"),
            &current.bff,
        )
        .await;
    assert_eq!(page2["next"], Value::Null);
    let paged: Vec<Value> = [page1, page2]
        .iter()
        .flat_map(|p| p["events"].as_array().unwrap().clone())
        .collect();
    assert_eq!(&paged, events);

    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "before=xyz",
        "before=e0",
    ] {
        let path = format!("/api/v1/customers/me/security-events?{query}");
        let problem = assert_problem(
            app.call(Method::GET, &path, &current.bff).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        let field = problem["errors"][0]["field"].as_str().unwrap();
        assert!(query.starts_with(field), "{query}: {problem}");
    }
}
