//! The hashing threads: a fixed number of them, each reusing one set of argon2 memory blocks,
//! fed by a bounded queue.
//!
//! argon2id is memory-hard on purpose: 19 MiB per hash at the default cost. Allocating that for
//! every hash on ever-changing blocking threads costs page faults on each hash and, with glibc's
//! per-thread arenas, hundreds of MiB of resident memory under a login storm. A few long-lived
//! threads that keep their blocks hash at the speed of the CPU and hold `workers × 19 MiB`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;

use super::{HashError, Password, Verification};

/// What a hashing thread is asked to do.
pub(super) enum Task {
    /// Hash a new password with `params` and a fresh salt, into a PHC string.
    Hash { password: Password, params: Params },
    /// Check a password against a stored PHC string; `current` are today's parameters, to tell
    /// whether the stored hash should be upgraded.
    Verify {
        password: Password,
        stored: Arc<str>,
        current: Params,
    },
}

/// What a hashing thread answers.
pub(super) enum Done {
    Hashed(String),
    Verified(Verification),
}

struct Job {
    task: Task,
    reply: oneshot::Sender<Result<Done, HashError>>,
    span: tracing::Span,
}

/// The threads and the queue in front of them. Dropping it lets the threads finish and exit.
pub(super) struct Pool {
    queue: Sender<Job>,
    workers: usize,
    /// Tasks being hashed or waiting, and how many may be.
    in_flight: AtomicUsize,
    capacity: usize,
}

impl Pool {
    /// Starts `workers` threads (at least one) behind a queue of `waiting` places.
    pub(super) fn start(workers: usize, waiting: usize) -> Result<Self, HashError> {
        let workers = workers.max(1);
        // Admission is counted in `in_flight`; the channel itself never refuses.
        let (queue, jobs) = crossbeam_channel::unbounded();
        for n in 0..workers {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&jobs))
                .map_err(|e| HashError::Internal(format!("starting a hashing thread: {e}")))?;
        }
        Ok(Self {
            queue,
            workers,
            in_flight: AtomicUsize::new(0),
            // `FINHUB_HASH_QUEUE` may be as large as a usize: past the sum, nothing is refused.
            capacity: workers.saturating_add(waiting),
        })
    }

    pub(super) fn workers(&self) -> usize {
        self.workers
    }

    /// Runs a task on a hashing thread; refused at once when every thread is busy and the
    /// queue is full.
    pub(super) async fn run(&self, task: Task) -> Result<Done, HashError> {
        let _slot = Slot::take(self)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            task,
            reply,
            span: tracing::Span::current(),
        };
        self.queue
            .send(job)
            .map_err(|_| HashError::Internal("the hashing threads have stopped".into()))?;
        answer
            .await
            .map_err(|_| HashError::Internal("a hashing thread stopped".into()))?
    }
}

/// A place among the tasks being hashed or waiting; given back on drop, also when the caller
/// gives up (its task is then skipped unless a thread has started it).
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(pool: &'a Pool) -> Result<Self, HashError> {
        let before = pool.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= pool.capacity {
            pool.in_flight.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("finhub_hash_shed_total").increment(1);
            return Err(HashError::Overloaded);
        }
        metrics::gauge!("finhub_hash_in_flight").set((before + 1) as f64);
        Ok(Self(&pool.in_flight))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("finhub_hash_in_flight").set(before.saturating_sub(1) as f64);
    }
}

/// One hashing thread: takes jobs until the pool is dropped.
fn work(jobs: &Receiver<Job>) {
    let mut memory = Vec::new();
    for job in jobs {
        // The caller has gone (a client that hung up): the work would be wasted.
        if job.reply.is_closed() {
            continue;
        }
        let done = job.span.in_scope(|| match job.task {
            Task::Hash { password, params } => {
                hash(&mut memory, &password, params).map(Done::Hashed)
            }
            Task::Verify {
                password,
                stored,
                current,
            } => Ok(Done::Verified(verify(
                &mut memory,
                &password,
                &stored,
                &current,
            ))),
        });
        let _ = job.reply.send(done);
    }
}

/// Argon2 into `out`, with `memory` grown to what `params` need and then kept.
fn argon2_into(
    memory: &mut Vec<Block>,
    argon2: &Argon2<'_>,
    params: &Params,
    password: &Password,
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    argon2.hash_password_into_with_memory(
        password.expose().as_bytes(),
        salt,
        out,
        &mut memory[..params.block_count()],
    )
}

fn hash(memory: &mut Vec<Block>, password: &Password, params: Params) -> Result<String, HashError> {
    let internal = |e: &dyn std::fmt::Display| HashError::Internal(e.to_string());
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| internal(&e))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(memory, &argon2, &params, password, &salt, &mut out).map_err(|e| internal(&e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| internal(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|e| internal(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
    };
    Ok(phc.to_string())
}

fn verify(
    memory: &mut Vec<Block>,
    password: &Password,
    stored: &str,
    current: &Params,
) -> Verification {
    let refused = Verification {
        matches: false,
        needs_rehash: false,
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return refused;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return refused;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return refused;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return refused;
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = argon2_into(memory, &argon2, &params, password, salt, &mut out);
    let matches = computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()));
    let needs_rehash = algorithm != Algorithm::Argon2id
        || params.m_cost() != current.m_cost()
        || params.t_cost() != current.t_cost()
        || params.p_cost() != current.p_cost();
    Verification {
        matches,
        needs_rehash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hashing queue configured as large as a `usize` holds (`FINHUB_HASH_QUEUE`) must not
    /// overflow `workers + queue` and panic the service at start-up (or wrap to a tiny
    /// capacity that refuses every login).
    #[test]
    fn a_huge_queue_saturates_instead_of_overflowing() {
        let pool = Pool::start(2, usize::MAX).expect("a pool");
        assert_eq!(pool.capacity, usize::MAX);
        assert_eq!(pool.workers(), 2);
    }
}
