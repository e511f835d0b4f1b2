//! How big the next read of a stream is, from how quickly its consumer asks for chunks: big
//! reads for a client that keeps up, small ones for a client whose socket is full (a slow
//! player's frame waits in hyper until its socket drains, so small frames mean less memory
//! pinned per viewer; issue 17's 200 slow streams). The stream (`read`) tells the pace when
//! its consumer asked and when a chunk went out; the pace never reads a clock itself, so the
//! tests drive it with made-up times.

use std::time::{Duration, Instant};

/// Chunks grow up to this size while the consumer keeps up (a fast client), and fall back to
/// `streaming.chunk_kib` when it does not, so slow clients hold small buffers.
const MAX_CHUNK: u64 = 1024 * 1024;
/// A consumer that asks again within this time counts as fast.
const FAST_CONSUMER: Duration = Duration::from_millis(2);
/// A consumer that took this long to ask again is slow (its socket buffer is full): it gets
/// a quarter of `streaming.chunk_kib` per read, at least [`SLOW_CHUNK`].
const SLOW_CONSUMER: Duration = Duration::from_millis(50);
const SLOW_CHUNK: u64 = 16 * 1024;
/// A slow consumer's reads stay small this long after its last slow turn, even when its
/// socket takes a few chunks at once: a full socket buffer wakes its writer once a third of
/// it is free, and those quick turns looked fast and grew the chunk again, so the frame that
/// then waited for the socket was 64 KiB or more. 200 slow streams held 15 MiB of heap
/// steadily (heaptrack), 9 MiB of it in such frames. A fast client that stalls once (Wi-Fi)
/// grows again a second later, or sooner once it has taken [`RECOVER_AFTER`].
const STAY_SMALL: Duration = Duration::from_secs(1);
/// A consumer that took this much since its last slow turn reads fast again, even within
/// [`STAY_SMALL`]: more than a socket buffer takes in one wake-up with Linux's default
/// `tcp_wmem` ceiling (4 MiB; a writer wakes when a third of it is free), so a slow player
/// does not reach it between two slow turns. (A box whose ceiling is raised to 24 MiB or
/// more lets a slow player grow for one burst; the grown-chunk budget still bounds it.)
/// Without it, a download whose client was descheduled once for 50 ms read the next second
/// in quarter chunks: at loopback speed, most of a 1 GiB file.
const RECOVER_AFTER: u64 = 8 * 1024 * 1024;
/// A stream longer than one chunk starts with small reads for this long. Every client
/// looks fast at first, while its socket buffers fill (megabytes, on loopback within
/// milliseconds); the chunk read at the moment they are full then waits in hyper until the
/// client has drained them, which at a player's pace takes tens of seconds. Starting at
/// 64 KiB, 200 slow streams pinned 12 MiB that way.
const SLOW_START: Duration = Duration::from_millis(50);

pub(super) struct Pace {
    base: u64,
    chunk: u64,
    /// When the last chunk went out.
    last_out: Option<Instant>,
    /// When the consumer asked for the next one (its first poll since `last_out`): its own
    /// delay, not the disk's, decides whether it is fast or slow.
    asked: Option<Instant>,
    /// Reads are small until then: the consumer was slow lately ([`STAY_SMALL`]).
    small_until: Option<Instant>,
    /// Bytes that went out since the consumer's last slow turn ([`RECOVER_AFTER`]); `None`
    /// before it had one (the start's small reads are not cut short: every client fills its
    /// socket buffers quickly at first).
    since_slow: Option<u64>,
}

impl Pace {
    pub(super) fn new(base: u64) -> Pace {
        Pace {
            base,
            chunk: base,
            last_out: None,
            asked: None,
            small_until: None,
            since_slow: None,
        }
    }

    /// The consumer polled for a chunk at `now`; only its first poll since the last chunk
    /// counts.
    pub(super) fn asked(&mut self, now: Instant) {
        self.asked.get_or_insert(now);
    }

    /// A chunk of `n` bytes went out at `now`.
    pub(super) fn out(&mut self, now: Instant, n: u64) {
        self.last_out = Some(now);
        self.asked = None;
        if let Some(b) = self.since_slow.as_mut() {
            *b = b.saturating_add(n);
        }
    }

    /// The next read at `now`, with `left` bytes left in the range: its size, and what
    /// `grow` gave for a chunk larger than the base size (the grown-chunk budget's lease; a
    /// refusal means the small size). A read-ahead (`ahead`, started as a disk read came
    /// back) is not a consumer's turn: it neither grows the chunk nor judges the consumer.
    pub(super) fn next<T>(
        &mut self,
        now: Instant,
        left: u64,
        ahead: bool,
        grow: impl FnOnce(usize) -> Option<T>,
    ) -> (usize, Option<T>) {
        let at = self.asked.unwrap_or(now);
        let since = self.last_out.map(|t| at.saturating_duration_since(t));
        if !ahead {
            if since.is_some_and(|d| d >= SLOW_CONSUMER) {
                self.small_until = Some(now + STAY_SMALL);
                self.since_slow = Some(0);
            } else if since.is_none() && left > self.base {
                self.small_until = Some(now + SLOW_START);
            }
        }
        let recovered = self.since_slow.is_some_and(|b| b >= RECOVER_AFTER);
        let slow = !recovered && self.small_until.is_some_and(|t| now < t);
        let fast = !ahead && !slow && since.is_some_and(|d| d < FAST_CONSUMER);
        let small = if slow {
            (self.base / 4).max(SLOW_CHUNK).min(self.base)
        } else {
            self.base
        };
        let want = if fast {
            (self.chunk * 2).min(MAX_CHUNK.max(self.base))
        } else if ahead && !slow {
            self.chunk
        } else {
            small
        }
        .min(left);
        if want > self.base {
            if let Some(lease) = grow(want as usize) {
                self.chunk = want;
                return (want as usize, Some(lease));
            }
        }
        self.chunk = small;
        (left.min(small) as usize, None)
    }
}

#[cfg(test)]
#[path = "pace_tests.rs"]
mod tests;
