//! Wiring: from settings to a running service. The CLI and the tests build the service the same
//! way, through [`Services::build`] and [`Application::build`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{LimitsSection, NotifierKind, NotifierSection, Settings};
use crate::domain::accounts::Accounts;
use crate::domain::audit::{AnchorKeys, AuditEvent, AuditKind, ChainSeal, Outcome, is_keyed_link};
use crate::domain::audit_trail;
use crate::domain::auth::AuthService;
use crate::domain::delivery::{CodeTemplate, Courier, DeliveryPolicy};
use crate::domain::housekeeping::Housekeeper;
use crate::domain::location::Locator;
use crate::domain::password::PasswordHasher;
use crate::domain::ports::{Notifier, Store};
use crate::domain::rate_limit::RateLimits;
use crate::geo::{MmdbLocator, spawn_reloader};
use crate::http::OpsRoutes;
use crate::http::client_ip::TrustedProxies;
use crate::http::state::{AppState, Components, Readiness};
use crate::http::web::WebClient;
use crate::limits::redis::RedisCounter;
use crate::notify::email::Mailer;
use crate::notify::live::LiveNotifier;
use crate::notify::outbox::OutboxNotifier;
use crate::notify::sms::SmsGateway;
use crate::store::{self, Migrations};

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
    /// Delivers the codes waiting in the outbox.
    pub courier: Courier,
}

/// What a command does with the audit key generated for an SQLite database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedKey {
    /// `serve` and `demo`: create it on first start, then use it; on PostgreSQL, refuse to
    /// start without a configured key unless `FINHUB_ALLOW_NO_AUDIT_KEY` accepts the risk.
    Create,
    /// The operator commands: use it when `serve` has created one, so that what they append
    /// to the chain and what they verify is sealed with the same key.
    Reuse,
}

/// Settles the audit key before anything is opened. Without `FINHUB_AUDIT_KEY`, codes waiting
/// for delivery would be sealed under a key of the process alone, so a restart silently drops
/// them, and the chain would be plain SHA-256. On SQLite, whose files one host keeps, a key is
/// generated once into an owner-only file beside the database and read on every later start;
/// a chain begun without a key switches to it at a marked event (`audit.sealed_with_key`), as
/// with a configured key. PostgreSQL serves several instances, which must share one key, so
/// none is made up there.
pub fn settle_audit_key(settings: &mut Settings, generated: GeneratedKey) -> anyhow::Result<()> {
    let url = settings.store.url.clone();
    let database = match store::DatabaseKind::of(&url) {
        Some(store::DatabaseKind::Sqlite) => store::sqlite_files::database_file(&url)?,
        Some(store::DatabaseKind::Postgres) => {
            if generated == GeneratedKey::Create
                && settings.audit.key.is_none()
                && !settings.audit.allow_no_key
            {
                anyhow::bail!(
                    "serve refuses PostgreSQL without an audit key: queued codes would be lost on every restart and the audit chain would be plain SHA-256; set FINHUB_AUDIT_KEY or FINHUB_AUDIT_KEY_FILE (the same on every instance), or FINHUB_ALLOW_NO_AUDIT_KEY=true to accept the risk"
                );
            }
            None
        }
        None => None,
    };
    let Some(database) = database else {
        return Ok(());
    };
    let path = store::sqlite_files::audit_key_file(&database);
    if settings.audit.key.is_some() {
        if path.exists() {
            tracing::warn!(
                path = %path.display(),
                "FINHUB_AUDIT_KEY is set, so the key generated beside the database is not used; a chain sealed with that key verifies only with it"
            );
        }
        return Ok(());
    }
    let key = match generated {
        GeneratedKey::Create => {
            let (key, created) = store::sqlite_files::read_or_create_audit_key(&path)?;
            if created {
                tracing::info!(path = %path.display(), "no FINHUB_AUDIT_KEY: generated an audit key beside the database; back it up with the database and keep it owner-only");
            } else {
                tracing::info!(path = %path.display(), "no FINHUB_AUDIT_KEY: using the audit key generated beside the database");
            }
            Some(key)
        }
        GeneratedKey::Reuse => store::sqlite_files::read_audit_key(&path)?,
    };
    settings.audit.key = key;
    Ok(())
}

/// Opens the store the settings name, doing `migrations`; the operator commands that need only
/// the store start here.
pub async fn open_store(
    settings: &Settings,
    migrations: Migrations,
) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(
        &settings.store.url,
        &settings.store.options(),
        migrations,
        settings.audit.chain_seal()?,
    )
    .await
}

