//! The operator's command line. Each subcommand lives in its own file; every failure ends in one
//! line on standard error and a non-zero exit.

mod audit;
mod audit_search;
mod customers;
mod dev_cert;
mod import;
mod serve;
mod sessions;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::startup::{self, GeneratedKey, Services};
use crate::store::Migrations;

#[derive(Debug, Parser)]
#[command(
    name = "finhub-auth",
    version,
    about = "Signs in FinHub's individual customers"
)]
struct Cli {
    /// A TOML settings file; FINHUB_* environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (applies pending migrations first).
    Serve,
    /// Seed the demo customers (idempotent) and serve on a loopback address.
    Demo,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage customers.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// End sessions across customers.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Read and check the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Write a self-signed certificate for localhost, for trying HTTPS (never for production).
    DevCert(dev_cert::DevCertArgs),
}

/// Runs the command line and turns the outcome into an exit code.
pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to standard output as clap renders them; a usage error is one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's message is its lines up to the first blank one (usage and tips follow).
    let rendered = e.to_string();
    let joined = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    eprintln!("error: {message} (see --help)");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    let otlp = settings.server.otlp_endpoint()?;
    let traces = crate::telemetry::init(settings.server.log_format, otlp.as_ref())?;
    let result = dispatch(cli, settings).await;
    if let Some(traces) = traces {
        // The exporter waits for its last batch: off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    result
}

async fn dispatch(cli: Cli, mut settings: Settings) -> anyhow::Result<ExitCode> {
    for name in &settings.unknown_variables {
        tracing::warn!(variable = %name, "unknown FINHUB_ variable ignored");
    }
    match &cli.command {
        Command::Serve => startup::settle_audit_key(&mut settings, GeneratedKey::Create)?,
        Command::Demo => {
            serve::refuse_foreign_store(&settings)?;
            // Passkeys on the demo's own address (a port chosen by the system is not known
            // yet: none then).
            let port = settings.server.listen.port();
            if port != 0 {
                settings
                    .passkeys
                    .or_localhost(&format!("http://localhost:{port}"));
            }
            startup::settle_audit_key(&mut settings, GeneratedKey::Create)?;
        }
        Command::DevCert(_) => {}
        Command::Migrate | Command::Customers(_) | Command::Sessions(_) | Command::Audit(_) => {
            startup::settle_audit_key(&mut settings, GeneratedKey::Reuse)?;
        }
    }
    // Each command builds only what it needs: reading the audit trail changes nothing, not
    // even the schema; only serving prepares logins and code delivery.
    match cli.command {
        Command::Serve => {
            let services = Services::build(&settings, Arc::new(SystemClock)).await?;
            serve::serve(&settings, &services).await
        }
        Command::Demo => {
            let services = Services::build(&settings, Arc::new(SystemClock)).await?;
            serve::demo(&settings, &services).await
        }
        Command::Migrate => {
            startup::open_store(&settings, Migrations::Apply).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Customers(cmd) => {
            let accounts = startup::accounts(&settings, Arc::new(SystemClock)).await?;
            customers::run(cmd, &accounts).await
        }
        Command::Sessions(cmd) => {
            let accounts = startup::accounts(&settings, Arc::new(SystemClock)).await?;
            sessions::run(cmd, &accounts).await
        }
        Command::DevCert(args) => dev_cert::run(&args),
        Command::Audit(cmd) => {
            let store = startup::open_store(&settings, Migrations::Check).await?;
            let keys = settings.audit.anchor_keys()?;
            audit::run(cmd, store.as_ref(), &settings.audit.chain_seal()?, keys).await
        }
    }
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
