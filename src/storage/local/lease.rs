//! The grown-chunk budget: how much memory chunks larger than `streaming.chunk_kib` may hold
//! across all streams of one storage, and the lease a grown chunk carries until hyper has
//! written it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// Memory that grown (larger than `streaming.chunk_kib`) chunks may hold across all streams of
/// one storage. A client that drains its socket quickly earns bigger reads, but a socket buffer
/// that swallows the first megabytes of a slow client looks fast too; without this cap 200 such
/// clients would each pin a 1 MiB chunk. Base-size chunks are always allowed, so every stream
/// progresses; the budget only decides who may read in bigger steps. 2 MiB is one download's
/// 1 MiB chunk and the one read ahead (8 MiB before: no faster for one download, and 6 MiB
/// more pinned when 200 streams start at once).
pub(super) const GROWN_CHUNK_BUDGET: usize = 2 * 1024 * 1024;

#[derive(Debug, Default)]
pub(super) struct ChunkBudget {
    in_use: AtomicUsize,
}

impl ChunkBudget {
    pub(super) fn try_take(self: &Arc<Self>, n: usize) -> Option<Lease> {
        let mut cur = self.in_use.load(Ordering::Relaxed);
        loop {
            if cur + n > GROWN_CHUNK_BUDGET {
                return None;
            }
            match self.in_use.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Lease {
                        budget: self.clone(),
                        n,
                    })
                }
                Err(now) => cur = now,
            }
        }
    }
}

/// A share of the grown-chunk budget, returned when the chunk's last `Bytes` is dropped
/// (after hyper has written it).
pub(super) struct Lease {
    budget: Arc<ChunkBudget>,
    n: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.n, Ordering::AcqRel);
    }
}

struct LeasedBuf {
    buf: Vec<u8>,
    _lease: Option<Lease>,
}

impl AsRef<[u8]> for LeasedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

pub(super) fn into_bytes(buf: Vec<u8>, lease: Option<Lease>) -> Bytes {
    match lease {
        None => Bytes::from(buf),
        Some(l) => Bytes::from_owner(LeasedBuf {
            buf,
            _lease: Some(l),
        }),
    }
}
