//! The `finhub-auth` binary: parses the command line and hands over to [`finhub_auth::cli`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    finhub_auth::cli::main().await
}
