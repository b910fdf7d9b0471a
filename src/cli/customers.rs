//! `customers create | import | lock | unlock | remove-factors | reset-password`, and the
//! session commands of `sessions.rs`.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand, ValueEnum};

use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::credentials::password::Password;
use crate::domain::customers::accounts::Accounts;
use crate::domain::customers::{
    CustomerId, Email, KycStatus, PersonName, Phone, Profile, Username,
};

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Create one customer, reading the password from standard input; prints the customerId.
    Create(CreateArgs),
    /// Bulk-create customers from a JSON Lines file (plaintext `password` or argon2 `passwordHash`).
    Import(super::import::ImportArgs),
    /// Lock a customer until an operator unlocks them; ends their sessions.
    Lock { username: String },
    /// Lift a lock and clear the failed-login count.
    Unlock { username: String },
    /// Remove every second factor and recovery code of a customer (a lost phone); the customer
    /// is told at every destination they held. Audited with the reason.
    RemoveFactors {
        username: String,
        /// Why (recorded in the audit trail); required.
        #[arg(long)]
        reason: String,
    },
    /// Set a new password for a customer who cannot reset it alone (the password policy
    /// applies), read from standard input; ends every session of theirs and clears failure
    /// locks, and the customer is told. Audited with the reason.
    ResetPassword {
        username: String,
        /// Read the password from standard input (required: passwords never go on the command
        /// line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Why (recorded in the audit trail); required.
        #[arg(long)]
        reason: String,
    },
    /// A customer's live sessions, in every state, newest first: a table, or JSON Lines named
    /// as `GET /api/v1/sessions` names them.
    Sessions {
        username: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Why (recorded in the audit trail with the look itself, which is recorded either way).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End every session of a customer without locking them (they may sign in again at once).
    /// Audited with the reason, even when none was live.
    EndSessions {
        username: String,
        /// Why (recorded in the audit trail); required.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TwoFactorArg {
    Off,
    Sms,
    Email,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
    /// E.164, e.g. +447700900123.
    #[arg(long)]
    phone: String,
    #[arg(long)]
    first_name: String,
    #[arg(long)]
    last_name: String,
    /// NOT_STARTED, PENDING, VERIFIED or REJECTED.
    #[arg(long, default_value = "NOT_STARTED")]
    kyc_status: String,
    #[arg(long, value_enum, default_value = "off")]
    two_factor: TwoFactorArg,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long, required = true)]
    password_stdin: bool,
}

pub async fn run(cmd: CustomersCommand, accounts: &Accounts) -> anyhow::Result<ExitCode> {
    match cmd {
        CustomersCommand::Create(args) => create(args, accounts).await,
        CustomersCommand::Import(args) => super::import::run(args, accounts).await,
        CustomersCommand::Lock { username } => {
            accounts.lock(&parse_username(&username)?).await?;
            println!("locked {}", username.trim().to_lowercase());
            Ok(ExitCode::SUCCESS)
        }
        CustomersCommand::Unlock { username } => {
            accounts.unlock(&parse_username(&username)?).await?;
            println!("unlocked {}", username.trim().to_lowercase());
            Ok(ExitCode::SUCCESS)
        }
        CustomersCommand::ResetPassword {
            username, reason, ..
        } => {
            let reason = operator_reason(&reason)?;
            let username = parse_username(&username)?;
            let password = read_password()?;
            accounts
                .reset_password(&username, &password, reason)
                .await?;
            println!("reset the password of {username}; every session of theirs ended");
            Ok(ExitCode::SUCCESS)
        }
        CustomersCommand::Sessions {
            username,
            json,
            reason,
        } => super::sessions::list(&username, json, reason.as_deref(), accounts).await,
        CustomersCommand::EndSessions { username, reason } => {
            super::sessions::end(&username, &reason, accounts).await
        }
        CustomersCommand::RemoveFactors { username, reason } => {
            let reason = operator_reason(&reason)?;
            let removed = accounts
                .remove_factors(&parse_username(&username)?, reason)
                .await?;
            println!(
                "removed {removed} factor(s) and every recovery code of {}",
                username.trim().to_lowercase()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `--reason` an operator gives: 1 to 500 characters, trimmed.
pub(super) fn operator_reason(raw: &str) -> anyhow::Result<&str> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(anyhow!("--reason must be 1 to 500 characters"));
    }
    Ok(reason)
}

/// A new password, read from the first line of standard input.
fn read_password() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Password::parse_new(line.trim_end_matches(['\r', '\n']).to_owned())
        .map_err(|e| anyhow!("the password {e}"))
}

pub(super) fn parse_username(raw: &str) -> anyhow::Result<Username> {
    Username::parse(raw).map_err(|e| anyhow!("username {e}"))
}

async fn create(args: CreateArgs, accounts: &Accounts) -> anyhow::Result<ExitCode> {
    let field = |name: &'static str| move |e: crate::domain::InvalidValue| anyhow!("--{name} {e}");
    let profile = Profile {
        id: CustomerId::generate(),
        username: Username::parse(&args.username).map_err(field("username"))?,
        email: Email::parse(&args.email).map_err(field("email"))?,
        phone: Some(Phone::parse(&args.phone).map_err(field("phone"))?),
        first_name: PersonName::parse(&args.first_name).map_err(field("first-name"))?,
        last_name: PersonName::parse(&args.last_name).map_err(field("last-name"))?,
        kyc_status: args
            .kyc_status
            .parse::<KycStatus>()
            .map_err(field("kyc-status"))?,
        two_factor: match args.two_factor {
            TwoFactorArg::Off => None,
            TwoFactorArg::Sms => Some(TwoFactorMethod::Sms),
            TwoFactorArg::Email => Some(TwoFactorMethod::Email),
        },
    };
    let password = read_password()?;
    accounts.check_new_password(&profile, &password).await?;
    let id = profile.id.clone();
    accounts.create(profile, &password).await?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
