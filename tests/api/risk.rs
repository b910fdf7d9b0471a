//! Unusual logins against a location database the test builds: new country, new network, new
//! device, impossible travel; and each `FINHUB_RISK_ACTION`.

use std::path::{Path, PathBuf};

use finhub_auth::domain::risk::RiskAction;
use finhub_auth::domain::risk::location::Locator as _;
use finhub_auth::geo::MmdbLocator;
use reqwest::Response;
use serde::Serialize;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Customer, PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with, tokens,
};

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

    /// A login naming the device with this fingerprint, or none.
    async fn login_with_device(&self, customer: &Customer, fingerprint: Option<&str>) -> Response {
        let device = fingerprint.map(|f| json!({"fingerprint": f, "name": "My laptop"}));
        self.login_from_browser(customer, device).await
    }

    async fn last_flags(&self) -> Value {
        let logins = self.audit_of_kind("login.succeeded").await;
        logins.last().unwrap()["details"]["flags"].clone()
    }

    pub(crate) async fn get_json(&self, path: &str, bearer: &str) -> Value {
        let response = self.client.get(self.url(path)).bearer_auth(bearer).send();
        response.await.unwrap().json().await.unwrap()
    }

    /// The security notices in the outbox file, once the worker has delivered what is due.
    async fn notices(&self) -> Vec<Value> {
        self.services.courier.deliver_due().await.unwrap();
        self.notice_lines()
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
    assert!(app.notices().await.is_empty(), "record only");

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
        app.notices().await.is_empty(),
        "the same country and network: no notice"
    );
    app.clock.advance(time::Duration::hours(12));
    tokens(app.login_at(&alice, NEW_YORK).await).await;
    tokens(app.login_at(&alice, NEW_YORK).await).await;
    let notices = app.notices().await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["flags"], json!(["NEW_COUNTRY", "NEW_NETWORK"]));
    assert!(notices[0]["text"].as_str().unwrap().contains("from US"));
}

on_both_stores!(step_up_asks_a_customer_without_2fa_for_an_emailed_code);
async fn step_up_asks_a_customer_without_2fa_for_an_emailed_code(backend: Backend) {
    let (app, _db) = app_with(backend, RiskAction::StepUp).await;
    let alice = app.create_customer("alice", None).await;
    // No baseline yet: the first login cannot be judged, so it needs the code too.
    let first = tokens(app.login_at(&alice, LONDON).await).await;
    assert_eq!(first.body["twoFactorRequired"], true);
    app.step_up(&alice, &first).await;
    let usual = tokens(app.login_at(&alice, LONDON).await).await;
    assert_eq!(usual.body["twoFactorRequired"], false);
    app.clock.advance(time::Duration::hours(12));
    let unusual = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(unusual.body["twoFactorRequired"], true);
    let me: Value = app.me(&unusual.bff).await.json().await.unwrap();
    assert!(me.get("email").is_none(), "the restricted view only: {me}");
    app.step_up(&alice, &unusual).await;
    // New York is known now.
    let known = tokens(app.login_at(&alice, NEW_YORK).await).await;
    assert_eq!(known.body["twoFactorRequired"], false);
    // Step-up tells the customer too: the one unusual login, once.
    let notices = app.notices().await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["flags"], json!(["NEW_COUNTRY", "NEW_NETWORK"]));
}

impl TestApp {
    /// Completes a stepped-up login with the code e-mailed for it.
    async fn step_up(&self, customer: &Customer, pending: &crate::helpers::Tokens) {
        let initiated: Value = self.initiate(&pending.bff).await.json().await.unwrap();
        assert_eq!(initiated["method"], "EMAIL");
        let challenge = initiated["challengeId"].as_str().unwrap();
        let code = self.latest_code(customer).await;
        let active = tokens(self.verify(&pending.bff, challenge, &code).await).await;
        assert_eq!(self.me(&active.bff).await.status(), 200);
    }
}

