//! `finhub-bench`: every performance scenario of finhub-auth in one run, each ratio's two sides
//! measured in the same run on the same machine, written as a table (Markdown and JSON), plots
//! (SVG) and the figures section of docs/performance.md.

mod cpu;
mod hash_bound;
mod open_loop;
mod outbox;
mod passkeys;
mod pgbench;
mod report;
mod scale;
mod scenarios;
mod soak;
mod target;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Measures finhub-auth against the physical limits of this machine")]
pub struct Args {
    /// A few seconds in all, on small data: checks that every scenario runs (the test command
    /// runs this). Writes nothing into docs/.
    #[arg(long)]
    smoke: bool,
    /// The service binary to measure.
    #[arg(long, default_value = "target/release/finhub-auth")]
    binary: PathBuf,
    /// Where results.json, results.md and the plots go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// The document whose figures section is rewritten (not in smoke runs).
    #[arg(long, default_value = "docs/performance.md")]
    docs: PathBuf,
    /// PostgreSQL for the runs on PostgreSQL (a schema of their own is made and dropped).
    #[arg(
        long,
        env = "FINHUB_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Runs the soak alone instead: mixed traffic at 70 % of capacity on two instances sharing
    /// PostgreSQL for DURATION (`1h` when no value is given), written to soak.json, soak.svg and
    /// the soak section of the document.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "1h",
          value_parser = humantime::parse_duration)]
    soak: Option<Duration>,
    /// Runs the scale scenario alone instead: 1,000 and CUSTOMERS customers (10,000,000 when no
    /// value is given) on each backend, written to scale.json and the scale section of the
    /// document.
    #[arg(long, value_name = "CUSTOMERS", num_args = 0..=1, default_missing_value = "10000000",
          conflicts_with = "soak")]
    scale: Option<u64>,
    /// Runs only logins and full flows against the hash bound, and passkey logins, on each
    /// backend, and prints them: a quick comparison of builds that writes nothing.
    #[arg(long, conflicts_with_all = ["soak", "scale"])]
    ratios: bool,
}

impl Args {
    fn duration(&self) -> Duration {
        if self.smoke {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(self.seconds.max(1))
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Built in one workspace with the service, reqwest has rustls without a provider chosen
    // (the service's SMS client brings its own): every client here needs ring installed first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = Args::parse();
    // The service runs in a working directory of its own: name it absolutely.
    if let Ok(binary) = args.binary.canonicalize() {
        args.binary = binary;
    }
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.binary.exists(),
        "{} not found: build it first (cargo build --release)",
        args.binary.display()
    );
    if let Some(duration) = args.soak {
        return soak(args, duration).await;
    }
    if args.ratios {
        return scenarios::ratios(args).await;
    }
    if let Some(customers) = args.scale {
        return scale(args, customers).await;
    }
    let results = scenarios::run_all(args).await?;
    let out = if args.smoke {
        std::env::temp_dir().join(format!("finhub-bench-smoke-{}", std::process::id()))
    } else {
        args.out.clone()
    };
    std::fs::create_dir_all(&out)?;
    let table = report::write(&results, &out)?;
    println!("{table}");
    if args.smoke {
        std::fs::remove_dir_all(&out)?;
    } else {
        report::update_docs(&args.docs, &table)?;
        println!("written: {} and {}", out.display(), args.docs.display());
    }
    Ok(())
}

/// The soak alone; in a smoke run, a failed visit fails the run and nothing is written.
async fn soak(args: &Args, duration: Duration) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("finhub-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = soak_in(args, duration, &work).await;
    clean_up(&work, result.is_ok());
    result
}

/// Removes a run's working directory, or keeps it (and its service logs) when the run failed.
fn clean_up(work: &std::path::Path, succeeded: bool) {
    if succeeded {
        let _ = std::fs::remove_dir_all(work);
    } else {
        eprintln!("kept for its logs: {}", work.display());
    }
}

async fn soak_in(args: &Args, duration: Duration, work: &std::path::Path) -> anyhow::Result<()> {
    let Some(soak) = soak::run(&args.binary, &args.postgres, duration, work).await? else {
        return Ok(());
    };
    if args.smoke {
        println!("{}", soak::write(&soak, &work.join("results"), None)?);
        anyhow::ensure!(
            soak.no_failures(),
            "{} failures in {} visits: {:?}",
            soak.failures,
            soak.visits,
            soak.failure_reasons
        );
    } else {
        println!("{}", soak::write(&soak, &args.out, Some(&args.docs))?);
        println!(
            "written: {} (soak.json, soak.svg) and {}",
            args.out.display(),
            args.docs.display()
        );
    }
    Ok(())
}

const SCALE_BEGIN: &str = "<!-- scale:begin -->";
const SCALE_END: &str = "<!-- scale:end -->";

/// The scale scenario alone; a smoke run writes nothing.
async fn scale(args: &Args, customers: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        customers > 1_000,
        "--scale compares with 1,000 customers: give more"
    );
    let work = std::env::temp_dir().join(format!("finhub-scale-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let runs = scale::run(
        &args.binary,
        &args.postgres,
        customers,
        &work,
        args.duration(),
    )
    .await;
    clean_up(&work, runs.as_ref().is_ok_and(|r| r.failed.is_empty()));
    let runs = runs?;
    let failed = runs.failed.len();
    let md = format!(
        "Measured on {} cores ({}), {} build, {} s per measurement.\n\n{}",
        std::thread::available_parallelism().map_or(2, usize::from),
        scenarios::cpu_model(),
        scenarios::build_of(&args.binary),
        args.duration().as_secs(),
        scale::markdown(&runs)?
    );
    println!("{md}");
    if !args.smoke {
        std::fs::create_dir_all(&args.out)?;
        std::fs::write(
            args.out.join("scale.json"),
            serde_json::to_string_pretty(&runs)?,
        )?;
        report::replace_section(&args.docs, SCALE_BEGIN, SCALE_END, &md)?;
        println!(
            "written: {} and {}",
            args.out.join("scale.json").display(),
            args.docs.display()
        );
    }
    anyhow::ensure!(failed == 0, "{failed} scale runs failed");
    Ok(())
}
