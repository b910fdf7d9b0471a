//! Passkeys: registered as a factor, asked for at login and step-up, and signing in without a
//! password; each ceremony run end to end with the software authenticator.

use reqwest::Response;
use serde_json::{Value, json};

use crate::authenticator::{SoftAuthenticator, device};
use crate::helpers::{
    Backend, Customer, TestApp, Tokens, assert_problem, second_instance, spawn_app, spawn_app_with,
    tokens,
};
use crate::recorded::CounterWatch;

const FACTORS: &str = "/api/v1/customers/me/factors";
const OPTIONS: &str = "/api/v1/auth/passkey/options";
const PASSKEY_LOGIN: &str = "/api/v1/auth/passkey";
const REGRESSIONS_METRIC: &str = "finhub_passkey_counter_regressions_total";

impl TestApp {
    /// Adds a passkey made by `device` and confirms it; returns the factor.
    async fn add_passkey(&self, bearer: &str, device: &mut SoftAuthenticator) -> Value {
        let added = self
            .post_json(
                FACTORS,
                &json!({"method": "PASSKEY", "name": "Laptop"}),
                Some(bearer),
            )
            .await;
        assert_eq!(added.status(), 201);
        let added: Value = added.json().await.unwrap();
        let confirmed = self
            .confirm_passkey(bearer, &added, device.register(&added["publicKey"]))
            .await;
        assert_eq!(confirmed.status(), 200);
        confirmed.json::<Value>().await.unwrap()["factor"].clone()
    }

    async fn confirm_passkey(&self, bearer: &str, added: &Value, credential: Value) -> Response {
        let path = format!("{FACTORS}/{}/confirm", added["id"].as_str().unwrap());
        self.post_json(&path, &json!({"credential": credential}), Some(bearer))
            .await
    }

