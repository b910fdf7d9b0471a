//! Help, argument and setting errors, and the demo's guard.

use crate::{sandbox, stderr, stdout};

#[test]
fn every_command_has_help() {
    let (setup, _dir) = sandbox();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["demo", "--help"],
        &["migrate", "--help"],
        &["customers", "create", "--help"],
        &["customers", "import", "--help"],
        &["customers", "lock", "--help"],
        &["customers", "unlock", "--help"],
        &["audit", "tail", "--help"],
        &["audit", "export", "--help"],
        &["audit", "verify", "--help"],
    ] {
        let out = setup.run(args, None);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
}

#[test]
fn bad_arguments_and_settings_fail_with_one_line() {
    let (setup, _dir) = sandbox();
    for args in [
        &["customers", "lock"][..],
        &["frobnicate"],
        &["audit", "export", "--since", "yesterday"],
    ] {
        let out = setup.run(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_line(&stderr(&out));
    }

    let bad_ttl = setup.clone().with("FINHUB_SESSION_TTL", "forever");
    let out = bad_ttl.run(&["migrate"], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FINHUB_SESSION_TTL"),
        "{}",
        stderr(&out)
    );
    assert_one_line(&stderr(&out));

    let mysql = setup.clone().with("FINHUB_DATABASE_URL", "mysql://nope");
    let out = mysql.run(&["migrate"], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FINHUB_DATABASE_URL"),
        "{}",
        stderr(&out)
    );
    assert_one_line(&stderr(&out));

    let out = setup.run(&["customers", "lock", "nobody@example.com"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no customer"), "{}", stderr(&out));
    assert_one_line(&stderr(&out));

    // The writer and the readers are connections of their own: an in-memory database would
    // give each a database of its own, and reads would not see what was written.
    let memory = setup.clone().with("FINHUB_DATABASE_URL", "sqlite::memory:");
    let out = memory.run(&["migrate"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in-memory"), "{}", stderr(&out));
    assert_one_line(&stderr(&out));
}

fn assert_one_line(stderr: &str) {
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn demo_refuses_a_non_loopback_address() {
    let (setup, _dir) = sandbox();
    let exposed = setup.with("FINHUB_LISTEN", "0.0.0.0:0");
    let out = exposed.run(&["demo"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
}

/// Demo customers with a public password seeded into a real customer base: `demo` refuses any
/// store but an SQLite file, before opening (or migrating) it, without echoing the URL's
/// credentials.
#[test]
fn demo_refuses_any_store_but_an_sqlite_file() {
    let (setup, _dir) = sandbox();
    let postgres = setup.with(
        "FINHUB_DATABASE_URL",
        "postgres://finhub:s3cret-password@127.0.0.1:1/bank",
    );
    let out = postgres.run(&["demo"], None);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("demo refuses") && err.contains("sqlite://"),
        "{err}"
    );
    assert!(!err.contains("s3cret-password"), "{err}");
}

/// A TLS downgrade of the database connection: without an explicit `sslmode`, a remote
/// PostgreSQL would be reached with `prefer` (cleartext when TLS fails, any certificate
/// accepted). `migrate` and `serve` refuse at once, before any network I/O, naming the fix.
#[test]
fn a_remote_postgresql_without_a_verifying_sslmode_is_refused_before_connecting() {
    let (setup, _dir) = sandbox();
    for (url, pgsslmode) in [
        ("postgres://finhub@db.example.invalid/bank", None),
        ("postgres://finhub@db.example.invalid/bank", Some("prefer")),
        (
            "postgres://finhub@db.example.invalid/bank?sslmode=allow",
            None,
        ),
    ] {
        let mut remote = setup.clone().with("FINHUB_DATABASE_URL", url);
        if let Some(mode) = pgsslmode {
            remote = remote.with("PGSSLMODE", mode);
        }
        for command in [&["migrate"][..], &["serve"]] {
            let started = std::time::Instant::now();
            let out = remote.run(command, None);
            assert!(!out.status.success(), "{url} {command:?}");
            let err = stderr(&out);
            assert!(
                err.contains("db.example.invalid") && err.contains("sslmode=verify-full"),
                "{url} {command:?}: {err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(3));
        }
    }
}
