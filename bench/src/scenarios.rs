//! The scenarios, in the order they run, and what they measured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::open_loop::{Call, Flows, Paced};
use crate::passkeys::PasskeyLogins;
use crate::target::{Database, Launch, PASSWORD, Server};
use crate::wrk::{Request, Throughput};
use crate::{Args, cpu, hash_bound, open_loop, passkeys, pgbench, wrk};

/// Every figure of one run.
#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub seconds_per_measurement: u64,
    /// argon2id hashes per second on every core, outside the service: the mean of every turn
    /// measured in the run (each ratio uses the turns taken beside its own side).
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
    pub paced_alone: Paced,
    pub paced_under_login_flood: Paced,
    pub flows: FlowsAgainstBound,
    pub passkey_logins: PasskeyLogins,
    pub peak_rss_mib: f64,
}

/// The same scenarios on PostgreSQL, with the database's own rate for a read beside them.
#[derive(Debug, Serialize)]
pub struct PostgresRun {
    pub reads: Reads,
    /// `pgbench -S -M prepared` with as many connections as the service reads through,
    /// measured in turns with `customers/me`.
    pub pgbench_select_per_sec: f64,
    pub pgbench_connections: u32,
    pub me_over_pgbench: f64,
    pub paced_alone: Paced,
    pub paced_under_login_flood: Paced,
    pub flows: FlowsAgainstBound,
    pub offered_load: OfferedLoad,
}

/// Throughput of authenticated reads against the cheapest request (and, on PostgreSQL,
/// against the database's own rate), and of logins against the hash bound; the two sides of
/// each ratio measured in turns ([`turns`]).
#[derive(Debug, Serialize)]
pub struct Reads {
    pub healthz: Throughput,
    pub customers_me: Throughput,
    pub me_over_healthz: f64,
    /// pgbench's select-only rate, in turns with `customers_me` (PostgreSQL only).
    pub pgbench_select_per_sec: Option<f64>,
    pub logins: Throughput,
    /// The hash bound, in turns with `logins`.
    pub hash_bound_per_sec: f64,
    pub logins_over_hash_bound: f64,
    /// Where the machine's time went during the logins.
    pub logins_cpu: cpu::Split,
    pub peak_rss_mib: f64,
}

/// Full flows against the hash bound, in turns.
#[derive(Debug, Serialize)]
pub struct FlowsAgainstBound {
    pub flows: Flows,
    pub hash_bound_per_sec: f64,
    pub over_hash_bound: f64,
    /// Where the machine's time went during the flows.
    pub cpu: cpu::Split,
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
/// The customers those clients sign in as, in turn (`passkeys::logins` says why several).
pub const PASSKEY_CUSTOMERS: std::ops::Range<u64> = 60..68;
/// The paced client: a signed-in customer's app polling its details.
const PACED_RATE: f64 = 50.0;
const FLOW_WORKERS: u64 = 8;
/// Turns per side of a ratio. This machine's speed drifts (a shared host: ±30 % from one
/// second to the next was seen, and 40 % between runs an hour apart), so a ratio whose two
/// sides ran minutes apart measures the drift as much as the service. Its two sides alternate
/// in short slices instead, and each sees the same machine.
const TURNS: u64 = 5;

/// How many turns a measurement of `d` a side takes, and how long each (whole seconds, as wrk
/// and pgbench count them).
fn turns(d: Duration) -> (u64, Duration) {
    let n = TURNS.min(d.as_secs()).max(1);
    (n, Duration::from_secs((d.as_secs() / n).max(1)))
}

/// The hash bound over `slice`, on every core.
async fn hash_bound(slice: Duration) -> anyhow::Result<hash_bound::Bound> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::task::spawn_blocking(move || hash_bound::measure(cores, slice)).await?
}

fn mean(rates: &[f64]) -> f64 {
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}

/// The bound's mean rate over its turns.
fn per_sec(turns: &[hash_bound::Bound]) -> f64 {
    mean(&turns.iter().map(|b| b.per_sec).collect::<Vec<_>>())
}

