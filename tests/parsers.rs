//! Property tests of the parsers hostile input reaches first: request bodies, bearer tokens and
//! forwarding headers. The fuzz targets in `fuzz/` drive the same functions with coverage
//! guidance (`scripts/fuzz`).

use std::net::{IpAddr, Ipv4Addr};

use axum::http::{HeaderMap, HeaderValue};
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, Header as _};
use proptest::prelude::*;
use serde_json::{Map, Value};

use finhub_auth::domain::sessions::token::SessionToken;
use finhub_auth::http::client_ip::{ClientIpHeader, TrustedProxies};
use finhub_auth::http::error::ApiError;
use finhub_auth::http::extract::parse_body;
use finhub_auth::http::routes::sessions::TokenRequest;

/// Any JSON value, a few levels deep, with strings long enough not to occur by chance in an
/// error message.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{8,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object shaped roughly like a login body: the real field names, sometimes, with
/// values of any type.
fn login_like_object() -> impl Strategy<Value = Map<String, Value>> {
    let field = prop_oneof![
        Just("username".to_owned()),
        Just("password".to_owned()),
        Just("device".to_owned()),
        "[a-zA-Z]{1,12}",
    ];
    prop::collection::btree_map(field, json_value(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// Every string the value holds.
fn strings(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(s) => found.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, found)),
        Value::Object(map) => map.values().for_each(|v| strings(v, found)),
        _ => {}
    }
}