    async fn passkey_options(&self) -> Value {
        let response = self.post_json(OPTIONS, &json!({}), None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    /// A passkey login by `device`, from options to session.
    async fn passkey_login(&self, device: &mut SoftAuthenticator) -> Response {
        let options = self.passkey_options().await;
        let credential = device.assert(&options["publicKey"]);
        self.post_json(
            PASSKEY_LOGIN,
            &json!({"challengeId": options["challengeId"], "credential": credential}),
            None,
        )
        .await
    }

    /// The pending session's challenge of its default factor.
    async fn two_factor_challenge(&self, bearer: &str) -> Value {
        let response = self
            .post_json("/api/v1/auth/2fa/initiate", &json!({}), Some(bearer))
            .await;
        assert_eq!(response.status(), 202);
        response.json().await.unwrap()
    }

    async fn answer_with_passkey(
        &self,
        bearer: &str,
        challenge: &Value,
        credential: Value,
    ) -> Response {
        self.post_json(
            "/api/v1/auth/2fa/verify",
            &json!({"challengeId": challenge["challengeId"], "credential": credential}),
            Some(bearer),
        )
        .await
    }

    /// A customer signed in with a passkey they hold (added as their first factor).
    async fn customer_with_passkey(&self, name: &str) -> (Customer, SoftAuthenticator, Tokens) {
        let customer = self.create_customer(name, None).await;
        let session = self.login_ok(&customer).await;
        let mut device = device();
        self.add_passkey(&session.bff, &mut device).await;
        (customer, device, session)
    }
}

on_both_stores!(a_passkey_is_registered_confirmed_and_asked_for_at_login);
async fn a_passkey_is_registered_confirmed_and_asked_for_at_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    let session = app.login_ok(&alice).await;

    // The first factor of a customer who has none needs no step-up.
    let added = app
        .post_json(
            FACTORS,
            &json!({"method": "PASSKEY", "name": "Laptop"}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["method"], "PASSKEY");
    assert_eq!(added["state"], "UNCONFIRMED");
    let options = &added["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(
        options["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert!(options["challenge"].as_str().unwrap().len() >= 43);
    // The user handle says nothing of the customer.
    let handle = options["user"]["id"].as_str().unwrap();
    assert!(!handle.contains(&alice.id) && !alice.id.contains(handle));

    let mut laptop = device();
    let registration = laptop.register(options);
    // A code does not answer a passkey's registration.
    assert_problem(
        app.post_json(
            &format!("{FACTORS}/{}/confirm", added["id"].as_str().unwrap()),
            &json!({"code": "123456"}),
            Some(&session.bff),
        )
        .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    let confirmed = app
        .confirm_passkey(&session.bff, &added, registration.clone())
        .await;
    assert_eq!(confirmed.status(), 200);
    let factor: Value = confirmed.json().await.unwrap();
    assert_eq!(factor["factor"]["method"], "PASSKEY");
    assert_eq!(factor["factor"]["name"], "Laptop");
    assert_eq!(factor["factor"]["destination"], Value::Null);
    assert_eq!(factor["factor"]["default"], true);
    // A registration is answered once.
    assert_problem(
        app.confirm_passkey(&session.bff, &added, registration)
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let me: Value = app.me(&session.bff).await.json().await.unwrap();
    assert_eq!(
        me["twoFactor"],
        json!({"enabled": true, "method": "PASSKEY", "destination": null})
    );
    assert_eq!(app.audit_of_kind("factor.added").await.len(), 1);

    // The next login asks for the passkey: nothing is sent, the browser gets its options.
    let pending = app.login_ok(&alice).await;
    assert_eq!(pending.body["twoFactorRequired"], true);
    let challenge = app
        .post_json("/api/v1/auth/2fa/initiate", &json!({}), Some(&pending.bff))
        .await;
    assert_eq!(challenge.status(), 202);
    let challenge: Value = challenge.json().await.unwrap();
    assert_eq!(challenge["method"], "PASSKEY");
    assert_eq!(challenge["codeLength"], Value::Null);
    assert_eq!(challenge["destination"], Value::Null);
    let allowed = challenge["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(allowed.len(), 1);
    assert_eq!(challenge["publicKey"]["userVerification"], "required");

    // Another authenticator's assertion is a wrong answer, counted like a wrong code.
    let mut stranger = device();
    stranger.register(options);
    let mut foreign = stranger
        .assert(&json!({"rpId": "localhost", "challenge": challenge["publicKey"]["challenge"]}));
    foreign["id"] = allowed[0]["id"].clone();
    foreign["rawId"] = allowed[0]["id"].clone();
    let refused = assert_problem(
        app.answer_with_passkey(&pending.bff, &challenge, foreign)
            .await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    assert_eq!(refused["attemptsRemaining"], 4);

    let assertion = laptop.assert(&challenge["publicKey"]);
    let active = tokens(
        app.answer_with_passkey(&pending.bff, &challenge, assertion)
            .await,
    )
    .await;
    assert_eq!(active.body["twoFactorRequired"], false);
    let listed = app
        .client
        .get(app.url(FACTORS))
        .bearer_auth(&active.bff)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(listed["factors"][0]["lastUsedAt"].is_string());
    // The credential and its counter are stored; no private key exists to store.
    let counter: i64 = app
        .customer_scalar(
            "SELECT sign_count FROM factors WHERE customer_id = $1",
            &alice,
        )
        .await;
    assert_eq!(counter, 1);
}

on_both_stores!(a_passkey_signs_in_without_a_password_once_per_ceremony);
async fn a_passkey_signs_in_without_a_password_once_per_ceremony(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, mut laptop, _) = app.customer_with_passkey("alice").await;

    let options = app.passkey_options().await;
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(options["publicKey"]["userVerification"], "required");
    let credential = laptop.assert(&options["publicKey"]);
    let body = json!({
        "challengeId": options["challengeId"],
        "credential": credential,
        "device": {"fingerprint": "laptop-1", "name": "Work laptop"},
    });
    let session = tokens(app.post_json(PASSKEY_LOGIN, &body, None).await).await;
    assert_eq!(session.body["twoFactorRequired"], false);
    let me: Value = app.me(&session.bff).await.json().await.unwrap();
    assert_eq!(me["username"], alice.username);
    // Both factors proved: recent enough for a sensitive call without a step-up.
    let codes = app
        .post_json(
            "/api/v1/customers/me/recovery-codes",
            &json!({}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(codes.status(), 201);
    assert_eq!(app.audit_of_kind("login.succeeded").await.len(), 2);

    // The same ceremony answered again: refused, whoever answers it.
    assert_problem(
        app.post_json(PASSKEY_LOGIN, &body, None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // A synced passkey keeps no counter, and signs in every time.
    let bob = app.create_customer("bob", None).await;
    let bob_session = app.login_ok(&bob).await;
    let mut phone = device().counterless();
    app.add_passkey(&bob_session.bff, &mut phone).await;
    for _ in 0..2 {
        let session = tokens(app.passkey_login(&mut phone).await).await;
        let me: Value = app.me(&session.bff).await.json().await.unwrap();
        assert_eq!(me["username"], bob.username);
    }
}

on_both_stores!(a_cloned_authenticator_is_refused_and_audited);
async fn a_cloned_authenticator_is_refused_and_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, mut laptop, _) = app.customer_with_passkey("alice").await;
    // The attack: the key copied off the device. The copy's counter lags the original's.
    let mut clone = laptop.clone();
    tokens(app.passkey_login(&mut laptop).await).await;
    assert_problem(
        app.passkey_login(&mut clone).await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    let regressions = app.audit_of_kind("passkey.counter_regressed").await;
    assert_eq!(regressions.len(), 1);
    assert_eq!(regressions[0]["customerId"], alice.id);
    let failed = app.audit_of_kind("login.failed").await;
    assert!(
        failed
            .iter()
            .any(|e| e["reason"] == "passkey_counter_regressed")
    );
    // The original goes on.
    tokens(app.passkey_login(&mut laptop).await).await;
}

on_both_stores!(bad_assertions_are_invalid_credentials_and_a_known_passkeys_count_toward_the_lock);
async fn bad_assertions_are_invalid_credentials_and_a_known_passkeys_count_toward_the_lock(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.lockout.threshold = 3).await;
    let (alice, mut laptop, _) = app.customer_with_passkey("alice").await;

    // A credential registered nowhere: nobody to count it against.
    let mut stranger = device();
    let options = app.passkey_options().await;
    stranger.register(&json!({
        "rp": {"id": "localhost"},
        "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA"},
        "challenge": options["publicKey"]["challenge"],
    }));
    assert_problem(
        app.passkey_login(&mut stranger).await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;

    // Alice's passkey from another site's page, without user verification, with its signature
    // altered: each a failure of hers.
    let mut phishing = laptop.clone();
    phishing.origin = "https://finhub.example.evil".into();
    let mut unverified = laptop.clone();
    unverified.skips_user_verification = true;
    for device in [&mut phishing, &mut unverified] {
        assert_problem(app.passkey_login(device).await, 401, "INVALID_CREDENTIALS").await;
    }
    let options = app.passkey_options().await;
    let mut tampered = laptop.assert(&options["publicKey"]);
    tampered["response"]["signature"] = json!("MEUCIQDp");
    assert_problem(
        app.post_json(
            PASSKEY_LOGIN,
            &json!({"challengeId": options["challengeId"], "credential": tampered}),
            None,
        )
        .await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    // The third failure locked her: the right passkey is refused until the lock ends.
    assert_problem(app.passkey_login(&mut laptop).await, 423, "ACCOUNT_LOCKED").await;
    let failures = app.audit_of_kind("login.failed").await;
    assert_eq!(
        failures
            .iter()
            .filter(|e| e["reason"] == "invalid_passkey" && e["customerId"] == alice.id)
            .count(),
        3
    );
}

on_both_stores!(malformed_passkey_answers_are_validation_errors);
async fn malformed_passkey_answers_are_validation_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let options = app.passkey_options().await;
    for credential in [json!("a string"), json!({"id": 7}), json!({})] {
        let problem = assert_problem(
            app.post_json(
                PASSKEY_LOGIN,
                &json!({"challengeId": options["challengeId"], "credential": credential}),
                None,
            )
            .await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "credential", "{problem}");
    }
    assert_problem(
        app.post_json(PASSKEY_LOGIN, &json!({"challengeId": "x"}), None)
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
}

/// Two instances sharing an audit key, as a deployment's do: either opens the ceremonies the
/// other sealed.
async fn two_keyed_instances(backend: Backend) -> (TestApp, TestApp) {
    let a = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-passkey-tests".into());
    })
    .await;
    let b = second_instance(&a).await;
    (a, b)
}

on_both_stores!(two_instances_racing_one_passkey_assertion_let_one_session_in);
async fn two_instances_racing_one_passkey_assertion_let_one_session_in(backend: Backend) {
    let (a, b) = two_keyed_instances(backend).await;
    let alice = a.create_customer("alice", None).await;
    let session = a.login_ok(&alice).await;
    // No counter to refuse the second: the ceremony alone settles it.
    let mut phone = device().counterless();
    a.add_passkey(&session.bff, &mut phone).await;
    let options = a.passkey_options().await;
    let body = json!({
        "challengeId": options["challengeId"],
        "credential": phone.assert(&options["publicKey"]),
    });
    let (one, two) = tokio::join!(
        a.post_json(PASSKEY_LOGIN, &body, None),
        b.post_json(PASSKEY_LOGIN, &body, None)
    );
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400]);
    assert_eq!(a.audit_of_kind("login.succeeded").await.len(), 2);
}

on_both_stores!(a_login_ceremony_is_sealed_answerable_on_any_instance_once_and_until_it_expires);
async fn a_login_ceremony_is_sealed_answerable_on_any_instance_once_and_until_it_expires(
    backend: Backend,
) {
    let (a, b) = two_keyed_instances(backend).await;
    let alice = a.create_customer("alice", None).await;
    let session = a.login_ok(&alice).await;
    let mut phone = device().counterless();
    a.add_passkey(&session.bff, &mut phone).await;
    let answer = |options: &Value, phone: &mut SoftAuthenticator| {
        json!({
            "challengeId": options["challengeId"],
            "credential": phone.assert(&options["publicKey"]),
        })
    };
    let refused_ceremony = |response| async {
        let problem = assert_problem(response, 400, "VALIDATION_ERROR").await;
        assert_eq!(problem["errors"][0]["field"], "challengeId", "{problem}");
    };

    // Opened on one instance, answered on the other.
    let options = a.passkey_options().await;
    let body = answer(&options, &mut phone);
    tokens(b.post_json(PASSKEY_LOGIN, &body, None).await).await;
    // The attack: a captured answer of a passkey that keeps no counter, replayed on any
    // instance. Only the ceremony's record stops it.
    for instance in [&a, &b] {
        refused_ceremony(instance.post_json(PASSKEY_LOGIN, &body, None).await).await;
    }

    // A refused answer spends its ceremony too: a stranger's credential, then the right one.
    let options = a.passkey_options().await;
    let mut stranger = device().counterless();
    stranger.register(&json!({
        "rp": {"id": "localhost"},
        "user": {"id": "AAAAAAAAAAAAAAAAAAAAAA"},
        "challenge": options["publicKey"]["challenge"],
    }));
    let wrong = answer(&options, &mut stranger);
    assert_problem(
        a.post_json(PASSKEY_LOGIN, &wrong, None).await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    refused_ceremony(
        a.post_json(PASSKEY_LOGIN, &answer(&options, &mut phone), None)
            .await,
    )
    .await;

    // The attack: a client that edits its ceremony (a later expiry, a challenge it chose).
    let options = a.passkey_options().await;
    let mut body = answer(&options, &mut phone);
    let mut sealed = options["challengeId"].as_str().unwrap().to_owned();
    let flipped = if sealed.as_bytes()[40] == b'A' {
        "B"
    } else {
        "A"
    };
    sealed.replace_range(40..41, flipped);
    body["challengeId"] = json!(sealed);
    refused_ceremony(a.post_json(PASSKEY_LOGIN, &body, None).await).await;

    // Another deployment's key opens nothing here.
    let elsewhere = spawn_app_with(backend, |s| {
        s.audit.key = Some("another-deployments-audit-key-xx".into());
    })
    .await;
    let options = elsewhere.passkey_options().await;
    let body = answer(&options, &mut phone);
    refused_ceremony(a.post_json(PASSKEY_LOGIN, &body, None).await).await;

    // A ceremony lives as long as a code; past that, the browser asks again.
    let options = a.passkey_options().await;
    let body = answer(&options, &mut phone);
    a.clock
        .advance(a.settings.two_factor.code_ttl + time::Duration::seconds(1));
    refused_ceremony(a.post_json(PASSKEY_LOGIN, &body, None).await).await;
    // Each refused ceremony (a replay, one answered already, altered, foreign, expired) is on
    // the record, counted by address.
    a.services.auth.flush_refusals().await;
    let not_open: u64 = a
        .audit_of_kind("login.failed")
        .await
        .iter()
        .filter(|e| e["reason"] == "passkey_ceremony_not_open")
        .map(|e| e["details"]["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(not_open >= 5, "{not_open}");

    // The two answered ceremonies are kept while they could be answered, and a margin after.
    assert_eq!(
        a.services
            .housekeeper
            .run_once()
            .await
            .unwrap()
            .passkey_logins,
        0
    );
    a.clock.advance(time::Duration::minutes(5));
    let purged = a.services.housekeeper.run_once().await.unwrap();
    assert_eq!(purged.passkey_logins, 2, "{purged:?}");
}

on_both_stores!(a_clone_racing_its_original_on_two_instances_lets_one_counter_in);
async fn a_clone_racing_its_original_on_two_instances_lets_one_counter_in(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = second_instance(&a).await;
    let (_, mut laptop, _) = a.customer_with_passkey("alice").await;
    let mut clone = laptop.clone();
    // Two ceremonies, two assertions with the same counter: each checks out against the
    // counter read before, so only the store's conditional update can refuse one.
    let (first, second) = (a.passkey_options().await, b.passkey_options().await);
    let body = |options: &Value, device: &mut SoftAuthenticator| {
        json!({
            "challengeId": options["challengeId"],
            "credential": device.assert(&options["publicKey"]),
        })
    };
    let (one, two) = (body(&first, &mut laptop), body(&second, &mut clone));
    let (one, two) = tokio::join!(
        a.post_json(PASSKEY_LOGIN, &one, None),
        b.post_json(PASSKEY_LOGIN, &two, None)
    );
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
    assert_eq!(a.audit_of_kind("passkey.counter_regressed").await.len(), 1);
}

on_both_stores!(an_assertion_must_carry_its_customers_user_handle);
async fn an_assertion_must_carry_its_customers_user_handle(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut laptop, _) = app.customer_with_passkey("alice").await;
    for handle in [json!("AAAAAAAAAAAAAAAAAAAAAA"), Value::Null] {
        let options = app.passkey_options().await;
        let mut credential = laptop.assert(&options["publicKey"]);
        credential["response"]["userHandle"] = handle;
        assert_problem(
            app.post_json(
                PASSKEY_LOGIN,
                &json!({"challengeId": options["challengeId"], "credential": credential}),
                None,
            )
            .await,
            401,
            "INVALID_CREDENTIALS",
        )
        .await;
    }
    tokens(app.passkey_login(&mut laptop).await).await;
}

on_both_stores!(
    a_passkey_answers_only_its_own_customers_challenges_and_a_clone_is_caught_there_too
);
async fn a_passkey_answers_only_its_own_customers_challenges_and_a_clone_is_caught_there_too(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, mut alices, _) = app.customer_with_passkey("alice").await;
    let (bob, mut bobs, _) = app.customer_with_passkey("bob").await;
    let mut bobs_clone = bobs.clone();
    // Alice's passkey, signing Bob's challenge: not one of his.
    let pending = app.login_ok(&bob).await;
    let asked = app.two_factor_challenge(&pending.bff).await;
    let mut foreign_options = asked["publicKey"].clone();
    foreign_options["allowCredentials"] = json!([]);
    let foreign = alices.assert(&foreign_options);
    assert_problem(
        app.answer_with_passkey(&pending.bff, &asked, foreign).await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    let signed = bobs.assert(&asked["publicKey"]);
    let active = tokens(app.answer_with_passkey(&pending.bff, &asked, signed).await).await;
    // A step-up's assertion replayed to its spent challenge: refused, and no clone suspected
    // (the counter it carries is the one stored, but nothing was judged).
    let step_up = app
        .post_json(
            "/api/v1/auth/step-up",
            &json!({"method": "PASSKEY"}),
            Some(&active.bff),
        )
        .await;
    assert_eq!(step_up.status(), 202);
    let step_up: Value = step_up.json().await.unwrap();
    let body = json!({
        "challengeId": step_up["challengeId"],
        "credential": bobs.assert(&step_up["publicKey"]),
    });
    let verify = "/api/v1/auth/step-up/verify";
    assert_eq!(
        app.post_json(verify, &body, Some(&active.bff))
            .await
            .status(),
        200
    );
    let regressions = CounterWatch::new(REGRESSIONS_METRIC);
    let watching = regressions.watch();
    assert_problem(
        app.post_json(verify, &body, Some(&active.bff)).await,
        400,
        "2FA_CODE_EXPIRED",
    )
    .await;
    drop(watching);
    assert!(
        app.audit_of_kind("passkey.counter_regressed")
            .await
            .is_empty()
    );
    assert_eq!(regressions.count(), 0, "a replay counted as a clone");

    // Bob's copied passkey, behind the original's counter: a wrong answer, audited as a clone.
    let pending = app.login_ok(&bob).await;
    let asked = app.two_factor_challenge(&pending.bff).await;
    let copied = bobs_clone.assert(&asked["publicKey"]);
    let counted = CounterWatch::new(REGRESSIONS_METRIC);
    let watching = counted.watch();
    assert_problem(
        app.answer_with_passkey(&pending.bff, &asked, copied).await,
        400,
        "INVALID_2FA_CODE",
    )
    .await;
    drop(watching);
    assert_eq!(counted.count(), 1);
    let regressions = app.audit_of_kind("passkey.counter_regressed").await;
    assert_eq!(regressions.len(), 1);
    assert_eq!(regressions[0]["sessionId"], pending.session_id);
}

on_both_stores!(a_password_reset_is_finished_with_the_customers_passkey);
async fn a_password_reset_is_finished_with_the_customers_passkey(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-passkey-tests".into());
    })
    .await;
    let (alice, mut laptop, _) = app.customer_with_passkey("alice").await;
    let session = app.reset_session(&alice).await;
    assert_eq!(session.body["twoFactorRequired"], true);
    let asked: Value = app.initiate(&session.bff).await.json().await.unwrap();
    assert_eq!(asked["method"], "PASSKEY");
    let credential = laptop.assert(&asked["publicKey"]);
    let proved = tokens(
        app.answer_with_passkey(&session.bff, &asked, credential)
            .await,
    )
    .await;
    assert_eq!(
        app.complete_reset(&proved.bff, "Quiet-lantern-harbour-42")
            .await
            .status(),
        204
    );
}

on_both_stores!(a_step_up_by_passkey_proves_a_recent_second_factor);
async fn a_step_up_by_passkey_proves_a_recent_second_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mut laptop, session) = app.customer_with_passkey("alice").await;
    app.clock.advance(time::Duration::minutes(6));
    let refused = assert_problem(
        app.post_json(
            "/api/v1/customers/me/recovery-codes",
            &json!({}),
            Some(&session.bff),
        )
        .await,
        403,
        "RECENT_AUTHENTICATION_REQUIRED",
    )
    .await;
    assert_eq!(refused["methods"], json!(["PASSKEY"]));
    let challenge = app
        .post_json(
            "/api/v1/auth/step-up",
            &json!({"method": "PASSKEY"}),
            Some(&session.bff),
        )
        .await;
    assert_eq!(challenge.status(), 202);
    let challenge: Value = challenge.json().await.unwrap();
    let verified = app
        .post_json(
            "/api/v1/auth/step-up/verify",
            &json!({
                "challengeId": challenge["challengeId"],
                "credential": laptop.assert(&challenge["publicKey"]),
            }),
            Some(&session.bff),
        )
        .await;
    assert_eq!(verified.status(), 200);
}

on_both_stores!(without_a_relying_party_or_with_passkey_login_off_the_paths_are_not_found);
async fn without_a_relying_party_or_with_passkey_login_off_the_paths_are_not_found(
    backend: Backend,
) {
    let off = spawn_app_with(backend, |s| {
        s.passkeys.webauthn_rp_id = None;
        s.passkeys.webauthn_origin = None;
    })
    .await;
    assert_problem(
        off.post_json(OPTIONS, &json!({}), None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        off.post_json(
            PASSKEY_LOGIN,
            &json!({"challengeId": "x", "credential": {}}),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let alice = off.create_customer("alice", None).await;
    let session = off.login_ok(&alice).await;
    let refused = assert_problem(
        off.post_json(FACTORS, &json!({"method": "PASSKEY"}), Some(&session.bff))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "method");

    let no_login = spawn_app_with(backend, |s| s.passkeys.passkey_login = false).await;
    assert_problem(
        no_login.post_json(OPTIONS, &json!({}), None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Whatever the body: the path is not there.
    assert_problem(
        no_login
            .post_json(PASSKEY_LOGIN, &json!({"challengeId": 7}), None)
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Passkeys stay a second factor.
    let (bob, mut laptop, _) = no_login.customer_with_passkey("bob").await;
    let pending = no_login.login_ok(&bob).await;
    let asked: Value = no_login.initiate(&pending.bff).await.json().await.unwrap();
    assert_eq!(asked["method"], "PASSKEY");
    let credential = laptop.assert(&asked["publicKey"]);
    tokens(
        no_login
            .answer_with_passkey(&pending.bff, &asked, credential)
            .await,
    )
    .await;
}

on_both_stores!(
    passkey_logins_that_arrive_together_each_start_their_own_session_and_a_replay_none,
    flavor = "multi_thread",
    worker_threads = 2
);
/// On SQLite the logins waiting for the writer are started in one transaction, each in a
/// savepoint. Many customers' passkey logins at once, each answer also replayed alongside it:
/// every customer gets sessions of their own, and each replay is refused with nothing stored,
/// however the store grouped them.
async fn passkey_logins_that_arrive_together_each_start_their_own_session_and_a_replay_none(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut logins = Vec::new();
    for i in 0..6 {
        let customer = app.create_customer(&format!("c{i}"), None).await;
        let session = app.login_ok(&customer).await;
        // No counter: only the answered ceremony can refuse the replay.
        let mut phone = device().counterless();
        app.add_passkey(&session.bff, &mut phone).await;
        for _ in 0..2 {
            let options = app.passkey_options().await;
            let body = json!({
                "challengeId": options["challengeId"],
                "credential": phone.assert(&options["publicKey"]),
            });
            logins.push((customer.username.clone(), body));
        }
    }
    let app = &app;
    let answers = futures::future::join_all(logins.iter().flat_map(|(username, body)| {
        [body, body]
            .map(|body| async move { (username, app.post_json(PASSKEY_LOGIN, body, None).await) })
    }))
    .await;
    assert_eq!(answers.len(), 24);
    let mut signed_in = std::collections::HashMap::<&String, usize>::new();
    for (username, answer) in answers {
        if answer.status() == 400 {
            continue;
        }
        let me = app.me(&tokens(answer).await.bff).await;
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(&me["username"], username.as_str());
        *signed_in.entry(username).or_default() += 1;
    }
    // Each ceremony let exactly one of its two answers in.
    assert_eq!(signed_in.len(), 6, "{signed_in:?}");
    assert!(signed_in.values().all(|&n| n == 2), "{signed_in:?}");
    assert_eq!(app.audit_of_kind("login.succeeded").await.len(), 6 + 12);
}
