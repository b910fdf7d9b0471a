//! Passwords: the secret type, and argon2id hashing on a bounded pool of blocking threads.
//!
//! Hashing is deliberately slow, so it never runs on the async executor: a login storm queues
//! here, up to a limit, and past it is refused at once instead of stalling every other request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::InvalidValue;

/// A password as typed by a customer. Its `Debug` prints `[REDACTED]`, so it cannot reach a log.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Longer inputs are refused before they cost hashing time.
    pub const MAX_BYTES: usize = 1024;
    /// The shortest password a new customer may choose.
    pub const MIN_NEW_CHARS: usize = 8;

    /// A password offered at login: anything non-empty up to the size limit.
    pub fn parse(raw: String) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            Err(InvalidValue("must not be empty"))
        } else if raw.len() > Self::MAX_BYTES {
            Err(InvalidValue("must be at most 1024 bytes"))
        } else {
            Ok(Self(SecretString::from(raw)))
        }
    }

    /// A password chosen for a new account, held to a minimum length.
    pub fn parse_new(raw: String) -> Result<Self, InvalidValue> {
        if raw.chars().count() < Self::MIN_NEW_CHARS {
            return Err(InvalidValue("must be at least 8 characters"));
        }
        Self::parse(raw)
    }

    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's first recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashCost {
    fn params(self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError::Internal(format!("argon2 parameters: {e}")))
    }
}

/// Why hashing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing queue is full")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash used weaker (or other) parameters than today's and should be replaced.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on at most `workers` threads, with at most `queue` logins
/// waiting; any more are refused with [`HashError::Overloaded`].
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    workers: Arc<Semaphore>,
    worker_count: usize,
    capacity: usize,
    in_flight: AtomicUsize,
    /// Verified against for unknown usernames, so they cost what known ones cost; only a
    /// hasher that checks logins has one.
    dummy_hash: Option<String>,
}

impl PasswordHasher {
    /// A hasher that checks logins: it hashes a dummy password first, at the current cost, to
    /// verify unknown usernames against.
    pub fn new(cost: HashCost, workers: usize, queue: usize) -> Result<Self, HashError> {
        let mut hasher = Self::for_new_passwords(cost, workers, queue)?;
        let dummy = hash_blocking(
            &hasher.inner.params,
            "finhub-dummy-password-for-unknown-users",
        )?;
        if let Some(inner) = Arc::get_mut(&mut hasher.inner) {
            inner.dummy_hash = Some(dummy);
        }
        Ok(hasher)
    }

    /// A hasher that only hashes new passwords (operator commands): no dummy hash to prepare.
    pub fn for_new_passwords(
        cost: HashCost,
        workers: usize,
        queue: usize,
    ) -> Result<Self, HashError> {
        let params = cost.params()?;
        let workers = workers.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                workers: Arc::new(Semaphore::new(workers)),
                worker_count: workers,
                capacity: workers + queue,
                in_flight: AtomicUsize::new(0),
                dummy_hash: None,
            }),
        })
    }

    /// How many hashes run at once.
    pub fn workers(&self) -> usize {
        self.inner.worker_count
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        let params = self.inner.params.clone();
        self.run(move || hash_blocking(&params, password.expose()))
            .await
    }

    /// Checks `password` against `stored`; with no stored hash (unknown username) it does the same
    /// work against a dummy hash and reports no match.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let known = stored.is_some();
        let hash = stored
            .or(self.inner.dummy_hash.as_deref())
            .ok_or_else(|| HashError::Internal("this hasher checks no logins".into()))?
            .to_owned();
        let password = password.clone();
        let params = self.inner.params.clone();
        let verification = self
            .run(move || Ok(verify_blocking(&params, password.expose(), &hash)))
            .await?;
        Ok(Verification {
            matches: known && verification.matches,
            needs_rehash: known && verification.needs_rehash,
        })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
    {
        let _slot = QueueSlot::take(&self.inner)?;
        let permit = Arc::clone(&self.inner.workers)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("hashing pool closed".into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .in_current_span()
        .await
        .map_err(|e| HashError::Internal(format!("hashing task: {e}")))?
    }
}

