//! Files that are replaced while the service runs (location databases, certificates): read
//! again on SIGHUP and whenever a file's modification time changes. A reload that fails keeps
//! what was loaded.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How often the files' modification times are checked.
const WATCH_EVERY: Duration = Duration::from_secs(10);

/// Runs `reload` on SIGHUP and when one of `paths` changes, for as long as it is polled (its
/// owner stops it with the rest of the service); `what` names it in the log ("location
/// database reloaded").
pub async fn watch<F, Fut>(what: &'static str, paths: Vec<PathBuf>, mut reload: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let modified = move || -> Vec<Option<SystemTime>> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    };
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP reloads of the {what}");
            None
        }
    };
    let mut seen = modified();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            _ = hangup => "SIGHUP",
            _ = tick.tick() => {
                let now = modified();
                if now == seen {
                    continue;
                }
                seen = now;
                "files changed"
            }
        };
        match reload().await {
            Ok(()) => tracing::info!(reason = why, "{what} reloaded"),
            Err(e) => tracing::warn!(error = %e, "{what} not reloaded; keeping the loaded one"),
        }
    }
}
