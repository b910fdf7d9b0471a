//! What each purpose of message says: the one place a new kind of message gets its words.

use serde_json::{Map, Value, json};

use super::{CodeSeal, CodeTemplate, SealedFor};
use crate::domain::audit::rfc3339;
use crate::domain::credentials::challenge::OtpCode;
use crate::domain::delivery::message::{
    AccountChange, CodeContent, Content, Message, NOTICE_PURPOSE, NoticeContent,
    RESET_CODE_PURPOSE, ResetCodeContent,
};
use crate::domain::ports::Outgoing;

/// The notice kind of an unusual sign-in, as the outbox file and the audit trail name it.
pub const UNUSUAL_LOGIN: &str = "unusual_login";
/// The outbox file's `kind` of a code confirming a new phone or mailbox.
pub const FACTOR_CODE: &str = "factor_code";

/// Why a message cannot be put into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrenderable {
    /// The code was sealed under another key (or altered): no attempt can succeed.
    Unreadable,
}

/// Turns messages of the outbox into what the notifier sends.
pub struct Renderer {
    seal: CodeSeal,
    template: CodeTemplate,
}

impl Renderer {
    pub fn new(seal: CodeSeal, template: CodeTemplate) -> Self {
        Self { seal, template }
    }

    pub fn seal(&self) -> &CodeSeal {
        &self.seal
    }

    pub fn render(&self, message: &Message) -> Result<Outgoing, Unrenderable> {
        let (subject, text, record) = match &message.content {
            Content::Code(code) => self.code(message, code)?,
            Content::ResetCode(reset) => self.reset_code(message, reset)?,
            Content::Notice(notice) => notice_words(message, notice),
            Content::Account(change) => account_words(message, *change),
        };
        Ok(Outgoing {
            id: message.id.clone(),
            at: message.created_at,
            channel: message.channel,
            to: message.address.clone(),
            customer_id: message.customer_id.clone(),
            subject,
            text,
            record,
        })
    }

    /// A challenge's code; one confirming a new factor says so (`kind: factor_code`).
    fn code(
        &self,
        message: &Message,
        code: &CodeContent,
    ) -> Result<(&'static str, String, Map<String, Value>), Unrenderable> {
        let opened = self.open(message, code.challenge_id.as_str(), &code.sealed_code)?;
        let text = self.template.render(&opened, code.valid_for_minutes);
        let record = match &code.factor {
            Some(factor) => fields(json!({
                "kind": FACTOR_CODE,
                "factorId": factor.as_str(),
                "challengeId": code.challenge_id.as_str(),
                "code": opened.expose(),
            })),
            None => fields(json!({
                "challengeId": code.challenge_id.as_str(),
                "code": opened.expose(),
            })),
        };
        Ok(("Your FinHub security code", text, record))
    }

    /// A password reset's code.
    fn reset_code(
        &self,
        message: &Message,
        reset: &ResetCodeContent,
    ) -> Result<(&'static str, String, Map<String, Value>), Unrenderable> {
        let opened = self.open(message, reset.reset_id.as_str(), &reset.sealed_code)?;
        let text = format!(
            "Your FinHub password reset code is {}. It is valid for {} minutes. If you did not ask to reset your password, ignore this message: your password stays as it is.",
            opened.expose(),
            reset.valid_for_minutes
        );
        let record = fields(json!({
            "kind": RESET_CODE_PURPOSE,
            "resetId": reset.reset_id.as_str(),
            "code": opened.expose(),
        }));
        Ok(("Reset your FinHub password", text, record))
    }

    /// The sealed code of `subject`, opened for the message's channel and address.
    fn open(
        &self,
        message: &Message,
        subject: &str,
        sealed: &[u8],
    ) -> Result<OtpCode, Unrenderable> {
        let sealed_for = SealedFor {
            subject,
            channel: message.channel,
            address: &message.address,
        };
        self.seal
            .open(sealed, &sealed_for)
            .ok_or(Unrenderable::Unreadable)
    }
}

/// An unusual sign-in, told by what the server saw: country, browser and system.
fn notice_words(
    message: &Message,
    notice: &NoticeContent,
) -> (&'static str, String, Map<String, Value>) {
    let facts = &notice.facts;
    let place = facts.country.as_deref().unwrap_or("an unknown place");
    let device = facts.device.as_deref().unwrap_or("an unrecognised device");
    let text = format!(
        "New sign-in to your FinHub account from {place}, on {device}, at {} UTC. If this was not you, change your password and contact FinHub.",
        rfc3339(message.created_at)
    );
    let record = fields(json!({
        "kind": message.content.purpose(),
        "notice": UNUSUAL_LOGIN,
        "noticeId": message.id,
        "flags": facts.flags,
    }));
    ("A new sign-in to your FinHub account", text, record)
}

/// A change to how the customer signs in, told by what changed and when.
fn account_words(
    message: &Message,
    change: AccountChange,
) -> (&'static str, String, Map<String, Value>) {
    let (subject, what) = match change {
        AccountChange::PasswordChanged => (
            "Your FinHub password was changed",
            "Your FinHub password was changed".to_owned(),
        ),
        AccountChange::PasswordReset => (
            "Your FinHub password was reset",
            "Your FinHub password was reset and every sign-in ended".to_owned(),
        ),
        AccountChange::FactorAdded => (
            "A way to sign in was added to your FinHub account",
            "A second factor was added to your FinHub account".to_owned(),
        ),
        AccountChange::FactorRemoved => (
            "A way to sign in was removed from your FinHub account",
            "A second factor was removed from your FinHub account".to_owned(),
        ),
        AccountChange::RecoveryCodesCreated => (
            "New FinHub recovery codes",
            "New recovery codes were made for your FinHub account (any earlier ones no longer work)"
                .to_owned(),
        ),
        AccountChange::AccountLocked { until } => (
            "Your FinHub account is locked",
            match until {
                Some(until) => format!(
                    "Your FinHub account was locked after repeated failed sign-in attempts; it stays locked until {} UTC, or until you reset your password. The lock began",
                    rfc3339(until)
                ),
                None => "Your FinHub account was locked after repeated failed sign-in attempts; resetting your password clears the lock. The lock began".to_owned(),
            },
        ),
        AccountChange::RecoveryCodeUsed { remaining } => (
            "A FinHub recovery code was used",
            format!(
                "A recovery code was used to sign in to your FinHub account ({remaining} left)"
            ),
        ),
    };
    let text = format!(
        "{what} at {} UTC. If this was not you, reset your password and contact FinHub at once.",
        rfc3339(message.created_at)
    );
    let mut record = fields(json!({
        "kind": NOTICE_PURPOSE,
        "notice": change.as_str(),
        "noticeId": message.id,
    }));
    match change {
        AccountChange::RecoveryCodeUsed { remaining } => {
            record.insert("recoveryCodesRemaining".into(), remaining.into());
        }
        AccountChange::AccountLocked { until: Some(until) } => {
            record.insert("lockedUntil".into(), rfc3339(until).into());
        }
        _ => {}
    }
    (subject, text, record)
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
