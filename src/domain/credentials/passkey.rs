//! Passkeys (WebAuthn credentials with user verification): what the domain keeps of one and
//! the rules it applies itself. The ceremonies' cryptography is the port
//! [`PasskeyCeremonies`](crate::domain::ports::PasskeyCeremonies)'s; the domain sees its
//! options and states as opaque JSON, stored between the two calls of a ceremony (any
//! instance may take the second), and its credentials as opaque records beside the counter
//! the store checks.

use crate::domain::credentials::factor::FactorId;
use crate::domain::customers::CustomerId;

/// What a ceremony's first call gives: options for the browser and the state its second call
/// needs.
#[derive(Debug)]
pub struct Ceremony {
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions`, in their JSON form.
    pub options: serde_json::Value,
    /// The ceremony's state, stored until its answer comes (never shown).
    pub state: CeremonyState,
}

/// A ceremony's state between its two calls, as the port serialised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyState(pub String);

/// The WebAuthn user a customer's passkeys are made for. The handle is random, made with the
/// customer's first passkey and shared by the others (an authenticator keeps one passkey per
/// account and site): it carries nothing of the customer, and cannot be worked out from
/// anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUser {
    /// The user handle: 16 random bytes.
    pub handle: [u8; 16],
    /// What an authenticator lists the passkey under: the username.
    pub name: String,
}

impl PasskeyUser {
    /// The user named `username` whose passkeys are `held`: their handle, or a new one.
    pub fn of(held: &[StoredPasskey], username: &str) -> Result<Self, getrandom::Error> {
        let handle = match held
            .iter()
            .find_map(|p| <[u8; 16]>::try_from(p.user_handle.as_slice()).ok())
        {
            Some(handle) => handle,
            None => {
                let mut handle = [0; 16];
                getrandom::fill(&mut handle)?;
                handle
            }
        };
        Ok(Self {
            handle,
            name: username.to_owned(),
        })
    }
}

/// A passkey a customer holds, as stored.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    /// The factor it is.
    pub factor: FactorId,
    /// Whose it is.
    pub customer: CustomerId,
    /// The credential id, base64url: how an assertion names it.
    pub credential_id: String,
    /// The credential as the port serialised it (public key, counter, flags).
    pub credential: String,
    /// The user handle it was made for; a login's assertion must carry it.
    pub user_handle: Vec<u8>,
    /// The signature counter last accepted.
    pub counter: u32,
}

/// A passkey just registered, for the factor it confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPasskey {
    /// The credential id, base64url.
    pub credential_id: String,
    /// The credential as the port serialised it.
    pub credential: String,
}

/// An assertion the port verified for a stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The authenticator's signature counter in the assertion.
    pub counter: u32,
    /// The credential with the counter (and backup state) updated, to store.
    pub credential: String,
}

/// Whether an assertion's counter may follow the stored one: it must be greater when either
/// is non-zero (WebAuthn §6.1.1: a counter that does not grow suggests a cloned
/// authenticator); both zero is an authenticator that keeps no counter.
pub fn counter_advances(stored: u32, presented: u32) -> bool {
    (stored == 0 && presented == 0) || presented > stored
}

/// Why a ceremony's answer was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyRejected {
    /// Not the JSON a browser gives: refused before anything is judged.
    #[error("not a WebAuthn credential: {0}")]
    Malformed(String),
    /// Well-formed but wrong: another challenge or origin, a bad signature, no user
    /// verification, an unknown credential.
    #[error("the credential was not accepted: {0}")]
    Invalid(String),
    /// A right signature whose counter did not advance: perhaps a cloned authenticator.
    #[error("the signature counter did not advance")]
    CounterRegressed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_must_grow_unless_the_authenticator_keeps_none() {
        assert!(counter_advances(0, 0));
        assert!(counter_advances(0, 1));
        assert!(counter_advances(7, 8));
        assert!(!counter_advances(7, 7));
        assert!(!counter_advances(7, 3));
        assert!(!counter_advances(7, 0));
    }

    #[test]
    fn a_customer_keeps_one_random_handle_for_all_their_passkeys() {
        let first = PasskeyUser::of(&[], "alice").unwrap();
        assert_ne!(first.handle, PasskeyUser::of(&[], "alice").unwrap().handle);
        let held = StoredPasskey {
            factor: FactorId::generate(),
            customer: CustomerId::from_stored("cus_123".to_owned()),
            credential_id: "AAAA".to_owned(),
            credential: "{}".to_owned(),
            user_handle: first.handle.to_vec(),
            counter: 0,
        };
        assert_eq!(
            PasskeyUser::of(&[held], "alice").unwrap().handle,
            first.handle
        );
    }
}
