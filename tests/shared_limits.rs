//! Rate limits shared through Redis by two `serve` processes, what happens when Redis goes
//! away and comes back (on a private `redis-server` the test starts and stops), and `rediss://`
//! to a Redis that speaks TLS only.

#[path = "common/process.rs"]
mod process;

use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use finhub_auth::domain::risk::rate_limit::RateLimits;
use finhub_auth::limits::redis::RedisCounter;

use reqwest::StatusCode;
use serde_json::Value;

use process::{Instance, Setup, free_port};

const PASSWORD: &str = "Corr3ct-horse-battery";

/// A private Redis, stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start_on(port: u16) -> Self {
        Self::start(port, &["--port", &port.to_string()]).await
    }

    /// TLS only, with `dir`'s `redis.crt` and `redis.key`; clients need no certificate.
    async fn start_tls_on(port: u16, dir: &Path) -> Self {
        let file = |name: &str| dir.join(name).display().to_string();
        let (cert, key) = (file("redis.crt"), file("redis.key"));
        let port_arg = port.to_string();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-auth-clients",
            "no",
        ];
        Self::start(port, &args).await
    }

    async fn start(port: u16, listen: &[&str]) -> Self {
        let mut redis = Self {
            child: Command::new("redis-server")
                .args(listen)
                .args(["--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian's redis-server package)"),
            port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis.stop_now();
        panic!("redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Two instances, each on a database of its own, sharing the Redis at `redis_url` for their
/// limits, each with the customer `name`.
async fn pair(redis_url: &str, dir: &tempfile::TempDir, name: &str) -> (Instance, Instance, Setup) {
    pair_with(&[("FINHUB_REDIS_URL", redis_url)], dir, name).await
}

/// [`pair`] with the Redis settings given.
async fn pair_with(
    redis: &[(&str, &str)],
    dir: &tempfile::TempDir,
    name: &str,
) -> (Instance, Instance, Setup) {
    let setups: Vec<Setup> = ["a", "b"]
        .iter()
        .map(|instance| {
            let path = dir.path().join(instance);
            std::fs::create_dir_all(&path).unwrap();
            redis
                .iter()
                .fold(Setup::sqlite(&path), |setup, (key, value)| {
                    setup.with(key, value)
                })
                .with("FINHUB_RATE_LIMIT_LOGIN_ACCOUNT", "4/min")
                // Readiness details and metrics are on the operations address.
                .with("FINHUB_OPS_LISTEN", &format!("127.0.0.1:{}", free_port()))
        })
        .collect();
    for setup in &setups {
        setup.create_customer(name, "off", PASSWORD);
    }
    let (a, b) = tokio::join!(setups[0].serve("a"), setups[1].serve("b"));
    (a, b, setups[0].clone())
}

async fn readiness(on: &Instance) -> Value {
    let response = on.client.get(on.ops_url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn metric(on: &Instance, name: &str) -> Option<f64> {
    on.metrics_text()
        .await
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_the_local_redis_allow_together_what_one_allows() {
    // The machine's Redis (scripts/test starts it), shared with other runs: a username of our own.
    let name = format!("shared-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = pair("redis://127.0.0.1:6379", &dir, &name).await;
    assert_eq!(readiness(&a).await["details"]["rateLimits"], "shared");

    let username = format!("{name}@example.com");
    let mut statuses = Vec::new();
    for i in 0..8 {
        let on = if i % 2 == 0 { &a } else { &b };
        statuses.push(on.login(&username, PASSWORD).await.0);
    }
    let allowed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((allowed, limited), (4, 4), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_counts_for_itself_and_goes_back_when_it_returns() {
    let port = free_port();
    let redis = Redis::start_on(port).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = pair(&redis.url(), &dir, "alice").await;
    assert_eq!(
        a.login("alice@example.com", PASSWORD).await.0,
        StatusCode::OK
    );
    assert_eq!(metric(&a, "finhub_rate_limit_shared").await, Some(1.0));

    redis.stop();
    // Still serving, each instance on its own buckets: 4 each.
    let mut allowed = 0;
    for on in [&a, &b] {
        for _ in 0..5 {
            match on.login("alice@example.com", PASSWORD).await.0 {
                StatusCode::OK => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert_eq!(allowed, 8, "each instance allows its own four");
    assert_eq!(
        readiness(&a).await["details"]["rateLimits"],
        "local (shared store unreachable)"
    );
    assert_eq!(metric(&a, "finhub_rate_limit_shared").await, Some(0.0));
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert_eq!(
        log.matches("rate limits fall back").count(),
        1,
        "said once:\n{log}"
    );

    // Redis returns (empty): after the retry pause the instances share it again.
    let _redis = Redis::start_on(port).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    a.login("alice@example.com", PASSWORD).await;
    assert_eq!(readiness(&a).await["details"]["rateLimits"], "shared");
    assert_eq!(metric(&a, "finhub_rate_limit_shared").await, Some(1.0));
    assert!(
        std::fs::read_to_string(&a.log)
            .unwrap()
            .contains("rate limits are shared again")
    );
}

/// Logs `username` in eight times, alternating between the instances; how many were allowed.
async fn allowed_of_eight(a: &Instance, b: &Instance, username: &str) -> usize {
    let mut allowed = 0;
    for i in 0..8 {
        let on = if i % 2 == 0 { a } else { b };
        match on.login(username, PASSWORD).await.0 {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_shares_the_limits_over_tls_with_a_server_the_ca_vouches_for() {
    let certs = tempfile::tempdir().unwrap();
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let write = |name: &str, pem: String| {
        let path = certs.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    // The server's self-signed certificate is its own CA.
    let ca = write("redis.crt", server.cert.pem());
    write("redis.key", server.signing_key.serialize_pem());
    let other_ca = write("other.crt", stranger.cert.pem());
    let port = free_port();
    let _redis = Redis::start_tls_on(port, certs.path()).await;
    let url = format!("rediss://localhost:{port}");

    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = pair_with(
        &[("FINHUB_REDIS_URL", &url), ("FINHUB_REDIS_CA_FILE", &ca)],
        &dir,
        "tls",
    )
    .await;
    assert_eq!(allowed_of_eight(&a, &b, "tls@example.com").await, 4);
    assert_eq!(readiness(&a).await["details"]["rateLimits"], "shared");

    // A certificate the configured CA does not vouch for: no shared counts, each instance on
    // its own.
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = pair_with(
        &[
            ("FINHUB_REDIS_URL", &url),
            ("FINHUB_REDIS_CA_FILE", &other_ca),
        ],
        &dir,
        "stranger",
    )
    .await;
    assert_eq!(allowed_of_eight(&a, &b, "stranger@example.com").await, 8);
    assert_eq!(
        readiness(&a).await["details"]["rateLimits"],
        "local (shared store unreachable)"
    );
}

/// Requests queueing on the reconnect: while Redis accepts connections but never answers (a
/// hung server, a black-holed route), every request used to wait its turn on one lock to try
/// connecting again, so N requests took N timeouts. One request reconnects; the others count in
/// the local buckets at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_hangs_concurrent_limit_checks_do_not_queue_behind_the_reconnect() {
    // The kernel completes connections to it; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let counter = RedisCounter::new(&url, None).unwrap();
    let limits = Arc::new(
        RateLimits::new(Some("100/min".parse().unwrap()), None, None)
            .shared_through(Arc::new(counter)),
    );
    let started = Instant::now();
    let checks = (0..16u8).map(|i| {
        let limits = Arc::clone(&limits);
        tokio::spawn(async move {
            limits
                .check_api(Some(IpAddr::from([198, 51, 100, i])))
                .await
        })
    });
    let all = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(checks))
        .await
        .expect("the checks finish");
    let elapsed = started.elapsed();
    assert!(all.iter().all(|r| matches!(r, Ok(Ok(())))), "{all:?}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "16 concurrent checks took {elapsed:?}: they waited for each other's reconnects"
    );
}
