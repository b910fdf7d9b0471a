//! `FINHUB_NOTIFIER=live`: codes by SMS through the gateway and by e-mail through the SMTP
//! relay; security notices by e-mail.

use async_trait::async_trait;

use super::email::Mailer;
use super::sms::SmsGateway;
use crate::domain::customer::TwoFactorMethod;
use crate::domain::ports::{CodeMessage, Notifier, NotifyError, SecurityNotice};

#[derive(Debug)]
pub struct LiveNotifier {
    pub sms: SmsGateway,
    pub email: Mailer,
}

#[async_trait]
impl Notifier for LiveNotifier {
    async fn send(&self, message: &CodeMessage) -> Result<(), NotifyError> {
        match message.channel {
            TwoFactorMethod::Sms => self.sms.send(message).await,
            TwoFactorMethod::Email => self.email.send_code(message).await,
        }
    }

    async fn send_notice(&self, notice: &SecurityNotice) -> Result<(), NotifyError> {
        self.email.send_notice(notice).await
    }
}
