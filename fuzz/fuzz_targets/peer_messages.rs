//! Fuzzes what another node sends over the sync API, decoded as the service decodes it
//! (`serde_json::from_slice`): the handshake (`Hello`, `HelloReply`, `Auth`), `RevsRequest`,
//! changes pages and revision batches. Every decoded revision goes through its checks
//! (`Revision::verify`, `Stub::verify`), nonces and proofs through `decode_nonce`,
//! `decode_proof` and the membership check, names and messages through `clip`. A batch is then
//! stored the way the puller stores it (`missing`, then `apply_from_peer` into a fresh
//! database with the real schema): it must never panic nor fail, account for every item, move
//! the peer's checkpoint only when nothing was refused, and leave the node sending its own
//! peers only revisions that pass their checks.
//!
//! Input: the whole input is tried as every message; it is also split at its first newline
//! into a changes page and the batch pulled for it, like one round of the puller.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use streamhub::notes::{ChangesPage, Cursor, Limits, NotesStore, WireRev};
use streamhub::sync::proof::{Role, Transcript};
use streamhub::sync::wire::{self, Auth, Hello, HelloReply, RevsReply, RevsRequest};
use streamhub::sync::ClusterKey;

/// The peer the batches come from (a node id: 64 hex digits).
const PEER: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
/// A fixed "now", so that a crash reproduces whatever the day (the clock-skew check reads it).
const NOW_MS: u64 = 1_800_000_000_000;

/// A migrated, empty database, held in memory: copied into a new connection for each input,
/// so inputs never see each other's rows.
fn template() -> &'static std::sync::Mutex<Connection> {
    static T: OnceLock<std::sync::Mutex<Connection>> = OnceLock::new();
    T.get_or_init(|| {
        // The migrations are the crate's own (`Db::open`, as the CLI opens a data dir); the
        // file is loaded into memory and removed at once.
        let dir = std::env::temp_dir().join(format!("streamhub-fuzz-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = streamhub::db::Db::open(&dir).expect("a fresh database opens and migrates");
        let mut mem = Connection::open_in_memory().expect("in-memory database");
        db.with(|c| {
            rusqlite::backup::Backup::new(c, &mut mem)
                .and_then(|b| b.run_to_completion(i32::MAX, std::time::Duration::ZERO, None))
        })
        .expect("copy of the template");
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
        std::sync::Mutex::new(mem)
    })
}

fn fresh_db() -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    let t = template().lock().unwrap_or_else(|p| p.into_inner());
    rusqlite::backup::Backup::new(&t, &mut conn)
        .and_then(|b| b.run_to_completion(i32::MAX, std::time::Duration::ZERO, None))
        .expect("copy of the template");
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .expect("pragma");
    conn
}

fn key() -> &'static ClusterKey {
    static K: OnceLock<ClusterKey> = OnceLock::new();
    K.get_or_init(|| ClusterKey::parse(&"A".repeat(43)).expect("a valid 32-byte key"))
}

fn check_rev(item: &WireRev) {
    let _ = match item {
        WireRev::Full(r) => r.verify(&Limits::default()),
        WireRev::Stub(s) => s.verify(),
    };
    let _ = wire::clip(item.rev(), 64);
}

/// The handshake fields as the session and the client check them.
fn check_nonce_and_proof(nonce: &str, proof: &str) {
    let n = wire::decode_nonce(nonce);
    let p = wire::decode_proof(proof);
    if let Some(n) = n {
        assert_eq!(n.len(), streamhub::sync::proof::NONCE_BYTES);
    }
    if let (Some(n), Some(p)) = (n, p) {
        assert_eq!(p.len(), 32);
        let t = Transcript {
            server_id: PEER,
            client_id: PEER,
            server_nonce: &n,
            client_nonce: &n,
        };
        // A proof from the input is (with overwhelming likelihood) not the key's.
        let _ = t.check(key(), Role::Server, &p);
    }
}

fn clipped(text: &str, max: usize) {
    let c = wire::clip(text, max);
    assert!(c.len() <= max);
    assert!(!c.chars().any(char::is_control));
    // What it shows with no limit: the text without control and invisible characters (a
    // Hangul filler, U+3164, is one; an oracle that dropped only controls failed on it).
    let shown = wire::clip(text, usize::MAX);
    assert!(!shown.chars().any(char::is_control));
    assert!(
        shown.starts_with(&c),
        "clip keeps a prefix of the text it shows"
    );
}

