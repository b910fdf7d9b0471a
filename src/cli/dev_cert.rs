//! `dev-cert [--out DIR]`: a self-signed certificate for `localhost` and `127.0.0.1`, for trying
//! HTTPS on a development machine. Never for production: nothing vouches for it, and builds
//! without the `dev-cert` cargo feature (release builds) leave the generator out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

#[derive(Debug, Args)]
pub struct DevCertArgs {
    /// Where `dev-cert.pem` and `dev-key.pem` are written.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// Writes the pair and prints the settings that use it.
pub fn run(args: &DevCertArgs) -> anyhow::Result<ExitCode> {
    let (cert_pem, key_pem) = generate()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let cert = args.out.join("dev-cert.pem");
    let key = args.out.join("dev-key.pem");
    write(&cert, cert_pem.as_bytes(), 0o644)?;
    write(&key, key_pem.as_bytes(), 0o600)?;
    println!(
        "FINHUB_TLS_CERT={} FINHUB_TLS_KEY={}",
        cert.display(),
        key.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The certificate and its private key, both PEM.
#[cfg(feature = "dev-cert")]
fn generate() -> anyhow::Result<(String, String)> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// Production builds carry no certificate generator: the command says how to get one.
#[cfg(not(feature = "dev-cert"))]
fn generate() -> anyhow::Result<(String, String)> {
    anyhow::bail!("this build leaves out dev-cert: build with `--features dev-cert`")
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