/// The bound's mean rate a second of a hashing thread's time, if every turn measured it.
fn per_cpu_sec(turns: &[hash_bound::Bound]) -> Option<f64> {
    let rates: Option<Vec<f64>> = turns.iter().map(|b| b.per_cpu_sec).collect();
    rates.filter(|r| !r.is_empty()).map(|r| mean(&r))
}

/// pgbench's side of the PostgreSQL read ratio.
pub struct Pgbench<'a> {
    pub url: &'a str,
    pub connections: u32,
}

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
    let reads = reads(&server, d, &work, None).await?;
    let me = me_call(&server).await?;
    let paced_alone = open_loop::paced(&me, PACED_RATE, d).await?;
    let paced_under_login_flood = under_login_flood(&server, &me, d, &work).await?;
    let flows = flows_against_bound(&server, d).await?;
    let passkey_logins =
        passkeys::logins(&server, &passkey_customers(), PASSKEY_CLIENTS, d).await?;
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
        postgres_run(args, &file, &work, d).await?
    };
    let mut bounds = vec![reads.hash_bound_per_sec, flows.hash_bound_per_sec];
    if let Some(pg) = &postgres {
        bounds.extend([pg.reads.hash_bound_per_sec, pg.flows.hash_bound_per_sec]);
    }

    sqlite.drop_all().await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(Results {
        machine,
        seconds_per_measurement: d.as_secs(),
        hash_bound_per_sec: mean(&bounds),
        sqlite: Main {
            reads,
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

/// `/healthz`, `customers/me` (and `pgbench` beside them, when given) in turns, then logins
/// and the hash bound in turns; closed loop.
pub async fn reads(
    server: &Server,
    d: Duration,
    work: &Path,
    pgbench: Option<&Pgbench<'_>>,
) -> anyhow::Result<Reads> {
    let token = server
        .login(&reqwest::Client::new(), "bench-0@example.com")
        .await?;
    let (n, slice) = turns(d);
    let (healthz_url, me_url) = (server.url("/healthz"), server.url("/api/v1/customers/me"));
    let (mut healthz, mut me, mut pg) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let anonymous = Request::Get { bearer: None };
        healthz.push(wrk::run(&healthz_url, &anonymous, READ_CONNECTIONS, slice, work).await?);
        let signed_in = Request::Get {
            bearer: Some(&token),
        };
        me.push(wrk::run(&me_url, &signed_in, READ_CONNECTIONS, slice, work).await?);
        if let Some(p) = pgbench {
            pg.push(pgbench::select_only(p.url, p.connections, slice).await?);
        }
    }
    let (logins, hash_bound_per_sec, logins_cpu) = logins_against_bound(server, d, work).await?;
    let (healthz, customers_me) = (Throughput::combined(&healthz), Throughput::combined(&me));
    Ok(Reads {
        me_over_healthz: customers_me.requests_per_sec / healthz.requests_per_sec,
        pgbench_select_per_sec: pgbench.map(|_| mean(&pg)),
        logins_over_hash_bound: logins.requests_per_sec / hash_bound_per_sec,
        healthz,
        customers_me,
        logins,
        hash_bound_per_sec,
        logins_cpu,
        peak_rss_mib: server.peak_rss_mib()?,
    })
}

fn passkey_customers() -> Vec<String> {
    PASSKEY_CUSTOMERS
        .map(|i| format!("bench-{i}@example.com"))
        .collect()
}

/// Logins and the hash bound in turns: the logins, the bound's mean, and where the machine's
/// time went during the logins.
async fn logins_against_bound(
    server: &Server,
    d: Duration,
    work: &Path,
) -> anyhow::Result<(Throughput, f64, cpu::Split)> {
    let (n, slice) = turns(d);
    let body = login_body("bench-1@example.com");
    let (login_url, login) = (
        server.url("/api/v1/auth/token"),
        Request::PostJson { body: &body },
    );
    let pid = server.pid()?;
    let (mut logins, mut bound, mut spent) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let before = cpu::Ticks::now(pid);
        logins.push(wrk::run(&login_url, &login, LOGIN_CONNECTIONS, slice, work).await?);
        spent.push(before.until(&cpu::Ticks::now(pid)));
        bound.push(hash_bound(slice).await?);
    }
    let logins = Throughput::combined(&logins);
    let cpu = cpu::Ticks::sum(&spent).split(logins.requests_per_sec, per_cpu_sec(&bound));
    Ok((logins, per_sec(&bound), cpu))
}

/// Logins and full flows against the hash bound, and passkey logins, alone on each store,
/// printed as they are measured: a quick comparison of two builds, which writes nothing.
pub async fn ratios(args: &Args) -> anyhow::Result<()> {
    let d = args.duration();
    let work = std::env::temp_dir().join(format!("finhub-ratios-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let file = work.join("customers.jsonl");
    crate::target::write_customers(&file, 100, FLOW_WORKERS)?;
    let sqlite = Database::Sqlite(work.join("main.db"));
    let postgres = if args.smoke {
        None
    } else {
        Database::postgres(&args.postgres)
            .await
            .inspect_err(|e| eprintln!("PostgreSQL skipped: {e:#}"))
            .ok()
    };
    for database in std::iter::once(&sqlite).chain(postgres.as_ref()) {
        let launch = Launch {
            binary: &args.binary,
            database,
            work_dir: &work,
            default_limits: false,
            settings: &[],
        };
        launch.import(&file).await?;
        let server = launch.start().await?;
        let (logins, bound, logins_cpu) = logins_against_bound(&server, d, &work).await?;
        let flows = flows_against_bound(&server, d).await?;
        let passkeys = passkeys::logins(&server, &passkey_customers(), PASSKEY_CLIENTS, d).await?;
        server.stop().await?;
        database.drop_all().await?;
        println!(
            "{}: logins {:.3} of the hash bound ({:.1}/s against {:.1}/s), flows {:.3} ({:.1}/s \
             against {:.1}/s, {} errors), passkey logins {:.0}/s ({} errors)",
            database.name(),
            logins.requests_per_sec / bound,
            logins.requests_per_sec,
            bound,
            flows.over_hash_bound,
            flows.flows.flows_per_sec,
            flows.hash_bound_per_sec,
            flows.flows.errors,
            passkeys.logins_per_sec,
            passkeys.errors,
        );
        println!("  logins' CPU: {logins_cpu}");
        println!("  flows' CPU: {}", flows.cpu);
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Full flows and the hash bound in turns.
async fn flows_against_bound(server: &Server, d: Duration) -> anyhow::Result<FlowsAgainstBound> {
    let (n, slice) = turns(d);
    let pid = server.pid()?;
    let (mut flows, mut bound, mut spent) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let before = cpu::Ticks::now(pid);
        flows.push(open_loop::flows(server, FLOW_WORKERS, slice).await?);
        spent.push(before.until(&cpu::Ticks::now(pid)));
        bound.push(hash_bound(slice).await?);
    }
    let (flows, hash_bound_per_sec) = (Flows::combined(&flows), per_sec(&bound));
    Ok(FlowsAgainstBound {
        over_hash_bound: flows.flows_per_sec / hash_bound_per_sec,
        cpu: cpu::Ticks::sum(&spent).split(flows.flows_per_sec, per_cpu_sec(&bound)),
        flows,
        hash_bound_per_sec,
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
    let url = database.url();
    pgbench::load(&url).await?;
    let server = launch.start().await?;
    let pgbench = Pgbench {
        url: &url,
        connections: read_connections,
    };
    let reads = reads(&server, d, work, Some(&pgbench)).await?;
    let pgbench_select_per_sec = reads
        .pgbench_select_per_sec
        .context("pgbench's rate beside the reads")?;
    let me = me_call(&server).await?;
    let paced_alone = open_loop::paced(&me, PACED_RATE, d).await?;
    let paced_under_login_flood = under_login_flood(&server, &me, d, work).await?;
    let flows = flows_against_bound(&server, d).await?;
    let offered_load = offered_load(&server, &reads, &me, d, false).await?;
    server.stop().await?;
    database.drop_all().await?;
    Ok(Some(PostgresRun {
        me_over_pgbench: reads.customers_me.requests_per_sec / pgbench_select_per_sec,
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
