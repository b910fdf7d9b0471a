//! `serve` as a process: what it writes down, what survives a kill -9, and reloading on SIGHUP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    Backend, PASSWORD, database, full_flow, login, on_both_stores, process, run_ok, sandbox,
    sandbox_on, stdout,
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

/// Codes silently lost on every restart: without `FINHUB_AUDIT_KEY`, a queued code was sealed
/// under a key of the process alone. On SQLite a key is generated once into an owner-only file
/// beside the database and read again by the next start, so the restarted process delivers
/// what the stopped one queued; the chain begun without a key switches to it at one marked
/// event, and the operator commands verify it with the same file.
#[tokio::test]
async fn without_an_audit_key_a_code_queued_before_a_restart_is_delivered_after_it() {
    let (setup, _dir) = sandbox();
    setup.create_customer("bob", "sms", PASSWORD);
    let key_file = setup.path("auth.db.audit-key");
    let quiet = setup.clone().with("FINHUB_DELIVERY_WORKER", "false");
    let first = quiet.serve("first").await;
    let (status, login) = first.login("bob@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let pending = login["bffToken"].as_str().unwrap().to_owned();
    let (status, challenge) = first
        .post("/api/v1/auth/2fa/initiate", &json!({}), Some(&pending))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{challenge}");
    let first_log = first.log.clone();
    first.terminate();
    assert!(setup.messages().is_empty(), "nothing was sent yet");
    let key = std::fs::read_to_string(&key_file).expect("a key file beside the database");
    assert_eq!(key.trim().len(), 64);
    assert_owner_only(&key_file);
    let log = std::fs::read_to_string(first_log).unwrap();
    assert!(log.contains("auth.db.audit-key"), "the log names the file");
    assert!(!log.contains(key.trim()), "never its content");

    let second = setup.serve("second").await;
    let challenge_id = challenge["challengeId"].as_str().unwrap();
    let code = setup.code_for(challenge_id).await;
    let verify = json!({"challengeId": challenge_id, "code": code});
    let (status, active) = second
        .post("/api/v1/auth/2fa/verify", &verify, Some(&pending))
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    second.terminate();
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "reused, not replaced"
    );

    let events = crate::exported_events(&setup);
    let switches = events
        .iter()
        .filter(|e| e["kind"] == "audit.sealed_with_key")
        .count();
    assert_eq!(switches, 1, "one marked switch from the plain start");
    let out = run_ok(&setup, &["audit", "verify"]);
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
}

fn assert_owner_only(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
}

/// Other local accounts reading the database (every customer's record, session hashes, the
/// audit trail): the directory `serve` creates is 0700, the database and its WAL and SHM files
/// 0600 whatever the umask, and a database file others may read is refused at start-up with the
/// fix named.
#[tokio::test]
async fn the_database_files_are_owner_only_and_shared_ones_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("auth.db");
    let setup = process::Setup::new(format!("sqlite://{}", db.display()), dir.path());
    setup.create_customer("alice", "off", PASSWORD);
    let server = setup.serve("serve").await;
    login(&server, "alice@example.com").await;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the directory");
    for suffix in ["", "-wal", "-shm", ".audit-key"] {
        assert_owner_only(std::path::Path::new(&format!("{}{suffix}", db.display())));
    }
    server.terminate();

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    for command in [&["migrate"][..], &["serve"], &["audit", "verify"]] {
        let out = setup.run(command, None);
        assert!(!out.status.success(), "{command:?}");
        let err = crate::stderr(&out);
        assert!(
            err.contains(&db.display().to_string()) && err.contains("chmod 600"),
            "{command:?}: {err}"
        );
    }
}

/// Served without an audit key on PostgreSQL, several instances would each seal queued codes
/// under a key of their own (lost on every restart, undeliverable by the others) and keep an
/// unkeyed chain: refused unless `FINHUB_ALLOW_NO_AUDIT_KEY` accepts the risk.
#[tokio::test]
async fn serve_on_postgresql_without_an_audit_key_is_refused_unless_the_risk_is_accepted() {
    let (setup, _dir, _db) = sandbox_on(Backend::Postgres).await;
    let strict = setup.clone().with("FINHUB_ALLOW_NO_AUDIT_KEY", "false");
    let mut child = strict
        .command(process::free_port())
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve started on PostgreSQL without an audit key");
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("FINHUB_AUDIT_KEY") && err.contains("FINHUB_ALLOW_NO_AUDIT_KEY"),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("error: serve refuses")),
        "{err}"
    );

    // A shared key, or the risk accepted in so many words, and it serves.
    let keyed = strict.with("FINHUB_AUDIT_KEY", "an-audit-key-kept-outside-the-database");
    keyed.serve("keyed").await.terminate();
    setup.serve("accepted").await.terminate();
}

