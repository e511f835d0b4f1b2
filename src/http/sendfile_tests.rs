//! The writer with real sockets and files: what a client receives is the file's bytes in
//! the frames' order, and a placeholder that does not pair with its region ends the
//! connection without a byte of it sent.

use std::io::Write;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::storage::StorageError;

/// A file region in a temporary file; `cached: false` acts as pages that left the cache.
struct TestFile {
    file: std::fs::File,
    cached: bool,
}

impl FileRegion for TestFile {
    fn send_cached(
        &self,
        socket: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<Option<usize>> {
        if !self.cached {
            return Ok(None);
        }
        let mut at = offset;
        Ok(Some(rustix::fs::sendfile(
            socket,
            &self.file,
            Some(&mut at),
            len,
        )?))
    }

    fn read(&self, offset: u64, len: usize) -> ReadFuture {
        let mut buf = vec![0; len];
        let got = self.file.read_at(&mut buf, offset);
        Box::pin(async move {
            match got {
                Ok(n) => {
                    buf.truncate(n);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(StorageError::from_io(&e)),
            }
        })
    }
}

fn file(data: &[u8], cached: bool) -> Arc<dyn FileRegion> {
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(data).expect("write");
    Arc::new(TestFile { file: f, cached })
}

/// A connected pair: our writer's side and the client's.
async fn pair() -> (SendfileIo, SendFrom, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = l.accept().await.expect("accept");
    let (io, from) = SendfileIo::new(server);
    (io, from, client)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn regions_go_out_from_the_file_in_the_frames_order() {
    for cached in [true, false] {
        let (mut io, from, mut client) = pair().await;
        let (a, b) = (data(300_000, 1), data(70_000, 2));
        let (fa, fb) = (file(&a, cached), file(&b, cached));
        let frame_a = from.0.region(fa, 1000, 200_000).expect("a region");
        let frame_b = from.0.region(fb, 5, 65_536).expect("a region");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.map(|_| got)
        });
        // As hyper writes: head, body frame, the next response's head, its body frame.
        io.write_all(b"head one\n").await.expect("head");
        io.write_all(&frame_a).await.expect("region a");
        io.write_all(b"head two\n").await.expect("head");
        io.write_all(&frame_b).await.expect("region b");
        io.shutdown().await.expect("shutdown");
        drop(io);
        let got = reader.await.expect("join").expect("read");
        let mut want = b"head one\n".to_vec();
        want.extend_from_slice(&a[1000..201_000]);
        want.extend_from_slice(b"head two\n");
        want.extend_from_slice(&b[5..65_541]);
        assert_eq!(got.len(), want.len(), "cached: {cached}");
        assert!(got == want, "the bytes differ (cached: {cached})");
    }
}

#[tokio::test]
async fn a_placeholder_without_its_region_is_never_sent() {
    let (mut io, from, mut client) = pair().await;
    let frame = from
        .0
        .region(file(&data(10_000, 3), true), 0, 4096)
        .expect("a region");
    // The region is spent on its own frame...
    io.write_all(&frame).await.expect("region");
    // ...so the same placeholder again pairs with nothing, and one of another length with
    // a region of a different size is out of step.
    let again = io.write_all(&frame).await;
    assert!(again.is_err(), "a placeholder without a region was written");
    let _other = from
        .0
        .region(file(&data(10_000, 4), true), 0, 100)
        .expect("a region");
    let wrong = io.write_all(&frame[..50]).await;
    assert!(
        wrong.is_err(),
        "a placeholder of the wrong length was written"
    );
    drop(io);
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.expect("read");
    assert_eq!(
        got,
        data(10_000, 3)[..4096].to_vec(),
        "only the paired region was sent"
    );
}

#[tokio::test]
async fn a_file_that_shrank_ends_the_connection_with_an_error() {
    for cached in [true, false] {
        let (mut io, from, _client) = pair().await;
        let frame = from
            .0
            .region(file(&data(1000, 5), cached), 0, 4096)
            .expect("a region");
        let err = io
            .write_all(&frame)
            .await
            .expect_err("a short file was padded");
        assert_eq!(
            err.kind(),
            io::ErrorKind::UnexpectedEof,
            "cached: {cached}: {err}"
        );
    }
}

#[test]
fn regions_larger_than_the_placeholder_are_read_as_usual() {
    let from = Regions::default();
    assert!(from.region(file(b"x", true), 0, MAX_REGION + 1).is_none());
    assert!(from.region(file(b"x", true), 0, 0).is_none());
    assert!(from.lock().is_empty());
}
