//! Real delivery (`FINHUB_NOTIFIER=live`): codes by SMS through a gateway the test runs on
//! loopback, which fails before it succeeds and checks every request's signature; and by e-mail
//! through an SMTP server the test starts (aiosmtpd).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use finhub_auth::config::NotifierKind;
use finhub_auth::domain::credentials::factor::TwoFactorMethod;
use finhub_auth::notify::sms::SmsGateway;
use serde_json::Value;
use time::Duration;

use crate::helpers::{Backend, TestApp, spawn_app_with, tokens};

const SECRET: &str = "a-gateway-secret-of-at-least-32-bytes";

/// What the gateway received, and the answers it still has to give (then 200).
#[derive(Default)]
struct Gateway {
    received: Vec<(HeaderMap, Bytes)>,
    answers: VecDeque<StatusCode>,
}

type Shared = Arc<Mutex<Gateway>>;

async fn receive(State(gateway): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut gateway = gateway.lock().unwrap();
    gateway.received.push((headers, body));
    gateway.answers.pop_front().unwrap_or(StatusCode::OK)
}

/// A gateway on loopback that answers `answers` first; its URL.
async fn gateway(answers: &[StatusCode]) -> (Shared, String) {
    let shared = Shared::default();
    shared.lock().unwrap().answers = answers.iter().copied().collect();
    let app = axum::Router::new()
        .route("/sms", axum::routing::post(receive))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (shared, url)
}

async fn live_app(backend: Backend, sms_url: &str, smtp_url: &str) -> TestApp {
    live_app_trusting(backend, sms_url, smtp_url, None).await
}

/// [`live_app`], with `ca` (PEM file) trusted for the SMTP relay.
async fn live_app_trusting(
    backend: Backend,
    sms_url: &str,
    smtp_url: &str,
    ca: Option<std::path::PathBuf>,
) -> TestApp {
    let (sms_url, smtp_url) = (sms_url.to_owned(), smtp_url.to_owned());
    spawn_app_with(backend, move |s| {
        s.notifier.smtp_ca_file = ca;
        s.notifier.kind = NotifierKind::Live;
        s.notifier.public_url = Some("https://app.finhub.test".into());
        s.notifier.sms_gateway_url = Some(sms_url);
        s.notifier.sms_gateway_secret = Some(SECRET.into());
        s.notifier.smtp_url = Some(smtp_url.into());
        s.notifier.smtp_from = Some("FinHub <auth@finhub.test>".into());
    })
    .await
}

/// Delivers what is due, then lets the clock pass the longest retry wait.
async fn delivery_pass(app: &TestApp) {
    app.services.courier.deliver_due().await.unwrap();
    app.clock.advance(Duration::seconds(70));
}

on_both_stores!(an_sms_gateway_down_then_up_gets_one_signed_message_under_one_key);
async fn an_sms_gateway_down_then_up_gets_one_signed_message_under_one_key(backend: Backend) {
    let (gateway, url) = gateway(&[
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ])
    .await;
    let app = live_app(backend, &url, "smtp://127.0.0.1:9?tls=none").await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    for _ in 0..3 {
        delivery_pass(&app).await;
    }
    assert_eq!(app.pending_codes(&bob).await, 0);

    let received = std::mem::take(&mut gateway.lock().unwrap().received);
    assert_eq!(received.len(), 3, "two failures, then the delivery");
    for (headers, body) in &received {
        assert_eq!(headers["idempotency-key"], challenge.as_str());
        let timestamp: i64 = headers["x-finhub-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected = SmsGateway::signature(SECRET.as_bytes(), timestamp, body).unwrap();
        assert_eq!(headers["x-finhub-signature"], expected.as_str());
        assert_eq!(headers["content-type"], "application/json");
    }
    let sms: Value = serde_json::from_slice(&received[2].1).unwrap();
    assert_eq!(sms["to"], "+447700900123");
    assert_eq!(sms["reference"], challenge.as_str());
    let text = sms["text"].as_str().unwrap();
    assert!(text.contains("FinHub") && text.contains("10 minutes") && !text.contains("http"));
    let code: String = text.chars().filter(char::is_ascii_digit).take(6).collect();

    tokens(app.verify(&pending.bff, &challenge, &code).await).await;
    let delivered = app.audit_of_kind("2fa.delivered").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["details"]["attempts"], 3);
    for event in app.audit().await {
        assert!(
            !event.to_string().contains(&code),
            "no code in the audit trail"
        );
    }
}

