//! The one way async code runs blocking work (file systems, SQLite, argon2, external
//! programs): on tokio's blocking pool, bounded by a timeout, so a hung NFS mount or a stalled
//! disk turns into an error the caller maps (503) instead of a frozen runtime worker.
//!
//! A timed-out closure keeps running on its pool thread (a thread stuck in the kernel cannot
//! be cancelled); the pool is bounded (`max_blocking_threads` in `main`), so a hung mount
//! costs threads up to that bound, never the runtime.

use std::time::Duration;

/// Why blocking work produced no result.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    #[error("{op} did not finish within {secs} s")]
    Stalled { op: &'static str, secs: u64 },
    #[error("{op} failed: the task panicked or was cancelled")]
    Failed { op: &'static str },
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

/// Like [`run`], but `f` starts now, not when the returned future is first polled (a read
/// ahead: the next chunk is read while the current one is sent). The timeout counts from now.
pub fn spawn<T, E, F>(
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
}
