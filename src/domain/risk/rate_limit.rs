//! Request-rate limits: all API calls per client IP, logins per client IP, logins per username.
//! Each is a keyed token bucket (GCRA). With a [`SharedCounter`] (Redis) the buckets are shared
//! by every instance, so N instances allow what one does; while it is unreachable each instance
//! falls back to its own buckets in memory, says so once in its log, in the metric
//! `finhub_rate_limit_shared` (1 shared, 0 local) and in `/readyz`, and tries the shared store
//! again every few seconds.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest as _, Sha256};

use crate::domain::InvalidValue;
use crate::domain::ports::SharedCounter;

/// A rate such as `300/min`: that many requests, refilled evenly over the period, with a burst
/// of the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many requests.
    pub count: NonZeroU32,
    /// In what period.
    pub per: Per,
}

/// The period a [`Rate`] counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl FromStr for Rate {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const SHAPE: InvalidValue =
            InvalidValue("must be a rate such as 300/min, 10/s or 1000/h, or off");
        let (count, per) = s.trim().split_once('/').ok_or(SHAPE)?;
        let count = count.trim().parse::<NonZeroU32>().map_err(|_| SHAPE)?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Per::Second,
            "m" | "min" | "minute" => Per::Minute,
            "h" | "hour" => Per::Hour,
            _ => return Err(SHAPE),
        };
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = match self.per {
            Per::Second => "s",
            Per::Minute => "min",
            Per::Hour => "h",
        };
        write!(f, "{}/{per}", self.count)
    }
}

impl Rate {
    /// The period the count refills over.
    pub fn period(self) -> Duration {
        Duration::from_secs(match self.per {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        })
    }

    fn quota(self) -> Quota {
        match self.per {
            Per::Second => Quota::per_second(self.count),
            Per::Minute => Quota::per_minute(self.count),
            Per::Hour => Quota::per_hour(self.count),
        }
    }
}

/// One rate applied per key.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter of `rate` for each key, in this process.
    pub fn new(rate: Rate) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(rate.quota()),
        }
    }

    /// Counts one request for `key`; `Err` holds how long until one would be allowed.
    pub fn check(&self, key: &K) -> Result<(), std::time::Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets keys whose buckets are full again, so memory follows the active clients.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The key a client's address is limited under. One IPv6 subscriber usually holds a whole /64,
/// so IPv6 addresses count per /64; IPv4-mapped addresses count as the IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One limit: its rate, the name its shared keys carry, and this instance's own buckets.
struct Limit<K: Hash + Eq + Clone> {
    name: &'static str,
    rate: Rate,
    local: KeyedLimiter<K>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(name: &'static str, rate: Rate) -> Self {
        Self {
            name,
            rate,
            local: KeyedLimiter::new(rate),
        }
    }
}

/// How long an instance keeps to its own buckets after the shared store failed.
const RETRY_SHARED_AFTER: Duration = Duration::from_secs(5);

/// The shared store and whether it is answering.
struct Shared {
    counter: Arc<dyn SharedCounter>,
    up: AtomicBool,
    /// Milliseconds since the epoch before which the store is not tried again.
    retry_at_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The three limits of the operations guide; `None` is `off`.
#[derive(Default)]
pub struct RateLimits {
    api_per_ip: Option<Limit<IpAddr>>,
    login_per_ip: Option<Limit<IpAddr>>,
    login_per_account: Option<Limit<String>>,
    shared: Option<Shared>,
}

/// Where the limits are counted right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsBackend {
    /// In this process only (no shared store configured).
    Local,
    /// In the shared store, for every instance.
    Shared,
    /// In this process, because the shared store is unreachable.
    LocalFallback,
}

impl LimitsBackend {
    /// The name health and logs show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Shared => "shared",
            Self::LocalFallback => "local (shared store unreachable)",
        }
    }
}

impl RateLimits {
    /// The limits configured; `None` turns one off.
    pub fn new(
        api_per_ip: Option<Rate>,
        login_per_ip: Option<Rate>,
        login_per_account: Option<Rate>,
    ) -> Self {
        Self {
            api_per_ip: api_per_ip.map(|r| Limit::new("api_ip", r)),
            login_per_ip: login_per_ip.map(|r| Limit::new("login_ip", r)),
            login_per_account: login_per_account.map(|r| Limit::new("login_account", r)),
            shared: None,
        }
    }

