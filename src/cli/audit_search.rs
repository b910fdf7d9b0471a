//! `audit search`: "who signed in as this customer, from where, on which device".

use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use ipnet::IpNet;
use time::OffsetDateTime;

use super::audit::print_events;
use crate::clock::{Clock as _, SystemClock};
use crate::domain::audit::search::{self, AuditSearch};
use crate::domain::audit::{AuditKind, ChainedEvent, rfc3339};
use crate::domain::customers::Username;
use crate::domain::ports::{AuditFilter, AuditStore};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Events about this customer.
    #[arg(long)]
    username: Option<String>,
    /// Events from this address, or from a range of them (CIDR: 203.0.113.0/24).
    #[arg(long, value_parser = parse_network)]
    ip: Option<IpNet>,
    /// Events of this kind (login.succeeded, session.revoked, …).
    #[arg(long)]
    kind: Option<String>,
    /// At or after this time: RFC 3339, or a duration back from now (7d, 12h).
    #[arg(long, value_parser = parse_when)]
    since: Option<OffsetDateTime>,
    /// Before this time, in the same forms.
    #[arg(long, value_parser = parse_when)]
    until: Option<OffsetDateTime>,
    /// JSON Lines, as `audit export` prints them, instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_network(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("`{raw}` is neither an address nor a CIDR range such as 203.0.113.0/24")
        })
}

/// An RFC 3339 time, or a duration (`7d`, `12h`, `90m`) back from now.
fn parse_when(raw: &str) -> Result<OffsetDateTime, String> {
    if let Ok(at) = super::audit::parse_time(raw) {
        return Ok(at);
    }
    let back = humantime::parse_duration(raw)
        .ok()
        .and_then(|d| time::Duration::try_from(d).ok())
        .ok_or_else(|| {
            format!(
                "`{raw}` is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor a duration (7d)"
            )
        })?;
    SystemClock
        .now()
        .checked_sub(back)
        .ok_or_else(|| format!("`{raw}` reaches back before any time this can name"))
}

impl SearchArgs {
    fn search(self) -> anyhow::Result<AuditSearch> {
        let username = self
            .username
            .map(|raw| Username::parse(&raw).map_err(|e| anyhow!("--username {e}")))
            .transpose()?;
        if let Some(kind) = &self.kind
            && AuditKind::from_stored(kind).is_none()
        {
            return Err(anyhow!("--kind `{kind}` is not a kind of audit event"));
        }
        let filter = AuditFilter {
            username: username.map(|u| u.as_str().to_owned()),
            kind: self.kind,
            since: self.since,
            until: self.until,
            address: None,
        };
        Ok(AuditSearch::new(filter, self.ip))
    }
}

pub async fn run(args: SearchArgs, store: &dyn AuditStore) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let search = args.search()?;
    let mut after = 0;
    let mut rows = Vec::new();
    loop {
        let (matches, next) = search::page(store, &search, after).await?;
        if json {
            print_events(&matches)?;
        } else {
            rows.extend(matches.iter().map(row));
        }
        match next {
            Some(seq) => after = seq,
            None => break,
        }
    }
    if !json {
        print!(
            "{}",
            super::table::render(
                [
                    "TIME", "KIND", "OUTCOME", "USERNAME", "IP", "COUNTRY", "DEVICE", "FLAGS"
                ],
                &rows,
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as a row; `-` where nothing is known. A device without a name shows the start of
/// its (keyed) fingerprint hash.
fn row(e: &ChainedEvent) -> [String; 8] {
    let e = &e.event;
    let known = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let device = e.device_name.clone().or_else(|| {
        e.device_fingerprint
            .as_ref()
            .map(|f| f.chars().take(8).collect())
    });
    let flags = e
        .details
        .get("flags")
        .and_then(|f| f.as_array())
        .map(|flags| {
            flags
                .iter()
                .filter_map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|f| !f.is_empty());
    [
        rfc3339(e.at),
        e.kind.as_str().to_owned(),
        e.outcome.as_str().to_owned(),
        known(e.username.as_deref()),
        known(e.ip.as_deref()),
        known(e.details.get("country").and_then(|c| c.as_str())),
        known(device.as_deref()),
        known(flags.as_deref()),
    ]
}
