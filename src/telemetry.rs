//! Logging and metrics set-up. Log lines go to standard error, so that commands which print data
//! (`audit tail`, `customers create`) keep standard output clean.

pub mod traces;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use self::traces::{Traces, TracesError};
use crate::config::LogFormat;

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), `format` shapes lines.
/// A second call is a no-op, which lets tests start several services in one process.
pub fn init_logging(format: LogFormat) {
    // Without a collector nothing can fail.
    let _ = init(format, None);
}

/// The same, and with `otlp` (`FINHUB_OTLP_ENDPOINT`) the service's spans exported there as
/// traces ([`traces`]): the returned exporter is shut down as the process ends, to send what is
/// left. Must run inside the Tokio runtime.
pub fn init(format: LogFormat, otlp: Option<&url::Url>) -> Result<Option<Traces>, TracesError> {
    // The spans made for traces alone stay out of the log, whatever RUST_LOG says.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"))
        .add_directive(
            format!("{}=off", traces::TRACED)
                .parse()
                .unwrap_or_else(|_| tracing::Level::INFO.into()),
        );
    let (traces, exported) = match otlp {
        Some(endpoint) => {
            let (traces, layer) = Traces::start(endpoint)?;
            (Some(traces), Some(layer))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(exported);
    let lines = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = registry.with(lines.with_filter(filter)).try_init();
    Ok(traces)
}

/// The counters a dashboard panel or an alert reads, with every label value the service writes.
const CATALOGUE: &[(&str, &str, &[&str])] = &[
    (
        "finhub_logins_total",
        "outcome",
        &[
            "success",
            "invalid_credentials",
            "account_locked",
            "rate_limited",
            "service_overloaded",
        ],
    ),
    (
        "finhub_2fa_verifications_total",
        "outcome",
        &[
            "success",
            "invalid_code",
            "account_locked",
            "too_many_attempts",
            "code_expired",
            "unknown_challenge",
            "not_pending",
        ],
    ),
    (
        "finhub_2fa_codes_sent_total",
        "outcome",
        &[
            "account_locked",
            "too_soon",
            "limit_reached",
            "customer_budget_spent",
        ],
    ),
    (
        "finhub_2fa_delivery_total",
        "outcome",
        &["queued", "sent", "retried", "failed", "dropped"],
    ),
    (
        "finhub_notice_delivery_total",
        "outcome",
        &["queued", "sent", "retried", "failed", "dropped"],
    ),
    (
        "finhub_webhook_deliveries_total",
        "outcome",
        &["sent", "retried", "failed", "expired"],
    ),
    ("finhub_refreshes_total", "outcome", &["success", "reused"]),
    (
        "finhub_lockdown_total",
        "outcome",
        &["locked_down", "not_found", "rate_limited"],
    ),
    (
        "finhub_risk_flags_total",
        "flag",
        &[
            "NEW_COUNTRY",
            "NEW_NETWORK",
            "NEW_DEVICE",
            "IMPOSSIBLE_TRAVEL",
        ],
    ),
];

/// Every series the dashboard (`deploy/grafana/`) and the alerts (`deploy/prometheus/`) read,
/// at zero, so that a quiet service shows 0 rather than no data, and a rate has a start.
pub fn register_catalogue() {
    for (name, label, values) in CATALOGUE {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
    metrics::counter!("finhub_hash_shed_total").increment(0);
    metrics::counter!("finhub_store_unavailable_total").increment(0);
    metrics::gauge!("finhub_hash_in_flight").set(0.0);
}

/// Latency buckets, in seconds, from a fast token check to a queued password hash.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global metrics recorder once and returns the handle that renders it. Tests that
/// start several services share the one recorder.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in embedding tests): render an
                // empty local one rather than fail.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
