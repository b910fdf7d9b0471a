//! The scenarios, in the order they run, and what they measured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::open_loop::{Call, Flows, Paced};
use crate::passkeys::PasskeyLogins;
use crate::target::{Database, Launch, PASSWORD, Server};
use crate::wrk::{Request, Throughput};
use crate::{Args, hash_bound, open_loop, passkeys, pgbench, wrk};

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub seconds_per_measurement: u64,
    /// argon2id hashes per second on every core, outside the service.
    pub hash_bound_per_sec: f64,
    pub sqlite: Main,
    /// What one client IP gets with the default rate limits.
    pub default_limits: DefaultLimits,
    pub postgres: Option<PostgresRun>,
    pub offered_load: OfferedLoad,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    /// The build measured: `release`, or `debug` in smoke runs.
    pub build: String,
}

/// The main run, on SQLite with rate limits off.
#[derive(Debug, Serialize)]
pub struct Main {
    pub reads: Reads,
    pub logins_over_hash_bound: f64,
    pub paced_alone: Paced,
    pub paced_under_login_flood: Paced,
    pub flows: Flows,
    pub passkey_logins: PasskeyLogins,
    pub peak_rss_mib: f64,
}

/// The same scenarios on PostgreSQL, with the database's own rate for a read beside them.
#[derive(Debug, Serialize)]
pub struct PostgresRun {
    pub reads: Reads,
    /// `pgbench -S -M prepared` with as many connections as the service reads through.
    pub pgbench_select_per_sec: f64,
    pub pgbench_connections: u32,
    pub me_over_pgbench: f64,
    pub logins_over_hash_bound: f64,
    pub paced_alone: Paced,
    pub paced_under_login_flood: Paced,
    pub flows: Flows,
    pub offered_load: OfferedLoad,
}