    /// Counts in `counter`, shared by every instance, from now on.
    pub fn shared_through(mut self, counter: Arc<dyn SharedCounter>) -> Self {
        self.shared = Some(Shared {
            counter,
            up: AtomicBool::new(true),
            retry_at_ms: AtomicU64::new(0),
        });
        self
    }

    /// Sets `finhub_rate_limit_shared` to where the limits are counted now (when a shared store
    /// is configured at all).
    pub fn report(&self) {
        if self.shared.is_some() {
            let shared = self.backend() == LimitsBackend::Shared;
            metrics::gauge!("finhub_rate_limit_shared").set(if shared { 1.0 } else { 0.0 });
        }
    }

    /// Where the limits are counted now.
    pub fn backend(&self) -> LimitsBackend {
        match &self.shared {
            None => LimitsBackend::Local,
            Some(shared) if shared.up.load(Ordering::Relaxed) => LimitsBackend::Shared,
            Some(_) => LimitsBackend::LocalFallback,
        }
    }

    /// Counts one API call from `ip`.
    pub async fn check_api(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.api_per_ip, ip) {
            (Some(limit), Some(ip)) => self.hit(limit, client_key(ip)).await,
            _ => Ok(()),
        }
    }

    /// Counts one login for `ip` and `username`; both must allow it.
    pub async fn check_login(&self, ip: Option<IpAddr>, username: &str) -> Result<(), Duration> {
        self.check_login_from(ip).await?;
        self.check_login_of(username).await
    }

    /// Counts one login from `ip` (a passkey login, before its account is known).
    pub async fn check_login_from(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        match (&self.login_per_ip, ip) {
            (Some(limit), Some(ip)) => self.hit(limit, client_key(ip)).await,
            _ => Ok(()),
        }
    }

    /// Counts one login of `username` (a passkey login, once its account is known).
    pub async fn check_login_of(&self, username: &str) -> Result<(), Duration> {
        match &self.login_per_account {
            Some(limit) => self.hit(limit, username.to_owned()).await,
            None => Ok(()),
        }
    }

    /// One request against `limit` for `key`: in the shared store when it answers, else here.
    async fn hit<K>(&self, limit: &Limit<K>, key: K) -> Result<(), Duration>
    where
        K: Hash + Eq + Clone + fmt::Display,
    {
        if let Some(shared) = &self.shared
            && (shared.up.load(Ordering::Relaxed)
                || now_ms() >= shared.retry_at_ms.load(Ordering::Relaxed))
        {
            match shared
                .counter
                .hit(&shared_key(limit.name, &key), limit.rate)
                .await
            {
                Ok(wait) => {
                    if !shared.up.swap(true, Ordering::Relaxed) {
                        tracing::info!("rate limits are shared again");
                        metrics::gauge!("finhub_rate_limit_shared").set(1.0);
                    }
                    return wait.map_or(Ok(()), Err);
                }
                Err(e) => {
                    shared.retry_at_ms.store(
                        now_ms() + RETRY_SHARED_AFTER.as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    if shared.up.swap(false, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "rate limits fall back to this instance's own counts");
                        metrics::gauge!("finhub_rate_limit_shared").set(0.0);
                    }
                }
            }
        }
        limit.local.check(&key)
    }

    /// Drops the state of clients that have gone quiet.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.api_per_ip {
            l.local.forget_idle();
        }
        if let Some(l) = &self.login_per_ip {
            l.local.forget_idle();
        }
        if let Some(l) = &self.login_per_account {
            l.local.forget_idle();
        }
    }
}

/// The shared key of `key` under limit `name`. Usernames and addresses are hashed, so the
/// shared store holds no personal data.
fn shared_key(name: &str, key: &impl fmt::Display) -> String {
    let digest = Sha256::digest(key.to_string().as_bytes());
    format!("finhub:rl:{name}:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
