//! The `finhub-auth` binary as operators and scripts use it: real processes, a real database
//! file, real signals.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_finhub-auth");
const PASSWORD: &str = "Corr3ct-horse-battery";

struct Env {
    dir: tempfile::TempDir,
    port: u16,
}

impl Env {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            dir: tempfile::tempdir().unwrap(),
            port,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FINHUB_")) {
            cmd.env_remove(k);
        }
        cmd.current_dir(self.dir.path())
            .env(
                "FINHUB_DATABASE_URL",
                format!("sqlite://{}", self.path("auth.db").display()),
            )
            .env("FINHUB_OUTBOX_PATH", self.path("outbox.jsonl"))
            .env("FINHUB_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("FINHUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug,sqlx=warn")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `customers create` for `username`, waiting for the password on standard input.
    fn create_command(&self, username: &str, email: &str, two_factor: &str) -> Command {
        let mut cmd = self.command();
        cmd.args([
            "customers",
            "create",
            "--username",
            username,
            "--email",
            email,
            "--phone",
            "+447700900123",
            "--first-name",
            "Cli",
            "--last-name",
            "Test",
            "--kyc-status",
            "VERIFIED",
            "--two-factor",
            two_factor,
            "--password-stdin",
        ]);
        cmd
    }

    fn create(&self, name: &str, two_factor: &str) -> String {
        let username = format!("{name}@example.com");
        let out = feed(
            self.create_command(&username, &username, two_factor),
            &format!("{PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn serve(&self) -> ServerGuard {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("serve.log"))
            .unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ServerGuard(child);
        for _ in 0..100 {
            if ureq_status(self.port, "GET", "/healthz", None, None).0 == 200 {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "serve did not come up: {}",
            std::fs::read_to_string(self.path("serve.log")).unwrap_or_default()
        );
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        ureq_status(self.port, method, path, body, token)
    }
}

/// A minimal blocking HTTP/1.1 client, so these process tests need no async runtime.
fn ureq_status(
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    use std::io::Read as _;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Value::Null);
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let payload = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

/// Runs `cmd` with `input` on its standard input.
fn feed(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
        vec!["migrate", "--help"],
        vec!["customers", "create", "--help"],
        vec!["customers", "import", "--help"],
        vec!["customers", "lock", "--help"],
        vec!["customers", "unlock", "--help"],
        vec!["audit", "tail", "--help"],
        vec!["audit", "export", "--help"],
        vec!["audit", "verify", "--help"],
    ] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
}

#[test]
fn bad_arguments_and_settings_fail_with_one_line() {
    let env = Env::new();
    for args in [
        &["customers", "lock"][..],
        &["frobnicate"],
        &["audit", "export", "--since", "yesterday"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }

    let out = env
        .command()
        .args(["migrate"])
        .env("FINHUB_SESSION_TTL", "forever")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FINHUB_SESSION_TTL"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));

    let out = env
        .command()
        .args(["migrate"])
        .env("FINHUB_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("FINHUB_DATABASE_URL"));

    let out = env.run(&["customers", "lock", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no customer"), "{}", stderr(&out));
}

#[test]
fn create_refuses_duplicates_and_bad_values() {
    let env = Env::new();
    assert!(env.run(&["migrate"]).status.success());
    env.create("alice", "off");
    let out = feed(
        env.create_command("ALICE@example.com", "a@example.com", "off"),
        PASSWORD,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    let out = env.run(&[
        "customers",
        "create",
        "--username",
        "x@example.com",
        "--email",
        "nope",
        "--phone",
        "+447700900123",
        "--first-name",
        "A",
        "--last-name",
        "B",
        "--password-stdin",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--email"), "{}", stderr(&out));
}

#[test]
fn import_reports_a_customer_id_taken_by_another_customer_and_repeats_idempotently() {
    let env = Env::new();
    let customer = |id: &str, name: &str| json!({"customerId": id, "username": name, "email": name, "firstName": "Id", "lastName": "L", "password": PASSWORD});
    let file = env.path("ids.jsonl");
    let lines = [
        customer("cust-1", "first@example.com"),
        customer("cust-1", "second@example.com"),
        customer("cust-2", "third@example.com"),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();

    let out = env.run(&["customers", "import", file.to_str().unwrap()]);

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

    let taken = env.path("taken.jsonl");
    std::fs::write(
        &taken,
        format!("{}\n", customer("cust-2", "fourth@example.com")),
    )
    .unwrap();
    let out = env.run(&["customers", "import", taken.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "an existing customerId fails the import"
    );
    assert!(
        stderr(&out).contains("line 1: customerId exists"),
        "{}",
        stderr(&out)
    );

    let again = env.path("again.jsonl");
    std::fs::write(
        &again,
        format!("{}\n", customer("cust-1", "first@example.com")),
    )
    .unwrap();
    let out = env.run(&["customers", "import", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 imported, 1 skipped (username exists), 0 rejected"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn import_streams_json_lines_with_passwords_or_hashes() {
    let env = Env::new();
    let hash = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$1MHhb5bTgdzmYBTTV1jVmfMgS0OoDMAnOVTeSa08Ezo";
    let lines = [
        json!({"username": "one@example.com", "email": "one@example.com", "firstName": "One", "lastName": "L", "kycStatus": "PENDING", "password": PASSWORD}),
        json!({"username": "two@example.com", "email": "two@example.com", "phone": "+447700900222", "firstName": "Two", "lastName": "L", "twoFactor": {"enabled": true, "method": "SMS"}, "passwordHash": hash}),
        json!({"username": "bad", "email": "not-an-email", "firstName": "Bad", "lastName": "L", "password": "secret-never-echoed"}),
        json!({"username": "one@example.com", "email": "one@example.com", "firstName": "Dup", "lastName": "L", "password": PASSWORD}),
    ];
    let file = env.path("customers.jsonl");
    std::fs::write(
        &file,
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n{not json\n",
    )
    .unwrap();

    let out = env.run(&["customers", "import", file.to_str().unwrap()]);

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

    let _server = env.serve();
    let (status, body) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "one@example.com", "password": PASSWORD})),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "two@example.com", "password": "wrong"})),
        None,
    );
    assert_eq!(status, 401, "{body}");
}

/// A running `serve`; killed when dropped, so a failing test leaves no process behind.
struct ServerGuard(Child);

impl ServerGuard {
    /// SIGKILL: no graceful shutdown, no flushing.
    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn full_flow(env: &Env) -> Vec<String> {
    let (status, login) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "bob@example.com", "password": PASSWORD})),
        None,
    );
    assert_eq!(status, 200);
    let pending = login["bffToken"].as_str().unwrap().to_owned();
    let (status, challenge) = env.call(
        "POST",
        "/api/v1/auth/2fa/initiate",
        Some(json!({})),
        Some(&pending),
    );
    assert_eq!(status, 202);
    let outbox = std::fs::read_to_string(env.path("outbox.jsonl")).unwrap();
    let code = serde_json::from_str::<Value>(outbox.lines().last().unwrap()).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, active) = env.call(
        "POST",
        "/api/v1/auth/2fa/verify",
        Some(json!({"challengeId": challenge["challengeId"], "code": code})),
        Some(&pending),
    );
    assert_eq!(status, 200);
    let (status, renewed) = env.call(
        "POST",
        "/api/v1/auth/token/refresh",
        Some(json!({"refreshToken": active["refreshToken"]})),
        None,
    );
    assert_eq!(status, 200);
    vec![
        PASSWORD.to_owned(),
        code,
        pending,
        login["refreshToken"].as_str().unwrap().to_owned(),
        active["bffToken"].as_str().unwrap().to_owned(),
        active["refreshToken"].as_str().unwrap().to_owned(),
        renewed["bffToken"].as_str().unwrap().to_owned(),
        renewed["refreshToken"].as_str().unwrap().to_owned(),
    ]
}

#[test]
fn no_secret_of_a_full_flow_reaches_the_log_the_audit_trail_or_the_database() {
    let env = Env::new();
    env.create("bob", "sms");
    let server = env.serve();
    let secrets = full_flow(&env);
    drop(server);

    let log = std::fs::read_to_string(env.path("serve.log")).unwrap();
    assert!(log.contains("request handled"), "the log was written");
    let audit = stdout(&env.run(&["audit", "tail", "-n", "1000"]));
    assert!(audit.contains("2fa.verified"));
    let db = read_all_bytes(&env.path("auth.db"));
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

fn read_all_bytes(db: &Path) -> String {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        all.extend(std::fs::read(path).unwrap_or_default());
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn a_kill_9_loses_no_acknowledged_session_or_logout() {
    let env = Env::new();
    env.create("alice", "off");
    let server = env.serve();
    let login = |env: &Env| {
        let (status, body) = env.call(
            "POST",
            "/api/v1/auth/token",
            Some(json!({"username": "alice@example.com", "password": PASSWORD})),
            None,
        );
        assert_eq!(status, 200);
        body["bffToken"].as_str().unwrap().to_owned()
    };
    let kept = login(&env);
    let ended = login(&env);
    assert_eq!(
        env.call("POST", "/api/v1/auth/logout", Some(json!({})), Some(&ended))
            .0,
        204
    );

    server.kill_9();
    let _server = env.serve();

    assert_eq!(
        env.call("GET", "/api/v1/customers/me", None, Some(&kept)).0,
        200
    );
    assert_eq!(
        env.call("GET", "/api/v1/customers/me", None, Some(&ended))
            .0,
        401
    );
    assert!(env.run(&["audit", "verify"]).status.success());
}

#[test]
fn audit_verify_passes_on_an_intact_trail_and_names_the_first_tampered_event() {
    let env = Env::new();
    env.create("bob", "sms");
    {
        let _server = env.serve();
        full_flow(&env);
    }
    let out = env.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("intact"));

    let export = stdout(&env.run(&["audit", "export", "--since", "2000-01-01T00:00:00Z"]));
    let events: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 5);
    assert!(
        events
            .iter()
            .all(|e| e["hash"].is_string() && e["prevHash"].is_string())
    );
    let future = stdout(&env.run(&["audit", "export", "--since", "2999-01-01T00:00:00Z"]));
    assert!(future.is_empty());

    // An insider edits the third event's reason, working around the append-only triggers.
    sqlite(
        &env.path("auth.db"),
        "DROP TRIGGER audit_events_are_not_updated; UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3;",
    );
    let out = env.run(&["audit", "verify"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("seq 3"), "{}", stderr(&out));
}

#[test]
fn audit_verify_detects_deleted_events() {
    let env = Env::new();
    env.create("alice", "off");
    env.create("bob", "off");
    env.create("carol", "off");
    sqlite(
        &env.path("auth.db"),
        "DROP TRIGGER audit_events_are_not_deleted; DELETE FROM audit_events WHERE seq = 3;",
    );
    let out = env.run(&["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("truncated")
            || stderr(&out).contains("removed")
            || stderr(&out).contains("seq"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_audit_trail_refuses_edits_through_sql() {
    let env = Env::new();
    env.create("alice", "off");
    let out = sqlite_result(
        &env.path("auth.db"),
        "UPDATE audit_events SET reason = 'x' WHERE seq = 1;",
    );
    assert!(out.contains("append-only"), "{out}");
}

#[test]
fn demo_refuses_a_non_loopback_address() {
    let env = Env::new();
    let out = env
        .command()
        .arg("demo")
        .env("FINHUB_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
}

#[test]
fn operators_lock_and_unlock_customers() {
    let env = Env::new();
    env.create("alice", "off");
    assert!(
        env.run(&["customers", "lock", "Alice@Example.com"])
            .status
            .success()
    );
    let _server = env.serve();
    let (status, body) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "alice@example.com", "password": PASSWORD})),
        None,
    );
    assert_eq!(status, 423);
    assert!(body.get("lockedUntil").is_none());
    assert!(
        env.run(&["customers", "unlock", "alice@example.com"])
            .status
            .success()
    );
    let (status, _) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "alice@example.com", "password": PASSWORD})),
        None,
    );
    assert_eq!(status, 200);
    let tail = stdout(&env.run(&["audit", "tail", "-n", "3"]));
    assert_eq!(tail.lines().count(), 3);
    assert!(tail.contains("account.unlocked"));
}

/// Runs SQL on a database file with a raw connection, as an insider with file access could.
fn sqlite(db: &Path, sql: &str) {
    let out = sqlite_result(db, sql);
    assert!(out.is_empty(), "{out}");
}

fn sqlite_result(db: &Path, sql: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
        {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    })
}

