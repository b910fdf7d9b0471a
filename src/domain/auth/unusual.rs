//! What a login knows of its client and how unusual it is for the customer: the device known
//! only by its keyed hash, the address located, the judgement from the customer's own history,
//! and the notice an unusual sign-in sends.

use super::AuthService;
use crate::domain::customers::Customer;
use crate::domain::delivery::message::{Message, NoticeFacts};
use crate::domain::error::AuthError;
use crate::domain::risk::client::{ClientContext, Device};
use crate::domain::risk::device::describe_user_agent;
use crate::domain::risk::location::Location;
use crate::domain::risk::{self, DeviceStanding, Judgement, LoginHistory, Placement, RiskFlag};

impl AuthService {
    /// The client as the rest of the login sees it: the device known only by its keyed hash,
    /// and the address located.
    pub(super) fn prepared(&self, client: &ClientContext) -> ClientContext {
        let device = client.device.as_ref().map(|d| Device {
            fingerprint: self.policies.devices.hash(&d.fingerprint),
            name: d.name.clone(),
            hashed_before: self.policies.devices.previous_hashes(&d.fingerprint),
        });
        let mut client = client.clone().with_device(device);
        if let Some(ip) = client.ip {
            client.location = self.locator.locate(ip);
        }
        client
    }

    /// How unusual this login is for the customer, from their own history. Without a location
    /// database and a device, the customer's devices are still read: leaving `device` out must
    /// not make a login look usual. `read`: the device's standing, if read already.
    pub(super) async fn judge(
        &self,
        customer: &Customer,
        client: &mut ClientContext,
        read: Option<DeviceStanding>,
        now: time::OffsetDateTime,
    ) -> Result<Judgement, AuthError> {
        let placement = if !self.locator.configured() {
            Placement::Unknowable
        } else if client.location == Location::default() {
            Placement::Unplaced
        } else {
            Placement::Placed(client.location.clone())
        };
        // A device is known once a login on it completes, which also sets `last_login_at`:
        // before the first, no device can be, and nothing needs reading.
        let device = match (customer.last_login_at, client.device.as_mut()) {
            (None, Some(device)) => {
                device.hashed_before.clear();
                DeviceStanding::New
            }
            (None, None) => DeviceStanding::Unnamed {
                others_known: false,
            },
            (Some(_), _) => self.device_standing(customer, client, read).await?,
        };
        let history = if placement == Placement::Unknowable {
            LoginHistory {
                completed_before: customer.last_login_at.is_some(),
                ..LoginHistory::default()
            }
        } else {
            self.store.login_history(&customer.id).await?
        };
        Ok(risk::assess(&history, &placement, device, now))
    }

    /// Whether the customer knows this device (under the current key: `read`, if read already).
    /// One known only under a previous audit key is known too, and left marked for the store to
    /// move to its current hash; otherwise the mark is cleared, so that the store looks for
    /// nothing.
    async fn device_standing(
        &self,
        customer: &Customer,
        client: &mut ClientContext,
        read: Option<DeviceStanding>,
    ) -> Result<DeviceStanding, AuthError> {
        let standing = match read {
            Some(standing) => standing,
            None => {
                let fingerprint = client.device.as_ref().map(|d| d.fingerprint.as_str());
                self.store
                    .device_standing(&customer.id, fingerprint)
                    .await?
            }
        };
        let Some(device) = client.device.as_mut() else {
            return Ok(standing);
        };
        let hashed_before = std::mem::take(&mut device.hashed_before);
        if standing != DeviceStanding::New {
            return Ok(standing);
        }
        for hash in hashed_before {
            if self
                .store
                .device_standing(&customer.id, Some(&hash))
                .await?
                == DeviceStanding::Known
            {
                device.hashed_before = vec![hash];
                return Ok(DeviceStanding::Known);
            }
        }
        Ok(standing)
    }

    /// The e-mail telling the customer about an unusual sign-in, queued in the transaction that
    /// starts the session. Once per new signal: the same new country, network or device is not
    /// announced again once a notice of it went out (or while one waits). It describes the
    /// sign-in by what the server saw (country, browser and system from the user agent), never
    /// by the name the client gave its device.
    pub(super) fn notice(
        &self,
        customer: &Customer,
        client: &ClientContext,
        flags: &[RiskFlag],
        now: time::OffsetDateTime,
    ) -> Message {
        let location = &client.location;
        let signal: Vec<String> = flags
            .iter()
            .map(|flag| {
                let what = match flag {
                    RiskFlag::NewCountry => location.country.clone().unwrap_or_default(),
                    RiskFlag::NewNetwork => location.asn.map(|a| a.to_string()).unwrap_or_default(),
                    RiskFlag::NewDevice => client
                        .device
                        .as_ref()
                        .map(|d| d.fingerprint.clone())
                        .unwrap_or_default(),
                    RiskFlag::ImpossibleTravel => format!("{now}"),
                };
                format!("{}:{what}", flag.as_str())
            })
            .collect();
        Message::notice(
            customer,
            signal.join("|"),
            NoticeFacts {
                country: location.country.clone(),
                device: client.user_agent.as_deref().and_then(describe_user_agent),
                flags: flags.iter().map(|f| f.as_str().to_owned()).collect(),
            },
            now,
        )
    }
}
