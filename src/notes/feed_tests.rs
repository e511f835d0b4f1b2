//! Replication tests (SQLite, two databases as two nodes): the changes feed and its privacy
//! filter, stubs, pulling everything from one node into another, and that a private note's
//! text reaches no column of the other node's database.

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::testutil::{changes_body, conn, content, public, pull, remote, store, user, T0};
use super::*;

const MARK: &str = "zqxprivatemarker";

/// Node A's notes: `open` public (edited), `secret` never public, `hidden` public then
/// private, `late` private then public. Returns their ids in that order.
fn node_a(s: &NotesStore, c: &mut Connection) -> [String; 4] {
    let ann = user(c, "ann");
    let open = s.create(c, public("open", "v1"), &ann).unwrap();
    s.update(c, &open.id, &open.rev, changes_body("v2"), &ann)
        .unwrap();
    let secret = s
        .create(
            c,
            content("secret", &format!("{MARK} one"), &[], Visibility::Private),
            &ann,
        )
        .unwrap();
    let hidden = s.create(c, public("hidden", "shown once"), &ann).unwrap();
    let private = Changes {
        body: Some(format!("{MARK} two")),
        visibility: Some(Visibility::Private),
        ..Changes::default()
    };
    s.update(c, &hidden.id, &hidden.rev, private, &ann).unwrap();
    let late = s
        .create(
            c,
            content(
                "late",
                &format!("{MARK} three"),
                &["x"],
                Visibility::Private,
            ),
            &ann,
        )
        .unwrap();
    let publish = Changes {
        body: Some("published now".into()),
        visibility: Some(Visibility::Public),
        ..Changes::default()
    };
    s.update(c, &late.id, &late.rev, publish, &ann).unwrap();
    [open.id, secret.id, hidden.id, late.id]
}

fn all_changes(s: &NotesStore, c: &Connection) -> Vec<Change> {
    s.changes(c, 0, 1000).unwrap().changes
}

#[test]
fn the_feed_sends_public_notes_and_stubs_never_a_never_public_note() {
    let (s, mut a) = (store(), conn());
    let [open, secret, hidden, late] = node_a(&s, &mut a);
    let page = s.changes(&a, 0, 1000).unwrap();
    assert_eq!(page.instance, s.node_id(&a).unwrap());
    assert_eq!((page.max_seq, page.last_seq), (7, 7));
    let seqs: Vec<i64> = page.changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let of = |id: &str| -> Vec<bool> {
        page.changes
            .iter()
            .filter(|c| c.note_id == id)
            .map(|c| c.stub)
            .collect()
    };
    assert_eq!(of(&open), [false, false]);
    assert_eq!(of(&secret), Vec::<bool>::new());
    assert_eq!(of(&hidden), [false, true], "the private revision is a stub");
    assert_eq!(
        of(&late),
        [true, false],
        "the earlier private one is a stub"
    );

    // Asked for by id, the never-public note's revision is as unknown as a made-up one.
    let secret_rev = s.get(&a, &secret, Viewer::Everything).unwrap().rev;
    let made_up = "f".repeat(64);
    assert!(s
        .for_peer(&a, &[secret_rev, made_up], "b", 1 << 20)
        .unwrap()
        .is_empty());
    // Everything the feed lists comes back, stubs without any text.
    let revs: Vec<String> = page.changes.iter().map(|c| c.rev.clone()).collect();
    let sent = s.for_peer(&a, &revs, "b", 1 << 20).unwrap();
    assert_eq!(
        sent.iter().map(|w| w.rev().to_string()).collect::<Vec<_>>(),
        revs
    );
    for (w, c) in sent.iter().zip(&page.changes) {
        assert_eq!(matches!(w, WireRev::Stub(_)), c.stub);
        assert_eq!(w.note_id(), c.note_id);
    }
    let json = serde_json::to_string(&sent).unwrap();
    assert!(!json.contains(MARK), "{json}");
    // A byte budget sends fewer, but always one.
    assert_eq!(s.for_peer(&a, &revs, "b", 1).unwrap().len(), 1);
    // Full revisions sent are logged against the peer.
    let events = s.events(&a, &open, None, None, 100).unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::SyncedOut && e.actor.as_deref() == Some("b")));
}

#[test]
fn the_cursor_passes_filtered_rows_and_pages_give_each_change_once() {
    let (s, mut a) = (store(), conn());
    node_a(&s, &mut a);
    let ann = user(&a, "ann2");
    for i in 0..3 {
        let p = content("p", &format!("{MARK} {i}"), &[], Visibility::Private);
        s.create(&mut a, p, &ann).unwrap();
    }
    let all = all_changes(&s, &a);
    assert_eq!(all.len(), 6);
    let page = s.changes(&a, all[5].seq, 10).unwrap();
    assert!(page.changes.is_empty());
    assert_eq!(
        (page.last_seq, page.max_seq),
        (10, 10),
        "past the private notes"
    );
    for limit in 1..=4 {
        let mut got = Vec::new();
        let mut since = 0;
        loop {
            let p = s.changes(&a, since, limit).unwrap();
            assert!(p.changes.len() <= limit);
            assert!(p.last_seq >= since);
            got.extend(p.changes);
            if p.last_seq == p.max_seq {
                break;
            }
            since = p.last_seq;
        }
        assert_eq!(got, all, "limit {limit}");
    }
    let empty = s.changes(&conn(), 0, 10).unwrap();
    assert_eq!(
        (empty.max_seq, empty.last_seq, empty.changes.len()),
        (0, 0, 0)
    );
}

