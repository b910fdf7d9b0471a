//! "This wasn't me": the single-use link in every e-mailed security notice ends every session
//! of the customer and locks the account until a completed password reset or an operator's
//! unlock.

use finhub_auth::clock::Clock as _;
use finhub_auth::domain::audit::{AuditEvent, AuditKind, Outcome};
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::domain::customers::{CustomerId, Username};
use finhub_auth::domain::ports::StoreError;
use finhub_auth::domain::sessions::SessionId;
use reqwest::Response;
use serde_json::{Value, json};
use time::Duration;

use crate::helpers::{
    Backend, Customer, PASSWORD, TestApp, Tokens, assert_problem, second_instance, spawn_app_with,
    tokens,
};

const LOCKDOWN: &str = "/api/v1/auth/lockdown";
const NEW_PASSWORD: &str = "Amber-tundra-violin-73";

async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-lockdown-tests".into());
        s.notifier.public_url = Some("https://app.finhub.test/".into());
    })
    .await
}

impl TestApp {
    pub(crate) async fn lockdown(&self, token: &str) -> Response {
        self.post_json(LOCKDOWN, &json!({"token": token}), None)
            .await
    }

    /// The token of the lockdown link in the newest e-mailed `notice` to `customer`, after
    /// delivering what is due; texted notices of it carry none.
    async fn lockdown_token(&self, customer: &Customer, notice: &str) -> String {
        while self.services.courier.deliver_due().await.unwrap() > 0 {}
        let notices: Vec<Value> = self
            .notice_lines()
            .into_iter()
            .filter(|l| l["notice"] == notice && l["customerId"] == customer.id.as_str())
            .collect();
        // No link in a text message, where links are what phishing looks like.
        for texted in notices.iter().filter(|l| l["channel"] == "SMS") {
            assert!(texted.get("lockdownUrl").is_none(), "{texted}");
            assert!(!texted.to_string().contains("#lockdown="), "{texted}");
        }
        let mailed = notices
            .iter()
            .rev()
            .find(|l| l["channel"] == "EMAIL")
            .expect("a mailed notice");
        let url = mailed["lockdownUrl"].as_str().expect("a lockdown link");
        assert!(mailed["text"].as_str().unwrap().contains(url), "{mailed}");
        url.strip_prefix("https://app.finhub.test/#lockdown=")
            .expect("the token in the fragment of the public address")
            .to_owned()
    }

    /// A session of `customer`'s, signed in elsewhere: the notice of its new device carries a
    /// link. Returns the session's tokens and the link's token.
    pub(crate) async fn thief_signs_in(&self, customer: &Customer) -> (Tokens, String) {
        tokens(
            self.login_from_browser(customer, Some(json!({"fingerprint": "laptop"})))
                .await,
        )
        .await;
        let thief = tokens(
            self.login_from_browser(customer, Some(json!({"fingerprint": "thief"})))
                .await,
        )
        .await;
        (thief, self.lockdown_token(customer, "unusual_login").await)
    }
}

