//! The real `finhub-auth` binary as a child process, for tests that need processes: the command
//! line, several instances, restarts, a database that goes away.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_finhub-auth");

/// A `finhub-auth` configuration: a database URL and a working directory.
#[derive(Clone)]
pub struct Setup {
    pub database_url: String,
    pub dir: PathBuf,
    pub extra: Vec<(String, String)>,
}

impl Setup {
    pub fn new(database_url: String, dir: &Path) -> Self {
        Self {
            database_url,
            dir: dir.to_owned(),
            extra: vec![
                ("FINHUB_RATE_LIMIT_IP".into(), "off".into()),
                ("FINHUB_RATE_LIMIT_LOGIN_IP".into(), "off".into()),
                ("FINHUB_RATE_LIMIT_LOGIN_ACCOUNT".into(), "off".into()),
                // Most tests are not about the audit key: `serve` on PostgreSQL runs without
                // one as before. The tests of that refusal set it back to false.
                ("FINHUB_ALLOW_NO_AUDIT_KEY".into(), "true".into()),
            ],
        }
    }

    /// A SQLite database file, `auth.db`, in `dir`.
    pub fn sqlite(dir: &Path) -> Self {
        Self::new(format!("sqlite://{}", dir.join("auth.db").display()), dir)
    }

    /// Sets an environment variable for every command, over any earlier value.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// A file in the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn outbox(&self) -> PathBuf {
        self.path("outbox.jsonl")
    }

    /// The outbox file's messages, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.outbox())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The code of `challenge_id`, once a delivery worker has written it (waits up to 10 s).
    pub async fn code_for(&self, challenge_id: &str) -> String {
        for _ in 0..200 {
            let code = self
                .messages()
                .iter()
                .find(|m| m["challengeId"] == challenge_id)
                .and_then(|m| m["code"].as_str().map(str::to_owned));
            if let Some(code) = code {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no code for challenge {challenge_id} in the outbox")
    }

    pub fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FINHUB_")) {
            cmd.env_remove(k);
        }
        cmd.current_dir(&self.dir)
            .env("FINHUB_DATABASE_URL", &self.database_url)
            .env("FINHUB_OUTBOX_PATH", self.outbox())
            .env("FINHUB_LISTEN", format!("127.0.0.1:{port}"))
            .env("FINHUB_LOG_FORMAT", "json")
            .stdin(Stdio::null());
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut child = self
            .command(0)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn finhub-auth");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).expect("stdin");
        }
        child.wait_with_output().expect("finhub-auth output")
    }

    /// Runs `customers create` with `password` on standard input.
    pub fn try_create_customer(
        &self,
        username: &str,
        email: &str,
        two_factor: &str,
        password: &str,
    ) -> Output {
        let first_name = username.split('@').next().unwrap_or(username);
        self.run(
            &[
                "customers",
                "create",
                "--username",
                username,
                "--email",
                email,
                "--phone",
                "+447700900123",
                "--first-name",
                first_name,
                "--last-name",
                "Test",
                "--two-factor",
                two_factor,
                "--password-stdin",
            ],
            Some(password),
        )
    }

    /// Creates `{name}@example.com` through the CLI and returns its id.
    pub fn create_customer(&self, name: &str, two_factor: &str, password: &str) -> String {
        let username = format!("{name}@example.com");
        let out = self.try_create_customer(&username, &username, two_factor, password);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts `serve` on a free port and waits until it answers; its standard output and error
    /// both go to `{name}.log`.
    pub async fn serve(&self, name: &str) -> Instance {
        self.serve_writing(name, false).await
    }

    /// The same, with standard output apart in `{name}.stdout`, to see what `serve` writes
    /// there.
    pub async fn serve_stdout_apart(&self, name: &str) -> Instance {
        self.serve_writing(name, true).await
    }

    async fn serve_writing(&self, name: &str, stdout_apart: bool) -> Instance {
        let port = free_port();
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let stdout = if stdout_apart {
            std::fs::File::create(self.dir.join(format!("{name}.stdout"))).expect("stdout file")
        } else {
            log.try_clone().expect("log")
        };
        let child = self
            .command(port)
            .arg("serve")
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("spawn serve");
        let ops = self
            .extra
            .iter()
            .rev()
            .find(|(k, _)| k == "FINHUB_OPS_LISTEN")
            .map(|(_, address)| format!("http://{address}"));
        // reqwest has rustls without a provider chosen (the SMS client brings its own): ring, as
        // everywhere else, for this and every later client of the test.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let instance = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
            ops,
            log: log_path,
            client: Client::new(),
        };
        for _ in 0..150 {
            if let Ok(r) = instance.client.get(instance.url("/healthz")).send().await
                && r.status().is_success()
            {
                return instance;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{name} did not start: {}",
            std::fs::read_to_string(&instance.log).unwrap_or_default()
        );
    }
}

/// A running `serve`, killed when dropped, so a failing test leaves no process behind.
pub struct Instance {
    child: Child,
    pub base: String,
    /// The operations address (`FINHUB_OPS_LISTEN`), when the setup names one.
    pub ops: Option<String>,
    pub log: PathBuf,
    pub client: Client,
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `path` on the operations address, or on the public one when there is none.
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{path}", self.ops.as_deref().unwrap_or(&self.base))
    }

    /// POSTs `body` as JSON; the status and the JSON answer (`Null` when there is none).
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    /// GETs `path`; the status and the JSON answer (`Null` when there is none).
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request).await
    }

    /// The Prometheus text of `/metrics`, on the operations address when there is one.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.ops_url("/metrics"))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics text")
    }

    /// Logs in and returns the status and body.
    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({"username": username, "password": password});
        self.post("/api/v1/auth/token", &body, None).await
    }

    /// SIGKILL: no graceful shutdown, no flushing.
    /// Sends `signal` (`HUP`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, and waits for the graceful shutdown to finish.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("reap serve");
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("kill serve");
        self.child.wait().expect("reap serve");
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("a response from serve");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
