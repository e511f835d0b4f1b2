//! Unit tests of the library index against a temporary media root and a migrated database
//! (ffprobe/ffmpeg point nowhere here; the e2e suite runs the real programs).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::model::RawList;
use super::*;
use crate::config::LibraryConfig;
use crate::db::Db;
use crate::storage::local::{LocalOptions, LocalStorage, NodeDir};
use crate::storage::memory::MemoryStorage;

pub(super) struct Fx {
    _data: tempfile::TempDir,
    _media: tempfile::TempDir,
    pub(super) root: PathBuf,
    data: PathBuf,
    db: Db,
    pub(super) lib: Library,
}

pub(super) fn fx() -> Fx {
    let data = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let root = media.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let db = Db::open(data.path()).unwrap();
    let storage = LocalStorage::new(
        &root,
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64 * 1024,
            node: NodeDir::new(&"a".repeat(64)).unwrap(),
        },
    );
    storage.establish(None, 0).unwrap();
    let cfg = LibraryConfig {
        scan_interval_secs: 0,
        search_rescan_secs: 0,
        ffprobe: "/nonexistent/ffprobe".into(),
        ffmpeg: "/nonexistent/ffmpeg".into(),
        thumbnails: true,
        probe_timeout_secs: 5,
    };
    let lib = Library::open(data.path(), Arc::new(storage), &cfg, Duration::from_secs(5)).unwrap();
    Fx {
        data: data.path().to_path_buf(),
        _data: data,
        _media: media,
        root,
        db,
        lib,
    }
}

pub(super) fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

pub(super) fn mp(s: &str) -> MediaPath {
    MediaPath::from_decoded(s).unwrap()
}

pub(super) async fn names(lib: &Library, dir: &str) -> Vec<String> {
    let page = lib.list(ListRequest::folder(mp(dir))).await.unwrap();
    page.entries.into_iter().map(|e| e.name).collect()
}

pub(super) async fn search(
    lib: &Library,
    dir: &str,
    raw: RawList<'_>,
) -> Result<Page, LibraryError> {
    lib.list(ListRequest::parse(mp(dir), &raw)?).await
}

pub(super) async fn found(lib: &Library, q: &str) -> Vec<String> {
    let raw = RawList {
        q: Some(q),
        ..Default::default()
    };
    let mut v: Vec<String> = search(lib, "", raw)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect();
    v.sort();
    v
}

pub(super) fn indexed(f: &Fx) -> u64 {
    query::count(&f.lib.inner.lock()).unwrap()
}

pub(super) fn user(f: &Fx, name: &str) -> i64 {
    f.db.with(|c| {
        c.execute(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES (?1, 'x', 'member', 0)",
            [name],
        )
        .unwrap();
        c.last_insert_rowid()
    })
}

pub(super) fn meta(size: u64) -> crate::storage::ObjectMeta {
    crate::storage::ObjectMeta {
        size,
        modified: SystemTime::now(),
        etag: "x".into(),
    }
}

#[tokio::test]
async fn scan_adds_changes_and_removes() {
    let f = fx();
    put(&f.root, "a.mp4", b"one");
    put(&f.root, "films/b.mkv", b"two");
    put(&f.root, "films/deep/c.txt", b"three");
    put(&f.root, ".hidden", b"x");
    put(&f.root, ".streamhub-staging/part.mp4", b"partial");
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!((r.files, r.added, r.removed), (3, 5, 0), "{r:?}");
    assert_eq!(names(&f.lib, "").await, ["films", "a.mp4"], "folders first");
    assert_eq!(
        found(&f.lib, "part").await,
        Vec::<String>::new(),
        "staging never indexed"
    );

    put(&f.root, "a.mp4", b"one, longer now");
    std::fs::remove_dir_all(f.root.join("films/deep")).unwrap();
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!((r.changed, r.removed), (1, 2), "{r:?}");
    let a = f.lib.list(ListRequest::folder(mp(""))).await.unwrap();
    let a = a.entries.iter().find(|e| e.name == "a.mp4").unwrap();
    assert_eq!(a.size, 15);
    assert_eq!(a.class, MediaClass::Video);
    assert_eq!(found(&f.lib, "c.txt").await, Vec::<String>::new());
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!(
        (r.added, r.changed, r.removed),
        (0, 0, 0),
        "a rescan changes nothing"
    );
}

#[tokio::test]
async fn vanished_root_keeps_the_index() {
    let f = fx();
    put(&f.root, "show/e1.mkv", b"1");
    put(&f.root, "show/e2.mkv", b"2");
    f.lib.scan_now().await.unwrap();
    let before = indexed(&f);
    assert_eq!(before, 3);
    let away = f.root.with_file_name("away");
    std::fs::rename(&f.root, &away).unwrap();
    assert!(matches!(
        f.lib.scan_now().await,
        Err(LibraryError::Unavailable(_))
    ));
    assert_eq!(indexed(&f), before);
    assert!(matches!(
        f.lib.list(ListRequest::folder(mp(""))).await,
        Err(LibraryError::Unavailable(_))
    ));
    assert!(f
        .lib
        .status()
        .warning
        .is_some_and(|w| w.contains("index kept")));
    std::fs::rename(&away, &f.root).unwrap();
    f.lib.scan_now().await.unwrap();
    assert_eq!(names(&f.lib, "show").await, ["e1.mkv", "e2.mkv"]);
    assert!(f.lib.status().warning.is_none());
}

