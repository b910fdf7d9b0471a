//! HTTPS in the service, with certificates from `dev-cert`: the whole flow over TLS (HTTP/2 by
//! ALPN), HSTS, plain HTTP and TLS 1.1 refused, and a renewed certificate picked up on SIGHUP.
//! curl is the client: it speaks every protocol version asked of it and checks certificates
//! against the CA it is given.

#[path = "common/process.rs"]
mod process;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use process::{Setup, free_port};

const PASSWORD: &str = "Corr3ct-horse-battery";

fn dev_cert(setup: &Setup, out: &Path) {
    let done = setup.run(&["dev-cert", "--out", &out.display().to_string()], None);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// curl against the service, trusting `ca`; the output (body, or what `extra` asks to write).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            &ca.display().to_string(),
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `serve` over TLS, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve_tls(setup: &Setup, ca: &Path) -> (Server, String) {
    let port = free_port();
    let log = std::fs::File::create(setup.path("tls.log")).unwrap();
    let server = Server(
        setup
            .command(port)
            .arg("serve")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("https://localhost:{port}");
    for _ in 0..150 {
        if curl(ca, &format!("{base}/healthz"), &[]).status.success() {
            return (server, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "serve did not start: {}",
        std::fs::read_to_string(setup.path("tls.log")).unwrap_or_default()
    );
}

/// A setup whose `serve` speaks HTTPS with a `dev-cert` pair written to `certs`.
fn with_dev_cert(dir: &tempfile::TempDir, certs: &Path) -> Setup {
    let setup = Setup::sqlite(dir.path())
        .with(
            "FINHUB_TLS_CERT",
            &certs.join("dev-cert.pem").display().to_string(),
        )
        .with(
            "FINHUB_TLS_KEY",
            &certs.join("dev-key.pem").display().to_string(),
        );
    dev_cert(&setup, certs);
    setup
}

#[tokio::test]
async fn the_whole_flow_runs_over_https_and_nothing_else_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let setup = with_dev_cert(&dir, &certs);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(certs.join("dev-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");
    setup.create_customer("alice", "off", PASSWORD);
    let ca = certs.join("dev-cert.pem");
    let (_server, base) = serve_tls(&setup, &ca).await;

    // Login, details and logout, over HTTP/2 (ALPN) with HSTS on every answer.
    let body = json!({"username": "alice@example.com", "password": PASSWORD}).to_string();
    let login = curl(
        &ca,
        &format!("{base}/api/v1/auth/token"),
        &[
            "--http2",
            "-H",
            "content-type: application/json",
            "-d",
            &body,
        ],
    );
    let tokens = json_of(&login);
    let token = tokens["bffToken"]
        .as_str()
        .expect("a token over HTTPS")
        .to_owned();
    let bearer = format!("authorization: Bearer {token}");
    let me = curl(
        &ca,
        &format!("{base}/api/v1/customers/me"),
        &["--http2", "-H", &bearer],
    );
    assert_eq!(json_of(&me)["username"], "alice@example.com");
    let headers = curl(
        &ca,
        &format!("{base}/api/v1/customers/me"),
        &[
            "--http2",
            "-H",
            &bearer,
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_version}",
        ],
    );
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(
        headers.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{headers}"
    );
    assert!(
        headers.trim_end().ends_with('2'),
        "HTTP/2 negotiated: {headers}"
    );
    let http1 = curl(
        &ca,
        &format!("{base}/healthz"),
        &["--http1.1", "-o", "/dev/null", "-w", "%{http_version}"],
    );
    assert_eq!(String::from_utf8_lossy(&http1.stdout), "1.1");
    let logout = curl(
        &ca,
        &format!("{base}/api/v1/auth/logout"),
        &[
            "-X",
            "POST",
            "-H",
            &bearer,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&logout.stdout), "204");

    // Plain HTTP on the TLS port, and TLS 1.1, get no answer.
    let plain = curl(
        &ca,
        &base.replace("https://", "http://"),
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    let old = curl(
        &ca,
        &format!("{base}/healthz"),
        &["--tlsv1.1", "--tls-max", "1.1"],
    );
    assert!(!old.status.success(), "TLS 1.1 refused");
    let tls12 = curl(
        &ca,
        &format!("{base}/healthz"),
        &["--tlsv1.2", "--tls-max", "1.2"],
    );
    assert!(tls12.status.success(), "TLS 1.2 accepted");
    // Only AEAD suites with forward secrecy: a client offering nothing else is refused.
    let weak = curl(
        &ca,
        &format!("{base}/healthz"),
        &[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--ciphers",
            "AES128-SHA:AES256-SHA:AES128-GCM-SHA256",
        ],
    );
    assert!(!weak.status.success(), "no static-RSA or CBC suite");
    // A client that does not trust the certificate does not talk to it.
    let untrusting = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("{base}/healthz"))
        .output()
        .unwrap();
    assert!(!untrusting.status.success());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let setup = with_dev_cert(&dir, &certs);
    let old_ca = dir.path().join("old-ca.pem");
    std::fs::copy(certs.join("dev-cert.pem"), &old_ca).unwrap();
    let (server, base) = serve_tls(&setup, &old_ca).await;

    dev_cert(&setup, &certs);
    let new_ca = certs.join("dev-cert.pem");
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut renewed = false;
    for _ in 0..50 {
        if curl(&new_ca, &format!("{base}/healthz"), &[])
            .status
            .success()
        {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the renewed certificate is served");
    assert!(
        !curl(&old_ca, &format!("{base}/healthz"), &[])
            .status
            .success()
    );
}

#[tokio::test]
async fn the_operations_address_can_speak_https_and_ask_for_a_token() {
    // ASVS 12.3.3: metrics and readiness details describe traffic, failures and fallbacks; on a
    // shared monitoring network they travel encrypted and go only to who holds the token.
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ops_port = free_port();
    let token = "an-operations-token-of-enough-characters";
    std::fs::write(dir.path().join("ops-token"), format!("{token}\n")).unwrap();
    let setup = with_dev_cert(&dir, &certs)
        .with("FINHUB_OPS_LISTEN", &format!("127.0.0.1:{ops_port}"))
        .with("FINHUB_OPS_TLS", "true")
        .with(
            "FINHUB_OPS_TOKEN_FILE",
            &dir.path().join("ops-token").display().to_string(),
        );
    let ca = certs.join("dev-cert.pem");
    let (_server, _base) = serve_tls(&setup, &ca).await;
    let ops = format!("https://localhost:{ops_port}");

    let status = |out: &Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let code = ["-o", "/dev/null", "-w", "%{http_code}"];
    // Liveness stays open, over HTTPS only.
    assert_eq!(status(&curl(&ca, &format!("{ops}/healthz"), &code)), "200");
    let plain = curl(&ca, &format!("http://localhost:{ops_port}/healthz"), &code);
    assert_ne!(status(&plain), "200", "plain HTTP refused");
    for path in ["/metrics", "/readyz"] {
        let url = format!("{ops}{path}");
        assert_eq!(
            status(&curl(&ca, &url, &code)),
            "401",
            "{path} without the token"
        );
        let wrong = [
            "-H",
            "authorization: Bearer an-operations-token-of-enough-characterX",
        ];
        let wrong: Vec<&str> = wrong.iter().chain(code.iter()).copied().collect();
        assert_eq!(
            status(&curl(&ca, &url, &wrong)),
            "401",
            "{path}, a wrong token"
        );
        let header = format!("authorization: Bearer {token}");
        let right: Vec<&str> = ["-H", header.as_str()].into_iter().chain(code).collect();
        assert_eq!(
            status(&curl(&ca, &url, &right)),
            "200",
            "{path} with the token"
        );
    }
}

#[test]
fn a_short_or_misplaced_operations_token_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short"), "too-short").unwrap();
    let short = Setup::sqlite(dir.path())
        .with("FINHUB_OPS_LISTEN", &format!("127.0.0.1:{}", free_port()))
        .with(
            "FINHUB_OPS_TOKEN_FILE",
            &dir.path().join("short").display().to_string(),
        )
        .run(&["migrate"], None);
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32 characters"));
    let without_ops = Setup::sqlite(dir.path())
        .with("FINHUB_OPS_TLS", "true")
        .run(&["migrate"], None);
    assert!(!without_ops.status.success());
    assert!(String::from_utf8_lossy(&without_ops.stderr).contains("FINHUB_OPS_LISTEN"));
}
