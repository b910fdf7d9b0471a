//! Location databases written by other MMDB writers: numbers in the narrowest type that fits.

use std::path::Path;

use finhub_auth::domain::risk::location::Locator as _;
use finhub_auth::geo::MmdbLocator;
use serde::Serialize;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, spawn_app_with};

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
}

/// A record as a writer other than MaxMind's stores it: the ASN as a 16-bit unsigned integer
/// and the coordinates as single-precision floats, all valid MMDB.
#[derive(Serialize)]
struct NarrowRecord {
    country: Country,
    location: NarrowPlace,
    autonomous_system_number: u16,
}

#[derive(Serialize)]
struct NarrowPlace {
    latitude: f32,
    longitude: f32,
}

/// The same, with the ASN as a 64-bit integer.
#[derive(Serialize)]
struct WideRecord {
    country: Country,
    autonomous_system_number: u64,
}

/// A record whose ASN is no number at all.
#[derive(Serialize)]
struct BrokenRecord {
    country: Country,
    autonomous_system_number: &'static str,
}

fn write<R: Serialize>(path: &Path, records: &[(&str, R)]) {
    let mut writer = mmdb_writer::Writer::new("FinHub-Test-Other-Writer");
    for (net, record) in records {
        writer
            .insert(net.parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

/// The attack surface: a database from another writer used to be read as "no location" for
/// every address, silently, which turns every location check off.
#[test]
fn a_database_with_narrower_integers_than_maxminds_still_locates_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.mmdb");
    write(
        &narrow,
        &[(
            "203.0.113.0/24",
            NarrowRecord {
                country: Country { iso_code: "GB" },
                location: NarrowPlace {
                    latitude: 51.5,
                    longitude: -0.125,
                },
                autonomous_system_number: 64_500,
            },
        )],
    );
    let wide = dir.path().join("wide.mmdb");
    write(
        &wide,
        &[(
            "198.51.100.0/24",
            WideRecord {
                country: Country { iso_code: "US" },
                autonomous_system_number: 4_200_000_000,
            },
        )],
    );
    let locator = MmdbLocator::open(vec![narrow, wide]).unwrap();

    let london = locator.locate("203.0.113.10".parse().unwrap());
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.asn, Some(64_500));
    let coordinates = london.coordinates.expect("coordinates");
    assert!((coordinates.latitude - 51.5).abs() < 1e-6);
    assert!((coordinates.longitude + 0.125).abs() < 1e-6);

    let new_york = locator.locate("198.51.100.10".parse().unwrap());
    assert_eq!(new_york.country.as_deref(), Some("US"));
    assert_eq!(new_york.asn, Some(4_200_000_000));
    assert_eq!(locator.trouble(), None);
}

/// Records a configured database cannot decode are said (readiness, log, metric), never taken
/// silently for addresses it does not know.
#[test]
fn undecodable_records_are_reported_not_silently_taken_for_no_location() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.mmdb");
    write(
        &broken,
        &[(
            "203.0.113.0/24",
            BrokenRecord {
                country: Country { iso_code: "GB" },
                autonomous_system_number: "AS64500",
            },
        )],
    );
    let locator = MmdbLocator::open(vec![broken.clone()]).unwrap();
    assert_eq!(locator.trouble(), None, "nothing failed yet");
    locator.locate("203.0.113.10".parse().unwrap());
    locator.locate("203.0.113.11".parse().unwrap());
    let trouble = locator.trouble().expect("the failure is reported");
    assert!(trouble.contains(&broken.display().to_string()), "{trouble}");
    assert!(trouble.contains("2 failed lookups"), "{trouble}");
}

/// The same, as operators see it: the operations address's readiness names the file.
#[tokio::test]
async fn the_operations_readiness_names_a_location_database_it_cannot_decode() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.mmdb");
    write(
        &broken,
        &[(
            "203.0.113.0/24",
            BrokenRecord {
                country: Country { iso_code: "GB" },
                autonomous_system_number: "AS64500",
            },
        )],
    );
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.ops_listen = Some("127.0.0.1:0".parse().unwrap());
        s.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.risk.geoip_db = Some(vec![broken.clone()]);
    })
    .await;
    let ops = app.ops_base.clone().expect("an operations address");
    let readiness = || async {
        let ready: Value = app
            .client
            .get(format!("{ops}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready["details"]["locationDatabase"].clone()
    };
    assert_eq!(readiness().await, "ok");

    let alice = app.create_customer("alice", None).await;
    app.client
        .post(app.url("/api/v1/auth/token"))
        .header("x-forwarded-for", "203.0.113.10")
        .json(&json!({"username": alice.username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let reported = readiness().await;
    let reported = reported.as_str().unwrap_or_default();
    assert!(reported.contains("cannot be decoded"), "{reported}");
    assert!(
        reported.contains(&broken.display().to_string()),
        "{reported}"
    );
}
