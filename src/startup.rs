//! Wiring: from settings to a running service. The CLI and the tests build the service the same
//! way, through [`Services::build`] and [`Application::build`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{NotifierKind, Settings};
use crate::domain::accounts::Accounts;
use crate::domain::audit::ChainSeal;
use crate::domain::auth::AuthService;
use crate::domain::housekeeping::Housekeeper;
use crate::domain::password::{HashCost, PasswordHasher};
use crate::domain::ports::{Notifier, Store};
use crate::domain::rate_limit::RateLimits;
use crate::http::client_ip::TrustedProxies;
use crate::http::state::AppState;
use crate::notify::outbox::OutboxNotifier;
use crate::store::{self, ConnectOptions, Migrations};

/// The domain services over an opened store.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    /// How the audit chain is sealed, for verifying it.
    pub seal: ChainSeal,
    pub limits: Arc<RateLimits>,
    pub auth: AuthService,
    pub accounts: Accounts,
    pub housekeeper: Housekeeper,
}

impl Services {
    /// Opens the store (applying migrations) and builds the services the settings describe.
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let options = ConnectOptions {
            max_connections: settings.db_max_connections,
            acquire_timeout: settings.db_acquire_timeout.unsigned_abs(),
            statement_timeout: settings.db_statement_timeout.unsigned_abs(),
        };
        let seal = settings.chain_seal();
        let store = store::connect(
            &settings.database_url,
            &options,
            Migrations::Apply,
            seal.clone(),
        )
        .await?;
        let cost = HashCost {
            memory_kib: settings.hash_memory_kib,
            iterations: settings.hash_iterations,
            parallelism: settings.hash_parallelism,
        };
        let hasher = PasswordHasher::new(cost, settings.hash_threads(), settings.hash_queue)
            .context("FINHUB_HASH_MEMORY_KIB / FINHUB_HASH_ITERATIONS / FINHUB_HASH_PARALLELISM")?;
        let notifier = notifier(settings)?;
        let limits = Arc::new(settings.rate_limits());
        let auth = AuthService::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            hasher.clone(),
            notifier,
            settings.policies(),
            Arc::clone(&limits),
        );
        let accounts = Accounts::new(Arc::clone(&store), Arc::clone(&clock), hasher);
        let housekeeper = Housekeeper::new(Arc::clone(&store), clock, settings.retention());
        Ok(Self {
            store,
            seal,
            limits,
            auth,
            accounts,
            housekeeper,
        })
    }
}

fn notifier(settings: &Settings) -> anyhow::Result<Arc<dyn Notifier>> {
    match settings.notifier {
        NotifierKind::Outbox => {
            let outbox = OutboxNotifier::new(&settings.outbox_path).with_context(|| {
                format!(
                    "FINHUB_OUTBOX_PATH: cannot use {}",
                    settings.outbox_path.display()
                )
            })?;
            Ok(Arc::new(outbox))
        }
        NotifierKind::Live => anyhow::bail!(
            "FINHUB_NOTIFIER=live: SMTP and SMS gateway delivery are not available in this version; use outbox"
        ),
    }
}

/// A bound, ready-to-run HTTP service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    address: SocketAddr,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and builds the router.
    pub async fn build(settings: &Settings, services: &Services) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("FINHUB_LISTEN: cannot bind {}", settings.listen))?;
        let address = listener.local_addr()?;
        let state = AppState {
            auth: services.auth.clone(),
            store: Arc::clone(&services.store),
            limits: Arc::clone(&services.limits),
            metrics: crate::telemetry::metrics_handle(),
            proxies: TrustedProxies::new(settings.trusted_proxies.clone()),
        };
        metrics::gauge!("finhub_up").set(1.0);
        spawn_housekeeping(
            services.housekeeper.clone(),
            Arc::clone(&services.limits),
            settings.housekeeping_interval.unsigned_abs(),
        );
        let router = crate::http::router(state, settings.request_timeout.unsigned_abs());
        Ok(Self {
            listener,
            router,
            address,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Runs housekeeping on every instance: purging ended sessions, stale counters and (with a
/// retention) old audit events, and dropping the rate-limit state of clients that went quiet.
/// The store makes concurrent runs on several instances safe.
fn spawn_housekeeping(
    housekeeper: Housekeeper,
    limits: Arc<RateLimits>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            limits.forget_idle();
            match housekeeper.run_once().await {
                Ok(purged) if purged != Default::default() => tracing::info!(
                    sessions = purged.sessions,
                    lockouts = purged.lockouts,
                    audit_events = purged.audit_events,
                    "housekeeping purged"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
            }
        }
    });
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