#[test]
fn wire_revisions_are_tagged_json() {
    let root = remote("n1", &[], "body", false, Hlc::new(T0, 0, "aa"));
    let full = WireRev::Full(root.clone());
    let json = serde_json::to_value(&full).unwrap();
    assert_eq!(json["kind"], "full");
    assert_eq!(json["body"], "body");
    assert_eq!(json["rev"], root.rev.as_str());
    let back: WireRev = serde_json::from_value(json).unwrap();
    assert_eq!(back, full);
    let stub = WireRev::Stub(Stub {
        note_id: "n1".into(),
        rev: "a".repeat(64),
        parents: vec![root.rev.clone()],
        gen: 2,
        hlc: Hlc::new(T0, 1, "aa"),
        deleted: false,
    });
    let json = serde_json::to_string(&stub).unwrap();
    assert!(json.contains("\"kind\":\"stub\""), "{json}");
    assert_eq!(serde_json::from_str::<WireRev>(&json).unwrap(), stub);
    assert!(serde_json::from_str::<WireRev>(r#"{"kind":"other"}"#).is_err());
}

/// Every TEXT and BLOB value in every table of `c`, lower-cased, and every revision body
/// rebuilt (bodies may be stored deflated).
fn every_text(c: &Connection) -> Vec<String> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let mut st = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                if let ValueRef::Text(b) | ValueRef::Blob(b) = r.get_ref(i).unwrap() {
                    out.push(String::from_utf8_lossy(b).to_lowercase());
                }
            }
        }
    }
    let revs: Vec<String> = c
        .prepare("SELECT rev FROM note_revisions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for r in revs {
        out.push(super::revstore::body(c, &r).unwrap());
    }
    out
}

#[test]
fn a_pull_copies_public_notes_and_no_private_text() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let [open, secret, hidden, late] = node_a(&s, &mut a);
    let bob = user(&b, "bob");
    let peer = "a".repeat(64);
    let applied = pull(&s, &a, &mut b, &peer);
    assert_eq!((applied.stored, applied.refused.len()), (6, 0));
    for id in [&open, &late] {
        let (na, nb) = (s.get(&a, id, None).unwrap(), s.get(&b, id, None).unwrap());
        assert_eq!(
            (&na.rev, &na.body, &na.title),
            (&nb.rev, &nb.body, &nb.title)
        );
        assert_eq!(nb.owner_id, None);
    }
    for id in [&secret, &hidden] {
        for viewer in [None, Some(bob.id)] {
            assert!(matches!(s.get(&b, id, viewer), Err(NoteError::NotFound)));
        }
    }
    let list = s.search(&b, &SearchQuery::default(), Some(bob.id)).unwrap();
    let mut ids: Vec<&str> = list.items.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    let mut want = vec![open.as_str(), late.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let q = SearchQuery {
        q: "shown".into(),
        ..SearchQuery::default()
    };
    assert!(s.search(&b, &q, Some(bob.id)).unwrap().items.is_empty());
    // The test can fail: A holds the marker.
    assert!(every_text(&a).iter().any(|t| t.contains(MARK)));
    assert!(!every_text(&b).iter().any(|t| t.contains(MARK)));
    // The checkpoint is where the feed ended; pulling again brings nothing.
    let st = crate::sync::state::load(&b, &peer).unwrap().unwrap();
    assert_eq!((st.seq, st.behind, st.last_error), (7, 0, None));
    assert_eq!(st.instance, s.node_id(&a).unwrap());
    assert_eq!(pull(&s, &a, &mut b, &peer), Applied::default());
}

#[test]
fn stubs_pass_on_through_a_third_node_and_history_skips_them() {
    let (s, mut a, mut b, mut c) = (store(), conn(), conn(), conn());
    let [_, _, hidden, late] = node_a(&s, &mut a);
    pull(&s, &a, &mut b, &"a".repeat(64));
    pull(&s, &b, &mut c, &"b".repeat(64));
    let (wa, wc) = (
        s.get(&a, &hidden, Viewer::Everything).unwrap(),
        s.get(&c, &hidden, Viewer::Everything).unwrap(),
    );
    assert_eq!(wa.rev, wc.rev, "same winner: the stub");
    assert!(matches!(s.get(&c, &hidden, None), Err(NoteError::NotFound)));
    assert_eq!(
        s.get(&c, &late, None).unwrap().body,
        "published now",
        "a full revision over a stub parent reads back"
    );
    // What `notes export` writes: every revision it can read; no stub among them, and the
    // export imports into a fresh database.
    let fresh = &mut conn();
    for id in [&hidden, &late] {
        let infos = s.revisions(&c, id, Viewer::Everything).unwrap();
        assert_eq!(infos.len(), 1, "only the public revision");
        for i in infos {
            let r = s.revision(&c, id, &i.rev, Viewer::Everything).unwrap();
            s.put_revision(fresh, &r).unwrap();
        }
    }
    let stub_rev = s.get(&c, &hidden, Viewer::Everything).unwrap().rev;
    assert!(matches!(
        s.revision(&c, &hidden, &stub_rev, Viewer::Everything),
        Err(NoteError::RevisionNotFound(_))
    ));
}
