//! Tests of `rate_limit.rs`.

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

/// A shared store that allows `allow` requests in all, or fails while `down`.
struct FakeCounter {
    down: AtomicBool,
    left: std::sync::Mutex<u32>,
}

#[async_trait::async_trait]
impl SharedCounter for FakeCounter {
    async fn hit(
        &self,
        key: &str,
        _rate: Rate,
    ) -> Result<Option<Duration>, crate::domain::ports::CounterUnavailable> {
        assert!(key.starts_with("finhub:rl:login_account:"));
        assert!(!key.contains("alice"), "no username in the shared key");
        if self.down.load(Ordering::Relaxed) {
            return Err(crate::domain::ports::CounterUnavailable("down".into()));
        }
        let mut left = self.left.lock().unwrap();
        if *left == 0 {
            return Ok(Some(Duration::from_secs(7)));
        }
        *left -= 1;
        Ok(None)
    }
}

#[tokio::test]
async fn the_shared_store_decides_while_it_answers_and_local_buckets_while_it_does_not() {
    let fake = Arc::new(FakeCounter {
        down: AtomicBool::new(false),
        left: std::sync::Mutex::new(1),
    });
    let limits = RateLimits::new(None, None, Some("3/min".parse().unwrap()))
        .shared_through(Arc::clone(&fake) as Arc<dyn SharedCounter>);
    assert_eq!(limits.backend(), LimitsBackend::Shared);
    assert!(limits.check_login(None, "alice").await.is_ok());
    // The shared store says no (another instance used the allowance), whatever is left here.
    assert_eq!(
        limits.check_login(None, "alice").await,
        Err(Duration::from_secs(7))
    );

    fake.down.store(true, Ordering::Relaxed);
    for _ in 0..3 {
        assert!(limits.check_login(None, "alice").await.is_ok());
    }
    assert_eq!(limits.backend(), LimitsBackend::LocalFallback);
    assert!(
        limits.check_login(None, "alice").await.is_err(),
        "local burst of 3 used"
    );

    // Back up: tried again only after the pause.
    fake.down.store(false, Ordering::Relaxed);
    *fake.left.lock().unwrap() = 5;
    let _ = limits.check_login(None, "alice").await;
    assert_eq!(limits.backend(), LimitsBackend::LocalFallback);
    if let Some(shared) = &limits.shared {
        shared.retry_at_ms.store(0, Ordering::Relaxed);
    }
    assert!(limits.check_login(None, "alice").await.is_ok());
    assert_eq!(limits.backend(), LimitsBackend::Shared);
}
