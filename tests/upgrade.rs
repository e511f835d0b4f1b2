//! Upgrade: a database written by the build before the numbered-migration list
//! (`tests/fixtures/v1/`, made by `tests/fixtures/make_v1_db.py` with main at a3dbbb9, schema
//! version 7) opens with this build and loses nothing. The fixture is copied, never written.
//! (The script's docstring calls this test `test_upgrade.py`; it is this Rust test.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use streamhub::db::{Db, DB_FILE};

fn fixture_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/data/streamhub.db")
}

/// A copy of the fixture database in a fresh data dir.
fn copy_of_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_db(), dir.path().join(DB_FILE)).unwrap();
    dir
}

fn read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Row count of every table (FTS shadow tables included), by name.
fn row_counts(c: &Connection) -> BTreeMap<String, i64> {
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|n| {
            let count = c
                .query_row(&format!("SELECT count(*) FROM \"{n}\""), [], |r| r.get(0))
                .unwrap();
            (n, count)
        })
        .collect()
}

/// Every table, index, trigger and view with its SQL, whitespace collapsed (the migration
/// files are laid out differently from the old string constants, to the same effect).
fn schema(c: &Connection) -> BTreeMap<(String, String), String> {
    c.prepare("SELECT type, name, coalesce(sql, '') FROM sqlite_master")
        .unwrap()
        .query_map([], |r| {
            let sql: String = r.get(2)?;
            Ok((
                (r.get(0)?, r.get(1)?),
                sql.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn user_version(c: &Connection) -> i64 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_database_from_the_previous_build_opens_with_nothing_lost() {
    let data = copy_of_fixture();
    let file = data.path().join(DB_FILE);
    let (before, old_staged) = {
        let c = read_only(&file);
        assert_eq!(
            user_version(&c),
            7,
            "the fixture is the previous build's schema"
        );
        let staged: String = c
            .query_row("SELECT staged FROM tus_uploads", [], |r| r.get(0))
            .unwrap();
        (row_counts(&c), staged)
    };
    assert!(
        old_staged.starts_with('/') && old_staged.contains("/.streamhub-staging/resumable/"),
        "the fixture's upload names an absolute path: {old_staged}"
    );

    let db = Db::open(data.path()).expect("the previous build's database opens");
    drop(db);

    let c = read_only(&file);
    assert_eq!(user_version(&c), streamhub::db::schema_version() as i64);
    let after = row_counts(&c);
    for (table, n) in &before {
        assert_eq!(after.get(table), Some(n), "table {table}: same row count");
    }
    for (table, n) in &after {
        assert!(
            before.contains_key(table) || *n == 0,
            "a table added since holds rows of its own: {table} {n}"
        );
    }
    assert_eq!(
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );

    // The resumable upload's staging file is now named by its storage key.
    let token = old_staged.rsplit('/').next().unwrap();
    assert!(token.ends_with(".upload"), "{old_staged}");
    let (staged, offset, length): (String, i64, i64) = c
        .query_row(
            "SELECT staged, upload_offset, length FROM tus_uploads",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(staged, format!("resumable/{token}"));
    assert_eq!((offset, length), (10, 20));

    // Accounts, sessions, tokens and the share link are all there.
    let users: Vec<(i64, String, String)> = c
        .prepare("SELECT id, name, role FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        users,
        [
            (1, "admin".to_string(), "admin".to_string()),
            (2, "alice".to_string(), "member".to_string())
        ]
    );
    let shared: String = c
        .query_row("SELECT path FROM shares", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shared, "alice/upload.txt");

    // The private note is still private and alice's; the public one kept its two revisions.
    let (vis, owner): (String, i64) = c
        .query_row(
            "SELECT visibility, owner_id FROM notes WHERE title = 'Alice''s diary'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((vis.as_str(), owner), ("private", 2));
    let (public_revs, body): (i64, String) = c
        .query_row(
            "SELECT (SELECT count(*) FROM note_revisions r WHERE r.note = n.nid), n.body
             FROM notes n WHERE n.title = 'Shopping'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((public_revs, body.as_str()), (2, "milk\neggs\n"));

    // alice still owns her upload in the library index.
    let upload_owner: Option<i64> = c
        .query_row(
            "SELECT owner FROM media WHERE path = 'alice/upload.txt'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(upload_owner, Some(2));
}

/// A database migrated from version 7 and a new one have the same schema (the migration files
/// say what the old constants said).
#[test]
fn an_upgraded_database_has_the_schema_of_a_new_one() {
    let old = copy_of_fixture();
    drop(Db::open(old.path()).unwrap());
    let new = tempfile::tempdir().unwrap();
    drop(Db::open(new.path()).unwrap());
    let upgraded = schema(&read_only(&old.path().join(DB_FILE)));
    let fresh = schema(&read_only(&new.path().join(DB_FILE)));
    assert_eq!(upgraded, fresh);
}

/// Opening the fixture twice (the second open has nothing to apply) changes nothing more.
#[test]
fn reopening_an_upgraded_database_is_a_no_op() {
    let data = copy_of_fixture();
    drop(Db::open(data.path()).unwrap());
    let file = data.path().join(DB_FILE);
    let once = row_counts(&read_only(&file));
    let staged_once: String = read_only(&file)
        .query_row("SELECT staged FROM tus_uploads", [], |r| r.get(0))
        .unwrap();
    drop(Db::open(data.path()).unwrap());
    let c = read_only(&file);
    assert_eq!(user_version(&c), streamhub::db::schema_version() as i64);
    assert_eq!(row_counts(&c), once);
    let staged_twice: String = c
        .query_row("SELECT staged FROM tus_uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(staged_twice, staged_once);
}

/// Migration 0014: every revision stored before it (text in full) reads back byte for byte
/// through the store, its id still hashing to its content; the quota counts it as before;
/// and an edit after the upgrade is stored as a delta on top of an old row.
#[test]
fn old_revisions_read_back_and_new_edits_are_deltas() {
    use streamhub::notes::{Author, Changes, Limits, NotesStore, Viewer};

    let data = copy_of_fixture();
    let old_bodies: BTreeMap<String, (String, String, String)> = read_only(&fixture_db())
        .prepare("SELECT rev, title, body, tags FROM note_revisions")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(old_bodies.len() >= 3, "{old_bodies:?}");
    let db = Db::open(data.path()).unwrap();
    let store = NotesStore::new(Limits::default());
    db.with(|c| {
        let revs: Vec<(String, String, i64)> = c
            .prepare(
                "SELECT n.id, r.rev, r.stored_bytes FROM note_revisions r
                 JOIN notes n ON n.nid = r.note",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(revs.len(), old_bodies.len());
        for (note, rev, stored) in &revs {
            let got = store.revision(c, note, rev, Viewer::Everything).unwrap();
            let (title, body, tags) = &old_bodies[rev];
            assert_eq!(&got.content.body, body, "{rev}");
            assert_eq!(&got.content.title, title, "{rev}");
            assert_eq!(
                *stored as usize,
                title.len() + body.len() + tags.len(),
                "{rev}"
            );
        }
        // alice (user 2) edits her diary twice: a long entry on the old text row, then one
        // more line, stored as a delta on the first edit.
        let note: String = c
            .query_row(
                "SELECT id FROM notes WHERE title = 'Alice''s diary'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let alice = Author {
            id: 2,
            name: "alice".into(),
        };
        let cur = store.get(c, &note, Some(2)).unwrap();
        let mut body = cur.body.clone();
        for i in 0..200 {
            body.push_str(&format!("day {i}: {}\n", i * 7919 % 1000));
        }
        let edit = |c: &mut rusqlite::Connection, base: &str, body: &str| {
            let changes = Changes {
                body: Some(body.to_string()),
                ..Changes::default()
            };
            store.update(c, &note, base, changes, &alice).unwrap()
        };
        let first = edit(c, &cur.rev, &body);
        body.push_str("one more line\n");
        let edited = edit(c, &first.rev, &body);
        let (form, base): (i64, Option<String>) = c
            .query_row(
                "SELECT body_form, body_base FROM note_revisions WHERE rev = ?1",
                [&edited.rev],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((form, base.as_deref()), (2, Some(first.rev.as_str())));
        let back = store.revision(c, &note, &cur.rev, Some(2)).unwrap();
        assert_eq!(back.content.body, cur.body);
        let back = store.revision(c, &note, &edited.rev, Some(2)).unwrap();
        assert_eq!(back.content.body, body);
    });
}
