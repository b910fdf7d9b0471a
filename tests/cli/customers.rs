//! Creating, importing, locking and migrating customers; support's session commands.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::Setup;
use crate::{
    Backend, PASSWORD, database, exported_events, kind, login, on_both_stores, run_ok, sandbox,
    sandbox_on, sqlite, stderr, stdout,
};

#[test]
fn create_refuses_duplicates_and_bad_values() {
    let (setup, _dir) = sandbox();
    run_ok(&setup, &["migrate"]);
    setup.create_customer("alice", "off", PASSWORD);

    let out = setup.try_create_customer("ALICE@example.com", "a@example.com", "off", PASSWORD);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = setup.try_create_customer("x@example.com", "nope", "off", PASSWORD);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--email"), "{}", stderr(&out));
    // An operator's choice is held to the password policy, every broken rule named.
    let out = setup.try_create_customer("y@example.com", "y@example.com", "off", "password1234");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("COMMON"), "{}", stderr(&out));
}

/// Writes JSON lines to `name` in the sandbox and runs `customers import` on it.
fn import(setup: &Setup, name: &str, lines: &[Value]) -> std::process::Output {
    let file = setup.path(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).expect("write the import file");
    setup.run(
        &["customers", "import", file.to_str().expect("utf-8 path")],
        None,
    )
}

#[test]
fn import_reports_a_customer_id_taken_by_another_customer_and_repeats_idempotently() {
    let (setup, _dir) = sandbox();
    let customer = |id: &str, name: &str| {
        json!({
            "customerId": id,
            "username": name,
            "email": name,
            "firstName": "Id",
            "lastName": "L",
            "password": PASSWORD,
        })
    };
    let lines = [
        customer("cust-1", "first@example.com"),
        customer("cust-1", "second@example.com"),
        customer("cust-2", "third@example.com"),
    ];

    let out = import(&setup, "ids.jsonl", &lines);

    assert!(!out.status.success(), "a taken customerId fails the import");
    assert!(
        stdout(&out).contains("2 imported, 0 skipped (username exists), 1 rejected"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("line 2: customerId exists"),
        "{}",
        stderr(&out)
    );
    // One event per stored customer, written together, and the chain still verifies.
    let created: Vec<Value> = exported_events(&setup)
        .into_iter()
        .filter(|e| e["kind"] == "customer.created")
        .collect();
    let ids: Vec<&str> = created
        .iter()
        .filter_map(|e| e["customerId"].as_str())
        .collect();
    assert_eq!(ids, ["cust-1", "cust-2"]);
    run_ok(&setup, &["audit", "verify"]);

    let taken = [customer("cust-2", "fourth@example.com")];
    let out = import(&setup, "taken.jsonl", &taken);
    assert!(
        !out.status.success(),
        "an existing customerId fails the import"
    );
    assert!(
        stderr(&out).contains("line 1: customerId exists"),
        "{}",
        stderr(&out)
    );

    let again = [customer("cust-1", "first@example.com")];
    let out = import(&setup, "again.jsonl", &again);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 imported, 1 skipped (username exists), 0 rejected"),
        "{}",
        stdout(&out)
    );
}

