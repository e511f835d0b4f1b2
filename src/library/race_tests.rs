//! Readings of the disk that race with streamhub's own changes (`seq`): a scan or a listing
//! reads a folder, then applies what it read in a later transaction. Each test takes a
//! reading, changes the index and the disk the way a request does, then applies the
//! (now stale) reading, and checks what a user would see: the entries and their owners.

use super::seq::Reading;
use super::tests::{fx, indexed, meta, mp, names, put, user, Fx};
use super::*;
use crate::library::disk::{self, DiskEntry};

/// Reads folder `dir` now, as the scanner does: the reading first, then the disk.
async fn read(f: &Fx, dir: &str) -> (Reading, Vec<DiskEntry>) {
    let reading = f.lib.inner.seq.reading();
    let (entries, _) = disk::entries(f.lib.inner.storage.list(&mp(dir)).await.unwrap());
    (reading, entries)
}

/// A file uploaded through streamhub by `owner`: on disk and recorded as theirs.
async fn uploaded(f: &Fx, path: &str, bytes: &[u8], owner: i64) {
    put(&f.root, path, bytes);
    f.lib
        .record_write(&mp(path), &meta(bytes.len() as u64), Some(owner))
        .await;
}

/// Applies a reading taken earlier.
fn apply(f: &Fx, dir: &str, (reading, entries): (Reading, Vec<DiskEntry>)) -> index::Applied {
    let inner = &f.lib.inner;
    let mut conn = schema::open_conn(&inner.db_file).unwrap();
    scan::apply_chunked(
        &mut conn,
        &mp(dir),
        None,
        &entries,
        reading.at,
        &inner.seq,
        &inner.thumbs_dir,
    )
    .unwrap()
}

#[tokio::test]
async fn a_scan_never_drops_a_row_written_after_it_read_the_disk() {
    let f = fx();
    let carol = user(&f, "carol");
    let inner = &f.lib.inner;
    let read_seq = inner.seq.next();
    // The disk as read before the upload: empty folder.
    uploaded(&f, "new.mp4", b"fresh", carol).await;
    let mut conn = schema::open_conn(&inner.db_file).unwrap();
    let done = super::scan::apply_chunked(
        &mut conn,
        &MediaPath::root(),
        None,
        &[],
        read_seq,
        &inner.seq,
        &inner.thumbs_dir,
    )
    .unwrap();
    assert_eq!(done.removed, 0);
    assert_eq!(f.lib.owner_of(&mp("new.mp4")).await.unwrap(), Some(carol));
}

/// The rehearsal's failure: a scan read the root and `binned/` just before a delete to the
/// trash, and applied after it: the folder came back in the listing, with nothing on disk.
#[tokio::test]
async fn a_reading_from_before_a_delete_does_not_bring_it_back() {
    let f = fx();
    let bob = user(&f, "bob");
    put(&f.root, "kept.bin", b"kept");
    uploaded(&f, "binned/old.bin", b"old", bob).await;
    f.lib.scan_now().await.unwrap();
    let root = read(&f, "").await;
    let binned = read(&f, "binned").await;
    std::fs::remove_dir_all(f.root.join("binned")).unwrap();
    f.lib.record_delete(&mp("binned")).await;
    apply(&f, "", root);
    apply(&f, "binned", binned);
    // Counted before listing: a listing re-reads a changed folder, and would hide the bug
    // (unless, as in the rehearsal, the data dir takes no write and the index answers).
    assert_eq!(
        indexed(&f),
        1,
        "only kept.bin: no row for binned/ nor under it"
    );
    assert_eq!(names(&f.lib, "").await, ["kept.bin"]);
    // Made again later, it is indexed again: the mark is only for older readings.
    put(&f.root, "binned/new.bin", b"new");
    f.lib.scan_now().await.unwrap();
    assert_eq!(names(&f.lib, "binned").await, ["new.bin"]);
}

