//! The listeners: the public address (HTTP, or HTTPS through axum-server and rustls with its
//! certificate reloaded when renewed) and the operations address, both stopped by one signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;

use super::Services;
use crate::config::Settings;
use crate::http::OpsRoutes;
use crate::http::client_ip::TrustedProxies;
use crate::http::state::{AppState, Components, Readiness};
use crate::http::web::WebClient;

/// A bound, ready-to-run HTTP service.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    address: SocketAddr,
    /// The operations address and its router, when `FINHUB_OPS_LISTEN` names one.
    ops: Option<(TcpListener, axum::Router)>,
    /// The operations address speaks HTTPS with the public certificate.
    ops_tls: bool,
    /// HTTPS, when `FINHUB_TLS_CERT` and `FINHUB_TLS_KEY` are set.
    tls: Option<Tls>,
    header_read_timeout: Duration,
}

/// The listener's certificate, and where it is read from again when renewed.
struct Tls {
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    async fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
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

    /// Reads the certificate again on SIGHUP and when its files change (certificates are
    /// renewed every few months), for as long as it is polled; a renewal that cannot be read
    /// leaves the current certificate in use.
    async fn watch(config: RustlsConfig, cert: PathBuf, key: PathBuf) {
        let paths = vec![cert.clone(), key.clone()];
        crate::reload::watch("TLS certificate", paths, move || {
            let (config, cert, key) = (config.clone(), cert.clone(), key.clone());
            async move { Ok(config.reload_from_pem_file(&cert, &key).await?) }
        })
        .await;
    }
}

impl Application {
    /// Binds `settings.server.listen` (port 0 picks a free port) and builds the router. Nothing
    /// is served until [`Application::run_until`].
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
            audit_key: services.seal.current_key().map(ToString::to_string),
        });
        let ops = match server.ops_listen {
            None => None,
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("FINHUB_OPS_LISTEN: cannot bind {address}"))?;
                let token = server.ops_token()?;
                Some((listener, crate::http::ops_router(state.clone(), token)))
            }
        };
        let placement = if ops.is_some() {
            OpsRoutes::Separate
        } else {
            OpsRoutes::Public
        };
        metrics::gauge!("finhub_up").set(1.0);
        crate::telemetry::register_catalogue();
        services.limits.report();
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
            ops_tls: server.ops_tls,
            tls,
            header_read_timeout: server.header_read_timeout.unsigned_abs(),
        })
    }

    /// The address the public API is bound to (the real port when `:0` was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The operations address, when there is one.
    pub fn ops_address(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Whether the public address speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
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
        let ops_tls = match (&self.tls, self.ops_tls) {
            (Some(tls), true) => Some(tls.config.clone()),
            _ => None,
        };
        let public = async {
            let server = guarded(
                axum_server::from_tcp(self.listener.into_std()?)?,
                self.header_read_timeout,
            );
            let handle = stopping_on(stopped.clone());
            match self.tls {
                None => server.handle(handle).serve(service).await,
                Some(tls) => {
                    // The certificate is watched for as long as the listener serves.
                    let watching = Tls::watch(tls.config.clone(), tls.cert, tls.key);
                    let serving = server
                        .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(tls.config))
                        .handle(handle)
                        .serve(service);
                    tokio::select! {
                        served = serving => served,
                        () = watching => Ok(()),
                    }
                }
            }
        };
        let ops = async {
            match self.ops {
                None => Ok(()),
                Some((listener, router)) => {
                    let server = guarded(
                        axum_server::from_tcp(listener.into_std()?)?,
                        self.header_read_timeout,
                    );
                    let handle = stopping_on(stopped.clone());
                    match ops_tls {
                        // The public listener's watch reloads this configuration too.
                        Some(config) => {
                            server
                                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(config))
                                .handle(handle)
                                .serve(router.into_make_service())
                                .await
                        }
                        None => {
                            server
                                .handle(handle)
                                .serve(router.into_make_service())
                                .await
                        }
                    }
                }
            }
        };
        let (public, ops) = tokio::join!(public, ops);
        public.and(ops)
    }
}

/// HTTP/2 connections are pinged this often when idle, and closed when a ping goes unanswered
/// for as long.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long requests in flight get to finish once the listeners stop.
const GRACE: Duration = Duration::from_secs(10);

/// A listener with the connection limits every address gets. The head of each request must
/// arrive within `header_read_timeout` of the server waiting for it, which closes slow senders
/// (slowloris) and idle keep-alive connections (hyper's own default needs a timer, and
/// axum-server turns it off).
fn guarded(
    mut server: axum_server::Server<SocketAddr>,
    header_read_timeout: Duration,
) -> axum_server::Server<SocketAddr> {
    let builder = server.http_builder();
    builder.http1().header_read_timeout(header_read_timeout);
    builder
        .http2()
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    server
}

/// A handle that shuts its server down gracefully (requests in flight get [`GRACE`]) once
/// `stopped` turns true.
fn stopping_on(mut stopped: tokio::sync::watch::Receiver<bool>) -> axum_server::Handle<SocketAddr> {
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        let _ = stopped.wait_for(|s| *s).await;
        stopping.graceful_shutdown(Some(GRACE));
    });
    handle
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
