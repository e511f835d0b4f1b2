//! Login rate limiting: attempts are counted per client address and per user name as they
//! start, before the password is hashed, so parallel attempts are counted as sequential ones
//! (the `max_failures`+1-th is refused at once); a right password clears its keys, a check
//! that never ran is forgiven. Once a key reaches `max_failures`, it is locked for `base`
//! seconds, doubling with each further failure up to 15 minutes. In memory (a restart
//! forgets), bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_LOCK: Duration = Duration::from_secs(900);
/// Entries kept at most; past it the stalest are dropped, so a flood of names cannot grow
/// memory without bound.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    Name(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

pub struct LoginLimiter {
    max_failures: u32,
    base: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, base: Duration) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            base,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(addr: IpAddr, name: &str) -> [Key; 2] {
        [Key::Addr(addr), Key::Name(name.to_lowercase())]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// `Err(wait)` when either the address or the name is locked right now.
    pub fn check(&self, addr: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        locked_for(&self.lock(), addr, name, now)
    }

    /// Starts an attempt: `Err(wait)` when the address or the name is locked, else the attempt
    /// counts as a failure from now on (and may lock the keys for the next one) until
    /// [`success`](Self::success) or [`forgive`](Self::forgive). Check and count are one step
    /// under the lock, so no number of parallel attempts gets past `max_failures`.
    pub fn reserve(&self, addr: IpAddr, name: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        locked_for(&map, addr, name, now)?;
        if map.len() >= MAX_ENTRIES {
            prune(&mut map, now);
        }
        for k in Self::keys(addr, name) {
            let e = map.entry(k).or_insert(Entry {
                failures: 0,
                locked_until: None,
                last: now,
            });
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            if e.failures >= self.max_failures {
                let doublings = (e.failures - self.max_failures).min(20);
                let lock = self.base.saturating_mul(1u32 << doublings).min(MAX_LOCK);
                e.locked_until = Some(now + lock);
            }
        }
        Ok(())
    }

    /// Takes back a reserved attempt whose password was never judged (no hash slot free, a
    /// failure of ours): it is not the client's failure.
    pub fn forgive(&self, addr: IpAddr, name: &str) {
        let mut map = self.lock();
        for k in Self::keys(addr, name) {
            if let Some(e) = map.get_mut(&k) {
                e.failures = e.failures.saturating_sub(1);
                if e.failures < self.max_failures {
                    e.locked_until = None;
                }
            }
        }
    }

    pub fn success(&self, addr: IpAddr, name: &str) {
        let mut map = self.lock();
        for k in Self::keys(addr, name) {
            map.remove(&k);
        }
    }
}

fn locked_for(
    map: &HashMap<Key, Entry>,
    addr: IpAddr,
    name: &str,
    now: Instant,
) -> Result<(), Duration> {
    // A parallel request may have set the lock with a later `now` than ours: the wait is
    // counted from the later of the two, so it never exceeds the lock (a Retry-After of 301
    // for a 300 s lockout, seen in CI).
    let wait = LoginLimiter::keys(addr, name)
        .iter()
        .filter_map(|k| map.get(k))
        .filter_map(|e| e.locked_until.map(|until| (until, now.max(e.last))))
        .filter(|(until, from)| until > from)
        .map(|(until, from)| until - from)
        .max();
    match wait {
        Some(w) => Err(w),
        None => Ok(()),
    }
}

