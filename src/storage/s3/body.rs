//! The body of a request to the store: bytes in hand, or a part streamed on as it arrives
//! from the client. One type for both, so the program holds one copy of hyper's client for
//! every request the backend makes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

pub(super) enum ReqBody {
    Bytes(Option<Bytes>),
    /// Exactly `left` more bytes, as they come: fewer (the sender went away) fails the
    /// request, so the store never keeps a short part.
    Stream {
        rx: mpsc::Receiver<Bytes>,
        left: u64,
    },
}

impl ReqBody {
    pub(super) fn bytes(b: Bytes) -> Self {
        ReqBody::Bytes(Some(b))
    }

    pub(super) fn len(&self) -> u64 {
        match self {
            ReqBody::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            ReqBody::Stream { left, .. } => *left,
        }
    }
}

fn short(msg: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg)
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Bytes(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ReqBody::Stream { rx, left } => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) if *left == 0 => Poll::Ready(None),
                Poll::Ready(None) => Poll::Ready(Some(Err(short("the part ended short")))),
                Poll::Ready(Some(b)) => match left.checked_sub(b.len() as u64) {
                    Some(l) => {
                        *left = l;
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    None => Poll::Ready(Some(Err(short("more bytes than the part holds")))),
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_streamed_part_is_exactly_its_length() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.send(Bytes::from_static(b"de")).await.unwrap();
        drop(tx);
        let body = ReqBody::Stream { rx, left: 5 };
        assert_eq!(body.size_hint().exact(), Some(5));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcde");

        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        drop(tx);
        assert!(ReqBody::Stream { rx, left: 5 }.collect().await.is_err());

        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"abcdef")).await.unwrap();
        drop(tx);
        assert!(ReqBody::Stream { rx, left: 5 }.collect().await.is_err());

        assert!(ReqBody::bytes(Bytes::new()).is_end_stream());
    }
}