#[test]
fn audit_tail_follow_prints_new_events_as_they_happen() {
    use std::io::BufRead as _;
    let env = Env::new();
    assert!(env.run(&["migrate"]).status.success());
    let mut follower = env
        .command()
        .args(["audit", "tail", "--follow", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    env.create("alice", "off");

    let line = received.recv_timeout(Duration::from_secs(10));
    let _ = follower.kill();
    let _ = follower.wait();
    let event: Value = serde_json::from_str(&line.expect("an event within 10 s")).unwrap();
    assert_eq!(event["kind"], "customer.created");
    assert_eq!(event["username"], "alice@example.com");
}

#[test]
fn moving_the_retention_checkpoint_by_hand_to_hide_events_is_detected() {
    let env = Env::new();
    for name in ["alice", "bob", "carol", "dave"] {
        env.create(name, "off");
    }
    sqlite(
        &env.path("auth.db"),
        "UPDATE audit_checkpoint SET seq = 2, hash = (SELECT hash FROM audit_events WHERE seq = 2); \
         DELETE FROM audit_events WHERE seq <= 2;",
    );
    let out = env.run(&["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no audit.purged event accounts"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_an_audit_key_the_chain_is_sealed_and_verifies_only_with_the_key() {
    let env = Env::new();
    let key = "a-long-audit-key-kept-outside-the-database";
    let keyed = |args: &[&str]| {
        env.command()
            .args(args)
            .env("FINHUB_AUDIT_KEY", key)
            .output()
            .unwrap()
    };
    let mut create = env.create_command("alice@example.com", "alice@example.com", "off");
    create.env("FINHUB_AUDIT_KEY", key);
    assert!(feed(create, PASSWORD).status.success());
    assert!(
        keyed(&["customers", "lock", "alice@example.com"])
            .status
            .success()
    );

    let out = keyed(&["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let export = stdout(&keyed(&[
        "audit",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
    ]));
    assert!(export.lines().all(|l| {
        serde_json::from_str::<Value>(l).unwrap()["hash"]
            .as_str()
            .unwrap()
            .starts_with("hmac:")
    }));

    let unkeyed = env.run(&["audit", "verify"]);
    assert!(!unkeyed.status.success());
    assert!(
        stderr(&unkeyed).contains("FINHUB_AUDIT_KEY"),
        "{}",
        stderr(&unkeyed)
    );
    let wrong = env
        .command()
        .args(["audit", "verify"])
        .env("FINHUB_AUDIT_KEY", "x".repeat(40))
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    let short = env
        .command()
        .args(["migrate"])
        .env("FINHUB_AUDIT_KEY", "short")
        .output()
        .unwrap();
    assert!(
        stderr(&short).contains("at least 32 bytes"),
        "{}",
        stderr(&short)
    );
}

#[test]
fn migrate_normalises_usernames_stored_in_another_unicode_form() {
    let env = Env::new();
    env.create("jose", "off");
    // As an earlier version stored it: lower-cased, but decomposed (e + combining acute).
    sqlite(
        &env.path("auth.db"),
        "UPDATE customers SET username = 'jose' || char(769) || '@example.com'",
    );

    let out = env.run(&["migrate"]);

    assert!(out.status.success(), "{}", stderr(&out));
    let _server = env.serve();
    let (status, _) = env.call(
        "POST",
        "/api/v1/auth/token",
        Some(json!({"username": "Jos\u{e9}@Example.com", "password": PASSWORD})),
        None,
    );
    assert_eq!(
        status, 200,
        "the composed form finds the normalised account"
    );
}
