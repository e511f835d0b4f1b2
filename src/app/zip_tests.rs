//! `zip_folder` on the in-memory backend, read back with a small central-directory reader
//! (the end-to-end tests read real archives with Python's `zipfile` and `unzip -t`).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::storage::memory::MemoryStorage;

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64le(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// CRC-32 (IEEE), bit by bit: slow and obviously right.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[derive(Debug)]
struct Member {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    data: Vec<u8>,
}

/// Reads the end records (Zip64 ones when the plain ones are saturated) and every central
/// directory record, with each member's stored bytes. Returns (members, whether Zip64).
fn read_zip(zip: &[u8]) -> (Vec<Member>, bool) {
    let eocd = zip.len() - 22;
    assert_eq!(
        u32le(zip, eocd),
        0x0605_4b50,
        "no end record where expected"
    );
    let mut count = u64::from(u16le(zip, eocd + 10));
    let mut cd = u64::from(u32le(zip, eocd + 16));
    let zip64 = count == 0xFFFF || cd == 0xFFFF_FFFF;
    if zip64 {
        let loc = eocd - 20;
        assert_eq!(u32le(zip, loc), 0x0706_4b50, "no Zip64 locator");
        let rec = usize::try_from(u64le(zip, loc + 8)).unwrap();
        assert_eq!(u32le(zip, rec), 0x0606_4b50, "no Zip64 end record");
        count = u64le(zip, rec + 32);
        cd = u64le(zip, rec + 48);
    }
    let mut at = usize::try_from(cd).unwrap();
    let mut members = Vec::new();
    for _ in 0..count {
        assert_eq!(u32le(zip, at), 0x0201_4b50, "bad central record at {at}");
        let n = usize::from(u16le(zip, at + 28));
        let extra = usize::from(u16le(zip, at + 30));
        let comment = usize::from(u16le(zip, at + 32));
        let size = u32le(zip, at + 20) as usize;
        let local = u32le(zip, at + 42) as usize;
        assert_eq!(u32le(zip, local), 0x0403_4b50, "bad local header");
        let start =
            local + 30 + usize::from(u16le(zip, local + 26)) + usize::from(u16le(zip, local + 28));
        members.push(Member {
            name: String::from_utf8(zip[at + 46..at + 46 + n].to_vec()).unwrap(),
            flags: u16le(zip, at + 8),
            method: u16le(zip, at + 10),
            crc: u32le(zip, at + 16),
            data: zip[start..start + size].to_vec(),
        });
        at += 46 + n + extra + comment;
    }
    (members, zip64)
}

/// Drains the stream: the bytes until the first error, and that error.
async fn drain(mut s: ZipStream) -> (Vec<u8>, Option<ZipError>) {
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => {
                assert!(s.next().await.is_none(), "items after an error");
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

fn store() -> (MemoryStorage, Arc<dyn Storage>) {
    let mem = MemoryStorage::new();
    let s: Arc<dyn Storage> = Arc::new(mem.clone());
    (mem, s)
}

fn path(p: &str) -> MediaPath {
    MediaPath::from_api(p).unwrap()
}

#[tokio::test]
async fn a_folder_with_its_subfolders_names_relative_and_bytes_exact() {
    let (mem, s) = store();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    mem.insert("films/été/日本.txt", b"nihon");
    mem.insert("films/with space.bin", &big);
    mem.insert("films/a:b.txt", b"colon");
    mem.insert("films/.hidden/x.txt", b"secret");
    mem.insert("films/.env", b"secret");
    mem.insert("other/o.txt", b"not in films");
    s.create_dir(&path("films/empty")).await.unwrap();

    let (zip, err) = drain(zip_folder(s.clone(), &path("films")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let (members, zip64) = read_zip(&zip);
    assert!(!zip64);
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "a\u{FF1A}b.txt",
            "empty/",
            "with space.bin",
            "été/",
            "été/日本.txt"
        ]
    );
    for m in &members {
        assert_eq!(m.method, 0, "STORE");
        assert_ne!(m.flags & 0x0800, 0, "UTF-8 flag on {}", m.name);
        let want: &[u8] = match m.name.as_str() {
            "a\u{FF1A}b.txt" => b"colon",
            "with space.bin" => &big,
            "été/日本.txt" => b"nihon",
            _ => b"",
        };
        assert_eq!(m.data, want, "{}", m.name);
        assert_eq!(m.crc, crc32(want), "{}", m.name);
    }
    assert!(
        !zip.windows(6).any(|w| w == b"secret"),
        "a hidden file's bytes are in the zip"
    );
    assert!(!zip.windows(12).any(|w| w == b"not in films"));

    // The root: everything, under the names relative to it.
    let (zip, err) = drain(zip_folder(s, &MediaPath::root()).await.unwrap()).await;
    assert!(err.is_none());
    let names: Vec<String> = read_zip(&zip).0.into_iter().map(|m| m.name).collect();
    assert!(
        names.contains(&"films/été/日本.txt".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"other/o.txt".to_string()), "{names:?}");
}

#[tokio::test]
async fn errors_before_the_first_byte() {
    let (mem, s) = store();
    mem.insert("dir/file.txt", b"x");
    mem.insert(".hidden/file.txt", b"x");
    let err = |r: Result<ZipStream, ZipError>| r.err().expect("an error");
    assert!(matches!(
        err(zip_folder(s.clone(), &path("dir/file.txt")).await),
        ZipError::NotAFolder
    ));
    for missing in ["nope", "dir/nope", "dir/file.txt/below", ".hidden"] {
        let e = err(zip_folder(s.clone(), &path(missing)).await);
        assert!(
            matches!(e, ZipError::Storage(StorageError::NotFound)),
            "{missing}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_folder_that_fails_mid_walk_breaks_the_archive_off() {
    let (mem, s) = store();
    mem.insert("top/a/one.txt", b"first");
    mem.insert("top/b/two.txt", b"second");
    mem.fail_listing("top/b");
    let (zip, err) = drain(zip_folder(s, &path("top")).await.unwrap()).await;
    assert!(
        matches!(&err, Some(ZipError::Entry { path, source: StorageError::PermissionDenied })
            if path == "top/b"),
        "{err:?}"
    );
    // What was sent is a beginning, not an archive: no end record.
    assert!(!zip.windows(4).any(|w| w == [0x50, 0x4b, 0x05, 0x06]));
}

#[tokio::test]
async fn more_than_65535_entries_make_a_zip64_archive() {
    let (mem, s) = store();
    let n = 65_600;
    for i in 0..n {
        mem.insert(&format!("many/f{i}"), b"");
    }
    let (zip, err) = drain(zip_folder(s, &path("many")).await.unwrap()).await;
    assert!(err.is_none());
    let (members, zip64) = read_zip(&zip);
    assert!(zip64, "the entry count needs the Zip64 end record");
    assert_eq!(members.len(), n);
}

#[tokio::test]
async fn file_bytes_pass_through_in_storage_chunks() {
    // A file is never gathered: each item is at most one of the storage's chunks.
    let (mem, s) = store();
    mem.insert("d/big.bin", &vec![7u8; 1 << 20]);
    let mut z = zip_folder(s, &path("d")).await.unwrap();
    let mut largest = 0;
    while let Some(item) = z.next().await {
        let b: Bytes = item.unwrap();
        largest = largest.max(b.len());
    }
    assert!(largest <= 64 * 1024, "an item of {largest} bytes");
}

#[test]
fn names_and_times() {
    assert_eq!(zip_name("plain.txt"), "plain.txt");
    assert_eq!(zip_name("12:30 Live: x"), "12\u{FF1A}30 Live\u{FF1A} x");
    assert_eq!(civil_utc(0), (1970, 1, 1, 0, 0, 0));
    assert_eq!(civil_utc(951_782_400), (2000, 2, 29, 0, 0, 0));
    assert_eq!(civil_utc(1_600_000_000), (2020, 9, 13, 12, 26, 40));
    assert_eq!(civil_utc(DOS_FIRST), (1980, 1, 1, 0, 0, 0));
    assert_eq!(civil_utc(DOS_LAST), (2107, 12, 31, 23, 59, 58));
    let t = file_times(UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert_eq!(t.unix(), Some(1_600_000_000));
    assert_eq!(
        t.dos(),
        MsDosDateTime::new(2020, 9, 13, 12, 26, 40).unwrap()
    );
    // Before 1980 the DOS fields hold their first day; the exact second stays in the
    // extended field.
    let t = file_times(UNIX_EPOCH + Duration::from_secs(100));
    assert_eq!(t.dos(), MsDosDateTime::new(1980, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(t.unix(), Some(100));
}
