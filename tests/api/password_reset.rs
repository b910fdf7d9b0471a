//! The forgotten password: a code mailed to the profile's address, a session that may only
//! set the new password (after a second factor other than that mailbox), and every session
//! ended once it is set.

use finhub_auth::clock::Clock as _;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::domain::customers::Username;
use reqwest::Response;
use serde_json::{Value, json};
use time::Duration;

use crate::factors::profile_destinations;
use crate::helpers::{
    Backend, Customer, PASSWORD, TestApp, Tokens, assert_problem, spawn_app_with, tokens,
};

const RESET: &str = "/api/v1/auth/password-reset";
const VERIFY: &str = "/api/v1/auth/password-reset/verify";
const COMPLETE: &str = "/api/v1/auth/password-reset/complete";
const NEW_PASSWORD: &str = "Quiet-lantern-harbour-42";

async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-reset-tests".into());
    })
    .await
}

impl TestApp {
    /// Asks for a reset of `username` and waits for the work left running after the answer.
    pub(crate) async fn request_reset(&self, username: &str) -> Value {
        let response = self
            .post_json(RESET, &json!({"username": username}), None)
            .await;
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body = response.json().await.unwrap();
        self.services.auth.settle().await;
        body
    }

    /// The code mailed for `reset`, if one was.
    pub(crate) async fn reset_code(&self, reset: &Value) -> Option<String> {
        self.deliver_all().await;
        self.outbox_lines()
            .into_iter()
            .find(|l| l["kind"] == "password_reset" && l["resetId"] == reset["resetId"])
            .map(|l| l["code"].as_str().unwrap().to_owned())
    }

    pub(crate) async fn verify_reset(&self, reset: &Value, code: &str) -> Response {
        self.post_json(
            VERIFY,
            &json!({"resetId": reset["resetId"], "code": code}),
            None,
        )
        .await
    }

    /// A reset of `customer` whose code was right: the PASSWORD_RESET session's tokens.
    pub(crate) async fn reset_session(&self, customer: &Customer) -> Tokens {
        let reset = self.request_reset(&customer.username).await;
        let code = self.reset_code(&reset).await.expect("a reset code");
        tokens(self.verify_reset(&reset, &code).await).await
    }

    pub(crate) async fn complete_reset(&self, bearer: &str, password: &str) -> Response {
        self.post_json(COMPLETE, &json!({"newPassword": password}), Some(bearer))
            .await
    }
}

