//! The send budget: a response body may hold a frame (a chunk read from storage, a piece of
//! JSON) in memory only while it holds a permit from its client's share and from the global
//! pool, and the permit goes back when the socket has taken the frame (when its last `Bytes`
//! is dropped). Without it, a client that opens HTTP/2 streams with a zero flow-control window
//! made the box read one chunk per stream and keep it: 16,000 streams pinned 1 GiB. With it, a
//! stalled stream simply is not read from, and memory is bounded by the permits.
//!
//! A body also gives out its next frame only once the socket has taken the last one. hyper's
//! HTTP/1 writer asks for more while earlier frames wait in its queue (up to 16 of them, or
//! ~400 KB) for a full socket, so without this rule each slow player pinned several frames:
//! 200 players at a LAN player's pace held the whole global pool, and every other response
//! waited behind them for seconds (the soak's timeouts).
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::{Pool, PoolPermit};
use super::stall::{now_ms, Conn, Conns, STARVED};

/// Where a connection's response frames take their permits from.
#[derive(Clone)]
pub struct SendBudget {
    global: Arc<Pool>,
    client: Option<Arc<Semaphore>>,
    /// The connection's entry in the table of live connections, which a body starved of
    /// global permits asks to close a stalled one (`stall`).
    conn: Option<(Arc<Conns>, Arc<Conn>)>,
}

/// The permits one frame holds while it waits for the socket.
struct Held {
    _client: Option<OwnedSemaphorePermit>,
    _global: PoolPermit,
}

type Acquire = Pin<Box<dyn Future<Output = Option<Held>> + Send>>;

impl SendBudget {
    pub fn new(
        global: Arc<Pool>,
        client: Option<Arc<Semaphore>>,
        conn: Option<(Arc<Conns>, Arc<Conn>)>,
    ) -> Self {
        SendBudget {
            global,
            client,
            conn,
        }
    }

    /// `body`, read only under this budget. An empty body is passed through as it is.
    pub fn wrap(&self, body: Body) -> Body {
        if body.is_end_stream() {
            return body;
        }
        let out = Arc::default();
        if let Some((_, conn)) = &self.conn {
            conn.add_body(&out);
        }
        Body::new(Budgeted {
            inner: body,
            budget: self.clone(),
            waiting: None,
            held: None,
            out,
        })
    }

