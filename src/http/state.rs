//! What every handler can reach.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use super::client_ip::TrustedProxies;
use crate::domain::auth::AuthService;
use crate::domain::ports::{Store, StoreResult};
use crate::domain::risk::rate_limit::RateLimits;

/// Shared behind one `Arc`: axum clones the state for every request and for each extractor
/// that asks for it, and one reference count costs less than one per component.
#[derive(Clone)]
pub struct AppState(Arc<Components>);

impl AppState {
    /// Wraps the components once, at start-up.
    pub fn new(components: Components) -> Self {
        Self(Arc::new(components))
    }
}

impl std::ops::Deref for AppState {
    type Target = Components;

    fn deref(&self) -> &Components {
        &self.0
    }
}

/// The services and handles the API's handlers need.
pub struct Components {
    /// The login flow: every customer-facing rule goes through it.
    pub auth: AuthService,
    /// For the readiness probe only; handlers go through the domain.
    pub store: Arc<dyn Store>,
    /// For the per-IP limit on every API call.
    pub limits: Arc<RateLimits>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Whose forwarding headers name the client.
    pub proxies: TrustedProxies,
    /// The cached store check behind `/readyz`.
    pub readiness: Readiness,
    /// The id of the audit key new links are sealed under, if any (reported by `/readyz`).
    pub audit_key: Option<String>,
}

/// How long a readiness check is answered from its last result: a flood of probes costs the
/// store one ping a second, never a pool's worth.
const READINESS_FRESH: Duration = Duration::from_secs(1);

/// The last readiness check, shared by every probe.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Pings the store unless a check finished less than a second ago; probes that arrive
    /// while one check runs wait for it instead of starting their own.
    pub async fn check<P, F>(&self, ping: P) -> Result<(), String>
    where
        P: FnOnce() -> F,
        F: Future<Output = StoreResult<()>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < READINESS_FRESH
        {
            return result.clone();
        }
        let result = ping().await.map_err(|e| e.to_string());
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_flood_of_probes_pings_the_store_once_a_second() {
        let readiness = Readiness::default();
        let pings = AtomicUsize::new(0);
        let ping = || async {
            pings.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        };
        let probes = (0..200).map(|_| readiness.check(ping));
        let answers = futures::future::join_all(probes).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(pings.load(Ordering::Relaxed), 1);
        tokio::time::sleep(READINESS_FRESH + Duration::from_millis(50)).await;
        readiness.check(ping).await.unwrap();
        assert_eq!(pings.load(Ordering::Relaxed), 2);
    }
}
