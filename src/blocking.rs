//! The one way async code runs blocking work (file systems, SQLite, argon2, external
//! programs): on tokio's blocking pool, bounded by a timeout, so a hung NFS mount or a stalled
//! disk turns into an error the caller maps (503) instead of a frozen runtime worker.
//!
//! A timed-out closure keeps running on its pool thread (a thread stuck in the kernel cannot
//! be cancelled); the pool is bounded (`max_blocking_threads` in `main`), so a hung mount
//! costs threads up to that bound, never the runtime.
//!
//! Storage does not draw on that pool freely: it goes through a [`Pool`], a budget of
//! threads of its own (`storage.max_threads`), so reads hung on a dead NFS server can hold at
//! most that many threads and SQLite, argon2 and the rest always find theirs.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why blocking work produced no result.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error("{op} did not finish within {secs} s")]
    Stalled { op: &'static str, secs: u64 },
    #[error("{op} failed: the task panicked or was cancelled")]
    Failed { op: &'static str },
}

/// A bounded share of the blocking pool for one kind of work (storage): at most `max`
/// closures run at once; a call waits for a free thread only within its own timeout, and
/// fails at once (`Stalled`) when every thread is held by a call that has already timed out
/// (a hung mount: waiting would only queue behind threads stuck in the kernel).
pub struct Pool {
    slots: Arc<Semaphore>,
    max: usize,
    /// Threads still running a closure whose caller has given up on it (timed out).
    stuck: Arc<AtomicUsize>,
}

/// A closure's state, shared by its thread and its caller, so exactly one of them counts it
/// in and out of `stuck`.
const RUNNING: u8 = 0;
const OVERDUE: u8 = 1;
const DONE: u8 = 2;

impl Pool {
    /// A pool of at most `max` threads (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Pool {
            slots: Arc::new(Semaphore::new(max)),
            max,
            stuck: Arc::default(),
        })
    }

    /// Threads held by closures that outlived their caller's timeout (for health output).
    pub fn stuck(&self) -> usize {
        self.stuck.load(Ordering::Relaxed)
    }

    /// The most closures that run at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Runs `f` on one of the pool's threads; `Stalled` after `timeout`, counted from now and
    /// including the wait for a free thread.
    pub async fn run<T, E, F>(
        self: &Arc<Self>,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<BlockingError> + Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.spawn(op, timeout, f).await
    }

    /// Like [`Pool::run`] for work that changes something in several steps: `f` is told,
    /// through its [`Watch`], whether its caller has given up (timed out, answered 503), so
    /// it stops before its next change instead of carrying it out unseen.
    pub async fn run_watched<T, E, F>(
        self: &Arc<Self>,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<BlockingError> + Send + 'static,
        F: FnOnce(&Watch) -> Result<T, E> + Send + 'static,
    {
        self.spawn_inner(op, timeout, f).await
    }

    /// Like [`Pool::run`], but `f` starts now when a thread is free (a read ahead), not when
    /// the returned future is first polled.
    pub fn spawn<T, E, F>(
        self: &Arc<Self>,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<BlockingError> + Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.spawn_inner(op, timeout, move |_: &Watch| f())
    }

    fn spawn_inner<T, E, F>(
        self: &Arc<Self>,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<BlockingError> + Send + 'static,
        F: FnOnce(&Watch) -> Result<T, E> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let stalled = move || BlockingError::Stalled {
            op,
            secs: timeout.as_secs(),
        };
        let pool = self.clone();
        let started = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(pool.launch(permit, f)),
            Err(_) => Err(f),
        };
        async move {
            let (handle, state) = match started {
                Ok(h) => h,
                Err(f) => {
                    if pool.stuck() >= pool.max {
                        return Err(stalled().into());
                    }
                    match tokio::time::timeout_at(deadline, pool.slots.clone().acquire_owned())
                        .await
                    {
                        Ok(Ok(permit)) => pool.launch(permit, f),
                        Ok(Err(_)) => return Err(BlockingError::Failed { op }.into()),
                        Err(_) => return Err(stalled().into()),
                    }
                }
            };
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(r)) => r,
                Ok(Err(join)) => {
                    tracing::error!(op, error = %join, "blocking task failed");
                    Err(BlockingError::Failed { op }.into())
                }
                Err(_) => {
                    if state
                        .compare_exchange(RUNNING, OVERDUE, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        pool.stuck.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(stalled().into())
                }
            }
        }
    }

    /// Starts `f` on the blocking pool holding `permit` until it returns (not until its
    /// caller stops waiting: a thread stuck in the kernel still counts).
    fn launch<R, F>(
        &self,
        permit: OwnedSemaphorePermit,
        f: F,
    ) -> (tokio::task::JoinHandle<R>, Arc<AtomicU8>)
    where
        R: Send + 'static,
        F: FnOnce(&Watch) -> R + Send + 'static,
    {
        let state = Arc::new(AtomicU8::new(RUNNING));
        let (mine, stuck) = (state.clone(), self.stuck.clone());
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let watch = Watch(mine.clone());
            // Counted out of `stuck` even if `f` panics.
            let _done = Done { state: mine, stuck };
            f(&watch)
        });
        (handle, state)
    }

    /// Starts a long-lived job (an upload's writer) on one of the pool's threads, waiting for
    /// a free one within `timeout`. The caller bounds each step of the job itself and tells
    /// the pool when it gives up on one ([`Job::give_up`]), so writers hung on a dead server
    /// count as stuck like timed-out calls: once every thread is, new jobs fail at once.
    pub async fn start<R, F>(
        self: &Arc<Self>,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> Result<Job<R>, BlockingError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let stalled = BlockingError::Stalled {
            op,
            secs: timeout.as_secs(),
        };
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.stuck() >= self.max => return Err(stalled),
            Err(_) => match tokio::time::timeout(timeout, self.slots.clone().acquire_owned()).await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(BlockingError::Failed { op }),
                Err(_) => return Err(stalled),
            },
        };
        let (handle, state) = self.launch(permit, move |_: &Watch| f());
        Ok(Job {
            handle,
            state,
            stuck: self.stuck.clone(),
        })
    }
}

