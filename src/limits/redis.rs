//! Shared rate limits in Redis: one GCRA bucket per key, checked and updated atomically by a
//! Lua script in one round trip, on Redis's own clock (instances' clocks may disagree).
//!
//! Every call has a short timeout, so an unreachable Redis costs a request at most that long
//! before the domain falls back to this instance's buckets; a failed connection is dropped and
//! made afresh when the domain next tries Redis. Reconnecting is single-flight: one request
//! connects while every other one is answered at once as unavailable (and so counted in the
//! local buckets), instead of queueing for its turn to wait out the same timeout.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::domain::ports::{CounterUnavailable, SharedCounter};
use crate::domain::risk::rate_limit::Rate;

/// GCRA. `KEYS[1]`: the bucket. `ARGV[1]`: emission interval (period ÷ count), `ARGV[2]`:
/// period, both in microseconds. The bucket holds its theoretical arrival time (TAT); a request
/// is allowed when the new TAT is at most one period ahead, i.e. `count` requests may come at
/// once and then one per interval. Returns 0 when allowed, else the wait in microseconds.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  return new_tat - now - period
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return 0
";

/// Answers slower than this count as Redis being down.
const TIMEOUT: Duration = Duration::from_millis(250);

/// The most one reconnection may take, retry and handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(600);

/// A reconnection in progress; dropped unfinished, it leaves the connection absent.
struct Attempt<'a>(Option<&'a RedisCounter>);

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(counter) = self.0 {
            let mut link = counter.link();
            if matches!(*link, Link::Connecting) {
                *link = Link::Absent;
            }
        }
    }
}

/// Request counts kept in Redis, shared by every instance (GCRA, atomic in one script).
pub struct RedisCounter {
    client: redis::Client,
    /// Made on first use, and made afresh after any failure, so a Redis that comes back is
    /// used from the next attempt on. Held only to look or swap, never across an await.
    connection: Mutex<Link>,
    script: redis::Script,
}

/// The connection to Redis, or where making one stands.
enum Link {
    Absent,
    /// One request is connecting; the others do not wait for it.
    Connecting,
    Ready(ConnectionManager),
}

impl std::fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisCounter")
    }
}

impl RedisCounter {
    /// Checks the URL (and reads the CA file) only: a Redis that is down at start-up is treated
    /// like one that goes down later, and the service starts on its own buckets meanwhile.
    /// `rediss://` speaks TLS, checking the server's certificate against `ca_file` or, without
    /// one, the system's roots.
    pub fn new(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let client = match ca_file {
            None => redis::Client::open(url),
            Some(path) => {
                let root_cert = std::fs::read(path).with_context(|| {
                    format!("cannot read FINHUB_REDIS_CA_FILE {}", path.display())
                })?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
        }
        .context("FINHUB_REDIS_URL is not a Redis URL")?;
        Ok(Self {
            client,
            connection: Mutex::new(Link::Absent),
            script: redis::Script::new(GCRA),
        })
    }

    /// The connection, made now by this caller if there is none and nobody else is making one.
    async fn connection(&self) -> Result<ConnectionManager, CounterUnavailable> {
        {
            let mut link = self.link();
            match &*link {
                Link::Ready(connection) => return Ok(connection.clone()),
                Link::Connecting => {
                    return Err(CounterUnavailable("another request is reconnecting".into()));
                }
                Link::Absent => *link = Link::Connecting,
            }
        }
        // Whatever ends this attempt, a failure, a timeout or the caller going away, the slot
        // is given back, so the next request may try again.
        let mut attempt = Attempt(Some(self));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        let made = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| CounterUnavailable("no connection in time".into()))?
        .map_err(|e| CounterUnavailable(e.to_string()))?;
        attempt.0 = None;
        *self.link() = Link::Ready(made.clone());
        Ok(made)
    }

    /// Connects now, before any request needs the connection, so that the first requests
    /// find it made rather than one of them making it while the others count locally. A Redis
    /// that is down is left to the requests to retry.
    pub async fn warm_up(&self) {
        if let Err(e) = self.connection().await {
            tracing::warn!(error = %e, "Redis for the shared rate limits is not answering yet");
        }
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        // The lock guards a swap that cannot panic half-way; a poisoned one holds a whole value.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops a connection that failed, unless another request is already making a new one.
    fn forget_connection(&self) {
        let mut link = self.link();
        if matches!(*link, Link::Ready(_)) {
            *link = Link::Absent;
        }
    }

    async fn run(&self, key: &str, interval: u64, period: u64) -> Result<u64, CounterUnavailable> {
        let mut connection = self.connection().await?;
        tokio::time::timeout(
            TIMEOUT,
            self.script
                .key(key)
                .arg(interval)
                .arg(period)
                .invoke_async(&mut connection),
        )
        .await
        .map_err(|_| CounterUnavailable("no answer in time".into()))?
        .map_err(|e| CounterUnavailable(e.to_string()))
    }
}

#[async_trait]
impl SharedCounter for RedisCounter {
    async fn hit(&self, key: &str, rate: Rate) -> Result<Option<Duration>, CounterUnavailable> {
        let period = u64::try_from(rate.period().as_micros()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(rate.count.get())).max(1);
        match self.run(key, interval, period).await {
            Ok(wait) => Ok((wait > 0).then(|| Duration::from_micros(wait))),
            Err(e) => {
                self.forget_connection();
                Err(e)
            }
        }
    }
}
