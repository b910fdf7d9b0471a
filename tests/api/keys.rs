//! Purpose keys derived from the audit key: the stored hashes of codes, and the audit chain's
//! links, including a chain begun under the audit key itself by an earlier version.

use finhub_auth::domain::audit::trail::{TrailError, verify};
use finhub_auth::domain::audit::{AuditEvent, AuditKind, ChainBreak, Outcome};
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use finhub_auth::domain::keys::KeyId;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, assert_problem, second_instance_with, spawn_app_with, tokens,
};

const AUDIT_KEY: &str = "an-audit-key-of-at-least-32-bytes-long";

async fn app_with_key(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.audit.key = Some(AUDIT_KEY.into())).await
}

on_both_stores!(a_database_reader_cannot_recover_a_live_code_from_its_stored_hash);
/// The attack: whoever reads the database (a backup, a replica, an injection elsewhere) used to
/// find a live code in under a second from `challenges.code_hash`, a plain SHA-256 of the
/// challenge id and a six-digit code. With a key the stored hash is an HMAC under a key kept
/// outside the database, and the right code still verifies.
async fn a_database_reader_cannot_recover_a_live_code_from_its_stored_hash(backend: Backend) {
    let app = app_with_key(backend).await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    let stored: Vec<u8> = app
        .customer_scalar(
            "SELECT c.code_hash FROM challenges c JOIN sessions s ON s.id = c.session_id \
             WHERE s.customer_id = $1",
            &bob,
        )
        .await;
    let code = app.latest_code(&bob).await;

    let plain = |code: &str| Sha256::digest(format!("{challenge}:{code}")).to_vec();
    assert_ne!(stored, plain(&code));
    // What an attacker without the key would try: every code's plain hash, in either place the
    // digest could sit. None is the stored one.
    let digest = stored
        .get(stored.len().saturating_sub(32)..)
        .unwrap_or_default();
    let found = (0..1_000_000u32)
        .step_by(997)
        .chain(code.parse::<u32>().ok())
        .map(|n| plain(&format!("{n:06}")))
        .any(|guess| guess == stored || guess == digest);
    assert!(!found, "a plain hash of a code matches the stored one");

    tokens(app.verify(&pending.bff, &challenge, &code).await).await;
}

/// HMAC-SHA256 under `key` of a link, as every version computes it.
fn link(key: &[u8], prefix: &str, prev: &str, seq: i64, event: &AuditEvent) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(prev.as_bytes());
    mac.update(b"\n");
    mac.update(seq.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(&serde_json::to_vec(event).expect("json"));
    format!("{prefix}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Appends `event` at `seq` after `prev` with the link `hash`, past the service (as an earlier
/// version, or an insider, would have written it), and moves the head.
async fn insert_link(app: &TestApp, seq: i64, event: &AuditEvent, prev: &str, hash: &str) {
    let sql = format!(
        "INSERT INTO audit_events (seq, id, at, kind, outcome, reason, username, customer_id, \
         session_id, ip, user_agent, device_fingerprint, device_name, details, prev_hash, hash) \
         VALUES ({seq}, '{}', {}, '{}', '{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', '{prev}', '{hash}'); \
         UPDATE audit_head SET seq = {seq}, hash = '{hash}' WHERE id = 1;",
        event.id,
        event.at.unix_timestamp() * 1000,
        event.kind.as_str(),
        event.outcome.as_str(),
        event.reason.as_deref().unwrap_or_default(),
    );
    app.execute(&sql).await;
}

impl TestApp {
    /// Runs `sql` on the test's database, past the service.
    async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let url = self.db_url();
        if url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect("sql");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect("sql");
        }
    }
}