fn expires_at(reset: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        reset["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    if code == "000000" { "000001" } else { "000000" }.to_owned()
}

on_both_stores!(a_forgotten_password_is_reset_by_a_mailed_code_and_every_session_ends);
async fn a_forgotten_password_is_reset_by_a_mailed_code_and_every_session_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("alice", None).await;
    let signed_in = app.login_ok(&customer).await;

    let reset = app.request_reset(&customer.username).await;
    let valid_for = expires_at(&reset) - app.clock.now();
    assert!(
        valid_for <= Duration::minutes(15) && valid_for > Duration::minutes(14),
        "{valid_for}"
    );
    // The code goes to the profile's e-mail address, and only there.
    app.deliver_all().await;
    let line = app
        .outbox_lines()
        .into_iter()
        .find(|l| l["kind"] == "password_reset")
        .expect("a reset code");
    assert_eq!(line["channel"], "EMAIL");
    assert_eq!(line["to"], customer.username.as_str());
    assert_eq!(line["resetId"], reset["resetId"]);
    let code = line["code"].as_str().unwrap().to_owned();

    let response = app.verify_reset(&reset, &code).await;
    assert_eq!(response.status(), 200);
    let session = tokens(response).await;
    assert_eq!(session.body["twoFactorRequired"], false);
    // The code is spent.
    let again = app.verify_reset(&reset, &code).await;
    assert_problem(again, 400, "2FA_CODE_EXPIRED").await;

    // The session may read the restricted view and nothing else.
    let me: Value = app.me(&session.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "PASSWORD_RESET");
    assert!(me.get("email").is_none(), "{me}");
    let sessions = app
        .client
        .get(app.url("/api/v1/sessions"))
        .bearer_auth(&session.bff)
        .send()
        .await
        .unwrap();
    assert_problem(sessions, 403, "PASSWORD_RESET_IN_PROGRESS").await;
    let refreshed = app.refresh(&session.refresh).await;
    assert_problem(refreshed, 403, "PASSWORD_RESET_IN_PROGRESS").await;
    let change = app
        .post_json(
            "/api/v1/customers/me/password",
            &json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
            Some(&session.bff),
        )
        .await;
    assert_problem(change, 403, "PASSWORD_RESET_IN_PROGRESS").await;

    // The policy applies, the current password included.
    let weak = app.complete_reset(&session.bff, "short").await;
    let body = assert_problem(weak, 400, "PASSWORD_REJECTED").await;
    assert!(
        body["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("TOO_SHORT"))
    );
    let reused = app.complete_reset(&session.bff, PASSWORD).await;
    let body = assert_problem(reused, 400, "PASSWORD_REJECTED").await;
    assert_eq!(body["reasons"], json!(["REUSED"]));

    let done = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_eq!(done.status(), 204);
    // Every session ended, this one too; the customer logs in anew with the new password.
    assert_eq!(app.me(&signed_in.bff).await.status(), 401);
    assert_eq!(app.me(&session.bff).await.status(), 401);
    assert_eq!(app.login(&customer.username, PASSWORD).await.status(), 401);
    assert_eq!(
        app.login(&customer.username, NEW_PASSWORD).await.status(),
        200
    );
    // Told at every destination held, and audited without a secret.
    assert_eq!(
        app.told("password.reset").await,
        profile_destinations(&customer)
    );
    let audit = serde_json::to_string(&app.audit().await).unwrap();
    for secret in [code.as_str(), NEW_PASSWORD, &session.bff] {
        assert!(!audit.contains(secret), "a secret in the audit trail");
    }
    for kind in [
        "password_reset.requested",
        "password_reset.verified",
        "password.reset",
    ] {
        assert_eq!(app.audit_of_kind(kind).await.len(), 1, "{kind}");
    }
}

on_both_stores!(an_unknown_username_is_answered_and_counted_as_a_known_one);
async fn an_unknown_username_is_answered_and_counted_as_a_known_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("bob", None).await;
    let known = app.request_reset(&customer.username).await;
    let unknown = app.request_reset("nobody@example.com").await;
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&known), keys(&unknown));
    let apart = expires_at(&unknown) - expires_at(&known);
    assert!(
        apart >= Duration::ZERO && apart < Duration::seconds(5),
        "{apart}"
    );
    assert!(app.reset_code(&unknown).await.is_none(), "nothing is sent");
    let code = app.reset_code(&known).await.unwrap();

    // Wrong codes count down alike, then both are used up alike.
    for remaining in (0..5).rev() {
        for reset in [&known, &unknown] {
            let wrong = app.verify_reset(reset, &other_than(&code)).await;
            let body = assert_problem(wrong, 400, "INVALID_2FA_CODE").await;
            assert_eq!(body["attemptsRemaining"], remaining);
        }
    }
    for reset in [&known, &unknown] {
        let spent = app.verify_reset(reset, &code).await;
        assert_problem(spent, 429, "TOO_MANY_2FA_ATTEMPTS").await;
    }
    // A resetId that was never issued.
    let never = app
        .verify_reset(&json!({"resetId": "no-such-reset"}), &code)
        .await;
    let body = assert_problem(never, 400, "INVALID_2FA_CODE").await;
    assert_eq!(body["attemptsRemaining"], 0);
    // Malformed input is a validation error naming the field.
    let malformed = app
        .post_json(
            VERIFY,
            &json!({"resetId": known["resetId"], "code": "12ab"}),
            None,
        )
        .await;
    assert_problem(malformed, 400, "VALIDATION_ERROR").await;
    let empty = app.post_json(RESET, &json!({"username": " "}), None).await;
    assert_problem(empty, 400, "VALIDATION_ERROR").await;
}

