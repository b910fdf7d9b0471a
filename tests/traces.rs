//! OpenTelemetry traces (`FINHUB_OTLP_ENDPOINT`): `serve` exports its spans over OTLP/HTTP to a
//! receiver in this test, which decodes every export. A login's request span is the server span
//! of the trace a trusted proxy names in `traceparent` (and of a new one when the header comes
//! from anyone else), with the hashing and the store calls as its children; no attribute holds
//! the customer's password, username or tokens; the trace id is in the request's log lines and
//! in its audit event.

#[path = "common/process.rs"]
mod process;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

use process::{Instance, Setup};

const PASSWORD: &str = "Corr3ct-horse-battery";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const UNSAMPLED_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Every export a collector received, as JSON.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Value>>>);

impl Collector {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    /// Every span received, each with its attributes flattened into `attrs`.
    fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for body in self.bodies() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        let attrs: serde_json::Map<String, Value> = span["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                let value = a["value"].as_object().and_then(|v| v.values().next());
                                (
                                    a["key"].as_str().unwrap().to_owned(),
                                    value.cloned().unwrap_or(Value::Null),
                                )
                            })
                            .collect();
                        span["attrs"] = Value::Object(attrs);
                        spans.push(span);
                    }
                }
            }
        }
        spans
    }
}

async fn receive(State(collector): State<Collector>, body: Bytes) -> &'static str {
    let export: Value = serde_json::from_slice(&body).expect("an OTLP/JSON export");
    collector.0.lock().unwrap().push(export);
    "{}"
}

async fn traced(dir: &std::path::Path, collector: &Collector, trusted: bool) -> (Setup, Instance) {
    let endpoint = collector.clone().start().await;
    let mut setup = Setup::sqlite(dir)
        .with("FINHUB_OTLP_ENDPOINT", &endpoint)
        .with("FINHUB_LOG_FORMAT", "json")
        .with("OTEL_BSP_SCHEDULE_DELAY", "100");
    if trusted {
        setup = setup.with("FINHUB_TRUSTED_PROXIES", "127.0.0.1/32");
    }
    setup.create_customer("alice", "off", PASSWORD);
    let instance = setup.serve("traced").await;
    (setup, instance)
}

