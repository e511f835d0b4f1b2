//! `IdleTimeout`: closes a connection that makes no progress in either direction for a while.
//! hyper's header-read timeout covers a slow request head; this covers everything else (a
//! stalled reader, a silent keep-alive or HTTP/2 connection) so idle clients cannot pin
//! connection slots forever. Progress is stamped with a cheap `Instant` per I/O call; the
//! timer is only re-armed when it fires.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    pub struct IdleTimeout<T> {
        #[pin]
        inner: T,
        timer: Pin<Box<Sleep>>,
        idle: Duration,
        last_progress: Instant,
    }
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            idle,
            last_progress: now,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// Called when the inner I/O is pending: errors out once the connection has been idle too long.
fn check_idle(
    timer: Pin<&mut Sleep>,
    last_progress: Instant,
    idle: Duration,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    let mut timer = timer;
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let deadline = last_progress + idle;
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ));
        }
        // There was progress since the timer was armed: re-arm for the new deadline and poll
        // again so the waker is registered.
        timer.as_mut().reset(deadline);
    }
}

use std::future::Future;

impl<T: AsyncRead> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.idle, cx)?;
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write(cx, buf) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.idle, cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                *this.last_progress = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                check_idle(this.timer.as_mut(), *this.last_progress, *this.idle, cx)?;
                Poll::Pending
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut io = IdleTimeout::new(a, Duration::from_secs(5));
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_keeps_connection_alive() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleTimeout::new(a, Duration::from_secs(5));
        let writer = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                b.write_all(b"x").await.unwrap();
            }
            b
        });
        let mut buf = [0u8; 1];
        for _ in 0..5 {
            io.read_exact(&mut buf)
                .await
                .expect("progress every 3 s is not idle");
        }
        let _b = writer.await.unwrap();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
