//! Security events for FinHub's fraud systems: each audit event of a chosen kind is queued in
//! the transaction that appends it and delivered at least once, signed, by the delivery worker
//! (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`). The body is
//! the audit event itself, which never holds a secret: `{"type", "timestamp", "data"}`.

use std::collections::HashSet;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::outcome::ClaimToken;
use crate::domain::audit::{AuditEvent, AuditKind, rfc3339};

/// The kinds sent unless `FINHUB_WEBHOOK_EVENTS` says otherwise.
pub const DEFAULT_WEBHOOK_EVENTS: &str = "login.succeeded,login.failed,account.locked,account.lockdown,session.refresh_reused,password.changed,password.reset,factor.added,factor.removed";

/// Which audit kinds go to the webhook; none when no webhook is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookKinds(HashSet<AuditKind>);

impl WebhookKinds {
    /// No webhook: nothing is queued.
    pub fn none() -> Self {
        Self::default()
    }

    /// A comma-separated list of audit kinds (`login.failed,account.locked`); an unknown kind
    /// is named in the error.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                serde_json::from_value::<AuditKind>(Value::String(name.to_owned()))
                    .map_err(|_| format!("`{name}` is not an audit kind"))
            })
            .collect::<Result<HashSet<_>, _>>()
            .map(Self)
    }

    /// Whether events of `kind` are sent.
    pub fn sends(&self, kind: AuditKind) -> bool {
        self.0.contains(&kind)
    }

    /// Whether any kind is sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An event waiting in the webhook outbox, as a worker claimed it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The audit event's id: `webhook-id`, the same on every attempt, so the receiver can
    /// take each event once.
    pub id: String,
    /// The audit kind, for logs and metrics.
    pub kind: String,
    /// The exact body to sign and send.
    pub body: String,
    /// Not sent after this: retried for a day, then given up on.
    pub expires_at: OffsetDateTime,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The claim this worker holds.
    pub claim: ClaimToken,
}

impl Webhook {
    /// How long an event is retried before it is given up on.
    pub const LIFETIME: Duration = Duration::hours(24);

    /// The body of `event`: its kind as `type`, its time, and everything else it records as
    /// `data` (who, from where, the details), which by the audit trail's rule holds no secret.
    pub fn body_of(event: &AuditEvent) -> String {
        let mut data = match serde_json::to_value(event) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        data.remove("kind");
        data.remove("at");
        json!({
            "type": event.kind.as_str(),
            "timestamp": rfc3339(event.at),
            "data": data,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::Outcome;
    use time::macros::datetime;

    #[test]
    fn kinds_are_parsed_from_a_list_and_an_unknown_one_is_named() {
        let kinds = WebhookKinds::parse(DEFAULT_WEBHOOK_EVENTS).unwrap();
        assert!(kinds.sends(AuditKind::LoginFailed));
        assert!(kinds.sends(AuditKind::AccountLockdown));
        assert!(!kinds.sends(AuditKind::TwoFactorInitiated));
        let error = WebhookKinds::parse("login.failed, nonsense").unwrap_err();
        assert!(error.contains("`nonsense`"), "{error}");
        assert!(WebhookKinds::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn the_body_is_the_event_under_its_type_and_time() {
        let event = AuditEvent::new(
            AuditKind::LoginFailed,
            Outcome::Failure,
            datetime!(2026-12-04 12:00 UTC),
        )
        .reason("invalid_credentials")
        .detail("attempt", 3);
        let body: Value = serde_json::from_str(&Webhook::body_of(&event)).unwrap();
        assert_eq!(body["type"], "login.failed");
        assert_eq!(body["timestamp"], "2026-12-04T12:00:00Z");
        assert_eq!(body["data"]["id"], event.id.as_str());
        assert_eq!(body["data"]["outcome"], "failure");
        assert_eq!(body["data"]["reason"], "invalid_credentials");
        assert_eq!(body["data"]["details"]["attempt"], 3);
        assert!(body["data"].get("kind").is_none());
    }
}
