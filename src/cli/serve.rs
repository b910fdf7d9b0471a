//! `serve` and `demo`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Settings;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::credentials::password::Password;
use crate::domain::customers::accounts::AccountError;
use crate::domain::customers::{
    CustomerId, Email, KycStatus, PersonName, Phone, Profile, Username,
};
use crate::startup::{Application, Jobs, Services, shutdown_signal};
use crate::store::DatabaseKind;

pub async fn serve(settings: &Settings, services: &Services) -> anyhow::Result<ExitCode> {
    if !services.seal.is_keyed() {
        tracing::warn!(
            "no FINHUB_AUDIT_KEY: the audit chain is sealed with plain SHA-256, which a database \
             writer can recompute, codes are stored as plain SHA-256 (a database reader finds \
             a live one in under a second), and codes awaiting delivery are sealed under a key \
             of this process alone (a restart or another instance cannot deliver them), as are \
             passkey logins' ceremonies (one is answered only on the instance that opened it) \
             and the lockdown links in e-mailed notices (one works only on the instance that sent \
             it, until it restarts); set a key kept outside the database"
        );
    }
    let app = Application::build(settings, services).await?;
    let jobs = Jobs::start(settings, services)?;
    let scheme = if app.is_tls() { "https" } else { "http" };
    match app.ops_address() {
        Some(ops) => {
            tracing::info!(address = %app.address(), scheme, ops = %ops, "finhub-auth listening");
        }
        None => tracing::info!(address = %app.address(), scheme, "finhub-auth listening"),
    }
    run(app, jobs, services).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Serves until SIGINT or SIGTERM, then stops in order: the listeners (finishing the requests
/// in flight), the background jobs (auditing the refusals counted meanwhile), and last the
/// store's connections, which both of them use.
async fn run(app: Application, mut jobs: Jobs, services: &Services) -> anyhow::Result<()> {
    let served = app.run_until(shutdown_signal()).await;
    jobs.stop().await;
    services.close().await;
    served.context("serving")
}

/// The demo's one password; it is printed, so it must never be a real customer's.
const DEMO_PASSWORD: &str = "finhub-demo-2026";

/// The demo seeds customers whose password is public: it runs only on an SQLite file of its
/// own, never on a shared database (a `FINHUB_DATABASE_URL` left pointing at PostgreSQL would
/// put those logins into a real customer base). Checked before the store is opened, so such a
/// database is not even migrated.
pub fn refuse_foreign_store(settings: &Settings) -> anyhow::Result<()> {
    match DatabaseKind::of(&settings.store.url) {
        Some(DatabaseKind::Sqlite) => Ok(()),
        _ => anyhow::bail!(
            "demo refuses FINHUB_DATABASE_URL {}: it seeds customers with a public password, so it runs only on an SQLite file of its own (unset FINHUB_DATABASE_URL, or set it to sqlite://PATH)",
            scheme_of(&settings.store.url)
        ),
    }
}

/// The scheme of a database URL, which names the kind of store without the credentials the
/// rest of it may hold.
fn scheme_of(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "(not a URL)".to_owned(),
    }
}

pub async fn demo(settings: &Settings, services: &Services) -> anyhow::Result<ExitCode> {
    if !settings.server.listen.ip().is_loopback() {
        anyhow::bail!(
            "demo refuses to listen on {}: its passwords are public, so it binds loopback addresses only (set FINHUB_LISTEN=127.0.0.1:PORT)",
            settings.server.listen
        );
    }
    seed(
        services,
        "alice@demo.finhub.test",
        "Alice",
        "Demo",
        "+447700900001",
        KycStatus::Verified,
        None,
    )
    .await?;
    seed(
        services,
        "bob@demo.finhub.test",
        "Bob",
        "Demo",
        "+447700900002",
        KycStatus::Pending,
        Some(TwoFactorMethod::Sms),
    )
    .await?;
    let app = Application::build_demo(settings, services).await?;
    let jobs = Jobs::start(settings, services)?;
    let scheme = if app.is_tls() { "https" } else { "http" };
    println!("FinHub Auth demo on {scheme}://{}", app.address());
    println!("  alice@demo.finhub.test / {DEMO_PASSWORD}  (no 2FA, KYC VERIFIED)");
    println!(
        "  bob@demo.finhub.test   / {DEMO_PASSWORD}  (SMS 2FA, KYC PENDING; codes go to {})",
        settings.notifier.outbox_path.display()
    );
    println!(
        "  sign in at {scheme}://{0}/ ; the demo inbox with the codes: {scheme}://{0}/demo/inbox",
        app.address()
    );
    if let Some(origin) = &settings.passkeys.webauthn_origin {
        println!("  passkeys are bound to {origin}: open the pages there to add or use one");
    }
    run(app, jobs, services).await?;
    Ok(ExitCode::SUCCESS)
}

async fn seed(
    services: &Services,
    username: &str,
    first: &str,
    last: &str,
    phone: &str,
    kyc: KycStatus,
    two_factor: Option<TwoFactorMethod>,
) -> anyhow::Result<()> {
    let username = Username::parse(username)?;
    if services.accounts.exists(&username).await? {
        return Ok(());
    }
    let profile = Profile {
        id: CustomerId::generate(),
        email: Email::parse(username.as_str())?,
        username,
        phone: Some(Phone::parse(phone)?),
        first_name: PersonName::parse(first)?,
        last_name: PersonName::parse(last)?,
        kyc_status: kyc,
        two_factor,
    };
    match services
        .accounts
        .create(profile, &Password::parse(DEMO_PASSWORD.into())?)
        .await
    {
        // Another process seeded it first: that is the idempotent outcome too.
        Ok(()) | Err(AccountError::UsernameTaken(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