on_both_stores!(a_lockdown_ends_every_session_and_locks_until_a_completed_reset);
async fn a_lockdown_ends_every_session_and_locks_until_a_completed_reset(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let mine = app.login_ok(&eve).await;
    // The thief adds an app of their own: the notice of it carries the link.
    app.add_app(&mine.bff).await;
    let token = app.lockdown_token(&eve, "factor.added").await;
    let pending = app.login_ok(&eve).await;

    let done = app.lockdown(&token).await;
    assert_eq!(done.status(), 204);
    assert_eq!(done.headers()["cache-control"], "no-store");

    for session in [&mine, &pending] {
        assert_problem(app.me(&session.bff).await, 401, "UNAUTHENTICATED").await;
    }
    assert_eq!(app.refresh(&mine.refresh).await.status(), 401);
    // The pending session cannot finish its second step either.
    assert_problem(app.initiate(&pending.bff).await, 401, "UNAUTHENTICATED").await;
    // Locked with no end to tell: not a lock from failures, which ends by itself.
    let locked = assert_problem(
        app.login(&eve.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;
    assert!(locked.get("lockedUntil").is_none(), "{locked}");
    // Each link once.
    assert_problem(app.lockdown(&token).await, 404, "NOT_FOUND").await;

    // On the record, with nothing secret.
    let events = app.audit_of_kind("account.lockdown").await;
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(done.len(), 1, "{events:?}");
    assert_eq!(done[0]["customerId"], eve.id.as_str());
    assert_eq!(done[0]["details"]["sessionsEnded"], 2);
    let trail = serde_json::to_string(&app.audit().await).unwrap();
    assert!(!trail.contains(&token));

    // Told everywhere, with no link of its own.
    while app.services.courier.deliver_due().await.unwrap() > 0 {}
    let mut told: Vec<(String, bool)> = app
        .notice_lines()
        .into_iter()
        .filter(|l| l["notice"] == "account.lockdown")
        .map(|l| {
            (
                l["channel"].as_str().unwrap().to_owned(),
                l.get("lockdownUrl").is_some(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [("EMAIL".to_owned(), false), ("SMS".to_owned(), false)]
    );

    // The app the notice told of went with the lockdown, so the reset that ends it asks for
    // the mailbox's code alone.
    let removed = app.audit_of_kind("factor.removed").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["reason"], "lockdown");
    assert_eq!(removed[0]["details"]["removed"], 1);
    let session = app.reset_session(&eve).await;
    assert_eq!(session.body["twoFactorRequired"], false);
    assert_problem(app.initiate(&session.bff).await, 409, "FACTOR_REQUIRED").await;
    let reset = app.complete_reset(&session.bff, NEW_PASSWORD).await;
    assert_eq!(reset.status(), 204);
    assert_eq!(app.login(&eve.username, NEW_PASSWORD).await.status(), 200);
}

on_both_stores!(a_lockdown_removes_what_the_thief_enrolled_and_keeps_what_came_before);
/// The attack: a thief who got past the password and a texted code (a swapped SIM) adds an
/// authenticator app and a phone of their own. Were they kept, they would answer the reset that
/// lifts the lockdown and every login after it, whichever notice's link the customer used:
/// here the newest, of the thief's phone, which the app predates, after the thief signed out.
async fn a_lockdown_removes_what_the_thief_enrolled_and_keeps_what_came_before(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", Some(TwoFactorMethod::Sms)).await;
    let mine = app.login_with_2fa(&eve).await;
    let codes = app.recovery_codes(&mine.bff).await;
    // Eve leaves her session be: it has idled out by the time of the thief's notices.
    app.clock.advance(Duration::minutes(20));

    let thief = app.login_with_2fa(&eve).await;
    app.add_app(&thief.bff).await;
    let first_app = "SELECT id FROM factors WHERE customer_id = $1 AND method = 'TOTP'";
    let first_app = app.customer_scalar::<String>(first_app, &eve).await;
    app.clock.advance(Duration::minutes(1));
    let thiefs_phone = "+447700900999";
    let added = app
        .add_factor_ok(&thief.bff, json!({"method": "SMS", "phone": thiefs_phone}))
        .await;
    let code = app.latest_code(&eve).await;
    assert_eq!(app.confirm(&thief.bff, &added, &code).await.status(), 200);
    let token = app.lockdown_token(&eve, "factor.added").await;
    assert_eq!(app.logout(&thief.bff, &json!({})).await.status(), 204);
    let held = "SELECT COUNT(*) FROM factors WHERE customer_id = $1";
    assert_eq!(app.customer_scalar::<i64>(held, &eve).await, 3);

    assert_eq!(app.lockdown(&token).await.status(), 204);

    // Eve's own phone and recovery codes, from a session that had idled out before the notice,
    // stay; the thief's app and phone go.
    let phones = "SELECT address FROM factors WHERE customer_id = $1";
    assert_eq!(app.customer_scalar::<i64>(held, &eve).await, 1);
    assert_eq!(
        app.customer_scalar::<String>(phones, &eve).await,
        "+447700900123"
    );
    let unused = "SELECT COUNT(*) FROM recovery_codes WHERE customer_id = $1 AND used_at IS NULL";
    assert_eq!(
        app.customer_scalar::<i64>(unused, &eve).await,
        i64::try_from(codes.len()).unwrap()
    );
    let removed = app.audit_of_kind("factor.removed").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["reason"], "lockdown");
    assert_eq!(removed[0]["customerId"], eve.id.as_str());
    assert_eq!(removed[0]["details"]["removed"], 2);
    assert_eq!(removed[0]["details"]["recoveryCodesRemoved"], 0);
    // Told at the profile's addresses only, never at a factor's, which may be the thief's.
    let told = app.told("account.lockdown").await;
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told.iter().all(|(_, to)| to != thiefs_phone), "{told:?}");

    // The reset asks for Eve's phone; the thief's app cannot even be asked for.
    let session = app.reset_session(&eve).await;
    assert_eq!(session.body["twoFactorRequired"], true);
    let problem = assert_problem(
        app.initiate_with(&session.bff, json!({"factorId": first_app}))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "factorId");
    let challenge: Value = app.initiate(&session.bff).await.json().await.unwrap();
    assert_eq!(challenge["method"], "SMS", "{challenge}");
    let challenge_id = challenge["challengeId"].as_str().unwrap();
    let code = app.latest_code(&eve).await;
    let proved = tokens(app.verify(&session.bff, challenge_id, &code).await).await;
    assert_eq!(
        app.complete_reset(&proved.bff, NEW_PASSWORD).await.status(),
        204
    );
}

on_both_stores!(a_factor_counts_as_enrolled_from_its_confirmation);
/// A thief's app whose enrolment began before the notice of its confirmation, from a session
/// that has ended since (the thief signed out): the notice's link still removes it.
async fn a_factor_counts_as_enrolled_from_its_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", Some(TwoFactorMethod::Sms)).await;
    app.clock.advance(Duration::minutes(5));
    let thief = app.login_with_2fa(&eve).await;
    let added = app
        .add_factor_ok(&thief.bff, json!({"method": "TOTP", "name": "Phone app"}))
        .await;
    app.clock.advance(Duration::minutes(2));
    let secret = added["secret"].as_str().unwrap();
    let code = crate::factors::totp_at(secret, app.clock.now());
    assert_eq!(app.confirm(&thief.bff, &added, &code).await.status(), 200);
    let token = app.lockdown_token(&eve, "factor.added").await;
    assert_eq!(app.logout(&thief.bff, &json!({})).await.status(), 204);

    assert_eq!(app.lockdown(&token).await.status(), 204);
    let apps = "SELECT COUNT(*) FROM factors WHERE customer_id = $1 AND method = 'TOTP'";
    assert_eq!(app.customer_scalar::<i64>(apps, &eve).await, 0);
    let held = "SELECT COUNT(*) FROM factors WHERE customer_id = $1";
    assert_eq!(app.customer_scalar::<i64>(held, &eve).await, 1);
}

on_both_stores!(an_unknown_altered_or_expired_link_changes_nothing);
async fn an_unknown_altered_or_expired_link_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let (thief, token) = app.thief_signs_in(&eve).await;

    // The attack: a link forged or edited to lock someone else out.
    let mut altered = token.clone().into_bytes();
    let at = altered.len() - 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for refused in ["AAAA", altered.as_str()] {
        assert_problem(app.lockdown(refused).await, 404, "NOT_FOUND").await;
    }
    assert_problem(app.lockdown("not/a token").await, 404, "NOT_FOUND").await;
    assert_problem(
        app.post_json(LOCKDOWN, &json!({}), None).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(app.me(&thief.bff).await.status(), 200);

    // Seven days on, the link no longer works.
    app.clock.advance(Duration::days(7) + Duration::minutes(1));
    assert_problem(app.lockdown(&token).await, 404, "NOT_FOUND").await;
    assert_eq!(app.login(&eve.username, PASSWORD).await.status(), 200);
    // Refusals are audited in aggregate, by address, as refused logins are.
    app.services.auth.flush_refusals().await;
    let refused = app.audit_of_kind("account.lockdown").await;
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|e| e["outcome"] == "failure"),
        "{refused:?}"
    );
}

