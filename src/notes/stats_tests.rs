//! Tag counts and analytics tests (SQLite): counts follow edits, deletes and visibility
//! changes (also across the upgrade that made a note's events follow it).

use rusqlite::Connection;

use super::testutil::{conn, content, public, store, user};
use super::*;

#[test]
fn a_notes_events_per_day_follow_its_visibility() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let n = s.create(&mut c, public("diary", ""), &ann).unwrap();
    s.create(&mut c, public("other", ""), &bob).unwrap();
    for _ in 0..3 {
        s.view(&mut c, &n.id, Some(&bob)).unwrap();
    }
    let kinds = |c: &Connection, viewer: Option<i64>| -> Vec<(String, i64)> {
        let a = s.analytics(c, viewer, 30, 10).unwrap();
        let mut v: Vec<_> = a
            .events_per_day
            .into_iter()
            .map(|d| (d.kind, d.count))
            .collect();
        v.sort();
        v
    };
    let all = vec![("created".to_string(), 2), ("viewed".to_string(), 3)];
    assert_eq!(kinds(&c, Some(bob.id)), all);
    let private = Changes {
        visibility: Some(Visibility::Private),
        ..Changes::default()
    };
    let n2 = s.update(&mut c, &n.id, &n.rev, private, &ann).unwrap();
    // Bob and anonymous readers see only the other note's creation now; ann sees all of it
    // (and her own edit, counted in her scope).
    for viewer in [None, Some(bob.id)] {
        assert_eq!(
            kinds(&c, viewer),
            [("created".to_string(), 1)],
            "{viewer:?}"
        );
    }
    let mut anns = all.clone();
    anns.insert(1, ("edited".to_string(), 1));
    assert_eq!(kinds(&c, Some(ann.id)), anns);
    let public = Changes {
        visibility: Some(Visibility::Public),
        ..Changes::default()
    };
    s.update(&mut c, &n.id, &n2.rev, public, &ann).unwrap();
    let mut back = anns.clone();
    back[1].1 = 2;
    assert_eq!(kinds(&c, Some(bob.id)), back);
    assert_eq!(kinds(&c, None), back);
}

/// A database from before the fix: the note turned private with its views left in the public
/// counts; the migration recounts them where the note is now.
#[test]
fn the_upgrade_recounts_events_of_notes_made_private_before_it() {
    let mut c = Connection::open_in_memory().unwrap();
    crate::db::migrations::migrations()
        .to_version(&mut c, 15)
        .unwrap();
    let s = store();
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let n = s.create(&mut c, public("diary", ""), &ann).unwrap();
    s.view(&mut c, &n.id, Some(&bob)).unwrap();
    let private = Changes {
        visibility: Some(Visibility::Private),
        ..Changes::default()
    };
    s.update(&mut c, &n.id, &n.rev, private, &ann).unwrap();
    let seen = |c: &Connection, viewer: Option<i64>| -> i64 {
        let a = s.analytics(c, viewer, 30, 10).unwrap();
        a.events_per_day.iter().map(|d| d.count).sum()
    };
    assert_eq!(seen(&c, Some(bob.id)), 2, "version 15 left them public");
    crate::db::migrations::migrations()
        .to_latest(&mut c)
        .unwrap();
    assert_eq!(seen(&c, Some(bob.id)), 0);
    assert_eq!(seen(&c, Some(ann.id)), 3);
}

#[test]
fn tag_counts_follow_edits_and_deletes() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let a = s
        .create(
            &mut c,
            content("a", "", &["x", "y"], Visibility::Public),
            &ann,
        )
        .unwrap();
    s.create(&mut c, content("b", "", &["x"], Visibility::Public), &ann)
        .unwrap();
    let counts = |c: &Connection| -> Vec<(String, i64)> {
        s.tags(c, None)
            .unwrap()
            .into_iter()
            .map(|t| (t.tag, t.count))
            .collect()
    };
    assert_eq!(counts(&c), [("x".into(), 2), ("y".into(), 1)]);
    let retag = Changes {
        tags: Some(vec!["z".into()]),
        ..Changes::default()
    };
    let a2 = s.update(&mut c, &a.id, &a.rev, retag, &ann).unwrap();
    assert_eq!(counts(&c), [("x".into(), 1), ("z".into(), 1)]);
    s.delete(&mut c, &a.id, &a2.rev, &ann).unwrap();
    assert_eq!(counts(&c), [("x".into(), 1)]);
}

#[test]
fn analytics_counts_activity() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let a = s
        .create(&mut c, content("a", "", &["t"], Visibility::Public), &ann)
        .unwrap();
    let b = s.create(&mut c, public("b", ""), &ann).unwrap();
    let a2 = s
        .update(&mut c, &a.id, &a.rev, Changes::default(), &bob)
        .unwrap();
    s.update(&mut c, &a.id, &a2.rev, Changes::default(), &bob)
        .unwrap();
    for _ in 0..3 {
        s.view(&mut c, &b.id, None).unwrap();
    }
    s.view(&mut c, &a.id, None).unwrap();
    s.record_search(&c).unwrap();
    s.record_search(&c).unwrap();
    let an = s.analytics(&c, None, 30, 10).unwrap();
    let top = |v: &[NoteCount]| {
        v.iter()
            .map(|n| (n.title.clone(), n.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(top(&an.most_viewed), [("b".into(), 3), ("a".into(), 1)]);
    assert_eq!(top(&an.most_edited), [("a".into(), 3), ("b".into(), 1)]);
    let contrib: Vec<(String, i64)> = an
        .top_contributors
        .iter()
        .map(|c| (c.name.clone(), c.revisions))
        .collect();
    assert_eq!(contrib, [("ann".into(), 2), ("bob".into(), 2)]);
    assert_eq!(an.searches, 2);
    assert_eq!(
        an.top_tags,
        [TagCount {
            tag: "t".into(),
            count: 1
        }]
    );
    let per_kind = |k: &str| {
        an.events_per_day
            .iter()
            .filter(|d| d.kind == k)
            .map(|d| d.count)
            .sum::<i64>()
    };
    assert_eq!(
        (per_kind("created"), per_kind("edited"), per_kind("viewed")),
        (2, 2, 4)
    );
    assert_eq!(an.events_per_day[0].day, "2023-11-14");
}
