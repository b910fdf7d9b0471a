//! What each purpose of message says: the one place a new kind of message gets its words.

use serde_json::{Map, Value, json};

use super::{CodeSeal, CodeTemplate, SealedFor};
use crate::domain::audit::rfc3339;
use crate::domain::credentials::challenge::OtpCode;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::credentials::lockdown::LockdownLinks;
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
    /// The notice's lockdown link could not be sealed (no random source).
    Unsealable,
}

impl Unrenderable {
    /// The reason audited and stored for the message given up on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::Unsealable => "unsealable",
        }
    }
}

/// Turns messages of the outbox into what the notifier sends.
pub struct Renderer {
    seal: CodeSeal,
    template: CodeTemplate,
    links: LockdownLinks,
}

impl Renderer {
    pub fn new(seal: CodeSeal, template: CodeTemplate, links: LockdownLinks) -> Self {
        Self {
            seal,
            template,
            links,
        }
    }

    pub fn seal(&self) -> &CodeSeal {
        &self.seal
    }

    pub fn links(&self) -> &LockdownLinks {
        &self.links
    }

    pub fn render(&self, message: &Message) -> Result<Outgoing, Unrenderable> {
        let (subject, text, record) = match &message.content {
            Content::Code(code) => self.code(message, code)?,
            Content::ResetCode(reset) => self.reset_code(message, reset)?,
            Content::Notice(notice) => {
                let link = self.lockdown_link(message)?;
                notice_words(message, notice, link.as_deref())
            }
            Content::Account(change) => {
                let link = self.lockdown_link(message)?;
                account_words(message, *change, link.as_deref())
            }
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

    /// A fresh "this wasn't me" link, working seven days from the notice, for a notice to the
    /// profile's mailbox ([`Message::lockdown_link`]); none in a text message, where a link is
    /// what phishing looks like.
    fn lockdown_link(&self, message: &Message) -> Result<Option<String>, Unrenderable> {
        if !message.lockdown_link || message.channel != TwoFactorMethod::Email {
            return Ok(None);
        }
        self.links
            .link(&message.customer_id, message.created_at)
            .map(Some)
            .map_err(|_| Unrenderable::Unsealable)
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
    lockdown: Option<&str>,
) -> (&'static str, String, Map<String, Value>) {
    let facts = &notice.facts;
    let place = facts.country.as_deref().unwrap_or("an unknown place");
    let device = facts.device.as_deref().unwrap_or("an unrecognised device");
    let text = format!(
        "New sign-in to your FinHub account from {place}, on {device}, at {} UTC. {}",
        rfc3339(message.created_at),
        not_you(lockdown, "change your password and contact FinHub")
    );
    let mut record = fields(json!({
        "kind": message.content.purpose(),
        "notice": UNUSUAL_LOGIN,
        "noticeId": message.id,
        "flags": facts.flags,
    }));
    with_lockdown(&mut record, lockdown);
    ("A new sign-in to your FinHub account", text, record)
}

/// What the customer does if it was not them: follow the lockdown link when the message has
/// one, else `otherwise`.
fn not_you(lockdown: Option<&str>, otherwise: &str) -> String {
    match lockdown {
        Some(link) => format!(
            "If this was not you, stop whoever it is at once: {link} ends every sign-in and locks your account until you reset your password (the link works once, for 7 days)."
        ),
        None => format!("If this was not you, {otherwise}."),
    }
}

fn with_lockdown(record: &mut Map<String, Value>, lockdown: Option<&str>) {
    if let Some(link) = lockdown {
        record.insert("lockdownUrl".into(), link.into());
    }
}

/// A change to how the customer signs in, told by what changed and when.
fn account_words(
    message: &Message,
    change: AccountChange,
    lockdown: Option<&str>,
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
        AccountChange::LockedDown => (
            "Your FinHub account is locked down",
            "As you asked, every sign-in to your FinHub account was ended, any sign-in method or recovery code added since the notice you answered, or while someone was signed in, was removed, and the account locked; reset your password to unlock it. The lockdown began".to_owned(),
        ),
        AccountChange::RecoveryCodeUsed { remaining } => (
            "A FinHub recovery code was used",
            format!(
                "A recovery code was used to sign in to your FinHub account ({remaining} left)"
            ),
        ),
    };
    let text = match change {
        AccountChange::LockedDown => format!(
            "{what} at {} UTC. If you did not ask for it, reset your password all the same, and contact FinHub.",
            rfc3339(message.created_at)
        ),
        _ => format!(
            "{what} at {} UTC. {}",
            rfc3339(message.created_at),
            not_you(lockdown, "reset your password and contact FinHub at once")
        ),
    };
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
    with_lockdown(&mut record, lockdown);
    (subject, text, record)
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
