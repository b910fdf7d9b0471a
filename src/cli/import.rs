//! `customers import FILE`: streams JSON Lines into batched transactions. Plaintext passwords
//! are hashed on every core; lines that carry a `passwordHash` skip hashing entirely, which is
//! how a million customers load in minutes.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::domain::InvalidValue;
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::credentials::password::{Password, PasswordHasher, check_imported_hash};
use crate::domain::customers::accounts::Accounts;
use crate::domain::customers::{
    CustomerId, Email, KycStatus, NewCustomer, PersonName, Phone, Profile, Username,
};
use crate::domain::ports::Insertion;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON Lines: one customer a line, with the fields of customers/me plus `password` or
    /// `passwordHash`.
    file: PathBuf,
    /// Customers per transaction.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

/// One line of the file. (No `Debug`: it may hold a password.)
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportLine {
    customer_id: Option<String>,
    username: String,
    email: String,
    phone: Option<String>,
    first_name: String,
    last_name: String,
    kyc_status: Option<String>,
    two_factor: Option<TwoFactorLine>,
    password: Option<String>,
    password_hash: Option<String>,
}

#[derive(Deserialize)]
struct TwoFactorLine {
    enabled: bool,
    method: Option<String>,
}

/// A parsed line whose password may still need hashing.
struct Pending {
    line: u64,
    profile: Profile,
    password: Secret,
}

/// A line's password: given as a hash, or in plain text to hash.
enum Secret {
    Hash(String),
    Plain(Password),
}

/// A customer ready to store, with the line it came from.
struct Ready {
    line: u64,
    customer: NewCustomer,
}

impl Ready {
    fn new(line: u64, profile: Profile, password_hash: String) -> anyhow::Result<Self> {
        let customer = NewCustomer::new(profile, password_hash)
            .map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
        Ok(Self { line, customer })
    }
}

fn parse_line(line_no: u64, text: &str) -> Result<Pending, String> {
    let line: ImportLine = serde_json::from_str(text).map_err(|e| {
        // serde's message can quote values (a password among them): keep only its category.
        let text = e.to_string();
        let kind = text
            .split([':', '`'])
            .next()
            .unwrap_or("invalid JSON")
            .trim()
            .to_owned();
        format!("not a customer object ({kind})")
    })?;
    let f = |name: &'static str| move |e: InvalidValue| format!("{name} {e}");
    let two_factor = match line.two_factor {
        Some(t) if t.enabled => Some(
            t.method
                .as_deref()
                .unwrap_or("SMS")
                .parse::<TwoFactorMethod>()
                .map_err(f("twoFactor.method"))?,
        ),
        _ => None,
    };
    let id = match line.customer_id {
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            CustomerId::from_stored(id)
        }
        Some(_) => return Err("customerId must be 1 to 64 printable characters".into()),
        None => CustomerId::generate(),
    };
    let password = match (line.password, line.password_hash) {
        (Some(p), None) => Secret::Plain(Password::parse_new(p).map_err(f("password"))?),
        (None, Some(h)) => {
            check_imported_hash(&h).map_err(f("passwordHash"))?;
            Secret::Hash(h)
        }
        _ => return Err("exactly one of password and passwordHash is required".into()),
    };
    let profile = Profile {
        id,
        username: Username::parse(&line.username).map_err(f("username"))?,
        email: Email::parse(&line.email).map_err(f("email"))?,
        phone: line
            .phone
            .as_deref()
            .map(Phone::parse)
            .transpose()
            .map_err(f("phone"))?,
        first_name: PersonName::parse(&line.first_name).map_err(f("firstName"))?,
        last_name: PersonName::parse(&line.last_name).map_err(f("lastName"))?,
        kyc_status: line
            .kyc_status
            .as_deref()
            .unwrap_or("NOT_STARTED")
            .parse::<KycStatus>()
            .map_err(f("kycStatus"))?,
        two_factor,
    };
    // Refused here, with its line, rather than after its password is hashed.
    profile.first_factor().map_err(|e| e.to_string())?;
    Ok(Pending {
        line: line_no,
        profile,
        password,
    })
}

