//! The client address behind trusted proxies: any `X-Forwarded-For` and `Forwarded` values.
//! An untrusted peer is always the client; behind a trusted one, the answer is the peer or an
//! address the header names.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use axum::http::{HeaderMap, HeaderValue};
use finhub_auth::http::client_ip::{ClientIpHeader, TrustedProxies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", value.clone());
    headers.append("forwarded", value);
    let text = String::from_utf8_lossy(data);
    for header in [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded] {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()], header);
        let outsider = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(proxies.client_ip(Some(outsider), &headers), Some(outsider));
        let proxy = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let Some(client) = proxies.client_ip(Some(proxy), &headers) else {
            panic!("a peer always yields an address");
        };
        // An address other than the peer must come from the header (in some spelling).
        if client != proxy {
            let bare = client.to_string();
            assert!(
                text.contains(&bare) || matches!(client, IpAddr::V6(_)),
                "{client} is not in {text:?}"
            );
        }
    }
});
