//! User passwords: Argon2id (RFC 9106) with the configured parameters, PHC string format.
//!
//! Hashing is CPU- and memory-heavy, so it runs on threads of its own, never on the runtime,
//! at most `password_hash.max_concurrent` at a time, at a lower CPU priority (nice
//! [`HASH_NICE`]): a burst of sign-ins then takes the CPU the token endpoint leaves instead of
//! an equal share of it, so other requests keep their latency while hashes wait (measured in
//! BENCHMARKS.md, "password_isolation"); with nothing else to run, the threads still get every
//! core, as nice only weighs threads that compete. Its working memory (`memory_kib` per
//! hash, 19 MiB by default) comes from a pool of at most `max_concurrent` buffers that are
//! allocated once and reused (`Argon2::hash_password_into_with_memory`): were each hash to
//! allocate its own, the allocator would keep a freed buffer per blocking thread (glibc's
//! per-thread arenas), and memory would grow with the number of threads rather than with
//! `max_concurrent` (SPEC §7). When the last running hash ends, the idle buffers' pages are
//! given back to the OS (`madvise(MADV_DONTNEED)`), so memory returns to idle after a burst.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::config::PasswordHashSettings;
use crate::crypto::{random_bytes, random_token};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password must not be empty")]
    Empty,
    #[error("invalid password-hash parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

fn params_of(settings: &PasswordHashSettings) -> Result<Params, PasswordError> {
    Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Params(e.to_string()))
}

fn hash_error(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(e.to_string())
}

/// Run Argon2 in `memory`, grown to the parameters' size if it is smaller (a hash made with
/// more memory than the current parameters), and never shrunk: it goes back to the pool.
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), PasswordError> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    argon2
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .map_err(hash_error)
}

/// Hash `password` with the current parameters and a fresh 128-bit salt, in `memory`.
fn hash_in(
    settings: &PasswordHashSettings,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let params = params_of(settings)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt_bytes = random_bytes::<16>().map_err(hash_error)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(hash_error)?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2_into(
            &argon2,
            &params,
            password.as_bytes(),
            &salt_bytes,
            out,
            memory,
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(hash_error)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(hash_error)?,
        salt: Some(Salt::from(&salt)),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Hash a new password with a fresh 128-bit salt from the OS CSPRNG (the CLI; its memory is
/// allocated for this one hash).
pub fn hash_blocking(
    params: &PasswordHashSettings,
    password: &str,
) -> Result<String, PasswordError> {
    hash_in(params, password, &mut Vec::new())
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    /// The password matched. `rehashed` is a new hash with the current parameters when the
    /// stored one was made with others: a hash cheaper than the current parameters would also
    /// answer faster than an unknown user's (the dummy hash), telling the two apart.
    Right {
        rehashed: Option<String>,
    },
}

/// Argon2 working memory: at most one buffer per permit, allocated on first use and reused.
struct MemoryPool {
    free: Mutex<Vec<Vec<Block>>>,
    allocated: AtomicUsize,
    in_use: AtomicUsize,
    peak_in_use: AtomicUsize,
    /// Times the idle buffers' pages were given back.
    trims: AtomicUsize,
}

impl MemoryPool {
    fn new() -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            allocated: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            peak_in_use: AtomicUsize::new(0),
            trims: AtomicUsize::new(0),
        }
    }

    /// Only called while holding a permit, so at most `permits` buffers ever exist.
    fn take(&self) -> Vec<Block> {
        let in_use = self.in_use.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_use.fetch_max(in_use, Ordering::SeqCst);
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::SeqCst);
            Vec::new()
        })
    }

    fn put(&self, memory: Vec<Block>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push(memory);
        if self.in_use.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The last running hash ended: the idle buffers' pages go back to the OS (the
            // buffers stay allocated, so the allocator never sees them freed), and memory
            // returns to idle after a burst. A check that takes one meanwhile waits for the
            // lock; its pages come back zeroed on first touch.
            for buffer in free.iter_mut() {
                release_pages(buffer);
            }
            drop(free);
            trim_heap();
            self.trims.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Give the whole pages inside `buffer` back to the OS; its memory stays mapped and reads
/// back as zeros.
#[cfg(unix)]
fn release_pages(buffer: &mut [Block]) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = buffer.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buffer);
    let (first, last) = (start.next_multiple_of(page), end / page * page);
    if last > first {
        // SAFETY: [first, last) lies inside `buffer`, which is private anonymous heap memory
        // borrowed mutably here, so nothing else reads or writes it. MADV_DONTNEED only makes
        // those pages read back as zeros on next touch, and all-zero bytes are a valid
        // `Block` (an array of u64).
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            );
        }
    }
}

