//! A k-anonymity range service (Pwned Passwords' API, or a mirror of it): `GET {url}/range/{the
//! first 5 hex digits}` answers `SUFFIX:COUNT` lines for every breached hash with that prefix.
//! Only the prefix leaves the service; responses are padded where the service supports it.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::credentials::password::breached::BreachDigest;
use crate::domain::ports::{BreachSourceUnavailable, BreachedPasswords};

/// The most of an answer read: Pwned Passwords' padded answers are about 40 KiB.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The range service's client.
#[derive(Debug)]
pub struct RangeService {
    client: reqwest::Client,
    base: url::Url,
}

impl RangeService {
    /// A client of the service at `base`, each lookup bounded by `timeout`. HTTPS, except on a
    /// loopback address.
    pub fn new(base: url::Url, timeout: Duration) -> anyhow::Result<Self> {
        let loopback = crate::notify::is_loopback(&base);
        match base.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => anyhow::bail!(
                "FINHUB_BREACHED_PASSWORDS_URL must be https (or http on a loopback address)"
            ),
        }
        let client = crate::notify::outbound_client()?.timeout(timeout).build()?;
        Ok(Self { client, base })
    }
}

#[async_trait]
impl BreachedPasswords for RangeService {
    async fn contains(&self, digest: &BreachDigest) -> Result<bool, BreachSourceUnavailable> {
        let unavailable = |e: &dyn std::fmt::Display| BreachSourceUnavailable(e.to_string());
        let url = format!(
            "{}/range/{}",
            self.base.as_str().trim_end_matches('/'),
            digest.prefix()
        );
        let mut response = self
            .client
            .get(url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| unavailable(&e.without_url()))?;
        if !response.status().is_success() {
            return Err(unavailable(&format!("status {}", response.status())));
        }
        // A real answer is a few dozen KiB; a service that sends without end is unavailable, not
        // a way to fill this process's memory.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(&e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(unavailable(&"an answer of more than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&body);
        Ok(body.lines().any(|line| {
            let mut parts = line.trim().split(':');
            let suffix = parts.next().unwrap_or_default();
            // Padding lines carry a count of 0.
            let count: u64 = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(0);
            count > 0 && suffix.eq_ignore_ascii_case(digest.suffix())
        }))
    }
}