/// Stores `batch` as the puller does after reading `page` (or with a cursor of its own when
/// there is no page): the diff, then one `apply_from_peer`.
fn apply(batch: &[WireRev], page: Option<&ChangesPage>) {
    let store = NotesStore::new(Limits::default()).with_physical_clock(|| NOW_MS);
    let mut conn = fresh_db();
    let (instance, through, max) = page.map_or(("b2".to_string(), 7, 9), |p| {
        (p.instance.clone(), p.last_seq, p.max_seq)
    });
    if let Some(p) = page {
        let revs: Vec<String> = p.changes.iter().map(|c| c.rev.clone()).collect();
        let missing = store.missing(&conn, &revs).expect("the diff never fails");
        assert!(missing.len() <= revs.len());
    }
    streamhub::sync::state::remember(&conn, PEER, "peer", 0).expect("peer remembered");
    let cursor = Cursor {
        peer_id: PEER,
        peer_name: "peer",
        instance: &instance,
        through_seq: through,
        max_seq: max,
    };
    let applied = store
        .apply_from_peer(&mut conn, &cursor, batch)
        .expect("a batch from a peer never makes the database fail");
    assert_eq!(
        applied.stored + applied.present + applied.refused.len(),
        batch.len(),
        "every item is stored, present or refused"
    );
    let st = streamhub::sync::state::load(&conn, PEER)
        .expect("peer state")
        .expect("the peer is remembered");
    if applied.refused.is_empty() {
        assert_eq!(st.seq, through, "checkpoint advanced after a clean batch");
    } else {
        assert_eq!(st.seq, 0, "checkpoint kept after a refusal");
        assert!(
            st.last_error.is_some(),
            "the refusal is the peer's last error"
        );
    }
    // Idempotent: the same batch again stores nothing it stored the first time.
    let again = store
        .apply_from_peer(&mut conn, &cursor, batch)
        .expect("a batch from a peer never makes the database fail");
    assert!(again.present >= applied.stored);
    // What this node would now send its own peers passes their checks and survives JSON.
    let page = store
        .changes(&conn, 0, wire::MAX_PAGE)
        .expect("the feed never fails");
    let revs: Vec<String> = page.changes.iter().map(|c| c.rev.clone()).collect();
    let out = store
        .for_peer(&conn, &revs, "fuzz", 4 << 20)
        .expect("the outgoing batch never fails");
    for w in &out {
        let ok = match w {
            WireRev::Full(r) => r.verify(&Limits::default()),
            WireRev::Stub(s) => s.verify(),
        };
        assert!(ok.is_ok(), "a revision sent out would be refused: {ok:?}");
        let json = serde_json::to_vec(w).expect("serialises");
        let back: WireRev = serde_json::from_slice(&json).expect("decodes");
        assert_eq!(&back, w);
    }
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(h) = serde_json::from_slice::<Hello>(bytes) {
        check_nonce_and_proof(&h.nonce, "");
    }
    if let Ok(r) = serde_json::from_slice::<HelloReply>(bytes) {
        check_nonce_and_proof(&r.nonce, &r.proof);
        clipped(&r.name, wire::MAX_NAME);
        let _ = streamhub::sync::is_node_id(&r.id);
        assert!(wire::clean_name(&r.name).len() <= wire::MAX_NAME);
    }
    if let Ok(a) = serde_json::from_slice::<Auth>(bytes) {
        check_nonce_and_proof("", &a.proof);
        clipped(&a.name, 300);
    }
    if let Ok(r) = serde_json::from_slice::<RevsRequest>(bytes) {
        for rev in &r.revs {
            clipped(rev, 64);
        }
    }
    if let Ok(p) = serde_json::from_slice::<ChangesPage>(bytes) {
        clipped(&p.instance, 64);
    }
    if let Ok(r) = serde_json::from_slice::<RevsReply>(bytes) {
        r.revs.iter().for_each(check_rev);
        apply(&r.revs, None);
    }
    // One round of the puller: a page, a newline, the batch fetched for it.
    if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
        let (page, batch) = (&bytes[..nl], &bytes[nl + 1..]);
        if let (Ok(p), Ok(r)) = (
            serde_json::from_slice::<ChangesPage>(page),
            serde_json::from_slice::<RevsReply>(batch),
        ) {
            r.revs.iter().for_each(check_rev);
            apply(&r.revs, Some(&p));
        }
    }
});
