//! E-mail through an SMTP relay (lettre): STARTTLS (`smtp://`) or implicit TLS (`smtps://`),
//! with the URL's credentials; plain SMTP only to a loopback relay (`smtp://…?tls=none`).
//! Each message has a plain-text and an HTML body, a `Date` and a `Message-ID`.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{SUBMISSION_PORT, SUBMISSIONS_PORT};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};

use crate::domain::ports::{NotifyError, Outgoing};

/// Sends codes and notices by e-mail through the configured SMTP relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// Why the relay's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// Not a usable relay URL.
    #[error("FINHUB_SMTP_URL is not an smtp:// or smtps:// URL with a host")]
    Url,
    /// Unencrypted SMTP to a relay off this host would expose codes on the network.
    #[error("FINHUB_SMTP_URL: tls=none is allowed only for a relay on a loopback address")]
    Insecure,
    /// The sender address is not an e-mail address.
    #[error("FINHUB_SMTP_FROM is not an e-mail address")]
    From,
    /// The file of extra CAs for a private relay cannot be read.
    #[error("FINHUB_SMTP_CA_FILE cannot be read")]
    CaFile,
    /// The transport cannot be built from the URL.
    #[error("FINHUB_SMTP_URL: {0}")]
    Transport(#[from] lettre::transport::smtp::Error),
}

impl Mailer {
    /// `ca_file` (PEM) adds the CAs a private relay's certificate chains to, beside the public
    /// roots.
    pub fn new(
        url: &SecretString,
        from: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, MailerError> {
        let url = url::Url::parse(url.expose_secret()).map_err(|_| MailerError::Url)?;
        let host = url.host_str().ok_or(MailerError::Url)?.to_owned();
        let loopback = super::is_loopback(&url);
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let parameters = || -> Result<TlsParameters, MailerError> {
            let mut parameters = TlsParameters::builder(host.clone());
            if let Some(path) = ca_file {
                let pem = std::fs::read(path).map_err(|_| MailerError::CaFile)?;
                parameters = parameters.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(parameters.build_rustls()?)
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host);
        let builder = match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => plain
                .port(SUBMISSIONS_PORT)
                .tls(Tls::Wrapper(parameters()?)),
            ("smtp", None | Some("required")) => plain
                .port(SUBMISSION_PORT)
                .tls(Tls::Required(parameters()?)),
            ("smtp", Some("none")) if loopback => plain,
            ("smtp", Some("none")) => return Err(MailerError::Insecure),
            _ => return Err(MailerError::Url),
        };
        let builder = match url.port() {
            Some(port) => builder.port(port),
            None => builder,
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let builder = match (url.username(), url.password()) {
            ("", _) => builder,
            (user, password) => builder.credentials(Credentials::new(
                decode(user),
                decode(password.unwrap_or_default()),
            )),
        };
        Ok(Self {
            // Below the delivery worker's own bound, which is below its claim's lease.
            transport: builder.timeout(Some(super::SEND_TIMEOUT)).build(),
            from: from.parse().map_err(|_| MailerError::From)?,
        })
    }

    /// Sends one message, text and HTML; its id becomes the `Message-ID`, the same on every
    /// retry, so a retry after an unclear failure is recognisably the same mail.
    pub async fn send_message(&self, m: &Outgoing) -> Result<(), NotifyError> {
        let html = format!(
            "<!doctype html><html><body><p>{}</p></body></html>",
            html_escape(&m.text)
        );
        let id = format!("<{}@finhub-auth>", m.id);
        self.send(&m.to, m.subject, m.text.clone(), html, id).await
    }

    async fn send(
        &self,
        to: &str,
        subject: &str,
        text: String,
        html: String,
        message_id: String,
    ) -> Result<(), NotifyError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| NotifyError::permanent("the recipient is not an e-mail address"))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| NotifyError::permanent(format!("building the e-mail: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            // Only what kind of failure: the relay's answer may quote the message.
            Err(e) if e.is_permanent() => Err(NotifyError::permanent(format!(
                "SMTP relay refused the message ({})",
                e.status()
                    .map_or_else(|| "no code".to_owned(), |c| c.to_string())
            ))),
            // A temporary refusal (4xx) is an answer: the relay did not take the message.
            Err(e) if e.is_transient() => Err(NotifyError::transient(format!(
                "SMTP relay busy ({})",
                e.status()
                    .map_or_else(|| "no code".to_owned(), |c| c.to_string())
            ))),
            // No answer: unreachable, or the connection failed after the message was handed
            // over, which may have delivered it.
            Err(_) => Err(NotifyError::uncertain("SMTP relay unavailable (no answer)")),
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