/// The operator's account actions over a store: hashing new passwords, but no login checks,
/// so nothing is prepared for them.
pub async fn accounts(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Accounts> {
    let store = open_store(settings, Migrations::Apply).await?;
    let hashing = &settings.hashing;
    let hasher =
        PasswordHasher::for_new_passwords(hashing.cost(), hashing.threads(), hashing.queue)
            .context(HASHING_SETTINGS)?;
    Ok(Accounts::new(store, clock, hasher))
}

const HASHING_SETTINGS: &str =
    "FINHUB_HASH_MEMORY_KIB / FINHUB_HASH_ITERATIONS / FINHUB_HASH_PARALLELISM";

impl Services {
    /// Opens the store (applying migrations) and builds the services the settings describe.
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let seal = settings.audit.chain_seal()?;
        let store = open_store(settings, Migrations::Apply).await?;
        seal_plain_chain(store.as_ref(), &seal, clock.now()).await?;
        let hashing = &settings.hashing;
        let hasher = PasswordHasher::new(hashing.cost(), hashing.threads(), hashing.queue)
            .await
            .context(HASHING_SETTINGS)?;
        let notifier = notifier(&settings.notifier)?;
        let limits = Arc::new(rate_limits(&settings.limits).await?);
        let locator = locator(settings)?;
        let courier = Courier::new(
            Arc::clone(&store),
            notifier,
            Arc::clone(&clock),
            settings.audit.code_seal()?,
            DeliveryPolicy {
                max_attempts: settings.notifier.delivery_attempts.get(),
                ..DeliveryPolicy::default()
            },
            code_template(&settings.notifier)?,
        );
        let auth = AuthService::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            hasher.clone(),
            settings.policies()?,
            Arc::clone(&limits),
            courier.clone(),
        );
        let auth = match locator {
            Some(locator) => auth.locating_with(locator),
            None => auth,
        };
        let accounts = Accounts::new(Arc::clone(&store), Arc::clone(&clock), hasher);
        let housekeeper = Housekeeper::new(Arc::clone(&store), clock, settings.retention());
        Ok(Self {
            store,
            seal,
            limits,
            auth,
            accounts,
            housekeeper,
            courier,
        })
    }
}

/// With a key, a chain begun without one (an earlier version, or a key generated beside the
/// SQLite database only now) is switched to it at start-up, at the marked event
/// `audit.sealed_with_key`, rather than at the first event a customer happens to cause: until
/// then `audit verify` with the key would refuse a chain that is plain to its end.
async fn seal_plain_chain(
    store: &dyn Store,
    seal: &ChainSeal,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    if !seal.is_keyed() {
        return Ok(());
    }
    let (seq, hash) = store
        .audit_head()
        .await
        .context("reading the audit chain's head")?;
    if seq == 0 || is_keyed_link(&hash) {
        return Ok(());
    }
    let marker = AuditEvent::new(AuditKind::SealedWithKey, Outcome::Success, now)
        .detail("plainThroughSeq", seq);
    store
        .append_event(&marker)
        .await
        .context("sealing the audit chain with the key")?;
    tracing::info!(
        plain_through_seq = seq,
        "the audit chain begun without a key is sealed with it from here on"
    );
    Ok(())
}

fn notifier(settings: &NotifierSection) -> anyhow::Result<Arc<dyn Notifier>> {
    match settings.kind {
        NotifierKind::Outbox => {
            let outbox = OutboxNotifier::new(&settings.outbox_path).with_context(|| {
                format!(
                    "FINHUB_OUTBOX_PATH: cannot use {}",
                    settings.outbox_path.display()
                )
            })?;
            Ok(Arc::new(outbox))
        }
        NotifierKind::Live => {
            let missing = |name: &str| anyhow::anyhow!("FINHUB_NOTIFIER=live needs {name}");
            let sms = SmsGateway::new(
                settings
                    .sms_gateway_url
                    .as_deref()
                    .ok_or_else(|| missing("FINHUB_SMS_GATEWAY_URL"))?,
                settings
                    .sms_gateway_secret
                    .clone()
                    .ok_or_else(|| missing("FINHUB_SMS_GATEWAY_SECRET"))?,
            )?;
            let email = Mailer::new(
                settings
                    .smtp_url
                    .as_ref()
                    .ok_or_else(|| missing("FINHUB_SMTP_URL"))?,
                settings
                    .smtp_from
                    .as_deref()
                    .ok_or_else(|| missing("FINHUB_SMTP_FROM"))?,
                settings.smtp_ca_file.as_deref(),
            )?;
            Ok(Arc::new(LiveNotifier { sms, email }))
        }
    }
}

