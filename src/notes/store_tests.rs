//! Store-level tests (SQLite): local edits and optimistic concurrency, deletes and restores,
//! visibility, user deletion, the event log.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::testutil::{
    changes_body, conn, content, event_kinds, public, store, store_with, user, T0,
};
use super::*;

#[test]
fn node_id_is_made_once_and_the_clock_is_persisted() {
    let (c, s) = (conn(), store());
    let id = s.node_id(&c).unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        s.node_id(&conn()).map(|o| o != id).ok(),
        Some(true),
        "each database its own"
    );
    let mut c = c;
    let ann = user(&c, "ann");
    let frozen = store_with(Arc::new(AtomicU64::new(T0)));
    let a = frozen.create(&mut c, public("a", "x"), &ann).unwrap();
    let b = frozen.create(&mut c, public("b", "x"), &ann).unwrap();
    assert!(b.updated > a.updated, "same physical ms, later stamp");
    assert_eq!(a.updated.node, id);
}

#[test]
fn create_update_and_stale_base() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let n = s
        .create(
            &mut c,
            content("Hi", "one", &[" Rust ", "rust"], Visibility::Public),
            &ann,
        )
        .unwrap();
    assert_eq!(
        (n.title.as_str(), n.tags.clone(), n.conflicts.len()),
        ("Hi", vec!["rust".to_string()], 0)
    );
    assert_eq!(s.get(&c, &n.id, None).unwrap(), n);
    let n2 = s
        .update(&mut c, &n.id, &n.rev, changes_body("two"), &bob)
        .unwrap();
    assert_ne!(n2.rev, n.rev);
    assert_eq!(
        (n2.body.as_str(), n2.title.as_str(), n2.author.as_str()),
        ("two", "Hi", "bob")
    );
    match s.update(&mut c, &n.id, &n.rev, changes_body("lost"), &ann) {
        Err(NoteError::Stale { current_rev }) => assert_eq!(current_rev, n2.rev),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(
        s.get(&c, &n.id, None).unwrap().body,
        "two",
        "no lost update"
    );
    let names: Vec<(String, i64)> = n2
        .contributors
        .iter()
        .map(|c| (c.name.clone(), c.revisions))
        .collect();
    assert_eq!(names, [("ann".to_string(), 1), ("bob".to_string(), 1)]);
    assert_eq!(s.contributors(&c, &n.id, None).unwrap(), n2.contributors);
    assert!(matches!(
        s.update(&mut c, "nope", &n.rev, Changes::default(), &ann),
        Err(NoteError::NotFound)
    ));
    let long = Changes {
        title: Some("x".repeat(501)),
        ..Changes::default()
    };
    assert!(matches!(
        s.update(&mut c, &n.id, &n2.rev, long, &ann),
        Err(NoteError::TooLong { field: "title", .. })
    ));
    let revs = s.revisions(&c, &n.id, None).unwrap();
    assert_eq!(revs.len(), 2);
    assert!(revs[0].current && revs[0].leaf && revs[0].parents == [n.rev.clone()]);
    assert_eq!(
        s.revision(&c, &n.id, &n.rev, None).unwrap().content.body,
        "one"
    );
    assert_eq!(
        event_kinds(&s, &c, &n.id, None),
        [EventKind::Created, EventKind::Edited]
    );
}

#[test]
fn delete_is_a_restorable_tombstone() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let n = s.create(&mut c, public("t", "first"), &ann).unwrap();
    let n2 = s
        .update(&mut c, &n.id, &n.rev, changes_body("second"), &ann)
        .unwrap();
    assert!(matches!(
        s.delete(&mut c, &n.id, &n.rev, &ann),
        Err(NoteError::Stale { .. })
    ));
    let d = s.delete(&mut c, &n.id, &n2.rev, &ann).unwrap();
    assert!(d.deleted);
    assert!(matches!(
        s.update(&mut c, &n.id, &d.rev, changes_body("x"), &ann),
        Err(NoteError::Deleted)
    ));
    assert!(matches!(
        s.delete(&mut c, &n.id, &d.rev, &ann),
        Err(NoteError::Deleted)
    ));
    let r = s.restore(&mut c, &n.id, &n.rev, &ann).unwrap();
    assert!(!r.deleted);
    assert_eq!(r.body, "first");
    assert_eq!(s.revisions(&c, &n.id, None).unwrap().len(), 4);
    assert!(matches!(
        s.restore(&mut c, &n.id, &"0".repeat(64), &ann),
        Err(NoteError::RevisionNotFound(_))
    ));
    assert_eq!(
        event_kinds(&s, &c, &n.id, None),
        [
            EventKind::Created,
            EventKind::Edited,
            EventKind::Deleted,
            EventKind::Restored
        ]
    );
}

