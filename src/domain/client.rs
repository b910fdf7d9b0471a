//! Who is on the other end of a request, as far as security monitoring is concerned.

use std::net::IpAddr;

use super::location::Location;

/// The device a customer says they are on. Fingerprints are the client's own opaque strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub fingerprint: String,
    pub name: Option<String>,
}

impl Device {
    pub const MAX_FINGERPRINT: usize = 512;
    pub const MAX_NAME: usize = 128;
}

/// The network and device facts recorded with every authentication event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientContext {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub device: Option<Device>,
    /// Where `ip` is, when a location database is configured (filled in at login).
    pub location: Location,
}

impl ClientContext {
    /// User agents are kept to this many characters; longer ones are cut.
    pub const MAX_USER_AGENT: usize = 512;

    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(Self::MAX_USER_AGENT).collect()),
            device: None,
            location: Location::default(),
        }
    }

    pub fn with_device(mut self, device: Option<Device>) -> Self {
        self.device = device;
        self
    }
}
