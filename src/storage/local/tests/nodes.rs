//! Several nodes serving one shared media folder: each stages in `.streamhub-staging/<id>/`,
//! and its start-up clean, its sweeps and its discards never touch another node's uploads;
//! uploads staged by the previous layout (no node folder) still resume after the upgrade.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::super::*;
use super::safety::{put, tree};
use super::{mp, storage_of, NODE_A, NODE_B};
use crate::tus::{Tus, TusStore};

fn resumable() -> UploadOptions {
    UploadOptions {
        resumable: true,
        ..Default::default()
    }
}

/// A tus service for `storage` over an empty database of its own (a node's data dir).
fn tus_of(storage: LocalStorage) -> (tempfile::TempDir, Tus) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::Db::open(dir.path()).unwrap();
    (dir, Tus::new(TusStore::new(db, 60), Arc::new(storage)))
}

/// The most eager sweep there is: every upload expired, every unknown file an orphan.
async fn sweep_everything(tus: &Tus) {
    tus.sweep(i64::MAX, SystemTime::now() + Duration::from_secs(3600))
        .await
        .unwrap();
}

fn staged(root: &Path, node: &str) -> Vec<String> {
    tree(&root.join(STAGING_DIR).join(node))
}

#[tokio::test]
async fn uploads_in_progress_on_one_node_survive_another_nodes_start_and_sweeps() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    let a = storage_of(&root, NODE_A, false);
    let mut shot = a
        .begin_upload(&mp("one.bin"), UploadOptions::default())
        .await
        .unwrap();
    shot.write(Bytes::from_static(b"one-")).await.unwrap();
    let mut tus = a.begin_upload(&mp("two.bin"), resumable()).await.unwrap();
    let key = tus.key().to_string();
    tus.write(Bytes::from_static(b"0123")).await.unwrap();
    assert_eq!(tus.finish().await.unwrap(), 4);
    tus.close().await;
    let before = staged(&root, NODE_A);
    assert_eq!(
        before.len(),
        3,
        "a part, resumable/ and an upload: {before:?}"
    );

    // Node B starts on the same folder, sweeps as hard as it can, and is asked to discard
    // and resume A's key (which a row of B's can never name; its data must stay out of reach).
    let (_db, b) = tus_of(storage_of(&root, NODE_B, false));
    sweep_everything(&b).await;
    sweep_everything(&b).await;
    let bs = storage_of(&root, NODE_B, false);
    assert!(bs.upload_keys().await.unwrap().is_empty());
    bs.discard_upload(&key).await.unwrap();
    let e = bs.resume_upload(&key, 4, None).await.err().unwrap();
    assert!(matches!(e, StorageError::UploadGone), "{e}");
    assert_eq!(
        staged(&root, NODE_A),
        before,
        "B touched A's staging folder"
    );
    let listed: Vec<String> = a
        .upload_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&key));

    // Both finish into the shared root.
    shot.write(Bytes::from_static(b"shot")).await.unwrap();
    shot.commit(&mp("one.bin"), false).await.unwrap();
    let mut tus = a.resume_upload(&key, 4, None).await.unwrap();
    tus.write(Bytes::from_static(b"4567")).await.unwrap();
    tus.commit(&mp("two.bin"), false).await.unwrap();
    put(&bs, "b.bin", b"from b").await.unwrap();
    assert_eq!(std::fs::read(root.join("one.bin")).unwrap(), b"one-shot");
    assert_eq!(std::fs::read(root.join("two.bin")).unwrap(), b"01234567");
    assert_eq!(std::fs::read(root.join("b.bin")).unwrap(), b"from b");
    assert_eq!(staged(&root, NODE_A), ["resumable"]);
    assert!(staged(&root, NODE_B).is_empty());
}

#[tokio::test]
async fn a_nodes_start_and_sweep_remove_its_own_leftovers_only() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    drop(storage_of(&root, NODE_A, false));
    let st = root.join(STAGING_DIR);
    for d in [NODE_A, NODE_B] {
        std::fs::create_dir_all(st.join(d).join("resumable")).unwrap();
        std::fs::write(st.join(d).join("crashed.part"), b"p").unwrap();
        std::fs::write(st.join(d).join("resumable/orphan.upload"), b"u").unwrap();
    }
    // The previous layout's one-shot leftover can only be ours (see `staging::layout`).
    std::fs::write(st.join("old.part"), b"o").unwrap();

    let (_db, a) = tus_of(storage_of(&root, NODE_A, false));
    assert_eq!(
        staged(&root, NODE_A),
        ["resumable", "resumable/orphan.upload"]
    );
    assert!(!st.join("old.part").exists());
    sweep_everything(&a).await;
    assert_eq!(staged(&root, NODE_A), ["resumable"]);
    assert_eq!(
        staged(&root, NODE_B),
        ["crashed.part", "resumable", "resumable/orphan.upload"],
        "A's start and sweep left B's folder alone"
    );

    drop(storage_of(&root, NODE_B, false));
    assert_eq!(
        staged(&root, NODE_B),
        ["resumable", "resumable/orphan.upload"]
    );
}