/// A long-lived job on a [`Pool`] thread.
pub struct Job<R> {
    pub handle: tokio::task::JoinHandle<R>,
    state: Arc<AtomicU8>,
    stuck: Arc<AtomicUsize>,
}

impl<R> Job<R> {
    /// The caller stops waiting for the job (a step timed out, or the caller went away
    /// while the thread may still be in the kernel): it counts as stuck until it returns.
    pub fn give_up(&self) {
        if self
            .state
            .compare_exchange(RUNNING, OVERDUE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.stuck.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// What a closure run by [`Pool::run_watched`] sees of its caller.
pub struct Watch(Arc<AtomicU8>);

impl Watch {
    /// The caller stopped waiting (and answered that the work did not finish in time).
    pub fn gave_up(&self) -> bool {
        self.0.load(Ordering::Acquire) == OVERDUE
    }
}

struct Done {
    state: Arc<AtomicU8>,
    stuck: Arc<AtomicUsize>,
}

impl Drop for Done {
    fn drop(&mut self) {
        if self.state.swap(DONE, Ordering::AcqRel) == OVERDUE {
            self.stuck.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs `f` on the blocking pool; `Stalled` after `timeout`. `op` names the work in errors.
pub async fn run<T, E, F>(op: &'static str, timeout: Duration, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<BlockingError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    spawn(op, timeout, f).await
}

/// Like [`run`], but `f` starts now, not when the returned future is first polled. The
/// timeout counts from now. (Storage's read-ahead uses [`Pool::spawn`].)
fn spawn<T, E, F>(
    op: &'static str,
    timeout: Duration,
    f: F,
) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
where
    T: Send + 'static,
    E: From<BlockingError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let handle = tokio::task::spawn_blocking(f);
    let deadline = tokio::time::Instant::now() + timeout;
    async move {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => {
                tracing::error!(op, error = %join, "blocking task failed");
                Err(BlockingError::Failed { op }.into())
            }
            Err(_) => Err(BlockingError::Stalled {
                op,
                secs: timeout.as_secs(),
            }
            .into()),
        }
    }
}

/// Work that must finish however long it takes (a database write that is already
/// committed in spirit, a password hash): no timeout, only the pool.
pub async fn run_unbounded<T, E, F>(op: &'static str, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<BlockingError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(join) => {
            tracing::error!(op, error = %join, "blocking task failed");
            Err(BlockingError::Failed { op }.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum E {
        B(BlockingError),
    }
    impl From<BlockingError> for E {
        fn from(b: BlockingError) -> Self {
            E::B(b)
        }
    }

    #[tokio::test]
    async fn result_timeout_and_panic() {
        let ok: Result<u8, E> = run("quick", Duration::from_secs(5), || Ok(7)).await;
        assert_eq!(ok.ok(), Some(7));
        let slow: Result<(), E> = run("slow", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        })
        .await;
        assert!(matches!(
            slow,
            Err(E::B(BlockingError::Stalled { op: "slow", .. }))
        ));
        let boom: Result<(), E> =
            run_unbounded("boom", || -> Result<(), E> { panic!("on purpose") }).await;
        assert!(matches!(
            boom,
            Err(E::B(BlockingError::Failed { op: "boom" }))
        ));
    }

    /// A closure held until the test lets it go (a read hung on a dead server).
    fn hang(gate: &Arc<std::sync::Barrier>) -> impl FnOnce() -> Result<(), E> + Send + 'static {
        let gate = gate.clone();
        move || {
            gate.wait();
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_is_bounded_fails_fast_when_stuck_and_recovers() {
        let pool = Pool::new(2);
        // Two hung calls hold both threads (+1: the test's own wait on the barrier).
        let gate = Arc::new(std::sync::Barrier::new(3));
        let short = Duration::from_millis(100);
        let a = pool.spawn("read", short, hang(&gate));
        let b = pool.spawn("read", short, hang(&gate));
        assert!(matches!(a.await, Err(E::B(BlockingError::Stalled { .. }))));
        assert!(matches!(b.await, Err(E::B(BlockingError::Stalled { .. }))));
        assert_eq!(pool.stuck(), 2);
        // Every thread is stuck: a new call fails at its first poll instead of waiting out
        // its timeout.
        use futures_util::FutureExt;
        let c: Option<Result<u8, E>> = pool
            .spawn("read", Duration::from_secs(30), || Ok(1))
            .now_or_never();
        assert!(matches!(c, Some(Err(E::B(BlockingError::Stalled { .. })))));
        // The server comes back: the threads return and the pool works again by itself.
        let g = gate.clone();
        tokio::task::spawn_blocking(move || g.wait()).await.ok();
        for _ in 0..100 {
            if pool.stuck() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.stuck(), 0);
        let d: Result<u8, E> = pool.run("read", Duration::from_secs(5), || Ok(4)).await;
        assert_eq!(d.ok(), Some(4));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watched_call_sees_its_caller_give_up() {
        let pool = Pool::new(2);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let (g, seen) = (gate.clone(), Arc::new(AtomicU8::new(9)));
        let s = seen.clone();
        let r: Result<(), E> = pool
            .run_watched("change", Duration::from_millis(100), move |w| {
                s.store(u8::from(w.gave_up()), Ordering::SeqCst);
                g.wait(); // hung in its first step
                s.store(u8::from(w.gave_up()), Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(E::B(BlockingError::Stalled { .. }))));
        let g = gate.clone();
        tokio::task::spawn_blocking(move || g.wait()).await.ok();
        for _ in 0..100 {
            if pool.stuck() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Before the hang it still had a caller; after it, it knows it has none.
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        let ok: Result<bool, E> = pool
            .run_watched("change", Duration::from_secs(5), |w| Ok(w.gave_up()))
            .await;
        assert_eq!(ok.ok(), Some(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_queues_a_busy_but_healthy_call() {
        let pool = Pool::new(1);
        let first = pool.spawn("slow", Duration::from_secs(5), || -> Result<u8, E> {
            std::thread::sleep(Duration::from_millis(100));
            Ok(1)
        });
        // No thread is stuck, only busy: the second call waits for it and runs.
        let second: Result<u8, E> = pool.run("next", Duration::from_secs(5), || Ok(2)).await;
        assert_eq!(second.ok(), Some(2));
        assert_eq!(first.await.ok(), Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_given_up_count_as_stuck_until_they_return() {
        let pool = Pool::new(1);
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let short = Duration::from_millis(100);
        let job = pool
            .start("write", short, move || g.wait())
            .await
            .expect("a free thread");
        // A healthy job that holds the only thread: a new one waits, then times out.
        let t = std::time::Instant::now();
        assert!(pool.start("write", short, || ()).await.is_err());
        assert!(t.elapsed() >= short);
        // Its caller gave up on it (a hung write): new jobs now fail at once.
        job.give_up();
        job.give_up();
        assert_eq!(pool.stuck(), 1);
        let t = std::time::Instant::now();
        let late = pool.start("write", Duration::from_secs(30), || ()).await;
        assert!(matches!(late, Err(BlockingError::Stalled { .. })));
        assert!(t.elapsed() < Duration::from_secs(1));
        // It returns: no longer stuck, and the pool takes jobs again.
        let g = gate.clone();
        tokio::task::spawn_blocking(move || g.wait()).await.ok();
        let _ = job.handle.await;
        assert_eq!(pool.stuck(), 0);
        let next = pool.start("write", short, || 7).await.expect("a thread");
        assert_eq!(next.handle.await.ok(), Some(7));
    }
}