#[cfg(not(unix))]
fn release_pages(_buffer: &mut [Block]) {}

/// A burst of sign-ins also leaves freed request memory in glibc's per-thread arenas, which
/// glibc only gives back from the top of each heap; `malloc_trim` returns every whole free
/// page (issue 11's flood benchmark: RSS back near idle after a burst instead of +40 %).
/// Called on this hashing thread when the pool goes idle, never on the async runtime.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// How the verifier's memory pool has been used (for tests and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers ever allocated.
    pub allocated: usize,
    /// The most buffers in use at once.
    pub peak_in_use: usize,
    /// The semaphore's size: `max_concurrent`, or the CPU count for 0.
    pub max_concurrent: usize,
    /// Times the pool went idle and gave its buffers' pages back to the OS.
    pub trims: usize,
}

/// How much nicer the hashing threads are than the server: CFS gives a thread 10 nice levels
/// up about a tenth of the CPU of one it competes with.
pub const HASH_NICE: i32 = 10;

type HashJob = Box<dyn FnOnce() + Send>;

/// Start `count` hashing threads at [`HASH_NICE`]; they end when the returned sender (and
/// every clone of it) is dropped.
fn start_hash_threads(count: usize) -> Result<mpsc::Sender<HashJob>, PasswordError> {
    let (jobs, queue) = mpsc::channel::<HashJob>();
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..count {
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                lower_own_priority();
                loop {
                    // The guard ends with the statement: the job runs unlocked.
                    let job = queue
                        .lock()
                        .map_err(drop)
                        .and_then(|q| q.recv().map_err(drop));
                    match job {
                        Ok(job) => job(),
                        Err(()) => return,
                    }
                }
            })
            .map_err(hash_error)?;
    }
    Ok(jobs)
}

#[cfg(target_os = "linux")]
fn lower_own_priority() {
    // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value. Failing to
    // lower it leaves it as it was: hashing still works, only less politely.
    // SAFETY: plain system calls on this thread's own id; no memory is passed.
    unsafe {
        let me = libc::gettid() as libc::id_t;
        // Relative to what the thread inherited (the server's own nice value), capped at 19.
        let inherited = libc::getpriority(libc::PRIO_PROCESS, me);
        libc::setpriority(libc::PRIO_PROCESS, me, (inherited + HASH_NICE).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority() {}

/// Checks passwords off the async runtime, at most `max_concurrent` at a time, in reused
/// memory, and at the same cost whether or not the user exists.
#[derive(Clone)]
pub struct PasswordVerifier {
    params: PasswordHashSettings,
    permits: Arc<Semaphore>,
    /// The hashing threads' queue; never longer than the free permits.
    threads: mpsc::Sender<HashJob>,
    max_concurrent: usize,
    pool: Arc<MemoryPool>,
    /// Argon2 evaluations of presented passwords so far (dummy ones included).
    evaluations: Arc<AtomicU64>,
    /// Verified against when the username is unknown, so that the answer takes as long.
    dummy_hash: Arc<str>,
}

impl PasswordVerifier {
    /// Hashes a random dummy password with the configured parameters (once, at startup).
    pub async fn new(params: &PasswordHashSettings) -> Result<Self, PasswordError> {
        let max_concurrent = match params.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let verifier = Self {
            params: *params,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            threads: start_hash_threads(max_concurrent)?,
            max_concurrent,
            pool: Arc::new(MemoryPool::new()),
            evaluations: Arc::new(AtomicU64::new(0)),
            dummy_hash: Arc::from(""),
        };
        let dummy_password = random_token().map_err(hash_error)?;
        let dummy_hash = verifier
            .in_pool(move |params, memory| hash_in(&params, &dummy_password, memory))
            .await?;
        Ok(Self {
            dummy_hash: dummy_hash.into(),
            ..verifier
        })
    }

    /// Run `work` on a hashing thread with a permit and a pooled buffer. The permit moves
    /// into the job: if the caller gives up (a request timeout), the hash still finishes
    /// before another may start, so `max_concurrent` bounds running hashes, not waiting
    /// requests; and as there are as many threads as permits, a job never waits for a thread.
    async fn in_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce(PasswordHashSettings, &mut Vec<Block>) -> Result<T, PasswordError>
        + Send
        + 'static,
    ) -> Result<T, PasswordError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(hash_error)?;
        let (pool, params) = (self.pool.clone(), self.params);
        let (done, result) = oneshot::channel();
        self.threads
            .send(Box::new(move || {
                let mut memory = pool.take();
                let outcome = work(params, &mut memory);
                pool.put(memory);
                // Free before answering: whoever hears the answer finds the permit back.
                drop(permit);
                // The caller may have given up; the hash is done either way.
                let _ = done.send(outcome);
            }))
            .map_err(hash_error)?;
        result.await.map_err(hash_error)?
    }

    /// Whether `password` matches `stored` (a PHC string); `None` for an unknown user costs
    /// the same and is `Wrong`.
    pub async fn verify(
        &self,
        stored: Option<&str>,
        password: String,
    ) -> Result<Verdict, PasswordError> {
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let evaluations = self.evaluations.clone();
        let verdict = self
            .in_pool(move |params, memory| {
                evaluations.fetch_add(1, Ordering::SeqCst);
                verify_in(&params, &stored, &password, memory)
            })
            .await?;
        Ok(if known { verdict } else { Verdict::Wrong })
    }

    /// How many presented passwords Argon2 has checked (for tests: the limiter must keep a
    /// burst of guesses from reaching Argon2).
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::SeqCst)
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            allocated: self.pool.allocated.load(Ordering::SeqCst),
            peak_in_use: self.pool.peak_in_use.load(Ordering::SeqCst),
            max_concurrent: self.max_concurrent,
            trims: self.pool.trims.load(Ordering::SeqCst),
        }
    }
}