#[tokio::test]
async fn empty_root_keeps_the_index() {
    let f = fx();
    put(&f.root, "show/e1.mkv", b"1");
    put(&f.root, "top.mp3", b"2");
    f.lib.scan_now().await.unwrap();
    std::fs::remove_dir_all(f.root.join("show")).unwrap();
    std::fs::remove_file(f.root.join("top.mp3")).unwrap();
    assert!(matches!(
        f.lib.scan_now().await,
        Err(LibraryError::RootEmpty(3))
    ));
    assert!(matches!(
        f.lib.list(ListRequest::folder(mp(""))).await,
        Err(LibraryError::RootEmpty(3))
    ));
    assert_eq!(found(&f.lib, "e1").await, ["show/e1.mkv"]);
    // Once anything is back, the root is trusted again and the rest is pruned.
    put(&f.root, "new.mp4", b"n");
    f.lib.scan_now().await.unwrap();
    assert_eq!(names(&f.lib, "").await, ["new.mp4"]);
}

#[tokio::test]
async fn unreadable_folder_keeps_its_rows() {
    // On the second backend: a folder that fails to list is something a real disk cannot be
    // made to do on demand when the tests run as root.
    let data = tempfile::tempdir().unwrap();
    Db::open(data.path()).unwrap();
    let mem = MemoryStorage::new();
    mem.insert("locked/keep.mkv", b"1");
    mem.insert("open/x.mkv", b"2");
    let lib = Library::open(
        data.path(),
        Arc::new(mem.clone()),
        &crate::config::Config::default().library,
        Duration::from_secs(5),
    )
    .unwrap();
    lib.scan_now().await.unwrap();
    mem.delete(&mp("locked/keep.mkv")).await.unwrap();
    mem.delete(&mp("open/x.mkv")).await.unwrap();
    mem.fail_listing("locked");
    let r = lib.scan_now().await.unwrap();
    assert_eq!((r.errors, r.removed), (1, 1), "{r:?}");
    assert_eq!(found(&lib, "keep").await, ["locked/keep.mkv"]);
    assert_eq!(found(&lib, "x.mkv").await, Vec::<String>::new());
}

#[tokio::test]
async fn symlinks_do_not_loop_or_escape() {
    let f = fx();
    put(&f.root, "a/file.mp4", b"1");
    std::os::unix::fs::symlink(f.root.join("a"), f.root.join("a/loop")).unwrap();
    std::os::unix::fs::symlink(&f.data, f.root.join("outside")).unwrap();
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!(r.files, 1, "{r:?}");
    assert_eq!(
        names(&f.lib, "").await,
        ["a"],
        "links out of the root are not indexed"
    );
    assert_eq!(
        found(&f.lib, "file").await,
        ["a/file.mp4"],
        "a link is not walked"
    );
    // Listing the inside link reads it on demand.
    assert_eq!(names(&f.lib, "a/loop").await, ["loop", "file.mp4"]);
    assert!(matches!(
        f.lib.list(ListRequest::folder(mp("outside"))).await,
        Err(LibraryError::OutsideRoot)
    ));
}

#[tokio::test]
async fn listing_sees_files_added_by_hand_and_refuses_non_folders() {
    let f = fx();
    put(&f.root, "d/one.mp4", b"1");
    f.lib.scan_now().await.unwrap();
    put(&f.root, "d/two.mp4", b"2");
    assert_eq!(names(&f.lib, "d").await, ["one.mp4", "two.mp4"]);
    std::fs::remove_file(f.root.join("d/one.mp4")).unwrap();
    assert_eq!(names(&f.lib, "d").await, ["two.mp4"]);
    let err = f.lib.list(ListRequest::folder(mp("d/two.mp4"))).await;
    assert!(matches!(err, Err(LibraryError::NotADirectory)), "{err:?}");
    let err = f.lib.list(ListRequest::folder(mp("nope"))).await;
    assert!(matches!(err, Err(LibraryError::NotFound)), "{err:?}");
}

