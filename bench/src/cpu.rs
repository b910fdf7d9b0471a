//! Where the machine's processor time went while a scenario ran, read from `/proc` before and
//! after: the service's hashing threads, its other threads, PostgreSQL's processes, the load
//! generators (this bench and wrk), idle, and time the hypervisor took (steal).
//!
//! A ratio to the hash bound is the hashing threads' share of the machine times how fast a
//! hash runs in the service against the bound's own threads ([`Split::hash_speed`]): what the
//! other processes take, and what they slow the hash by, is what keeps the ratio from 1.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks spent, cumulative, as read at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ticks {
    hashing: u64,
    service: u64,
    database: u64,
    clients: u64,
    /// The machine's, every kind.
    all: u64,
    idle: u64,
    steal: u64,
    /// Time passed, on the clock: `all` would tell it only where every core counts.
    wall: Duration,
}

impl Ticks {
    /// What has been spent so far, where `service` is the service's process id. A process that
    /// ends meanwhile counts nothing: only the pool's long-lived connections are PostgreSQL's.
    pub fn now(service: u32) -> Self {
        let mut ticks = Self::default();
        let (all, hashing) = service_ticks(service);
        ticks.hashing = hashing;
        ticks.service = all.saturating_sub(hashing);
        let own = std::process::id();
        for (pid, comm, spent) in processes() {
            match comm.as_str() {
                "postgres" => ticks.database += spent,
                "wrk" => ticks.clients += spent,
                _ if pid == own => ticks.clients += spent,
                _ => {}
            }
        }
        if let Some((all, idle, steal)) = machine_ticks() {
            (ticks.all, ticks.idle, ticks.steal) = (all, idle, steal);
        }
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        ticks.wall = EPOCH.get_or_init(Instant::now).elapsed();
        ticks
    }

    /// What was spent from `self` until `later`.
    pub fn until(&self, later: &Self) -> Self {
        Self {
            hashing: later.hashing.saturating_sub(self.hashing),
            service: later.service.saturating_sub(self.service),
            database: later.database.saturating_sub(self.database),
            clients: later.clients.saturating_sub(self.clients),
            all: later.all.saturating_sub(self.all),
            idle: later.idle.saturating_sub(self.idle),
            steal: later.steal.saturating_sub(self.steal),
            wall: later.wall.saturating_sub(self.wall),
        }
    }

    /// Spans of one measurement taken in turns, as one.
    pub fn sum(spans: &[Self]) -> Self {
        spans.iter().fold(Self::default(), |a, b| Self {
            hashing: a.hashing + b.hashing,
            service: a.service + b.service,
            database: a.database + b.database,
            clients: a.clients + b.clients,
            all: a.all + b.all,
            idle: a.idle + b.idle,
            steal: a.steal + b.steal,
            wall: a.wall + b.wall,
        })
    }

    /// As shares of the machine's time, while the service hashed `rate` times a second,
    /// against the bound's `bound_per_cpu_sec` hashes a second of a thread's time.
    pub fn split(&self, rate: f64, bound_per_cpu_sec: Option<f64>) -> Split {
        let share = |t: u64| t as f64 / self.all.max(1) as f64;
        let hashes = rate * self.wall.as_secs_f64();
        let hashing_secs = self.hashing as f64 / TICKS_PER_SEC;
        let known =
            self.hashing + self.service + self.database + self.clients + self.idle + self.steal;
        let ms_each = |t: u64| t as f64 / TICKS_PER_SEC * 1000.0 / hashes;
        Split {
            hashing: share(self.hashing),
            service: share(self.service),
            database: share(self.database),
            clients: share(self.clients),
            idle: share(self.idle),
            steal: share(self.steal),
            other: share(self.all.saturating_sub(known)),
            hash_speed: bound_per_cpu_sec
                .filter(|bound| hashing_secs > 0.0 && *bound > 0.0)
                .map(|bound| hashes / hashing_secs / bound),
            each: (hashes >= 1.0).then(|| Each {
                hashing_ms: ms_each(self.hashing),
                service_ms: ms_each(self.service),
                database_ms: ms_each(self.database),
                clients_ms: ms_each(self.clients),
            }),
        }
    }
}

/// Processor time per operation measured (a login, a flow): unlike the shares, which the
/// hashing's speed on the host moves, these tell whether a change made the work beside the
/// hash smaller.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Each {
    pub hashing_ms: f64,
    pub service_ms: f64,
    pub database_ms: f64,
    pub clients_ms: f64,
}

