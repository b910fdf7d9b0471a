//! The settings' names are the documented ones: the operations guide's, and the README's table.

use std::collections::BTreeSet;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Dict;

use super::super::*;

#[test]
fn the_names_are_the_documented_ones() {
    let known: Dict = Figment::from(Serialized::defaults(Settings::default()))
        .extract()
        .unwrap();
    let known: Vec<&str> = known.keys().map(String::as_str).collect();
    let mut documented = vec![
        "listen",
        "database_url",
        "session_ttl",
        "pending_session_ttl",
        "session_absolute_ttl",
        "session_idle_timeout",
        "max_sessions",
        "2fa_code_ttl",
        "2fa_max_attempts",
        "2fa_resend_interval",
        "2fa_max_sends",
        "2fa_customer_sends",
        "lockout_threshold",
        "lockout_duration",
        "lockout_max_duration",
        "notifier",
        "outbox_path",
        "delivery_worker",
        "smtp_url",
        "smtp_from",
        "smtp_ca_file",
        "code_template",
        "delivery_attempts",
        "sms_gateway_url",
        "sms_gateway_secret",
        "public_url",
        "webhook_url",
        "webhook_secret",
        "webhook_events",
        "log_format",
        "hash_workers",
        "hash_queue",
        "hash_memory_kib",
        "hash_iterations",
        "hash_parallelism",
        "db_max_connections",
        "db_acquire_timeout",
        "db_statement_timeout",
        "request_timeout",
        "header_read_timeout",
        "session_retention",
        "audit_retention",
        "housekeeping_interval",
        "housekeeping_batch",
        "trusted_proxies",
        "client_ip_header",
        "ops_listen",
        "ops_token_file",
        "ops_tls",
        "otlp_endpoint",
        "tls_cert",
        "tls_key",
        "audit_key",
        "audit_key_file",
        "audit_previous_keys_file",
        "audit_anchor_path",
        "audit_anchor_interval",
        "audit_anchor_key_file",
        "allow_no_audit_key",
        "rate_limit_ip",
        "rate_limit_login_ip",
        "rate_limit_login_account",
        "redis_url",
        "redis_ca_file",
        "geoip_db",
        "risk_action",
        "recent_auth_window",
        "password_min_length",
        "breached_passwords_file",
        "breached_passwords_url",
        "password_reset_ttl",
        "require_2fa",
        "passkey_login",
        "webauthn_rp_id",
        "webauthn_origin",
    ];
    documented.sort_unstable();
    assert_eq!(known, documented);
}

fn documented_variables(readme: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_settings = false;
    for line in readme.lines().map(str::trim) {
        if !line.starts_with('|') {
            in_settings = false;
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or_default().trim();
        if first == "variable" {
            in_settings = true;
            continue;
        }
        if in_settings {
            names.extend(
                first
                    .split('`')
                    .filter(|word| word.starts_with("FINHUB_"))
                    .map(str::to_owned),
            );
        }
    }
    names
}

#[test]
fn the_readme_table_names_every_setting_and_only_those() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README beside Cargo.toml");
    let documented = documented_variables(&readme);
    let read: BTreeSet<String> = Settings::known_keys()
        .unwrap()
        .iter()
        .map(|key| variable(key))
        .collect();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "settings missing from the README's table: {undocumented:?}; \
         in the table but not read: {unread:?}"
    );
}

#[test]
fn the_readme_table_check_reads_only_whole_settings_tables() {
    let readme = "\
| command | meaning |
|---|---|
| `demo` | refuses `FINHUB_DATABASE_URL` naming PostgreSQL |

| variable | default | meaning |
|---|---|---|
| `FINHUB_LISTEN` | `127.0.0.1:8080` | address, not `FINHUB_OTHER` |
| `FINHUB_SMTP_URL` / `FINHUB_SMTP_FROM` | unset | relay |

| `FINHUB_TLS_CERT` | unset | cut off from its table |
";
    let names: Vec<String> = documented_variables(readme).into_iter().collect();
    assert_eq!(
        names,
        ["FINHUB_LISTEN", "FINHUB_SMTP_FROM", "FINHUB_SMTP_URL"]
    );
}
