//! Stalled connections give way when the shared send pool runs dry.
//!
//! The send budget (`budget`) bounds response memory with a global pool of frames. A client
//! that reads nothing, or a few KiB a second, keeps each frame it was given: a few addresses
//! with many such connections held the whole pool, and every other response on the box waited
//! behind them (`/healthz` took 53 s in an attack pass). Per-address shares only delay that
//! (three addresses, or many addresses with one frame each, still fill it), so fairness is
//! restored where the pool runs dry: a body that has waited `STARVED` for a global permit
//! closes one connection whose oldest frame has not been taken for `STALLED`, from the
//! address holding the most frames, provided that address holds more than the waiter's.
//! Closing the connection frees its frames (hyper's write queue and h2's stream buffers are
//! dropped with it). A player that is paused (its socket full) can be the one closed, but only
//! while the box is starved of send memory, and it resumes with a range request.
//!
//! Per chunk this costs a clock read when the frame goes out (`budget::Out`); the scan runs
//! only while some body waits, at most once per `SCAN_EVERY`.
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use std::os::fd::RawFd;

use tokio::sync::Notify;

use super::acked::{bytes_acked, Progress};
use super::budget::Out;

/// A frame that the socket has not taken for this long marks its connection as stalled.
/// A player at a LAN pace takes a 64 KiB frame in well under a second.
pub const STALLED: Duration = Duration::from_secs(2);
/// How long a body waits for the global pool before it looks for a stalled connection.
pub const STARVED: Duration = Duration::from_millis(500);
/// At most one scan per this interval, however many bodies wait.
const SCAN_EVERY: Duration = Duration::from_millis(20);
/// Connections asked how far their peer has read, at most, per scan (one `getsockopt` each).
const LOOK_AT_MOST: usize = 256;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since the first call, never 0 (a body's 0 means "no frame out").
pub fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// One live connection, as the scan sees it.
pub struct Conn {
    id: u64,
    /// The client's address; `None` when per-address limits are off (behind a proxy), where
    /// each connection counts as its own client.
    ip: Option<IpAddr>,
    /// The socket, to ask how far the peer has read (`acked`); `None` in tests.
    fd: Option<RawFd>,
    progress: Progress,
    bodies: Mutex<Vec<Weak<Out>>>,
    closing: AtomicBool,
    close: Notify,
}

impl Conn {
    /// Tracks a new response body of this connection.
    pub fn add_body(&self, out: &Arc<Out>) {
        let mut bodies = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
        // Finished bodies go here, so the list stays as long as the bodies in flight.
        bodies.retain(|w| w.strong_count() > 0);
        bodies.push(Arc::downgrade(out));
    }

    /// Frames out and the time the oldest went out.
    fn frames(&self) -> (usize, u64) {
        let bodies = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut n = 0;
        let mut oldest = u64::MAX;
        for since in bodies.iter().filter_map(Weak::upgrade).map(|o| o.since()) {
            if since != 0 {
                n += 1;
                oldest = oldest.min(since);
            }
        }
        (n, oldest)
    }

    /// Resolves when the scan chose this connection to close.
    pub async fn closed(&self) {
        self.close.notified().await
    }

    fn key(&self) -> Key {
        match self.ip {
            Some(ip) => Key::Ip(ip),
            None => Key::Conn(self.id),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Key {
    Ip(IpAddr),
    Conn(u64),
}

/// A connection and when its oldest frame went out.
type Aged<'a> = (u64, &'a Arc<Conn>);

/// Every live connection, for the scan.
#[derive(Default)]
pub struct Conns {
    next: AtomicU64,
    last_scan: AtomicU64,
    /// A plain list: connections come and go far less often than frames, and a scan reads
    /// them all anyway.
    table: Mutex<Vec<Arc<Conn>>>,
}

/// Removes its connection from the table when dropped.
pub struct Registered {
    conns: Arc<Conns>,
    conn: Arc<Conn>,
}

impl Registered {
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut table = self
            .conns
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = table.iter().position(|c| c.id == self.conn.id) {
            table.swap_remove(i);
        }
    }
}

impl Conns {
    pub fn register(self: &Arc<Self>, ip: Option<IpAddr>, fd: Option<RawFd>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            ip,
            fd,
            progress: Progress::default(),
            bodies: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.push(conn.clone());
        Registered {
            conns: self.clone(),
            conn,
        }
    }

    /// Called by a body of `waiter` that has waited `STARVED` for the global pool: closes the
    /// most stalled connection of the address holding the most frames, if that address holds
    /// more than the waiter's. Returns whether it closed one.
    pub fn relieve(&self, waiter: &Conn) -> bool {
        self.relieve_at(waiter, now_ms())
    }

    fn relieve_at(&self, waiter: &Conn, now: u64) -> bool {
        let last = self.last_scan.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SCAN_EVERY.as_millis() as u64
            || self
                .last_scan
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        let conns: Vec<Arc<Conn>> = {
            let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.clone()
        };
        // (client, frames out, oldest out, connection), grouped by client.
        let mut rows: Vec<(Key, usize, u64, Arc<Conn>)> = conns
            .into_iter()
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .filter_map(|c| {
                let (frames, oldest) = c.frames();
                (frames > 0).then(|| (c.key(), frames, oldest, c))
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        let stalled = |oldest: u64| now.saturating_sub(oldest) >= STALLED.as_millis() as u64;
        let mut mine = 0;
        // Per client: its frames, and its connections with a frame out past STALLED, the
        // oldest first.
        let mut candidates: Vec<(usize, Vec<Aged>)> = Vec::new();
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            let frames: usize = group.iter().map(|r| r.1).sum();
            if group[0].0 == waiter.key() {
                mine = frames;
            }
            let mut old: Vec<Aged> = group
                .iter()
                .filter(|r| stalled(r.2))
                .map(|r| (r.2, &r.3))
                .collect();
            if !old.is_empty() {
                old.sort_unstable_by_key(|c| c.0);
                candidates.push((frames, old));
            }
        }
        candidates.retain(|c| c.0 > mine);
        candidates.sort_by_key(|c| (std::cmp::Reverse(c.0), c.1[0].0));
        // The first whose peer is not reading either (by the bytes it acknowledged). Every
        // one looked at is sampled, so the next scan can judge those seen for the first time.
        let mut found = None;
        for (frames, since, c) in candidates
            .iter()
            .flat_map(|(frames, conns)| conns.iter().map(move |(since, c)| (*frames, *since, *c)))
            .take(LOOK_AT_MOST)
        {
            if !c.progress.reading(c.fd.and_then(bytes_acked), now) && found.is_none() {
                found = Some((frames, since, c));
            }
        }
        let Some((frames, since, victim)) = found else {
            return false;
        };
        victim.closing.store(true, Ordering::Relaxed);
        victim.close.notify_one();
        tracing::warn!(
            client = %victim.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            frames,
            stalled_ms = now.saturating_sub(since),
            "send pool full: closed a connection that stopped reading"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// A body of `conn` with a frame out since `at` (ms).
    fn frame(conn: &Conn, at: u64) -> Arc<Out> {
        let out = Out::out_since(at);
        conn.add_body(&out);
        out
    }

    fn closing(r: &Registered) -> bool {
        r.conn().closing.load(Ordering::Relaxed)
    }

    const T: u64 = 1_000_000;

    #[tokio::test]
    async fn the_richest_stalled_address_gives_way() {
        let conns = Arc::new(Conns::default());
        let a1 = conns.register(ip("10.0.0.1"), None);
        let a2 = conns.register(ip("10.0.0.1"), None);
        let b = conns.register(ip("10.0.0.2"), None);
        let me = conns.register(ip("10.0.0.9"), None);
        let _f = [
            frame(a1.conn(), T - 5_000),
            frame(a2.conn(), T - 9_000),
            frame(b.conn(), T - 30_000),
        ];
        // 10.0.0.1 holds two frames, 10.0.0.2 one: the first address's older frame goes.
        assert!(conns.relieve_at(me.conn(), T));
        assert!(closing(&a2) && !closing(&a1) && !closing(&b));
        tokio::time::timeout(Duration::from_secs(1), a2.conn().closed())
            .await
            .expect("the chosen connection is told to close");
        // A second scan within SCAN_EVERY does nothing.
        assert!(!conns.relieve_at(me.conn(), T + 1));
        // The next one passes over the connection already closing: 10.0.0.1 and 10.0.0.2
        // hold one frame each now, and the older goes.
        assert!(conns.relieve_at(me.conn(), T + 100));
        assert!(closing(&b) && !closing(&a1));
    }

    #[test]
    fn frames_being_taken_and_poorer_addresses_are_left_alone() {
        let conns = Arc::new(Conns::default());
        let a = conns.register(ip("10.0.0.1"), None);
        let me = conns.register(ip("10.0.0.9"), None);
        // A frame out for a moment is a socket at work, not a stall.
        let fresh = frame(a.conn(), T - 100);
        assert!(!conns.relieve_at(me.conn(), T));
        drop(fresh);
        // The waiter's own address holds as many frames: no one is richer, nothing closes.
        let _old = frame(a.conn(), T - 10_000);
        let mine = frame(me.conn(), T - 10_000);
        assert!(!conns.relieve_at(me.conn(), T + 100));
        // Once the waiter holds fewer, the stalled one goes.
        drop(mine);
        assert!(conns.relieve_at(me.conn(), T + 200));
        assert!(closing(&a));
    }

    #[test]
    fn without_addresses_each_connection_is_its_own_client() {
        let conns = Arc::new(Conns::default());
        let a = conns.register(None, None);
        let me = conns.register(None, None);
        let _f = frame(a.conn(), T - 10_000);
        assert!(conns.relieve_at(me.conn(), T));
        assert!(closing(&a) && !closing(&me));
        drop(a);
        assert_eq!(conns.table.lock().unwrap().len(), 1);
    }
}