on_both_stores!(a_link_works_on_any_instance_once);
async fn a_link_works_on_any_instance_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = second_instance(&app).await;
    let eve = app.create_customer("eve", None).await;
    let (thief, token) = app.thief_signs_in(&eve).await;

    assert_eq!(other.lockdown(&token).await.status(), 204);
    assert_problem(app.lockdown(&token).await, 404, "NOT_FOUND").await;
    assert_problem(app.me(&thief.bff).await, 401, "UNAUTHENTICATED").await;
}

on_both_stores!(an_operators_unlock_lifts_a_lockdown);
async fn an_operators_unlock_lifts_a_lockdown(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let (_, token) = app.thief_signs_in(&eve).await;
    assert_eq!(app.lockdown(&token).await.status(), 204);
    // Housekeeping keeps a lockdown, however long ago the counters changed.
    app.clock.advance(Duration::days(30));
    app.services.housekeeper.run_once().await.unwrap();
    assert_problem(
        app.login(&eve.username, PASSWORD).await,
        423,
        "ACCOUNT_LOCKED",
    )
    .await;

    let username = Username::parse(&eve.username).unwrap();
    app.services.accounts.unlock(&username).await.unwrap();
    assert_eq!(app.login(&eve.username, PASSWORD).await.status(), 200);
}