/// Throughput of logins and of authenticated reads against the cheapest request.
#[derive(Debug, Serialize)]
pub struct Reads {
    pub healthz: Throughput,
    pub customers_me: Throughput,
    pub me_over_healthz: f64,
    pub logins: Throughput,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct DefaultLimits {
    pub logins_accepted_per_sec: f64,
    pub reads_accepted_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct OfferedLoad {
    pub logins: Vec<Paced>,
    pub customers_me: Vec<Paced>,
}

/// Connections for the closed-loop runs: reads as the figures were taken, logins a
/// queue's worth.
const READ_CONNECTIONS: u32 = 32;
const LOGIN_CONNECTIONS: u32 = 16;
/// Passkey logins in flight: each client signs its assertion on the machine's own cores
/// between requests, so 16 of them left the server's writer waiting for work; with 64 the
/// service is the limit, as the rate of a capacity should be measured.
pub const PASSKEY_CLIENTS: u32 = 64;
/// The paced client: a signed-in customer's app polling its details.
const PACED_RATE: f64 = 50.0;
const FLOW_WORKERS: u64 = 8;

fn login_body(username: &str) -> String {
    json!({"username": username, "password": PASSWORD}).to_string()
}

pub async fn run_all(args: &Args) -> anyhow::Result<Results> {
    let d = args.duration();
    let work = std::env::temp_dir().join(format!("finhub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let machine = Machine {
        cores,
        cpu: cpu_model(),
        build: build_of(&args.binary),
    };

    eprintln!("hash bound: argon2id on {cores} cores…");
    let hash_bound_per_sec =
        tokio::task::spawn_blocking(move || hash_bound::measure(cores, d)).await??;

    let customers = if args.smoke { 100 } else { 1_000 };
    let file = work.join(format!("customers-{customers}.jsonl"));
    crate::target::write_customers(&file, customers, FLOW_WORKERS)?;
    let sqlite = Database::Sqlite(work.join("main.db"));
    let launch = Launch {
        binary: &args.binary,
        database: &sqlite,
        work_dir: &work,
        default_limits: false,
        settings: &[],
    };
    launch.import(&file).await?;

    eprintln!("SQLite: reads, logins, protection, flows…");
    let server = launch.start().await?;
    let reads = reads(&server, d, &work).await?;
    let logins_over_hash_bound = reads.logins.requests_per_sec / hash_bound_per_sec;
    let me = me_call(&server).await?;
    let paced_alone = open_loop::paced(&me, PACED_RATE, d).await?;
    let paced_under_login_flood = under_login_flood(&server, &me, d, &work).await?;
    let flows = open_loop::flows(&server, FLOW_WORKERS, d).await?;
    let passkey_logins = passkeys::logins(
        &server,
        "bench-6@example.com",
        PASSKEY_CLIENTS,
        d,
        reads.healthz.requests_per_sec,
    )
    .await?;
    // Before the offered-load runs, whose overload phases hold thousands of connections open.
    let peak_rss_mib = server.peak_rss_mib()?;
    eprintln!("SQLite: latency against offered load…");
    let offered_load = offered_load(&server, &reads, &me, d, args.smoke).await?;
    server.stop().await?;

    eprintln!("SQLite: default rate limits…");
    let limited = Launch {
        default_limits: true,
        ..launch
    };
    let default_limits = default_limits(&limited.start().await?, d, &work).await?;

    let postgres = if args.smoke {
        None
    } else {
        eprintln!("PostgreSQL: pgbench, reads, logins, protection, flows, offered load…");
        postgres_run(args, &file, &work, d, hash_bound_per_sec).await?
    };

    sqlite.drop_all().await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(Results {
        machine,
        seconds_per_measurement: d.as_secs(),
        hash_bound_per_sec,
        sqlite: Main {
            reads,
            logins_over_hash_bound,
            paced_alone,
            paced_under_login_flood,
            flows,
            passkey_logins,
            peak_rss_mib,
        },
        default_limits,
        postgres,
        offered_load,
    })
}

pub async fn me_call(server: &Server) -> anyhow::Result<Call> {
    let token = server
        .login(&reqwest::Client::new(), "bench-0@example.com")
        .await?;
    Ok(Call::Get {
        url: server.url("/api/v1/customers/me"),
        bearer: Some(token),
    })
}

/// `/healthz`, `customers/me` and logins, closed loop.
pub async fn reads(server: &Server, d: Duration, work: &Path) -> anyhow::Result<Reads> {
    let token = server
        .login(&reqwest::Client::new(), "bench-0@example.com")
        .await?;
    let healthz = wrk::run(
        &server.url("/healthz"),
        &Request::Get { bearer: None },
        READ_CONNECTIONS,
        d,
        work,
    )
    .await?;
    let customers_me = wrk::run(
        &server.url("/api/v1/customers/me"),
        &Request::Get {
            bearer: Some(&token),
        },
        READ_CONNECTIONS,
        d,
        work,
    )
    .await?;
    let body = login_body("bench-1@example.com");
    let logins = wrk::run(
        &server.url("/api/v1/auth/token"),
        &Request::PostJson { body: &body },
        LOGIN_CONNECTIONS,
        d,
        work,
    )
    .await?;
    Ok(Reads {
        me_over_healthz: customers_me.requests_per_sec / healthz.requests_per_sec,
        healthz,
        customers_me,
        logins,
        peak_rss_mib: server.peak_rss_mib()?,
    })
}

/// The paced client while wrk floods logins as fast as the service takes them.
async fn under_login_flood(
    server: &Server,
    me: &Call,
    d: Duration,
    work: &Path,
) -> anyhow::Result<Paced> {
    let body = login_body("bench-2@example.com");
    let url = server.url("/api/v1/auth/token");
    let work: PathBuf = work.to_owned();
    let flood = tokio::spawn(async move {
        wrk::run(
            &url,
            &Request::PostJson { body: &body },
            LOGIN_CONNECTIONS,
            d + Duration::from_secs(2),
            &work,
        )
        .await
    });
    // Let the flood fill the hashing queue first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paced = open_loop::paced(me, PACED_RATE, d).await?;
    flood.await??;
    Ok(paced)
}

/// Open-loop runs at fractions of the closed-loop maximum.
async fn offered_load(
    server: &Server,
    reads: &Reads,
    me: &Call,
    d: Duration,
    smoke: bool,
) -> anyhow::Result<OfferedLoad> {
    let fractions: &[f64] = if smoke {
        &[0.5]
    } else {
        &[0.25, 0.5, 0.75, 0.9, 1.0, 1.2]
    };
    let login = Call::PostJson {
        url: server.url("/api/v1/auth/token"),
        body: json!({"username": "bench-3@example.com", "password": PASSWORD}),
    };
    let mut result = OfferedLoad {
        logins: Vec::new(),
        customers_me: Vec::new(),
    };
    for f in fractions {
        let rate = reads.logins.requests_per_sec * f;
        result.logins.push(open_loop::paced(&login, rate, d).await?);
        let rate = reads.customers_me.requests_per_sec * f;
        result
            .customers_me
            .push(open_loop::paced(me, rate, d).await?);
    }
    Ok(result)
}

/// What a single client IP gets with the default limits: accepted answers per second.
async fn default_limits(
    server: &Server,
    d: Duration,
    work: &Path,
) -> anyhow::Result<DefaultLimits> {
    let token = server
        .login(&reqwest::Client::new(), "bench-4@example.com")
        .await?;
    let body = login_body("bench-5@example.com");
    let logins = wrk::run(
        &server.url("/api/v1/auth/token"),
        &Request::PostJson { body: &body },
        4,
        d,
        work,
    )
    .await?;
    let reads = wrk::run(
        &server.url("/api/v1/customers/me"),
        &Request::Get {
            bearer: Some(&token),
        },
        4,
        d,
        work,
    )
    .await?;
    Ok(DefaultLimits {
        logins_accepted_per_sec: logins.accepted_per_sec(),
        reads_accepted_per_sec: reads.accepted_per_sec(),
    })
}

/// The service's pool size (`FINHUB_DB_MAX_CONNECTIONS`' default). Its session lookups use one
/// connection per core within it (`store/postgres/mod.rs`), and pgbench gets as many.
const POSTGRES_CONNECTIONS: u32 = 8;

async fn postgres_run(
    args: &Args,
    file: &Path,
    work: &Path,
    d: Duration,
    hash_bound_per_sec: f64,
) -> anyhow::Result<Option<PostgresRun>> {
    let database = match Database::postgres(&args.postgres).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("PostgreSQL runs skipped: {e:#}");
            return Ok(None);
        }
    };
    let launch = Launch {
        binary: &args.binary,
        database: &database,
        work_dir: work,
        default_limits: false,
        settings: &[],
    };
    launch.import(file).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let read_connections = POSTGRES_CONNECTIONS.min(u32::try_from(cores)?).max(1);
    let pgbench_select_per_sec = pgbench::select_only(&database.url(), read_connections, d).await?;
    let server = launch.start().await?;
    let reads = reads(&server, d, work).await?;
    let me = me_call(&server).await?;
    let paced_alone = open_loop::paced(&me, PACED_RATE, d).await?;
    let paced_under_login_flood = under_login_flood(&server, &me, d, work).await?;
    let flows = open_loop::flows(&server, FLOW_WORKERS, d).await?;
    let offered_load = offered_load(&server, &reads, &me, d, false).await?;
    server.stop().await?;
    database.drop_all().await?;
    Ok(Some(PostgresRun {
        me_over_pgbench: reads.customers_me.requests_per_sec / pgbench_select_per_sec,
        logins_over_hash_bound: reads.logins.requests_per_sec / hash_bound_per_sec,
        pgbench_select_per_sec,
        pgbench_connections: read_connections,
        reads,
        paced_alone,
        paced_under_login_flood,
        flows,
        offered_load,
    }))
}

/// The build a binary comes from: `release`, or `debug` in smoke runs.
pub fn build_of(binary: &Path) -> String {
    binary
        .parent()
        .and_then(|dir| dir.file_name())
        .map_or_else(|| "unknown".into(), |n| n.to_string_lossy().into_owned())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
