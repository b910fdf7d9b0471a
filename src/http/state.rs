//! What every handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::client_ip::TrustedProxies;
use crate::domain::auth::AuthService;
use crate::domain::ports::Store;
use crate::domain::rate_limit::RateLimits;

#[derive(Clone)]
pub struct AppState {
    pub auth: AuthService,
    /// For the readiness probe only; handlers go through the domain.
    pub store: Arc<dyn Store>,
    /// For the per-IP limit on every API call.
    pub limits: Arc<RateLimits>,
    pub metrics: PrometheusHandle,
    /// Whose forwarding headers name the client.
    pub proxies: TrustedProxies,
}