/// Verify with the parameters recorded in the hash itself, so that hashes made before a
/// change of `password_hash` keep working; on a match, rehash if those were not the current.
fn verify_in(
    settings: &PasswordHashSettings,
    stored: &str,
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<Verdict, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(hash_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::Hash(
            "the stored hash has no salt or output".into(),
        ));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hash_error)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(hash_error)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(hash_error)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(hash_error)?;
    let computed = Output::init_with(expected.len(), |out| {
        argon2_into(
            &argon2,
            &params,
            password.as_bytes(),
            salt_bytes,
            out,
            memory,
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(hash_error)?;
    // `Output`'s equality is constant-time.
    if computed != expected {
        return Ok(Verdict::Wrong);
    }
    let rehashed = if has_current_parameters(settings, &parsed) {
        None
    } else {
        Some(hash_in(settings, password, memory)?)
    };
    Ok(Verdict::Right { rehashed })
}

fn has_current_parameters(params: &PasswordHashSettings, hash: &PasswordHash<'_>) -> bool {
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (params.memory_kib, params.iterations, params.parallelism)
        })
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(
    params: &PasswordHashSettings,
    password: String,
) -> Result<String, PasswordError> {
    let params = *params;
    tokio::task::spawn_blocking(move || hash_blocking(&params, &password))
        .await
        .map_err(hash_error)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_threads_of_lower_priority() {
        let verifier = PasswordVerifier::new(&params(1024)).await.unwrap();
        // SAFETY: a read of this thread's own nice value.
        let runtime_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (name, nice) = verifier
            .in_pool(|_, _| {
                let name = std::thread::current().name().map(str::to_owned);
                // SAFETY: a read of this thread's own nice value.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
                Ok((name, nice))
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("argon2-"));
        assert_eq!(nice, (runtime_nice + HASH_NICE).min(19));
    }

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() {
        let params = PasswordHashSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        };
        let hash = hash_blocking(&params, "correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        // The argon2 crate's own verifier agrees with the pooled hashing.
        use argon2::password_hash::PasswordVerifier as _;
        let parsed = PasswordHash::new(&hash).unwrap();
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            params_of(&params).unwrap(),
        );
        assert!(argon2.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon2.verify_password(b"wrong", &parsed).is_err());
        assert!(matches!(
            hash_blocking(&params, ""),
            Err(PasswordError::Empty)
        ));
    }

    fn params(memory_kib: u32) -> PasswordHashSettings {
        PasswordHashSettings {
            memory_kib,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
        }
    }

    #[tokio::test]
    async fn verifier_accepts_only_the_right_password_of_a_known_user() {
        let verifier = PasswordVerifier::new(&params(1024)).await.unwrap();
        let stored = hash_blocking(&params(1024), "correct horse").unwrap();
        let check = |stored: Option<String>, password: &'static str| {
            let verifier = verifier.clone();
            async move { verifier.verify(stored.as_deref(), password.into()).await }
        };
        assert_eq!(
            check(Some(stored.clone()), "correct horse").await.unwrap(),
            Verdict::Right { rehashed: None }
        );
        assert_eq!(
            check(Some(stored), "Correct horse").await.unwrap(),
            Verdict::Wrong
        );
        assert_eq!(check(None, "correct horse").await.unwrap(), Verdict::Wrong);
        assert!(check(Some("not a phc string".into()), "x").await.is_err());
    }

    /// Finding 2: Argon2 memory is a pool of at most `max_concurrent` buffers, however many
    /// checks run and however many blocking threads run them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_memory_pool_never_holds_more_than_max_concurrent_buffers() {
        let settings = PasswordHashSettings {
            max_concurrent: 3,
            ..params(1024)
        };
        let verifier = PasswordVerifier::new(&settings).await.unwrap();
        let stored = hash_blocking(&settings, "correct horse").unwrap();
        let checks: Vec<_> = (0..48)
            .map(|i| {
                let (verifier, stored) = (verifier.clone(), stored.clone());
                tokio::spawn(async move {
                    let known = (i % 2 == 0).then_some(stored.as_str());
                    verifier.verify(known, "guess".into()).await.unwrap()
                })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.unwrap(), Verdict::Wrong);
        }
        let stats = verifier.pool_stats();
        assert_eq!(verifier.evaluations(), 48);
        assert!(stats.peak_in_use <= 3, "{stats:?}");
        assert!((1..=3).contains(&stats.allocated), "{stats:?}");
        assert_eq!(stats.max_concurrent, 3);
        // Each buffer is the size of one hash's memory: 1024 blocks of 1 KiB.
        {
            let free = verifier.pool.free.lock().unwrap();
            assert_eq!(free.len(), stats.allocated);
            assert!(free.iter().all(|b| b.len() == 1024));
        }
        // The pool went idle (at least at the end) and gave its pages back; the zeroed
        // buffers still compute the right hashes.
        assert!(verifier.pool_stats().trims >= 1);
        assert_eq!(
            verifier
                .verify(Some(&stored), "correct horse".into())
                .await
                .unwrap(),
            Verdict::Right { rehashed: None }
        );
    }

    /// Finding 2: a caller that gives up (the request timed out) does not free the permit
    /// while its hash is still running, or more hashes than `max_concurrent` would run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_check_holds_its_permit_until_the_hash_ends() {
        let settings = PasswordHashSettings {
            memory_kib: 32 * 1024,
            iterations: 4,
            parallelism: 1,
            max_concurrent: 1,
        };
        let verifier = PasswordVerifier::new(&settings).await.unwrap();
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            verifier.verify(None, "guess".into()),
        )
        .await;
        assert!(abandoned.is_err(), "the check outlives the timeout");
        assert_eq!(
            verifier.permits.available_permits(),
            0,
            "the hash still runs, so its permit is still taken"
        );
        // The next check waits for it and then runs.
        assert_eq!(
            verifier.verify(None, "guess".into()).await.unwrap(),
            Verdict::Wrong
        );
        assert_eq!(verifier.permits.available_permits(), 1);
        assert_eq!(verifier.pool_stats().allocated, 1);
    }

    #[tokio::test]
    async fn a_hash_with_old_parameters_is_replaced_on_a_match_only() {
        let old = hash_blocking(&params(512), "correct horse").unwrap();
        let verifier = PasswordVerifier::new(&params(1024)).await.unwrap();
        assert_eq!(
            verifier.verify(Some(&old), "wrong".into()).await.unwrap(),
            Verdict::Wrong
        );
        let Verdict::Right {
            rehashed: Some(new),
        } = verifier
            .verify(Some(&old), "correct horse".into())
            .await
            .unwrap()
        else {
            panic!("a match with old parameters is rehashed");
        };
        assert!(new.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{new}");
        assert_eq!(
            verifier
                .verify(Some(&new), "correct horse".into())
                .await
                .unwrap(),
            Verdict::Right { rehashed: None }
        );
    }
}
