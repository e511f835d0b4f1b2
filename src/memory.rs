//! Giving memory back after a burst. glibc's malloc keeps what a burst of requests freed in
//! its per-thread arenas (the top of each heap is returned only past a threshold, the middle
//! never), so after an attack of thousands of streams the box stayed at the burst's peak for
//! good. A trim every few seconds hands free pages back to the kernel (`madvise`), which is
//! what a box sharing 1 GiB with other services needs. Measured against the alternatives in
//! `docs/PERFORMANCE.md` ("Memory after a burst").

use std::time::Duration;

/// How often free heap pages are handed back. A trim with nothing to give back costs a few
/// microseconds per arena; one that returns pages costs about a page-table walk of them.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Runs until the task set is cancelled.
pub async fn trim_forever() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // malloc_trim takes each arena's lock while it walks it: off the runtime workers.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

/// Hands free heap memory back to the kernel; a no-op where the allocator is not glibc's.
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and madvises free chunks of glibc's own arenas under their
    // locks; it takes no pointers from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
