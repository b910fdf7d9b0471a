//! What every handler can reach.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::domain::auth::AuthService;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub auth: AuthService,
    /// For the readiness probe only; handlers go through the domain.
    pub store: Arc<dyn Store>,
    pub metrics: PrometheusHandle,
}
