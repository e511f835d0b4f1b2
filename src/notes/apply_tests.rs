//! Replication tests for the receiving side (SQLite, two databases as two nodes): concurrent
//! edits exchanged both ways converge (same winner, same conflicts, the same automatic merge
//! revision), edit beats delete, the checkpoint moves with the batch or not at all, refusals.

use rusqlite::Connection;

use super::testutil::{changes_body, conn, fetch, public, pull, remote, store, user, T0};
use super::*;
use crate::sync::state;

const BASE: &str = "one\ntwo\nthree\nfour\nfive\n";
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

fn peer(c: &Connection, s: &NotesStore) -> String {
    format!("{:0>64}", s.node_id(c).unwrap())
}

/// A and B share one public note (made on A); returns its id.
fn shared(s: &NotesStore, a: &mut Connection, b: &mut Connection) -> String {
    let ann = user(a, "ann");
    user(b, "bob");
    let n = s.create(a, public("t", BASE), &ann).unwrap();
    let pa = peer(a, s);
    pull(s, a, b, &pa);
    n.id
}

fn author(c: &Connection, name: &str) -> Author {
    let id = c
        .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
        .unwrap();
    Author {
        id,
        name: name.into(),
    }
}

fn edit(s: &NotesStore, c: &mut Connection, who: &str, id: &str, body: &str) {
    let cur = s.get(c, id, None).unwrap();
    let me = author(c, who);
    s.update(c, id, &cur.rev, changes_body(body), &me).unwrap();
}

/// Both sides fetch before either applies: each node merges on its own.
fn exchange(s: &NotesStore, a: &mut Connection, b: &mut Connection) -> (Applied, Applied) {
    let (pa, pb) = (peer(a, s), peer(b, s));
    let (to_b, tb, mb, ia) = fetch(s, a, b, &pa, 50);
    let (to_a, ta, ma, ib) = fetch(s, b, a, &pb, 50);
    let on_b = s.apply_from_peer(b, &cur(&pa, &ia, tb, mb), &to_b).unwrap();
    let on_a = s.apply_from_peer(a, &cur(&pb, &ib, ta, ma), &to_a).unwrap();
    (on_a, on_b)
}

fn cur<'a>(peer_id: &'a str, instance: &'a str, through_seq: i64, max_seq: i64) -> Cursor<'a> {
    Cursor {
        peer_id,
        peer_name: "",
        instance,
        through_seq,
        max_seq,
    }
}

fn state_of(s: &NotesStore, c: &Connection, id: &str) -> (String, Vec<String>, String, bool) {
    let n = s.get(c, id, None).unwrap();
    (n.rev, n.conflicts, n.body, n.deleted)
}

#[test]
fn non_overlapping_edits_merge_to_the_same_revision_on_both_nodes() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let id = shared(&s, &mut a, &mut b);
    edit(&s, &mut a, "ann", &id, "ONE\ntwo\nthree\nfour\nfive\n");
    edit(&s, &mut b, "bob", &id, "one\ntwo\nthree\nfour\nFIVE\n");
    let (on_a, on_b) = exchange(&s, &mut a, &mut b);
    assert_eq!((on_a.merged, on_b.merged), (1, 1));
    let (ra, rb) = (state_of(&s, &a, &id), state_of(&s, &b, &id));
    assert_eq!(ra, rb);
    assert_eq!(ra.1, Vec::<String>::new(), "no conflict left");
    assert_eq!(ra.2, "ONE\ntwo\nthree\nfour\nFIVE\n");
    assert_eq!(s.get(&a, &id, None).unwrap().author, AUTO_MERGE_AUTHOR);
    // The merges are the same revision: the next exchange has nothing to store.
    let (on_a, on_b) = exchange(&s, &mut a, &mut b);
    assert_eq!(
        (on_a.stored, on_b.stored, on_a.merged, on_b.merged),
        (0, 0, 0, 0)
    );
    assert_eq!(state_of(&s, &a, &id), state_of(&s, &b, &id));
}

