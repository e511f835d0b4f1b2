//! Sync-path tests (SQLite): idempotent `put_revision`, every arrival order giving the same
//! winner and conflicts, far-future clocks, conflicts kept, resolved and merged the same way
//! on every node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;

use super::testutil::{
    changes_body, conn, event_kinds, public, remote, store, store_with, user, T0,
};
use super::*;

const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

#[test]
fn put_revision_is_idempotent_and_checked() {
    let (mut c, s) = (conn(), store());
    let root = remote("n1", &[], "root", false, Hlc::new(T0, 0, "aa"));
    assert_eq!(s.put_revision(&mut c, &root).unwrap(), PutOutcome::Inserted);
    assert_eq!(
        s.put_revision(&mut c, &root).unwrap(),
        PutOutcome::AlreadyPresent
    );
    let mut forged = remote("n1", &[&root], "child", false, Hlc::new(T0 + 1, 0, "aa"));
    forged.content.body = "changed after hashing".into();
    assert!(matches!(
        s.put_revision(&mut c, &forged),
        Err(NoteError::BadRevision(_))
    ));
    let mut bad_gen = Revision::build(
        "n1",
        &[(root.rev.clone(), 5, root.hlc.clone())],
        public("t", "x"),
        false,
        Hlc::new(T0, 0, "aa"),
        "r",
    );
    bad_gen.rev = bad_gen.compute_rev();
    assert!(matches!(
        s.put_revision(&mut c, &bad_gen),
        Err(NoteError::BadRevision(_))
    ));
    let other_note = remote("n2", &[&root], "x", false, Hlc::new(T0, 0, "aa"));
    assert!(matches!(
        s.put_revision(&mut c, &other_note),
        Err(NoteError::BadRevision(_))
    ));
    let n = s.get(&c, "n1", None).unwrap();
    assert_eq!((n.rev, n.edits), (root.rev, 1));
    assert_eq!(event_kinds(&s, &c, "n1", None), [EventKind::SyncedIn]);
}

/// All orders of `revs` are stored on fresh databases; returns (winner, conflicts) of each.
fn outcomes(revs: &[Revision]) -> Vec<(String, Vec<String>, String)> {
    fn permute(k: usize, v: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k == v.len() {
            out.push(v.clone());
            return;
        }
        for i in k..v.len() {
            v.swap(k, i);
            permute(k + 1, v, out);
            v.swap(k, i);
        }
    }
    let mut orders = Vec::new();
    permute(0, &mut (0..revs.len()).collect(), &mut orders);
    let s = store();
    orders
        .iter()
        .map(|order| {
            let mut c = conn();
            for &i in order {
                s.put_revision(&mut c, &revs[i]).unwrap();
            }
            let n = s.get(&c, &revs[0].note_id, None).unwrap();
            (n.rev, n.conflicts, n.body)
        })
        .collect()
}

#[test]
fn every_arrival_order_gives_the_same_winner_and_conflicts() {
    let id = "note";
    let root = remote(id, &[], "root", false, Hlc::new(T0, 0, "aa"));
    let a1 = remote(id, &[&root], "a1", false, Hlc::new(T0 + 10, 0, "aa"));
    let a2 = remote(id, &[&a1], "a2", false, Hlc::new(T0 + 20, 0, "aa"));
    let future = remote(
        id,
        &[&root],
        "future",
        false,
        Hlc::new(T0 + 20 * YEAR_MS, 0, "bb"),
    );
    let tomb = remote(id, &[&root], "root", true, Hlc::new(T0 + 30, 0, "cc"));
    let b2 = remote(id, &[&future], "b2", false, Hlc::new(T0 + 5, 0, "dd"));
    let revs = [root, a1, a2.clone(), future.clone(), tomb.clone()];
    let all = outcomes(&revs);
    assert_eq!(all.len(), 120);
    let expected = (
        a2.rev.clone(),
        vec![future.rev.clone(), tomb.rev.clone()],
        "a2".to_string(),
    );
    assert!(
        all.iter().all(|o| *o == expected),
        "{:?}",
        all.iter().find(|o| **o != expected)
    );
    // Add an edit on top of the far-future revision, stamped with an ordinary clock. The
    // future revision is now an ancestor, so its stamp no longer counts: between the two
    // concurrent leaves of generation 3, the later ordinary stamp (a2) wins.
    let mut revs = revs.to_vec();
    revs.push(b2.clone());
    let all = outcomes(&revs);
    assert_eq!(all.len(), 720);
    let expected = (
        a2.rev.clone(),
        vec![b2.rev.clone(), tomb.rev.clone()],
        "a2".to_string(),
    );
    assert!(
        all.iter().all(|o| *o == expected),
        "{:?}",
        all.iter().find(|o| **o != expected)
    );
}

