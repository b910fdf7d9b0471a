//! Closed-loop throughput with wrk: as many requests as `connections` keep in flight, for a
//! while. wrk is small and written in C, so on a two-core machine it leaves the service most of
//! the CPU and measures the service rather than itself.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::process::Command;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Throughput {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses outside 2xx/3xx, and socket errors.
    pub errors: u64,
    /// Answers of any kind, over how long.
    pub requests: u64,
    pub seconds: f64,
}

impl Throughput {
    /// The slices of one measurement taken in turns with another, as one: the rate over their
    /// whole time, p50 the median of theirs and p99 the highest.
    pub fn combined(slices: &[Self]) -> Self {
        let requests = slices.iter().map(|t| t.requests).sum();
        let seconds = slices.iter().map(|t| t.seconds).sum::<f64>();
        let mut p50s: Vec<f64> = slices.iter().map(|t| t.p50_ms).collect();
        p50s.sort_by(f64::total_cmp);
        Self {
            requests_per_sec: requests as f64 / seconds.max(f64::EPSILON),
            p50_ms: p50s.get(p50s.len() / 2).copied().unwrap_or_default(),
            p99_ms: slices.iter().map(|t| t.p99_ms).fold(0.0, f64::max),
            errors: slices.iter().map(|t| t.errors).sum(),
            requests,
            seconds,
        }
    }

    /// Successful answers per second.
    pub fn accepted_per_sec(&self) -> f64 {
        self.requests.saturating_sub(self.errors) as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// A request for wrk to repeat.
pub enum Request<'a> {
    Get { bearer: Option<&'a str> },
    PostJson { body: &'a str },
}

pub async fn run(
    url: &str,
    request: &Request<'_>,
    connections: u32,
    duration: Duration,
    scripts: &Path,
) -> anyhow::Result<Throughput> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)));
    match request {
        Request::Get { bearer: None } => {}
        Request::Get {
            bearer: Some(token),
        } => {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        Request::PostJson { body } => {
            let script = scripts.join(format!("post-{}.lua", std::process::id()));
            let lua = format!(
                "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            );
            std::fs::write(&script, lua)?;
            cmd.arg("-s").arg(script);
        }
    }
    let out = cmd
        .arg(url)
        .output()
        .await
        .context("running wrk (install it: apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads wrk's report.
fn parse(report: &str) -> anyhow::Result<Throughput> {
    let mut t = Throughput::default();
    for line in report.lines().map(str::trim) {
        if let Some((count, rest)) = line.split_once(" requests in ") {
            t.requests = count.trim().parse()?;
            let elapsed = rest.split(',').next().unwrap_or_default().trim();
            t.seconds = millis(elapsed)? / 1000.0;
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            t.requests_per_sec = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            t.p50_ms = millis(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            t.p99_ms = millis(v.trim())?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            t.errors += v.trim().parse::<u64>()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            t.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if t.requests_per_sec == 0.0 {
        bail!("no throughput in wrk's report:\n{report}");
    }
    Ok(t)
}

/// `812.00us`, `1.27ms`, `2.01s` in milliseconds.
fn millis(value: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unknown latency unit in {value}");
    };
    Ok(number.parse::<f64>()? * factor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrk_report_is_read() {
        let report = "Running 5s test @ http://127.0.0.1:1/healthz
  2 threads and 32 connections
  Latency Distribution
     50%  812.00us
     75%    1.27ms
     90%    2.00ms
     99%    3.10ms
  123 requests in 5.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  24779.42
Transfer/sec:      2.00MB";
        let t = super::parse(report).unwrap();
        assert_eq!(t.requests_per_sec, 24779.42);
        assert!((t.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(t.p99_ms, 3.1);
        assert_eq!(t.errors, 10);
        assert_eq!(t.requests, 123);
        assert_eq!(t.seconds, 5.0);
        assert!((t.accepted_per_sec() - 113.0 / 5.0).abs() < 1e-9);
    }

    #[test]
    fn slices_combine_into_one_rate_over_their_whole_time() {
        let slice = |requests: u64, p50_ms: f64, p99_ms: f64| super::Throughput {
            requests_per_sec: requests as f64 / 2.0,
            p50_ms,
            p99_ms,
            errors: 1,
            requests,
            seconds: 2.0,
        };
        let t = super::Throughput::combined(&[
            slice(100, 1.0, 9.0),
            slice(300, 3.0, 4.0),
            slice(200, 2.0, 5.0),
        ]);
        assert_eq!(t.requests, 600);
        assert_eq!(t.seconds, 6.0);
        assert_eq!(t.requests_per_sec, 100.0);
        assert_eq!(t.p50_ms, 2.0);
        assert_eq!(t.p99_ms, 9.0);
        assert_eq!(t.errors, 3);
    }
}
