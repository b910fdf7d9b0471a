//! The client's address. Behind a load balancer the peer is the proxy, so its forwarding header
//! is believed, but only from peers in `FINHUB_TRUSTED_PROXIES`, only the one header they write
//! (`FINHUB_CLIENT_IP_HEADER`: a proxy that appends to `X-Forwarded-For` passes a client's own
//! `Forwarded` through untouched, so reading both would let the client choose), and only as far
//! back as the chain stays within trusted proxies; anything else a client could forge.
//!
//! Every address is canonical before it is compared or returned: a dual-stack listener reports
//! an IPv4 peer as `::ffff:a.b.c.d`, which would otherwise match no IPv4 network (so the proxy
//! itself became every client, and per-IP limits one global limit) and count apart from the same
//! client seen as plain IPv4.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The forwarding header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// The de facto standard most load balancers append to.
    #[default]
    XForwardedFor,
    /// RFC 7239.
    Forwarded,
}

/// Networks whose forwarding header is believed, and which header that is. Shared, not copied,
/// by every request's state.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
    header: ClientIpHeader,
}

impl TrustedProxies {
    /// Trusts `header` from peers in `networks` alone; IPv4-mapped networks are made canonical so
    /// that they match the peers they name.
    pub fn new(networks: Vec<IpNet>, header: ClientIpHeader) -> Self {
        Self {
            networks: networks.into_iter().map(canonical_net).collect(),
            header,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether the request's connection comes from a trusted proxy (whose headers, such as a
    /// trace's `traceparent`, are believed).
    pub fn trusts_peer(&self, extensions: &Extensions) -> bool {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(addr)| self.trusts(addr.ip().to_canonical()))
    }

    /// The client address for a request from `peer` carrying `headers`.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Nearest hop last: walk back from the proxy that reached us until an untrusted hop.
        let mut client = peer;
        let chain = match self.header {
            ClientIpHeader::XForwardedFor => x_forwarded_for(headers),
            ClientIpHeader::Forwarded => forwarded(headers),
        };
        for hop in chain.into_iter().rev() {
            let Some(ip) = hop else { break };
            let ip = ip.to_canonical();
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }

    /// The client address of a request, from its connection and headers.
    pub fn of_request(&self, extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        self.client_ip(peer, headers)
    }
}

/// A network written in IPv4-mapped form (`::ffff:10.0.0.0/104`) as the IPv4 network it is,
/// since the addresses it is compared with are canonical.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

// The addresses a request passed through, oldest first. `None` marks a hop that is not a plain
// address (obfuscated, `unknown`, or malformed), beyond which nothing is believed.

/// From `Forwarded` (RFC 7239): the `for=` of each element.
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    header_elements(headers, "forwarded")
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
        })
        .collect()
}

/// From `X-Forwarded-For`.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    header_elements(headers, "x-forwarded-for")
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// The comma-separated elements of every `name` header, in order. A header that is not text
/// counts as one element that is no address.
fn header_elements<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]`, `[2001:db8::1]:443` or `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies_writing(header: ClientIpHeader, nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect(), header)
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        proxies_writing(ClientIpHeader::XForwardedFor, nets)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            proxies(&[]).client_ip(ip("198.51.100.7"), &h),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_ip(ip("198.51.100.7"), &h),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &h),
            ip("203.0.113.9"),
            "a forged left-most entry is not believed"
        );
    }

    #[test]
    fn forwarded_handles_ports_and_ipv6() {
        let p = proxies_writing(ClientIpHeader::Forwarded, &["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.3"#,
        )]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("2001:db8::1"));
        let h = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("192.0.2.60"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // The proxy appends to X-Forwarded-For; the client sent a Forwarded of its own.
        let h = headers(&[
            ("forwarded", "for=192.0.2.66"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let xff = proxies_writing(ClientIpHeader::XForwardedFor, &["10.0.0.0/8"]);
        assert_eq!(xff.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // And the other way round: a proxy writing Forwarded passes a forged X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "192.0.2.66"),
        ]);
        let fwd = proxies_writing(ClientIpHeader::Forwarded, &["10.0.0.0/8"]);
        assert_eq!(fwd.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        // Without its header, the client is the proxy's peer: the other header is not a fallback.
        let only_xff = headers(&[("x-forwarded-for", "192.0.2.66")]);
        assert_eq!(fwd.client_ip(ip("10.0.0.1"), &only_xff), ip("10.0.0.1"));
    }

    /// A dual-stack listener reports an IPv4 proxy as `::ffff:10.0.0.5`: it must still match
    /// the IPv4 trusted network, or every client gets the proxy's address and the per-IP limits
    /// become one global limit that anyone can exhaust for everyone.
    #[test]
    fn an_ipv4_mapped_proxy_is_trusted_and_mapped_hops_are_canonical() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(p.client_ip(ip("::ffff:10.0.0.5"), &h), ip("203.0.113.9"));
        // A mapped hop is walked through like the IPv4 proxy it is, and a mapped client is
        // returned as IPv4, so it shares its buckets with the same client seen over IPv4.
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9, ::ffff:10.0.0.2")]);
        assert_eq!(p.client_ip(ip("::ffff:10.0.0.5"), &h), ip("203.0.113.9"));
        let fwd = proxies_writing(ClientIpHeader::Forwarded, &["10.0.0.0/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for="[::ffff:203.0.113.9]:80", for=10.0.0.2"#,
        )]);
        assert_eq!(fwd.client_ip(ip("10.0.0.5"), &h), ip("203.0.113.9"));
        // An untrusted mapped peer is the client, in its IPv4 form.
        assert_eq!(
            p.client_ip(ip("::ffff:198.51.100.7"), &h),
            ip("198.51.100.7")
        );
        // A trusted network written in mapped form matches plain IPv4 peers too.
        let mapped = proxies(&["::ffff:10.0.0.0/104"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(mapped.client_ip(ip("10.0.0.5"), &h), ip("203.0.113.9"));
        assert_eq!(
            mapped.client_ip(ip("::ffff:10.0.0.5"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_address() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.2")]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.2"));
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }
}