on_both_stores!(a_message_the_gateway_refuses_is_not_retried_and_gives_the_send_back);
async fn a_message_the_gateway_refuses_is_not_retried_and_gives_the_send_back(backend: Backend) {
    let (gateway, url) = gateway(&[StatusCode::UNPROCESSABLE_ENTITY]).await;
    let app = live_app(backend, &url, "smtp://127.0.0.1:9?tls=none").await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    app.initiate_ok(&pending.bff).await;
    for _ in 0..3 {
        delivery_pass(&app).await;
    }
    assert_eq!(gateway.lock().unwrap().received.len(), 1, "no retry");
    let refused = app.audit_of_kind("2fa.undelivered").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["reason"], "refused");
    assert_eq!(app.initiate(&pending.bff).await.status().as_u16(), 202);
}

/// An SMTP server on loopback (aiosmtpd) that keeps what it receives in a maildir.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With aiosmtpd's `args` (e.g. its STARTTLS or SMTPS certificate).
    async fn start_with(args: &[&str]) -> Self {
        Self::spawn(|port, maildir| {
            let mut command = std::process::Command::new("python3");
            command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(args)
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir);
            command
        })
        .await
    }

    /// One that requires AUTH as `relay-user` / `relay-pass` (`tests/fixtures/smtp_auth_sink.py`).
    async fn start_requiring_auth() -> Self {
        Self::spawn(|port, maildir| {
            let mut command = std::process::Command::new("python3");
            // Its warning about AUTH without TLS is the point here (loopback only).
            command
                .args(["-W", "ignore"])
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/smtp_auth_sink.py"
                ))
                .arg(port.to_string())
                .arg(maildir);
            command
        })
        .await
    }

    async fn spawn(command: impl FnOnce(u16, &std::path::Path) -> std::process::Command) -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let maildir = tempfile::tempdir().unwrap();
        let child = command(port, &maildir.path().join("mail"))
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test installs it)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// Every message received, as raw text.
    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("mail").join("new");
        std::fs::read_dir(new)
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

on_both_stores!(an_emailed_code_reaches_the_smtp_server_with_both_bodies);
async fn an_emailed_code_reaches_the_smtp_server_with_both_bodies(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = format!("smtp://127.0.0.1:{}?tls=none", sink.port);
    let app = live_app(backend, "https://sms.invalid/send", &smtp).await;
    let carol = app
        .create_customer("carol", Some(TwoFactorMethod::Email))
        .await;
    let pending = app.login_ok(&carol).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.pending_codes(&carol).await, 0);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert!(mail.contains("To: carol@example.com"), "{mail}");
    assert!(mail.contains("From: FinHub <auth@finhub.test>"), "{mail}");
    assert!(
        mail.contains("Subject: Your FinHub security code"),
        "{mail}"
    );
    assert!(mail.contains("\nDate: "), "{mail}");
    assert!(
        mail.contains(&format!("Message-ID: <{challenge}@finhub-auth>")),
        "{mail}"
    );
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
    let marker = "Your FinHub security code is ";
    let start = mail.find(marker).expect("the code's sentence") + marker.len();
    let code = &mail[start..start + 6];
    tokens(app.verify(&pending.bff, &challenge, code).await).await;
}

/// Logs `name` (2FA by e-mail) in, asks for a code, delivers it; the code, read from the mail
/// the sink received.
async fn emailed_code(app: &TestApp, sink: &SmtpSink, name: &str) -> String {
    let customer = app
        .create_customer(name, Some(TwoFactorMethod::Email))
        .await;
    let pending = app.login_ok(&customer).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    app.services.courier.deliver_due().await.unwrap();
    assert_eq!(app.pending_codes(&customer).await, 0, "delivered");
    let mail = sink
        .messages()
        .into_iter()
        .find(|m| m.contains(&format!("To: {name}@example.com")))
        .expect("the mail");
    let marker = "Your FinHub security code is ";
    let start = mail.find(marker).expect("the code's sentence") + marker.len();
    let code = mail[start..start + 6].to_owned();
    tokens(app.verify(&pending.bff, &challenge, &code).await).await;
    code
}

