#![expect(
    clippy::result_large_err,
    reason = "figment's Jail fixes the closure's error type"
)]

use std::path::Path;

use figment::value::Value;
use time::Duration;

use super::*;
use crate::domain::keys::KeyId;
use crate::http::client_ip::ClientIpHeader;

mod documented;

fn load_error() -> String {
    Settings::load(None).unwrap_err().to_string()
}

/// Writes `contents` to the settings file `file` in `jail`; why loading it is refused.
fn file_error(jail: &figment::Jail, file: &str, contents: &str) -> figment::error::Result<String> {
    jail.create_file(file, contents)?;
    Ok(Settings::load(Some(Path::new(file)))
        .unwrap_err()
        .to_string())
}

#[test]
fn durations_take_the_documented_forms() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
    assert_eq!(parse_duration("10m").unwrap(), Duration::minutes(10));
    assert_eq!(parse_duration("1h").unwrap(), Duration::hours(1));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
    assert_eq!(parse_duration("45").unwrap(), Duration::seconds(45));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn defaults_follow_the_operations_guide() {
    figment::Jail::expect_with(|_| {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.sessions.ttl, Duration::hours(1));
        assert_eq!(s.sessions.idle_timeout, Some(Duration::minutes(15)));
        assert_eq!(s.sessions.max_sessions.get(), 10);
        assert_eq!(s.two_factor.max_sends.get(), 5);
        assert_eq!(s.limits.login_per_ip.unwrap().to_string(), "60/min");
        // Every default reads back as itself.
        assert_eq!(
            Value::serialize(&s).unwrap(),
            Value::serialize(Settings::default()).unwrap()
        );
        Ok(())
    });
}

#[test]
fn a_minimum_password_length_below_eight_stops_start_up() {
    figment::Jail::expect_with(|jail| {
        assert_eq!(Settings::load(None).unwrap().passwords.min_length, 12);
        jail.set_env("FINHUB_PASSWORD_MIN_LENGTH", "10");
        assert_eq!(Settings::load(None).unwrap().passwords.min_length, 10);
        jail.set_env("FINHUB_PASSWORD_MIN_LENGTH", "7");
        let err = load_error();
        assert!(err.contains("FINHUB_PASSWORD_MIN_LENGTH"), "{err}");
        assert!(err.contains("between 8 and 128"), "{err}");
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file_and_off_disables_the_idle_timeout() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "finhub.toml",
            "session_ttl = \"2h\"\nlockout_threshold = 3\n\"2fa_max_sends\" = 2\n",
        )?;
        jail.set_env("FINHUB_SESSION_TTL", "30m");
        jail.set_env("FINHUB_SESSION_IDLE_TIMEOUT", "off");
        jail.set_env("FINHUB_2FA_CODE_TTL", "5m");
        jail.set_env("FINHUB_RATE_LIMIT_IP", "off");
        jail.set_env("FINHUB_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1");
        jail.set_env("FINHUB_CLIENT_IP_HEADER", "forwarded");
        jail.set_env("FINHUB_RATE_LIMIT_LOGIN_ACCOUNT", "10/s");
        jail.set_env("FINHUB_AUDIT_RETENTION", "90");
        let s = Settings::load(Some(Path::new("finhub.toml"))).unwrap();
        assert_eq!(s.sessions.ttl, Duration::minutes(30));
        assert_eq!(s.lockout.threshold, 3);
        assert_eq!(s.two_factor.max_sends.get(), 2);
        assert_eq!(s.sessions.idle_timeout, None);
        assert_eq!(s.two_factor.code_ttl, Duration::minutes(5));
        assert_eq!(s.limits.api_per_ip, None);
        assert_eq!(s.server.trusted_proxies.len(), 2);
        assert_eq!(s.server.client_ip_header, ClientIpHeader::Forwarded);
        assert_eq!(s.limits.login_per_account.unwrap().to_string(), "10/s");
        assert_eq!(s.housekeeping.audit_retention, Some(Duration::seconds(90)));
        Ok(())
    });
}

#[test]
fn the_lockout_maximum_is_never_below_the_first_lock() {
    let lockout = LockoutSection {
        duration: Duration::hours(2),
        max_duration: Duration::hours(1),
        ..LockoutSection::default()
    };
    assert_eq!(lockout.policy().max, Duration::hours(2));
    let settings = Settings {
        lockout,
        ..Settings::default()
    };
    assert_eq!(settings.retention().lockouts, Duration::hours(2));
}

