//! Upgrading a database made by the previous version: what it holds keeps working.

use std::path::Path;

use finhub_auth::domain::credentials::challenge::OtpCode;
use finhub_auth::domain::credentials::factor::FactorKind;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::domain::credentials::password::Password;
use finhub_auth::domain::customers::{CustomerId, Email, Phone};
use finhub_auth::domain::delivery::{CodeSeal, SealedFor};
use serde_json::{Value, json};
use sqlx::migrate::Migrator;

use crate::helpers::{Backend, Customer, PASSWORD, PgSchema, TestApp, spawn_app_with};

const AUDIT_KEY: &str = "an-audit-key-of-at-least-32-bytes-long";
/// The last migration of the version before the one outbox of messages.
const PREVIOUS: &str = "0005";

/// The migrations of the previous version, for `backend`, in a directory of their own.
fn previous_migrations(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() <= PREVIOUS || name.starts_with(PREVIOUS) {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    dir
}

/// A customer with SMS 2FA, a pending session and a code queued for it, and customers with
/// e-mail 2FA, without 2FA and with SMS 2FA but no phone, as the previous version stored them.
const ROWS: [&str; 7] = [
    "INSERT INTO customers (id, username, email, phone, first_name, last_name, kyc_status, \
     two_factor_method, password_hash, created_at) VALUES ('c-1', 'bob@example.com', \
     'bob@example.com', '+447700900123', 'Bob', 'Tester', 'VERIFIED', 'SMS', 'x', $1)",
    "INSERT INTO sessions (id, customer_id, state, access_hash, refresh_hash, created_at, \
     expires_at, absolute_expires_at, last_seen_at, codes_sent, last_code_sent_at) \
     VALUES ('s-1', 'c-1', 'TWO_FACTOR_PENDING', $2, $3, $1, $4, $4, $1, 1, $1)",
    "INSERT INTO challenges (id, session_id, method, destination, code_hash, created_at, \
     expires_at) VALUES ('ch-1', 's-1', 'SMS', '+44*******23', $2, $1, $4)",
    "INSERT INTO outbox (challenge_id, session_id, customer_id, channel, address, sealed_code, \
     valid_for_minutes, created_at, expires_at, next_attempt_at) \
     VALUES ('ch-1', 's-1', 'c-1', 'SMS', '+447700900123', $5, 10, $1, $4, $1)",
    "INSERT INTO customers (id, username, email, phone, first_name, last_name, kyc_status, \
     two_factor_method, password_hash, created_at) VALUES ('c-2', 'eve@example.com', \
     'eve@example.com', NULL, 'Eve', 'Tester', 'VERIFIED', 'EMAIL', 'x', $1)",
    "INSERT INTO customers (id, username, email, phone, first_name, last_name, kyc_status, \
     two_factor_method, password_hash, created_at) VALUES ('c-3', 'ann@example.com', \
     'ann@example.com', '+447700900124', 'Ann', 'Tester', 'VERIFIED', NULL, 'x', $1)",
    "INSERT INTO customers (id, username, email, phone, first_name, last_name, kyc_status, \
     two_factor_method, password_hash, created_at) VALUES ('c-4', 'kim@example.com', \
     'kim@example.com', NULL, 'Kim', 'Tester', 'VERIFIED', 'SMS', 'x', $1)",
];

macro_rules! previous_version_database {
    ($pool:expr, $backend:literal, $sealed:expr) => {{
        let pool = $pool;
        let dir = previous_migrations($backend);
        Migrator::new(dir.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let now = time::OffsetDateTime::now_utc();
        let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let later = ms(now + time::Duration::minutes(10));
        for sql in ROWS {
            // A customer's row uses only the first of the five values.
            let mut insert = sqlx::query(sql).bind(ms(now));
            if (2..=5).any(|n| sql.contains(&format!("${n}"))) {
                insert = insert
                    .bind(vec![1u8; 32])
                    .bind(vec![2u8; 32])
                    .bind(later)
                    .bind($sealed.clone());
            }
            insert.execute(&pool).await.unwrap();
        }
        pool.close().await;
    }};
}

/// An instance started on a database made by the previous version, with its rows.
struct Upgraded {
    app: TestApp,
    _dir: tempfile::TempDir,
    _schema: Option<PgSchema>,
}

async fn upgraded(backend: Backend) -> Upgraded {
    let seal = CodeSeal::derived_from(&finhub_auth::domain::keys::AuditKeys::single(
        AUDIT_KEY.as_bytes(),
    ))
    .unwrap();
    let sealed_for = SealedFor {
        subject: "ch-1",
        channel: TwoFactorMethod::Sms,
        address: "+447700900123",
    };
    let sealed = seal
        .seal(&OtpCode::parse("123456").unwrap(), &sealed_for)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (url, schema) = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            previous_version_database!(pool, "sqlite", sealed);
            // The service refuses database files others can read.
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .unwrap();
            }
            (url, None)
        }
        Backend::Postgres => {
            let schema = PgSchema::create().await;
            let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
            previous_version_database!(pool, "postgres", sealed);
            (schema.url(), Some(schema))
        }
    };
    let app = spawn_app_with(backend, |s| {
        s.store.url = url;
        s.audit.key = Some(AUDIT_KEY.into());
    })
    .await;
    Upgraded {
        app,
        _dir: dir,
        _schema: schema,
    }
}