on_both_stores!(codes_go_over_starttls_and_implicit_tls_to_a_relay_the_ca_vouches_for);
async fn codes_go_over_starttls_and_implicit_tls_to_a_relay_the_ca_vouches_for(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let relay = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("relay.pem"), dir.path().join("relay.key"));
    std::fs::write(&cert, relay.cert.pem()).unwrap();
    std::fs::write(&key, relay.signing_key.serialize_pem()).unwrap();
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());

    // STARTTLS, required (`smtp://` without `tls=none`), then implicit TLS (`smtps://`).
    for (scheme, cert_flag, key_flag, name) in [
        ("smtp", "--tlscert", "--tlskey", "dora"),
        ("smtps", "--smtpscert", "--smtpskey", "emil"),
    ] {
        let sink = SmtpSink::start_with(&[cert_flag, &cert_arg, key_flag, &key_arg]).await;
        let url = format!("{scheme}://localhost:{}", sink.port);
        let app = live_app_trusting(
            backend,
            "https://sms.invalid/send",
            &url,
            Some(cert.clone()),
        )
        .await;
        emailed_code(&app, &sink, name).await;
    }

    // Without the relay's CA the certificate is refused: nothing is sent, the message waits.
    let untrusted = SmtpSink::start_with(&["--smtpscert", &cert_arg, "--smtpskey", &key_arg]).await;
    let url = format!("smtps://localhost:{}", untrusted.port);
    let app = live_app(backend, "https://sms.invalid/send", &url).await;
    let fred = app
        .create_customer("fred", Some(TwoFactorMethod::Email))
        .await;
    let pending = app.login_ok(&fred).await;
    app.initiate_ok(&pending.bff).await;
    app.services.courier.deliver_due().await.unwrap();
    assert!(untrusted.messages().is_empty());
    assert_eq!(app.pending_codes(&fred).await, 1, "kept for a retry");
}

on_both_stores!(the_relay_credentials_in_the_url_are_used);
async fn the_relay_credentials_in_the_url_are_used(backend: Backend) {
    let sink = SmtpSink::start_requiring_auth().await;
    let url = format!(
        "smtp://relay-user:relay-pass@127.0.0.1:{}?tls=none",
        sink.port
    );
    let app = live_app(backend, "https://sms.invalid/send", &url).await;
    emailed_code(&app, &sink, "gina").await;
}

on_both_stores!(a_code_a_slow_gateway_may_have_delivered_is_not_given_back);
/// The attack: a gateway that times out or fails after it may have sent the SMS used to have the
/// send given back after the last attempt, so that each such failure bought another code within
/// the customer's hourly budget. Only a definite refusal gives the send back now; the code stays
/// usable.
async fn a_code_a_slow_gateway_may_have_delivered_is_not_given_back(backend: Backend) {
    // The first answer may come after the gateway passed the message on; the second turns it away.
    let (gateway, url) =
        gateway(&[StatusCode::GATEWAY_TIMEOUT, StatusCode::SERVICE_UNAVAILABLE]).await;
    let app = spawn_app_with(backend, move |s| {
        s.notifier.kind = NotifierKind::Live;
        s.notifier.public_url = Some("https://app.finhub.test".into());
        s.notifier.sms_gateway_url = Some(url);
        s.notifier.sms_gateway_secret = Some(SECRET.into());
        s.notifier.smtp_url = Some("smtp://127.0.0.1:9?tls=none".into());
        s.notifier.smtp_from = Some("FinHub <auth@finhub.test>".into());
        s.notifier.delivery_attempts = std::num::NonZeroU32::new(2).unwrap();
        s.two_factor.customer_sends = Some("1/h".parse().unwrap());
    })
    .await;
    let bob = app.create_customer("bob", Some(TwoFactorMethod::Sms)).await;
    let pending = app.login_ok(&bob).await;
    let challenge = app.initiate_ok(&pending.bff).await;
    for _ in 0..3 {
        delivery_pass(&app).await;
    }
    let undelivered = app.audit_of_kind("2fa.undelivered").await;
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0]["reason"], "gave_up");
    let codes_sent: i64 = app
        .customer_scalar(
            "SELECT codes_sent FROM sessions WHERE customer_id = $1",
            &bob,
        )
        .await;
    assert_eq!(codes_sent, 1, "the send stays counted");
    // And so does the customer's hourly budget, from any session.
    let again = app.login_ok(&bob).await;
    crate::helpers::assert_problem(app.initiate(&again.bff).await, 429, "TOO_MANY_2FA_ATTEMPTS")
        .await;
    // The gateway may well have passed it on: the code still works.
    let body = gateway.lock().unwrap().received[1].1.clone();
    let sms: Value = serde_json::from_slice(&body).unwrap();
    let code: String = sms["text"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    tokens(app.verify(&pending.bff, &challenge, &code).await).await;
}
