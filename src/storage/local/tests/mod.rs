//! Unit tests of the local backend against temporary folders: reading here; every way a path
//! could leave the root (links, swaps) and uploads that fail in `safety`; the root's
//! identity and things planted in our places in `identity`; several nodes sharing one root
//! in `nodes`.

mod identity;
mod nodes;
mod rewrite;
mod safety;
mod zero_copy;

use super::fskind::fs_kind;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::lease::{into_bytes, ChunkBudget, GROWN_CHUNK_BUDGET};
use super::*;
use crate::storage::Object;

/// The node id the tests' storage stages under (and a second node's, for `nodes`).
pub(super) const NODE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(super) const NODE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// As the service reads: 64 KiB chunks (the tests' usual storage reads 7 bytes at a time).
pub(super) fn service_storage(root: &Path) -> LocalStorage {
    let s = LocalStorage::new(
        root,
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64 * 1024,
            node: NodeDir::new(NODE_A).unwrap(),
        },
    );
    s.establish(None, 0).expect("a new root");
    s
}

/// A storage over `root` staging as node `node`, established (as at start).
pub(super) fn storage_of(root: &Path, node: &str, allow_symlink_escape: bool) -> LocalStorage {
    let s = LocalStorage::new(
        root,
        LocalOptions {
            allow_symlink_escape,
            timeout: Duration::from_secs(5),
            chunk_size: 7,
            node: NodeDir::new(node).unwrap(),
        },
    );
    s.establish(None, 0).expect("a new root");
    s
}

pub(super) fn storage_with(root: &Path, allow_symlink_escape: bool) -> LocalStorage {
    storage_of(root, NODE_A, allow_symlink_escape)
}

pub(super) fn storage(root: &Path) -> LocalStorage {
    storage_with(root, false)
}

pub(super) fn mp(s: &str) -> MediaPath {
    MediaPath::from_decoded(s).unwrap()
}

async fn read_all(obj: &Arc<dyn Object>, r: Range<u64>) -> Vec<u8> {
    let mut s = obj.read_range(r);
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("read ok"));
    }
    out
}

#[tokio::test]
async fn reads_ranges_in_small_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..100u8).collect();
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let s = storage(dir.path());
    let obj = s
        .open(&MediaPath::from_url("f.bin").unwrap())
        .await
        .unwrap();
    assert_eq!(obj.meta().size, 100);
    assert_eq!(read_all(&obj, 0..100).await, data);
    assert_eq!(read_all(&obj, 10..31).await, &data[10..31]);
    assert_eq!(read_all(&obj, 99..100).await, &data[99..]);
    assert!(read_all(&obj, 50..50).await.is_empty());
}

#[tokio::test]
async fn symlink_escape_refused_unless_allowed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    std::fs::write(dir.path().join("real"), b"r").unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("inner")).unwrap();
    let s = storage(dir.path());
    let err = s
        .open(&MediaPath::from_url("link").unwrap())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StorageError::OutsideRoot));
    assert!(s.open(&MediaPath::from_url("inner").unwrap()).await.is_ok());
    let names: Vec<String> = s
        .list(&MediaPath::root())
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["inner", "real"]);

    let open = storage_with(dir.path(), true);
    assert!(open
        .open(&MediaPath::from_url("link").unwrap())
        .await
        .is_ok());
}

#[tokio::test]
async fn relative_symlinks_take_the_same_rules() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(base.path().join("secret"), b"s").unwrap();
    std::fs::write(root.join("real"), b"r").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
    std::os::unix::fs::symlink("real", root.join("near")).unwrap();
    let s = storage(&root);
    assert_eq!(s.fs_kind(), "local");
    // Warm the dentry cache so the non-blocking path is the one taken.
    let _ = std::fs::metadata(root.join("near"));
    let _ = std::fs::metadata(root.join("up"));
    for _ in 0..2 {
        let e = s
            .open(&MediaPath::from_url("up").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "{e}");
        let obj = s.open(&MediaPath::from_url("near").unwrap()).await.unwrap();
        assert_eq!(obj.meta().size, 1);
        let e = s
            .open(&MediaPath::from_url("missing").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::NotFound), "{e}");
    }
}

#[test]
fn chunk_budget_is_returned_when_the_last_bytes_drop() {
    let b = Arc::new(ChunkBudget::default());
    let lease = b.try_take(GROWN_CHUNK_BUDGET).expect("whole budget free");
    assert!(b.try_take(1).is_none());
    let bytes = into_bytes(vec![1; 10], Some(lease));
    let part = bytes.slice(2..4);
    drop(bytes);
    assert!(b.try_take(1).is_none(), "a slice still holds the buffer");
    drop(part);
    assert!(b.try_take(GROWN_CHUNK_BUDGET).is_some());
}

#[test]
fn network_filesystems_are_recognised() {
    assert_eq!(fs_kind(0x6969), "nfs");
    assert_eq!(fs_kind(0xFF53_4D42), "smb");
    assert_eq!(fs_kind(0x6573_5546), "fuse");
    assert_eq!(fs_kind(0xEF53), "local");
}

#[tokio::test]
async fn errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let s = storage(dir.path());
    let e = s
        .open(&MediaPath::from_url("nope").unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::NotFound), "{e}");
    let e = s
        .open(&MediaPath::from_url("sub").unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::IsDirectory), "{e}");
    let e = s
        .list(&MediaPath::from_url("nope").unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::NotFound), "{e}");
}