on_both_stores!(a_code_queued_by_the_previous_version_is_delivered_once_after_the_upgrade);
async fn a_code_queued_by_the_previous_version_is_delivered_once_after_the_upgrade(
    backend: Backend,
) {
    // Named, not `..`: the database must outlive the test.
    let Upgraded { app, _dir, _schema } = upgraded(backend).await;

    app.services.courier.deliver_due().await.unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(app.outbox_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["challengeId"], "ch-1");
    assert_eq!(lines[0]["code"], "123456");
    assert_eq!(app.audit_of_kind("2fa.delivered").await.len(), 1);
    app.clock.advance(time::Duration::seconds(70));
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(app.outbox_path())
            .unwrap()
            .lines()
            .count(),
        1,
        "sent once"
    );
}

on_both_stores!(two_factor_settings_of_the_previous_version_become_factors);
async fn two_factor_settings_of_the_previous_version_become_factors(backend: Backend) {
    let Upgraded { app, _dir, _schema } = upgraded(backend).await;
    let store = &app.services.store;
    let factor_of = |id: &'static str| async move {
        let customer = store
            .customer_by_id(&CustomerId::from_stored(id.into()))
            .await
            .unwrap()
            .unwrap();
        let held = store.factors(&customer.id).await.unwrap();
        (customer.factor.map(|f| f.kind), held.len())
    };
    let phone = |p| Some(FactorKind::Sms(Phone::parse(p).unwrap()));
    let mailbox = |m| Some(FactorKind::Email(Email::parse(m).unwrap()));
    // SMS to the profile's phone, e-mail to its mailbox, each the default and only factor.
    assert_eq!(factor_of("c-1").await, (phone("+447700900123"), 1));
    assert_eq!(factor_of("c-2").await, (mailbox("eve@example.com"), 1));
    assert_eq!(factor_of("c-3").await, (None, 0));
    // SMS without a phone could never send: the customer keeps two-factor, by e-mail, rather
    // than losing it.
    assert_eq!(factor_of("c-4").await, (mailbox("kim@example.com"), 1));

    // A migrated customer's login still asks for the code, and it goes to the same phone.
    let password = Password::parse(PASSWORD.into()).unwrap();
    let hash = app
        .services
        .accounts
        .hasher()
        .hash(&password)
        .await
        .unwrap();
    let bob = Customer {
        id: "c-1".into(),
        username: "bob@example.com".into(),
    };
    let _: String = app
        .customer_scalar(
            &format!("UPDATE customers SET password_hash = '{hash}' WHERE id = $1 RETURNING id"),
            &bob,
        )
        .await;
    let pending = app.login_ok(&bob).await;
    assert_eq!(pending.body["twoFactorRequired"], true);
    let initiated = app
        .post_json("/api/v1/auth/2fa/initiate", &json!({}), Some(&pending.bff))
        .await;
    assert_eq!(initiated.status(), 202);
    let body: Value = initiated.json().await.unwrap();
    assert_eq!(body["method"], "SMS");
    assert_eq!(body["destination"], "+44********23");
    let code = app.latest_code(&bob).await;
    let verified = app
        .verify(&pending.bff, body["challengeId"].as_str().unwrap(), &code)
        .await;
    assert_eq!(verified.status(), 200);

    // Methods are no longer CHECK lists: a method this version does not know is stored.
    let _: String = app
        .customer_scalar(
            "UPDATE challenges SET method = 'TOTP' WHERE session_id IN \
             (SELECT id FROM sessions WHERE customer_id = $1) RETURNING id",
            &bob,
        )
        .await;
}
