//! The customer's own second factors: authenticator apps, new phones and mailboxes confirmed by
//! a code sent to them, defaults and removal, and recovery codes.

use finhub_auth::clock::Clock as _;
use finhub_auth::domain::credentials::factor::{MAX_FACTORS, TwoFactorMethod};
use futures::future::join_all;
use hmac::{Hmac, Mac as _};
use reqwest::Response;
use serde_json::{Value, json};
use sha1::Sha1;
use time::{Duration, OffsetDateTime};

use crate::helpers::{
    Backend, Customer, PASSWORD, TestApp, assert_problem, second_instance, spawn_app_with, tokens,
};

/// An instance with an audit key, as every deployment has one: apps' secrets are sealed under
/// a key derived from it.
async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-factor-tests".into());
    })
    .await
}

const FACTORS: &str = "/api/v1/customers/me/factors";
const RECOVERY_CODES: &str = "/api/v1/customers/me/recovery-codes";

/// RFC 6238's code for `secret` (base32) at `at`, computed here apart from the service's own.
pub(crate) fn totp_at(secret: &str, at: OffsetDateTime) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("a base32 secret");
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("any key length");
    let step = u64::try_from(at.unix_timestamp() / 30).expect("after 1970");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

impl TestApp {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        bearer: &str,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    async fn factors(&self, bearer: &str) -> Value {
        let response = self.send(reqwest::Method::GET, FACTORS, None, bearer).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    async fn add_factor(&self, bearer: &str, body: Value) -> Response {
        self.post_json(FACTORS, &body, Some(bearer)).await
    }