/// A place among the logins being hashed or waiting; given back on drop.
struct QueueSlot<'a>(&'a Inner);

impl<'a> QueueSlot<'a> {
    fn take(inner: &'a Inner) -> Result<Self, HashError> {
        let before = inner.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= inner.capacity {
            inner.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Overloaded);
        }
        Ok(Self(inner))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError::Internal(format!("salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Internal(e.to_string()))?;
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

fn verify_blocking(params: &Params, password: &str, stored: &str) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    let matches = argon2(params)
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    let current = Params::try_from(&parsed).ok();
    let needs_rehash = parsed.algorithm.as_str() != "argon2id"
        || current.is_none_or(|p| {
            p.m_cost() != params.m_cost()
                || p.t_cost() != params.t_cost()
                || p.p_cost() != params.p_cost()
        });
    Verification {
        matches,
        needs_rehash,
    }
}

/// The most expensive imported hash accepted: verifying one must not exhaust the service.
const MAX_IMPORTED_COST: HashCost = HashCost {
    memory_kib: 256 * 1024,
    iterations: 16,
    parallelism: 16,
};

/// Checks that an imported PHC string is an argon2id hash this service can verify at a bounded
/// cost; hashes with other parameters than today's are upgraded at the next login.
pub fn check_imported_hash(phc: &str) -> Result<(), InvalidValue> {
    let parsed = PasswordHash::new(phc).map_err(|_| InvalidValue("is not a PHC string"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(InvalidValue("must be an argon2id hash"));
    }
    let params =
        Params::try_from(&parsed).map_err(|_| InvalidValue("has unreadable argon2 parameters"))?;
    if params.m_cost() > MAX_IMPORTED_COST.memory_kib
        || params.t_cost() > MAX_IMPORTED_COST.iterations
        || params.p_cost() > MAX_IMPORTED_COST.parallelism
    {
        return Err(InvalidValue(
            "has argon2 parameters above m=262144, t=16, p=16",
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(InvalidValue("lacks a salt or a hash"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    fn pw(s: &str) -> Password {
        Password::parse(s.into()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(CHEAP, 1, 4).unwrap();
        let hash = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let good = hasher
            .verify(&pw("correct horse"), Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            good,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(
            !hasher
                .verify(&pw("wrong"), Some(&hash))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches() {
        let hasher = PasswordHasher::new(CHEAP, 1, 4).unwrap();
        let v = hasher
            .verify(&pw("finhub-dummy-password-for-unknown-users"), None)
            .await
            .unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(CHEAP, 1, 4).unwrap();
        let hash = old.hash(&pw("correct horse")).await.unwrap();
        let stronger = HashCost {
            memory_kib: 2048,
            ..CHEAP
        };
        let new = PasswordHasher::new(stronger, 1, 4).unwrap();
        let v = new.verify(&pw("correct horse"), Some(&hash)).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let hasher = PasswordHasher::new(CHEAP, 1, 0).unwrap();
        let slot = QueueSlot::take(&hasher.inner).unwrap();
        let refused = hasher.hash(&pw("x")).await;
        assert!(matches!(refused, Err(HashError::Overloaded)));
        drop(slot);
        assert!(hasher.hash(&pw("x")).await.is_ok());
    }

    #[test]
    fn imported_hashes_must_be_argon2id_at_a_bounded_cost() {
        let ok = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1MHhb5bTgdzmYBTTV1jVmfMgS0OoDMAnOVTeSa08Ezo";
        assert!(check_imported_hash(ok).is_ok());
        assert!(check_imported_hash(&ok.replace("argon2id", "argon2i")).is_err());
        assert!(check_imported_hash(&ok.replace("m=19456", "m=4194304")).is_err());
        assert!(check_imported_hash("$2b$12$notargon").is_err());
        assert!(check_imported_hash("plain").is_err());
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse(String::new()).is_err());
        assert!(Password::parse("x".repeat(1025)).is_err());
        assert!(Password::parse_new("short".into()).is_err());
        let p = pw("hunter2-secret");
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
