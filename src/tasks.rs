//! The service's background tasks as one owned set (tus sweep, SIGHUP reload, watchdog; the
//! library scanner, discovery and sync as they become async): every task is spawned through
//! [`TaskSet`], which tracks it by name, and ends when the set's cancellation token fires. The
//! service cancels the set when a drain starts and waits for it within the same grace period,
//! so nothing runs detached and nothing is silently abandoned at exit.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A cheap handle to the set: clones share the tasks and the token.
#[derive(Clone, Default)]
pub struct TaskSet {
    tracker: TaskTracker,
    cancel: CancellationToken,
    running: Arc<Running>,
}

/// Names of the tasks still running, by spawn order (for the log line naming the ones that
/// did not finish, and for tests).
#[derive(Default)]
struct Running {
    next: AtomicU64,
    names: Mutex<BTreeMap<u64, &'static str>>,
}

impl Running {
    fn names(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, &'static str>> {
        // The map is only ever inserted into and removed from; a panic cannot leave it torn.
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes its task's name when the task ends, however it ends (done, panicked, dropped).
struct NameGuard {
    running: Arc<Running>,
    id: u64,
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        self.running.names().remove(&self.id);
    }
}

impl TaskSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns the task `make(token)` returns. The task must end soon after `token` is
    /// cancelled; use this form when it has something to finish first (a reload in progress,
    /// a goodbye packet), else [`TaskSet::spawn_until_cancelled`].
    pub fn spawn<F, Fut>(&self, name: &'static str, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.running.next.fetch_add(1, Ordering::Relaxed);
        self.running.names().insert(id, name);
        let guard = NameGuard {
            running: self.running.clone(),
            id,
        };
        let task = make(self.cancel.clone());
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await;
            tracing::debug!(task = name, "background task ended");
        });
    }

    /// Spawns `task`, dropped at its next await point once the set is cancelled: for loops
    /// that hold nothing to finish (a timer, a periodic sweep whose work is transactional).
    pub fn spawn_until_cancelled(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn(name, |cancel| async move {
            cancel.run_until_cancelled(task).await;
        });
    }

    /// Asks every task to end (idempotent). New tasks spawned after this see the token
    /// already cancelled.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Names of the tasks still running, oldest first.
    pub fn running(&self) -> Vec<&'static str> {
        self.running.names().values().copied().collect()
    }

    /// Cancels the set, closes it and waits up to `within` for every task to end. Returns
    /// the names of those that did not (logged here); they are left to the runtime, which
    /// drops them when it shuts down.
    pub async fn stop(&self, within: Duration) -> Vec<&'static str> {
        self.cancel();
        self.tracker.close();
        if tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        let left = self.running();
        tracing::warn!(
            tasks = ?left,
            within_ms = within.as_millis() as u64,
            "background tasks did not finish in time; leaving them"
        );
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_cancels_every_task_and_waits_for_them() {
        let set = TaskSet::new();
        set.spawn_until_cancelled("forever", std::future::pending());
        let (tx, rx) = tokio::sync::oneshot::channel();
        set.spawn("cleans-up", |cancel| async move {
            cancel.cancelled().await;
            // Work after the cancellation still runs before `stop` returns.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send("cleaned");
        });
        tokio::task::yield_now().await;
        assert_eq!(set.running(), ["forever", "cleans-up"]);
        let left = set.stop(Duration::from_secs(1)).await;
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(rx.await.unwrap(), "cleaned");
        assert!(set.running().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn stop_names_the_tasks_that_ignore_cancellation() {
        let set = TaskSet::new();
        set.spawn("stubborn", |_cancel| std::future::pending());
        set.spawn_until_cancelled("polite", std::future::pending());
        let started = tokio::time::Instant::now();
        let left = set.stop(Duration::from_secs(2)).await;
        assert_eq!(left, ["stubborn"]);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_panicking_task_leaves_the_set() {
        let set = TaskSet::new();
        set.spawn("panics", |_| async { panic!("boom") });
        assert!(set.stop(Duration::from_secs(5)).await.is_empty());
        assert!(set.running().is_empty());
    }
}