#[tokio::test]
async fn record_move_renames_the_subtree_only() {
    let f = fx();
    let alice = user(&f, "alice");
    for p in ["a/x.mp4", "a/b/y.mp4", "a0/z.mp4", "a b/w.mp4", "ab.mp4"] {
        put(&f.root, p, b"1");
        f.lib.record_write(&mp(p), &meta(1), Some(alice)).await;
    }
    std::fs::rename(f.root.join("a"), f.root.join("c")).unwrap();
    f.lib.record_move(&mp("a"), &mp("c")).await;
    assert_eq!(
        found(&f.lib, ".mp4").await,
        ["a b/w.mp4", "a0/z.mp4", "ab.mp4", "c/b/y.mp4", "c/x.mp4"]
    );
    assert_eq!(f.lib.owner_of(&mp("c/b/y.mp4")).await.unwrap(), Some(alice));
    assert_eq!(names(&f.lib, "c/b").await, ["y.mp4"]);
    assert_eq!(f.lib.owner_of(&mp("a/x.mp4")).await.unwrap(), None);
    // Moving a file onto an indexed name replaces that row.
    f.lib.record_move(&mp("ab.mp4"), &mp("c/x.mp4")).await;
    assert_eq!(found(&f.lib, "ab.mp4").await, Vec::<String>::new());
    f.lib.record_delete(&mp("c")).await;
    assert_eq!(found(&f.lib, ".mp4").await, ["a b/w.mp4", "a0/z.mp4"]);
}

#[tokio::test]
async fn owners_survive_scans_and_user_deletion() {
    let f = fx();
    let bob = user(&f, "bob");
    put(&f.root, "up/v.mp4", b"video");
    f.lib
        .record_write(&mp("up/v.mp4"), &meta(5), Some(bob))
        .await;
    f.lib.record_folder(&mp("up/new"), Some(bob)).await;
    std::fs::create_dir(f.root.join("up/new")).unwrap();
    f.lib.scan_now().await.unwrap();
    assert_eq!(f.lib.owner_of(&mp("up/v.mp4")).await.unwrap(), Some(bob));
    assert_eq!(f.lib.owner_of(&mp("up/new")).await.unwrap(), Some(bob));
    put(&f.root, "hand.mp4", b"h");
    f.lib.scan_now().await.unwrap();
    assert_eq!(f.lib.owner_of(&mp("hand.mp4")).await.unwrap(), None);
    f.db.with(|c| c.execute("DELETE FROM users WHERE id = ?1", [bob]))
        .unwrap();
    assert_eq!(f.lib.owner_of(&mp("up/v.mp4")).await.unwrap(), None);
}

#[tokio::test]
async fn status_says_when_ffmpeg_is_missing() {
    let f = fx();
    // Before the background check the status says it is checking (never blocks /readyz).
    let s = f.lib.status();
    assert!(s.ffprobe.is_none(), "{s:?}");
    assert!(s.message.is_some_and(|m| m.contains("checking")), "{s:?}");
    assert_eq!(
        f.lib.probe_now().await,
        0,
        "nothing is probed without the tools"
    );
    let s = f.lib.status();
    assert_eq!((s.ffprobe, s.ffmpeg), (Some(false), Some(false)));
    assert!(
        s.message.is_some_and(|m| m.contains("not installed")),
        "{s:?}"
    );
}

#[tokio::test]
async fn changed_bytes_drop_the_old_poster_and_orphans_are_swept() {
    let f = fx();
    put(&f.root, "v/a.mp4", b"first");
    let md = std::fs::metadata(f.root.join("v/a.mp4")).unwrap();
    let on_disk = crate::storage::ObjectMeta {
        size: 5,
        modified: md.modified().unwrap(),
        etag: "x".into(),
    };
    // As the upload handler records it: the committed file's own size and mtime.
    f.lib.record_write(&mp("v/a.mp4"), &on_disk, None).await;
    let thumbs = f.lib.inner.thumbs_dir.clone();
    let old = worker::thumb_name("v/a.mp4", 5, 1);
    std::fs::write(thumbs.join(&old), b"jpeg").unwrap();
    std::fs::write(thumbs.join("orphan.jpg"), b"jpeg").unwrap();
    std::fs::write(thumbs.join("fresh.tmp.jpg"), b"being written").unwrap();
    f.lib
        .inner
        .lock()
        .execute(
            "UPDATE media SET thumb = ?1, thumb_state = 'ok', probed_at = 1, duration = 9.0
             WHERE path = 'v/a.mp4'",
            [&old],
        )
        .unwrap();
    f.lib.scan_now().await.unwrap();
    assert!(thumbs.join(&old).exists(), "a poster in use is kept");
    assert!(!thumbs.join("orphan.jpg").exists(), "an orphan is swept");
    assert!(
        thumbs.join("fresh.tmp.jpg").exists(),
        "a poster being made is left alone"
    );
    put(&f.root, "v/a.mp4", b"second, longer");
    f.lib.record_write(&mp("v/a.mp4"), &meta(14), None).await;
    assert!(
        !thumbs.join(&old).exists(),
        "new bytes: the old poster is deleted"
    );
    let it = query::item(&f.lib.inner.lock(), "v/a.mp4")
        .unwrap()
        .unwrap();
    assert_eq!((it.thumb, it.duration, it.probed), (None, None, false));
    assert_ne!(
        worker::thumb_name("v/a.mp4", 5, 1),
        worker::thumb_name("v/a.mp4", 14, 1)
    );
}