/// An existing deployment's chain, begun without a key, must still verify once `serve` has
/// generated one: the switch is made at start-up through the same marked event as a configured
/// key's (`audit.sealed_with_key`), not left until a customer happens to cause an event, so
/// `audit verify` (reading the same key file) passes at once.
#[tokio::test]
async fn a_chain_begun_without_a_key_is_sealed_with_the_generated_key_at_start_up() {
    let (setup, _dir) = sandbox();
    setup.create_customer("alice", "off", PASSWORD);
    setup.serve("serve").await.terminate();
    let events = crate::exported_events(&setup);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["customer.created", "audit.sealed_with_key"]);
    assert_eq!(events[1]["details"]["plainThroughSeq"], 1);
    let out = run_ok(&setup, &["audit", "verify"]);
    assert!(
        stdout(&out).contains("intact: 2 events"),
        "{}",
        stdout(&out)
    );
    // A second start finds the chain sealed and adds nothing.
    setup.serve("again").await.terminate();
    assert_eq!(crate::exported_events(&setup).len(), 2);
}

/// `docs/logging.md`'s inventory, held to: a full flow under `serve` writes its log to standard
/// error, the trail and sessions to the database, messages to the outbox file and anchors to
/// theirs, and nothing else: no stray file beside them, nothing on standard output.
#[tokio::test]
async fn a_full_flow_writes_only_where_the_logging_inventory_says() {
    let (setup, dir) = sandbox();
    let setup = setup
        .with("FINHUB_AUDIT_ANCHOR_PATH", "anchors.jsonl")
        .with("FINHUB_AUDIT_ANCHOR_INTERVAL", "1s");
    setup.create_customer("bob", "sms", PASSWORD);
    let server = setup.serve_stdout_apart("serve").await;
    full_flow(&setup, &server).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.terminate();

    let written = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert_eq!(
        written("serve.stdout"),
        "",
        "serve writes nothing on standard output"
    );
    assert!(written("serve.log").contains("request handled"));
    assert!(
        written("anchors.jsonl").contains("\"hash\""),
        "anchors were written"
    );
    assert!(written("outbox.jsonl").contains("challengeId"));
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // The database's own files come and go with its connections.
    let expected = [
        "anchors.jsonl",
        "auth.db",
        "auth.db-shm",
        "auth.db-wal",
        "auth.db.audit-key",
        "outbox.jsonl",
        "serve.log",
        "serve.stdout",
    ];
    for file in &files {
        assert!(
            expected.contains(&file.as_str()),
            "{file} is in no inventory: {files:?}"
        );
    }
}

/// The `finhub_…` metric names a dashboard or rules file reads.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("finhub_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_read_is_exported() {
    // A panel or an alert on a metric that does not exist shows nothing and never fires. Served
    // as in production: anchors written, limits shared through the machine's Redis.
    let (setup, _dir) = sandbox();
    let setup = setup
        .with("FINHUB_AUDIT_ANCHOR_PATH", "anchors.jsonl")
        .with("FINHUB_AUDIT_ANCHOR_INTERVAL", "1s")
        .with("FINHUB_REDIS_URL", "redis://127.0.0.1:6379");
    setup.create_customer("bob", "sms", PASSWORD);
    let server = setup.serve("serve").await;
    full_flow(&setup, &server).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let exported = server.metrics_text().await;
    server.terminate();
    let exported = metric_names(&exported);

    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard = std::fs::read_to_string(format!("{root}/deploy/grafana/finhub-auth.json"))
        .expect("the dashboard");
    let panels: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let queries: Vec<String> = panels["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(queries.len() >= 14, "{queries:?}");
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
        .expect("the alert rules");
    for (source, text) in [("dashboard", queries.join("\n")), ("alerts", alerts)] {
        let read = metric_names(&text);
        assert!(read.len() > 5, "{source}: {read:?}");
        for name in read {
            assert!(
                exported.contains(&name),
                "{source} reads {name}, which the service does not export: {exported:?}"
            );
        }
    }
}
