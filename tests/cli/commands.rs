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
