//! Unit tests of the local backend against temporary folders: reading, and every way a path
//! could leave the root (links, swaps), the root's identity, uploads that fail.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::read::{into_bytes, ChunkBudget, GROWN_CHUNK_BUDGET};
use super::*;
use crate::storage::Object;

fn storage_with(root: &Path, allow_symlink_escape: bool) -> LocalStorage {
    let s = LocalStorage::new(
        root,
        LocalOptions {
            allow_symlink_escape,
            timeout: Duration::from_secs(5),
            chunk_size: 7,
        },
    );
    s.establish(None, 0).expect("a new root");
    s
}

fn storage(root: &Path) -> LocalStorage {
    storage_with(root, false)
}

fn mp(s: &str) -> MediaPath {
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

/// Everything under `base`, as relative paths (links not followed), for "nothing changed".
fn tree(base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

async fn put(s: &LocalStorage, path: &str, body: &[u8]) -> Result<ObjectMeta, StorageError> {
    let dest = mp(path);
    let mut up = s
        .begin_upload(
            &dest,
            UploadOptions {
                expected: Some(body.len() as u64),
                ..Default::default()
            },
        )
        .await?;
    up.write(bytes::Bytes::copy_from_slice(body)).await?;
    up.commit(&dest, false).await
}

/// A root with a link to a folder outside it, which holds a file.
fn escape_fixture() -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("existing-file"), b"x").unwrap();
    std::fs::create_dir(outside.path().join("existing-dir")).unwrap();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
    std::os::unix::fs::symlink("../..", root.join("up")).unwrap();
    (outside, base, root)
}

#[tokio::test]
async fn nothing_is_created_outside_through_a_link_and_nothing_is_revealed() {
    let (outside, _base, root) = escape_fixture();
    let s = storage(&root);
    let before = tree(outside.path());
    for p in [
        "link/newA/newB/f.txt",
        "link/f.txt",
        "link/existing-file/x",
        "link/missing/x",
        "link/existing-dir/x",
        "up/newA/f.txt",
    ] {
        let e = put(&s, p, b"data")
            .await
            .err()
            .unwrap_or_else(|| panic!("{p} refused"));
        // The same answer whether something exists out there or not: no oracle.
        assert!(matches!(e, StorageError::OutsideRoot), "{p}: {e}");
    }
    for p in ["link/newdir", "link/a/b/c", "up/x"] {
        let e = s.create_dir(&mp(p)).await.err().unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "{p}: {e}");
    }
    std::fs::write(root.join("mine.txt"), b"m").unwrap();
    for to in ["link/mine.txt", "link/new/mine.txt", "link/existing-file"] {
        let e = s
            .rename(&mp("mine.txt"), &mp(to), true)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "{to}: {e}");
    }
    for p in [
        "link/existing-file",
        "link/missing",
        "link/existing-dir/nothing",
    ] {
        let e = s.open(&mp(p)).await.err().unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "open {p}: {e}");
        let e = s.delete(&mp(p)).await.err().unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "delete {p}: {e}");
    }
    let e = s.list(&mp("link")).await.err().unwrap();
    assert!(matches!(e, StorageError::OutsideRoot), "{e}");
    assert_eq!(
        tree(outside.path()),
        before,
        "something changed outside the root"
    );
    assert!(root.join("mine.txt").exists());
}

#[tokio::test]
async fn a_folder_swapped_for_a_link_during_an_upload_keeps_the_file_inside() {
    let (outside, _base, root) = escape_fixture();
    std::fs::create_dir(root.join("dir")).unwrap();
    let s = storage(&root);
    let dest = mp("dir/slow.bin");
    let mut up = s
        .begin_upload(&dest, UploadOptions::default())
        .await
        .unwrap();
    up.write(bytes::Bytes::from_static(b"first half "))
        .await
        .unwrap();
    // Mid-upload, the destination folder becomes a link out of the root.
    std::fs::rename(root.join("dir"), root.join("dir.old")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("dir")).unwrap();
    up.write(bytes::Bytes::from_static(b"second half"))
        .await
        .unwrap();
    let e = up.commit(&dest, false).await.err().unwrap();
    assert!(matches!(e, StorageError::OutsideRoot), "{e}");
    assert!(!outside.path().join("slow.bin").exists());
    assert!(!root.join("dir.old/slow.bin").exists());
    let staging = root.join(STAGING_DIR);
    let left: Vec<_> = std::fs::read_dir(&staging).unwrap().collect();
    assert!(left.is_empty(), "staging not cleaned: {left:?}");
}

