//! Every way a path could leave the root — links, links through the outside, swaps during
//! an upload — and uploads that fail: nothing outside is touched or revealed, nothing is
//! left behind.

use std::path::Path;

use super::super::*;
use super::{mp, storage, NODE_A};
use crate::storage::ObjectMeta;

/// Everything under `base`, as relative paths (links not followed), for "nothing changed".
pub(super) fn tree(base: &Path) -> Vec<String> {
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

pub(super) async fn put(
    s: &LocalStorage,
    path: &str,
    body: &[u8],
) -> Result<ObjectMeta, StorageError> {
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
    let staging = root.join(STAGING_DIR).join(NODE_A);
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
    let staged: Vec<_> = std::fs::read_dir(root.join(STAGING_DIR).join(NODE_A))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
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
    let e = super::ops::rename_noreplace_fallback(&dir, "a", &dir, "taken", "/", None).unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists), "{e}");
    assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"t");
    super::ops::rename_noreplace_fallback(&dir, "a", &dir, "b", "/", None).unwrap();
    assert!(!d.path().join("a").exists());
    assert_eq!(std::fs::read(d.path().join("b")).unwrap(), b"a");
    let e =
        super::ops::rename_noreplace_fallback(&dir, "folder", &dir, "b", "/", None).unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists), "{e}");
    super::ops::rename_noreplace_fallback(&dir, "folder", &dir, "moved", "/", None).unwrap();
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
    let staged: Vec<_> = std::fs::read_dir(root.join(STAGING_DIR).join(NODE_A))
        .unwrap()
        .collect();
    assert!(
        staged.is_empty(),
        "nothing written into staging: {staged:?}"
    );
}
