//! `FINHUB_NOTIFIER=live`: SMS through the gateway, e-mail through the SMTP relay, whatever
//! the message's purpose.

use async_trait::async_trait;

use super::email::Mailer;
use super::sms::SmsGateway;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::ports::{Notifier, NotifyError, Outgoing};

/// Real delivery: a code or notice by SMS through the gateway or by e-mail through the relay, by
/// its channel.
#[derive(Debug)]
pub struct LiveNotifier {
    /// Text messages.
    pub sms: SmsGateway,
    /// E-mails.
    pub email: Mailer,
}

#[async_trait]
impl Notifier for LiveNotifier {
    async fn send(&self, message: &Outgoing) -> Result<(), NotifyError> {
        match message.channel {
            TwoFactorMethod::Sms => self.sms.send(message).await,
            TwoFactorMethod::Email => self.email.send_message(message).await,
            // Nothing is ever queued for an app or a passkey; a row that says so was not
            // written by this service.
            TwoFactorMethod::Totp | TwoFactorMethod::Passkey => Err(NotifyError {
                reason: "no message goes to an authenticator app or a passkey".into(),
                permanent: true,
                maybe_delivered: false,
            }),
        }
    }
}