#[tokio::test]
async fn shrinking_file_is_an_error_not_short_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![1u8; 100]).unwrap();
    let s = storage(dir.path());
    let obj = s.open(&MediaPath::from_url("f").unwrap()).await.unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("f"))
        .unwrap()
        .set_len(10)
        .unwrap();
    let mut st = obj.read_range(0..100);
    let mut saw_err = false;
    while let Some(c) = st.next().await {
        if c.is_err() {
            saw_err = true;
        }
    }
    assert!(saw_err);
}

#[tokio::test]
async fn nfs_silly_renames_never_appear_in_listings() {
    // An NFS client renames a file deleted while open to `.nfsXXXX` until it is closed.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("film.mkv"), b"film").unwrap();
    std::fs::write(tmp.path().join(".nfs00000000012345670000001"), b"old").unwrap();
    let s = storage(tmp.path());
    let listing = s.list(&MediaPath::root()).await.unwrap();
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["film.mkv"]);
    assert!(listing.hidden);
    assert!(matches!(
        s.open(&mp(".nfs00000000012345670000001")).await,
        Err(StorageError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_being_written_never_holds_the_threads_reads_need() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("film.mkv"), b"film").unwrap();
    // One thread for calls: the upload's writer must not be the one that takes it.
    let s = storage(tmp.path()).with_max_threads(1);
    let mut up = s
        .begin_upload(&mp("new.bin"), UploadOptions::default())
        .await
        .unwrap();
    up.write(bytes::Bytes::from_static(b"first part"))
        .await
        .unwrap();
    // The writer is alive (the body has not ended), and reads still run.
    let obj = s.open(&mp("film.mkv")).await.unwrap();
    assert_eq!(read_all(&obj, 0..4).await, b"film");
    assert_eq!(s.list(&MediaPath::root()).await.unwrap().entries.len(), 1);
    up.commit(&mp("new.bin"), false).await.unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("new.bin")).unwrap(),
        b"first part"
    );
}

/// Between two chunks read inline (page-cache hits), a stream returns `Pending` once with its
/// task already woken: the task goes to the back of the runtime's queue, so 50 streams of
/// cached data cannot keep a new request's first byte waiting (issue 17's seek TTFB).
#[tokio::test]
async fn a_stream_lets_its_task_go_between_inline_chunks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    struct Wakes(AtomicUsize);
    impl futures_util::task::ArcWake for Wakes {
        fn wake_by_ref(me: &Arc<Self>) {
            me.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let s = storage(dir.path());
    let obj = s.open(&mp("f.bin")).await.unwrap();
    // Read once so every page is cached and the stream's reads are inline.
    assert_eq!(read_all(&obj, 0..data.len() as u64).await, data);
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = futures_util::task::waker(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let mut st = obj.read_range(0..data.len() as u64);
    let (mut got, mut yields) = (Vec::new(), 0);
    loop {
        wakes.0.store(0, Ordering::SeqCst);
        match st.as_mut().poll_next(&mut cx) {
            Poll::Ready(Some(chunk)) => got.extend_from_slice(&chunk.expect("read ok")),
            Poll::Ready(None) => break,
            Poll::Pending if wakes.0.load(Ordering::SeqCst) > 0 => yields += 1,
            // A read that went to the blocking pool: wait for it.
            Poll::Pending => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    assert_eq!(got, data);
    // Chunks grow from 7 bytes (doubling while the consumer keeps up), and a yield follows
    // every 64 KiB read: after 7·2^13 bytes, once per chunk (64 KiB, 128 KiB, … of the rest).
    // Without the yield there is none.
    assert!(yields >= 3, "only {yields} yields in 1 MiB");
}

/// Every client looks fast while its socket buffers fill, and the chunk read when they are
/// full waits in hyper until the client has drained them. So a stream longer than a chunk
/// starts with quarter chunks, and a consumer that was slow keeps getting quarter chunks for
/// a while (issue 17's 200 slow streams). A player's range of one chunk is one read.
#[tokio::test]
async fn a_stream_starts_small_and_a_slow_consumer_stays_small() {
    use std::time::Instant;
    const K: usize = 1024;
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let s = LocalStorage::new(
        dir.path(),
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64 * K,
            node: NodeDir::new(NODE_A).unwrap(),
        },
    );
    s.establish(None, 0).unwrap();
    let obj = s.open(&mp("f.bin")).await.unwrap();
    assert_eq!(read_all(&obj, 0..data.len() as u64).await, data);
    let mut range = obj.read_range(0..64 * K as u64);
    assert_eq!(range.next().await.unwrap().unwrap().len(), 64 * K);

    let mut st = obj.read_range(0..data.len() as u64);
    let started = Instant::now();
    assert_eq!(st.next().await.unwrap().unwrap().len(), 16 * K);
    // Asked every 10 ms (neither fast nor slow): 16 KiB until the start is over, then 64 KiB.
    let mut sizes = Vec::new();
    while started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let asked = started.elapsed();
        let n = st.next().await.unwrap().unwrap().len();
        if asked < Duration::from_millis(45) {
            assert_eq!(n, 16 * K, "read {asked:?} after the start");
        }
        sizes.push(n);
        if n == 64 * K {
            break;
        }
    }
    assert_eq!(sizes.last(), Some(&(64 * K)), "{sizes:?}");
    // A consumer that took 60 ms: quarter chunks again, also when it then asks quickly.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let slow_at = Instant::now();
    for _ in 0..5 {
        let n = st.next().await.unwrap().unwrap().len();
        if slow_at.elapsed() < Duration::from_millis(900) {
            assert_eq!(n, 16 * K);
        }
    }
    // The rules in detail, with made-up times: `pace`'s tests.
}
