//! Unusual logins against a location database the test builds: new country, new network, new
//! device, impossible travel; and each `FINHUB_RISK_ACTION`.

use std::path::{Path, PathBuf};

use finhub_auth::domain::location::Locator as _;
use finhub_auth::domain::risk::RiskAction;
use finhub_auth::geo::MmdbLocator;
use reqwest::Response;
use serde::Serialize;
use serde_json::{Value, json};

use crate::helpers::{Backend, Customer, PASSWORD, TestApp, spawn_app_with, tokens};

const LONDON: &str = "203.0.113.10";
const MANCHESTER: &str = "192.0.2.10";
const NEW_YORK: &str = "198.51.100.10";

#[derive(Serialize)]
struct Record {
    country: Country,
    location: Place,
    autonomous_system_number: u32,
}

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
}

#[derive(Serialize)]
struct Place {
    latitude: f64,
    longitude: f64,
}

/// London and Manchester in GB on two networks, New York in the US.
fn write_database(path: &Path, london_country: &'static str) {
    let mut writer = mmdb_writer::Writer::new("FinHub-Test-City-ASN");
    let places = [
        ("203.0.113.0/24", london_country, 64500, 51.5074, -0.1278),
        ("192.0.2.0/24", "GB", 64501, 53.4808, -2.2426),
        ("198.51.100.0/24", "US", 64502, 40.7128, -74.0060),
    ];
    for (net, country, asn, latitude, longitude) in places {
        let record = Record {
            country: Country { iso_code: country },
            location: Place {
                latitude,
                longitude,
            },
            autonomous_system_number: asn,
        };
        writer
            .insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

async fn app_with(backend: Backend, action: RiskAction) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("test.mmdb");
    write_database(&db, "GB");
    let app = spawn_app_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.risk.geoip_db = Some(vec![db]);
        s.risk.action = action;
    })
    .await;
    (app, dir)
}

impl TestApp {
    async fn login_at(&self, customer: &Customer, ip: &str) -> Response {
        self.client
            .post(self.url("/api/v1/auth/token"))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": customer.username, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
    }

    async fn last_flags(&self) -> Value {
        let logins = self.audit_of_kind("login.succeeded").await;
        logins.last().unwrap()["details"]["flags"].clone()
    }

    async fn get_json(&self, path: &str, bearer: &str) -> Value {
        let response = self.client.get(self.url(path)).bearer_auth(bearer).send();
        response.await.unwrap().json().await.unwrap()
    }

    fn notices(&self) -> Vec<Value> {
        std::fs::read_to_string(self.outbox_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["kind"] == "security_notice")
            .collect()
    }
}

on_both_stores!(new_places_and_impossible_travel_are_flagged_against_the_customers_history);
async fn new_places_and_impossible_travel_are_flagged_against_the_customers_history(
    backend: Backend,
) {
    let (app, _db) = app_with(backend, RiskAction::Record).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_at(&alice, LONDON).await).await;
    assert_eq!(app.last_flags().await, json!([]), "no baseline yet");
    app.clock.advance(time::Duration::hours(1));
    tokens(app.login_at(&alice, MANCHESTER).await).await;
    assert_eq!(app.last_flags().await, json!(["NEW_NETWORK"]));
    app.clock.advance(time::Duration::hours(1));
    let ny = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(
        app.last_flags().await,
        json!(["NEW_COUNTRY", "NEW_NETWORK", "IMPOSSIBLE_TRAVEL"])
    );
    app.clock.advance(time::Duration::hours(10));
    let again = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(
        app.last_flags().await,
        json!([]),
        "a known place, long enough after"
    );
    assert!(app.notices().is_empty(), "record only");

    let sessions = app.get_json("/api/v1/sessions", &again.bff).await;
    let ny_session = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ny.session_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    // The New York session ended with its idle timeout; the current one shows its country.
    assert_eq!(ny_session, Value::Null);
    assert_eq!(sessions["sessions"][0]["country"], "US");
    assert_eq!(sessions["sessions"][0]["ip"], NEW_YORK);
    let events = app
        .get_json("/api/v1/customers/me/security-events?limit=2", &again.bff)
        .await;
    assert_eq!(events["events"][0]["country"], "US");
    assert_eq!(
        events["events"][1]["flags"],
        json!(["NEW_COUNTRY", "NEW_NETWORK", "IMPOSSIBLE_TRAVEL"])
    );
}

on_both_stores!(notify_tells_the_customer_once_per_new_signal);
async fn notify_tells_the_customer_once_per_new_signal(backend: Backend) {
    let (app, _db) = app_with(backend, RiskAction::Notify).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_at(&alice, LONDON).await).await;
    tokens(app.login_at(&alice, LONDON).await).await;
    assert!(
        app.notices().is_empty(),
        "the same country and network: no notice"
    );
    app.clock.advance(time::Duration::hours(12));
    tokens(app.login_at(&alice, NEW_YORK).await).await;
    tokens(app.login_at(&alice, NEW_YORK).await).await;
    let notices = app.notices();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["flags"], json!(["NEW_COUNTRY", "NEW_NETWORK"]));
    assert!(notices[0]["text"].as_str().unwrap().contains("from US"));
}

on_both_stores!(step_up_asks_a_customer_without_2fa_for_an_emailed_code);
async fn step_up_asks_a_customer_without_2fa_for_an_emailed_code(backend: Backend) {
    let (app, _db) = app_with(backend, RiskAction::StepUp).await;
    let alice = app.create_customer("alice", None).await;
    let usual = tokens(app.login_at(&alice, LONDON).await).await;
    assert_eq!(usual.body["twoFactorRequired"], false);
    app.clock.advance(time::Duration::hours(12));
    let unusual = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(unusual.body["twoFactorRequired"], true);
    let me: Value = app.me(&unusual.bff).await.json().await.unwrap();
    assert!(me.get("email").is_none(), "the restricted view only: {me}");
    let initiated: Value = app.initiate(&unusual.bff).await.json().await.unwrap();
    assert_eq!(initiated["method"], "EMAIL");
    let challenge = initiated["challengeId"].as_str().unwrap();
    let code = app.latest_code(&alice).await;
    let active = tokens(app.verify(&unusual.bff, challenge, &code).await).await;
    assert_eq!(app.me(&active.bff).await.status(), 200);
    // New York is known now.
    let known = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(known.body["twoFactorRequired"], false);
    assert!(app.notices().is_empty());
}

#[test]
fn a_reloaded_database_replaces_the_old_one_and_a_broken_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    write_database(&path, "GB");
    let locator = MmdbLocator::open(vec![path.clone()]).unwrap();
    let london = LONDON.parse().unwrap();
    assert_eq!(locator.locate(london).country.as_deref(), Some("GB"));
    assert_eq!(locator.locate(london).asn, Some(64500));
    assert!(
        locator
            .locate("10.0.0.1".parse().unwrap())
            .country
            .is_none()
    );

    write_database(&path, "IE");
    locator.reload().unwrap();
    assert_eq!(locator.locate(london).country.as_deref(), Some("IE"));

    std::fs::write(&path, b"not a database").unwrap();
    assert!(locator.reload().is_err());
    assert_eq!(locator.locate(london).country.as_deref(), Some("IE"));
}
