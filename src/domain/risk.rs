//! Unusual logins: what makes one unusual against the customer's own history, and what the
//! service does about it (`FINHUB_RISK_ACTION`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::location::{Coordinates, Location};

/// Why a login was judged unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskFlag {
    NewCountry,
    NewNetwork,
    NewDevice,
    ImpossibleTravel,
}

impl RiskFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewCountry => "NEW_COUNTRY",
            Self::NewNetwork => "NEW_NETWORK",
            Self::NewDevice => "NEW_DEVICE",
            Self::ImpossibleTravel => "IMPOSSIBLE_TRAVEL",
        }
    }
}

/// What a flagged login triggers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskAction {
    /// The audit trail and the customer's security history only.
    Record,
    /// Also tell the customer, once per new signal.
    #[default]
    Notify,
    /// Also require a code (by e-mail for customers without 2FA) before the session is active.
    StepUp,
}

/// Faster than this between two located logins is impossible travel.
pub const MAX_TRAVEL_KMH: f64 = 1000.0;

/// The customer's past completed logins, as far as they matter here.
#[derive(Debug, Clone, Default)]
pub struct LoginHistory {
    /// Whether they completed any login before: without a baseline nothing is unusual.
    pub completed_before: bool,
    pub countries: Vec<String>,
    pub networks: Vec<u32>,
    /// The last completed login that had coordinates.
    pub last_located: Option<(OffsetDateTime, Coordinates)>,
}

/// The flags of a login from `location` at `at`, on a device known (`Some(true)`), new
/// (`Some(false)`) or not named (`None`).
pub fn assess(
    history: &LoginHistory,
    location: &Location,
    device_known: Option<bool>,
    at: OffsetDateTime,
) -> Vec<RiskFlag> {
    if !history.completed_before {
        return Vec::new();
    }
    let mut flags = Vec::new();
    if location
        .country
        .as_ref()
        .is_some_and(|c| !history.countries.contains(c))
    {
        flags.push(RiskFlag::NewCountry);
    }
    if location
        .asn
        .is_some_and(|asn| !history.networks.contains(&asn))
    {
        flags.push(RiskFlag::NewNetwork);
    }
    if device_known == Some(false) {
        flags.push(RiskFlag::NewDevice);
    }
    if let (Some((then, there)), Some(here)) = (history.last_located, location.coordinates) {
        let hours = (at - then).as_seconds_f64().max(1.0) / 3600.0;
        if there.distance_km(here) / hours > MAX_TRAVEL_KMH {
            flags.push(RiskFlag::ImpossibleTravel);
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    const LONDON: Coordinates = Coordinates {
        latitude: 51.5074,
        longitude: -0.1278,
    };
    const MANCHESTER: Coordinates = Coordinates {
        latitude: 53.4808,
        longitude: -2.2426,
    };
    const NEW_YORK: Coordinates = Coordinates {
        latitude: 40.7128,
        longitude: -74.0060,
    };

    fn at(country: &str, asn: u32, where_: Coordinates) -> Location {
        Location {
            country: Some(country.into()),
            asn: Some(asn),
            coordinates: Some(where_),
        }
    }

    #[test]
    fn nothing_is_unusual_without_a_baseline() {
        let t = OffsetDateTime::UNIX_EPOCH;
        assert!(
            assess(
                &LoginHistory::default(),
                &at("US", 1, NEW_YORK),
                Some(false),
                t
            )
            .is_empty()
        );
    }

    #[test]
    fn each_signal_against_the_customers_own_history() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let history = LoginHistory {
            completed_before: true,
            countries: vec!["GB".into()],
            networks: vec![64500],
            last_located: Some((t0, LONDON)),
        };
        let later = t0 + Duration::hours(1);
        assert!(assess(&history, &at("GB", 64500, MANCHESTER), Some(true), later).is_empty());
        assert_eq!(
            assess(&history, &at("GB", 64501, MANCHESTER), None, later),
            [RiskFlag::NewNetwork]
        );
        assert_eq!(
            assess(&history, &at("US", 64502, NEW_YORK), Some(false), later),
            [
                RiskFlag::NewCountry,
                RiskFlag::NewNetwork,
                RiskFlag::NewDevice,
                RiskFlag::ImpossibleTravel
            ]
        );
        // London to New York in ten hours is a flight, not impossible.
        let flight = assess(
            &history,
            &at("US", 64502, NEW_YORK),
            Some(true),
            t0 + Duration::hours(10),
        );
        assert!(!flight.contains(&RiskFlag::ImpossibleTravel));
        // No location database: only the device can be new.
        assert_eq!(
            assess(&history, &Location::default(), Some(false), later),
            [RiskFlag::NewDevice]
        );
    }
}
