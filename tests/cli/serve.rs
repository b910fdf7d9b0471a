//! `serve` as a process: what it writes down, what survives a kill -9, and reloading on SIGHUP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    Backend, PASSWORD, database, full_flow, login, on_both_stores, run_ok, sandbox, sandbox_on,
    stdout,
};

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

/// A one-network location database placing 203.0.113.0/24 in `country`.
fn write_location_database(path: &std::path::Path, country: &str) {
    let mut writer = mmdb_writer::Writer::new("FinHub-Test-Country");
    let record = json!({"country": {"iso_code": country}});
    let net: ipnet::IpNet = "203.0.113.0/24".parse().unwrap();
    writer.insert(net, &record).unwrap();
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

#[tokio::test]
async fn the_location_database_is_reloaded_on_sighup() {
    let (setup, dir) = sandbox();
    let db = dir.path().join("geo.mmdb");
    write_location_database(&db, "GB");
    let setup = setup
        .with("FINHUB_GEOIP_DB", &db.display().to_string())
        .with("FINHUB_TRUSTED_PROXIES", "127.0.0.0/8");
    setup.create_customer("alice", "off", PASSWORD);
    let server = setup.serve("serve").await;
    let country = |token: String| {
        let server = &server;
        async move {
            let (_, list) = server.get("/api/v1/sessions", Some(&token)).await;
            list["sessions"][0]["country"].clone()
        }
    };
    let login_from_203 = || async {
        let response = server
            .client
            .post(server.url("/api/v1/auth/token"))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["bffToken"].as_str().unwrap().to_owned()
    };
    assert_eq!(country(login_from_203().await).await, "GB");

    write_location_database(&db, "IE");
    server.signal("HUP");
    for _ in 0..50 {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.contains("location database reloaded") && log.contains("SIGHUP") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(country(login_from_203().await).await, "IE");
}

on_both_stores!(a_code_queued_before_a_kill_9_is_delivered_once_after_the_restart);
async fn a_code_queued_before_a_kill_9_is_delivered_once_after_the_restart(backend: Backend) {
    let (setup, dir, _db) = sandbox_on(backend).await;
    // The key that seals queued codes comes from the audit key, so the restarted process can
    // open what the killed one queued.
    let setup = setup.with("FINHUB_AUDIT_KEY", "an-audit-key-kept-outside-the-database");
    setup.create_customer("bob", "sms", PASSWORD);
    // The first instance cannot deliver (its outbox file is a directory): the message stays
    // queued, its next attempt seconds away, when the process is killed.
    let broken = setup
        .clone()
        .with("FINHUB_OUTBOX_PATH", &dir.path().display().to_string());
    let first = broken.serve("first").await;
    let (status, login) = first.login("bob@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let pending = login["bffToken"].as_str().unwrap().to_owned();
    let (status, challenge) = first
        .post("/api/v1/auth/2fa/initiate", &json!({}), Some(&pending))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{challenge}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    first.kill_9();
    assert!(
        setup.messages().is_empty(),
        "nothing was sent before the kill"
    );

    let second = setup.serve("second").await;
    let challenge_id = challenge["challengeId"].as_str().unwrap();
    let code = setup.code_for(challenge_id).await;
    let verify = json!({"challengeId": challenge_id, "code": code});
    let (status, active) = second
        .post("/api/v1/auth/2fa/verify", &verify, Some(&pending))
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let copies = setup
        .messages()
        .iter()
        .filter(|m| m["challengeId"] == challenge_id)
        .count();
    assert_eq!(copies, 1, "delivered once");
}