/// Shares of the machine's processor time during a measurement.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Split {
    /// The service's hashing threads.
    pub hashing: f64,
    /// The service's other threads: HTTP, SQLite, the PostgreSQL client, delivery.
    pub service: f64,
    /// PostgreSQL's processes.
    pub database: f64,
    /// This bench's client and wrk.
    pub clients: f64,
    pub idle: f64,
    /// Taken by the hypervisor for other machines.
    pub steal: f64,
    /// Everything else: the kernel's own threads, other services on the machine.
    pub other: f64,
    /// Hashes per second of a hashing thread's time in the service, against the bound's own
    /// threads' (each side's processor time, so other work on the machine does not count):
    /// below 1 when the rest of the work slows a hash down (caches, memory).
    pub hash_speed: Option<f64>,
    /// The same time per operation; none when none was made.
    pub each: Option<Each>,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |x: f64| x * 100.0;
        write!(
            f,
            "hashing {:.0} %, service {:.0} %, database {:.0} %, clients {:.0} %, idle {:.0} %, \
             steal {:.0} %, other {:.0} %",
            pct(self.hashing),
            pct(self.service),
            pct(self.database),
            pct(self.clients),
            pct(self.idle),
            pct(self.steal),
            pct(self.other),
        )?;
        if let Some(speed) = self.hash_speed {
            write!(f, "; a hash ran at {speed:.2} of the bound's speed")?;
        }
        if let Some(each) = self.each {
            write!(
                f,
                "; each took {:.1} ms of hashing, {:.2} ms in the service, {:.2} ms in the \
                 database, {:.2} ms in the clients",
                each.hashing_ms, each.service_ms, each.database_ms, each.clients_ms
            )?;
        }
        Ok(())
    }
}

/// The service's ticks in all, and those of its hashing threads (named `argon2-N`).
fn service_ticks(pid: u32) -> (u64, u64) {
    let proc = Path::new("/proc").join(pid.to_string());
    let all = read_stat(&proc.join("stat")).map_or(0, |(_, spent)| spent);
    let hashing = std::fs::read_dir(proc.join("task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| read_stat(&task.path().join("stat")))
        .filter(|(comm, _)| comm.starts_with("argon2-"))
        .map(|(_, spent)| spent)
        .sum();
    (all, hashing)
}

/// Every process's id, name and ticks.
fn processes() -> impl Iterator<Item = (u32, String, u64)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let (comm, spent) = read_stat(&entry.path().join("stat"))?;
            Some((pid, comm, spent))
        })
}

/// A `stat` file's name and user plus system ticks.
fn read_stat(path: &Path) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// `pid (comm) state ppid …`: the name may hold spaces and parentheses, so the fields are
/// counted from its last `)`; user and system time are the 14th and 15th.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((comm, user + system))
}

/// The machine's ticks from `/proc/stat`: all, idle (with waiting on I/O) and stolen.
fn machine_ticks() -> Option<(u64, u64, u64)> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal; guest time is already in user.
    let t: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let [_, _, _, idle, iowait, _, _, steal] = t[..] else {
        return None;
    };
    Some((t.iter().sum(), idle + iowait, steal))
}

/// Linux's `USER_HZ`, which every `/proc` tick count is in.
pub const TICKS_PER_SEC: f64 = 100.0;

/// The calling thread's user and system ticks so far.
pub fn own_thread_ticks() -> Option<u64> {
    read_stat(Path::new("/proc/thread-self/stat")).map(|(_, spent)| spent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat = "4242 (tokio (rt) worker) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(stat),
            Some(("tokio (rt) worker".to_owned(), 168))
        );
    }

    #[test]
    fn the_machine_line_counts_waiting_on_io_as_idle() {
        let stat = "cpu  100 5 50 800 20 1 2 30 0 0\ncpu0 50 2 25 400 10 0 1 15 0 0\n";
        assert_eq!(parse_machine(stat), Some((1008, 820, 30)));
    }

    #[test]
    fn shares_add_up_and_the_hash_speed_compares_with_the_bound() {
        let cores = 2.0;
        // 10 s on two cores, of which hashing threads took 8 s a core and made 80 hashes a
        // core: 10 a second of a thread's time, as the bound's threads did.
        let all = (1000.0 * cores) as u64;
        let part = |share: f64| (share * all as f64) as u64;
        let spent = Ticks {
            hashing: part(0.8),
            service: part(0.1),
            database: part(0.05),
            clients: part(0.02),
            all,
            idle: part(0.01),
            steal: 0,
            wall: Duration::from_secs(10),
        };
        let split = spent.split(8.0 * cores, Some(10.0));
        assert!((split.hashing - 0.8).abs() < 1e-3);
        assert!((split.other - 0.02).abs() < 1e-3);
        let speed = split.hash_speed.unwrap_or_default();
        assert!((speed - 1.0).abs() < 1e-3, "{speed}");
        // 160 hashes in 10 s: each took 16 s / 160 of hashing and 2 s / 160 in the service.
        let each = split.each.unwrap_or_default();
        assert!((each.hashing_ms - 100.0).abs() < 1e-6, "{each:?}");
        assert!((each.service_ms - 12.5).abs() < 1e-6, "{each:?}");
        assert!((each.database_ms - 6.25).abs() < 1e-6, "{each:?}");
        assert!((each.clients_ms - 2.5).abs() < 1e-6, "{each:?}");
        assert!(spent.split(0.0, Some(10.0)).each.is_none());
    }

    #[test]
    fn a_thread_counts_its_own_time() {
        let before = own_thread_ticks().unwrap_or_default();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = own_thread_ticks()
            .unwrap_or_default()
            .saturating_sub(before);
        assert!(spent > 0, "{spent}");
    }

    #[test]
    fn this_process_is_found_and_spends_time() {
        let before = Ticks::now(std::process::id());
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = before.until(&Ticks::now(std::process::id()));
        assert!(spent.all > 0);
        assert!(spent.clients > 0, "{spent:?}");
    }
}