#[test]
fn unknown_keys_in_the_file_are_refused_and_half_a_tls_configuration_too() {
    figment::Jail::expect_with(|jail| {
        let err = file_error(jail, "typo.toml", "sesion_ttl = \"1h\"\n")?;
        assert_eq!(err, "unknown setting `sesion_ttl` in typo.toml");

        jail.create_file("mail.toml", "smtp_from = \"auth@finhub.example\"\n")?;
        let s = Settings::load(Some(Path::new("mail.toml"))).unwrap();
        assert_eq!(s.notifier.smtp_from.as_deref(), Some("auth@finhub.example"));

        jail.create_file("redis.toml", "redis_url = \"redis://127.0.0.1\"\n")?;
        let s = Settings::load(Some(Path::new("redis.toml"))).unwrap();
        assert!(s.limits.redis_url.is_some());

        // Half a TLS configuration never falls back to plain HTTP.
        jail.set_env("FINHUB_TLS_CERT", "/etc/cert.pem");
        let err = load_error();
        assert!(
            err.contains("FINHUB_TLS_CERT and FINHUB_TLS_KEY go together"),
            "{err}"
        );
        jail.set_env("FINHUB_TLS_KEY", "/etc/key.pem");
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn unknown_variables_are_reported_not_read() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FINHUB_SESION_TTL", "nonsense");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.unknown_variables, vec!["FINHUB_SESION_TTL"]);
        Ok(())
    });
}

#[test]
fn the_audit_key_comes_from_the_environment_or_a_file_but_not_both() {
    figment::Jail::expect_with(|jail| {
        assert!(
            !Settings::load(None)
                .unwrap()
                .audit
                .chain_seal()
                .unwrap()
                .is_keyed()
        );
        jail.create_file("audit.key", "0123456789abcdef0123456789abcdef\n")?;
        jail.set_env("FINHUB_AUDIT_KEY_FILE", "audit.key");
        assert!(
            Settings::load(None)
                .unwrap()
                .audit
                .chain_seal()
                .unwrap()
                .is_keyed()
        );
        jail.set_env("FINHUB_AUDIT_KEY", "0123456789abcdef0123456789abcdef");
        assert_eq!(
            load_error(),
            "set FINHUB_AUDIT_KEY or FINHUB_AUDIT_KEY_FILE, not both"
        );
        jail.create_file("short.key", "too short\n")?;
        jail.clear_env();
        jail.set_env("FINHUB_AUDIT_KEY_FILE", "short.key");
        assert_eq!(load_error(), "FINHUB_AUDIT_KEY must be at least 32 bytes");
        Ok(())
    });
}

#[test]
fn previous_audit_keys_come_from_a_file_and_need_a_current_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "previous.keys",
            "# retired 2026-11\nthe audit key before the rotation\n\nand the one before that, 32 bytes\n",
        )?;
        jail.set_env("FINHUB_AUDIT_PREVIOUS_KEYS_FILE", "previous.keys");
        let refused = Settings::load(None)
            .unwrap()
            .audit
            .chain_seal()
            .unwrap_err();
        assert!(refused.to_string().contains("no current key"), "{refused}");
        jail.set_env("FINHUB_AUDIT_KEY", "the audit key after the rotation.");
        let keys = Settings::load(None)
            .unwrap()
            .audit
            .audit_keys()
            .unwrap()
            .unwrap();
        let ids: Vec<_> = keys.ids().map(|id| id.to_string()).collect();
        assert_eq!(
            ids,
            [
                KeyId::of(b"the audit key after the rotation.").to_string(),
                KeyId::of(b"the audit key before the rotation").to_string(),
                KeyId::of(b"and the one before that, 32 bytes").to_string(),
            ]
        );
        jail.create_file("short.keys", "the audit key before the rotation\nshort\n")?;
        jail.set_env("FINHUB_AUDIT_PREVIOUS_KEYS_FILE", "short.keys");
        assert_eq!(
            load_error(),
            "FINHUB_AUDIT_PREVIOUS_KEYS_FILE: key 2 is shorter than 32 bytes"
        );
        jail.create_file("again.keys", "the audit key after the rotation.\n")?;
        jail.set_env("FINHUB_AUDIT_PREVIOUS_KEYS_FILE", "again.keys");
        let twice = Settings::load(None)
            .unwrap()
            .audit
            .audit_keys()
            .unwrap_err();
        assert!(twice.to_string().contains("configured twice"), "{twice}");
        Ok(())
    });
}

#[test]
fn a_bad_value_names_its_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FINHUB_LOCKOUT_DURATION", "a while");
        let err = load_error();
        assert!(err.contains("FINHUB_LOCKOUT_DURATION"), "{err}");
        jail.set_env("FINHUB_LOCKOUT_DURATION", "15m");
        jail.set_env("FINHUB_2FA_MAX_ATTEMPTS", "0");
        let err = load_error();
        assert!(err.contains("FINHUB_2FA_MAX_ATTEMPTS"), "{err}");
        jail.set_env("FINHUB_2FA_MAX_ATTEMPTS", "5");
        jail.set_env("FINHUB_SESSION_TTL", "100000d");
        let err = load_error();
        assert!(err.contains("FINHUB_SESSION_TTL"), "{err}");
        Ok(())
    });
}