on_both_stores!(
    a_chain_linked_under_the_raw_audit_key_verifies_after_the_upgrade_and_forgery_is_still_caught
);
/// Earlier versions linked the chain under the audit key itself; links now use a key derived
/// from it for the chain alone. A chain begun the old way must still verify once continued (the
/// switch is marked by `audit.chain_key_derived`), and a forged link must still break it.
async fn a_chain_linked_under_the_raw_audit_key_verifies_after_the_upgrade_and_forgery_is_still_caught(
    backend: Backend,
) {
    let app = app_with_key(backend).await;
    let store = app.services.store.as_ref();
    assert_eq!(store.audit_head().await.unwrap().0, 0, "a fresh chain");

    // Three links as an earlier version wrote them: "hmac:" under the audit key itself.
    let mut prev = "0".repeat(64);
    for seq in 1..=3 {
        let event = AuditEvent::new(
            AuditKind::LoginFailed,
            Outcome::Failure,
            OffsetDateTime::from_unix_timestamp(1_800_000_000 + seq).unwrap(),
        )
        .reason("invalid_credentials");
        let hash = link(AUDIT_KEY.as_bytes(), "hmac:", &prev, seq, &event);
        insert_link(&app, seq, &event, &prev, &hash).await;
        prev = hash;
    }
    assert_eq!(verify(store, &app.services.seal).await.unwrap().events, 3);

    // The upgraded service continues the chain: a marker, then links under the derived key.
    app.create_customer("alice", None).await;
    let events = app.audit().await;
    assert_eq!(events[3]["kind"], "audit.chain_key_derived");
    assert_eq!(events[3]["details"]["rawKeyThroughSeq"], 3);
    assert!(
        events[3..]
            .iter()
            .all(|e| e["hash"].as_str().unwrap().starts_with("hmac2:"))
    );
    let verified = verify(store, &app.services.seal).await.unwrap();
    assert_eq!(verified.events, events.len() as u64);

    // An insider appends a link under a key of their own: caught.
    let (head_seq, head_hash) = store.audit_head().await.unwrap();
    let forged = AuditEvent::new(
        AuditKind::AccountUnlocked,
        Outcome::Success,
        OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap(),
    )
    .reason("operator");
    let hash = link(
        b"a key of the insider's own choosing",
        "hmac2:",
        &head_hash,
        head_seq + 1,
        &forged,
    );
    insert_link(&app, head_seq + 1, &forged, &head_hash, &hash).await;
    match verify(store, &app.services.seal).await {
        Err(TrailError::Broken(ChainBreak::Altered { seq, .. })) => assert_eq!(seq, head_seq + 1),
        other => panic!("the forged link passed: {other:?}"),
    }
}

const BEFORE: &str = "the audit key before the rotation";
const AFTER: &str = "the audit key after the rotation.";

/// An instance over `app`'s database whose current audit key is `current`, with `previous` kept.
async fn rotated(app: &TestApp, current: &str, previous: &[&str]) -> TestApp {
    second_instance_with(app, |s| {
        s.audit.key = Some(current.into());
        s.audit.previous_keys = previous.iter().map(|k| (*k).into()).collect();
    })
    .await
}

