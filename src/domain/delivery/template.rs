//! The text of a code's message.

use crate::domain::InvalidValue;
use crate::domain::credentials::challenge::OtpCode;
use crate::domain::risk::client::looks_like_a_link;

/// The text of a code's message (the SMS, and both bodies of the e-mail), with `{code}` and
/// `{minutes}` in place of the code and its validity. It must name FinHub and both values, and
/// never carry a link: a message with a link is what phishing looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTemplate(String);

impl Default for CodeTemplate {
    fn default() -> Self {
        Self(
            "Your FinHub security code is {code}. It expires in {minutes} minutes. \
             FinHub will never ask you for it."
                .to_owned(),
        )
    }
}

impl CodeTemplate {
    /// Longest accepted: two SMS segments.
    const MAX_CHARS: usize = 300;

    /// Accepts an operator's template only if it is safe to send: it has `{code}` and `{minutes}`,
    /// names FinHub, holds no link (as a phishing text would) and fits two SMS segments.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if !raw.contains("{code}") || !raw.contains("{minutes}") {
            Err(InvalidValue("must contain {code} and {minutes}"))
        } else if !raw.contains("FinHub") {
            Err(InvalidValue("must name FinHub"))
        } else if raw.to_lowercase().contains("http") || looks_like_a_link(raw) {
            Err(InvalidValue("must not contain a link"))
        } else if raw.chars().count() > Self::MAX_CHARS {
            Err(InvalidValue("must be at most 300 characters"))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    /// The message text with the code and its validity in minutes filled in.
    pub fn render(&self, code: &OtpCode, minutes: i64) -> String {
        self.0
            .replace("{minutes}", &minutes.to_string())
            .replace("{code}", code.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_names_finhub_the_code_and_its_validity_and_carries_no_link() {
        let code = OtpCode::parse("123456").unwrap();
        let text = CodeTemplate::default().render(&code, 10);
        assert!(text.contains("FinHub") && text.contains("123456") && text.contains("10 minutes"));
        let own =
            CodeTemplate::parse("FinHub: {code} (valid {minutes} min). Never share it.").unwrap();
        assert_eq!(
            own.render(&code, 5),
            "FinHub: 123456 (valid 5 min). Never share it."
        );
        for refused in [
            "FinHub code {code}",
            "Your code is {code}, valid {minutes} minutes",
            "FinHub {code} {minutes} https://finhub.example",
            "FinHub {code} {minutes} see www.finhub.example",
            "FinHub {code} {minutes}: questions to finhub-help.com",
            "FinHub {code} {minutes}: write to support@finhub-help.example",
            &format!("FinHub {{code}} {{minutes}} {}", "x".repeat(300)),
        ] {
            assert!(CodeTemplate::parse(refused).is_err(), "{refused}");
        }
    }
}