on_both_stores!(links_are_limited_like_logins);
async fn links_are_limited_like_logins(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.audit.key = Some("the-audit-key-of-the-lockdown-tests".into());
        s.limits.login_per_ip = "2/min".parse().ok();
    })
    .await;
    for _ in 0..2 {
        assert_problem(app.lockdown("AAAA").await, 404, "NOT_FOUND").await;
    }
    let limited = app.lockdown("AAAA").await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "RATE_LIMITED").await;
}

on_both_stores!(links_go_only_to_the_profiles_mailbox_never_to_a_factors);
/// The attack: a thief adds a mailbox of their own as a factor. Were notices to it to carry
/// links, they could lock the customer out again after every reset, and so keep their factor.
async fn links_go_only_to_the_profiles_mailbox_never_to_a_factors(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let session = app.login_ok(&eve).await;
    let added = app
        .add_factor_ok(
            &session.bff,
            json!({"method": "EMAIL", "email": "thief@example.net"}),
        )
        .await;
    let code = app.latest_code(&eve).await;
    assert_eq!(app.confirm(&session.bff, &added, &code).await.status(), 200);
    app.recovery_codes(&session.bff).await;
    while app.services.courier.deliver_due().await.unwrap() > 0 {}

    let notices: Vec<Value> = app
        .notice_lines()
        .into_iter()
        .filter(|l| l["notice"] == "recovery_codes.created")
        .collect();
    let to = |address: &str| {
        notices
            .iter()
            .find(|l| l["to"] == address)
            .unwrap_or_else(|| panic!("a notice to {address}: {notices:?}"))
    };
    assert!(to(&eve.username)["lockdownUrl"].is_string());
    let thiefs = to("thief@example.net");
    assert!(thiefs.get("lockdownUrl").is_none(), "{thiefs}");
    assert!(!thiefs.to_string().contains("#lockdown="), "{thiefs}");
}

on_both_stores!(a_change_checked_before_a_lockdown_does_not_commit_after_it);
/// The attack: the thief's request for new recovery codes passes its session check, the
/// customer's lockdown commits, and the thief's change commits after it, handing them codes.
/// The store holds the acting session in the change's own transaction, so it cannot.
async fn a_change_checked_before_a_lockdown_does_not_commit_after_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let eve = app.create_customer("eve", None).await;
    let (thief, token) = app.thief_signs_in(&eve).await;
    // The thief's request was checked here; the lockdown commits before its change does.
    assert_eq!(app.lockdown(&token).await.status(), 204);
    let customer = CustomerId::from_stored(eve.id.clone());
    let now = app.clock.now();
    let event = AuditEvent::new(AuditKind::RecoveryCodesCreated, Outcome::Success, now)
        .customer(&customer)
        .session(&SessionId::from_stored(thief.session_id.clone()));
    let outcome = app
        .services
        .store
        .replace_recovery_codes(&customer, &[[7u8; 32]], now, &[], &event)
        .await;
    assert!(
        matches!(outcome, Err(StoreError::SessionEnded)),
        "{outcome:?}"
    );
    let codes: i64 = app
        .customer_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE customer_id = $1",
            &eve,
        )
        .await;
    assert_eq!(codes, 0);
}