on_both_stores!(wrong_reset_codes_lock_and_a_completed_reset_clears_a_lock_from_failures);
async fn wrong_reset_codes_lock_and_a_completed_reset_clears_a_lock_from_failures(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("carol", None).await;
    // Five wrong reset codes lock the username, as five wrong passwords would, and say so.
    let reset = app.request_reset(&customer.username).await;
    let code = app.reset_code(&reset).await.unwrap();
    for _ in 0..5 {
        let wrong = app.verify_reset(&reset, &other_than(&code)).await;
        assert_problem(wrong, 400, "INVALID_2FA_CODE").await;
    }
    let locked = app.login(&customer.username, PASSWORD).await;
    assert_problem(locked, 423, "ACCOUNT_LOCKED").await;
    assert_eq!(app.told("account.locked").await.len(), 2);

    // The lock notice says a reset clears it: a new reset goes through despite it.
    let session = app.reset_session(&customer).await;
    let done = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_eq!(done.status(), 204);
    assert_eq!(
        app.login(&customer.username, NEW_PASSWORD).await.status(),
        200,
        "the lock from failures was cleared"
    );
}

on_both_stores!(an_operators_lock_stops_a_reset);
async fn an_operators_lock_stops_a_reset(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("dave", None).await;
    let session = app.reset_session(&customer).await;
    let username = Username::parse(&customer.username).unwrap();
    app.services.accounts.lock(&username).await.unwrap();
    // The reset's session ended with the lock; a new request sends no code.
    let done = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_problem(done, 401, "UNAUTHENTICATED").await;
    let reset = app.request_reset(&customer.username).await;
    assert!(app.reset_code(&reset).await.is_none());
    let refused = app.verify_reset(&reset, "123456").await;
    let body = assert_problem(refused, 423, "ACCOUNT_LOCKED").await;
    assert!(body.get("lockedUntil").is_none());
}

on_both_stores!(the_reset_mailbox_never_counts_as_the_second_factor);
async fn the_reset_mailbox_never_counts_as_the_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app
        .create_customer("erin", Some(TwoFactorMethod::Email))
        .await;
    let session = app.reset_session(&customer).await;
    assert_eq!(session.body["twoFactorRequired"], true);
    // Nothing but the mailbox: this customer cannot reset alone.
    let default = app.initiate(&session.bff).await;
    assert_problem(default, 409, "FACTOR_REQUIRED").await;
    let by_email = app
        .post_json(
            "/api/v1/auth/2fa/initiate",
            &json!({"method": "EMAIL"}),
            Some(&session.bff),
        )
        .await;
    let body = assert_problem(by_email, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["errors"][0]["field"], "method");
    let done = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_problem(done, 403, "TWO_FACTOR_REQUIRED").await;
    assert_eq!(app.login(&customer.username, PASSWORD).await.status(), 200);
}