#[test]
fn overlapping_edits_stay_a_conflict_on_both_nodes() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let id = shared(&s, &mut a, &mut b);
    edit(&s, &mut a, "ann", &id, "uno\ntwo\nthree\nfour\nfive\n");
    edit(&s, &mut b, "bob", &id, "eins\ntwo\nthree\nfour\nfive\n");
    let (on_a, on_b) = exchange(&s, &mut a, &mut b);
    assert_eq!((on_a.merged, on_b.merged), (0, 0));
    let (ra, rb) = (state_of(&s, &a, &id), state_of(&s, &b, &id));
    assert_eq!(ra, rb, "same winner and conflicts");
    assert_eq!(ra.1.len(), 1);
    for c in [&a, &b] {
        let kinds: Vec<EventKind> = s
            .events(c, &id, None, None, 100)
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&EventKind::Conflict), "{kinds:?}");
    }
}

#[test]
fn an_edit_beats_a_concurrent_delete_on_both_nodes() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let id = shared(&s, &mut a, &mut b);
    let cur = s.get(&a, &id, None).unwrap();
    let ann = author(&a, "ann");
    s.delete(&mut a, &id, &cur.rev, &ann).unwrap();
    edit(&s, &mut b, "bob", &id, "kept\n");
    let (on_a, on_b) = exchange(&s, &mut a, &mut b);
    assert_eq!(
        (on_a.merged, on_b.merged),
        (0, 0),
        "a delete is never merged away"
    );
    let (ra, rb) = (state_of(&s, &a, &id), state_of(&s, &b, &id));
    assert_eq!(ra, rb);
    assert_eq!((ra.2.as_str(), ra.3, ra.1.len()), ("kept\n", false, 1));
}