#[test]
fn a_value_out_of_range_says_what_the_setting_allows() {
    figment::Jail::expect_with(|jail| {
        let cases = [
            ("FINHUB_2FA_MAX_ATTEMPTS", "0", "must be at least 1"),
            ("FINHUB_HOUSEKEEPING_BATCH", "0", "must be at least 1"),
            ("FINHUB_SESSION_TTL", "0", "must be longer than zero"),
            ("FINHUB_SESSION_TTL", "100000d", "must be at most 3650 days"),
            ("FINHUB_2FA_RESEND_INTERVAL", "-1", "must not be negative"),
            (
                "FINHUB_SESSION_IDLE_TIMEOUT",
                "0",
                "must be longer than zero, or off",
            ),
            (
                "FINHUB_AUDIT_RETENTION",
                "4000d",
                "must be at most 3650 days",
            ),
            (
                "FINHUB_DATABASE_URL",
                "mysql://nope",
                "must start with sqlite:// or postgres://",
            ),
            ("FINHUB_AUDIT_KEY", "short", "must be at least 32 bytes"),
        ];
        for (name, value, rule) in cases {
            jail.clear_env();
            jail.set_env(name, value);
            assert_eq!(load_error(), format!("{name} {rule}"));
        }
        jail.clear_env();
        jail.set_env("FINHUB_RATE_LIMIT_IP", "lots");
        assert_eq!(
            load_error(),
            "FINHUB_RATE_LIMIT_IP: must be a rate such as 300/min, 10/s or 1000/h, or off"
        );
        Ok(())
    });
}

#[test]
fn a_value_of_the_wrong_type_says_what_is_expected() {
    figment::Jail::expect_with(|jail| {
        let err = file_error(jail, "types.toml", "session_ttl = true\n")?;
        assert_eq!(err, "FINHUB_SESSION_TTL: expected text or a whole number");
        Ok(())
    });
}

/// The `FINHUB_*` names in the first column of the README's settings tables: tables whose
/// first heading is `variable`, read up to the first line that is not a row, so a table cut in
/// two by a blank line loses the rows after the cut.
#[test]
fn links_in_e_mails_lead_to_the_public_address_which_live_e_mail_requires() {
    figment::Jail::expect_with(|jail| {
        let s = Settings::load(None).unwrap();
        let links = s.notifier.public_url(&s.server).unwrap();
        assert_eq!(links, "http://127.0.0.1:8080", "the listener's own");
        jail.set_env("FINHUB_NOTIFIER", "live");
        let refused = Settings::load(None).unwrap_err().to_string();
        assert!(
            refused.contains("FINHUB_PUBLIC_URL is required"),
            "{refused}"
        );
        jail.set_env("FINHUB_PUBLIC_URL", "https://app.finhub.example/");
        let s = Settings::load(None).unwrap();
        assert_eq!(
            s.notifier.public_url(&s.server).unwrap(),
            "https://app.finhub.example"
        );
        // The token goes in the fragment: an address with its own would break every link.
        for refused in [
            "https://app.finhub.example/#start",
            "https://app.finhub.example/?a=b",
            "javascript:alert(1)",
            "app.finhub.example",
        ] {
            jail.set_env("FINHUB_PUBLIC_URL", refused);
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(error.starts_with("FINHUB_PUBLIC_URL"), "{refused}: {error}");
        }
        Ok(())
    });
}

#[test]
fn a_webhook_needs_its_secret_and_known_kinds() {
    figment::Jail::expect_with(|jail| {
        let s = Settings::load(None).unwrap();
        assert!(
            s.webhooks.kinds().unwrap().is_empty(),
            "no webhook, nothing queued"
        );
        jail.set_env("FINHUB_WEBHOOK_URL", "https://fraud.finhub.example/events");
        let error = load_error();
        assert!(error.contains("FINHUB_WEBHOOK_SECRET"), "{error}");
        jail.set_env("FINHUB_WEBHOOK_SECRET", "a-webhook-secret-of-enough-bytes");
        let kinds = Settings::load(None).unwrap().webhooks.kinds().unwrap();
        assert!(kinds.sends(crate::domain::audit::AuditKind::AccountLockdown));
        jail.set_env("FINHUB_WEBHOOK_EVENTS", "login.failed,login.exploded");
        let error = load_error();
        assert!(error.starts_with("FINHUB_WEBHOOK_EVENTS"), "{error}");
        assert!(error.contains("`login.exploded`"), "{error}");
        Ok(())
    });
}
