//! Support's session commands: `customers sessions | end-sessions` and `sessions end-all`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::customers::{operator_reason, parse_username};
use crate::domain::audit::rfc3339;
use crate::domain::auth::security::LiveSession;
use crate::domain::customers::accounts::Accounts;

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every live session of every customer (after a suspected leak of tokens); nobody is
    /// locked. Audited once, with the reason and the count.
    EndAll {
        /// Why (recorded in the audit trail); required.
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(cmd: SessionsCommand, accounts: &Accounts) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionsCommand::EndAll { reason } => {
            let ended = accounts
                .end_every_session(operator_reason(&reason)?)
                .await?;
            println!("ended {ended} session(s) of every customer");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `customers sessions USERNAME [--json] [--reason TEXT]`.
pub async fn list(
    username: &str,
    json: bool,
    reason: Option<&str>,
    accounts: &Accounts,
) -> anyhow::Result<ExitCode> {
    let reason = reason.map(operator_reason).transpose()?;
    let sessions = accounts
        .sessions_of(&parse_username(username)?, reason)
        .await?;
    if json {
        for session in &sessions {
            println!("{}", as_json(session));
        }
    } else {
        print!("{}", table(&sessions));
    }
    Ok(ExitCode::SUCCESS)
}

/// `customers end-sessions USERNAME --reason TEXT`.
pub async fn end(username: &str, reason: &str, accounts: &Accounts) -> anyhow::Result<ExitCode> {
    let reason = operator_reason(reason)?;
    let username = parse_username(username)?;
    let ended = accounts.end_sessions(&username, reason).await?;
    println!("ended {ended} session(s) of {username}; they are not locked");
    Ok(ExitCode::SUCCESS)
}

/// One line of JSON, named as `GET /api/v1/sessions` names them.
fn as_json(s: &LiveSession) -> serde_json::Value {
    json!({
        "id": s.id.as_str(),
        "state": s.state.as_str(),
        "createdAt": rfc3339(s.created_at),
        "lastSeenAt": rfc3339(s.last_seen_at),
        "expiresAt": rfc3339(s.expires_at),
        "ip": s.ip,
        "country": s.country,
        "userAgent": s.user_agent,
        "device": s.device.as_ref().map(|d| json!({"id": d.id.as_str(), "name": d.name})),
    })
}

/// Aligned columns, a header first; `-` where nothing is known.
fn table(sessions: &[LiveSession]) -> String {
    let known = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let rows: Vec<[String; 8]> = sessions
        .iter()
        .map(|s| {
            [
                s.id.as_str().to_owned(),
                s.state.as_str().to_owned(),
                rfc3339(s.created_at),
                rfc3339(s.last_seen_at),
                known(s.ip.as_deref()),
                known(s.country.as_deref()),
                known(s.device.as_ref().and_then(|d| d.name.as_deref())),
                known(s.user_agent.as_deref()),
            ]
        })
        .collect();
    super::table::render(
        [
            "SESSION",
            "STATE",
            "CREATED",
            "LAST SEEN",
            "IP",
            "COUNTRY",
            "DEVICE",
            "USER AGENT",
        ],
        &rows,
    )
}
