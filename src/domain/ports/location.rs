//! Where a request comes from: the location port (`crate::geo` implements it).

use std::net::IpAddr;

use crate::domain::risk::location::Location;

/// Resolves addresses to locations (`crate::geo` reads MaxMind-format databases).
pub trait Locator: Send + Sync + 'static {
    /// The location of `ip`, or an empty one where it cannot be placed.
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