#[tokio::test]
async fn absolute_links_back_inside_the_root_still_work() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir_all(root.join("real")).unwrap();
    std::fs::write(root.join("real/a.txt"), b"a").unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("fav")).unwrap();
    let s = storage(&root);
    assert_eq!(s.open(&mp("fav/a.txt")).await.unwrap().meta().size, 1);
    put(&s, "fav/b.txt", b"bb").await.unwrap();
    assert_eq!(std::fs::read(root.join("real/b.txt")).unwrap(), b"bb");
    let names: Vec<String> = s
        .list(&mp("fav"))
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["a.txt", "b.txt"]);
}

#[tokio::test]
async fn a_failed_upload_leaves_no_folder_behind() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let s = storage(&root);
    // Abandoned mid-body: nothing, not even its folders.
    let dest = mp("new/deeper/f.bin");
    let mut up = s
        .begin_upload(&dest, UploadOptions::default())
        .await
        .unwrap();
    up.write(bytes::Bytes::from_static(b"partial"))
        .await
        .unwrap();
    up.close().await;
    // Commit refused (the name was taken meanwhile): its new folders go again.
    let mut up = s
        .begin_upload(&mp("x/y/taken.bin"), UploadOptions::default())
        .await
        .unwrap();
    up.write(bytes::Bytes::from_static(b"mine")).await.unwrap();
    std::fs::create_dir_all(root.join("x/y/taken.bin")).unwrap();
    let e = up.commit(&mp("x/y/taken.bin"), false).await.err().unwrap();
    assert!(
        matches!(e, StorageError::IsDirectory | StorageError::AlreadyExists),
        "{e}"
    );
    let t = tree(&root);
    assert!(!t.iter().any(|p| p.starts_with("new")), "{t:?}");
    let staged: Vec<_> = std::fs::read_dir(root.join(STAGING_DIR)).unwrap().collect();
    assert!(staged.is_empty(), "{staged:?}");
}

#[tokio::test]
async fn the_root_has_an_identity() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    // A new install: the folder and its marker are made.
    let s = LocalStorage::new(
        &root,
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64,
        },
    );
    let Established::Volume(id) = s.establish(None, 0).unwrap() else {
        panic!("no volume id")
    };
    assert!(std::fs::read_to_string(root.join(MARKER))
        .unwrap()
        .contains(&id));
    put(&s, "a.txt", b"a").await.unwrap();
    // The disk goes away (the bare mount point has no marker): nothing is written there.
    std::fs::rename(&root, base.path().join("away")).unwrap();
    std::fs::create_dir(&root).unwrap();
    for e in [
        put(&s, "b.txt", b"b").await.err().unwrap(),
        s.create_dir(&mp("d")).await.err().unwrap(),
        s.open(&mp("a.txt")).await.err().unwrap(),
        s.check().await.err().unwrap(),
    ] {
        assert!(
            matches!(&e, StorageError::Unavailable(m) if m.contains(MARKER)),
            "{e}"
        );
    }
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    // A restart while it is away neither creates a marker nor takes the empty folder.
    let again = LocalStorage::new(&root, s.opts.clone());
    assert!(again.establish(Some(&id), 5).is_err());
    assert!(!root.join(MARKER).exists());
    // The disk is back: everything works again, by itself.
    std::fs::remove_dir(&root).unwrap();
    std::fs::rename(base.path().join("away"), &root).unwrap();
    assert_eq!(s.open(&mp("a.txt")).await.unwrap().meta().size, 1);
    s.check().await.unwrap();
    // Another disk with its own marker is refused.
    std::fs::write(root.join(MARKER), "other-volume\n").unwrap();
    let e = s.check().await.err().unwrap();
    assert!(
        matches!(&e, StorageError::Unavailable(m) if m.contains("another volume")),
        "{e}"
    );
}

#[tokio::test]
async fn an_empty_root_with_an_index_is_not_taken_for_a_new_install() {
    let base = tempfile::tempdir().unwrap();
    let s = LocalStorage::new(
        base.path(),
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64,
        },
    );
    let e = s.establish(None, 12).err().unwrap();
    assert!(
        matches!(&e, StorageError::Unavailable(m) if m.contains("12 entries")),
        "{e}"
    );
    assert!(!base.path().join(MARKER).exists());
    let e = s.create_dir(&mp("x")).await.err().unwrap();
    assert!(matches!(e, StorageError::Unavailable(_)), "{e}");
}

/// Where `RENAME_NOREPLACE` is unknown (older NFS): link + unlink for a file, a checked
/// rename for a folder; an existing name is never replaced either way.
#[test]
fn no_replace_without_the_kernel_flag() {
    let d = tempfile::tempdir().unwrap();
    let dir = std::fs::File::open(d.path()).unwrap();
    std::fs::write(d.path().join("a"), b"a").unwrap();
    std::fs::write(d.path().join("taken"), b"t").unwrap();
    std::fs::create_dir(d.path().join("folder")).unwrap();
    let e = super::ops::rename_noreplace_fallback(&dir, "a", &dir, "taken", "/").unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists), "{e}");
    assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"t");
    super::ops::rename_noreplace_fallback(&dir, "a", &dir, "b", "/").unwrap();
    assert!(!d.path().join("a").exists());
    assert_eq!(std::fs::read(d.path().join("b")).unwrap(), b"a");
    let e = super::ops::rename_noreplace_fallback(&dir, "folder", &dir, "b", "/").unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists), "{e}");
    super::ops::rename_noreplace_fallback(&dir, "folder", &dir, "moved", "/").unwrap();
    assert!(d.path().join("moved").is_dir());
}

