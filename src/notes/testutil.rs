//! Test helpers: a fresh in-memory database with the same PRAGMAs as `db` and the real
//! migrations (`db::migrate`); users; a store with a controllable clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection};

use super::{Author, Changes, Content, EventKind, Hlc, Limits, NotesStore, Revision, Visibility};

pub const T0: u64 = 1_700_000_000_000;

pub fn conn() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .unwrap();
    crate::db::migrate(&mut c).unwrap();
    c
}

pub fn user(c: &Connection, name: &str) -> Author {
    c.execute(
        "INSERT INTO users (name, password_hash, role, created_at) VALUES (?1, 'x', 'member', 0)",
        params![name],
    )
    .unwrap();
    Author {
        id: c.last_insert_rowid(),
        name: name.to_string(),
    }
}

/// A store whose physical clock is `clock` (ms), advanced by the test.
pub fn store_with(clock: Arc<AtomicU64>) -> NotesStore {
    NotesStore::new(Limits::default()).with_physical_clock(move || clock.load(Ordering::SeqCst))
}

/// A store whose clock ticks 1 ms per reading, from `T0`.
pub fn store() -> NotesStore {
    let t = AtomicU64::new(T0);
    NotesStore::new(Limits::default()).with_physical_clock(move || t.fetch_add(1, Ordering::SeqCst))
}

pub fn content(title: &str, body: &str, tags: &[&str], vis: Visibility) -> Content {
    Content {
        title: title.to_string(),
        body: body.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        visibility: vis,
    }
}

pub fn public(title: &str, body: &str) -> Content {
    content(title, body, &[], Visibility::Public)
}

pub fn changes_body(body: &str) -> Changes {
    Changes {
        body: Some(body.into()),
        ..Changes::default()
    }
}

pub fn event_kinds(
    s: &NotesStore,
    c: &Connection,
    id: &str,
    viewer: Option<i64>,
) -> Vec<EventKind> {
    let mut k: Vec<EventKind> = s
        .events(c, id, viewer, None, 100)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    k.reverse();
    k
}

/// A revision made on another node, on top of `parents`.
pub fn remote(note: &str, parents: &[&Revision], body: &str, deleted: bool, hlc: Hlc) -> Revision {
    let ps: Vec<(String, u64, Hlc)> = parents
        .iter()
        .map(|p| (p.rev.clone(), p.gen, p.hlc.clone()))
        .collect();
    Revision::build(note, &ps, public("t", body), deleted, hlc, "remote")
}

/// The revisions `from` would send `to` since `to`'s checkpoint for `peer`, the way a puller
/// gets them: changes (paged by `page`), missing, for_peer (until every missing one came,
/// `max_bytes` per call). Returns the batch and its cursor values (through_seq, max_seq,
/// instance).
pub fn fetch(
    s: &NotesStore,
    from: &Connection,
    to: &Connection,
    peer: &str,
    page: usize,
) -> (Vec<crate::notes::WireRev>, i64, i64, String) {
    let since = crate::sync::state::load(to, peer)
        .unwrap()
        .map_or(0, |p| p.seq);
    let mut items = Vec::new();
    let mut at = since;
    loop {
        let p = s.changes(from, at, page).unwrap();
        let revs: Vec<String> = p.changes.iter().map(|c| c.rev.clone()).collect();
        let mut missing = s.missing(to, &revs).unwrap();
        while !missing.is_empty() {
            let got = s.for_peer(from, &missing, "to", 64 * 1024).unwrap();
            assert!(!got.is_empty(), "for_peer sends at least one");
            missing.retain(|r| !got.iter().any(|g| g.rev() == r));
            items.extend(got);
        }
        if p.last_seq == at || p.last_seq >= p.max_seq {
            return (items, p.last_seq, p.max_seq, p.instance);
        }
        at = p.last_seq;
    }
}

/// `fetch` then `apply_from_peer` into `to`.
pub fn pull(
    s: &NotesStore,
    from: &Connection,
    to: &mut Connection,
    peer: &str,
) -> crate::notes::Applied {
    let (items, through, max, instance) = fetch(s, from, to, peer, 50);
    let cursor = crate::notes::Cursor {
        peer_id: peer,
        peer_name: "",
        instance: &instance,
        through_seq: through,
        max_seq: max,
    };
    s.apply_from_peer(to, &cursor, &items).unwrap()
}
