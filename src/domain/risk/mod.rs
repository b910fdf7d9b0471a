//! Unusual logins: what makes one unusual against the customer's own history, and what the
//! service does about it (`FINHUB_RISK_ACTION`).

pub mod client;
pub mod device;
pub mod location;
pub mod rate_limit;
pub mod refusals;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::risk::location::{Coordinates, Location};

/// Why a login was judged unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskFlag {
    /// A country none of the customer's completed logins came from, or an address no configured
    /// database can place.
    NewCountry,
    /// An autonomous system (ASN) none of the customer's completed logins came from.
    NewNetwork,
    /// A device no completed login was made on, or none named while the customer has known ones.
    NewDevice,
    /// Farther from the last located login than [`MAX_TRAVEL_KMH`] allows in the time between.
    ImpossibleTravel,
}

impl RiskFlag {
    /// Every flag (the API documents them as an enum).
    pub const ALL: [Self; 4] = [
        Self::NewCountry,
        Self::NewNetwork,
        Self::NewDevice,
        Self::ImpossibleTravel,
    ];

    /// The form the API, the audit trail and notices use.
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
    /// ISO 3166 alpha-2 codes of the countries completed logins came from.
    pub countries: Vec<String>,
    /// ASNs of the networks completed logins came from.
    pub networks: Vec<u32>,
    /// The last completed login that had coordinates.
    pub last_located: Option<(OffsetDateTime, Coordinates)>,
}

/// What a login says of its device, against the customer's known devices (those a completed
/// login was made on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStanding {
    /// A completed login was made on this device before.
    Known,
    /// A device named but never seen on a completed login.
    New,
    /// No device named. `others_known`: the customer has known devices, so leaving the device
    /// out is how a thief would hide a new one.
    Unnamed {
        /// Whether the customer has known devices, which makes leaving the device out suspicious.
        others_known: bool,
    },
}

impl DeviceStanding {
    /// The standing of a login whose device was `named` or not, given whether that device is
    /// among the customer's known ones and whether any is.
    pub fn of(named: bool, this_known: bool, any_known: bool) -> Self {
        match (named, this_known) {
            (true, true) => Self::Known,
            (true, false) => Self::New,
            (false, _) => Self::Unnamed {
                others_known: any_known,
            },
        }
    }
}

/// Where the login's address is, as far as the service can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// No location database is configured: the address is no signal.
    Unknowable,
    /// A configured database has no record of the address (or none it can read): unusual.
    Unplaced,
    /// Located by a configured database.
    Placed(Location),
}

/// The judgement of one login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Every signal that made the login unusual; empty for a usual one.
    pub flags: Vec<RiskFlag>,
    /// Nothing to judge the login by: the customer has no baseline, or the login offers no
    /// usable signal. Under `step-up` such a login needs the code, so that leaving signals out
    /// (or a customer who never completed a login) never skips the check.
    pub blind: bool,
}

impl Judgement {
    /// Whether `action` asks for a code before the session is active.
    pub fn needs_step_up(&self, action: RiskAction) -> bool {
        action == RiskAction::StepUp && (self.blind || !self.flags.is_empty())
    }

    /// Whether `action` tells the customer: `notify` and `step-up` both do, for a flagged login.
    pub fn tells_customer(&self, action: RiskAction) -> bool {
        action != RiskAction::Record && !self.flags.is_empty()
    }
}

