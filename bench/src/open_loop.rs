//! Open-loop load: requests sent on a fixed schedule whatever the answers do, with each latency
//! measured from when the request was due (so a stalled server cannot hide its queue), and the
//! whole customer flow end to end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use crate::outbox::Outbox;
use crate::target::{Server, login_at};

/// Latencies of an open-loop run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Paced {
    pub offered_per_sec: f64,
    pub achieved_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// A request to send again and again.
#[derive(Clone)]
pub enum Call {
    Get {
        url: String,
        bearer: Option<String>,
    },
    PostJson {
        url: String,
        body: Value,
    },
    /// A read as each of several customers in turn (their bffTokens).
    GetEach {
        url: String,
        bearers: Vec<String>,
    },
    /// A post of each body in turn (logins of several customers).
    PostJsonEach {
        url: String,
        bodies: Vec<Value>,
    },
}

impl Call {
    /// The `n`th request of a run.
    fn send(&self, client: &reqwest::Client, n: u64) -> reqwest::RequestBuilder {
        let nth = |len: usize| usize::try_from(n).unwrap_or(0) % len.max(1);
        match self {
            Self::Get { url, bearer } => {
                let request = client.get(url);
                match bearer {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                }
            }
            Self::PostJson { url, body } => client.post(url).json(body),
            Self::GetEach { url, bearers } => match bearers.get(nth(bearers.len())) {
                Some(token) => client.get(url).bearer_auth(token),
                None => client.get(url),
            },
            Self::PostJsonEach { url, bodies } => match bodies.get(nth(bodies.len())) {
                Some(body) => client.post(url).json(body),
                None => client.post(url),
            },
        }
    }
}

/// At most this many requests in flight; a schedule that needs more counts the rest as errors
/// rather than growing without bound.
const MAX_IN_FLIGHT: usize = 1024;

/// Sends `call` `rate` times a second for `duration`.
pub async fn paced(call: &Call, rate: f64, duration: Duration) -> anyhow::Result<Paced> {
    let client = reqwest::Client::new();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut sent: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < duration {
        let due = started + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(due.into()).await;
        sent += 1;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        };
        let (request, latencies, errors) = (
            call.send(&client, sent),
            Arc::clone(&latencies),
            Arc::clone(&errors),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let ok = request.send().await.is_ok_and(|r| r.status().is_success());
            if !ok {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let micros = due.elapsed().as_micros() as u64;
            if let Ok(mut h) = latencies.lock() {
                let _ = h.record(micros.max(1));
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let h = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?;
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Paced {
        offered_per_sec: rate,
        achieved_per_sec: (h.len().saturating_sub(errors)) as f64 / elapsed,
        p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
    })
}

/// The customer flow end to end: login → details → 2FA initiate → verify → logout.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Flows {
    pub flows_per_sec: f64,
    pub completed: u64,
    pub errors: u64,
    pub seconds: f64,
}

impl Flows {
    /// The slices of one measurement taken in turns with another, as one.
    pub fn combined(slices: &[Self]) -> Self {
        let completed = slices.iter().map(|f| f.completed).sum();
        let seconds = slices.iter().map(|f| f.seconds).sum::<f64>();
        Self {
            flows_per_sec: completed as f64 / seconds.max(f64::EPSILON),
            completed,
            errors: slices.iter().map(|f| f.errors).sum(),
            seconds,
        }
    }
}

/// Flows started before a measured window opens: by then every worker is mid-flow, as it is
/// all through the window.
const FLOWS_WARM_UP: Duration = Duration::from_millis(500);

/// Runs the flow on `workers` concurrent customers (`flow-0…`) and counts the flows completed
/// within a window of `duration`, with every worker busy from before it opens until it closes;
/// errors count wherever they happen. A count from the start to the last flow's end would add
/// the ramp and the tail, when fewer flows are in flight, and read low.
pub async fn flows(server: &Server, workers: u64, duration: Duration) -> anyhow::Result<Flows> {
    let outbox = Arc::new(Outbox::new(vec![server.outbox.clone()]));
    let base = server.base.clone();
    let opens = Instant::now() + FLOWS_WARM_UP;
    let closes = opens + duration;
    let counts = Counts::of_workers((0..workers).map(|w| {
        let (outbox, base) = (Arc::clone(&outbox), base.clone());
        async move {
            let client = reqwest::Client::new();
            let username = format!("flow-{w}@example.com");
            let mut counts = Counts::default();
            while Instant::now() < closes {
                let run = one_flow(&client, &base, &username, &outbox).await;
                let ended = Instant::now();
                match run {
                    Ok(()) if ended < opens || ended > closes => {}
                    run => counts.add(run),
                }
            }
            counts
        }
    }))
    .await?;
    let seconds = duration.as_secs_f64();
    Ok(Flows {
        flows_per_sec: counts.completed as f64 / seconds,
        completed: counts.completed,
        errors: counts.errors,
        seconds,
    })
}

/// What a closed-loop worker did: runs completed and failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub completed: u64,
    pub errors: u64,
}

impl Counts {
    pub fn add(&mut self, run: anyhow::Result<()>) {
        match run {
            Ok(()) => self.completed += 1,
            Err(_) => self.errors += 1,
        }
    }

    /// Runs each worker as a task of its own, and adds up what they did.
    pub async fn of_workers<W>(workers: impl IntoIterator<Item = W>) -> anyhow::Result<Self>
    where
        W: Future<Output = Self> + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in workers {
            tasks.spawn(worker);
        }
        let mut sum = Self::default();
        while let Some(done) = tasks.join_next().await {
            let counts = done?;
            sum.completed += counts.completed;
            sum.errors += counts.errors;
        }
        Ok(sum)
    }
}

async fn one_flow(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    outbox: &Outbox,
) -> anyhow::Result<()> {
    let url = |path: &str| format!("{base}{path}");
    let pending = &login_at(client, base, username).await?;
    client
        .get(url("/api/v1/customers/me"))
        .bearer_auth(pending)
        .send()
        .await?
        .error_for_status()?;
    let challenge: Value = client
        .post(url("/api/v1/auth/2fa/initiate"))
        .bearer_auth(pending)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let challenge_id = challenge["challengeId"].as_str().context("challengeId")?;
    let code = outbox.code(challenge_id).await?;
    let active: Value = client
        .post(url("/api/v1/auth/2fa/verify"))
        .bearer_auth(pending)
        .json(&json!({"challengeId": challenge_id, "code": code}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = active["bffToken"].as_str().context("bffToken")?;
    client
        .post(url("/api/v1/auth/logout"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