    /// Without waiting, when both shares have a permit free (the common case).
    fn try_take(&self) -> Option<Held> {
        let client = match &self.client {
            Some(c) => Some(c.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let global = self.global.try_acquire()?;
        Some(Held {
            _client: client,
            _global: global,
        })
    }

    fn take(&self) -> Acquire {
        let me = self.clone();
        Box::pin(async move {
            // The client's own share first: a client over its share waits without holding a
            // global permit that others could use.
            let client = match me.client.clone() {
                Some(c) => Some(c.acquire_owned().await.ok()?),
                None => None,
            };
            // The pool runs dry when clients stop reading what they were sent: past STARVED,
            // ask for a stalled connection to be closed, and keep our place in the queue
            // (`pool`: the lightest address first).
            let acquire = me.global.acquire(me.client.clone());
            tokio::pin!(acquire);
            let global = loop {
                tokio::select! {
                    biased;
                    p = &mut acquire => break p,
                    _ = tokio::time::sleep(STARVED) => {
                        if let Some((conns, conn)) = &me.conn {
                            conns.relieve(conn);
                        }
                    }
                }
            };
            Some(Held {
                _client: client,
                _global: global,
            })
        })
    }

    /// Permits free in the global pool (tests).
    pub fn global_available(&self) -> usize {
        self.global.available()
    }
}

struct Budgeted {
    inner: Body,
    budget: SendBudget,
    waiting: Option<Acquire>,
    held: Option<Held>,
    out: Arc<Out>,
}

/// Whether the body's last frame is still out (not yet taken by the socket) and since when,
/// and the task to wake when it is taken.
#[derive(Default)]
pub struct Out {
    /// `stall::now_ms` when the frame went out; 0 while none is out.
    since: AtomicU64,
    waker: AtomicWaker,
}

impl Out {
    /// Ready once no frame of the body is out.
    fn poll_taken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.since() == 0 {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Taken between the check and the registration: its wake may have found no waker.
        if self.since() != 0 {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// When the frame now out went out, or 0.
    pub fn since(&self) -> u64 {
        self.since.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub fn out_since(at: u64) -> Arc<Out> {
        let out = Arc::new(Out::default());
        out.since.store(at, Ordering::Release);
        out
    }
}

/// A frame's bytes together with the permits they hold.
struct Owned {
    data: Bytes,
    _held: Held,
    out: Arc<Out>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.out.since.store(0, Ordering::Release);
        self.out.waker.wake();
    }
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl HttpBody for Budgeted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        ready!(this.out.poll_taken(cx));
        if this.held.is_none() {
            if this.waiting.is_none() {
                match this.budget.try_take() {
                    Some(h) => this.held = Some(h),
                    None => this.waiting = Some(this.budget.take()),
                }
            }
            if let Some(w) = this.waiting.as_mut() {
                let got = ready!(w.as_mut().poll(cx));
                this.waiting = None;
                match got {
                    Some(h) => this.held = Some(h),
                    // The semaphores are never closed; if they were, end the body cleanly.
                    None => return Poll::Ready(None),
                }
            }
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match this.held.take() {
                    Some(held) => {
                        this.out.since.store(now_ms(), Ordering::Release);
                        Some(Ok(Frame::data(Bytes::from_owner(Owned {
                            data,
                            _held: held,
                            out: this.out.clone(),
                        }))))
                    }
                    None => Some(Ok(Frame::data(data))),
                },
                Err(other) => Some(Ok(other)),
            },
            other => {
                this.held = None;
                other
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn chunks(n: usize) -> Body {
        let items: Vec<Result<Bytes, std::io::Error>> = (0..n)
            .map(|i| Ok(Bytes::from(vec![i as u8; 1000])))
            .collect();
        Body::from_stream(futures_util::stream::iter(items))
    }

    #[tokio::test]
    async fn a_frame_holds_its_permit_until_dropped() {
        let global = Pool::new(2);
        let client = Arc::new(Semaphore::new(1));
        let b = SendBudget::new(global.clone(), Some(client.clone()), None);
        let mut body = b.wrap(chunks(3));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 1000);
        assert_eq!(client.available_permits(), 0);
        assert_eq!(global.available(), 1);
        // The second frame waits for the client's share...
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), body.frame()).await;
        assert!(second.is_err(), "read past the client's share");
        // ...and gets it once the socket has taken the first.
        drop(first);
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second[0], 1);
        drop(second);
        let third = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(third[0], 2);
        drop(third);
        assert!(body.frame().await.is_none());
        assert_eq!(global.available(), 2);
        assert_eq!(client.available_permits(), 1);
    }

    #[tokio::test]
    async fn the_whole_body_arrives_and_keeps_its_length() {
        let b = SendBudget::new(Pool::new(1), None, None);
        let body = b.wrap(Body::from("hello world"));
        assert_eq!(body.size_hint().exact(), Some(11));
        // As the socket does: each frame is written and let go before the next is read.
        let mut body = body;
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            all.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(&all[..], b"hello world");
        assert_eq!(b.global_available(), 1);
    }

    #[tokio::test]
    async fn a_frame_out_holds_back_the_next_until_it_is_taken() {
        let global = Pool::new(10);
        let b = SendBudget::new(global.clone(), None, None);
        let mut body = b.wrap(chunks(2));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let next = tokio::spawn(async move { body.frame().await.map(|f| f.is_ok()) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!next.is_finished(), "a second frame while the first is out");
        assert_eq!(global.available(), 9);
        drop(first); // The socket took it: the waiting body is woken.
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), next).await;
        assert_eq!(got.ok().and_then(|j| j.ok()), Some(Some(true)));
    }
}
