//! The audit commands: verify, export, tail, and a trail that resists edits.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::{
    PASSWORD, database, exported_events, full_flow, run_ok, sandbox, sqlite, sqlite_result, stderr,
    stdout,
};

#[tokio::test]
async fn audit_verify_passes_on_an_intact_trail_and_names_the_first_tampered_event() {
    let (setup, _dir) = sandbox();
    setup.create_customer("bob", "sms", PASSWORD);
    {
        let server = setup.serve("serve").await;
        full_flow(&setup, &server).await;
    }
    let out = run_ok(&setup, &["audit", "verify"]);
    assert!(stdout(&out).contains("intact"));

    let events = exported_events(&setup);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "customer.created",
            "login.succeeded",
            "2fa.initiated",
            "2fa.verified",
            "session.refreshed",
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["hash"].is_string() && e["prevHash"].is_string())
    );
    let future = run_ok(
        &setup,
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(stdout(&future), "");

    // An insider edits the third event's reason, working around the append-only triggers.
    sqlite(
        &database(&setup),
        "DROP TRIGGER audit_events_are_not_updated; \
         UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3;",
    )
    .await;
    let out = setup.run(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("seq 3"), "{}", stderr(&out));
}

#[tokio::test]
async fn audit_verify_detects_deleted_events() {
    let (setup, _dir) = sandbox();
    for name in ["alice", "bob", "carol"] {
        setup.create_customer(name, "off", PASSWORD);
    }
    sqlite(
        &database(&setup),
        "DROP TRIGGER audit_events_are_not_deleted; DELETE FROM audit_events WHERE seq = 3;",
    )
    .await;
    let out = setup.run(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "error: audit trail broken: the chain ends at seq 2 but the recorded head is seq 3: \
         events were removed from the end",
        "one line, naming the break once"
    );
}

#[tokio::test]
async fn the_audit_trail_refuses_edits_through_sql() {
    let (setup, _dir) = sandbox();
    setup.create_customer("alice", "off", PASSWORD);
    let refused = sqlite_result(
        &database(&setup),
        "UPDATE audit_events SET reason = 'x' WHERE seq = 1;",
    )
    .await
    .expect_err("the update is refused");
    assert!(refused.contains("append-only"), "{refused}");
}

#[test]
fn audit_tail_follow_prints_new_events_as_they_happen() {
    use std::io::BufRead as _;
    let (setup, _dir) = sandbox();
    run_ok(&setup, &["migrate"]);
    let mut follower = setup
        .command(0)
        .args(["audit", "tail", "--follow", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn audit tail --follow");
    let output = follower.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    setup.create_customer("alice", "off", PASSWORD);

    let line = received.recv_timeout(Duration::from_secs(10));
    let _ = follower.kill();
    let _ = follower.wait();
    let line = line.expect("an event within 10 s");
    let event: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(event["kind"], "customer.created");
    assert_eq!(event["username"], "alice@example.com");
}

#[tokio::test]
async fn moving_the_retention_checkpoint_by_hand_to_hide_events_is_detected() {
    let (setup, _dir) = sandbox();
    for name in ["alice", "bob", "carol", "dave"] {
        setup.create_customer(name, "off", PASSWORD);
    }
    sqlite(
        &database(&setup),
        "UPDATE audit_checkpoint \
         SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2); \
         DELETE FROM audit_events WHERE seq <= 2;",
    )
    .await;
    let out = setup.run(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no audit.purged event accounts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_an_audit_key_the_chain_is_sealed_and_verifies_only_with_the_key() {
    let (setup, _dir) = sandbox();
    let keyed = setup.clone().with(
        "FINHUB_AUDIT_KEY",
        "a-long-audit-key-kept-outside-the-database",
    );
    keyed.create_customer("alice", "off", PASSWORD);
    run_ok(&keyed, &["customers", "lock", "alice@example.com"]);

    let out = run_ok(&keyed, &["audit", "verify"]);
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
    let events = exported_events(&keyed);
    assert_eq!(events.len(), 2, "created and locked");
    for event in &events {
        let hash = event["hash"].as_str().expect("hash");
        assert!(hash.starts_with("hmac:"), "{hash}");
    }

    let unkeyed = setup.run(&["audit", "verify"], None);
    assert!(!unkeyed.status.success());
    assert!(
        stderr(&unkeyed).contains("FINHUB_AUDIT_KEY"),
        "{}",
        stderr(&unkeyed)
    );
    let wrong_key = setup.clone().with("FINHUB_AUDIT_KEY", &"x".repeat(40));
    assert!(!wrong_key.run(&["audit", "verify"], None).status.success());

    let short_key = setup.clone().with("FINHUB_AUDIT_KEY", "short");
    let short = short_key.run(&["migrate"], None);
    assert!(!short.status.success());
    assert!(
        stderr(&short).contains("at least 32 bytes"),
        "{}",
        stderr(&short)
    );
}
