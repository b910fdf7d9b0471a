//! `serve` as a process: what it writes down, and what survives a kill -9.

use reqwest::StatusCode;
use serde_json::json;

use crate::{PASSWORD, database, full_flow, login, run_ok, sandbox, stdout};

#[tokio::test]
async fn no_secret_of_a_full_flow_reaches_the_log_the_audit_trail_or_the_database() {
    let (setup, _dir) = sandbox();
    setup.create_customer("bob", "sms", PASSWORD);
    let server = setup.serve("serve").await;
    let secrets = full_flow(&setup, &server).await;
    let log_path = server.log.clone();
    drop(server);

    let log = std::fs::read_to_string(log_path).expect("the log");
    assert!(log.contains("request handled"), "the log was written");
    let audit = stdout(&run_ok(&setup, &["audit", "tail", "-n", "1000"]));
    assert!(audit.contains("2fa.verified"));
    let db = read_all_bytes(&database(&setup));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
        assert!(
            !audit.contains(secret.as_str()),
            "a secret reached the audit trail"
        );
        assert!(
            !db.contains(secret.as_str()),
            "a secret reached the database"
        );
    }
}

/// The database file and its write-ahead log, as text.
fn read_all_bytes(db: &std::path::Path) -> String {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        all.extend(std::fs::read(path).unwrap_or_default());
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_kill_9_loses_no_acknowledged_session_or_logout() {
    let (setup, _dir) = sandbox();
    setup.create_customer("alice", "off", PASSWORD);
    let server = setup.serve("before").await;
    let kept = login(&server, "alice@example.com").await;
    let ended = login(&server, "alice@example.com").await;
    let (status, _) = server
        .post("/api/v1/auth/logout", &json!({}), Some(&ended))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    server.kill_9();
    let server = setup.serve("after").await;

    let me = "/api/v1/customers/me";
    assert_eq!(server.get(me, Some(&kept)).await.0, StatusCode::OK);
    let (status, body) = server.get(me, Some(&ended)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHENTICATED");
    run_ok(&setup, &["audit", "verify"]);
}
