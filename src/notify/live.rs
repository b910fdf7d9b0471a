//! `FINHUB_NOTIFIER=live`: SMS through the gateway, e-mail through the SMTP relay, whatever
//! the message's purpose.

use async_trait::async_trait;

use super::email::Mailer;
use super::sms::SmsGateway;
use crate::domain::customer::TwoFactorMethod;
use crate::domain::ports::{Notifier, NotifyError, Outgoing};

#[derive(Debug)]
pub struct LiveNotifier {
    pub sms: SmsGateway,
    pub email: Mailer,
}

#[async_trait]
impl Notifier for LiveNotifier {
    async fn send(&self, message: &Outgoing) -> Result<(), NotifyError> {
        match message.channel {
            TwoFactorMethod::Sms => self.sms.send(message).await,
            TwoFactorMethod::Email => self.email.send_message(message).await,
        }
    }
}
