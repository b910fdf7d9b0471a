//! What every handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::client_ip::TrustedProxies;
use crate::domain::auth::AuthService;
use crate::domain::ports::Store;
use crate::domain::rate_limit::RateLimits;

/// Shared behind one `Arc`: axum clones the state for every request and for each extractor
/// that asks for it, and one reference count costs less than one per component.
#[derive(Clone)]
pub struct AppState(Arc<Components>);

impl AppState {
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

pub struct Components {
    pub auth: AuthService,
    /// For the readiness probe only; handlers go through the domain.
    pub store: Arc<dyn Store>,
    /// For the per-IP limit on every API call.
    pub limits: Arc<RateLimits>,
    pub metrics: PrometheusHandle,
    /// Whose forwarding headers name the client.
    pub proxies: TrustedProxies,
}
