//! Zero-copy reads (`read_range_to`): what is in the page cache is handed over as regions that
//! send the file's own bytes; what is not is read as usual, so no region is ever a promise
//! that would make a runtime worker wait for the disk.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::storage::{FileRegion, ZeroCopy};

/// Records the regions it is handed; their frames are plain zeroes of the region's length.
/// The second field is its [`ZeroCopy::in_flight`].
#[derive(Default)]
struct Collect(Mutex<Vec<Handed>>, u64);

/// A region as handed over: the file, the offset, the length.
type Handed = (Arc<dyn FileRegion>, u64, usize);

impl ZeroCopy for Collect {
    fn region(&self, file: Arc<dyn FileRegion>, offset: u64, len: usize) -> Option<Bytes> {
        self.0.lock().unwrap().push((file, offset, len));
        Some(Bytes::from(vec![0u8; len]))
    }

    fn in_flight(&self) -> u64 {
        self.1
    }
}

fn file_of(dir: &Path, name: &str, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join(name), &data).unwrap();
    data
}

/// Drops the clean pages of a synced file, and says so.
fn evict(f: &std::fs::File, len: usize) {
    f.sync_all().unwrap();
    rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    assert_eq!(
        super::super::region::cached(f, 0, len),
        Some(false),
        "the file's pages could not be evicted here; the test needs a disk-backed /tmp"
    );
}

/// Sends a region through a real socket and returns what arrived.
fn send(file: &dyn FileRegion, offset: u64, len: usize) -> Option<Vec<u8>> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let mut sent = 0;
    while sent < len {
        let n = file
            .send_cached(server.as_fd(), offset + sent as u64, len - sent)
            .unwrap()?;
        assert!(n > 0, "the file ended early");
        sent += n;
    }
    drop(server);
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    Some(got)
}

#[tokio::test]
async fn cached_bytes_become_regions_that_send_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = file_of(dir.path(), "f", 300_000);
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    let zc = Arc::new(Collect::default());
    let as_zc: Arc<dyn ZeroCopy> = zc.clone();
    let mut st = obj.read_range_to(1000..250_000, Some(&as_zc));
    let mut frames = Vec::new();
    while let Some(frame) = st.next().await {
        frames.push(frame.unwrap());
    }
    let total: usize = frames.iter().map(Bytes::len).sum();
    assert_eq!(total, 249_000);
    // The last chunk of a read of several is read and checked (`rewrite`), never a region.
    let last = frames.last().unwrap();
    assert!(last[..] == data[250_000 - last.len()..250_000]);
    let regions = zc.0.lock().unwrap();
    let covered: usize = regions.iter().map(|r| r.2).sum();
    assert_eq!(
        covered,
        249_000 - last.len(),
        "every other byte of a cached file went as a region"
    );
    let mut at = 1000;
    for (file, offset, len) in regions.iter() {
        assert_eq!(*offset, at, "regions are in order and contiguous");
        let got = send(file.as_ref(), *offset, *len).expect("cached");
        assert!(
            got == data[at as usize..at as usize + len],
            "region at {offset}"
        );
        at += *len as u64;
    }
}

