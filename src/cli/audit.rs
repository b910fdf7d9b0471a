//! `audit tail | export | verify`: the audit trail as JSON Lines, and its integrity check.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use time::OffsetDateTime;

use crate::domain::audit::{ChainVerifier, ChainedEvent, GENESIS_HASH};
use crate::startup::Services;
use crate::store::{AuditQuery, Store};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the newest events, oldest first; with --follow, keep printing new ones.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        #[arg(long)]
        follow: bool,
    },
    /// Print every event at or after a time (RFC 3339, e.g. 2026-11-24T10:00:00Z).
    Export {
        #[arg(long, value_parser = parse_time)]
        since: OffsetDateTime,
    },
    /// Check the hash chain; exit 0 when intact, 1 naming the first bad event.
    Verify,
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("`{raw}` is not an RFC 3339 time such as 2026-11-24T10:00:00Z"))
}

const PAGE: u32 = 1000;

pub async fn run(cmd: AuditCommand, services: &Services) -> anyhow::Result<ExitCode> {
    let store = services.store.as_ref();
    match cmd {
        AuditCommand::Tail { lines, follow } => tail(store, lines, follow).await,
        AuditCommand::Export { since } => {
            let mut after = 0;
            loop {
                let page = store
                    .audit_events(AuditQuery {
                        after_seq: after,
                        since: Some(since),
                        limit: PAGE,
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                print_events(&page)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => verify(store).await,
    }
}

async fn tail(store: &dyn Store, lines: u32, follow: bool) -> anyhow::Result<ExitCode> {
    let newest = store.audit_tail(lines).await?;
    print_events(&newest)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut after = newest.last().map_or(0, |e| e.seq);
    if newest.is_empty() {
        after = store.audit_head().await?.0;
    }
    loop {
        let page = store
            .audit_events(AuditQuery {
                after_seq: after,
                since: None,
                limit: PAGE,
            })
            .await?;
        match page.last() {
            Some(last) => {
                after = last.seq;
                print_events(&page)?;
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn print_events(events: &[ChainedEvent]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing to standard output")
}

/// Walks the chain from its start up to the head as it stood when the check began, so events
/// appended meanwhile do not disturb it.
async fn verify(store: &dyn Store) -> anyhow::Result<ExitCode> {
    let (head_seq, head_hash) = store.audit_head().await?;
    let mut verifier = ChainVerifier::starting_after(0, GENESIS_HASH);
    let mut after = 0;
    let outcome = loop {
        let page = store
            .audit_events(AuditQuery {
                after_seq: after,
                since: None,
                limit: PAGE,
            })
            .await?;
        let in_range: Vec<_> = page.iter().filter(|e| e.seq <= head_seq).collect();
        if in_range.is_empty() {
            break verifier.finish(head_seq, &head_hash);
        }
        if let Some(broken) = in_range.iter().find_map(|e| verifier.check(e).err()) {
            break Err(broken);
        }
        after = in_range.last().map_or(after, |e| e.seq);
    };
    match outcome {
        Ok(n) => {
            println!("audit trail intact: {n} events, head {head_hash}");
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => Err(anyhow!("audit trail broken: {broken}")),
    }
}
