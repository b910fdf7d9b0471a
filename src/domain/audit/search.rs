//! Operators' searches of the trail ("who signed in as this customer, from where, on which
//! device"): the store narrows by username, kind, time and address, each by an index; an
//! address range that the stored text cannot express (IPv6, IPv4 off octet boundaries) is
//! matched here, on what the rest returns.

use ipnet::IpNet;

use super::ChainedEvent;
use crate::domain::ports::{AddressText, AuditFilter, AuditStore, StoreResult};

/// Events per read.
const PAGE: u32 = 1000;

/// A search: the store's filter, and the client addresses an event must come from.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    filter: AuditFilter,
    network: Option<IpNet>,
}

impl AuditSearch {
    /// Events that match `filter` and come from `network` (a single address is a /32 or
    /// /128); what of the range the stored text can express goes to the store with `filter`.
    pub fn new(filter: AuditFilter, network: Option<IpNet>) -> Self {
        let address = network.as_ref().and_then(address_text);
        Self {
            filter: AuditFilter { address, ..filter },
            network,
        }
    }

    /// Whether `event` comes from the searched addresses (any, when none is named). An event
    /// without an address, or with one that does not parse, is not in any range.
    pub fn from_network(&self, event: &ChainedEvent) -> bool {
        match &self.network {
            None => true,
            Some(network) => event
                .event
                .ip
                .as_deref()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| network.contains(&ip)),
        }
    }
}

/// The next page of matches after `after_seq`, oldest first, and where the one after it starts
/// (`None`: the trail is read to its end). A page may hold no match and still be followed by
/// one.
pub async fn page(
    store: &dyn AuditStore,
    search: &AuditSearch,
    after_seq: i64,
) -> StoreResult<(Vec<ChainedEvent>, Option<i64>)> {
    let read = store.search_audit(&search.filter, after_seq, PAGE).await?;
    let next = (read.len() == PAGE as usize)
        .then(|| read.last().map(|e| e.seq))
        .flatten();
    let matches = read
        .into_iter()
        .filter(|e| search.from_network(e))
        .collect();
    Ok((matches, next))
}

/// The text every stored address in `network` has (or starts with), where there is one: a
/// single address, or an IPv4 range on octet boundaries (`203.0.7.0/24` → `203.0.7.`).
fn address_text(network: &IpNet) -> Option<AddressText> {
    if network.prefix_len() == network.max_prefix_len() {
        return Some(AddressText::Exact(network.addr().to_string()));
    }
    match network {
        IpNet::V4(v4) if v4.prefix_len() > 0 && v4.prefix_len() % 8 == 0 => {
            let octets = v4.network().octets();
            let prefix = octets
                .iter()
                .take(usize::from(v4.prefix_len() / 8))
                .map(|o| format!("{o}."))
                .collect();
            Some(AddressText::Prefix(prefix))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(network: &str) -> Option<AddressText> {
        address_text(&network.parse().unwrap())
    }

    #[test]
    fn addresses_and_octet_ranges_are_matched_by_their_text() {
        assert_eq!(
            text("203.0.113.7/32"),
            Some(AddressText::Exact("203.0.113.7".into()))
        );
        assert_eq!(
            text("2001:db8::1/128"),
            Some(AddressText::Exact("2001:db8::1".into()))
        );
        assert_eq!(
            text("203.0.113.0/24"),
            Some(AddressText::Prefix("203.0.113.".into()))
        );
        assert_eq!(text("10.0.0.0/8"), Some(AddressText::Prefix("10.".into())));
        // Ranges the text cannot express are matched on the events read.
        assert_eq!(text("203.0.112.0/20"), None);
        assert_eq!(text("2001:db8::/32"), None);
        assert_eq!(text("0.0.0.0/0"), None);
    }
}