#[tokio::test]
async fn the_end_of_a_long_read_is_copied_not_handed_over() {
    // Pages handed over stay in the socket until the client reads them; the last
    // `in_flight` bytes are copies, so the version check at the end covers all that is left.
    let dir = tempfile::tempdir().unwrap();
    let data = file_of(dir.path(), "f", 1 << 20);
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    let tail = 300_000;
    let zc = Arc::new(Collect(Mutex::default(), tail));
    let as_zc: Arc<dyn ZeroCopy> = zc.clone();
    let mut st = obj.read_range_to(0..1 << 20, Some(&as_zc));
    let mut got = Vec::new();
    while let Some(frame) = st.next().await {
        got.extend_from_slice(&frame.unwrap());
    }
    let handed_end = zc.0.lock().unwrap().iter().map(|r| r.1 + r.2 as u64).max();
    assert!(
        handed_end.is_some_and(|end| end <= (1 << 20) - tail),
        "regions end at {handed_end:?}, within the last {tail} bytes"
    );
    let from = handed_end.unwrap_or(0) as usize;
    assert!(
        got[from..] == data[from..],
        "the copied tail is the file's bytes"
    );

    // One chunk is handed over whatever the tail: it is checked as it is opened.
    let one = Arc::new(Collect(Mutex::default(), tail));
    let as_zc: Arc<dyn ZeroCopy> = one.clone();
    let mut st = obj.read_range_to(0..4096, Some(&as_zc));
    while st.next().await.is_some() {}
    assert_eq!(
        one.0.lock().unwrap().len(),
        1,
        "a single chunk went as a region"
    );
}

#[tokio::test]
async fn bytes_not_in_the_page_cache_are_read_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = file_of(dir.path(), "f", 1 << 20);
    evict(&std::fs::File::open(dir.path().join("f")).unwrap(), 1 << 20);
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    let zc = Arc::new(Collect::default());
    let as_zc: Arc<dyn ZeroCopy> = zc.clone();
    let mut st = obj.read_range_to(0..4096, Some(&as_zc));
    let first = st.next().await.unwrap().unwrap();
    assert!(
        zc.0.lock().unwrap().is_empty(),
        "a region for bytes not in the cache"
    );
    assert_eq!(
        &first[..],
        &data[..first.len()],
        "read from the file instead"
    );
}

#[tokio::test]
async fn a_region_whose_pages_left_the_cache_is_read_on_the_pool_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = file_of(dir.path(), "g", 1 << 20);
    let f = std::fs::File::open(dir.path().join("g")).unwrap();
    let region = super::super::region::LocalRegion {
        handle: super::super::read::Handle::for_test(f.try_clone().unwrap()),
        pool: crate::blocking::Pool::new(1),
        timeout: Duration::from_secs(5),
    };
    assert!(
        send(&region, 8192, 4096).is_some(),
        "just written, so cached"
    );
    evict(&f, 1 << 20);
    assert_eq!(
        send(&region, 8192, 4096),
        None,
        "sent bytes that were not cached"
    );
    let read = region.read(8192, 4096).await.unwrap();
    assert_eq!(&read[..], &data[8192..12288]);
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_file_on_a_mount_beneath_the_root_is_never_sent_from_the_workers() {
    // A FUSE or NFS mount inside a local root: a page it has not finished reading counts as
    // cached, and `sendfile` would wait for that server on a runtime worker. Here a tmpfs
    // stands in for it (another device, its pages always cached).
    let dir = tempfile::tempdir().unwrap();
    let s = service_storage(dir.path());
    let sub = dir.path().join("share");
    std::fs::create_dir(&sub).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&sub)
        .status()
        .is_ok_and(|st| st.success());
    assert!(
        ok,
        "this test mounts a tmpfs and needs root (CAP_SYS_ADMIN)"
    );
    let _m = Mounted(sub.clone());
    let data = file_of(&sub, "f", 200_000);
    file_of(dir.path(), "g", 200_000);
    let zc = Arc::new(Collect::default());
    let as_zc: Arc<dyn ZeroCopy> = zc.clone();
    for (name, regions) in [("share/f", false), ("g", true)] {
        let obj = s.open(&mp(name)).await.unwrap();
        let mut st = obj.read_range_to(0..200_000, Some(&as_zc));
        let mut got = Vec::new();
        while let Some(frame) = st.next().await {
            got.extend_from_slice(&frame.unwrap());
        }
        let handed = std::mem::take(&mut *zc.0.lock().unwrap());
        assert_eq!(!handed.is_empty(), regions, "{name}: regions handed over");
        if !regions {
            assert!(got == data, "{name}: the bytes were read from the file");
        }
    }
}