/// A reading from before a move does not bring back the source, and the moved row keeps
/// its owner.
#[tokio::test]
async fn a_reading_from_before_a_move_does_not_bring_the_source_back() {
    let f = fx();
    let bob = user(&f, "bob");
    uploaded(&f, "a.txt", b"a", bob).await;
    let stale = read(&f, "").await;
    std::fs::rename(f.root.join("a.txt"), f.root.join("b.txt")).unwrap();
    f.lib
        .try_record_move(&mp("a.txt"), &mp("b.txt"))
        .await
        .unwrap();
    apply(&f, "", stale);
    assert_eq!(indexed(&f), 1, "only b.txt");
    assert_eq!(names(&f.lib, "").await, ["b.txt"]);
    assert_eq!(f.lib.owner_of(&mp("b.txt")).await.unwrap(), Some(bob));
}

/// The rehearsal's move failure: a move on a hung share landed late and was taken back; a
/// scan read the folder while the file was at the target. The source's row, with its
/// owner, must stay; once the move is settled, rows follow the disk again.
#[tokio::test]
async fn a_reading_during_a_move_keeps_the_source_row_and_its_owner() {
    let f = fx();
    let bob = user(&f, "bob");
    uploaded(&f, "late/src.txt", b"s", bob).await;
    f.lib.moving(&mp("late/src.txt"));
    std::fs::rename(f.root.join("late/src.txt"), f.root.join("late/dst.txt")).unwrap();
    let during = read(&f, "late").await;
    std::fs::rename(f.root.join("late/dst.txt"), f.root.join("late/src.txt")).unwrap();
    let done = apply(&f, "late", during);
    assert_eq!(done.removed, 0, "{done:?}");
    assert_eq!(
        f.lib.owner_of(&mp("late/src.txt")).await.unwrap(),
        Some(bob)
    );
    f.lib.move_settled(&mp("late/src.txt"));
    f.lib.scan_now().await.unwrap();
    assert_eq!(names(&f.lib, "late").await, ["src.txt"]);
    assert_eq!(
        f.lib.owner_of(&mp("late/src.txt")).await.unwrap(),
        Some(bob)
    );
    // Settled, a removal by hand is a removal again.
    std::fs::remove_file(f.root.join("late/src.txt")).unwrap();
    f.lib.scan_now().await.unwrap();
    assert!(names(&f.lib, "late").await.is_empty());
}

/// An upload's row is written before its file is renamed into place; a scan that reads the
/// folder in between (a rename hung on a network share) must not take the row, and with it
/// the owner, for a file removed by hand. Once the commit is settled, rows follow the disk.
#[tokio::test]
async fn a_scan_between_an_uploads_record_and_its_rename_keeps_the_row() {
    let f = fx();
    let alice = user(&f, "alice");
    put(&f.root, "up/first.txt", b"first");
    f.lib.scan_now().await.unwrap();
    let rec = f
        .lib
        .record_upload(&[], &mp("up/new.txt"), 3, alice)
        .await
        .unwrap();
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!(r.removed, 0, "{r:?}");
    assert_eq!(
        f.lib.owner_of(&mp("up/new.txt")).await.unwrap(),
        Some(alice)
    );
    // It lands; the commit is recorded; from then on a removal by hand is a removal.
    put(&f.root, "up/new.txt", b"new");
    f.lib
        .record_committed(&mp("up/new.txt"), &meta(3), alice)
        .await;
    std::fs::remove_file(f.root.join("up/new.txt")).unwrap();
    let r = f.lib.scan_now().await.unwrap();
    assert_eq!(r.removed, 1, "{r:?}");
    assert_eq!(f.lib.owner_of(&mp("up/new.txt")).await.unwrap(), None);
    // A commit taken back leaves no row, and no mark that would keep one later.
    let rec2 = f
        .lib
        .record_upload(&[], &mp("up/other.txt"), 3, alice)
        .await
        .unwrap();
    f.lib.undo_upload(rec2).await;
    assert_eq!(f.lib.owner_of(&mp("up/other.txt")).await.unwrap(), None);
    drop(rec);
}
