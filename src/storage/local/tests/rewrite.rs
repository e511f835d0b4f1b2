//! A file rewritten in place while a long read of it runs (attack pass F1): the read ends
//! with `Changed` instead of handing over the rest as if nothing happened, whether its chunks
//! are copied or handed over as zero-copy regions. A single-chunk read is not checked.

use std::io::{Seek, SeekFrom, Write};
use std::time::SystemTime;

use bytes::Bytes;

use super::*;
use crate::storage::{FileRegion, ZeroCopy};

const CHUNK: usize = 64 * 1024;

/// Hands every region over as zeroes of its length.
struct Regions;

impl ZeroCopy for Regions {
    fn region(&self, _: Arc<dyn FileRegion>, _: u64, len: usize) -> Option<Bytes> {
        Some(Bytes::from(vec![0u8; len]))
    }

    fn in_flight(&self) -> u64 {
        0
    }
}

/// Overwrites the start of the file in place, as `dd conv=notrunc` does, with a later mtime
/// (a write in the same clock tick as the file's creation would keep its mtime).
fn rewrite_in_place(path: &Path) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&[0xAA; 4096]).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

/// Reads the first frame, rewrites the file, then drains: what came, and how it ended.
async fn read_across_a_rewrite(zero_copy: bool) -> (usize, Option<StorageError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![7u8; 4 * CHUNK]).unwrap();
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    let zc: Arc<dyn ZeroCopy> = Arc::new(Regions);
    let mut st = obj.read_range_to(0..4 * CHUNK as u64, zero_copy.then_some(&zc));
    let mut got = st.next().await.unwrap().unwrap().len();
    rewrite_in_place(&path);
    while let Some(frame) = st.next().await {
        match frame {
            Ok(b) => got += b.len(),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

#[tokio::test]
async fn a_file_rewritten_during_a_copied_read_ends_it_short() {
    let (got, end) = read_across_a_rewrite(false).await;
    assert!(matches!(end, Some(StorageError::Changed)), "{end:?}");
    assert!(got < 4 * CHUNK, "the response ends short: {got} bytes");
}

#[tokio::test]
async fn a_file_rewritten_during_a_zero_copy_read_ends_it_short() {
    let (got, end) = read_across_a_rewrite(true).await;
    assert!(matches!(end, Some(StorageError::Changed)), "{end:?}");
    assert!(got < 4 * CHUNK, "the response ends short: {got} bytes");
}

#[tokio::test]
async fn an_unchanged_file_reads_whole_and_its_last_chunk_is_real_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    let zc: Arc<dyn ZeroCopy> = Arc::new(Regions);
    let mut st = obj.read_range_to(10..data.len() as u64, Some(&zc));
    let mut frames = Vec::new();
    while let Some(frame) = st.next().await {
        frames.push(frame.unwrap());
    }
    let total: usize = frames.iter().map(Bytes::len).sum();
    assert_eq!(total, data.len() - 10);
    let last = frames.last().unwrap();
    assert_eq!(
        &last[..],
        &data[data.len() - last.len()..],
        "the checked last chunk is the file's own bytes"
    );
}

#[tokio::test]
async fn a_single_chunk_read_is_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![7u8; 4 * CHUNK]).unwrap();
    let s = service_storage(dir.path());
    let obj = s.open(&mp("f")).await.unwrap();
    rewrite_in_place(&path);
    // Opened before the rewrite: one chunk is sent as read (as any server would).
    let mut st = obj.read_range(CHUNK as u64..2 * CHUNK as u64);
    assert_eq!(st.next().await.unwrap().unwrap().len(), CHUNK);
    assert!(st.next().await.is_none());
}