    pub(crate) async fn add_factor_ok(&self, bearer: &str, body: Value) -> Value {
        let response = self.add_factor(bearer, body).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub(crate) async fn confirm(&self, bearer: &str, factor: &Value, code: &str) -> Response {
        let path = format!("{FACTORS}/{}/confirm", factor["id"].as_str().unwrap());
        self.post_json(&path, &json!({"code": code}), Some(bearer))
            .await
    }

    /// Adds an authenticator app and confirms it; returns its secret.
    pub(crate) async fn add_app(&self, bearer: &str) -> String {
        let added = self
            .add_factor_ok(bearer, json!({"method": "TOTP", "name": "Phone app"}))
            .await;
        let secret = added["secret"].as_str().unwrap().to_owned();
        let confirmed = self
            .confirm(bearer, &added, &totp_at(&secret, self.clock.now()))
            .await;
        assert_eq!(confirmed.status(), 200);
        secret
    }

    /// The next code of the app, a step after the last one used (each step is accepted once).
    pub(crate) fn next_totp(&self, secret: &str) -> String {
        self.clock.advance(Duration::seconds(30));
        totp_at(secret, self.clock.now())
    }

    pub(crate) async fn initiate_with(&self, bearer: &str, body: Value) -> Response {
        self.post_json("/api/v1/auth/2fa/initiate", &body, Some(bearer))
            .await
    }

    pub(crate) async fn initiate_with_ok(&self, bearer: &str, body: Value) -> Value {
        let response = self.initiate_with(bearer, body).await;
        assert_eq!(response.status(), 202);
        response.json().await.unwrap()
    }

    pub(crate) async fn recovery_codes(&self, bearer: &str) -> Vec<String> {
        let response = self
            .post_json(RECOVERY_CODES, &json!({}), Some(bearer))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    }

    /// Delivers every message due (a pass takes only what fits in its lease).
    pub(crate) async fn deliver_all(&self) {
        while self.services.courier.deliver_due().await.unwrap() > 0 {}
    }

    /// Every line of the outbox file.
    pub(crate) fn outbox_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.outbox_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The notices of `kind` delivered so far, as (channel, address).
    pub(crate) async fn told(&self, kind: &str) -> Vec<(String, String)> {
        self.deliver_all().await;
        let mut told: Vec<(String, String)> = self
            .notice_lines()
            .iter()
            .filter(|l| l["notice"] == kind)
            .map(|l| {
                (
                    l["channel"].as_str().unwrap().to_owned(),
                    l["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        told.sort();
        told
    }
}

pub(crate) fn profile_destinations(customer: &Customer) -> Vec<(String, String)> {
    vec![
        ("EMAIL".into(), customer.username.clone()),
        ("SMS".into(), "+447700900123".into()),
    ]
}

on_both_stores!(an_authenticator_app_is_added_confirmed_and_asked_for_at_login);
async fn an_authenticator_app_is_added_confirmed_and_asked_for_at_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;

    // The first factor of a customer who has none needs no step-up.
    let added = app
        .add_factor_ok(&session.bff, json!({"method": "TOTP", "name": "Phone app"}))
        .await;
    assert_eq!(added["method"], "TOTP");
    assert_eq!(added["state"], "UNCONFIRMED");
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert_eq!(
        added["otpauthUri"],
        format!(
            "otpauth://totp/FinHub:alice%40example%2Ecom?secret={secret}&issuer=FinHub&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Unconfirmed factors are not listed, and the secret is stored sealed, never in clear.
    assert_eq!(app.factors(&session.bff).await["factors"], json!([]));
    let stored: Vec<u8> = app
        .customer_scalar("SELECT secret FROM factors WHERE customer_id = $1", &alice)
        .await;
    let raw = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    assert!(!stored.windows(raw.len()).any(|w| w == raw.as_slice()));
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));

    let now = app.clock.now();
    let right = totp_at(&secret, now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = assert_problem(
        app.confirm(&session.bff, &added, wrong).await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    assert_eq!(refused["attemptsRemaining"], 4);
    let confirmed = app.confirm(&session.bff, &added, &right).await;
    assert_eq!(confirmed.status(), 200);
    let factor: Value = confirmed.json().await.unwrap();
    assert_eq!(factor["factor"]["method"], "TOTP");
    assert_eq!(factor["factor"]["name"], "Phone app");
    assert_eq!(factor["factor"]["default"], true);
    assert_eq!(factor["factor"]["destination"], Value::Null);
    let listed = app.factors(&session.bff).await;
    assert_eq!(listed["factors"].as_array().unwrap().len(), 1);
    assert_eq!(listed["recoveryCodesRemaining"], 0);
    let me: Value = app.me(&session.bff).await.json().await.unwrap();
    assert_eq!(
        me["twoFactor"],
        json!({"enabled": true, "method": "TOTP", "destination": null})
    );
    // Told where the customer could be reached before: the profile's mailbox and phone.
    assert_eq!(app.told("factor.added").await, profile_destinations(&alice));
    assert_eq!(app.audit_of_kind("factor.pending").await.len(), 1);
    assert_eq!(app.audit_of_kind("factor.added").await.len(), 1);
    assert_eq!(app.audit_of_kind("factor.confirm_failed").await.len(), 1);
    assert!(
        !app.audit()
            .await
            .iter()
            .any(|e| e.to_string().contains(&secret))
    );

    // The next login asks for the app's code: nothing is sent.
    let pending = app.login_ok(&alice).await;
    assert_eq!(pending.body["twoFactorRequired"], true);
    let challenge = app.initiate_with_ok(&pending.bff, json!({})).await;
    assert_eq!(challenge["method"], "TOTP");
    assert_eq!(challenge["destination"], Value::Null);
    assert_eq!(challenge["codeLength"], 6);
    assert_eq!(challenge["resendAvailableAt"], Value::Null);
    let id = challenge["challengeId"].as_str().unwrap();
    // The code that confirmed the app is spent: the same time step is not accepted again.
    assert_problem(
        app.verify(&pending.bff, id, &right).await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    let next = app.next_totp(&secret);
    let active = tokens(app.verify(&pending.bff, id, &next).await).await;
    assert_eq!(active.body["twoFactorRequired"], false);
    let listed = app.factors(&active.bff).await;
    assert!(listed["factors"][0]["lastUsedAt"].is_string());
}

on_both_stores!(an_app_code_used_on_one_instance_is_refused_on_another);
async fn an_app_code_used_on_one_instance_is_refused_on_another(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = second_instance(&a).await;
    let alice = a.create_customer("alice", None).await;
    let session = a.login_ok(&alice).await;
    let secret = a.add_app(&session.bff).await;

    let on_a = a.login_ok(&alice).await;
    let on_b = b.login_ok(&alice).await;
    let challenge_a = a.initiate_with_ok(&on_a.bff, json!({})).await;
    let challenge_b = b.initiate_with_ok(&on_b.bff, json!({})).await;
    let code = a.next_totp(&secret);
    let verified = a
        .verify(
            &on_a.bff,
            challenge_a["challengeId"].as_str().unwrap(),
            &code,
        )
        .await;
    assert_eq!(verified.status(), 200);
    // The attack: a code watched over the customer's shoulder, replayed within its 30 seconds
    // at another instance.
    assert_problem(
        b.verify(
            &on_b.bff,
            challenge_b["challengeId"].as_str().unwrap(),
            &code,
        )
        .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    // An older step after a newer one is refused too.
    let older = totp_at(&secret, a.clock.now() - Duration::seconds(30));
    assert_problem(
        b.verify(
            &on_b.bff,
            challenge_b["challengeId"].as_str().unwrap(),
            &older,
        )
        .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
}

on_both_stores!(a_new_phone_is_confirmed_by_a_code_sent_to_it_and_five_wrong_codes_drop_it);
async fn a_new_phone_is_confirmed_by_a_code_sent_to_it_and_five_wrong_codes_drop_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let bob = app
        .create_customer("bob", Some(TwoFactorMethod::Email))
        .await;
    let session = app.login_with_2fa(&bob).await;
    app.clock.advance(Duration::seconds(31));

    let added = app
        .add_factor_ok(
            &session.bff,
            json!({"method": "SMS", "phone": "+447700900999"}),
        )
        .await;
    assert_eq!(added["destination"], "+44********99");
    assert!(added["resendAvailableAt"].is_string());
    assert!(added.get("secret").is_none());
    // The code goes to the NEW phone, so only a number the customer holds is ever used.
    let code = app.latest_code(&bob).await;
    let line = app
        .outbox_lines()
        .into_iter()
        .rev()
        .find(|l| l["code"] == code.as_str())
        .unwrap();
    assert_eq!(line["to"], "+447700900999");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in (1..=4).rev() {
        let refused = assert_problem(
            app.confirm(&session.bff, &added, wrong).await,
            400,
            "INVALID_2FA_CODE",
        )
        .await;
        assert_eq!(refused["attemptsRemaining"], remaining);
    }
    assert_problem(
        app.confirm(&session.bff, &added, wrong).await,
        429,
        "TOO_MANY_2FA_ATTEMPTS",
    )
    .await;
    assert_problem(
        app.confirm(&session.bff, &added, &code).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // The code went where the caller chose: wrong ones do not count toward the lock.
    let failures: i64 = app
        .customer_scalar(
            "SELECT COALESCE((SELECT l.failures FROM lockouts l JOIN customers c \
             ON c.username = l.username WHERE c.id = $1), 0)",
            &bob,
        )
        .await;
    assert_eq!(failures, 0);
    assert!(app.told("factor.added").await.is_empty());

    // A second try, confirmed: listed beside the mailbox, which stays the default.
    app.clock.advance(Duration::seconds(31));
    let added = app
        .add_factor_ok(
            &session.bff,
            json!({"method": "SMS", "phone": "+447700900999", "name": "Work phone"}),
        )
        .await;
    let code = app.latest_code(&bob).await;
    assert_eq!(app.confirm(&session.bff, &added, &code).await.status(), 200);
    let listed = app.factors(&session.bff).await;
    let factors = listed["factors"].as_array().unwrap();
    assert_eq!(factors.len(), 2);
    assert_eq!(
        (
            factors[0]["method"].as_str(),
            factors[0]["default"].as_bool()
        ),
        (Some("EMAIL"), Some(true))
    );
    assert_eq!(
        (
            factors[1]["method"].as_str(),
            factors[1]["default"].as_bool()
        ),
        (Some("SMS"), Some(false))
    );
    assert_eq!(factors[1]["name"], "Work phone");
    // Told at the destinations held before: not at the new phone.
    assert_eq!(app.told("factor.added").await, profile_destinations(&bob));
}

on_both_stores!(changing_factors_needs_a_recent_second_factor_and_names_every_way_to_prove_one);
async fn changing_factors_needs_a_recent_second_factor_and_names_every_way_to_prove_one(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let session = app.login_with_2fa(&bob).await;
    let codes = app.recovery_codes(&session.bff).await;
    assert_eq!(codes.len(), 10);
    app.clock.advance(Duration::minutes(6));
    let refused = assert_problem(
        app.add_factor(&session.bff, json!({"method": "TOTP"}))
            .await,
        403,
        "RECENT_AUTHENTICATION_REQUIRED",
    )
    .await;
    assert_eq!(refused["methods"], json!(["SMS", "RECOVERY_CODE"]));
    let id = app.factors(&session.bff).await["factors"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        (reqwest::Method::PATCH, format!("{FACTORS}/{id}")),
        (reqwest::Method::DELETE, format!("{FACTORS}/{id}")),
        (reqwest::Method::POST, RECOVERY_CODES.to_owned()),
    ] {
        let body = json!({"name": "x"});
        assert_problem(
            app.send(method, &path, Some(&body), &session.bff).await,
            403,
            "RECENT_AUTHENTICATION_REQUIRED",
        )
        .await;
    }
    // A recovery code steps up.
    let challenge = app
        .post_json(
            "/api/v1/auth/step-up",
            &json!({"method": "RECOVERY_CODE"}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(challenge.status(), 202);
    let challenge: Value = challenge.json().await.unwrap();
    assert_eq!(challenge["codeLength"], Value::Null);
    let verified = app
        .post_json(
            "/api/v1/auth/step-up/verify",
            &json!({"challengeId": challenge["challengeId"], "code": codes[0]}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(
        app.add_factor(&session.bff, json!({"method": "TOTP"}))
            .await
            .status(),
        201
    );
}

on_both_stores!(recovery_codes_work_once_each_without_regard_to_case_spaces_or_dashes);
async fn recovery_codes_work_once_each_without_regard_to_case_spaces_or_dashes(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let session = app.login_with_2fa(&bob).await;
    let first = app.recovery_codes(&session.bff).await;
    let codes = app.recovery_codes(&session.bff).await;
    assert_eq!(
        app.factors(&session.bff).await["recoveryCodesRemaining"],
        10
    );
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    for code in &codes {
        assert!(
            code.len() == 11 && code.chars().nth(5) == Some('-'),
            "{code}"
        );
    }
    assert_eq!(app.told("recovery_codes.created").await.len(), 4);
    let stored: Vec<u8> = app
        .customer_scalar(
            "SELECT code_hash FROM recovery_codes WHERE customer_id = $1 LIMIT 1",
            &bob,
        )
        .await;
    assert!(
        codes
            .iter()
            .all(|c| !stored.windows(5).any(|w| w == &c.as_bytes()[..5]))
    );

    let pending = app.login_ok(&bob).await;
    let challenge = app
        .initiate_with_ok(&pending.bff, json!({"method": "RECOVERY_CODE"}))
        .await;
    assert_eq!(challenge["method"], "RECOVERY_CODE");
    assert_eq!(challenge["destination"], Value::Null);
    assert_eq!(challenge["codeLength"], Value::Null);
    let id = challenge["challengeId"].as_str().unwrap();
    // Replaced by the second set: the first set's codes no longer work.
    assert_problem(
        app.verify(&pending.bff, id, &first[0]).await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    let typed = codes[0].to_lowercase().replace('-', " ");
    let active = tokens(app.verify(&pending.bff, id, &typed).await).await;
    assert_eq!(active.body["twoFactorRequired"], false);
    assert_eq!(app.factors(&active.bff).await["recoveryCodesRemaining"], 9);
    let used: Vec<Value> = {
        app.deliver_all().await;
        app.notice_lines()
            .into_iter()
            .filter(|l| l["notice"] == "recovery_code.used")
            .collect()
    };
    assert_eq!(used.len(), 2, "the profile's mailbox and phone");
    assert!(used.iter().all(|l| l["recoveryCodesRemaining"] == 9));

    // Used once: the next login cannot use it again.
    let again = app.login_ok(&bob).await;
    let challenge = app
        .initiate_with_ok(&again.bff, json!({"method": "RECOVERY_CODE"}))
        .await;
    assert_problem(
        app.verify(
            &again.bff,
            challenge["challengeId"].as_str().unwrap(),
            &codes[0],
        )
        .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    assert_problem(
        app.verify(
            &again.bff,
            challenge["challengeId"].as_str().unwrap(),
            "not-a-code",
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

on_both_stores!(
    two_instances_racing_one_recovery_code_let_exactly_one_session_in,
    flavor = "multi_thread",
    worker_threads = 4
);
async fn two_instances_racing_one_recovery_code_let_exactly_one_session_in(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = second_instance(&a).await;
    let bob = a.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let session = a.login_with_2fa(&bob).await;
    let codes = a.recovery_codes(&session.bff).await;

    let mut attempts = Vec::new();
    for n in 0..10 {
        let instance = if n % 2 == 0 { &a } else { &b };
        let pending = instance.login_ok(&bob).await;
        let challenge = instance
            .initiate_with_ok(&pending.bff, json!({"method": "RECOVERY_CODE"}))
            .await;
        attempts.push((instance, pending, challenge));
    }
    let answers = join_all(attempts.iter().map(|(instance, pending, challenge)| {
        instance.verify(
            &pending.bff,
            challenge["challengeId"].as_str().unwrap(),
            &codes[3],
        )
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| matches!(s, 200 | 400 | 423)),
        "{statuses:?}"
    );
    assert_eq!(a.factors(&session.bff).await["recoveryCodesRemaining"], 9);
}

on_both_stores!(removing_factors_moves_the_default_and_the_last_one_takes_the_recovery_codes);
async fn removing_factors_moves_the_default_and_the_last_one_takes_the_recovery_codes(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let session = app.login_with_2fa(&bob).await;
    app.add_app(&session.bff).await;
    app.recovery_codes(&session.bff).await;
    let listed = app.factors(&session.bff).await;
    let sms = listed["factors"][0]["id"].as_str().unwrap().to_owned();
    let totp = listed["factors"][1]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["factors"][1]["default"], false);

    // Renamed and made the default.
    let patched = app
        .send(
            reqwest::Method::PATCH,
            &format!("{FACTORS}/{totp}"),
            Some(&json!({"default": true, "name": "Pixel"})),
            &session.bff,
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["default"].as_bool(), patched["name"].as_str()),
        (Some(true), Some("Pixel"))
    );
    let me: Value = app.me(&session.bff).await.json().await.unwrap();
    assert_eq!(me["twoFactor"]["method"], "TOTP");
    assert_problem(
        app.send(
            reqwest::Method::PATCH,
            &format!("{FACTORS}/{totp}"),
            Some(&json!({"name": ""})),
            &session.bff,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // The default goes: the oldest remaining factor takes its place.
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("{FACTORS}/{totp}"),
            None,
            &session.bff,
        )
        .await;
    assert_eq!(removed.status(), 204);
    let listed = app.factors(&session.bff).await;
    assert_eq!(listed["factors"].as_array().unwrap().len(), 1);
    assert_eq!(listed["factors"][0]["default"], true);
    assert_eq!(listed["recoveryCodesRemaining"], 10);
    assert_problem(
        app.send(
            reqwest::Method::DELETE,
            &format!("{FACTORS}/{totp}"),
            None,
            &session.bff,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // The last one: two-factor is off, and the recovery codes go with it.
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("{FACTORS}/{sms}"),
            None,
            &session.bff,
        )
        .await;
    assert_eq!(removed.status(), 204);
    let listed = app.factors(&session.bff).await;
    assert_eq!(listed, json!({"factors": [], "recoveryCodesRemaining": 0}));
    assert_eq!(app.login_ok(&bob).await.body["twoFactorRequired"], false);
    assert_problem(
        app.post_json(RECOVERY_CODES, &json!({}), Some(&session.bff))
            .await,
        409,
        "FACTOR_REQUIRED",
    )
    .await;
    // Each removal told at every destination held before it (the profile's phone is the SMS
    // factor's too: once).
    assert_eq!(app.told("factor.removed").await.len(), 4);
    assert_eq!(app.audit_of_kind("factor.removed").await.len(), 2);
}

on_both_stores!(a_customer_with_several_factors_picks_one_and_only_their_own);
async fn a_customer_with_several_factors_picks_one_and_only_their_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let eve = app
        .create_customer("eve", Some(TwoFactorMethod::Email))
        .await;
    let session = app.login_with_2fa(&bob).await;
    let secret = app.add_app(&session.bff).await;
    let eves = app.login_with_2fa(&eve).await;
    let eves_factor = app.factors(&eves.bff).await["factors"][0]["id"].clone();
    let listed = app.factors(&session.bff).await;
    let totp = listed["factors"][1]["id"].clone();

    let pending = app.login_ok(&bob).await;
    // The default (SMS) unless another is named.
    app.clock.advance(Duration::seconds(31));
    let challenge = app.initiate_with_ok(&pending.bff, json!({})).await;
    assert_eq!(challenge["method"], "SMS");
    for refused in [
        json!({"method": "EMAIL"}),
        json!({"method": "PASSWORD"}),
        json!({"method": "RECOVERY_CODE"}),
    ] {
        let problem = assert_problem(
            app.initiate_with(&pending.bff, refused).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "method");
    }
    for refused in [
        json!({"method": "SMS", "factorId": totp}),
        json!({"method": "SMS", "factorId": eves_factor}),
    ] {
        let problem = assert_problem(
            app.initiate_with(&pending.bff, refused).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "factorId");
    }
    let challenge = app
        .initiate_with_ok(&pending.bff, json!({"method": "TOTP", "factorId": totp}))
        .await;
    assert_eq!(challenge["method"], "TOTP");
    let code = app.next_totp(&secret);
    let active = app
        .verify(
            &pending.bff,
            challenge["challengeId"].as_str().unwrap(),
            &code,
        )
        .await;
    assert_eq!(active.status(), 200);
    // Another customer's unconfirmed factor is unknown here.
    let eves_app = app
        .add_factor_ok(&eves.bff, json!({"method": "TOTP"}))
        .await;
    assert_problem(
        app.confirm(&session.bff, &eves_app, "123456").await,
        404,
        "NOT_FOUND",
    )
    .await;
}

on_both_stores!(a_step_up_by_the_app_proves_a_recent_second_factor);
async fn a_step_up_by_the_app_proves_a_recent_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;
    let secret = app.add_app(&session.bff).await;
    app.clock.advance(Duration::minutes(6));
    assert_problem(
        app.post_json(RECOVERY_CODES, &json!({}), Some(&session.bff))
            .await,
        403,
        "RECENT_AUTHENTICATION_REQUIRED",
    )
    .await;
    let challenge = app
        .post_json(
            "/api/v1/auth/step-up",
            &json!({"method": "TOTP"}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(challenge.status(), 202);
    let challenge: Value = challenge.json().await.unwrap();
    assert_eq!(challenge["codeLength"], 6);
    let code = totp_at(&secret, app.clock.now());
    let verified = app
        .post_json(
            "/api/v1/auth/step-up/verify",
            &json!({"challengeId": challenge["challengeId"], "code": code}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(app.recovery_codes(&session.bff).await.len(), 10);
}

on_both_stores!(bad_factor_requests_get_validation_errors_naming_each_field);
async fn bad_factor_requests_get_validation_errors_naming_each_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;
    for (body, field) in [
        (json!({"method": "SMS"}), "phone"),
        (json!({"method": "SMS", "phone": "12"}), "phone"),
        (json!({"method": "EMAIL", "email": "nope"}), "email"),
        (json!({"method": "TOTP", "phone": "+447700900999"}), "phone"),
        (json!({"method": "TOTP", "name": "x".repeat(65)}), "name"),
        (
            json!({"method": "PASSKEY", "email": "a@example.com"}),
            "email",
        ),
        (json!({"method": "PIGEON"}), "method"),
    ] {
        let problem = assert_problem(
            app.add_factor(&session.bff, body.clone()).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    assert_problem(
        app.send(reqwest::Method::GET, FACTORS, None, &pending.bff)
            .await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
}

on_both_stores!(
    a_login_with_the_apps_code_is_active_at_once_and_either_wrong_part_says_neither_which
);
async fn a_login_with_the_apps_code_is_active_at_once_and_either_wrong_part_says_neither_which(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;
    let secret = app.add_app(&session.bff).await;
    let login = |password: &str, totp: &str| {
        let body = json!({"username": alice.username, "password": password, "totp": totp});
        let app = &app;
        async move { app.post_json("/api/v1/auth/token", &body, None).await }
    };

    // A step is spent only when both were right: the code still works after a wrong password.
    let code = app.next_totp(&secret);
    let wrong_password = assert_problem(
        login("Wrong-password-1", &code).await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let wrong_code = assert_problem(login(PASSWORD, wrong).await, 401, "INVALID_CREDENTIALS").await;
    // The attack: telling which part was wrong, to guess one at a time.
    let without_id = |mut v: Value| {
        v.as_object_mut().unwrap().remove("requestId");
        v
    };
    assert_eq!(without_id(wrong_password), without_id(wrong_code));
    let failures: i64 = app
        .customer_scalar(
            "SELECT l.failures FROM lockouts l JOIN customers c ON c.username = l.username \
             WHERE c.id = $1",
            &alice,
        )
        .await;
    assert_eq!(failures, 2, "one failure each toward the lock");

    let active = tokens(login(PASSWORD, &code).await).await;
    assert_eq!(active.body["twoFactorRequired"], false);
    assert_eq!(app.me(&active.bff).await.status(), 200);
    // Both factors proved just now: a recent call needs no step-up.
    assert_eq!(app.recovery_codes(&active.bff).await.len(), 10);
    // The code is spent: replayed, it is refused like a wrong one.
    assert_problem(login(PASSWORD, &code).await, 401, "INVALID_CREDENTIALS").await;
    let events = app.audit_of_kind("login.succeeded").await;
    assert_eq!(events.last().unwrap()["details"]["oneStep"], true);
    assert!(
        !app.audit()
            .await
            .iter()
            .any(|e| e.to_string().contains(&code))
    );

    // A code that is not six digits is malformed; without an app it is ignored.
    let problem = assert_problem(login(PASSWORD, "12").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(problem["errors"][0]["field"], "totp");
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app
        .post_json(
            "/api/v1/auth/token",
            &json!({"username": bob.username, "password": PASSWORD, "totp": "123456"}),
            None,
        )
        .await;
    assert_eq!(tokens(pending).await.body["twoFactorRequired"], true);
}

on_both_stores!(with_two_factor_required_a_customer_without_one_enrols_before_anything_else);
async fn with_two_factor_required_a_customer_without_one_enrols_before_anything_else(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-factor-tests".into());
        s.two_factor.require = true;
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    let enrolling = app.login_ok(&alice).await;
    assert_eq!(enrolling.body["twoFactorRequired"], true);
    assert_eq!(enrolling.body["enrolmentRequired"], true);
    // The restricted view, and nothing else but enrolment and logout.
    let me: Value = app.me(&enrolling.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "ENROLMENT_REQUIRED");
    assert!(me.get("email").is_none());
    for refused in [
        app.send(reqwest::Method::GET, FACTORS, None, &enrolling.bff)
            .await,
        app.send(
            reqwest::Method::GET,
            "/api/v1/sessions",
            None,
            &enrolling.bff,
        )
        .await,
        app.initiate_with(&enrolling.bff, json!({})).await,
        app.refresh(&enrolling.refresh).await,
        app.post_json(RECOVERY_CODES, &json!({}), Some(&enrolling.bff))
            .await,
        app.logout(&enrolling.bff, &json!({"scope": "all"})).await,
    ] {
        assert_problem(refused, 403, "TWO_FACTOR_ENROLMENT_REQUIRED").await;
    }

    let added = app
        .add_factor_ok(&enrolling.bff, json!({"method": "TOTP"}))
        .await;
    let secret = added["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .confirm(&enrolling.bff, &added, &totp_at(&secret, app.clock.now()))
        .await;
    assert_eq!(confirmed.status(), 200);
    let confirmed: Value = confirmed.json().await.unwrap();
    assert_eq!(confirmed["factor"]["default"], true);
    let token = &confirmed["token"];
    assert_eq!(token["twoFactorRequired"], false);
    assert!(token.get("enrolmentRequired").is_none());
    // The old tokens stop working; the new ones are ACTIVE and recent.
    assert_problem(app.me(&enrolling.bff).await, 401, "UNAUTHENTICATED").await;
    let bff = token["bffToken"].as_str().unwrap();
    let me: Value = app.me(bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "ACTIVE");
    assert_eq!(me["twoFactor"]["method"], "TOTP");
    assert_eq!(app.recovery_codes(bff).await.len(), 10);

    // The last factor cannot go while two-factor is required.
    let id = app.factors(bff).await["factors"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_problem(
        app.send(
            reqwest::Method::DELETE,
            &format!("{FACTORS}/{id}"),
            None,
            bff,
        )
        .await,
        409,
        "FACTOR_REQUIRED",
    )
    .await;
    assert_eq!(
        app.factors(bff).await["factors"].as_array().unwrap().len(),
        1
    );
    // The next login asks for the app's code.
    assert_eq!(app.login_ok(&alice).await.body["twoFactorRequired"], true);
}

on_both_stores!(a_second_factor_added_while_enrolling_is_confirmed_after_the_first);
async fn a_second_factor_added_while_enrolling_is_confirmed_after_the_first(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-factor-tests".into());
        s.two_factor.require = true;
        s.two_factor.resend_interval = Duration::ZERO;
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    let enrolling = app.login_ok(&alice).await;
    // Two factors added before either is confirmed: an app, and a phone whose code is sent.
    let phone = app
        .add_factor_ok(
            &enrolling.bff,
            json!({"method": "SMS", "phone": "+447700900777"}),
        )
        .await;
    let sms_code = app.latest_code(&alice).await;
    let added = app
        .add_factor_ok(&enrolling.bff, json!({"method": "TOTP"}))
        .await;
    let secret = added["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .confirm(&enrolling.bff, &added, &totp_at(&secret, app.clock.now()))
        .await;
    assert_eq!(confirmed.status(), 200);
    let confirmed: Value = confirmed.json().await.unwrap();
    let bff = confirmed["token"]["bffToken"].as_str().unwrap();
    // The session is ACTIVE now; the phone's code still confirms the phone.
    let second = app.confirm(bff, &phone, &sms_code).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        app.factors(bff).await["factors"].as_array().unwrap().len(),
        2
    );
}

on_both_stores!(a_code_already_sent_to_a_removed_phone_answers_nothing);
/// The attack: a SIM swapper holding the customer's number (and password) while the customer,
/// signed in elsewhere, removes that phone; the code already sent to it must not complete
/// the thief's login.
async fn a_code_already_sent_to_a_removed_phone_answers_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let session = app.login_with_2fa(&bob).await;
    app.add_app(&session.bff).await;
    let thief = app.login_ok(&bob).await;
    app.clock.advance(Duration::seconds(31));
    let challenge = app
        .initiate_with_ok(&thief.bff, json!({"method": "SMS"}))
        .await;
    let code = app.latest_code(&bob).await;
    let sms = app.factors(&session.bff).await["factors"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("{FACTORS}/{sms}"),
            None,
            &session.bff,
        )
        .await;
    assert_eq!(removed.status(), 204);
    assert_problem(
        app.verify(
            &thief.bff,
            challenge["challengeId"].as_str().unwrap(),
            &code,
        )
        .await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
}

on_both_stores!(a_session_cannot_add_factors_without_end_a_customer_holds_at_most_twenty);
/// The attack: adding an app sends nothing, so no sending limit held a signed-in session back,
/// and it could add factor rows (each with its challenge and audit event) as fast as it could
/// ask. Unconfirmed factors count until they expire, and then make room again.
async fn a_session_cannot_add_factors_without_end_a_customer_holds_at_most_twenty(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;
    let app_factor = json!({"method": "TOTP"});
    for _ in 0..MAX_FACTORS {
        app.add_factor_ok(&session.bff, app_factor.clone()).await;
    }
    let messages_before: i64 = app
        .customer_scalar(
            "SELECT COUNT(*) FROM messages WHERE customer_id = $1",
            &alice,
        )
        .await;
    for body in [
        app_factor.clone(),
        json!({"method": "SMS", "phone": "+447700900999"}),
    ] {
        let problem = assert_problem(
            app.add_factor(&session.bff, body.clone()).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "method", "{body}");
    }
    let rows: i64 = app
        .customer_scalar(
            "SELECT COUNT(*) FROM factors WHERE customer_id = $1",
            &alice,
        )
        .await;
    assert_eq!(rows, i64::from(MAX_FACTORS));
    let messages_after: i64 = app
        .customer_scalar(
            "SELECT COUNT(*) FROM messages WHERE customer_id = $1",
            &alice,
        )
        .await;
    assert_eq!(
        messages_after, messages_before,
        "a refused phone is sent nothing"
    );

    // Past FINHUB_2FA_CODE_TTL the unconfirmed ones no longer count.
    app.clock.advance(Duration::minutes(11));
    app.add_factor_ok(&session.bff, app_factor).await;
}
