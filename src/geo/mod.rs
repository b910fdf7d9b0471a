//! Locating addresses with MaxMind-format databases (GeoLite2, DB-IP and compatible): an
//! implementation of the domain's [`Locator`]. Several files may be given (a City database and
//! an ASN database, say); each part of a location comes from the first file that has it.
//!
//! Databases are replaced every few weeks: [`MmdbLocator::reload`] reads the files again, and
//! [`watch`] calls it on SIGHUP and whenever a file's modification time changes
//! (`crate::reload`). A reload that fails keeps the databases already loaded.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use maxminddb::Reader;
use serde::Deserialize;

use crate::domain::risk::location::{Coordinates, Location, Locator};

/// The parts of a record this service reads, in GeoIP2's names; anything else is ignored.
/// Numbers are read in whatever width the file stores them: MMDB has several integer and
/// float types, and writers other than MaxMind's pick the narrowest that fits (an ASN as a
/// 16-bit integer is valid), which a decoder asking for one exact type would refuse.
#[derive(Debug, Default, Deserialize)]
struct Record {
    country: Option<Country>,
    registered_country: Option<Country>,
    location: Option<Place>,
    #[serde(default, deserialize_with = "any_width::unsigned")]
    autonomous_system_number: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Place {
    #[serde(default, deserialize_with = "any_width::float")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "any_width::float")]
    longitude: Option<f64>,
}

/// Numbers of any stored width, through `deserialize_any` (which hands over the stored type).
mod any_width {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    struct Unsigned;

    impl Visitor<'_> for Unsigned {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer of any width that fits 32 bits")
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            narrow(v, "does not fit 32 bits")
        }

        fn visit_u128<E: Error>(self, v: u128) -> Result<Self::Value, E> {
            narrow(v, "does not fit 32 bits")
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            narrow(v, "is not an unsigned 32-bit value")
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    /// `v` as a u32, or an error saying it `problem`.
    fn narrow<V, E>(v: V, problem: &str) -> Result<Option<u32>, E>
    where
        V: TryInto<u32> + Copy + fmt::Display,
        E: Error,
    {
        v.try_into()
            .map(Some)
            .map_err(|_| E::custom(format!("{v} {problem}")))
    }

    /// u16, u32, u64 or u128 (and a non-negative int32) as a u32.
    pub fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_any(Unsigned)
    }

    struct Float;

    impl Visitor<'_> for Float {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        // Coordinates are small: an integer one converts exactly.
        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    /// A double, a float or an integer, as an f64.
    pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(Float)
    }
}

/// One loaded database, and whether its records were found undecodable (said once per load).
struct Database {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
    failing: AtomicBool,
}

type Databases = Vec<Database>;

/// Locates addresses in MaxMind-format databases (country, network, coordinates), reloadable when
/// the files are replaced.
pub struct MmdbLocator {
    paths: Vec<PathBuf>,
    databases: RwLock<Arc<Databases>>,
    /// Records that could not be decoded, since start.
    decode_errors: AtomicU64,
}

impl std::fmt::Debug for MmdbLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmdbLocator")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn open_all(paths: &[PathBuf]) -> anyhow::Result<Databases> {
    paths
        .iter()
        .map(|path| {
            let reader = Reader::open_readfile(path)
                .with_context(|| format!("FINHUB_GEOIP_DB: cannot read {}", path.display()))?;
            Ok(Database {
                reader,
                path: path.clone(),
                failing: AtomicBool::new(false),
            })
        })
        .collect()
}

impl MmdbLocator {
    /// Loads every database in `paths`; an unreadable file is an error at start-up rather than a
    /// silent lack of location checks.
    pub fn open(paths: Vec<PathBuf>) -> anyhow::Result<Self> {
        let databases = open_all(&paths)?;
        Ok(Self {
            paths,
            databases: RwLock::new(Arc::new(databases)),
            decode_errors: AtomicU64::new(0),
        })
    }

    /// What readiness reports of the databases: the files whose records could not be decoded
    /// since they were loaded (every location from them is then missing), or `None`.
    pub fn trouble(&self) -> Option<String> {
        let failing: Vec<String> = self
            .current()
            .iter()
            .filter(|d| d.failing.load(Ordering::Relaxed))
            .map(|d| d.path.display().to_string())
            .collect();
        (!failing.is_empty()).then(|| {
            format!(
                "records cannot be decoded in {} ({} failed lookups)",
                failing.join(", "),
                self.decode_errors.load(Ordering::Relaxed)
            )
        })
    }

    /// Counts a record `database` could not decode, and says so once per load of the file.
    fn undecodable(&self, database: &Database, error: &maxminddb::MaxMindDbError) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("finhub_geoip_decode_errors_total").increment(1);
        if !database.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                path = %database.path.display(),
                error = %error,
                "location database records cannot be decoded: logins are not located from this file"
            );
        }
    }

    /// Reads the files again; on failure the databases already loaded stay in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let databases = Arc::new(open_all(&self.paths)?);
        *self
            .databases
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = databases;
        Ok(())
    }

    fn current(&self) -> Arc<Databases> {
        Arc::clone(
            &self
                .databases
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Locator for MmdbLocator {
    fn trouble(&self) -> Option<String> {
        MmdbLocator::trouble(self)
    }

    fn locate(&self, ip: IpAddr) -> Location {
        let mut location = Location::default();
        for database in self.current().iter() {
            // An address a database does not cover tells nothing; a record it cannot decode
            // tells nothing either, but is said (log, metric, readiness), never silent.
            let record = match database
                .reader
                .lookup(ip)
                .and_then(|r| r.decode::<Record>())
            {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(e) => {
                    self.undecodable(database, &e);
                    continue;
                }
            };
            let country = record
                .country
                .or(record.registered_country)
                .and_then(|c| c.iso_code);
            location.country = location.country.or(country);
            location.asn = location.asn.or(record.autonomous_system_number);
            let coordinates = record
                .location
                .and_then(|p| match (p.latitude, p.longitude) {
                    (Some(latitude), Some(longitude)) => Some(Coordinates {
                        latitude,
                        longitude,
                    }),
                    _ => None,
                });
            location.coordinates = location.coordinates.or(coordinates);
        }
        location
    }
}

/// Reloads `locator` on SIGHUP and when a file changes, for as long as it is polled.
pub async fn watch(locator: Arc<MmdbLocator>) {
    let paths = locator.paths.clone();
    crate::reload::watch("location database", paths, move || {
        let locator = Arc::clone(&locator);
        async move { locator.reload() }
    })
    .await;
}