/// What the previous version left: a resumable upload in `.streamhub-staging/resumable/`
/// under the same key, and a one-shot part directly in `.streamhub-staging/`.
fn plant_old_layout(root: &Path, token: &str, data: &[u8]) -> String {
    let old = root.join(STAGING_DIR).join("resumable");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join(format!("{token}.upload")), data).unwrap();
    std::fs::write(root.join(STAGING_DIR).join("old.part"), b"x").unwrap();
    format!("resumable/{token}.upload")
}

async fn finish(s: &LocalStorage, key: &str, have: u64, rest: &'static [u8], to: &str) {
    let mut up = s.resume_upload(key, have, None).await.unwrap();
    up.write(Bytes::from_static(rest)).await.unwrap();
    up.commit(&mp(to), false).await.unwrap();
}

#[tokio::test]
async fn an_upload_staged_before_the_upgrade_resumes() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    drop(storage_of(&root, NODE_A, false)); // the marker, as the previous version made it
    let key = plant_old_layout(&root, "tok1", b"abc");

    // At start it moves into this node's folder, under the same key (so the row stays true).
    let a = storage_of(&root, NODE_A, false);
    assert_eq!(
        tree(&root.join(STAGING_DIR)),
        [
            NODE_A.to_string(),
            format!("{NODE_A}/resumable"),
            format!("{NODE_A}/resumable/tok1.upload"),
        ]
    );
    let listed: Vec<String> = a
        .upload_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.0)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&key));
    finish(&a, &key, 3, b"def", "old.bin").await;
    assert_eq!(std::fs::read(root.join("old.bin")).unwrap(), b"abcdef");

    // Missed at start (the disk was away then): moved when resumed, whether this node's
    // folder exists yet or not; a discard finds it too.
    std::fs::remove_dir_all(root.join(STAGING_DIR)).unwrap();
    let key = plant_old_layout(&root, "tok2", b"ghi");
    finish(&a, &key, 3, b"jkl", "late.bin").await;
    assert_eq!(std::fs::read(root.join("late.bin")).unwrap(), b"ghijkl");
    let key = plant_old_layout(&root, "tok3", b"mno");
    finish(&a, &key, 2, b"NO", "cut.bin").await;
    assert_eq!(std::fs::read(root.join("cut.bin")).unwrap(), b"mnNO");
    let key = plant_old_layout(&root, "tok4", b"pqr");
    a.discard_upload(&key).await.unwrap();
    assert!(!root.join(STAGING_DIR).join(&key).exists());
    let e = a.resume_upload(&key, 0, None).await.err().unwrap();
    assert!(matches!(e, StorageError::UploadGone), "{e}");
}

/// The link rules hold for the new folders: a node folder or a previous-layout folder
/// planted as a link out of the root is never written through or moved from.
#[tokio::test]
async fn planted_links_in_the_staging_folders_lead_nowhere() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("resumable")).unwrap();
    std::fs::write(outside.path().join("resumable/x.upload"), b"secret").unwrap();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("media");
    std::fs::create_dir(&root).unwrap();
    drop(storage_of(&root, NODE_A, false));
    let st = root.join(STAGING_DIR);
    std::fs::create_dir(&st).unwrap();
    std::os::unix::fs::symlink(outside.path(), st.join(NODE_A)).unwrap();
    std::os::unix::fs::symlink(outside.path().join("resumable"), st.join("resumable")).unwrap();
    let before = tree(outside.path());

    let a = storage_of(&root, NODE_A, false);
    assert!(put(&a, "f.txt", b"f").await.is_err());
    assert!(a.begin_upload(&mp("r.bin"), resumable()).await.is_err());
    assert!(a
        .resume_upload("resumable/x.upload", 0, None)
        .await
        .is_err());
    let keys = a.upload_keys().await.unwrap_or_default();
    assert!(keys.is_empty(), "listed through a link: {keys:?}");
    assert!(a.discard_upload("resumable/x.upload").await.is_err());
    assert_eq!(
        tree(outside.path()),
        before,
        "something changed outside the root"
    );
    assert_eq!(
        std::fs::read(outside.path().join("resumable/x.upload")).unwrap(),
        b"secret"
    );
    assert!(!root.join("f.txt").exists());
}
