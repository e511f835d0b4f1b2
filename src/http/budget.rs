//! The send budget: a response body may hold a frame (a chunk read from storage, a piece of
//! JSON) in memory only while it holds a permit from its client's share and from the global
//! pool, and the permit goes back when the socket has taken the frame (when its last `Bytes`
//! is dropped). Without it, a client that opens HTTP/2 streams with a zero flow-control window
//! made the box read one chunk per stream and keep it: 16,000 streams pinned 1 GiB. With it, a
//! stalled stream simply is not read from, and memory is bounded by the permits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where a connection's response frames take their permits from.
#[derive(Clone)]
pub struct SendBudget {
    global: Arc<Semaphore>,
    client: Option<Arc<Semaphore>>,
}

/// The permits one frame holds while it waits for the socket.
struct Held {
    _client: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

type Acquire = Pin<Box<dyn Future<Output = Option<Held>> + Send>>;

impl SendBudget {
    pub fn new(global: Arc<Semaphore>, client: Option<Arc<Semaphore>>) -> Self {
        SendBudget { global, client }
    }

    /// `body`, read only under this budget. An empty body is passed through as it is.
    pub fn wrap(&self, body: Body) -> Body {
        if body.is_end_stream() {
            return body;
        }
        Body::new(Budgeted {
            inner: body,
            budget: self.clone(),
            waiting: None,
            held: None,
        })
    }

    /// Without waiting, when both shares have a permit free (the common case).
    fn try_take(&self) -> Option<Held> {
        let client = match &self.client {
            Some(c) => Some(c.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let global = self.global.clone().try_acquire_owned().ok()?;
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
            let client = match me.client {
                Some(c) => Some(c.acquire_owned().await.ok()?),
                None => None,
            };
            let global = me.global.acquire_owned().await.ok()?;
            Some(Held {
                _client: client,
                _global: global,
            })
        })
    }

    /// Permits free in the global pool (tests).
    pub fn global_available(&self) -> usize {
        self.global.available_permits()
    }
}

struct Budgeted {
    inner: Body,
    budget: SendBudget,
    waiting: Option<Acquire>,
    held: Option<Held>,
}

/// A frame's bytes together with the permits they hold.
struct Owned {
    data: Bytes,
    _held: Held,
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
                    Some(held) => Some(Ok(Frame::data(Bytes::from_owner(Owned {
                        data,
                        _held: held,
                    })))),
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
        let global = Arc::new(Semaphore::new(2));
        let client = Arc::new(Semaphore::new(1));
        let b = SendBudget::new(global.clone(), Some(client.clone()));
        let mut body = b.wrap(chunks(3));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), 1000);
        assert_eq!(client.available_permits(), 0);
        assert_eq!(global.available_permits(), 1);
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
        assert_eq!(global.available_permits(), 2);
        assert_eq!(client.available_permits(), 1);
    }

    #[tokio::test]
    async fn the_whole_body_arrives_and_keeps_its_length() {
        let b = SendBudget::new(Arc::new(Semaphore::new(1)), None);
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
}
