//! Where a request comes from, as far as an IP location database tells.

use std::net::IpAddr;

/// What the location database knows of an address; every part may be missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Location {
    /// ISO 3166 alpha-2.
    pub country: Option<String>,
    /// The network's autonomous system number.
    pub asn: Option<u32>,
    /// Where the address is, when the database places it (city or better).
    pub coordinates: Option<Coordinates>,
}

/// A point on the Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// North positive.
    pub latitude: f64,
    /// East positive.
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

pub use crate::domain::ports::Locator;

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
