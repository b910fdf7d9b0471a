//! Passwords: the secret type, and argon2id hashing on a fixed pool of hashing threads.
//!
//! Hashing is deliberately slow, so it never runs on the async executor: a login storm queues
//! here, up to a limit, and past it is refused at once instead of stalling every other request.

pub mod breached;
mod policy;
mod pool;

use std::sync::Arc;

use argon2::Params;
use argon2::password_hash::PasswordHash;
use secrecy::{ExposeSecret, SecretString};

pub use self::policy::{PasswordPolicy, Rejection};
use self::pool::{Done, Pool, Task};
use crate::domain::InvalidValue;

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

/// A customer's new password, hashed, replacing the one a session proved.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// Whose password.
    pub customer: crate::domain::customers::CustomerId,
    /// Their username: the change is refused while it is locked.
    pub username: crate::domain::customers::Username,
    /// The session that changed it: it stays; every other session of the customer ends.
    pub keep_session: crate::domain::sessions::SessionId,
    /// The hash the session's check was made against: the change happens only while it is
    /// still the stored one, so two concurrent changes cannot both win.
    pub old_hash: String,
    /// The new password's argon2 PHC string.
    pub new_hash: String,
    /// When it changed.
    pub at: time::OffsetDateTime,
}

/// What came of a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// The new password is set; the other sessions ended.
    Changed,
    /// The stored hash is no longer the one checked: another change won.
    HashMoved,
    /// The username was locked (perhaps by failures since the check): nothing changed.
    Locked {
        /// When the lock ends; `None` until an operator unlocks it.
        until: Option<time::OffsetDateTime>,
    },
    /// The session that asked ended meanwhile: nothing changed.
    SessionEnded,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory per hash, in KiB: the cost that makes guessing on GPUs expensive.
    pub memory_kib: u32,
    /// Passes over that memory.
    pub iterations: u32,
    /// Lanes; one keeps a login to one core.
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
    /// Every hashing thread is busy and the queue is full: answer 503 rather than wait.
    #[error("the password hashing queue is full")]
    Overloaded,
    /// argon2 refused its input or parameters.
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// The result of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// Whether the password is the one hashed.
    pub matches: bool,
    /// The stored hash used weaker (or other) parameters than today's and should be replaced.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on `workers` threads, with at most `queue` logins waiting; any
/// more are refused with [`HashError::Overloaded`].
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    pool: Pool,
    /// Verified against for unknown usernames, so they cost what known ones cost; only a
    /// hasher that checks logins has one.
    dummy_hash: Option<Arc<str>>,
}

impl PasswordHasher {
    /// A hasher that checks logins: it hashes a dummy password first, at the current cost, to
    /// verify unknown usernames against.
    pub async fn new(cost: HashCost, workers: usize, queue: usize) -> Result<Self, HashError> {
        let mut hasher = Self::for_new_passwords(cost, workers, queue)?;
        let dummy = Password(SecretString::from(
            "finhub-dummy-password-for-unknown-users",
        ));
        let dummy = hasher.hash(&dummy).await?;
        let inner = Arc::get_mut(&mut hasher.inner)
            .ok_or_else(|| HashError::Internal("the new hasher is already shared".into()))?;
        inner.dummy_hash = Some(Arc::from(dummy));
        Ok(hasher)
    }

    /// A hasher that only hashes new passwords (operator commands): no dummy hash to prepare.
    pub fn for_new_passwords(
        cost: HashCost,
        workers: usize,
        queue: usize,
    ) -> Result<Self, HashError> {
        Ok(Self {
            inner: Arc::new(Inner {
                params: cost.params()?,
                pool: Pool::start(workers, queue)?,
                dummy_hash: None,
            }),
        })
    }

    /// How many hashes run at once.
    pub fn workers(&self) -> usize {
        self.inner.pool.workers()
    }

    /// Hashes a new password into a PHC string.
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "password.hash",
        skip_all
    )]
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let task = Task::Hash {
            password: password.clone(),
            params: self.inner.params.clone(),
        };
        match self.inner.pool.run(task).await? {
            Done::Hashed(phc) => Ok(phc),
            Done::Verified(_) => Err(HashError::Internal("a hash was asked for".into())),
        }
    }

    /// Checks `password` against `stored`; with no stored hash (unknown username) it does the same
    /// work against a dummy hash and reports no match.
    #[tracing::instrument(
        target = "finhub_auth::traced",
        level = "debug",
        name = "password.verify",
        skip_all
    )]
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let known = stored.is_some();
        let stored = match stored {
            Some(hash) => Arc::from(hash),
            None => self
                .inner
                .dummy_hash
                .clone()
                .ok_or_else(|| HashError::Internal("this hasher checks no logins".into()))?,
        };
        let task = Task::Verify {
            password: password.clone(),
            stored,
            current: self.inner.params.clone(),
        };
        match self.inner.pool.run(task).await? {
            Done::Verified(v) => Ok(Verification {
                matches: known && v.matches,
                needs_rehash: known && v.needs_rehash,
            }),
            Done::Hashed(_) => Err(HashError::Internal("a verification was asked for".into())),
        }
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
        let hasher = PasswordHasher::new(CHEAP, 1, 4).await.unwrap();
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
        let hasher = PasswordHasher::new(CHEAP, 1, 4).await.unwrap();
        let v = hasher
            .verify(&pw("finhub-dummy-password-for-unknown-users"), None)
            .await
            .unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(CHEAP, 1, 4).await.unwrap();
        let hash = old.hash(&pw("correct horse")).await.unwrap();
        let stronger = HashCost {
            memory_kib: 2048,
            ..CHEAP
        };
        let new = PasswordHasher::new(stronger, 1, 4).await.unwrap();
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
    async fn past_the_threads_and_the_queue_a_task_is_refused_at_once() {
        let hasher = PasswordHasher::new(CHEAP, 1, 1).await.unwrap();
        let (one, two) = (pw("first"), pw("second"));
        let first = hasher.hash(&one);
        let second = hasher.hash(&two);
        tokio::pin!(first, second);
        // Each has taken its place once polled: one on the thread, one in the queue.
        assert!(futures::poll!(&mut first).is_pending());
        assert!(futures::poll!(&mut second).is_pending());

        let refused = hasher.hash(&pw("third")).await;

        assert!(matches!(refused, Err(HashError::Overloaded)));
        assert!(first.await.is_ok());
        assert!(second.await.is_ok());
        assert!(hasher.hash(&pw("again")).await.is_ok());
    }

    #[tokio::test]
    async fn hashes_made_with_reused_memory_verify_with_the_argon2_crate_and_back() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
        let hasher = PasswordHasher::new(CHEAP, 2, 4).await.unwrap();
        let ours = hasher.hash(&pw("correct horse")).await.unwrap();
        let reference = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            CHEAP.params().unwrap(),
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());

        let salt = SaltString::encode_b64(b"sixteen bytes!!!").unwrap();
        let theirs = reference
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        for (password, matches) in [("correct horse", true), ("wrong", false)] {
            let v = hasher.verify(&pw(password), Some(&theirs)).await.unwrap();
            assert_eq!((v.matches, v.needs_rehash), (matches, false), "{password}");
        }
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
