//! The root's identity, and things planted in our places (FIFOs, hard links).

use std::time::Duration;

use super::super::*;
use super::safety::put;
use super::{mp, storage, NODE_A};

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
            node: NodeDir::new(NODE_A).unwrap(),
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
            node: NodeDir::new(NODE_A).unwrap(),
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
    let staged = root.join(STAGING_DIR).join(NODE_A).join(&key);
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

#[tokio::test]
async fn a_root_that_must_be_mounted_is_refused_when_it_is_a_plain_folder() {
    let base = tempfile::tempdir().unwrap();
    let opts = LocalOptions {
        allow_symlink_escape: false,
        timeout: Duration::from_secs(5),
        chunk_size: 64,
        node: NodeDir::new(NODE_A).unwrap(),
    };
    // Missing: not created (the mount point of a filesystem that is not there).
    let missing = base.path().join("nfs");
    let s = LocalStorage::new(&missing, opts.clone()).with_require_mount(true);
    let e = s.establish(None, 0).unwrap_err();
    assert!(not_mounted(&e), "{e}");
    assert!(!missing.exists());
    // A plain folder: nothing is written into it, and every call says why.
    std::fs::create_dir(&missing).unwrap();
    let s = LocalStorage::new(&missing, opts.clone()).with_require_mount(true);
    assert!(not_mounted(&s.establish(None, 0).unwrap_err()));
    assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 0);
    assert!(not_mounted(&s.check().await.unwrap_err()));
    // Without the setting the same folder is a fine root.
    let s = LocalStorage::new(&missing, opts);
    assert!(s.establish(None, 0).is_ok());
}
