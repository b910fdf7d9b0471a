//! Delivery of two-factor codes and security notices: implementations of the domain's
//! [`Notifier`](crate::domain::ports::Notifier) port, used by the delivery worker.

pub mod email;
pub mod live;
pub mod outbox;
pub mod sms;
pub mod webhook;

/// How long one SMTP or SMS call may take: below the delivery worker's send timeout
/// (`DeliveryPolicy::send_timeout`), so an adapter gives its own answer first.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTP client builder for a peer the service calls out to (the SMS gateway, a breach range
/// service): TLS with the ring provider, certificates checked against the Mozilla roots; no
/// proxy from the environment and no redirects, so a request goes to the configured address or
/// nowhere (a redirect reads as the peer's refusal).
pub(crate) fn outbound_client() -> Result<reqwest::ClientBuilder, rustls::Error> {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none()))
}

/// Whether `url` names this machine (plain connections are allowed there only, for tests and
/// a relay on the same host). Hosts of non-special schemes (`smtp://`) arrive as names.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::delivery::DeliveryPolicy;

    #[test]
    fn an_adapter_gives_up_before_the_worker_and_the_worker_before_its_lease() {
        // Otherwise a slow relay's send outlives the claim, and another instance sends again.
        let policy = DeliveryPolicy::default();
        assert!(super::SEND_TIMEOUT < policy.send_timeout);
        assert!(
            policy.send_timeout * (policy.batch() + 1)
                <= std::time::Duration::try_from(policy.lease).unwrap()
        );
    }
}
