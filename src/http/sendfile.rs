//! Zero-copy file bodies on plain HTTP/1.1 connections (issue 17). hyper writes bodies from
//! memory, so a media file went through two copies: the kernel's into our chunk buffer, then
//! into the socket. nginx's `sendfile` does only the second.
//!
//! How it is done without owning hyper's writer: storage hands a body frame that stands for
//! a file region ([`ZeroCopy::region`]): a slice of one reserved buffer that is never written
//! or sent (the placeholder), of the region's length. hyper treats it as any frame (framing,
//! Content-Length, the send budget's permits), and the connection's [`SendfileIo`], meeting
//! that slice at the head of a write, sends the region from the file instead.
//!
//! **Invariant:** placeholder bytes never reach a socket. The writer pairs each placeholder
//! slice with the oldest queued region, and checks that the slice is exactly what is left of
//! it (address and length); anything else ends the connection with an error. Regions queue
//! in the order their frames are made; storage makes a frame only as hyper asks for it, and
//! HTTP/1.1 writes one response at a time, in order. So the handler offers regions only for
//! HTTP/1.x requests on plain connections (HTTP/2 interleaves streams; TLS encrypts in
//! memory), and the plain builder keeps hyper's queued (`writev`) strategy, which keeps body
//! buffers as they are rather than copying them into its own buffer.
//!
//! Only bytes in the page cache are sent this way (`FileRegion::send_cached` checks, then
//! sends); a region whose pages left the cache since its frame was made is read on storage's
//! pool and written from memory, so a runtime worker never waits for a disk.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::storage::{FileRegion, ReadFuture, ZeroCopy};

/// The largest region: storage's largest chunk (a grown one, 1 MiB).
pub const MAX_REGION: usize = 1 << 20;

/// The reserved buffer whose slices stand for file regions: zeroed by the allocator (an
/// untouched mapping: no resident memory), never written, never sent.
fn placeholder() -> &'static [u8] {
    static P: OnceLock<&'static [u8]> = OnceLock::new();
    P.get_or_init(|| vec![0u8; MAX_REGION].leak())
}

fn is_placeholder(s: &[u8]) -> bool {
    !s.is_empty() && placeholder().as_ptr_range().contains(&s.as_ptr())
}

struct Region {
    file: Arc<dyn FileRegion>,
    offset: u64,
    len: usize,
    left: usize,
    /// The rest of the region, read on storage's pool because it left the page cache.
    reading: Option<ReadFuture>,
    read: Option<Bytes>,
}

/// A connection's queue of regions, in the order hyper will write their frames. Given to
/// handlers as a request extension ([`SendFrom`]) on plain connections.
#[derive(Clone, Default)]
pub struct Regions(Arc<Mutex<VecDeque<Region>>>);

impl Regions {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Region>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ZeroCopy for Regions {
    fn region(&self, file: Arc<dyn FileRegion>, offset: u64, len: usize) -> Option<Bytes> {
        if len == 0 || len > MAX_REGION {
            return None;
        }
        self.lock().push_back(Region {
            file,
            offset,
            len,
            left: len,
            reading: None,
            read: None,
        });
        Some(Bytes::from_static(&placeholder()[..len]))
    }

    fn in_flight(&self) -> u64 {
        in_flight()
    }
}

/// What a region's pages may still be sent from after hyper has written its frame, read once
/// from this network namespace's limits. streamhub never sets `SO_SNDBUF`, so its socket
/// holds at most the send buffer's autotuning ceiling (`tcp_wmem`'s third field). On
/// loopback or a veth the sent pages then sit in the client's receive queue until it reads
/// them: at most `tcp_rmem`'s ceiling, or twice `rmem_max` for a client that set
/// `SO_RCVBUF`. On top, what can be between the body and the socket: hyper's write queue
/// (400 KiB), a chunk read ahead and the chunk being checked (1 MiB each): 4 MiB covers it.
/// With Debian's defaults (4 MiB, 6 MiB, 208 KiB): 14 MiB.
fn in_flight() -> u64 {
    static BYTES: OnceLock<u64> = OnceLock::new();
    *BYTES.get_or_init(|| {
        const MARGIN: u64 = 4 << 20;
        let ceiling = |name: &str| {
            let text = std::fs::read_to_string(format!("/proc/sys/net/{name}")).ok()?;
            text.split_whitespace().last()?.parse::<u64>().ok()
        };
        let send = ceiling("ipv4/tcp_wmem");
        let receive = ceiling("ipv4/tcp_rmem")
            .zip(ceiling("core/rmem_max"))
            .map(|(auto, set)| auto.max(2 * set));
        match send.zip(receive) {
            Some((send, receive)) => send + receive + MARGIN,
            None => {
                // Unknowable (no /proc): a bound above any stock kernel's.
                tracing::info!(
                    "socket buffer limits unreadable: the last 64 MiB of long responses are copied"
                );
                64 << 20
            }
        }
    })
}

/// The request extension through which a handler offers regions: present only on plain
/// connections, and to be used only for HTTP/1.x requests (see the module's invariant).
#[derive(Clone)]
pub struct SendFrom(pub Arc<dyn ZeroCopy>);

impl SendFrom {
    /// What a media body may hand regions to for this request, if anything.
    pub fn for_request<B>(req: &http::Request<B>) -> Option<Arc<dyn ZeroCopy>> {
        Self::get(req.version(), req.extensions())
    }

