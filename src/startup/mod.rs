//! Wiring: from settings to a running service. The CLI and the tests build the service the same
//! way, through [`Services::build`] and [`Application::build`], and start its background work
//! with [`Jobs::start`].
//!
//! `adapters` chooses what fills each port, `server` binds and runs the listeners, and
//! `jobs` runs and stops the background work.

mod adapters;
mod jobs;
mod server;

use std::sync::Arc;

use anyhow::Context as _;

pub use self::adapters::{GeneratedKey, open_store, settle_audit_key};
pub use self::jobs::Jobs;
pub use self::server::{Application, shutdown_signal};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::audit::ChainSeal;
use crate::domain::auth::AuthService;
use crate::domain::credentials::password::PasswordHasher;
use crate::domain::customers::accounts::Accounts;
use crate::domain::delivery::{Courier, DeliveryPolicy};
use crate::domain::housekeeping::Housekeeper;
use crate::domain::ports::{HousekeepingStore, OutboxStore, Store};
use crate::domain::risk::location::Locator;
use crate::domain::risk::rate_limit::RateLimits;
use crate::geo::MmdbLocator;
use crate::store::Migrations;

/// The domain services over an opened store.
#[derive(Clone)]
pub struct Services {
    /// The one store every service and background job shares.
    pub store: Arc<dyn Store>,
    /// How the audit chain is sealed, for verifying it.
    pub seal: ChainSeal,
    /// Request limits, shared through Redis when configured.
    pub limits: Arc<RateLimits>,
    /// The login flow.
    pub auth: AuthService,
    /// Operator actions on customers: create, import, lock, unlock.
    pub accounts: Accounts,
    /// Removes what the retention settings no longer keep.
    pub housekeeper: Housekeeper,
    /// Delivers the messages (codes, notices) waiting in the outbox.
    pub courier: Courier,
    /// What the background jobs ask the time (audit anchors).
    pub clock: Arc<dyn Clock>,
    /// The location database, which the background jobs reload when it is replaced.
    locations: Option<Arc<MmdbLocator>>,
}

/// The operator's account actions over a store: hashing new passwords, but no login checks,
/// so nothing is prepared for them.
pub async fn accounts(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Accounts> {
    let store = open_store(settings, Migrations::Apply).await?;
    let hashing = &settings.hashing;
    let hasher =
        PasswordHasher::for_new_passwords(hashing.cost(), hashing.threads(), hashing.queue)
            .context(HASHING_SETTINGS)?;
    let mut policy = settings.passwords.policy();
    policy.breaches = adapters::breached_passwords(&settings.passwords)?;
    Ok(Accounts::new(
        store,
        clock,
        hasher,
        policy,
        settings.sessions.policy(),
    ))
}

const HASHING_SETTINGS: &str =
    "FINHUB_HASH_MEMORY_KIB / FINHUB_HASH_ITERATIONS / FINHUB_HASH_PARALLELISM";

impl Services {
    /// Opens the store (applying migrations) and builds the services the settings describe.
    /// Nothing runs in the background until [`Jobs::start`].
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let seal = settings.audit.chain_seal()?;
        let store = open_store(settings, Migrations::Apply).await?;
        switch_chain_to_current_key(store.as_ref(), &seal, clock.now()).await?;
        let hashing = &settings.hashing;
        let hasher = PasswordHasher::new(hashing.cost(), hashing.threads(), hashing.queue)
            .await
            .context(HASHING_SETTINGS)?;
        let notifier = adapters::notifier(&settings.notifier)?;
        let limits = Arc::new(adapters::rate_limits(&settings.limits).await?);
        let locations = adapters::locator(settings)?;
        let courier = Courier::new(
            Arc::clone(&store) as Arc<dyn OutboxStore>,
            notifier,
            Arc::clone(&clock),
            settings.audit.code_seal()?,
            DeliveryPolicy {
                max_attempts: settings.notifier.delivery_attempts.get(),
                ..DeliveryPolicy::default()
            },
            adapters::code_template(&settings.notifier)?,
            settings.lockdown_links()?,
        );
        let courier = match adapters::webhooks(&settings.webhooks)? {
            Some(sender) => courier.with_webhooks(sender),
            None => courier,
        };
        let mut policies = settings.policies()?;
        policies.passwords.breaches = adapters::breached_passwords(&settings.passwords)?;
        let password_policy = policies.passwords.clone();
        let auth = AuthService::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            hasher.clone(),
            policies,
            Arc::clone(&limits),
            courier.clone(),
        );
        let auth = match &locations {
            Some(locator) => auth.locating_with(Arc::clone(locator) as Arc<dyn Locator>),
            None => auth,
        };
        let auth = match adapters::passkeys(settings)? {
            Some(ceremonies) => auth.with_passkeys(ceremonies),
            None => auth,
        };
        let accounts = Accounts::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            hasher,
            password_policy,
            settings.sessions.policy(),
        );
        let housekeeper = Housekeeper::new(
            Arc::clone(&store) as Arc<dyn HousekeepingStore>,
            Arc::clone(&clock),
            settings.retention(),
        );
        Ok(Self {
            store,
            seal,
            limits,
            auth,
            accounts,
            housekeeper,
            courier,
            clock,
            locations,
        })
    }

    /// Closes the store's connections: the last step of a shutdown, after the listeners and
    /// the jobs have stopped.
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// With a key, a chain begun without one (an earlier version, or a key generated beside the
/// SQLite database only now), or sealed under another audit key (a rotation), is switched to
/// the current key at start-up, at its marked event (`audit.sealed_with_key`,
/// `audit.key_rotated`), rather than at the first event a customer happens to cause: until
/// then `audit verify` with the key would refuse a chain that is plain to its end, and the
/// links under the previous key would be the newest.
async fn switch_chain_to_current_key(
    store: &dyn Store,
    seal: &ChainSeal,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let Some(current) = seal.current_key() else {
        return Ok(());
    };
    let (seq, hash) = store
        .audit_head()
        .await
        .context("reading the audit chain's head")?;
    let Some(marker) = seal.switch_marker(seq, &hash, now)? else {
        return Ok(());
    };
    store
        .append_event(&marker)
        .await
        .context("sealing the audit chain with the current key")?;
    tracing::info!(
        through_seq = seq,
        key_id = %current,
        marker = marker.kind.as_str(),
        "the audit chain is sealed under the current audit key from here on"
    );
    Ok(())
}
