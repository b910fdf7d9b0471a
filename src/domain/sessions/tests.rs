use super::*;

fn policy() -> SessionPolicy {
    SessionPolicy {
        ttl: Duration::hours(1),
        pending_ttl: Duration::minutes(10),
        absolute_ttl: Duration::hours(12),
        idle_timeout: Some(Duration::minutes(15)),
        recent_auth_window: Duration::minutes(5),
        max_active: NonZeroU32::MIN,
    }
}

fn session(now: OffsetDateTime) -> Session {
    Session {
        id: SessionId::generate(),
        customer_id: CustomerId::generate(),
        state: SessionState::Active,
        created_at: now,
        expires_at: now + Duration::hours(1),
        absolute_expires_at: now + Duration::hours(12),
        last_seen_at: now,
        login_at: Some(now),
        previous_login_at: None,
        two_factor_verified: false,
        recent_auth_at: None,
        revoked: false,
    }
}

#[test]
fn a_proved_factor_is_recent_for_the_window_and_never_before_it_was_proved() {
    let now = OffsetDateTime::now_utc();
    let p = policy();
    let never = session(now);
    assert!(!p.is_recent(&never, now));
    assert_eq!(p.recent_until(&never), None);
    let proved = Session {
        recent_auth_at: Some(now),
        ..never
    };
    assert!(p.is_recent(&proved, now + Duration::minutes(4)));
    assert!(!p.is_recent(&proved, now + Duration::minutes(5)));
    assert_eq!(p.recent_until(&proved), Some(now + Duration::minutes(5)));
}

#[test]
fn pending_sessions_live_ten_minutes_and_active_ones_an_hour() {
    let now = OffsetDateTime::now_utc();
    let p = policy();
    assert_eq!(
        p.expiry(SessionState::TwoFactorPending, now, now),
        now + Duration::minutes(10)
    );
    assert_eq!(
        p.expiry(SessionState::Active, now, now),
        now + Duration::hours(1)
    );
}

#[test]
fn no_expiry_reaches_past_the_absolute_lifetime() {
    let created = OffsetDateTime::now_utc();
    let late = created + Duration::hours(11) + Duration::minutes(30);
    assert_eq!(
        policy().expiry(SessionState::Active, created, late),
        created + Duration::hours(12)
    );
}

#[test]
fn sessions_end_on_expiry_idleness_absolute_age_and_revocation() {
    let now = OffsetDateTime::now_utc();
    let p = policy();
    let s = session(now);
    assert_eq!(p.check_access(&s, now + Duration::minutes(14)), Ok(()));
    assert_eq!(
        p.check_access(&s, now + Duration::minutes(15)),
        Err(Ended::Idle)
    );
    let fresh = Session {
        last_seen_at: now + Duration::minutes(59),
        ..s.clone()
    };
    assert_eq!(
        p.check_access(&fresh, now + Duration::minutes(60)),
        Err(Ended::Expired)
    );
    assert_eq!(p.check_renewal(&fresh, now + Duration::minutes(60)), Ok(()));
    let old = Session {
        last_seen_at: now + Duration::hours(12),
        ..s.clone()
    };
    assert_eq!(
        p.check_renewal(&old, now + Duration::hours(12)),
        Err(Ended::Expired)
    );
    let revoked = Session { revoked: true, ..s };
    assert_eq!(p.check_access(&revoked, now), Err(Ended::Revoked));
}

#[test]
fn a_pending_session_cannot_be_renewed_past_its_lifetime() {
    let now = OffsetDateTime::now_utc();
    let pending = Session {
        state: SessionState::TwoFactorPending,
        expires_at: now + Duration::minutes(10),
        ..session(now)
    };
    assert_eq!(
        policy().check_renewal(&pending, now + Duration::minutes(9)),
        Ok(())
    );
    assert_eq!(
        policy().check_renewal(&pending, now + Duration::minutes(10)),
        Err(Ended::Expired)
    );
}

#[test]
fn activity_is_recorded_once_per_resolution_and_the_idle_timeout_errs_early() {
    let now = OffsetDateTime::now_utc();
    let p = policy();
    assert_eq!(p.activity_resolution(), Duration::minutes(1));
    let s = session(now);
    assert!(!p.should_record_activity(&s, now + Duration::seconds(59)));
    assert!(p.should_record_activity(&s, now + Duration::seconds(60)));
    // Activity at +59 s went unrecorded: the session ends 15 minutes after +0 s, up to one
    // resolution before a perfectly exact timeout would end it.
    assert_eq!(
        p.check_access(&s, now + Duration::minutes(15)),
        Err(Ended::Idle)
    );
    let short = SessionPolicy {
        idle_timeout: Some(Duration::seconds(5)),
        ..p
    };
    assert_eq!(short.activity_resolution(), Duration::seconds(1));
}

#[test]
fn idle_timeout_off_never_ends_a_session() {
    let now = OffsetDateTime::now_utc();
    let p = SessionPolicy {
        idle_timeout: None,
        ..policy()
    };
    assert_eq!(
        p.check_access(&session(now), now + Duration::minutes(59)),
        Ok(())
    );
}