/// Hashes the plaintext passwords of a batch in parallel on the hashing pool; the batch comes
/// back in file order.
async fn hash_batch(hasher: &PasswordHasher, batch: Vec<Pending>) -> anyhow::Result<Vec<Ready>> {
    let mut tasks = JoinSet::new();
    let mut ready = Vec::with_capacity(batch.len());
    for Pending {
        line,
        profile,
        password,
    } in batch
    {
        match password {
            Secret::Hash(hash) => ready.push(Ready::new(line, profile, hash)?),
            Secret::Plain(password) => {
                // Keep no more hashes in flight than the pool has threads, so none is refused.
                if tasks.len() >= hasher.workers()
                    && let Some(done) = tasks.join_next().await
                {
                    ready.push(done.context("hashing task")??);
                }
                let hasher = hasher.clone();
                tasks
                    .spawn(async move { Ready::new(line, profile, hasher.hash(&password).await?) });
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        ready.push(done.context("hashing task")??);
    }
    // Hashes finish in any order; store in file order, so that of two lines naming one
    // customer the first always wins.
    ready.sort_unstable_by_key(|r| r.line);
    Ok(ready)
}

#[derive(Default)]
struct Summary {
    read: u64,
    imported: u64,
    /// The username exists (this customer or another): skipped, so imports can be repeated.
    skipped: u64,
    /// Lines refused: bad values, or a customerId another customer has.
    rejected: u64,
}

pub async fn run(args: ImportArgs, accounts: &Accounts) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reader = std::io::BufReader::new(file);
    let batch_size = args.batch_size.clamp(1, 100_000);
    let mut summary = Summary::default();
    let mut batch = Vec::with_capacity(batch_size);
    let mut text = String::new();
    let mut line_no = 0u64;
    loop {
        text.clear();
        let read = reader
            .read_line(&mut text)
            .context("reading the import file")?;
        if read == 0 {
            break;
        }
        line_no += 1;
        progress.inc(read as u64);
        if text.trim().is_empty() {
            continue;
        }
        summary.read += 1;
        match parse_line(line_no, text.trim()) {
            Ok(pending) => batch.push(pending),
            Err(why) => {
                summary.rejected += 1;
                progress.suspend(|| eprintln!("line {line_no}: {why}"));
            }
        }
        if batch.len() >= batch_size {
            flush(
                accounts,
                std::mem::take(&mut batch),
                &mut summary,
                &progress,
            )
            .await?;
            progress.set_message(format!("{} imported", summary.imported));
        }
    }
    flush(accounts, batch, &mut summary, &progress).await?;
    progress.finish_and_clear();
    println!(
        "read {} customers: {} imported, {} skipped (username exists), {} rejected",
        summary.read, summary.imported, summary.skipped, summary.rejected
    );
    Ok(if summary.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Stores a batch and counts what became of each line, naming the lines refused.
async fn flush(
    accounts: &Accounts,
    batch: Vec<Pending>,
    summary: &mut Summary,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let (lines, customers): (Vec<u64>, Vec<NewCustomer>) = hash_batch(accounts.hasher(), batch)
        .await?
        .into_iter()
        .map(|r| (r.line, r.customer))
        .unzip();
    let outcomes = accounts.import_batch(customers).await?;
    for (line, outcome) in lines.into_iter().zip(outcomes) {
        match outcome {
            Insertion::Inserted => summary.imported += 1,
            Insertion::UsernameExists => summary.skipped += 1,
            Insertion::CustomerIdExists => {
                summary.rejected += 1;
                progress.suspend(|| eprintln!("line {line}: customerId exists"));
            }
        }
    }
    Ok(())
}