on_both_stores!(a_customer_with_an_app_proves_it_before_the_reset_completes);
async fn a_customer_with_an_app_proves_it_before_the_reset_completes(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app
        .create_customer("frank", Some(TwoFactorMethod::Email))
        .await;
    let active = app.login_with_2fa(&customer).await;
    let secret = app.add_app(&active.bff).await;

    let session = app.reset_session(&customer).await;
    assert_eq!(session.body["twoFactorRequired"], true);
    // The default factor is the mailbox: the app is asked for instead, and may be named alone.
    let challenge: Value = app.initiate(&session.bff).await.json().await.unwrap();
    assert_eq!(challenge["method"], "TOTP");
    let factors: Value = app
        .client
        .get(app.url("/api/v1/customers/me/factors"))
        .bearer_auth(&active.bff)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app_factor = factors["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["method"] == "TOTP")
        .unwrap()["id"]
        .clone();
    let named = app
        .post_json(
            "/api/v1/auth/2fa/initiate",
            &json!({"factorId": app_factor}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(named.status(), 202);
    let challenge: Value = named.json().await.unwrap();
    assert_eq!(challenge["method"], "TOTP");
    let wrong = app
        .verify(
            &session.bff,
            challenge["challengeId"].as_str().unwrap(),
            &other_than(&app.next_totp(&secret)),
        )
        .await;
    assert_problem(wrong, 400, "INVALID_2FA_CODE").await;
    let early = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_problem(early, 403, "TWO_FACTOR_REQUIRED").await;
    let proved = app
        .verify(
            &session.bff,
            challenge["challengeId"].as_str().unwrap(),
            &app.next_totp(&secret),
        )
        .await;
    assert_eq!(proved.status(), 200);
    let proved = tokens(proved).await;
    assert_eq!(proved.body["twoFactorRequired"], false);
    // Still a reset's session, with new tokens; the old ones stopped working.
    assert_eq!(app.me(&session.bff).await.status(), 401);
    let me: Value = app.me(&proved.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "PASSWORD_RESET");
    let again = app.initiate(&proved.bff).await;
    assert_problem(again, 409, "TWO_FACTOR_NOT_PENDING").await;

    let done = app.complete_reset(&proved.bff, NEW_PASSWORD).await;
    assert_eq!(done.status(), 204);
    assert_eq!(app.me(&active.bff).await.status(), 401);
}

on_both_stores!(a_reset_code_expires_and_a_newer_request_supersedes_it);
async fn a_reset_code_expires_and_a_newer_request_supersedes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("gina", None).await;
    let first = app.request_reset(&customer.username).await;
    let first_code = app.reset_code(&first).await.unwrap();
    let second = app.request_reset(&customer.username).await;
    let second_code = app.reset_code(&second).await.unwrap();
    let superseded = app.verify_reset(&first, &first_code).await;
    assert_problem(superseded, 400, "2FA_CODE_EXPIRED").await;
    app.clock.advance(Duration::minutes(16));
    let expired = app.verify_reset(&second, &second_code).await;
    assert_problem(expired, 400, "2FA_CODE_EXPIRED").await;
    // An ACTIVE session has no reset to complete.
    let active = app.login_ok(&customer).await;
    let done = app.complete_reset(&active.bff, NEW_PASSWORD).await;
    assert_problem(done, 404, "NOT_FOUND").await;
}

on_both_stores!(a_flood_of_reset_requests_sends_at_most_the_customers_budget);
async fn a_flood_of_reset_requests_sends_at_most_the_customers_budget(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-reset-tests".into());
        s.two_factor.customer_sends = Some("3/h".parse().unwrap());
    })
    .await;
    let customer = app.create_customer("hank", None).await;
    // Each delivered before the next supersedes it (a superseded reset's code is not sent).
    for _ in 0..10 {
        app.request_reset(&customer.username).await;
        app.deliver_all().await;
    }
    let sent = app
        .outbox_lines()
        .into_iter()
        .filter(|l| l["kind"] == "password_reset")
        .count();
    assert_eq!(sent, 3);
    let requests = app.audit_of_kind("password_reset.requested").await;
    assert_eq!(requests.len(), 10);
    assert_eq!(
        requests
            .iter()
            .filter(|e| e["reason"] == "customer_budget_spent")
            .count(),
        7
    );
}

on_both_stores!(a_usernames_resets_take_ten_wrong_codes_a_day_whether_or_not_it_exists);
async fn a_usernames_resets_take_ten_wrong_codes_a_day_whether_or_not_it_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = app.create_customer("ivan", None).await;
    // The attack: without the mailbox, ask again and again and guess at every new code. A lock
    // from failures does not stop a reset, so the day's cap is what bounds the guessing.
    for username in [customer.username.as_str(), "nobody@example.com"] {
        for _ in 0..2 {
            let reset = app.request_reset(username).await;
            for _ in 0..5 {
                let wrong = app.verify_reset(&reset, "000000").await;
                assert_eq!(wrong.status(), 400);
            }
        }
        let reset = app.request_reset(username).await;
        let code = app
            .reset_code(&reset)
            .await
            .unwrap_or_else(|| "123456".into());
        let capped = app.verify_reset(&reset, &code).await;
        assert_problem(capped, 429, "TOO_MANY_2FA_ATTEMPTS").await;
    }
    // A day later the customer's own reset goes through.
    app.clock.advance(Duration::hours(25));
    let session = app.reset_session(&customer).await;
    assert_eq!(session.body["twoFactorRequired"], false);
}