#[test]
fn far_future_stamps_do_not_drag_the_clock_or_block_later_edits() {
    let clock = Arc::new(AtomicU64::new(T0));
    let s = store_with(clock.clone());
    let mut c = conn();
    let ann = user(&c, "ann");
    let n = s.create(&mut c, public("t", "base"), &ann).unwrap();
    let base = s.revision(&c, &n.id, &n.rev, None).unwrap();
    let future = remote(
        &n.id,
        &[&base],
        "from 2043",
        false,
        Hlc::new(T0 + 20 * YEAR_MS, 0, "bb"),
    );
    s.put_revision(&mut c, &future).unwrap();
    assert_eq!(s.get(&c, &n.id, None).unwrap().rev, future.rev);
    clock.fetch_add(1000, Ordering::SeqCst);
    let next = s
        .update(&mut c, &n.id, &future.rev, changes_body("today"), &ann)
        .unwrap();
    assert_eq!(
        s.get(&c, &n.id, None).unwrap().rev,
        next.rev,
        "causally later edit wins"
    );
    assert!(
        next.updated.wall_ms < T0 + 10 * 60 * 1000,
        "our clock did not jump to 2043"
    );
    // A concurrent sibling from the skewed node, same generation as our edit, wins the
    // tie on its stamp (only among concurrent leaves; ours stays, as a conflict)...
    let sibling = remote(
        &n.id,
        &[&future],
        "also 2043",
        false,
        Hlc::new(T0 + 20 * YEAR_MS, 1, "bb"),
    );
    s.put_revision(&mut c, &sibling).unwrap();
    let cur = s.get(&c, &n.id, None).unwrap();
    assert_eq!(
        (cur.rev.clone(), cur.conflicts.clone()),
        (sibling.rev.clone(), vec![next.rev.clone()])
    );
    // ...and the next edit made here, on top of it, wins again with an ordinary stamp.
    clock.fetch_add(1000, Ordering::SeqCst);
    let newer = s
        .update(&mut c, &n.id, &cur.rev, changes_body("still today"), &ann)
        .unwrap();
    assert_eq!(s.get(&c, &n.id, None).unwrap().rev, newer.rev);
    assert!(newer.updated < sibling.hlc);
}

/// A note with a common root and two concurrent remote edits; returns (root, a, b).
fn forked(
    s: &NotesStore,
    c: &mut Connection,
    a_body: &str,
    b_body: &str,
) -> (Revision, Revision, Revision) {
    let base = "one\ntwo\nthree\nfour\nfive\n";
    let root = remote("fork", &[], base, false, Hlc::new(T0, 0, "aa"));
    let a = remote("fork", &[&root], a_body, false, Hlc::new(T0 + 1, 0, "aa"));
    let b = remote("fork", &[&root], b_body, false, Hlc::new(T0 + 2, 0, "bb"));
    for r in [&root, &a, &b] {
        s.put_revision(c, r).unwrap();
    }
    (root, a, b)
}

#[test]
fn conflicts_are_kept_and_resolved() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let (_root, a, b) = forked(&s, &mut c, "A\n", "B\n");
    let n = s.get(&c, "fork", None).unwrap();
    assert_eq!(
        (n.rev.as_str(), n.conflicts.clone()),
        (b.rev.as_str(), vec![a.rev.clone()])
    );
    assert!(event_kinds(&s, &c, "fork", None).contains(&EventKind::Conflict));
    assert!(matches!(
        s.merge(&mut c, "fork", &a.rev, &ann),
        Err(NoteError::MergeConflict { .. })
    ));
    assert_eq!(
        s.get(&c, "fork", None).unwrap().rev,
        b.rev,
        "a failed merge changes nothing"
    );
    let bad = s.resolve(
        &mut c,
        "fork",
        None,
        public("t", "AB\n"),
        std::slice::from_ref(&b.rev),
        &ann,
    );
    assert!(matches!(
        bad,
        Err(NoteError::Invalid {
            field: "resolves",
            ..
        })
    ));
    let stale = s.resolve(
        &mut c,
        "fork",
        Some(&a.rev),
        public("t", "AB\n"),
        std::slice::from_ref(&a.rev),
        &ann,
    );
    assert!(matches!(stale, Err(NoteError::Stale { .. })));
    let r = s
        .resolve(
            &mut c,
            "fork",
            Some(&b.rev),
            public("t", "AB\n"),
            std::slice::from_ref(&a.rev),
            &ann,
        )
        .unwrap();
    assert!(r.conflicts.is_empty());
    assert_eq!(r.body, "AB\n");
    let info = s.revisions(&c, "fork", None).unwrap();
    let mut parents = vec![a.rev.clone(), b.rev.clone()];
    parents.sort();
    assert_eq!(info[0].parents, parents);
    assert_eq!(
        event_kinds(&s, &c, "fork", None).last(),
        Some(&EventKind::Resolved)
    );
}

#[test]
fn clean_merges_reach_the_same_revision_on_every_node() {
    let s = store();
    let a_body = "ONE\ntwo\nthree\nfour\nfive\n";
    let b_body = "one\ntwo\nthree\nfour\nFIVE\n";
    let (mut n1, mut n2) = (conn(), conn());
    let (ann, bob) = (user(&n1, "ann"), user(&n2, "bob"));
    let (root, a, b) = forked(&s, &mut n1, a_body, b_body);
    for r in [&b, &a, &root] {
        s.put_revision(&mut n2, r).unwrap();
    }
    let loser = s.get(&n1, "fork", None).unwrap().conflicts[0].clone();
    let m1 = s.merge(&mut n1, "fork", &loser, &ann).unwrap();
    let m2 = s.merge(&mut n2, "fork", &loser, &bob).unwrap();
    assert_eq!(m1.rev, m2.rev);
    assert_eq!(m1.body, "ONE\ntwo\nthree\nfour\nFIVE\n");
    assert!(m1.conflicts.is_empty());
    let from_n1 = s.revision(&n1, "fork", &m1.rev, None).unwrap();
    assert_eq!(
        s.put_revision(&mut n2, &from_n1).unwrap(),
        PutOutcome::AlreadyPresent
    );
}

#[test]
fn delete_ends_open_conflicts() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let (_, _, b) = forked(&s, &mut c, "A\n", "B\n");
    let d = s.delete(&mut c, "fork", &b.rev, &ann).unwrap();
    assert!(d.deleted && d.conflicts.is_empty());
}
