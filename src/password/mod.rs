//! Passwords: argon2id hashing on a bounded worker pool, and the password policy.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

/// OWASP's argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19_456;
const PASSES: u32 = 2;
const LANES: u32 = 1;
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

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

fn params() -> Params {
    // The constants are valid parameters; `Params::DEFAULT` is the fallback the type requires.
    Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_LEN)).unwrap_or(Params::DEFAULT)
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing worker stopped")]
    Worker,
    /// More sign-ins than the workers can serve within the queue bound: answered at once
    /// (503 with `Retry-After`) rather than after a wait nobody would sit through.
    #[error("too many password checks waiting")]
    Busy,
}

/// A hash's duration before any was measured (our parameters on one core, about 40 ms).
const FIRST_GUESS_NANOS: u64 = 50_000_000;

/// A job for a worker; it gets the worker's own argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Computes argon2id on a fixed pool of threads, off the async runtime, at most one hash per
/// worker at a time, so a burst of logins queues up instead of starving other requests.
/// Each worker keeps its 19 MiB of argon2 memory and reuses it: memory stays at
/// workers × 19 MiB under load, and no hash pays for fresh pages. The workers run at a lower
/// priority than the runtime (nice 10), so token, JWKS and introspection requests keep their
/// speed while every worker hashes.
///
/// The queue is bounded in time: a hash that would wait longer than `queue_bound` for a
/// worker (as the queue ahead of it and the recent turns of the workers tell, with a margin)
/// is refused at once with `HashError::Busy`, and one that has waited that long gives up.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    workers: usize,
    jobs: mpsc::Sender<Job>,
    /// Hashes waiting for a worker (a metric, read at scrape time).
    waiting: Arc<AtomicUsize>,
    /// The recent duration of one worker's turn (a moving average), in nanoseconds.
    recent_nanos: Arc<AtomicU64>,
    queue_bound: Duration,
    metrics: crate::ops::metrics::Metrics,
}

/// How long a sign-in may wait for a hashing worker unless configured.
pub const DEFAULT_QUEUE_BOUND: Duration = Duration::from_secs(2);
/// The share of the queue bound a hash may expect to wait and still be let in.
const ADMITTED_SHARE: f64 = 0.8;
/// What a refused sign-in is told to wait (`Retry-After`): a burst passes within seconds.
pub const BUSY_RETRY_AFTER_SECONDS: u16 = 2;

impl PasswordHasher {
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing worker");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            jobs,
            waiting: Arc::default(),
            recent_nanos: Arc::new(AtomicU64::new(FIRST_GUESS_NANOS)),
            queue_bound: DEFAULT_QUEUE_BOUND,
            metrics: crate::ops::metrics::Metrics::off(),
        }
    }

    /// Records hash durations in `metrics`.
    pub fn observed_by(mut self, metrics: crate::ops::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How long a hash may wait for a worker (`PORTCULLIS_PASSWORD_QUEUE_TIMEOUT`).
    pub fn with_queue_bound(mut self, bound: Duration) -> Self {
        self.queue_bound = bound;
        self
    }

    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// One worker per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How long a hash asked for now would wait for a worker: none while one is free, else
    /// its turn among those ahead of it, a worker's recent turn per round of workers.
    fn expected_wait(&self, ahead: usize) -> Duration {
        if self.permits.available_permits() > 0 {
            return Duration::ZERO;
        }
        let rounds = (ahead / self.workers + 1) as u64;
        Duration::from_nanos(rounds.saturating_mul(self.recent_nanos.load(Ordering::Relaxed)))
    }

    /// Whether a hash asked for now would be refused: callers skip their other work first.
    /// A hash is let in only while its expected wait is within `ADMITTED_SHARE` of the
    /// bound: the estimate is an average, and one let in at the very edge would as often as
    /// not wait the whole bound and then be refused anyway.
    pub fn is_booked_up(&self) -> bool {
        let expected = self.expected_wait(self.waiting.load(Ordering::Relaxed));
        expected > self.queue_bound.mul_f64(ADMITTED_SHARE)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.is_booked_up() {
            self.metrics.throttled("password_queue");
            return Err(HashError::Busy);
        }
        let waiting = Waiting::new(&self.waiting);
        let span = tracing::info_span!("password.hash");
        tracing::Instrument::instrument(self.run_in_pool(waiting, work), span).await
    }

    async fn run_in_pool<T: Send + 'static>(
        &self,
        waiting: Waiting<'_>,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let acquire = Arc::clone(&self.permits).acquire_owned();
        let permit = match tokio::time::timeout(self.queue_bound, acquire).await {
            Ok(permit) => permit.map_err(|_| HashError::Worker)?,
            Err(_) => {
                self.metrics.throttled("password_queue");
                return Err(HashError::Busy);
            }
        };
        drop(waiting);
        let turn_began = Instant::now();
        let (reply, result) = oneshot::channel();
        let metrics = self.metrics.clone();
        let recent = Arc::clone(&self.recent_nanos);
        // The permit goes with the job and is given back when the hash is done, also when the
        // request that asked for it is gone: the permits count busy workers.
        let job: Job = Box::new(move |memory| {
            let started = Instant::now();
            let answer = work(memory);
            metrics.password_hashed(started.elapsed().as_secs_f64());
            // A worker's turn as the queue sees it: the hand-over to the worker and the hash.
            remember(&recent, turn_began.elapsed());
            drop(permit);
            let _ = reply.send(answer);
        });
        self.jobs.send(job).map_err(|_| HashError::Worker)?;
        result.await.map_err(|_| HashError::Worker)
    }

    /// Returns a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |memory| {
            let mut salt = [0u8; SALT_LEN];
            rand::rng().fill_bytes(&mut salt);
            let mut out = [0u8; OUTPUT_LEN];
            argon2()
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
                .map_err(|e| HashError::Hash(e.to_string()))?;
            Ok(format!(
                "$argon2id$v=19$m={MEMORY_KIB},t={PASSES},p={LANES}${}${}",
                STANDARD_NO_PAD.encode(salt),
                STANDARD_NO_PAD.encode(out)
            ))
        })
        .await?
    }

    /// Checks a password against a stored hash. With no hash (unknown user, or an account
    /// without a password) it does the same work against a dummy hash and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let matches = self
            .run(move |memory| verify_phc(password.as_bytes(), &hash, memory))
            .await?;
        Ok(known && matches)
    }
}