/// The text of codes' messages: `FINHUB_CODE_TEMPLATE`, or the default.
fn code_template(settings: &NotifierSection) -> anyhow::Result<CodeTemplate> {
    match &settings.code_template {
        None => Ok(CodeTemplate::default()),
        Some(raw) => {
            CodeTemplate::parse(raw).map_err(|e| anyhow::anyhow!("FINHUB_CODE_TEMPLATE {e}"))
        }
    }
}

/// The location database of `FINHUB_GEOIP_DB`, reloaded on SIGHUP and when its files change.
fn locator(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Locator>>> {
    let Some(paths) = &settings.risk.geoip_db else {
        return Ok(None);
    };
    let locator = Arc::new(MmdbLocator::open(paths.clone())?);
    spawn_reloader(Arc::clone(&locator));
    Ok(Some(locator))
}

/// The rate limits, shared through Redis when `FINHUB_REDIS_URL` names one.
async fn rate_limits(settings: &LimitsSection) -> anyhow::Result<RateLimits> {
    let limits = settings.rate_limits();
    Ok(match &settings.redis_url {
        None => limits,
        Some(url) => {
            let counter =
                RedisCounter::new(url.expose_secret(), settings.redis_ca_file.as_deref())?;
            counter.warm_up().await;
            limits.shared_through(Arc::new(counter))
        }
    })
}

/// A bound, ready-to-run HTTP service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    address: SocketAddr,
    /// The operations address and its router, when `FINHUB_OPS_LISTEN` names one.
    ops: Option<(TcpListener, axum::Router)>,
    /// HTTPS, when `FINHUB_TLS_CERT` and `FINHUB_TLS_KEY` are set.
    tls: Option<Tls>,
    header_read_timeout: std::time::Duration,
}