/// A login whose `traceparent` names `trace` under `PARENT`, with the sampled flag `flags`.
async fn login_in(instance: &Instance, trace: &str, flags: &str) -> Value {
    let response = instance
        .client
        .post(instance.url("/api/v1/auth/token"))
        .header("traceparent", format!("00-{trace}-{PARENT}-{flags}"))
        .json(&serde_json::json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn server_span_of(spans: &[Value], name: &str) -> Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no span {name} among {:?}", names(spans)))
}

fn names(spans: &[Value]) -> Vec<String> {
    spans.iter().map(|s| s["name"].to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_traced_under_its_proxys_trace_with_its_hashing_and_store_calls_and_nothing_secret()
 {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::default();
    let (setup, instance) = traced(dir.path(), &collector, true).await;
    let login = login_in(&instance, TRACE, "01").await;
    let bearer = login["bffToken"].as_str().unwrap().to_owned();
    login_in(&instance, UNSAMPLED_TRACE, "00").await;
    let (status, _) = instance.get("/api/v1/customers/me", Some(&bearer)).await;
    assert_eq!(status, 200);
    let log = instance.log.clone();
    instance.terminate();

    let spans = collector.spans();
    let request = server_span_of(&spans, "POST /api/v1/auth/token");
    // The trusted proxy's trace, continued.
    assert_eq!(request["traceId"], TRACE);
    assert_eq!(request["parentSpanId"], PARENT);
    assert_eq!(request["kind"], 2, "a server span");
    assert_eq!(request["attrs"]["route"], "/api/v1/auth/token");
    assert_eq!(
        request["attrs"]["status"].to_string().trim_matches('"'),
        "200"
    );
    // The hashing and the store calls under it.
    let children: Vec<String> = spans
        .iter()
        .filter(|s| s["traceId"] == TRACE && s["parentSpanId"] == request["spanId"])
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for child in [
        "password.verify",
        "store.login_candidate",
        "store.start_session",
    ] {
        assert!(
            children.iter().any(|c| c == child),
            "{child} not under the request: {children:?}"
        );
    }
    let me = server_span_of(&spans, "GET /api/v1/customers/me");
    assert_ne!(
        me["traceId"], TRACE,
        "a request without traceparent starts its own trace"
    );
    // A parent flagged "not sampled" does not take a request out of its trace.
    assert!(
        spans
            .iter()
            .any(|s| s["traceId"] == UNSAMPLED_TRACE && s["name"] == "POST /api/v1/auth/token"),
        "the request under an unsampled parent was dropped: {:?}",
        names(&spans)
    );

    // Nothing of the customer in any export: no password, username, e-mail or token.
    let exported = serde_json::to_string(&collector.bodies()).unwrap();
    for secret in [
        PASSWORD,
        "alice@example.com",
        &bearer,
        login["refreshToken"].as_str().unwrap(),
    ] {
        assert!(!exported.contains(secret), "an export holds {secret}");
    }

    // The trace id in the request's log lines and in its audit event.
    let lines = std::fs::read_to_string(log).unwrap();
    assert!(
        lines
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["span"]["trace_id"] == TRACE && l["fields"]["message"] == "request handled"),
        "no log line of the login names its trace"
    );
    let tail = setup.run(&["audit", "tail"], None);
    let events: Vec<Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let login_event = events
        .iter()
        .find(|e| e["kind"] == "login.succeeded")
        .expect("the login's audit event");
    assert_eq!(login_event["details"]["traceId"], TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_from_anyone_but_a_trusted_proxy_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::default();
    let (_setup, instance) = traced(dir.path(), &collector, false).await;
    login_in(&instance, TRACE, "01").await;
    instance.terminate();
    // The attack: a client ties its requests to a trace of its choosing (to hide among, or
    // pollute, another system's trace).
    let spans = collector.spans();
    let request = server_span_of(&spans, "POST /api/v1/auth/token");
    assert_ne!(request["traceId"], TRACE);
    assert!(
        request["parentSpanId"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{request}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported_and_no_trace_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::sqlite(dir.path()).with("FINHUB_LOG_FORMAT", "json");
    setup.create_customer("alice", "off", PASSWORD);
    let instance = setup.serve("untraced").await;
    login_in(&instance, TRACE, "01").await;
    let log = instance.log.clone();
    instance.terminate();
    let lines = std::fs::read_to_string(log).unwrap();
    assert!(!lines.contains("trace_id"), "{lines}");
    assert!(!lines.contains(TRACE));
}

/// Passkey logins that arrive together are started in one SQLite commit by whichever request
/// gets the writer first. Each login's audit event must still name its own request's trace,
/// not the committing request's, nor none: the link from the trail to what happened breaks
/// otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_logins_committed_together_each_name_their_own_trace() {
    use finhub_soft_authenticator::SoftAuthenticator;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::default();
    let endpoint = collector.clone().start().await;
    let origin = "https://localhost:8443";
    let setup = Setup::sqlite(dir.path())
        .with("FINHUB_OTLP_ENDPOINT", &endpoint)
        .with("FINHUB_TRUSTED_PROXIES", "127.0.0.1/32")
        .with("FINHUB_WEBAUTHN_RP_ID", "localhost")
        .with("FINHUB_WEBAUTHN_ORIGIN", origin);
    setup.create_customer("alice", "off", PASSWORD);
    let instance = setup.serve("traced").await;
    let bearer = login_in(&instance, TRACE, "01").await["bffToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let added = post_ok(
        &instance,
        "/api/v1/customers/me/factors",
        serde_json::json!({"method": "PASSKEY", "name": "Phone"}),
        Some(&bearer),
        201,
    )
    .await;
    // No counter, so that the logins may run at once.
    let mut phone = SoftAuthenticator::new(origin).counterless();
    let credential = phone.register(&added["publicKey"]);
    let confirm = format!(
        "/api/v1/customers/me/factors/{}/confirm",
        added["id"].as_str().unwrap()
    );
    let body = serde_json::json!({"credential": credential});
    post_ok(&instance, &confirm, body, Some(&bearer), 200).await;

    let mut logins = Vec::new();
    for n in 0..24u32 {
        let options = post_ok(
            &instance,
            "/api/v1/auth/passkey/options",
            serde_json::json!({}),
            None,
            200,
        )
        .await;
        let body = serde_json::json!({
            "challengeId": options["challengeId"],
            "credential": phone.assert(&options["publicKey"]),
        });
        logins.push((format!("{:032x}", 0xfeed_0000_u128 + u128::from(n)), body));
    }
    let answers = futures::future::join_all(logins.iter().map(|(trace, body)| {
        instance
            .client
            .post(instance.url("/api/v1/auth/passkey"))
            .header("traceparent", format!("00-{trace}-{PARENT}-01"))
            .json(body)
            .send()
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
    instance.terminate();

    let tail = setup.run(&["audit", "tail", "-n", "1000"], None);
    let mut named: Vec<String> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "login.succeeded")
        .map(|e| {
            e["details"]["traceId"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    named.sort();
    // The password login that added the passkey, and each passkey login.
    let mut sent: Vec<String> = logins.into_iter().map(|(trace, _)| trace).collect();
    sent.push(TRACE.to_owned());
    sent.sort();
    assert_eq!(named, sent);
}

/// POSTs `body` to `path`, as `bearer` if given, expecting `status`; the answer's JSON.
async fn post_ok(
    instance: &Instance,
    path: &str,
    body: Value,
    bearer: Option<&str>,
    status: u16,
) -> Value {
    let mut request = instance.client.post(instance.url(path)).json(&body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status, "{path}");
    response.json().await.unwrap()
}