/// Judges a login at `placement` on a `device` at `at` against the customer's `history`. It
/// fails closed: a device left out while the customer has known ones is a new device, and an
/// address a configured database cannot place is a new country.
pub fn assess(
    history: &LoginHistory,
    placement: &Placement,
    device: DeviceStanding,
    at: OffsetDateTime,
) -> Judgement {
    let usable_signal = !matches!(placement, Placement::Unknowable)
        || !matches!(
            device,
            DeviceStanding::Unnamed {
                others_known: false
            }
        );
    let blind = !history.completed_before || !usable_signal;
    if !history.completed_before {
        return Judgement {
            flags: Vec::new(),
            blind,
        };
    }
    let mut flags = Vec::new();
    let location = match placement {
        Placement::Placed(location) => Some(location),
        Placement::Unplaced => {
            flags.push(RiskFlag::NewCountry);
            None
        }
        Placement::Unknowable => None,
    };
    if let Some(location) = location {
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
    }
    if matches!(
        device,
        DeviceStanding::New | DeviceStanding::Unnamed { others_known: true }
    ) {
        flags.push(RiskFlag::NewDevice);
    }
    if let (Some((then, there)), Some(here)) =
        (history.last_located, location.and_then(|l| l.coordinates))
    {
        let hours = (at - then).as_seconds_f64().max(1.0) / 3600.0;
        if there.distance_km(here) / hours > MAX_TRAVEL_KMH {
            flags.push(RiskFlag::ImpossibleTravel);
        }
    }
    Judgement { flags, blind }
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

    fn placed(location: Location) -> Placement {
        Placement::Placed(location)
    }

    fn history() -> LoginHistory {
        LoginHistory {
            completed_before: true,
            countries: vec!["GB".into()],
            networks: vec![64500],
            last_located: Some((OffsetDateTime::UNIX_EPOCH, LONDON)),
        }
    }

    #[test]
    fn nothing_is_flagged_without_a_baseline_but_the_login_is_blind() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let judgement = assess(
            &LoginHistory::default(),
            &placed(at("US", 1, NEW_YORK)),
            DeviceStanding::New,
            t,
        );
        assert!(judgement.flags.is_empty());
        assert!(judgement.blind, "a first login has nothing to be judged by");
        assert!(judgement.needs_step_up(RiskAction::StepUp));
        assert!(!judgement.needs_step_up(RiskAction::Notify));
    }

    #[test]
    fn each_signal_against_the_customers_own_history() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let history = history();
        let later = t0 + Duration::hours(1);
        let flags =
            |place: Location, device, at| assess(&history, &placed(place), device, at).flags;
        assert!(flags(at("GB", 64500, MANCHESTER), DeviceStanding::Known, later).is_empty());
        assert_eq!(
            flags(
                at("GB", 64501, MANCHESTER),
                DeviceStanding::Unnamed {
                    others_known: false
                },
                later
            ),
            [RiskFlag::NewNetwork]
        );
        assert_eq!(
            flags(at("US", 64502, NEW_YORK), DeviceStanding::New, later),
            [
                RiskFlag::NewCountry,
                RiskFlag::NewNetwork,
                RiskFlag::NewDevice,
                RiskFlag::ImpossibleTravel
            ]
        );
        // London to New York in ten hours is a flight, not impossible.
        let flight = flags(
            at("US", 64502, NEW_YORK),
            DeviceStanding::Known,
            t0 + Duration::hours(10),
        );
        assert!(!flight.contains(&RiskFlag::ImpossibleTravel));
    }

    #[test]
    fn leaving_the_device_out_does_not_hide_a_new_one() {
        // The attack: a thief with the password omits `device`, so that no device is new.
        let judgement = assess(
            &history(),
            &Placement::Unknowable,
            DeviceStanding::Unnamed { others_known: true },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(judgement.flags, [RiskFlag::NewDevice]);
        assert!(judgement.tells_customer(RiskAction::Notify));
        assert!(judgement.tells_customer(RiskAction::StepUp));
        assert!(!judgement.tells_customer(RiskAction::Record));
    }

    #[test]
    fn a_login_without_any_usable_signal_is_blind() {
        // No location database and no device named, for a customer with no known device.
        let judgement = assess(
            &history(),
            &Placement::Unknowable,
            DeviceStanding::Unnamed {
                others_known: false,
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(judgement.flags.is_empty());
        assert!(judgement.blind);
        assert!(judgement.needs_step_up(RiskAction::StepUp));
        // A known device is a signal: the login is judged, and passes.
        let known = assess(
            &history(),
            &Placement::Unknowable,
            DeviceStanding::Known,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(known, Judgement::default());
    }

    #[test]
    fn an_address_the_database_cannot_place_is_unusual() {
        // The attack: a login from an address no configured database knows (a fresh hosting
        // range, an anonymiser) would otherwise carry no location signal at all.
        let judgement = assess(
            &history(),
            &Placement::Unplaced,
            DeviceStanding::Known,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(judgement.flags, [RiskFlag::NewCountry]);
        assert!(!judgement.blind);
    }
}
