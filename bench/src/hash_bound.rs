//! The physical limit of logins: argon2id hashes per second on every core, with the service's
//! own crate and parameters, measured outside the service. Each thread reuses its memory, as the
//! service's hashing threads do, so this is the speed of the CPU and nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The service's default cost: 19 MiB, 2 iterations, 1 lane.
pub fn default_params() -> anyhow::Result<Params> {
    Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))
}

/// What the bound's threads did.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Hashes per second, all threads together.
    pub per_sec: f64,
    /// Hashes per second of a thread's processor time (`None` without `/proc`): how fast a
    /// hash runs, whatever else shared the cores meanwhile.
    pub per_cpu_sec: Option<f64>,
}

/// What `threads` threads hash in about `duration`.
pub fn measure(threads: usize, duration: Duration) -> anyhow::Result<Bound> {
    let params = default_params()?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu_ticks = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (stop, done, params) = (Arc::clone(&stop), Arc::clone(&done), params.clone());
            let (cpu_ticks, counted) = (Arc::clone(&cpu_ticks), Arc::clone(&counted));
            std::thread::spawn(move || {
                let started = crate::cpu::own_thread_ticks();
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut memory = vec![Block::default(); params.block_count()];
                let mut out = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    if argon2
                        .hash_password_into_with_memory(
                            b"a benchmark password",
                            b"sixteen byte salt",
                            &mut out,
                            &mut memory,
                        )
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                match (started, crate::cpu::own_thread_ticks()) {
                    (Some(a), Some(b)) => {
                        cpu_ticks.fetch_add(b.saturating_sub(a), Ordering::Relaxed);
                    }
                    _ => counted.store(false, Ordering::Relaxed),
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?;
    }
    let hashes = done.load(Ordering::Relaxed) as f64;
    let cpu_secs = cpu_ticks.load(Ordering::Relaxed) as f64 / crate::cpu::TICKS_PER_SEC;
    Ok(Bound {
        per_sec: hashes / started.elapsed().as_secs_f64(),
        per_cpu_sec: (counted.load(Ordering::Relaxed) && cpu_secs > 0.0).then(|| hashes / cpu_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's processor time is at most the time it ran, so hashes per second of it are
    /// at least the rate on the clock (tick rounding aside): each thread counts its own time.
    #[test]
    fn the_bound_counts_its_threads_own_time() {
        let bound = measure(1, Duration::from_millis(400)).unwrap();
        assert!(bound.per_sec > 0.0);
        let per_cpu_sec = bound.per_cpu_sec.unwrap_or_default();
        assert!(per_cpu_sec >= 0.8 * bound.per_sec, "{bound:?}");
    }
}