    fn get(version: http::Version, ext: &http::Extensions) -> Option<Arc<dyn ZeroCopy>> {
        if !matches!(version, http::Version::HTTP_10 | http::Version::HTTP_11) {
            return None;
        }
        ext.get::<SendFrom>().map(|s| s.0.clone())
    }
}

/// The extractor for handlers that take the request in parts: [`SendFrom::for_request`].
pub struct SendVia(pub Option<Arc<dyn ZeroCopy>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SendVia {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(SendVia(SendFrom::get(parts.version, &parts.extensions)))
    }
}

/// A plain TCP connection whose writer sends file regions in place of their placeholders.
pub struct SendfileIo {
    tcp: TcpStream,
    regions: Regions,
}

impl SendfileIo {
    pub fn new(tcp: TcpStream) -> (Self, SendFrom) {
        let regions = Regions::default();
        let from = SendFrom(Arc::new(regions.clone()));
        (SendfileIo { tcp, regions }, from)
    }

    /// Writes from the oldest region, for which `slice` is the placeholder hyper holds.
    fn poll_region(&mut self, cx: &mut Context<'_>, slice: &[u8]) -> Poll<io::Result<usize>> {
        let mut queue = self.regions.lock();
        loop {
            let Some(r) = queue.front_mut() else {
                return Poll::Ready(Err(out_of_step("a placeholder without a region")));
            };
            let done = r.len - r.left;
            if slice.len() != r.left || slice.as_ptr() != placeholder()[done..].as_ptr() {
                return Poll::Ready(Err(out_of_step("a placeholder out of step")));
            }
            if let Some(buf) = r.read.as_mut() {
                let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, buf))?;
                buf.advance(n);
                if buf.is_empty() {
                    r.read = None;
                }
                return Poll::Ready(Ok(advance(&mut queue, n)));
            }
            if let Some(reading) = r.reading.as_mut() {
                let got = ready!(reading.as_mut().poll(cx));
                r.reading = None;
                let got = got.map_err(|e| io::Error::other(format!("reading the file: {e}")))?;
                if got.is_empty() {
                    return Poll::Ready(Err(shrank()));
                }
                r.read = Some(got);
                continue;
            }
            ready!(self.tcp.poll_write_ready(cx))?;
            let tcp = &self.tcp;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                r.file.send_cached(tcp.as_fd(), r.offset, r.left)
            });
            match sent {
                Ok(Some(0)) => return Poll::Ready(Err(shrank())),
                Ok(Some(n)) => return Poll::Ready(Ok(advance(&mut queue, n))),
                Ok(None) => r.reading = Some(r.file.read(r.offset, r.left)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// `n` bytes of the oldest region went out: the region ends when none are left.
fn advance(queue: &mut VecDeque<Region>, n: usize) -> usize {
    if let Some(r) = queue.front_mut() {
        r.offset += n as u64;
        r.left -= n.min(r.left);
        if r.left == 0 {
            queue.pop_front();
        }
    }
    n
}

fn out_of_step(what: &str) -> io::Error {
    io::Error::other(format!("zero-copy send: {what}; closing the connection"))
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while it was being sent",
    )
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // What comes before the first placeholder goes out as it is; then the region.
        match bufs.iter().position(|b| is_placeholder(b)) {
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
            Some(i) if bufs[..i].iter().any(|b| !b.is_empty()) => {
                Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..i])
            }
            Some(i) => self.poll_region(cx, &bufs[i]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "sendfile_tests.rs"]
mod tests;