#[test]
fn the_checkpoint_holds_on_a_refusal_and_moves_with_the_batch() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let ann = user(&a, "ann");
    for i in 0..3 {
        s.create(&mut a, public("t", &format!("note {i}")), &ann)
            .unwrap();
    }
    let pa = peer(&a, &s);
    let (mut items, through, max, inst) = fetch(&s, &a, &b, &pa, 50);
    let root = remote(
        "future",
        &[],
        "x",
        false,
        Hlc::new(T0 + 10 * YEAR_MS, 0, "aa"),
    );
    let mut forged = remote("forged", &[], "y", false, Hlc::new(T0, 0, "aa"));
    forged.content.body = "changed after hashing".into();
    let bad_stub = Stub {
        note_id: "n".into(),
        rev: "c".repeat(64),
        parents: vec![],
        gen: 2,
        hlc: Hlc::new(T0, 0, "aa"),
        deleted: false,
    };
    items.insert(1, WireRev::Full(root.clone()));
    items.push(WireRev::Full(forged));
    items.push(WireRev::Stub(bad_stub));
    let cursor = Cursor {
        peer_id: &pa,
        peer_name: "",
        instance: &inst,
        through_seq: through,
        max_seq: max,
    };
    let counts = |c: &Connection| -> (i64, i64) {
        c.query_row(
            "SELECT (SELECT count(*) FROM note_revisions), (SELECT count(*) FROM note_events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let first = s.apply_from_peer(&mut b, &cursor, &items).unwrap();
    assert_eq!((first.stored, first.present), (3, 0));
    let reasons: Vec<&str> = first.refused.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(first.refused[0].0, root.rev);
    assert!(reasons[0].starts_with("stamped 36"), "{reasons:?}");
    assert!(
        reasons[0].ends_with("days ahead of this node's clock (sync.max_clock_skew_secs = 86400)")
    );
    assert!(
        reasons[1].contains("does not match its content"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("generation"), "{reasons:?}");
    let st = state::load(&b, &pa).unwrap().unwrap();
    assert_eq!((st.seq, st.last_error.as_deref()), (0, Some(reasons[0])));
    assert!(matches!(
        s.get(&b, "future", None),
        Err(NoteError::NotFound)
    ));
    let before = counts(&b);
    let again = s.apply_from_peer(&mut b, &cursor, &items).unwrap();
    assert_eq!(
        (again.stored, again.present, again.refused.len()),
        (0, 3, 3)
    );
    assert_eq!(counts(&b), before, "applying twice changes nothing");
    // Without the bad ones the checkpoint moves.
    items.retain(|i| first.refused.iter().all(|r| r.0 != i.rev()));
    s.apply_from_peer(&mut b, &cursor, &items).unwrap();
    let st = state::load(&b, &pa).unwrap().unwrap();
    assert_eq!((st.seq, st.behind, st.last_error), (3, 0, None));
    assert!(st.last_sync.is_some());
}

#[test]
fn a_batch_and_its_checkpoint_commit_together() {
    let (s, mut a, mut b) = (store(), conn(), conn());
    let ann = user(&a, "ann");
    s.create(&mut a, public("t", "x"), &ann).unwrap();
    b.execute_batch(
        "CREATE TRIGGER no_checkpoint BEFORE INSERT ON sync_peers
         BEGIN SELECT RAISE(ABORT, 'checkpoint refused'); END;",
    )
    .unwrap();
    let pa = peer(&a, &s);
    let (items, through, max, inst) = fetch(&s, &a, &b, &pa, 50);
    let cursor = Cursor {
        peer_id: &pa,
        peer_name: "",
        instance: &inst,
        through_seq: through,
        max_seq: max,
    };
    assert!(matches!(
        s.apply_from_peer(&mut b, &cursor, &items),
        Err(NoteError::Db(_))
    ));
    let n: i64 = b
        .query_row("SELECT count(*) FROM note_revisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the revisions went with the failed checkpoint");
}

#[test]
fn a_full_revision_over_a_stub_is_a_keyframe_that_reads_back() {
    let (s, mut b) = (store(), conn());
    let root = remote("n1", &[], "public root", false, Hlc::new(T0, 0, "aa"));
    let stub = Stub {
        note_id: "n1".into(),
        rev: "d".repeat(64),
        parents: vec![root.rev.clone()],
        gen: 2,
        hlc: Hlc::new(T0 + 1, 0, "aa"),
        deleted: false,
    };
    let stub_parent = Revision::build(
        "n1",
        &[(stub.rev.clone(), 2, stub.hlc.clone())],
        public("t", "public again"),
        false,
        Hlc::new(T0 + 2, 0, "aa"),
        "remote",
    );
    let cursor = Cursor {
        peer_id: "p",
        peer_name: "",
        instance: "i",
        through_seq: 3,
        max_seq: 3,
    };
    let items = [WireRev::Full(root), WireRev::Stub(stub.clone())];
    s.apply_from_peer(&mut b, &cursor, &items).unwrap();
    assert!(
        matches!(s.get(&b, "n1", None), Err(NoteError::NotFound)),
        "a stub winner hides the note"
    );
    let applied = s
        .apply_from_peer(&mut b, &cursor, &[WireRev::Full(stub_parent.clone())])
        .unwrap();
    assert_eq!(applied.stored, 1);
    let n = s.get(&b, "n1", None).unwrap();
    assert_eq!(
        (n.rev.as_str(), n.body.as_str()),
        (stub_parent.rev.as_str(), "public again")
    );
    let r = s.revision(&b, "n1", &stub_parent.rev, None).unwrap();
    assert_eq!(r, stub_parent);
    let base: Option<String> = b
        .query_row(
            "SELECT body_base FROM note_revisions WHERE rev = ?1",
            [&stub_parent.rev],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(base, None, "never a delta against a stub");
}

#[test]
fn a_peers_own_revisions_are_attributed_to_it_and_relayed_ones_keep_their_origin() {
    let s = store();
    let (mut a, mut b, mut c) = (conn(), conn(), conn());
    let ann = user(&a, "ann");
    let n = s.create(&mut a, public("t", "from a"), &ann).unwrap();
    let (pa, pb) = (peer(&a, &s), peer(&b, &s));
    let pull_named = |from: &Connection, to: &mut Connection, id: &str, name: &str| {
        let (items, through, max, instance) = fetch(&s, from, to, id, 50);
        let cursor = Cursor {
            peer_id: id,
            peer_name: name,
            instance: &instance,
            through_seq: through,
            max_seq: max,
        };
        s.apply_from_peer(to, &cursor, &items).unwrap()
    };
    pull_named(&a, &mut b, &pa, "living-room");
    assert_eq!(s.get(&b, &n.id, None).unwrap().author, "ann@living-room");
    // C gets it from B: it was made on A, and says so.
    pull_named(&b, &mut c, &pb, "office");
    assert_eq!(s.get(&c, &n.id, None).unwrap().author, "ann@living-room");
    // On A it is ann's own, and the revision id is the same everywhere.
    assert_eq!(s.get(&a, &n.id, None).unwrap().author, "ann");
    assert_eq!(s.get(&c, &n.id, None).unwrap().rev, n.rev);
}
