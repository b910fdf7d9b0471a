//! `audit tail | export | verify | anchor`: the audit trail as JSON Lines, its integrity check,
//! and anchors of its head (`audit search` is in `audit_search.rs`).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use time::OffsetDateTime;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;

use crate::clock::{Clock as _, SystemClock};
use crate::domain::audit::trail;
use crate::domain::audit::{Anchor, AnchorKeys, ChainSeal, ChainedEvent};
use crate::domain::ports::AuditStore;

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
    /// Check the hash chain; exit 0 when intact, 1 naming the first bad event (or anchor).
    Verify {
        /// Anchors from `audit anchor` (JSON Lines), kept where the database's writers cannot
        /// change them: the chain must still reach each with the same hash.
        #[arg(long)]
        anchors: Option<std::path::PathBuf>,
        /// The public half (PEM) of the Ed25519 key that signed the anchors, for checking them
        /// without the private key (`openssl pkey -in KEY -pubout`).
        #[arg(long, requires = "anchors")]
        anchor_public_key: Option<std::path::PathBuf>,
    },
    /// Print a signed checkpoint of the chain's head as one JSON line, for storage the
    /// database's writers cannot change.
    Anchor,
    /// Events matching every filter given, oldest first: a table (time, kind, outcome,
    /// username, IP, country, device, flags), or JSON Lines.
    Search(super::audit_search::SearchArgs),
}

pub(super) fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("`{raw}` is not an RFC 3339 time such as 2026-11-24T10:00:00Z"))
}

pub async fn run(
    cmd: AuditCommand,
    store: &dyn AuditStore,
    seal: &ChainSeal,
    keys: AnchorKeys,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Tail { lines, follow } => tail(store, lines, follow).await,
        AuditCommand::Export { since } => {
            let mut after = 0;
            loop {
                let page = trail::page_after(store, after, Some(since)).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                print_events(&page)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            anchors,
            anchor_public_key,
        } => {
            let keys = match anchor_public_key {
                Some(path) => keys.checking_with(public_key(&path)?),
                None => keys,
            };
            verify(store, seal, anchors.as_deref(), &keys).await
        }
        AuditCommand::Search(args) => super::audit_search::run(args, store).await,
        AuditCommand::Anchor => {
            let anchor = trail::anchor(store, &keys, SystemClock.now()).await?;
            println!("{}", serde_json::to_string(&anchor)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn tail(store: &dyn AuditStore, lines: u32, follow: bool) -> anyhow::Result<ExitCode> {
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
        let page = trail::page_after(store, after, None).await?;
        match page.last() {
            Some(last) => {
                after = last.seq;
                print_events(&page)?;
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

pub(super) fn print_events(events: &[ChainedEvent]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing to standard output")
}

fn public_key(path: &std::path::Path) -> anyhow::Result<VerifyingKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key in {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|_| {
        anyhow::anyhow!(
            "{} is not an Ed25519 public key in PEM (openssl pkey -in KEY -pubout)",
            path.display()
        )
    })
}

async fn verify(
    store: &dyn AuditStore,
    seal: &ChainSeal,
    anchors: Option<&std::path::Path>,
    keys: &AnchorKeys,
) -> anyhow::Result<ExitCode> {
    let verified = trail::verify(store, seal).await?;
    println!(
        "audit trail intact: {} events after seq {}, head {}",
        verified.events, verified.from_seq, verified.head_hash
    );
    if let Some(path) = anchors {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the anchors in {}", path.display()))?;
        let anchors = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str::<Anchor>(line)
                    .with_context(|| format!("{} line {}: not an anchor", path.display(), i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let checked = trail::verify_anchors(store, keys, &anchors).await?;
        println!(
            "anchors hold: {} of {} checked against the chain (the rest precede retention)",
            checked,
            anchors.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
