//! The global send pool (`budget`), handed out fairly between client addresses.
//!
//! A FIFO semaphore let an attacker with many addresses queue thousands of streams ahead of
//! everyone else: each frame freed (or each connection `stall` closed) went to the
//! attacker's next stream, and another client's `/healthz` waited 23 s. Here a freed permit
//! goes to the waiting body whose address holds the fewest frames (its share's permits in
//! use, the waiting ones included), and among equals to the one that has waited longest.
//! A new body never overtakes waiting ones. Without per-address limits (behind a proxy)
//! every body weighs the same, which is FIFO.
//!
//! The scan over the waiters runs only when a permit is freed while some body waits.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Semaphore;

use super::clients::CLIENT_FRAMES;

pub struct Pool {
    inner: Mutex<Inner>,
}

struct Inner {
    free: usize,
    next: u64,
    waiting: Vec<Waiter>,
}

struct Waiter {
    seq: u64,
    /// The address's share: its permits in use are the waiter's weight.
    share: Option<Arc<Semaphore>>,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Slot {
    granted: AtomicBool,
    waker: AtomicWaker,
}

/// One frame's place in the pool, given back when dropped.
pub struct PoolPermit {
    pool: Arc<Pool>,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        self.pool.release();
    }
}

fn weight(share: &Option<Arc<Semaphore>>) -> usize {
    share
        .as_ref()
        .map_or(0, |s| CLIENT_FRAMES.saturating_sub(s.available_permits()))
}

impl Pool {
    pub fn new(permits: usize) -> Arc<Pool> {
        Arc::new(Pool {
            inner: Mutex::new(Inner {
                free: permits,
                next: 0,
                waiting: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.lock().free
    }

    /// A permit at once, if one is free and nobody waits for one.
    pub fn try_acquire(self: &Arc<Self>) -> Option<PoolPermit> {
        let mut inner = self.lock();
        if inner.free > 0 && inner.waiting.is_empty() {
            inner.free -= 1;
            return Some(PoolPermit { pool: self.clone() });
        }
        None
    }

    /// A permit, in the pool's fair order; `share` is the waiting body's address share.
    pub fn acquire(self: &Arc<Self>, share: Option<Arc<Semaphore>>) -> Acquire {
        let mut inner = self.lock();
        if inner.free > 0 && inner.waiting.is_empty() {
            inner.free -= 1;
            return Acquire {
                pool: self.clone(),
                state: State::Granted,
            };
        }
        let seq = inner.next;
        inner.next += 1;
        let slot = Arc::new(Slot::default());
        inner.waiting.push(Waiter {
            seq,
            share,
            slot: slot.clone(),
        });
        Acquire {
            pool: self.clone(),
            state: State::Waiting(seq, slot),
        }
    }

    /// A permit comes back: to the lightest waiter, or to the pool.
    fn release(&self) {
        let mut inner = self.lock();
        let Some(i) = (0..inner.waiting.len())
            .min_by_key(|&i| (weight(&inner.waiting[i].share), inner.waiting[i].seq))
        else {
            inner.free += 1;
            return;
        };
        let w = inner.waiting.swap_remove(i);
        // Under the lock: a waiter dropped now finds itself granted (see `Acquire`'s drop).
        w.slot.granted.store(true, Ordering::Release);
        drop(inner);
        w.slot.waker.wake();
    }
}

enum State {
    Granted,
    Waiting(u64, Arc<Slot>),
    Done,
}

/// Resolves to a permit; dropped while waiting, it leaves the queue (and passes on a permit
/// granted meanwhile).
pub struct Acquire {
    pool: Arc<Pool>,
    state: State,
}

impl Future for Acquire {
    type Output = PoolPermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PoolPermit> {
        let granted = match &self.state {
            State::Granted => true,
            State::Waiting(_, slot) => {
                slot.waker.register(cx.waker());
                slot.granted.load(Ordering::Acquire)
            }
            State::Done => return Poll::Pending,
        };
        if !granted {
            return Poll::Pending;
        }
        self.state = State::Done;
        Poll::Ready(PoolPermit {
            pool: self.pool.clone(),
        })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => {}
            State::Granted => self.pool.release(),
            State::Waiting(seq, slot) => {
                let mut inner = self.pool.lock();
                if let Some(i) = inner.waiting.iter().position(|w| w.seq == seq) {
                    inner.waiting.swap_remove(i);
                    return;
                }
                drop(inner);
                // Not in the queue: it was granted a permit it will not use.
                if slot.granted.load(Ordering::Acquire) {
                    self.pool.release();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn share_in_use(n: usize) -> Arc<Semaphore> {
        let s = Arc::new(Semaphore::new(CLIENT_FRAMES));
        s.forget_permits(n);
        s
    }

    #[tokio::test]
    async fn a_freed_permit_goes_to_the_address_holding_least() {
        let pool = Pool::new(1);
        let held = pool.try_acquire().expect("one free");
        // An attacker's many streams queue first, then a client holding one frame.
        let busy = share_in_use(100);
        let mut attackers: Vec<_> = (0..50)
            .map(|_| tokio::spawn(pool.acquire(Some(busy.clone()))))
            .collect();
        let light = tokio::spawn(pool.acquire(Some(share_in_use(1))));
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(1), light).await;
        let permit = got.expect("the light client is served first").unwrap();
        assert!(attackers.iter().all(|a| !a.is_finished()));
        // Next in line: the attackers, in their order; none is lost.
        drop(permit);
        let first = attackers.remove(0);
        tokio::time::timeout(Duration::from_secs(1), first)
            .await
            .expect("then the first attacker")
            .unwrap();
        for a in &attackers {
            a.abort();
        }
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_no_permit_behind() {
        let pool = Pool::new(1);
        let held = pool.try_acquire().unwrap();
        let gone = pool.acquire(None);
        let next = tokio::spawn(pool.acquire(None));
        drop(gone);
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), next)
            .await
            .expect("the permit reaches the next waiter")
            .unwrap();
        // Granted and dropped unused: back in the pool.
        let held = pool.try_acquire().unwrap();
        let granted = pool.acquire(None);
        drop(held);
        drop(granted);
        assert_eq!(pool.available(), 1);
        // New bodies do not overtake waiting ones.
        let held = pool.try_acquire().unwrap();
        let waiting = pool.acquire(None);
        drop(held);
        assert!(pool.try_acquire().is_none());
        drop(waiting);
        assert_eq!(pool.available(), 1);
    }
}