on_both_stores!(a_rotation_of_the_audit_key_loses_nothing_and_the_old_key_can_then_be_retired);
/// The response to a leaked audit key: a new one becomes current and the leaked one is kept
/// as previous until what it protects has moved. Nothing a customer holds may break meanwhile:
/// an app's secret, a recovery code, a code already sent, a known device; the audit chain must
/// verify across the switch; and once the app's secret and the device have been used once,
/// the leaked key can be dropped.
async fn a_rotation_of_the_audit_key_loses_nothing_and_the_old_key_can_then_be_retired(
    backend: Backend,
) {
    let before = spawn_app_with(backend, |s| s.audit.key = Some(BEFORE.into())).await;
    let laptop = || Some(json!({"fingerprint": "alices-laptop", "name": "Laptop"}));
    let alice = before.create_customer("alice", None).await;
    tokens(before.login_from_browser(&alice, laptop()).await).await;
    let session = before.login_ok(&alice).await;
    let secret = before.add_app(&session.bff).await;
    let codes = before.recovery_codes(&session.bff).await;
    // Bob is mid-login: his code is hashed, and sealed in the outbox, under the old key.
    let bob = before
        .create_customer("bob", Some(TwoFactorMethod::Sms))
        .await;
    let bobs_login = before.login_ok(&bob).await;
    let bobs_challenge = before.initiate_ok(&bobs_login.bff).await;
    let sealed_secret = || async {
        before
            .customer_scalar::<Vec<u8>>(
                "SELECT secret FROM factors WHERE customer_id = $1 AND method = 'TOTP'",
                &alice,
            )
            .await
    };
    let secret_under_old_key = sealed_secret().await;

    // As docs/keys.md says: first the new key made known, then current.
    rotated(&before, BEFORE, &[AFTER]).await;
    let after = rotated(&before, AFTER, &[BEFORE]).await;

    // The code sealed and hashed under the old key is delivered and accepted.
    let code = after.latest_code(&bob).await;
    tokens(after.verify(&bobs_login.bff, &bobs_challenge, &code).await).await;
    // The laptop is still known: no NEW_DEVICE, and it is moved to its hash under the new key.
    let login = tokens(after.login_from_browser(&alice, laptop()).await).await;
    let logins = after.audit_of_kind("login.succeeded").await;
    let last = logins.last().unwrap();
    assert_eq!(last["details"]["flags"], json!([]), "the laptop looked new");
    let devices: i64 = after
        .customer_scalar(
            "SELECT COUNT(*) FROM devices WHERE customer_id = $1",
            &alice,
        )
        .await;
    assert_eq!(devices, 1, "the laptop was recorded twice");
    // The app's code is accepted, and its secret sealed again under the new key.
    let challenge = after.initiate_ok(&login.bff).await;
    let active = tokens(
        after
            .verify(&login.bff, &challenge, &after.next_totp(&secret))
            .await,
    )
    .await;
    assert_ne!(
        sealed_secret().await,
        secret_under_old_key,
        "not sealed again"
    );
    // The customer's history still names the laptop on the sign-in from before the rotation.
    let events = after
        .get_json("/api/v1/customers/me/security-events", &active.bff)
        .await;
    let named: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "login.succeeded")
        .map(|e| e["device"]["name"].clone())
        .collect();
    assert!(named.len() >= 2, "{events}");
    assert_eq!(named.first(), Some(&json!("Laptop")), "{events}");
    assert_eq!(
        named.last(),
        Some(&json!("Laptop")),
        "before the rotation: {events}"
    );
    // A recovery code made under the old key works once.
    let pending = after.login_ok(&alice).await;
    let challenge = after
        .post_json(
            "/api/v1/auth/2fa/initiate",
            &json!({"method": "RECOVERY_CODE"}),
            Some(&pending.bff),
        )
        .await;
    assert_eq!(challenge.status(), 202);
    let challenge: Value = challenge.json().await.unwrap();
    let challenge = challenge["challengeId"].as_str().unwrap();
    tokens(after.verify(&pending.bff, challenge, &codes[0]).await).await;

    // The chain: each step is marked at start-up (links begin to name the old key, then the
    // new one), and it verifies across both under both keys.
    let rotation = after.audit_of_kind("audit.key_rotated").await;
    assert_eq!(rotation.len(), 2);
    let (old_id, new_id) = (KeyId::of(BEFORE.as_bytes()), KeyId::of(AFTER.as_bytes()));
    assert_eq!(rotation[0]["details"]["keyId"], old_id.as_str());
    assert_eq!(rotation[1]["details"]["previousKeyId"], old_id.as_str());
    assert_eq!(rotation[1]["details"]["keyId"], new_id.as_str());
    let store = after.services.store.as_ref();
    let verified = verify(store, &after.services.seal).await.unwrap();
    // An instance still configured with the old key alone (never given the new one) refuses to
    // write rather than switch the chain back to its key: it answers 503, and the chain holds.
    assert_problem(
        before.login(&alice.username, PASSWORD).await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert_eq!(
        verify(store, &after.services.seal).await.unwrap().events,
        verified.events
    );
    assert_eq!(verified.events, after.audit().await.len() as u64);

    // The old key retired: what moved still works; the chain before the switch cannot be
    // checked without it, and the verifier says so (naming the key where links name it).
    let retired = rotated(&before, AFTER, &[]).await;
    let pending = retired.login_ok(&alice).await;
    let challenge = retired.initiate_ok(&pending.bff).await;
    let code = retired.next_totp(&secret);
    tokens(retired.verify(&pending.bff, &challenge, &code).await).await;
    tokens(retired.login_from_browser(&alice, laptop()).await).await;
    let logins = retired.audit_of_kind("login.succeeded").await;
    assert_eq!(logins.last().unwrap()["details"]["flags"], json!([]));
    match verify(store, &retired.services.seal).await {
        Err(TrailError::Broken(ChainBreak::NoKeyMatches { seq: 1, .. })) => {}
        other => panic!("the chain verified without the key that sealed it: {other:?}"),
    }
}