/// The listener's certificate, and where it is read from again when renewed.
struct Tls {
    config: RustlsConfig,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Tls {
    async fn load(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Self> {
        // One process-wide crypto provider; a second install (tests, several apps) is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "FINHUB_TLS_CERT / FINHUB_TLS_KEY: cannot use {} and {}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Self {
            config,
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl Application {
    /// Binds `settings.server.listen` (port 0 picks a free port) and builds the router.
    pub async fn build(settings: &Settings, services: &Services) -> anyhow::Result<Self> {
        Self::build_with(settings, services, WebClient::default()).await
    }

    /// The demo: also serves the inbox page that shows the outbox's codes.
    pub async fn build_demo(settings: &Settings, services: &Services) -> anyhow::Result<Self> {
        let web = WebClient {
            demo_outbox: Some(settings.notifier.outbox_path.clone()),
        };
        Self::build_with(settings, services, web).await
    }

    async fn build_with(
        settings: &Settings,
        services: &Services,
        web: WebClient,
    ) -> anyhow::Result<Self> {
        let server = &settings.server;
        let listener = TcpListener::bind(server.listen)
            .await
            .with_context(|| format!("FINHUB_LISTEN: cannot bind {}", server.listen))?;
        let address = listener.local_addr()?;
        let state = AppState::new(Components {
            auth: services.auth.clone(),
            store: Arc::clone(&services.store),
            limits: Arc::clone(&services.limits),
            metrics: crate::telemetry::metrics_handle(),
            proxies: TrustedProxies::new(server.trusted_proxies.clone(), server.client_ip_header),
            readiness: Readiness::default(),
            audit_keyed: services.seal.is_keyed(),
        });
        let ops = match server.ops_listen {
            None => None,
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("FINHUB_OPS_LISTEN: cannot bind {address}"))?;
                Some((listener, crate::http::ops_router(state.clone())))
            }
        };
        let placement = if ops.is_some() {
            OpsRoutes::Separate
        } else {
            OpsRoutes::Public
        };
        metrics::gauge!("finhub_up").set(1.0);
        services.limits.report();
        spawn_refusal_audit(services.auth.clone());
        if settings.notifier.delivery_worker {
            tokio::spawn(services.courier.clone().run(DELIVERY_POLL));
        }
        if let Some(path) = &settings.audit.anchor_path {
            spawn_anchoring(
                Arc::clone(&services.store),
                settings.audit.anchor_keys()?,
                path.clone(),
                settings.audit.anchor_interval.unsigned_abs(),
            );
        }
        spawn_housekeeping(
            services.housekeeper.clone(),
            Arc::clone(&services.limits),
            settings.housekeeping.interval.unsigned_abs(),
        );
        let router =
            crate::http::router(state, web, placement, server.request_timeout.unsigned_abs());
        let tls = match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::load(cert, key).await?),
            _ => None,
        };
        let router = if tls.is_some() {
            crate::http::with_hsts(router)
        } else {
            router
        };
        Ok(Self {
            listener,
            router,
            address,
            ops,
            tls,
            header_read_timeout: server.header_read_timeout.unsigned_abs(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    /// The operations address, when there is one.
    pub fn ops_address(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Whether the public address speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Every listener stops on the one shutdown signal.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let public = async {
            let server = guarded(
                axum_server::from_tcp(self.listener.into_std()?)?,
                self.header_read_timeout,
            );
            let handle = stopping_on(stopped.clone());
            match self.tls {
                None => server.handle(handle).serve(service).await,
                Some(tls) => {
                    spawn_certificate_reloader(&tls);
                    server
                        .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(tls.config))
                        .handle(handle)
                        .serve(service)
                        .await
                }
            }
        };
        let ops = async {
            match self.ops {
                None => Ok(()),
                Some((listener, router)) => {
                    guarded(
                        axum_server::from_tcp(listener.into_std()?)?,
                        self.header_read_timeout,
                    )
                    .handle(stopping_on(stopped.clone()))
                    .serve(router.into_make_service())
                    .await
                }
            }
        };
        let (public, ops) = tokio::join!(public, ops);
        public.and(ops)
    }
}

/// HTTP/2 connections are pinged this often when idle, and closed when a ping goes unanswered
/// for as long.
const HTTP2_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(20);

/// How often the delivery worker looks for messages it was not woken for: retries that fell
/// due, and messages other instances queued.
const DELIVERY_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A listener with the connection limits every address gets. The head of each request must
/// arrive within `header_read_timeout` of the server waiting for it, which closes slow senders
/// (slowloris) and idle keep-alive connections (hyper's own default needs a timer, and
/// axum-server turns it off).
fn guarded(
    mut server: axum_server::Server<SocketAddr>,
    header_read_timeout: std::time::Duration,
) -> axum_server::Server<SocketAddr> {
    let builder = server.http_builder();
    builder.http1().header_read_timeout(header_read_timeout);
    builder
        .http2()
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    server
}

/// A handle that shuts its server down gracefully (requests in flight get 10 s) once
/// `stopped` turns true.
fn stopping_on(mut stopped: tokio::sync::watch::Receiver<bool>) -> axum_server::Handle<SocketAddr> {
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        let _ = stopped.wait_for(|s| *s).await;
        stopping.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    handle
}

/// Reads the certificate again on SIGHUP and when its files change (certificates are renewed
/// every few months); a renewal that cannot be read leaves the current certificate in use.
fn spawn_certificate_reloader(tls: &Tls) {
    let (config, cert, key) = (tls.config.clone(), tls.cert.clone(), tls.key.clone());
    let paths = vec![cert.clone(), key.clone()];
    crate::reload::spawn("TLS certificate", paths, move || {
        let (config, cert, key) = (config.clone(), cert.clone(), key.clone());
        async move { Ok(config.reload_from_pem_file(&cert, &key).await?) }
    });
}

/// Appends an anchor of the audit chain's head to `path` every `every` (see `audit anchor`).
fn spawn_anchoring(
    store: Arc<dyn Store>,
    keys: AnchorKeys,
    path: std::path::PathBuf,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let written = async {
                let anchor =
                    audit_trail::anchor(store.as_ref(), &keys, time::OffsetDateTime::now_utc())
                        .await?;
                let mut line = serde_json::to_vec(&anchor)?;
                line.push(b'\n');
                let mut file = std::fs::OpenOptions::new();
                file.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
                std::io::Write::write_all(&mut file.open(&path)?, &line)?;
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, path = %path.display(), "audit anchor not written; will retry");
            }
        }
    });
}

/// How long refused logins are counted before their counts are audited.
const REFUSAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Audits the refused logins of each window in aggregate (see `domain::refusals`).
fn spawn_refusal_audit(auth: AuthService) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFUSAL_WINDOW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            auth.flush_refusals().await;
        }
    });
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
