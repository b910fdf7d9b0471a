//! PostgreSQL's own rate for the work a signed-in read does: `pgbench` select-only (one indexed
//! primary-key read per transaction, prepared), on the bench's database and schema, with as many
//! connections as the service reads through.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

/// Loads pgbench's tables, at scale 1, into the database `url` names (its `search_path`
/// included).
pub async fn load(url: &str) -> anyhow::Result<()> {
    run(Command::new("pgbench")
        .args(["-i", "-q", "-s", "1"])
        .arg(url))
    .await?;
    Ok(())
}

/// Transactions per second of `pgbench -S -M prepared -c CONNECTIONS` on the database `url`
/// names, its tables loaded first ([`load`]).
pub async fn select_only(url: &str, connections: u32, duration: Duration) -> anyhow::Result<f64> {
    let out = run(Command::new("pgbench")
        .args(["-n", "-S", "-M", "prepared", "-j", "2"])
        .arg(format!("-c{connections}"))
        .arg(format!("-T{}", duration.as_secs().max(1)))
        .arg(url))
    .await?;
    tps(&out).context("no tps in pgbench's report")
}

async fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .await
        .context("running pgbench (Debian's postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `tps = 47769.711611 (without initial connection time)`
fn tps(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_rate_from_the_report() {
        let report = "number of failed transactions: 0 (0.000%)\nlatency average = 0.167 ms\n\
                      initial connection time = 20.1 ms\ntps = 47769.711611 (without initial connection time)\n";
        assert_eq!(super::tps(report), Some(47769.711611));
        assert_eq!(super::tps("latency average = 0.167 ms\n"), None);
    }
}
