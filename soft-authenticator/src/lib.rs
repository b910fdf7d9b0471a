//! A software passkey authenticator, answering WebAuthn options as a browser and a platform
//! authenticator with user verification would: ES256 keys, `none` attestation, discoverable
//! credentials carrying their user handle, and a signature counter per credential (or none,
//! as synced passkeys keep). Cloning it clones its keys and counters: a cloned authenticator.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Flags of authenticator data: user present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

#[derive(Clone)]
struct Credential {
    id: Vec<u8>,
    pkcs8: Vec<u8>,
    user_handle: Vec<u8>,
    counter: u32,
}

/// The passkeys of one device.
#[derive(Clone)]
pub struct SoftAuthenticator {
    credentials: Vec<Credential>,
    /// Signs with counter 0 throughout, as synced passkeys do.
    pub counterless: bool,
    /// Signs without verifying its user (a real one asks for a PIN or biometric first).
    pub skips_user_verification: bool,
    /// The origin it tells the service the page is on.
    pub origin: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(value.as_str().expect("a base64url string"))
        .expect("base64url")
}

impl SoftAuthenticator {
    /// A device with no passkey yet, in a browser on `origin`.
    pub fn new(origin: &str) -> Self {
        Self {
            credentials: Vec::new(),
            counterless: false,
            skips_user_verification: false,
            origin: origin.to_owned(),
        }
    }

    /// A synced passkey's authenticator: no signature counter.
    pub fn counterless(mut self) -> Self {
        self.counterless = true;
        self
    }

    fn client_data(&self, kind: &str, challenge: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    fn flags(&self) -> u8 {
        if self.skips_user_verification {
            UP
        } else {
            UP | UV
        }
    }

    /// `navigator.credentials.create({publicKey: options})`: a new credential, its
    /// `RegistrationResponseJSON`.
    ///
    /// # Panics
    /// On options without `rp.id`, `user.id` or `challenge`, as a test's failure.
    pub fn register(&mut self, options: &Value) -> Value {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).unwrap();
        let point = key.public_key().as_ref();
        let (x, y) = (point[1..33].to_vec(), point[33..65].to_vec());
        let mut id = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap();
        let cose = Cbor::Map(BTreeMap::from([
            (Cbor::Integer(1), Cbor::Integer(2)),
            (Cbor::Integer(3), Cbor::Integer(-7)),
            (Cbor::Integer(-1), Cbor::Integer(1)),
            (Cbor::Integer(-2), Cbor::Bytes(x)),
            (Cbor::Integer(-3), Cbor::Bytes(y)),
        ]));
        let rp_id = options["rp"]["id"].as_str().expect("rp.id");
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]);
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend(serde_cbor_2::to_vec(&cose).unwrap());
        let attestation = Cbor::Map(BTreeMap::from([
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        let client_data = self.client_data("webauthn.create", &options["challenge"]);
        self.credentials.push(Credential {
            id: id.clone(),
            pkcs8,
            user_handle: unb64(&options["user"]["id"]),
            counter: 0,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&serde_cbor_2::to_vec(&attestation).unwrap()),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get({publicKey: options})`: an assertion by the first of
    /// `allowCredentials` it holds, or (none listed: a discoverable login) its newest
    /// credential; its `AuthenticationResponseJSON`.
    ///
    /// # Panics
    /// On options without `rpId` or `challenge`, or when it holds no allowed credential.
    pub fn assert(&mut self, options: &Value) -> Value {
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|list| list.iter().map(|c| unb64(&c["id"])).collect())
            .unwrap_or_default();
        let index = if allowed.is_empty() {
            self.credentials.len().checked_sub(1)
        } else {
            self.credentials
                .iter()
                .position(|c| allowed.contains(&c.id))
        }
        .expect("the authenticator holds an allowed credential");
        let flags = self.flags();
        let origin_data = self.client_data("webauthn.get", &options["challenge"]);
        let counterless = self.counterless;
        let credential = &mut self.credentials[index];
        if !counterless {
            credential.counter += 1;
        }
        let rp_id = options["rpId"].as_str().expect("rpId");
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&origin_data));
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &credential.pkcs8, &rng)
                .unwrap();
        let signature = key.sign(&rng, &signed).unwrap();
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&origin_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}
