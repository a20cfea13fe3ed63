//! Passwords: argon2id hashing on a bounded worker pool, and the password policy.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// OWASP's argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// A hash of a random, forgotten password with the same parameters. Unknown emails are checked
/// against it so that the response time does not tell whether an account exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$NFFadi9KL2hkZ1FqZTRrbg$nxC7gjf+m2BqxpT0nMsUyDIWFUMrgjm6fYO2rkPev4Y";

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;

static COMMON_PASSWORDS: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::DEFAULT` is the fallback the type requires.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing worker stopped")]
    Worker,
}

/// Computes argon2id off the async runtime, at most `workers` hashes at once, so a burst of
/// logins queues up instead of starving every other request.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(workers: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// One worker per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Worker)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError::Worker)
    }

    /// Returns a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || {
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Hash(e.to_string()))
        })
        .await?
    }

    /// Checks a password against a stored hash. With no hash (unknown user, or an account
    /// without a password) it does the same work against a dummy hash and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let matches = self
            .run(move || match PasswordHash::new(&hash) {
                Ok(parsed) => argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
                Err(_) => false,
            })
            .await?;
        Ok(known && matches)
    }
}

/// Why a new password is refused, phrased for the person choosing it.
pub fn check_policy(password: &str, email: &str) -> Result<(), &'static str> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err("Use at least 10 characters.");
    }
    if length > MAX_LENGTH {
        return Err("Use at most 1024 characters.");
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(lower.as_str()) {
        return Err("This password is too common. Choose one that is harder to guess.");
    }
    if !email.is_empty() && lower.trim() == email.trim().to_lowercase() {
        return Err("Don't use your email address as your password.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_and_common_passwords() {
        assert!(check_policy("short", "a@b.co").is_err());
        assert!(check_policy(&"x".repeat(1025), "a@b.co").is_err());
        assert!(check_policy("Password123", "a@b.co").is_err());
        assert!(check_policy("qwertyuiop", "a@b.co").is_err());
        assert!(check_policy("ann@example.com", "ann@example.com").is_err());
        assert!(check_policy("tangerine-lamp-42", "a@b.co").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash("tangerine-lamp-42".into()).await.ok();
        assert!(
            hash.as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"))
        );
        assert!(matches!(
            hasher
                .verify("tangerine-lamp-42".into(), hash.clone())
                .await,
            Ok(true)
        ));
        assert!(matches!(
            hasher.verify("wrong-password-1".into(), hash).await,
            Ok(false)
        ));
        assert!(matches!(
            hasher.verify("tangerine-lamp-42".into(), None).await,
            Ok(false)
        ));
    }
}
