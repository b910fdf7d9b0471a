//! Passkey logins, closed loop: each a ceremony's options, an assertion signed by a software
//! authenticator in this process, and the login. No password is hashed on this path, so its
//! ceiling is the store's one write (the session, with its ceremony answered) rather than argon2.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use finhub_soft_authenticator::SoftAuthenticator;
use serde::Serialize;
use serde_json::{Value, json};

use crate::open_loop::Counts;
use crate::target::Server;

/// The relying party and origin the server is started with (`target.rs`), which the
/// authenticator signs for.
pub const RP_ID: &str = "localhost";
pub const ORIGIN: &str = "https://localhost:8443";

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PasskeyLogins {
    pub logins_per_sec: f64,
    pub completed: u64,
    pub errors: u64,
}

/// Each of `usernames` adds a passkey (a synced one: no counter, so any number of logins may
/// run at once), then `workers`, spread over them in turn, sign in with them again and again
/// for `duration`.
///
/// Several customers, as a service's logins come: one customer's logins take turns on their
/// username's lock from its counters' read to the commit, which on PostgreSQL spans the
/// transaction's round trips (about 100 a second for one customer on two busy cores), so one
/// customer would measure that lock rather than the store.
pub async fn logins(
    server: &Server,
    usernames: &[String],
    workers: u32,
    duration: Duration,
) -> anyhow::Result<PasskeyLogins> {
    let client = reqwest::Client::new();
    let mut devices = Vec::with_capacity(usernames.len());
    for username in usernames {
        devices.push(add_passkey(server, &client, username).await?);
    }
    anyhow::ensure!(!devices.is_empty(), "passkey logins need a customer");
    let (options, login) = (
        server.url("/api/v1/auth/passkey/options"),
        server.url("/api/v1/auth/passkey"),
    );
    let started = Instant::now();
    let clients = devices.iter().cycle().take(workers as usize);
    let counts = Counts::of_workers(clients.map(|device| {
        let (client, mut device) = (client.clone(), device.clone());
        let (options, login) = (options.clone(), login.clone());
        async move {
            let mut counts = Counts::default();
            while started.elapsed() < duration {
                counts.add(one_login(&client, &options, &login, &mut device).await);
            }
            counts
        }
    }))
    .await?;
    Ok(PasskeyLogins {
        logins_per_sec: counts.completed as f64 / started.elapsed().as_secs_f64(),
        completed: counts.completed,
        errors: counts.errors,
    })
}

async fn add_passkey(
    server: &Server,
    client: &reqwest::Client,
    username: &str,
) -> anyhow::Result<SoftAuthenticator> {
    let token = server.login(client, username).await?;
    let added: Value = client
        .post(server.url("/api/v1/customers/me/factors"))
        .bearer_auth(&token)
        .json(&json!({"method": "PASSKEY", "name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut device = SoftAuthenticator::new(ORIGIN).counterless();
    let credential = device.register(&added["publicKey"]);
    let id = added["id"].as_str().context("the factor's id")?;
    client
        .post(server.url(&format!("/api/v1/customers/me/factors/{id}/confirm")))
        .bearer_auth(&token)
        .json(&json!({"credential": credential}))
        .send()
        .await?
        .error_for_status()?;
    Ok(device)
}

async fn one_login(
    client: &reqwest::Client,
    options_url: &str,
    login_url: &str,
    device: &mut SoftAuthenticator,
) -> anyhow::Result<()> {
    let options: Value = client
        .post(options_url)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let credential = device.assert(&options["publicKey"]);
    client
        .post(login_url)
        .json(&json!({"challengeId": options["challengeId"], "credential": credential}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
