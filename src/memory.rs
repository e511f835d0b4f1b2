//! Giving memory back after a burst. glibc's malloc keeps what a burst of requests freed in
//! its per-thread arenas (the top of each heap is returned only past a threshold, the middle
//! never), so after an attack of thousands of streams the box stayed at the burst's peak for
//! good. A trim every few seconds hands free pages back to the kernel (`madvise`), which is
//! what a box sharing 1 GiB with other services needs. Measured against the alternatives in
//! `docs/PERFORMANCE.md` ("Memory after a burst").
//!
//! The trim cannot reach the free top of a per-thread arena, though (glibc's `malloc_trim`
//! walks the bins of every arena but shrinks only the main heap). glibc's dynamic thresholds
//! made that matter: once a large block (a 19 MiB argon2 buffer) was freed, big allocations
//! were served from the arenas and each arena kept up to twice that size at its top for good.
//! The 60 s soak ended with ten arenas holding 19 MiB each, 204 MiB resident at idle.
//! [`tune`] pins both thresholds, so big blocks are always mapped and unmapped on their own
//! and an arena's top above a few MiB is handed back when freed ("Memory in a soak").

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

/// Blocks at least this big are mapped on their own and unmapped when freed: above every
/// buffer of the streaming path (read chunks up to 1 MiB), below the argon2 buffers (19 MiB).
const MMAP_THRESHOLD: i32 = 4 << 20;

/// How much free memory an arena's top may keep before `free` gives the rest back.
const TRIM_THRESHOLD: i32 = 4 << 20;

/// Arenas per core. glibc's default is 8 per core, and each arena keeps up to
/// `TRIM_THRESHOLD` free at its top: 16 arenas left the soak at 25–30 MiB after the load
/// against 10 MiB with 4 (`docs/PERFORMANCE.md`, "Memory in a soak").
const ARENAS_PER_CORE: usize = 2;

/// Pins glibc's mmap and trim thresholds (setting them turns off their growth) and caps its
/// arenas. Called once, before the runtime starts threads; a no-op where the allocator is not
/// glibc's.
#[allow(unsafe_code)]
pub fn tune() {
    let arenas = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_mul(ARENAS_PER_CORE)
        .clamp(2, 16);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's own tunables under its lock; no pointers are involved.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, arenas as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
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