on_both_stores!(an_address_the_location_database_cannot_place_is_unusual);
/// The attack: logging in from an address no configured database knows (a fresh hosting range,
/// an anonymiser) used to carry no location signal at all, so nothing was flagged.
async fn an_address_the_location_database_cannot_place_is_unusual(backend: Backend) {
    let (app, _db) = app_with(backend, RiskAction::Record).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_at(&alice, LONDON).await).await;
    app.clock.advance(time::Duration::hours(1));
    tokens(app.login_at(&alice, "100.64.0.10").await).await;
    assert_eq!(app.last_flags().await, json!(["NEW_COUNTRY"]));
}

on_both_stores!(under_step_up_leaving_every_signal_out_still_needs_the_code);
/// The attack: without a location database the device is the only signal, and the client
/// writes it; a thief who leaves `device` out used to be waved through, and the answer told
/// them whether they had been flagged.
async fn under_step_up_leaving_every_signal_out_still_needs_the_code(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.risk.action = RiskAction::StepUp).await;
    let alice = app.create_customer("alice", None).await;
    let first = tokens(app.login_with_device(&alice, None).await).await;
    assert_eq!(first.body["twoFactorRequired"], true, "no baseline");
    app.step_up(&alice, &first).await;
    // A baseline, but still no device named and no location database: nothing to judge by.
    let blind = tokens(app.login_with_device(&alice, None).await).await;
    assert_eq!(blind.body["twoFactorRequired"], true, "no usable signal");
    app.step_up(&alice, &blind).await;
    // A device, completed once, is a signal: the same device then passes.
    let named = tokens(app.login_with_device(&alice, Some("laptop-1")).await).await;
    assert_eq!(named.body["twoFactorRequired"], true, "a new device");
    app.step_up(&alice, &named).await;
    let known = tokens(app.login_with_device(&alice, Some("laptop-1")).await).await;
    assert_eq!(known.body["twoFactorRequired"], false);
    // Leaving the device out now that the customer has a known one is a new device.
    let hidden = tokens(app.login_with_device(&alice, None).await).await;
    assert_eq!(hidden.body["twoFactorRequired"], true);
}

on_both_stores!(leaving_the_device_out_is_a_new_device_for_a_customer_with_known_ones);
async fn leaving_the_device_out_is_a_new_device_for_a_customer_with_known_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_customer("alice", None).await;
    tokens(app.login_with_device(&alice, Some("laptop-1")).await).await;
    tokens(app.login_with_device(&alice, Some("laptop-1")).await).await;
    assert_eq!(app.last_flags().await, json!([]));
    tokens(app.login_with_device(&alice, None).await).await;
    assert_eq!(app.last_flags().await, json!(["NEW_DEVICE"]));
    let notices = app.notices().await;
    assert_eq!(notices.len(), 1, "notify is the default: {notices:?}");
    assert_eq!(notices[0]["flags"], json!(["NEW_DEVICE"]));
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

on_both_stores!(where_every_customer_must_enrol_an_unusual_login_proves_the_mailbox_first);
/// The attack: a thief with a stolen password, signing in from somewhere new, enrolling their
/// own authenticator app as the customer's only factor. An unusual login is stepped up by the
/// e-mailed code first; only a usual one enrols.
async fn where_every_customer_must_enrol_an_unusual_login_proves_the_mailbox_first(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.risk.action = RiskAction::StepUp;
        s.two_factor.require = true;
    })
    .await;
    let alice = app.create_customer("alice", None).await;
    let unusual = tokens(app.login_with_device(&alice, Some("thief-laptop")).await).await;
    assert_eq!(unusual.body["twoFactorRequired"], true);
    assert!(unusual.body.get("enrolmentRequired").is_none());
    let me: serde_json::Value = app.me(&unusual.bff).await.json().await.unwrap();
    assert_eq!(me["session"]["state"], "TWO_FACTOR_PENDING");
    assert_problem(
        app.post_json(
            "/api/v1/customers/me/factors",
            &serde_json::json!({"method": "TOTP"}),
            Some(&unusual.bff),
        )
        .await,
        403,
        "TWO_FACTOR_REQUIRED",
    )
    .await;
}