/// Links that leave the root and come back, whether or not the outside part exists, are
/// refused alike: nothing outside is ever looked up, so nothing about it is revealed.
#[tokio::test]
async fn links_through_the_outside_are_refused_without_looking_there() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/b.txt"), b"b").unwrap();
    std::fs::create_dir_all(base.path().join("outside/sub")).unwrap();
    let r = root.canonicalize().unwrap();
    let name = r.file_name().unwrap().to_str().unwrap().to_string();
    for (link, target) in [
        (
            "abs_yes",
            format!("{}/../{}/a", base.path().join("outside").display(), name),
        ),
        (
            "abs_no",
            format!("{}/../{}/a", base.path().join("nothing").display(), name),
        ),
        ("rel_yes", format!("../outside/sub/../../{name}/a")),
        ("rel_no", format!("../nothing/sub/../../{name}/a")),
    ] {
        std::os::unix::fs::symlink(&target, root.join(link)).unwrap();
    }
    let s = storage(&root);
    for link in ["abs_yes", "abs_no", "rel_yes", "rel_no"] {
        let e = s.open(&mp(&format!("{link}/b.txt"))).await.err().unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "{link}: {e}");
        let e = put(&s, &format!("{link}/new.txt"), b"n")
            .await
            .err()
            .unwrap();
        assert!(matches!(e, StorageError::OutsideRoot), "{link}: {e}");
    }
    assert!(!root.join("a/new.txt").exists());
}

/// streamhub's own names are not addressable through a link either, and a loop of links is
/// "not found", not an error.
#[tokio::test]
async fn links_to_reserved_names_and_loops_lead_nowhere() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let s = storage(&root);
    put(&s, "seed.txt", b"s").await.unwrap(); // the staging folder exists now
    std::os::unix::fs::symlink(".streamhub-staging", root.join("stg")).unwrap();
    std::os::unix::fs::symlink(root.join(".streamhub-root"), root.join("mk")).unwrap();
    std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
    for p in ["stg", "mk", "loop1"] {
        let e = s.open(&mp(p)).await.err().unwrap();
        assert!(matches!(e, StorageError::NotFound), "open {p}: {e}");
        let e = s.list(&mp(p)).await.err().unwrap();
        assert!(matches!(e, StorageError::NotFound), "list {p}: {e}");
        let e = put(&s, &format!("{p}/x.txt"), b"x").await.err().unwrap();
        assert!(matches!(e, StorageError::NotFound), "put {p}/x.txt: {e}");
    }
    let names: Vec<String> = s
        .list(&MediaPath::root())
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        ["seed.txt"],
        "links to our own names and loops are not listed"
    );
    let staged: Vec<_> = std::fs::read_dir(root.join(STAGING_DIR)).unwrap().collect();
    assert!(
        staged.is_empty(),
        "nothing written into staging: {staged:?}"
    );
}

/// A FIFO planted as the marker (or as a staged upload) must not stall the check every
/// operation makes: it is "unavailable" (or "gone") at once.
#[tokio::test]
async fn fifos_in_our_places_do_not_block() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let s = storage(&root);
    let up = s
        .begin_upload(
            &mp("r.bin"),
            UploadOptions {
                resumable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = up.key().to_string();
    up.close().await;
    let staged = root.join(STAGING_DIR).join(&key);
    std::fs::remove_file(&staged).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &staged,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let e = s.resume_upload(&key, 0, None).await.err().unwrap();
    assert!(matches!(e, StorageError::UploadGone), "{e}");
    std::fs::remove_file(&staged).unwrap();
    // A second hard link would make a PATCH write into a file elsewhere.
    std::fs::write(base.path().join("victim"), b"v").unwrap();
    std::fs::hard_link(base.path().join("victim"), &staged).unwrap();
    let e = s.resume_upload(&key, 0, None).await.err().unwrap();
    assert!(matches!(e, StorageError::UploadGone), "{e}");
    assert_eq!(std::fs::read(base.path().join("victim")).unwrap(), b"v");
    let marker = root.join(MARKER);
    std::fs::remove_file(&marker).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &marker,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let e = s.check().await.err().unwrap();
    assert!(
        matches!(&e, StorageError::Unavailable(m) if m.contains(MARKER)),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "something waited on a FIFO"
    );
}