/// Folds one turn into the moving average (an eighth of the new one).
fn remember(recent: &AtomicU64, took: Duration) {
    let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    let before = recent.load(Ordering::Relaxed);
    let average = before - before / 8 + took / 8;
    recent.store(average, Ordering::Relaxed);
}

/// Counts one hash in the queue while it lives (also when the request is dropped while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn worker(queue: &Mutex<mpsc::Receiver<Job>>) {
    // Below the runtime's threads: while every worker hashes, other requests still get the
    // cores at once. On Linux this sets the calling thread's nice value.
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "cannot lower the hashing worker's priority");
    }
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                if memory.is_empty() {
                    memory = vec![Block::default(); params().block_count()];
                }
                job(&mut memory);
            }
            // Every sender is gone: the server is shutting down.
            Err(_) => return,
        }
    }
}

/// Hashes with our parameters use the worker's memory; any other (older) parameters take the
/// general path, so changing the parameters later keeps old hashes working.
fn verify_phc(password: &[u8], phc: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ours = Params::try_from(&parsed)
        .is_ok_and(|p| p.m_cost() == MEMORY_KIB && p.t_cost() == PASSES && p.p_cost() == LANES)
        && parsed.algorithm == argon2::ARGON2ID_IDENT
        && parsed.version == Some(0x13);
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    if !ours || expected.len() != OUTPUT_LEN {
        return Argon2::default().verify_password(password, &parsed).is_ok();
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = [0u8; OUTPUT_LEN];
    if argon2()
        .hash_password_into_with_memory(password, salt, &mut out, memory)
        .is_err()
    {
        return false;
    }
    out.ct_eq(expected.as_bytes()).into()
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

    /// A worker held by a job that waits for a signal: the pool is saturated for as long as
    /// the test wants, without timing anything.
    fn hold_the_worker(hasher: &PasswordHasher) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let hasher = hasher.clone();
        tokio::spawn(async move {
            let _ = hasher.run(move |_| held.recv()).await;
        });
        release
    }

    #[tokio::test]
    async fn beyond_the_queue_bound_a_hash_is_refused_at_once() {
        let hasher = PasswordHasher::new(1).with_queue_bound(Duration::from_secs(2));
        let release = hold_the_worker(&hasher);
        while hasher.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        // The worker is busy and a hash takes 50 ms (the first guess): these fit in the bound.
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.verify("pw-1234567890".into(), None).await })
            })
            .collect();
        while hasher.queue_depth() < 3 {
            tokio::task::yield_now().await;
        }
        // Hashes got slow (a second each): the next would wait four, refused without waiting.
        hasher.recent_nanos.store(1_000_000_000, Ordering::Relaxed);
        for _ in 0..10 {
            assert!(matches!(
                hasher.verify("pw-1234567890".into(), None).await,
                Err(HashError::Busy)
            ));
        }
        release.send(()).expect("release the worker");
        for hash in queued {
            assert!(matches!(hash.await.expect("joined"), Ok(false)));
        }
        // With the worker free again, hashes are taken.
        assert!(matches!(
            hasher.verify("pw-1234567890".into(), None).await,
            Ok(false)
        ));
    }

    #[tokio::test]
    async fn hashes_from_the_reference_implementation_and_other_parameters_verify() {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let hasher = PasswordHasher::new(1);
        // Made with the phc-winner-argon2 command-line tool.
        let reference = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$iPOQ5f2O21FsjnBvo1AiFcDuSXciCnKUrXFO+yfgNoM";
        let check = |password: &str, hash: &str| hasher.verify(password.into(), Some(hash.into()));
        assert!(matches!(
            check("correct horse battery", reference).await,
            Ok(true)
        ));
        assert!(matches!(
            check("correct horse batterx", reference).await,
            Ok(false)
        ));
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let params = Params::new(8192, 3, 1, None).expect("params");
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"older-parameters", &salt)
            .expect("hash")
            .to_string();
        assert!(matches!(check("older-parameters", &other).await, Ok(true)));
        assert!(matches!(check("older-parameterz", &other).await, Ok(false)));
        assert!(matches!(
            check("anything-at-all", "not a phc string").await,
            Ok(false)
        ));
    }
}
