//! Revision storage through the store: edits cost their change, every revision reads back
//! byte for byte in any arrival order, chains stay bounded, corruption is an error.

use rusqlite::Connection;

use super::revstore::MAX_CHAIN;
use super::testutil::{changes_body, conn, public, remote, store, user, T0};
use super::*;

/// Text like prose: words drawn from a small vocabulary by a fixed generator, in lines.
fn prose(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 16] = [
        "stream", "note", "the", "of", "box", "media", "é", "日本", "and", "a", "video", "edit",
        "line", "revision", "peer", "sync",
    ];
    let mut x = seed | 1;
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % 16) as usize]);
        s.push(if x.is_multiple_of(11) { '\n' } else { ' ' });
    }
    s
}

/// (form, base, depth, stored bytes) of each of the note's revisions, oldest first.
fn storage(c: &Connection, note: &str) -> Vec<(i64, Option<String>, i64, i64)> {
    c.prepare(
        "SELECT body_form, body_base, body_depth, stored_bytes FROM note_revisions
         WHERE note = (SELECT nid FROM notes WHERE id = ?1) ORDER BY seq",
    )
    .unwrap()
    .query_map([note], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn db_bytes(c: &Connection) -> i64 {
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    c.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn appending_150_lines_to_a_1_mib_note_costs_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::db::Db::open(dir.path()).unwrap();
    let s = store();
    db.with(|c| {
        let ann = user(c, "ann");
        let mut body = prose(1, 1_000_000);
        let mut bodies = vec![body.clone()];
        let n = s.create(c, public("big", &body), &ann).unwrap();
        let before = db_bytes(c);
        let mut rev = n.rev.clone();
        let mut revs = vec![rev.clone()];
        for i in 0..150 {
            body.push_str(&format!("line {i} appended to the note\n"));
            rev = s
                .update(c, &n.id, &rev, changes_body(&body), &ann)
                .unwrap()
                .rev;
            revs.push(rev.clone());
            bodies.push(body.clone());
        }
        let grown = db_bytes(c) - before;
        let rows = storage(c, &n.id);
        let stored: i64 = rows.iter().map(|r| r.3).sum();
        assert!(stored < 5 << 20, "stored {stored} bytes for 151 revisions");
        assert!(grown < 5 << 20, "the database grew by {grown} bytes");
        assert!(rows.iter().all(|r| r.2 <= MAX_CHAIN), "{rows:?}");
        let keyframes = rows.iter().filter(|r| r.1.is_none()).count();
        assert_eq!(keyframes, 151_usize.div_ceil(MAX_CHAIN as usize + 1));
        for i in [0, 1, 64, 65, 66, 100, 149, 150] {
            let r = s.revision(c, &n.id, &revs[i], Some(ann.id)).unwrap();
            assert!(r.content.body == bodies[i], "revision {i} differs");
        }
    });
}

#[test]
fn random_edits_restores_and_deletes_read_back_exactly() {
    let c = &mut conn();
    let s = store();
    let ann = user(c, "ann");
    let n = s.create(c, public("t", ""), &ann).unwrap();
    let mut written = vec![(n.rev.clone(), String::new())];
    let mut rev = n.rev;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..300u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cur = written.last().unwrap().1.clone();
        let chars: Vec<char> = cur.chars().collect();
        let at = (x as usize >> 8) % (chars.len() + 1);
        let head: String = chars[..at].iter().collect();
        let tail: String = chars[at..].iter().collect();
        let next = match x % 7 {
            0 => String::new(),
            1 => format!("{head}{tail}{}", prose(x, 3000)),
            2 => tail,
            3 if written.len() > 3 => {
                // Bring back an old revision: a new revision with its text.
                let (old, text) = written[(x as usize >> 20) % written.len()].clone();
                rev = s.restore(c, &n.id, &old, &ann).unwrap().rev;
                written.push((rev.clone(), text));
                continue;
            }
            4 => {
                rev = s.delete(c, &n.id, &rev, &ann).unwrap().rev;
                written.push((rev.clone(), cur.clone()));
                rev = s.restore(c, &n.id, &rev, &ann).unwrap().rev;
                written.push((rev.clone(), cur));
                continue;
            }
            _ => format!("{head}✓ édit {i} 🎬{tail}"),
        };
        rev = s
            .update(c, &n.id, &rev, changes_body(&next), &ann)
            .unwrap()
            .rev;
        written.push((rev.clone(), next));
    }
    for (rev, text) in &written {
        let r = s.revision(c, &n.id, rev, Some(ann.id)).unwrap();
        assert!(&r.content.body == text, "{rev}");
    }
    let rows = storage(c, &n.id);
    assert!(rows.iter().any(|r| r.1.is_some()), "some deltas");
    assert!(rows.iter().all(|r| r.2 <= MAX_CHAIN));
}

/// Revisions from a peer, child before parent: the orphan is a keyframe, later ones delta
/// on what is there, and a merge rebuilds its base from a delta.
#[test]
fn any_arrival_order_stores_and_reads_back() {
    let c = &mut conn();
    let s = store();
    let ann = user(c, "ann");
    let note = "0123456789abcdef0123456789abcdef";
    let base = prose(7, 20_000);
    let r1 = remote(note, &[], &base, false, Hlc::new(T0, 0, "peer"));
    let r2 = remote(
        note,
        &[&r1],
        &format!("{base}two\n"),
        false,
        Hlc::new(T0 + 1, 0, "peer"),
    );
    let r3 = remote(
        note,
        &[&r2],
        &format!("top\n{base}two\n"),
        false,
        Hlc::new(T0 + 2, 0, "peer"),
    );
    for r in [&r2, &r3, &r1] {
        assert_eq!(s.put_revision(c, r).unwrap(), PutOutcome::Inserted);
    }
    let forms = storage(c, note);
    // r2 came first with no parent: a keyframe; r3 a delta on r2; r1 (a root) a keyframe.
    assert_eq!(forms[0].1, None);
    assert_eq!(forms[1].1.as_deref(), Some(r2.rev.as_str()));
    assert_eq!(forms[2].1, None);
    for r in [&r1, &r2, &r3] {
        assert_eq!(s.revision(c, note, &r.rev, None).unwrap(), *r);
    }
    // Two sides edit r3 at either end; the merge rebuilds r3 (a delta) as its base.
    let ours = s
        .update(
            c,
            note,
            &r3.rev,
            changes_body(&format!("top\n{base}two\nours\n")),
            &ann,
        )
        .unwrap();
    let theirs = remote(
        note,
        &[&r3],
        &format!("TOP\n{base}two\n"),
        false,
        Hlc::new(T0 + 3, 0, "peer"),
    );
    s.put_revision(c, &theirs).unwrap();
    let cur = s.get(c, note, None).unwrap();
    let other = if cur.rev == ours.rev {
        &theirs.rev
    } else {
        &ours.rev
    };
    let merged = s.merge(c, note, other, &ann).unwrap();
    assert_eq!(merged.body, format!("TOP\n{base}two\nours\n"));
    let back = s.revision(c, note, &merged.rev, None).unwrap();
    assert_eq!(back.content.body, merged.body);
}

#[test]
fn a_corrupt_stored_body_is_an_error_never_a_wrong_text() {
    let c = &mut conn();
    let s = store();
    let ann = user(c, "ann");
    let body = prose(3, 5000);
    let n = s.create(c, public("t", &body), &ann).unwrap();
    let e = s
        .update(
            c,
            &n.id,
            &n.rev,
            changes_body(&format!("{body}more\n")),
            &ann,
        )
        .unwrap();
    // Same length, other bytes (the delta still applies, the hash catches it); bytes that
    // are no delta; a base that is gone.
    for damage in [
        "UPDATE note_revisions SET body = CAST(replace(CAST(body AS TEXT), 'more', 'MORE') AS BLOB)
         WHERE rev = ?1",
        "UPDATE note_revisions SET body = X'00' WHERE rev = ?1",
        "UPDATE note_revisions SET body_base = 'gone' WHERE rev = ?1",
    ] {
        c.execute(damage, [&e.rev]).unwrap();
        assert!(matches!(
            s.revision(c, &n.id, &e.rev, None),
            Err(NoteError::Corrupt(_))
        ));
    }
    // The other revision is untouched.
    assert_eq!(
        s.revision(c, &n.id, &n.rev, None).unwrap().content.body,
        body
    );
}
