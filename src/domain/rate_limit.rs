//! Request-rate limits: all API calls per client IP, logins per client IP, logins per username.
//! Each is a keyed token bucket (GCRA) held in this process.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::InvalidValue;

/// A rate such as `300/min`: that many requests, refilled evenly over the period, with a burst
/// of the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Per,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
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

/// The three limits of the operations guide; `None` is `off`.
#[derive(Default)]
pub struct RateLimits {
    pub api_per_ip: Option<KeyedLimiter<IpAddr>>,
    pub login_per_ip: Option<KeyedLimiter<IpAddr>>,
    pub login_per_account: Option<KeyedLimiter<String>>,
}

impl RateLimits {
    pub fn new(
        api_per_ip: Option<Rate>,
        login_per_ip: Option<Rate>,
        login_per_account: Option<Rate>,
    ) -> Self {
        Self {
            api_per_ip: api_per_ip.map(KeyedLimiter::new),
            login_per_ip: login_per_ip.map(KeyedLimiter::new),
            login_per_account: login_per_account.map(KeyedLimiter::new),
        }
    }

    /// Counts one API call from `ip`.
    pub fn check_api(&self, ip: Option<IpAddr>) -> Result<(), std::time::Duration> {
        match (&self.api_per_ip, ip) {
            (Some(limiter), Some(ip)) => limiter.check(&client_key(ip)),
            _ => Ok(()),
        }
    }

    /// Counts one login for `ip` and `username`; both must allow it.
    pub fn check_login(
        &self,
        ip: Option<IpAddr>,
        username: &str,
    ) -> Result<(), std::time::Duration> {
        if let (Some(limiter), Some(ip)) = (&self.login_per_ip, ip) {
            limiter.check(&client_key(ip))?;
        }
        if let Some(limiter) = &self.login_per_account {
            limiter.check(&username.to_owned())?;
        }
        Ok(())
    }

    /// Drops the state of clients that have gone quiet.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.api_per_ip {
            l.forget_idle();
        }
        if let Some(l) = &self.login_per_ip {
            l.forget_idle();
        }
        if let Some(l) = &self.login_per_account {
            l.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_the_documented_forms() {
        let r: Rate = "300/min".parse().unwrap();
        assert_eq!(r.count.get(), 300);
        assert_eq!(r.per, Per::Minute);
        assert_eq!("10/s".parse::<Rate>().unwrap().per, Per::Second);
        assert_eq!("5/h".parse::<Rate>().unwrap().to_string(), "5/h");
        for bad in ["0/min", "300", "x/min", "10/day"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_key_gets_its_burst_and_then_waits_while_other_keys_are_unaffected() {
        let limiter = KeyedLimiter::new("3/min".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        let wait = limiter.check(&"a").unwrap_err();
        assert!(wait.as_secs() <= 20 && wait.as_millis() > 0, "{wait:?}");
        assert!(limiter.check(&"b").is_ok());
    }
}