on_both_stores!(an_import_chains_more_events_than_one_statement_holds);
/// An import stores its batch with one event per customer in one append, which is split into
/// statements of a few dozen events each (their values numbered across the batch). Each event
/// must be stored with its own link, in order, and the head left at the last of them: else
/// `audit verify` fails, or the next append links to an event that is not the newest.
async fn an_import_chains_more_events_than_one_statement_holds(backend: Backend) {
    let (setup, _dir, _db) = sandbox_on(backend).await;
    let hash = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                1MHhb5bTgdzmYBTTV1jVmfMgS0OoDMAnOVTeSa08Ezo";
    // More than two statements' worth (24 events each), the last one part-full.
    let ids: Vec<String> = (0..50).map(|i| format!("cust-{i:02}")).collect();
    let lines: Vec<Value> = ids
        .iter()
        .map(|id| {
            let name = format!("{id}@example.com");
            json!({"customerId": id, "username": name, "email": name,
                   "firstName": "Many", "lastName": "L", "passwordHash": hash})
        })
        .collect();

    let out = import(&setup, "many.jsonl", &lines);
    assert!(out.status.success(), "{}", stderr(&out));

    let created: Vec<String> = exported_events(&setup)
        .iter()
        .filter(|e| e["kind"] == "customer.created")
        .filter_map(|e| e["customerId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(created, ids, "one event per customer, in the file's order");
    run_ok(&setup, &["audit", "verify"]);
    // The next append links to the last of them.
    setup.create_customer("after", "off", PASSWORD);
    run_ok(&setup, &["audit", "verify"]);
    let created = exported_events(&setup)
        .iter()
        .filter(|e| e["kind"] == "customer.created")
        .count();
    assert_eq!(created, 51);
}

#[tokio::test]
async fn import_streams_json_lines_with_passwords_or_hashes() {
    let (setup, _dir) = sandbox();
    let hash = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                1MHhb5bTgdzmYBTTV1jVmfMgS0OoDMAnOVTeSa08Ezo";
    let lines = [
        json!({
            "username": "one@example.com",
            "email": "one@example.com",
            "firstName": "One",
            "lastName": "L",
            "kycStatus": "PENDING",
            "password": PASSWORD,
        }),
        json!({
            "username": "two@example.com",
            "email": "two@example.com",
            "phone": "+447700900222",
            "firstName": "Two",
            "lastName": "L",
            "twoFactor": {"enabled": true, "method": "SMS"},
            "passwordHash": hash,
        }),
        json!({
            "username": "bad",
            "email": "not-an-email",
            "firstName": "Bad",
            "lastName": "L",
            "password": "secret-never-echoed",
        }),
        json!({
            "username": "one@example.com",
            "email": "one@example.com",
            "firstName": "Dup",
            "lastName": "L",
            "password": PASSWORD,
        }),
    ];
    let file = setup.path("customers.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text + "{not json\n").expect("write the import file");

    let out = setup.run(
        &["customers", "import", file.to_str().expect("utf-8")],
        None,
    );

    assert!(
        !out.status.success(),
        "rejected lines make the exit non-zero"
    );
    assert!(
        stdout(&out).contains("2 imported, 1 skipped (username exists), 2 rejected"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("line 3: email"), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 5:"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("secret-never-echoed"));

    let server = setup.serve("serve").await;
    let (status, body) = server.login("one@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.login("two@example.com", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn operators_lock_and_unlock_customers() {
    let (setup, _dir) = sandbox();
    setup.create_customer("alice", "off", PASSWORD);
    run_ok(&setup, &["customers", "lock", "Alice@Example.com"]);
    let server = setup.serve("serve").await;

    let (status, body) = server.login("alice@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(body["code"], "ACCOUNT_LOCKED");
    assert!(
        body.get("lockedUntil").is_none(),
        "locked until an operator unlocks"
    );

    run_ok(&setup, &["customers", "unlock", "alice@example.com"]);
    let (status, body) = server.login("alice@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tail = stdout(&run_ok(&setup, &["audit", "tail", "-n", "4"]));
    let kinds: Vec<String> = tail.lines().map(kind).collect();
    // `serve` sealed the chain with the key it generated beside the database when it started.
    assert_eq!(
        kinds,
        [
            "account.locked",
            "audit.sealed_with_key",
            "account.unlocked",
            "login.succeeded"
        ]
    );
    // The refused login is audited with its window's count, at the latest when serve stops.
    server.terminate();
    let tail = stdout(&run_ok(&setup, &["audit", "tail", "-n", "1"]));
    let refused: serde_json::Value = serde_json::from_str(tail.trim()).unwrap();
    assert_eq!(refused["kind"], "login.failed");
    assert_eq!(refused["reason"], "account_locked");
    assert_eq!(refused["details"]["count"], 1);
}

#[tokio::test]
async fn migrate_normalises_usernames_stored_in_another_unicode_form() {
    let (setup, _dir) = sandbox();
    setup.create_customer("jose", "off", PASSWORD);
    // As an earlier version stored it: lower-cased, but decomposed (e + combining acute).
    sqlite(
        &database(&setup),
        "UPDATE customers SET username = 'jose' || char(769) || '@example.com'",
    )
    .await;

    run_ok(&setup, &["migrate"]);

    let server = setup.serve("serve").await;
    let (status, body) = server.login("Jos\u{e9}@Example.com", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the composed form finds the normalised account: {body}"
    );
}

#[tokio::test]
async fn support_removes_a_customers_factors_with_a_reason_and_tells_them() {
    let (setup, _dir) = sandbox();
    setup.create_customer("bob", "sms", PASSWORD);
    // The reason is required.
    let out = setup.run(&["customers", "remove-factors", "bob@example.com"], None);
    assert!(!out.status.success());
    let out = setup.run(
        &[
            "customers",
            "remove-factors",
            "bob@example.com",
            "--reason",
            "  ",
        ],
        None,
    );
    assert!(!out.status.success());
    let out = run_ok(
        &setup,
        &[
            "customers",
            "remove-factors",
            "Bob@Example.com",
            "--reason",
            "lost phone, identity checked by call #4711",
        ],
    );
    assert!(
        stdout(&out).contains("removed 1 factor"),
        "{}",
        stdout(&out)
    );

    // Two-factor is off for them now, and the removal is audited with the operator's reason.
    let server = setup.serve("serve").await;
    let (status, body) = server.login("bob@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["twoFactorRequired"], false);
    let tail = stdout(&run_ok(&setup, &["audit", "tail", "-n", "20"]));
    let removal: Value = tail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "factor.removed")
        .expect("a factor.removed event");
    assert_eq!(removal["details"]["by"], "operator");
    assert_eq!(
        removal["details"]["operatorReason"],
        "lost phone, identity checked by call #4711"
    );
    assert_eq!(removal["details"]["notices"], 2);
    server.terminate();
}

#[tokio::test]
async fn support_resets_a_password_with_a_reason_ending_sessions_and_clearing_a_failure_lock() {
    let (setup, _dir) = sandbox();
    setup.create_customer("carol", "off", PASSWORD);
    const NEW: &str = "Quiet-lantern-harbour-42";
    // The reason is required; the password comes from standard input and meets the policy.
    let out = setup.run(
        &[
            "customers",
            "reset-password",
            "carol@example.com",
            "--password-stdin",
        ],
        Some(NEW),
    );
    assert!(!out.status.success(), "no reason given");
    let reset = |password: &str| {
        setup.run(
            &[
                "customers",
                "reset-password",
                "Carol@Example.com",
                "--password-stdin",
                "--reason",
                "locked out, identity checked by call #4712",
            ],
            Some(password),
        )
    };
    let refused = reset("Tiny-pass-1");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("TOO_SHORT"),
        "{}",
        stderr(&refused)
    );
    let reused = reset(PASSWORD);
    assert!(!reused.status.success());
    assert!(stderr(&reused).contains("REUSED"), "{}", stderr(&reused));

    // A signed-in session, then failures that lock the account.
    let server = setup.serve("serve").await;
    let token = login(&server, "carol@example.com").await;
    for _ in 0..5 {
        let (status, _) = server.login("carol@example.com", "wrong-password-1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = server.login("carol@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::LOCKED);

    let out = reset(NEW);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(NEW) && !stdout(&out).contains(NEW));
    let (status, _) = server.get("/api/v1/customers/me", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "every session ended");
    let (status, _) = server.login("carol@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    let (status, body) = server.login("carol@example.com", NEW).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the failure lock was cleared: {body}"
    );

    let tail = stdout(&run_ok(&setup, &["audit", "tail", "-n", "30"]));
    let event: Value = tail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "password.reset")
        .expect("a password.reset event");
    assert_eq!(event["details"]["by"], "operator");
    assert_eq!(
        event["details"]["operatorReason"],
        "locked out, identity checked by call #4712"
    );
    assert!(
        !tail.contains(NEW),
        "the password never reaches the audit trail"
    );
    // The running instance's delivery worker tells the customer.
    let mut told = false;
    for _ in 0..200 {
        told = setup
            .messages()
            .iter()
            .any(|m| m["notice"] == "password.reset");
        if told {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(told, "the customer is told");
    server.terminate();
}

on_both_stores!(support_lists_and_ends_sessions_without_locking_anyone);
async fn support_lists_and_ends_sessions_without_locking_anyone(backend: Backend) {
    let (setup, _dir, _db) = sandbox_on(backend).await;
    setup.create_customer("carol", "off", PASSWORD);
    setup.create_customer("dave", "off", PASSWORD);
    let server = setup.serve("serve").await;
    let (phone, laptop) = (
        login(&server, "carol@example.com").await,
        login(&server, "carol@example.com").await,
    );
    let daves = login(&server, "dave@example.com").await;

    // What support sees: carol's two sessions, as a table or as JSON Lines.
    let table = stdout(&run_ok(
        &setup,
        &["customers", "sessions", "Carol@Example.com"],
    ));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("SESSION") && lines[0].contains("USER AGENT"));
    assert!(
        lines[1].contains("ACTIVE") && lines[1].contains("127.0.0.1"),
        "{table}"
    );
    let json = stdout(&run_ok(
        &setup,
        &[
            "customers",
            "sessions",
            "carol@example.com",
            "--json",
            "--reason",
            "caller asks where she is signed in, ticket #4712",
        ],
    ));
    let sessions: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .all(|s| s["state"] == "ACTIVE" && s["ip"] == "127.0.0.1")
    );

    // Ending them needs a reason; it locks nobody.
    let out = setup.run(&["customers", "end-sessions", "carol@example.com"], None);
    assert!(!out.status.success());
    let out = run_ok(
        &setup,
        &[
            "customers",
            "end-sessions",
            "carol@example.com",
            "--reason",
            "caller reports a stolen phone, identity checked by call #4713",
        ],
    );
    assert!(
        stdout(&out).contains("ended 2 session(s)"),
        "{}",
        stdout(&out)
    );
    for token in [&phone, &laptop] {
        let (status, _) = server.get("/api/v1/customers/me", Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = server.get("/api/v1/customers/me", Some(&daves)).await;
    assert_eq!(status, StatusCode::OK, "only carol's ended");
    let again = login(&server, "carol@example.com").await;
    let table = stdout(&run_ok(
        &setup,
        &["customers", "sessions", "carol@example.com"],
    ));
    assert_eq!(
        table.lines().count(),
        2,
        "only the new one is live: {table}"
    );

    // After a suspected leak of tokens: everyone's, recorded once with the count.
    let out = setup.run(&["sessions", "end-all", "--reason", ""], None);
    assert!(!out.status.success());
    let out = run_ok(
        &setup,
        &[
            "sessions",
            "end-all",
            "--reason",
            "tokens seen in a partner's logs",
        ],
    );
    assert!(
        stdout(&out).contains("ended 2 session(s)"),
        "{}",
        stdout(&out)
    );
    for token in [&again, &daves] {
        let (status, _) = server.get("/api/v1/customers/me", Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    login(&server, "dave@example.com").await;

    let ended: Vec<Value> = exported_events(&setup)
        .into_iter()
        .filter(|e| e["kind"] == "session.revoked" && e["details"]["by"] == "operator")
        .collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[0]["reason"], "operator_ended_sessions");
    assert_eq!(ended[0]["details"]["sessions"], 2);
    assert_eq!(
        ended[0]["details"]["operatorReason"],
        "caller reports a stolen phone, identity checked by call #4713"
    );
    assert_eq!(ended[1]["reason"], "operator_ended_all_sessions");
    assert_eq!(ended[1]["details"]["sessions"], 2);
    assert_eq!(ended[1]["customerId"], Value::Null);

    // Looking is on the record too, with the reason when one is given.
    let looks: Vec<Value> = exported_events(&setup)
        .into_iter()
        .filter(|e| e["kind"] == "support.viewed")
        .collect();
    assert_eq!(looks.len(), 3, "{looks:?}");
    assert!(looks.iter().all(|e| e["username"] == "carol@example.com"));
    assert_eq!(looks[0]["details"]["sessions"], 2);
    assert!(looks[0]["details"].get("operatorReason").is_none());
    assert_eq!(
        looks[1]["details"]["operatorReason"],
        "caller asks where she is signed in, ticket #4712"
    );
    assert_eq!(looks[2]["details"]["sessions"], 1);
    let out = setup.run(
        &[
            "customers",
            "sessions",
            "carol@example.com",
            "--reason",
            " ",
        ],
        None,
    );
    assert!(!out.status.success(), "an empty reason is refused");
    server.terminate();
}
