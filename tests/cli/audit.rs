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

#[tokio::test]
async fn a_trail_cut_short_and_its_head_rewritten_passes_alone_but_not_against_its_anchors() {
    let (setup, dir) = sandbox();
    let setup = setup.with(
        "FINHUB_AUDIT_KEY",
        "a-long-audit-key-kept-outside-the-database",
    );
    for name in ["alice", "bob", "carol", "dave"] {
        setup.create_customer(name, "off", PASSWORD);
    }
    let anchors = dir.path().join("anchors.jsonl");
    let first = stdout(&run_ok(&setup, &["audit", "anchor"]));
    let anchor: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(anchor["seq"], 4);
    assert_eq!(anchor["seal"], "hmac-sha256");
    assert!(anchor["hash"].as_str().unwrap().starts_with("hmac:"));
    std::fs::write(&anchors, &first).unwrap();
    let intact = run_ok(
        &setup,
        &[
            "audit",
            "verify",
            "--anchors",
            &anchors.display().to_string(),
        ],
    );
    assert!(
        stdout(&intact).contains("anchors hold: 1 of 1"),
        "{}",
        stdout(&intact)
    );

    // What a database writer can do: drop the trigger, cut the newest events, and copy the
    // remaining last link into the head row.
    sqlite(
        &database(&setup),
        "DROP TRIGGER audit_events_are_not_deleted; DELETE FROM audit_events WHERE seq > 2; \
         UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2);",
    )
    .await;
    let alone = run_ok(&setup, &["audit", "verify"]);
    assert!(
        stdout(&alone).contains("intact"),
        "the chain alone cannot tell"
    );

    let out = setup.run(
        &[
            "audit",
            "verify",
            "--anchors",
            &anchors.display().to_string(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "anchor 1: the chain ends at seq 2, before the anchored seq 4: events were cut off"
        ),
        "{}",
        stderr(&out)
    );

    // An anchor edited to match the shortened chain no longer carries a valid signature.
    let forged = first.replace("\"seq\":4", "\"seq\":2");
    std::fs::write(&anchors, forged).unwrap();
    let out = setup.run(
        &[
            "audit",
            "verify",
            "--anchors",
            &anchors.display().to_string(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1 (seq 2): its signature does not match"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn serve_appends_anchors_to_the_anchor_file() {
    let (setup, dir) = sandbox();
    let anchors = dir.path().join("worm").join("anchors.jsonl");
    std::fs::create_dir_all(anchors.parent().unwrap()).unwrap();
    let setup = setup
        .with("FINHUB_AUDIT_ANCHOR_PATH", &anchors.display().to_string())
        .with("FINHUB_AUDIT_ANCHOR_INTERVAL", "1s");
    setup.create_customer("alice", "off", PASSWORD);
    let _server = setup.serve("serve").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let text = std::fs::read_to_string(&anchors).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{text}");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["seal"], "none", "no audit key in this setup");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&anchors).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "owner only");
    let verified = run_ok(
        &setup,
        &[
            "audit",
            "verify",
            "--anchors",
            &anchors.display().to_string(),
        ],
    );
    assert!(stdout(&verified).contains("anchors hold"));
}
