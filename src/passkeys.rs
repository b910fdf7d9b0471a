//! The passkey port over `webauthn-rs`: its ceremonies for one relying party, their states
//! serialised for the store, and its errors sorted into what the domain tells apart.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};
use webauthn_rs_proto::{AllowCredentials, ResidentKeyRequirement};

use crate::domain::credentials::passkey::{
    Ceremony, CeremonyState, PasskeyRejected, PasskeyUser, RegisteredPasskey, StoredPasskey,
    VerifiedAssertion,
};
use crate::domain::ports::PasskeyCeremonies;

/// What the browser is shown as the relying party's name.
const RP_NAME: &str = "FinHub";

/// WebAuthn for one relying party: `rp_id` (a registrable domain) and the web origins whose
/// pages may use its passkeys.
pub struct WebauthnPasskeys {
    webauthn: Webauthn,
}

impl WebauthnPasskeys {
    /// The relying party `rp_id`, used from `origins` (the first is the main one).
    pub fn new(rp_id: &str, origins: &[Url]) -> anyhow::Result<Self> {
        let (first, others) = origins
            .split_first()
            .context("FINHUB_WEBAUTHN_ORIGIN names no origin")?;
        let mut builder = WebauthnBuilder::new(rp_id, first)
            .context("FINHUB_WEBAUTHN_RP_ID must be the origins' domain or a parent of it")?
            .rp_name(RP_NAME);
        for origin in others {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .build()
            .context("FINHUB_WEBAUTHN_RP_ID / FINHUB_WEBAUTHN_ORIGIN")?;
        Ok(Self { webauthn })
    }
}

impl PasskeyCeremonies for WebauthnPasskeys {
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[String],
    ) -> anyhow::Result<Ceremony> {
        let exclude = exclude
            .iter()
            .map(|id| URL_SAFE_NO_PAD.decode(id))
            .collect::<Result<Vec<_>, _>>()
            .context("a stored credential id is not base64url")?;
        let (mut options, state) = self.webauthn.start_passkey_registration(
            Uuid::from_bytes(user.handle),
            &user.name,
            &user.name,
            Some(exclude),
        )?;
        // A discoverable credential where the authenticator can keep one, so that it also
        // signs in without a username.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
        }
        Ok(Ceremony {
            options: serde_json::to_value(&options.public_key)?,
            state: CeremonyState(serde_json::to_string(&state)?),
        })
    }

    fn finish_registration(
        &self,
        response: &serde_json::Value,
        state: &CeremonyState,
    ) -> Result<RegisteredPasskey, PasskeyRejected> {
        let response: RegisterPublicKeyCredential = parse(response)?;
        let state: PasskeyRegistration = restore(state)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)
            .map_err(rejected)?;
        Ok(RegisteredPasskey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            credential: serde_json::to_string(&passkey)
                .map_err(|e| PasskeyRejected::Invalid(e.to_string()))?,
        })
    }

    fn start_authentication(&self, credentials: &[StoredPasskey]) -> anyhow::Result<Ceremony> {
        // One kind of state for both: the credential is found by its id, then verified alone.
        let (mut options, state) = self.webauthn.start_discoverable_authentication()?;
        options.public_key.allow_credentials = credentials
            .iter()
            .map(|stored| {
                Ok(AllowCredentials {
                    type_: "public-key".to_owned(),
                    id: URL_SAFE_NO_PAD.decode(&stored.credential_id)?,
                    transports: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Ceremony {
            options: serde_json::to_value(&options.public_key)?,
            state: CeremonyState(serde_json::to_string(&state)?),
        })
    }

    fn credential_named(
        &self,
        response: &serde_json::Value,
    ) -> Result<(String, Option<Vec<u8>>), PasskeyRejected> {
        let response: PublicKeyCredential = parse(response)?;
        Ok((
            URL_SAFE_NO_PAD.encode(response.get_credential_id()),
            response.get_user_unique_id().map(<[u8]>::to_vec),
        ))
    }

    fn finish_authentication(
        &self,
        response: &serde_json::Value,
        state: &CeremonyState,
        passkey: &StoredPasskey,
    ) -> Result<VerifiedAssertion, PasskeyRejected> {
        let response: PublicKeyCredential = parse(response)?;
        let state: DiscoverableAuthentication = restore(state)?;
        let mut credential: Passkey = serde_json::from_str(&passkey.credential)
            .map_err(|e| PasskeyRejected::Invalid(format!("stored passkey unreadable: {e}")))?;
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(&response, state, &credential)
            .map_err(rejected)?;
        credential.update_credential(&result);
        Ok(VerifiedAssertion {
            counter: result.counter(),
            credential: serde_json::to_string(&credential)
                .map_err(|e| PasskeyRejected::Invalid(e.to_string()))?,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, PasskeyRejected> {
    T::deserialize(value).map_err(|e| PasskeyRejected::Malformed(e.to_string()))
}

fn restore<T: serde::de::DeserializeOwned>(state: &CeremonyState) -> Result<T, PasskeyRejected> {
    serde_json::from_str(&state.0)
        .map_err(|e| PasskeyRejected::Invalid(format!("ceremony state unreadable: {e}")))
}

fn rejected(e: WebauthnError) -> PasskeyRejected {
    match e {
        WebauthnError::CredentialPossibleCompromise => PasskeyRejected::CounterRegressed,
        other => PasskeyRejected::Invalid(other.to_string()),
    }
}
