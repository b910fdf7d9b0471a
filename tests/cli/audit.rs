//! The audit commands: verify, export, tail, search, and a trail that resists edits.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::process::Setup;
use crate::{
    Backend, Database, PASSWORD, database, exported_events, full_flow, login, on_both_stores,
    run_ok, sandbox, sandbox_on, sqlite, sqlite_result, stderr, stdout,
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
    // `serve` generated an audit key beside the database: the chain begun without one switches
    // to it at a marked event.
    assert_eq!(
        kinds,
        [
            "customer.created",
            "audit.sealed_with_key",
            "login.succeeded",
            "2fa.initiated",
            "2fa.delivered",
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
        assert!(hash.starts_with("hmac2:"), "{hash}");
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

const AUDIT_KEY: &str = "a-long-audit-key-kept-outside-the-database";

/// `audit verify --anchors PATH` and any `extra` arguments.
fn verify_against(setup: &Setup, anchors: &Path, extra: &[&str]) -> Output {
    let path = anchors.display().to_string();
    let mut args = vec!["audit", "verify", "--anchors", &path];
    args.extend_from_slice(extra);
    setup.run(&args, None)
}

/// What a database writer can do: drop the trigger, cut the events after `keep`, and copy the
/// remaining last link into the head row.
async fn cut_after(db: &Database, keep: i64) {
    db.execute(&format!(
        "{} DELETE FROM audit_events WHERE seq > {keep}; \
         UPDATE audit_head SET seq = {keep}, hash = (SELECT hash FROM audit_events WHERE seq = {keep});",
        db.allow_deleting_events()
    ))
    .await;
}

on_both_stores!(a_trail_cut_short_and_its_head_rewritten_passes_alone_but_not_against_its_anchors);
async fn a_trail_cut_short_and_its_head_rewritten_passes_alone_but_not_against_its_anchors(
    backend: Backend,
) {
    let (setup, dir, db) = sandbox_on(backend).await;
    let setup = setup.with("FINHUB_AUDIT_KEY", AUDIT_KEY);
    for name in ["alice", "bob", "carol", "dave"] {
        setup.create_customer(name, "off", PASSWORD);
    }
    let anchors = dir.path().join("anchors.jsonl");
    let first = stdout(&run_ok(&setup, &["audit", "anchor"]));
    let anchor: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(anchor["seq"], 4);
    assert_eq!(anchor["seal"], "hmac-sha256");
    assert!(anchor["hash"].as_str().unwrap().starts_with("hmac2:"));
    std::fs::write(&anchors, &first).unwrap();
    let intact = verify_against(&setup, &anchors, &[]);
    assert!(
        stdout(&intact).contains("anchors hold: 1 of 1"),
        "{}",
        stderr(&intact)
    );

    cut_after(&db, 2).await;
    let alone = run_ok(&setup, &["audit", "verify"]);
    assert!(
        stdout(&alone).contains("intact"),
        "the chain alone cannot tell"
    );

    let out = verify_against(&setup, &anchors, &[]);
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
    std::fs::write(&anchors, &forged).unwrap();
    let out = verify_against(&setup, &anchors, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1 (seq 2): its signature does not match"),
        "{}",
        stderr(&out)
    );

    // Nor does removing the signature help: with a key set, anchors must be signed.
    let mut stripped: Value = serde_json::from_str(forged.trim()).unwrap();
    stripped["sig"] = Value::Null;
    stripped["seal"] = "none".into();
    stripped["hash"] = exported_events(&setup)[1]["hash"].clone();
    std::fs::write(&anchors, stripped.to_string()).unwrap();
    let out = verify_against(&setup, &anchors, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1 (seq 2) is not signed"),
        "{}",
        stderr(&out)
    );
}

/// Writes an Ed25519 key pair as operators make one; returns the private and public files.
fn ed25519_key_pair(dir: &Path) -> (String, String) {
    let private = dir.join("anchor-key.pem");
    let public = dir.join("anchor-key.pub.pem");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            private.to_str().unwrap(),
        ],
        vec![
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
    ] {
        let status = std::process::Command::new("openssl")
            .args(&args)
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    }
    (private.display().to_string(), public.display().to_string())
}

on_both_stores!(ed25519_anchors_are_checked_with_the_public_key_alone);
async fn ed25519_anchors_are_checked_with_the_public_key_alone(backend: Backend) {
    let (setup, dir, db) = sandbox_on(backend).await;
    let (private, public) = ed25519_key_pair(dir.path());
    let signer = setup
        .clone()
        .with("FINHUB_AUDIT_KEY", AUDIT_KEY)
        .with("FINHUB_AUDIT_ANCHOR_KEY_FILE", &private);
    for name in ["alice", "bob", "carol"] {
        signer.create_customer(name, "off", PASSWORD);
    }
    let line = stdout(&run_ok(&signer, &["audit", "anchor"]));
    let anchor: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(anchor["seal"], "ed25519");
    assert_eq!(anchor["seq"], 3);
    let anchors = dir.path().join("anchors.jsonl");
    std::fs::write(&anchors, &line).unwrap();

    // An auditor holds the audit key for the chain, and only the public half for anchors.
    let auditor = setup.clone().with("FINHUB_AUDIT_KEY", AUDIT_KEY);
    let out = verify_against(&auditor, &anchors, &["--anchor-public-key", &public]);
    assert!(
        stdout(&out).contains("anchors hold: 1 of 1"),
        "{}",
        stderr(&out)
    );
    let out = verify_against(&auditor, &anchors, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1 is sealed with ed25519, and no key to check it is set"),
        "{}",
        stderr(&out)
    );
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other_public) = ed25519_key_pair(other_dir.path());
    let out = verify_against(&auditor, &anchors, &["--anchor-public-key", &other_public]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1 (seq 3): its signature does not match"),
        "{}",
        stderr(&out)
    );

    cut_after(&db, 1).await;
    let out = verify_against(&auditor, &anchors, &["--anchor-public-key", &public]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("anchor 1: the chain ends at seq 1, before the anchored seq 3"),
        "{}",
        stderr(&out)
    );
}

on_both_stores!(a_chain_begun_without_a_key_is_switched_to_the_key_at_a_marked_event);
async fn a_chain_begun_without_a_key_is_switched_to_the_key_at_a_marked_event(backend: Backend) {
    let (setup, _dir, _db) = sandbox_on(backend).await;
    setup.create_customer("alice", "off", PASSWORD);
    setup.create_customer("bob", "off", PASSWORD);
    let keyed = setup.clone().with("FINHUB_AUDIT_KEY", AUDIT_KEY);
    let out = keyed.run(&["audit", "verify"], None);
    assert!(
        !out.status.success(),
        "a plain chain is not sealed with the key"
    );
    assert!(
        stderr(&out).contains("event seq 1") && stderr(&out).contains("audit.sealed_with_key"),
        "{}",
        stderr(&out)
    );

    // The first event written with the key marks the switch.
    keyed.create_customer("carol", "off", PASSWORD);
    let events = exported_events(&keyed);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "customer.created",
            "customer.created",
            "audit.sealed_with_key",
            "customer.created"
        ]
    );
    assert_eq!(events[2]["details"]["plainThroughSeq"], 2);
    let hashes: Vec<bool> = events
        .iter()
        .map(|e| e["hash"].as_str().unwrap().starts_with("hmac2:"))
        .collect();
    assert_eq!(hashes, [false, false, true, true]);
    let out = run_ok(&keyed, &["audit", "verify"]);
    assert!(
        stdout(&out).contains("intact: 4 events"),
        "{}",
        stdout(&out)
    );
    keyed.create_customer("dave", "off", PASSWORD);
    assert_eq!(exported_events(&keyed).len(), 5, "one marker only");
    run_ok(&keyed, &["audit", "verify"]);

    // A plain event appended after the switch (a writer without the key) breaks it.
    setup.create_customer("eve", "off", PASSWORD);
    let out = keyed.run(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("event seq 6"), "{}", stderr(&out));
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
    // Sealed at start-up with the key serve generated beside the database: the customer's
    // creation, then the marked switch.
    assert_eq!(lines[0]["seq"], 2);
    assert_eq!(lines[0]["seal"], "hmac-sha256");
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