#[test]
fn private_notes_are_their_owners_alone() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let p = s
        .create(
            &mut c,
            content("secret", "diary", &[], Visibility::Private),
            &ann,
        )
        .unwrap();
    for viewer in [None, Some(bob.id)] {
        assert!(matches!(s.get(&c, &p.id, viewer), Err(NoteError::NotFound)));
        assert!(matches!(
            s.revisions(&c, &p.id, viewer),
            Err(NoteError::NotFound)
        ));
        assert!(matches!(
            s.revision(&c, &p.id, &p.rev, viewer),
            Err(NoteError::NotFound)
        ));
        assert!(matches!(
            s.events(&c, &p.id, viewer, None, 10),
            Err(NoteError::NotFound)
        ));
        assert!(matches!(
            s.contributors(&c, &p.id, viewer),
            Err(NoteError::NotFound)
        ));
    }
    assert!(matches!(
        s.view(&mut c, &p.id, Some(&bob)),
        Err(NoteError::NotFound)
    ));
    assert!(matches!(
        s.update(&mut c, &p.id, &p.rev, changes_body("x"), &bob),
        Err(NoteError::NotFound)
    ));
    assert!(matches!(
        s.delete(&mut c, &p.id, &p.rev, &bob),
        Err(NoteError::NotFound)
    ));
    assert_eq!(s.get(&c, &p.id, Some(ann.id)).unwrap().title, "secret");

    // Published later: the private drafts stay the owner's.
    let p2 = s
        .update(&mut c, &p.id, &p.rev, changes_body("draft 2"), &ann)
        .unwrap();
    let to_public = Changes {
        visibility: Some(Visibility::Public),
        body: Some("published".into()),
        ..Changes::default()
    };
    let p3 = s.update(&mut c, &p.id, &p2.rev, to_public, &ann).unwrap();
    assert_eq!(s.revisions(&c, &p.id, Some(bob.id)).unwrap().len(), 1);
    assert_eq!(s.revisions(&c, &p.id, Some(ann.id)).unwrap().len(), 3);
    assert!(matches!(
        s.revision(&c, &p.id, &p.rev, Some(bob.id)),
        Err(NoteError::RevisionNotFound(_))
    ));
    assert!(matches!(
        s.restore(&mut c, &p.id, &p.rev, &bob),
        Err(NoteError::RevisionNotFound(_))
    ));
    assert_eq!(
        s.get(&c, &p.id, Some(bob.id)).unwrap().contributors.len(),
        1
    );

    // Only the owner may change visibility.
    let hide = Changes {
        visibility: Some(Visibility::Private),
        ..Changes::default()
    };
    assert!(matches!(
        s.update(&mut c, &p.id, &p3.rev, hide.clone(), &bob),
        Err(NoteError::Forbidden(_))
    ));
    let p4 = s
        .update(&mut c, &p.id, &p3.rev, changes_body("bob was here"), &bob)
        .unwrap();
    s.update(&mut c, &p.id, &p4.rev, hide, &ann).unwrap();
    assert!(matches!(
        s.get(&c, &p.id, Some(bob.id)),
        Err(NoteError::NotFound)
    ));
}

#[test]
fn deleting_a_user_orphans_their_private_notes() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let p = s
        .create(
            &mut c,
            content("mine", "x", &["t"], Visibility::Private),
            &ann,
        )
        .unwrap();
    let q = s.create(&mut c, public("shared", "x"), &ann).unwrap();
    s.view(&mut c, &p.id, Some(&ann)).unwrap();
    c.execute("DELETE FROM users WHERE id = ?1", [ann.id])
        .unwrap();
    assert!(matches!(
        s.get(&c, &p.id, Some(ann.id)),
        Err(NoteError::NotFound)
    ));
    assert_eq!(
        s.get(&c, &q.id, None).unwrap().author,
        "ann",
        "public notes and names stay"
    );
    let scoped: i64 = c
        .query_row(
            "SELECT count(*) FROM note_daily WHERE scope = ?1",
            [ann.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(scoped, 0, "counters under the old id are gone");
    assert!(s.tags(&c, Some(ann.id)).unwrap().is_empty());
}

#[test]
fn the_event_log_records_views_and_outside_events() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let n = s.create(&mut c, public("t", "x"), &ann).unwrap();
    s.view(&mut c, &n.id, Some(&ann)).unwrap();
    s.view(&mut c, &n.id, None).unwrap();
    s.record_event(&c, &n.id, EventKind::SyncedOut, Some(&n.rev), None)
        .unwrap();
    let ev = s.events(&c, &n.id, None, None, 10).unwrap();
    assert_eq!(ev.len(), 4);
    assert_eq!(
        (ev[0].kind, ev[1].actor.clone(), ev[2].actor.as_deref()),
        (EventKind::SyncedOut, None, Some("ann"))
    );
    assert_eq!(
        s.events(&c, &n.id, None, Some(ev[1].id), 10).unwrap().len(),
        2
    );
    assert_eq!(s.get(&c, &n.id, None).unwrap().views, 2);
    // The wire name (`http::wire::notes` sends `kind` as this string).
    assert_eq!(ev[0].kind.as_str(), "synced_out");
}