fn prune(map: &mut HashMap<Key, Entry>, now: Instant) {
    map.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
    if map.len() >= MAX_ENTRIES {
        let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
        lasts.sort_unstable();
        let cutoff = lasts[lasts.len() / 2];
        map.retain(|_, e| e.last > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn locks_after_max_and_doubles() {
        let l = LoginLimiter::new(3, Duration::from_secs(2));
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(l.reserve(ip(1), "bob", t0).is_ok());
        }
        assert!(l.check(ip(1), "bob", t0).is_ok());
        assert!(l.reserve(ip(1), "bob", t0).is_ok());
        assert_eq!(l.check(ip(1), "bob", t0), Err(Duration::from_secs(2)));
        assert!(l.check(ip(1), "bob", t0 + Duration::from_secs(2)).is_ok());
        assert!(l.reserve(ip(1), "bob", t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(
            l.check(ip(1), "bob", t0 + Duration::from_secs(2)),
            Err(Duration::from_secs(4))
        );
    }

    #[test]
    fn a_lock_set_by_a_later_request_waits_no_longer_than_the_lock() {
        let l = LoginLimiter::new(1, Duration::from_secs(300));
        let t = Instant::now();
        assert!(l
            .reserve(ip(1), "bob", t + Duration::from_millis(5))
            .is_ok());
        assert_eq!(l.check(ip(1), "bob", t), Err(Duration::from_secs(300)));
    }

    #[test]
    fn name_and_address_count_separately() {
        let l = LoginLimiter::new(2, Duration::from_secs(1));
        let t = Instant::now();
        assert!(l.reserve(ip(1), "a", t).is_ok());
        assert!(l.reserve(ip(1), "b", t).is_ok());
        // address 1 is locked for every name; name "a" is not locked from elsewhere
        assert!(l.check(ip(1), "c", t).is_err());
        assert!(l.check(ip(2), "a", t).is_ok());
        assert!(l.reserve(ip(3), "a", t).is_ok());
        assert!(l.check(ip(4), "A", t).is_err(), "names ignore case");
        l.success(ip(4), "a");
        assert!(l.check(ip(4), "a", t).is_ok());
    }

    #[test]
    fn lock_is_capped() {
        let l = LoginLimiter::new(1, Duration::from_secs(2));
        let t = Instant::now();
        // past a lock the attempts are refused, so the failures come one lock apart
        let mut now = t;
        for _ in 0..40 {
            if let Err(wait) = l.reserve(ip(1), "x", now) {
                now += wait;
                assert!(l.reserve(ip(1), "x", now).is_ok());
            }
        }
        let t = now;
        assert_eq!(l.check(ip(1), "x", t), Err(MAX_LOCK));
    }

    #[test]
    fn parallel_attempts_are_counted_as_they_start() {
        let l = LoginLimiter::new(5, Duration::from_secs(2));
        let t = Instant::now();
        // 100 attempts start before any has been judged: 5 run, 95 wait the lock out
        let started = (0..100)
            .filter(|_| l.reserve(ip(1), "bob", t).is_ok())
            .count();
        assert_eq!(started, 5);
        assert_eq!(l.check(ip(9), "bob", t), Err(Duration::from_secs(2)));
        // one of them had the right password: the name and address are free again
        l.success(ip(1), "bob");
        assert!(l.reserve(ip(1), "bob", t).is_ok());
    }

    #[test]
    fn a_check_that_never_ran_is_forgiven() {
        let l = LoginLimiter::new(2, Duration::from_secs(2));
        let t = Instant::now();
        assert!(l.reserve(ip(1), "bob", t).is_ok());
        assert!(l.reserve(ip(1), "bob", t).is_ok());
        assert!(l.check(ip(1), "bob", t).is_err());
        l.forgive(ip(1), "bob");
        assert!(l.check(ip(1), "bob", t).is_ok());
        assert!(l.reserve(ip(1), "bob", t).is_ok());
        assert!(l.check(ip(1), "bob", t).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let l = LoginLimiter::new(100, Duration::from_secs(1));
        let t = Instant::now();
        for i in 0..(MAX_ENTRIES + 10) {
            let _ = l.reserve(
                IpAddr::from([10, 1, (i >> 8) as u8, i as u8]),
                &format!("user{i}"),
                t + Duration::from_millis(i as u64),
            );
        }
        assert!(l.lock().len() <= MAX_ENTRIES);
    }
}