on_both_stores!(audit_search_answers_who_signed_in_as_a_customer_from_where);
async fn audit_search_answers_who_signed_in_as_a_customer_from_where(backend: Backend) {
    let (setup, _dir, _db) = sandbox_on(backend).await;
    setup.create_customer("carol", "off", PASSWORD);
    setup.create_customer("dave", "off", PASSWORD);
    let server = setup.serve("serve").await;
    login(&server, "carol@example.com").await;
    let (status, _) = server.login("carol@example.com", "wrong-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    login(&server, "dave@example.com").await;
    server.terminate();

    let search = |args: &[&str]| {
        let mut all = vec!["audit", "search"];
        all.extend_from_slice(args);
        stdout(&run_ok(&setup, &all))
    };
    // Carol's events, as a table: her creation, the success and the failure.
    let table = search(&["--username", "Carol@Example.com"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("FLAGS"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines.iter().all(|l| !l.contains("dave")), "{table}");
    assert!(lines[2].contains("login.succeeded") && lines[2].contains("127.0.0.1"));
    assert!(lines[3].contains("login.failed") && lines[3].contains("failure"));

    // As JSON Lines, narrowed by kind, address range and time.
    let json = |args: &[&str]| -> Vec<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        search(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let logins = json(&["--kind", "login.succeeded", "--ip", "127.0.0.0/8"]);
    let names: Vec<&str> = logins
        .iter()
        .map(|e| e["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol@example.com", "dave@example.com"]);
    assert!(json(&["--kind", "login.succeeded", "--ip", "10.0.0.0/8"]).is_empty());
    assert_eq!(
        json(&["--ip", "127.0.0.1", "--username", "dave@example.com"]).len(),
        1
    );
    assert_eq!(json(&["--since", "1h", "--kind", "login.failed"]).len(), 1);
    assert!(json(&["--until", "2000-01-01T00:00:00Z"]).is_empty());

    // Bad filters are refused in one line, before anything is read.
    for bad in [
        &["--kind", "login.nope"][..],
        &["--ip", "300.1.2.3"],
        &["--since", "last tuesday"],
        &["--username", ""],
    ] {
        let mut all = vec!["audit", "search"];
        all.extend_from_slice(bad);
        let out = setup.run(&all, None);
        assert!(!out.status.success(), "{bad:?}");
        let said = stderr(&out);
        let last = said.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error:") && last.contains(bad[0]),
            "{said}"
        );
    }
}

#[test]
fn audit_verify_needs_every_key_the_chain_was_sealed_under_and_names_the_one_it_lacks() {
    let (setup, dir) = sandbox();
    let before = "the audit key before the rotation";
    let keyed = setup.clone().with("FINHUB_AUDIT_KEY", before);
    keyed.create_customer("alice", "off", PASSWORD);
    let rotated = setup
        .clone()
        .with("FINHUB_AUDIT_KEY", "the audit key after the rotation.");
    let out = rotated.run(&["audit", "verify"], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("none of the configured audit keys")
            && stderr(&out).contains("FINHUB_AUDIT_PREVIOUS_KEYS_FILE"),
        "{}",
        stderr(&out)
    );
    let previous = dir.path().join("previous.keys");
    std::fs::write(&previous, format!("{before}\n")).unwrap();
    let with_previous = rotated.with(
        "FINHUB_AUDIT_PREVIOUS_KEYS_FILE",
        previous.to_str().unwrap(),
    );
    let out = run_ok(&with_previous, &["audit", "verify"]);
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
}
