//! Locating addresses with MaxMind-format databases (GeoLite2, DB-IP and compatible): an
//! implementation of the domain's [`Locator`]. Several files may be given (a City database and
//! an ASN database, say); each part of a location comes from the first file that has it.
//!
//! Databases are replaced every few weeks: [`MmdbLocator::reload`] reads the files again, and
//! [`spawn_reloader`] calls it on SIGHUP and whenever a file's modification time changes
//! (`crate::reload`). A reload that fails keeps the databases already loaded.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use maxminddb::Reader;
use serde::Deserialize;

use crate::domain::location::{Coordinates, Location, Locator};

/// The parts of a record this service reads, in GeoIP2's names; anything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct Record {
    country: Option<Country>,
    registered_country: Option<Country>,
    location: Option<Place>,
    autonomous_system_number: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Place {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

type Databases = Vec<Reader<Vec<u8>>>;

pub struct MmdbLocator {
    paths: Vec<PathBuf>,
    databases: RwLock<Arc<Databases>>,
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
            Reader::open_readfile(path)
                .with_context(|| format!("FINHUB_GEOIP_DB: cannot read {}", path.display()))
        })
        .collect()
}

impl MmdbLocator {
    pub fn open(paths: Vec<PathBuf>) -> anyhow::Result<Self> {
        let databases = open_all(&paths)?;
        Ok(Self {
            paths,
            databases: RwLock::new(Arc::new(databases)),
        })
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
    fn locate(&self, ip: IpAddr) -> Location {
        let mut location = Location::default();
        for database in self.current().iter() {
            // An address a database does not cover, or a record it cannot decode, tells nothing.
            let Ok(Some(record)) = database.lookup(ip).and_then(|r| r.decode::<Record>()) else {
                continue;
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

/// Reloads `locator` on SIGHUP and when a file changes.
pub fn spawn_reloader(locator: Arc<MmdbLocator>) {
    let paths = locator.paths.clone();
    crate::reload::spawn("location database", paths, move || {
        let locator = Arc::clone(&locator);
        async move { locator.reload() }
    });
}