/// A login body's outcome: the credentials, or the contract's errors for them. Never an internal
/// error, whatever the input.
fn login(content_type: Option<&str>, bytes: &[u8]) -> Result<(), ApiError> {
    parse_body::<TokenRequest>(content_type, bytes)?.parse()?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_get_credentials_or_a_contract_error(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        json in any::<bool>(),
    ) {
        let content_type = json.then_some("application/json");
        if let Err(e) = login(content_type, &bytes) {
            prop_assert!(
                matches!(e, ApiError::Malformed { .. } | ApiError::Validation(_)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_json_body_of_the_wrong_shape_names_fields_without_echoing_values(
        body in login_like_object(),
    ) {
        let bytes = serde_json::to_vec(&body).unwrap();
        match login(Some("application/json"), &bytes) {
            Ok(()) => {}
            Err(ApiError::Validation(fields)) => {
                prop_assert!(!fields.is_empty());
                let mut values = Vec::new();
                strings(&Value::Object(body), &mut values);
                for f in &fields {
                    for v in &values {
                        prop_assert!(!f.message.contains(v.as_str()), "{} echoes {v}", f.message);
                        prop_assert!(!f.field.contains(v.as_str()), "{} echoes {v}", f.field);
                    }
                }
            }
            Err(e) => prop_assert!(false, "a JSON object got {e:?}"),
        }
    }

    #[test]
    fn well_formed_credentials_parse(
        local in "[a-z0-9._-]{1,30}",
        password in "[ -~]{1,200}",
    ) {
        let body = serde_json::json!({"username": format!("{local}@example.com"), "password": password});
        let bytes = serde_json::to_vec(&body).unwrap();
        let request = parse_body::<TokenRequest>(Some("application/json; charset=utf-8"), &bytes);
        let input = request.unwrap().parse().unwrap();
        prop_assert_eq!(input.username.as_str(), format!("{local}@example.com"));
        prop_assert!(input.device.is_none() && input.totp.is_none());
    }

    #[test]
    fn a_bearer_token_parses_only_in_the_shape_this_service_issues(raw in "\\PC{0,60}|[A-Za-z0-9_-]{40,46}") {
        let shaped = raw.len() == 43
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(SessionToken::parse(&raw).is_some(), shaped);
    }

    #[test]
    fn any_authorization_header_gets_a_token_or_nothing(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        // As the bearer extractor reads it: the header, then the token's shape.
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let decoded = Authorization::<Bearer>::decode(&mut std::iter::once(&value));
            if let Ok(bearer) = decoded {
                let token = SessionToken::parse(bearer.token());
                prop_assert!(token.is_none() || bearer.token().len() == 43);
            }
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards(
        peer in any::<[u8; 4]>().prop_filter("outside 10/8", |o| o[0] != 10),
        forwarded in prop::collection::vec(any::<u8>(), 0..300),
        header in prop_oneof![Just(ClientIpHeader::XForwardedFor), Just(ClientIpHeader::Forwarded)],
    ) {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()], header);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&forwarded) {
            headers.insert("x-forwarded-for", value.clone());
            headers.insert("forwarded", value);
        }
        let peer = IpAddr::from(peer);
        prop_assert_eq!(proxies.client_ip(Some(peer), &headers), Some(peer));
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_first_untrusted_hop_from_the_right(
        spoofed in prop::collection::vec(any::<[u8; 4]>(), 0..4),
        client in any::<[u8; 4]>().prop_filter("outside 10/8", |o| o[0] != 10),
        proxies in prop::collection::vec(1u8..=254, 0..4),
        header in prop_oneof![Just(ClientIpHeader::XForwardedFor), Just(ClientIpHeader::Forwarded)],
    ) {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()], header);
        // What the client claims, then the client as the first proxy saw it, then the proxies.
        let hops: Vec<IpAddr> = spoofed
            .iter()
            .map(|o| IpAddr::from(*o))
            .chain(std::iter::once(IpAddr::from(client)))
            .chain(proxies.iter().map(|p| IpAddr::V4(Ipv4Addr::new(10, 0, 0, *p))))
            .collect();
        let value = match header {
            ClientIpHeader::XForwardedFor => hops.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", "),
            ClientIpHeader::Forwarded => hops.iter().map(|h| format!("for={h}")).collect::<Vec<_>>().join(", "),
        };
        let mut headers = HeaderMap::new();
        let name = match header {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        };
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
        let peer = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        prop_assert_eq!(trusted.client_ip(Some(peer), &headers), Some(IpAddr::from(client)));
    }

    /// IPv4-mapped spoofing of the proxy check: a dual-stack listener reports IPv4 peers as
    /// `::ffff:a.b.c.d`. Written either way, the peer and every hop give the same client, in its
    /// IPv4 form, so a proxy is never taken for the client (per-IP limits made global) and a
    /// client cannot double its buckets by writing its address mapped.
    #[test]
    fn ipv4_mapped_peers_and_hops_give_the_same_client_as_plain_ipv4(
        client in any::<[u8; 4]>().prop_filter("outside 10/8", |o| o[0] != 10),
        proxies in prop::collection::vec((1u8..=254, any::<bool>()), 0..4),
        mapped_client in any::<bool>(),
        mapped_peer in any::<bool>(),
        header in prop_oneof![Just(ClientIpHeader::XForwardedFor), Just(ClientIpHeader::Forwarded)],
    ) {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()], header);
        let written = |v4: Ipv4Addr, mapped: bool| {
            if mapped { IpAddr::V6(v4.to_ipv6_mapped()) } else { IpAddr::V4(v4) }
        };
        let hops: Vec<IpAddr> = std::iter::once(written(Ipv4Addr::from(client), mapped_client))
            .chain(proxies.iter().map(|(p, m)| written(Ipv4Addr::new(10, 0, 0, *p), *m)))
            .collect();
        let (name, value) = match header {
            ClientIpHeader::XForwardedFor => (
                "x-forwarded-for",
                hops.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", "),
            ),
            ClientIpHeader::Forwarded => (
                "forwarded",
                hops.iter()
                    .map(|h| match h {
                        IpAddr::V4(_) => format!("for={h}"),
                        IpAddr::V6(_) => format!("for=\"[{h}]\""),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
        let peer = written(Ipv4Addr::new(10, 9, 9, 9), mapped_peer);
        prop_assert_eq!(trusted.client_ip(Some(peer), &headers), Some(IpAddr::from(client)));
    }
}
