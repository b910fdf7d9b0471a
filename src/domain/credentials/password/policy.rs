//! What a new password must be: long enough and not too long, not a common password, not made of
//! the customer's own names, and not the password it replaces (checked by whoever holds the
//! current hash). Applied to passwords customers and operators choose, never at login nor to an
//! import, which brings existing credentials over.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization as _;

use super::Password;
use super::breached::BreachDigest;
use crate::domain::ports::BreachedPasswords;

/// The most common passwords, lower-cased: the `passwords` list of `@zxcvbn-ts/language-common`
/// 3.0.4 (MIT licence, `common-passwords.LICENSE.txt` beside this file), zxcvbn's ranking of passwords
/// seen in public breaches, 49,233 entries.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Why a new password is refused; the API lists every one that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rejection {
    /// Fewer characters than the policy's minimum.
    TooShort,
    /// More than 128 characters.
    TooLong,
    /// Among the most common passwords.
    Common,
    /// Contains the customer's username, e-mail local part, first or last name, or `finhub`.
    Context,
    /// Seen in a breach, per the configured source.
    Breached,
    /// The password it would replace.
    Reused,
}

impl Rejection {
    /// Every reason, in the order documented.
    pub const ALL: [Self; 6] = [
        Self::TooShort,
        Self::TooLong,
        Self::Common,
        Self::Context,
        Self::Breached,
        Self::Reused,
    ];

    /// The stable name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "TOO_SHORT",
            Self::TooLong => "TOO_LONG",
            Self::Common => "COMMON",
            Self::Context => "CONTEXT",
            Self::Breached => "BREACHED",
            Self::Reused => "REUSED",
        }
    }
}

/// The rules a new password is held to.
#[derive(Clone)]
pub struct PasswordPolicy {
    /// The fewest characters (Unicode scalar values after NFC); 8 or more.
    pub min_length: usize,
    /// Where breached passwords are looked up; `None`: no breach check.
    pub breaches: Option<Arc<dyn BreachedPasswords>>,
}

impl std::fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_length", &self.min_length)
            .field("breach_check", &self.breaches.is_some())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: Self::DEFAULT_MIN_LENGTH,
            breaches: None,
        }
    }
}

impl PasswordPolicy {
    /// The default minimum length.
    pub const DEFAULT_MIN_LENGTH: usize = 12;
    /// No minimum may be set below this.
    pub const LEAST_MIN_LENGTH: usize = 8;
    /// The most characters a new password may have.
    pub const MAX_LENGTH: usize = 128;
    /// Context words shorter than this are not looked for (too many passwords would contain
    /// them by chance).
    const SHORTEST_CONTEXT_WORD: usize = 4;

    /// Every rule `password` breaks, given the words of its customer (username, e-mail, names),
    /// in the order of [`Rejection::ALL`]; empty when it may be used. Breach and reuse checks
    /// need more than the password and are the caller's.
    /// Every rule `password` breaks, the breach check included (when a source is set). A source
    /// that cannot answer skips the check, logged and counted
    /// (`finhub_breach_checks_skipped_total`): a new password is never refused for an outage.
    pub async fn judge_new(&self, password: &Password, context: &[&str]) -> Vec<Rejection> {
        let mut rejections = self.judge(password, context);
        if let Some(source) = &self.breaches {
            match source.contains(&BreachDigest::of(password)).await {
                Ok(true) => rejections.push(Rejection::Breached),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "breached-password check skipped");
                    metrics::counter!("finhub_breach_checks_skipped_total").increment(1);
                }
            }
        }
        rejections.sort_unstable();
        rejections
    }

    /// Every rule `password` breaks but the breach check, which takes a lookup.
    pub fn judge(&self, password: &Password, context: &[&str]) -> Vec<Rejection> {
        let normalised: String = password.expose().nfc().collect();
        let length = normalised.chars().count();
        let lowered = normalised.to_lowercase();
        let mut rejections = Vec::new();
        if length < self.min_length {
            rejections.push(Rejection::TooShort);
        }
        if length > Self::MAX_LENGTH {
            rejections.push(Rejection::TooLong);
        }
        if COMMON.contains(lowered.as_str()) {
            rejections.push(Rejection::Common);
        }
        if context_words(context).any(|word| lowered.contains(&word)) {
            rejections.push(Rejection::Context);
        }
        rejections
    }
}

/// The words a password must not contain: each context value whole, its e-mail local part
/// too, and `finhub`, lower-cased, when at least four characters long.
fn context_words<'a>(context: &'a [&'a str]) -> impl Iterator<Item = String> + 'a {
    context
        .iter()
        .flat_map(|value| {
            let local = value.split_once('@').map(|(local, _)| local);
            std::iter::once(*value).chain(local)
        })
        .chain(std::iter::once("finhub"))
        .map(|word| word.nfc().collect::<String>().to_lowercase())
        .filter(|word| word.chars().count() >= PasswordPolicy::SHORTEST_CONTEXT_WORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(password: &str) -> Vec<Rejection> {
        PasswordPolicy::default().judge(
            &Password::parse(password.into()).unwrap(),
            &["alice.smith@example.com", "Alice", "Smithson"],
        )
    }

    #[test]
    fn a_long_uncommon_password_without_the_customers_names_passes() {
        assert_eq!(judge("Corr3ct-horse-battery"), []);
    }

    #[test]
    fn length_counts_characters_after_nfc_between_12_and_128() {
        assert_eq!(judge("Xq7-vz9-kpw"), [Rejection::TooShort]);
        // Twelve characters typed as thirteen code points (e + combining acute) is twelve.
        assert_eq!(judge("e\u{301}q7-vz9-kpw2"), []);
        assert_eq!(judge(&"Xq7-".repeat(33)), [Rejection::TooLong]);
        let eight = PasswordPolicy {
            min_length: 8,
            breaches: None,
        };
        let short = Password::parse("Xq7-vz9k".into()).unwrap();
        assert_eq!(eight.judge(&short, &[]), []);
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert!(judge("PASSWORD1234").contains(&Rejection::Common));
        assert!(judge("qwertyuiop123").contains(&Rejection::Common));
        assert!(COMMON.len() >= 10_000, "{}", COMMON.len());
    }

    #[test]
    fn the_customers_own_words_and_finhub_are_refused_when_four_or_more_characters() {
        assert_eq!(judge("my-alice-is-9999"), [Rejection::Context]);
        assert_eq!(judge("SMITHSON-rules-42"), [Rejection::Context]);
        assert_eq!(judge("alice.smith-2026!"), [Rejection::Context]);
        assert_eq!(judge("I-love-FinHub-2026"), [Rejection::Context]);
        // "bob" is too short to look for.
        let bob = PasswordPolicy::default().judge(
            &Password::parse("bobs-kayak-47-river".into()).unwrap(),
            &["bob@example.com", "Bob"],
        );
        assert_eq!(bob, []);
    }

    #[test]
    fn every_rule_broken_is_listed() {
        assert_eq!(judge("finhub"), [Rejection::TooShort, Rejection::Context]);
    }
}
