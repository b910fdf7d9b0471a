//! Where a request comes from, as far as an IP location database tells.

use std::net::IpAddr;

/// What the location database knows of an address; every part may be missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166 alpha-2.
    pub country: Option<String>,
    /// The network's autonomous system number.
    pub asn: Option<u32>,
    pub coordinates: Option<Coordinates>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    /// Great-circle distance (haversine, mean Earth radius).
    pub fn distance_km(self, other: Self) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }
}

/// Resolves addresses to locations (`crate::geo` reads MaxMind-format databases).
pub trait Locator: Send + Sync + 'static {
    fn locate(&self, ip: IpAddr) -> Location;

    /// Whether a database is configured: then an address it cannot place is a signal.
    fn configured(&self) -> bool {
        true
    }

    /// What is wrong with the configured databases, for readiness (records that cannot be
    /// decoded, say); `None` while nothing is.
    fn trouble(&self) -> Option<String> {
        None
    }
}

/// No location database: every address is nowhere in particular.
#[derive(Debug, Default)]
pub struct Nowhere;

impl Locator for Nowhere {
    fn locate(&self, _ip: IpAddr) -> Location {
        Location::default()
    }

    fn configured(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_to_new_york_is_about_5570_km() {
        let london = Coordinates {
            latitude: 51.5074,
            longitude: -0.1278,
        };
        let new_york = Coordinates {
            latitude: 40.7128,
            longitude: -74.0060,
        };
        let d = london.distance_km(new_york);
        assert!((5550.0..5600.0).contains(&d), "{d}");
        assert!(london.distance_km(london) < 1e-9);
    }
}
