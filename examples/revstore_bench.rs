//! Note revision storage benchmark (issue 12): 150 edits of a 1 MiB note, three kinds of
//! edit (append a line, change a word in the middle, rewrite everything).
//!
//! Part 1 compares storage forms on the same sequence of bodies, pure (`notes::revcodec`):
//! full text (what was stored before migration 0014), each body deflated (levels 1 and 6),
//! and deltas against the previous body with a keyframe every K revisions (K = 16, 64, 256):
//! bytes stored for the 151 revisions, time to encode one edit, time to rebuild the deepest
//! revision. Part 2 runs the real store (`NotesStore` over a database file, synchronous
//! FULL as served): data dir growth (db + wal), time per edit, time to read old revisions.
//!
//! `cargo run --release --example revstore_bench -- DIR`

use std::path::{Path, PathBuf};
use std::time::Instant;

use streamhub::auth::{Accounts, Role};
use streamhub::db::Db;
use streamhub::notes::revcodec::{self, Encoded};
use streamhub::notes::{Author, Changes, Content, NotesStore, Visibility};

const EDITS: usize = 150;
const SIZE: usize = 1 << 20;

/// Text like prose, from a fixed generator.
fn prose(seed: u64, bytes: usize) -> String {
    const WORDS: [&str; 24] = [
        "stream", "note", "the", "of", "box", "media", "garden", "recipe", "and", "a", "video",
        "edit", "line", "revision", "peer", "sync", "holiday", "invoice", "backup", "network",
        "kitchen", "budget", "meeting", "camera",
    ];
    let mut x = seed | 1;
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % 24) as usize]);
        s.push(if x.is_multiple_of(13) { '\n' } else { ' ' });
    }
    s.truncate(bytes);
    s
}

/// The 151 bodies of one scenario (the first one and 150 edits), each under 1 MiB.
fn bodies(kind: &str) -> Vec<String> {
    let mut out = vec![prose(1, SIZE - 16 * 1024)];
    for i in 0..EDITS {
        let prev = out.last().unwrap();
        let next = match kind {
            "append" => format!("{prev}line {i} appended to the note\n"),
            "middle" => {
                let at = prev.len() / 2 + (i * 997) % 4096;
                let at = (at..).find(|&j| prev.is_char_boundary(j)).unwrap();
                format!("{}WORD{i}{}", &prev[..at], &prev[at + 4..])
            }
            _ => prose(i as u64 + 2, SIZE - 16 * 1024),
        };
        out.push(next);
    }
    out
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn simulate(kind: &str, bodies: &[String]) {
    let full: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    println!("| {kind} | full text (before) | {:.2} | – | – |", mib(full));
    for level in [1u8, 6] {
        let t = Instant::now();
        let sum: u64 = bodies
            .iter()
            .map(|b| miniz_oxide::deflate::compress_to_vec(b.as_bytes(), level).len() as u64)
            .sum();
        let per = ms(t) / bodies.len() as f64;
        println!(
            "| {kind} | deflate level {level} each body | {:.2} | {per:.1} | – |",
            mib(sum)
        );
    }
    for k in [16usize, 64, 256] {
        let t = Instant::now();
        let mut stored: Vec<(Encoded, usize)> = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let depth = if i == 0 { 0 } else { stored[i - 1].1 };
            let enc = if i > 0 && depth < k {
                let d = revcodec::delta(&bodies[i - 1], b);
                if d.data.len() <= b.len() / 16 {
                    (d, depth + 1)
                } else {
                    let f = revcodec::full(b);
                    if d.data.len() < f.data.len() {
                        (d, depth + 1)
                    } else {
                        (f, 0)
                    }
                }
            } else {
                (revcodec::full(b), 0)
            };
            stored.push(enc);
        }
        let per = ms(t) / bodies.len() as f64;
        let sum: u64 = stored.iter().map(|(e, _)| e.data.len() as u64).sum();
        // The deepest revision: rebuild from its keyframe.
        let deepest = (0..stored.len()).max_by_key(|&i| stored[i].1).unwrap();
        let t = Instant::now();
        let mut start = deepest;
        while stored[start].1 > 0 {
            start -= 1;
        }
        let mut bytes =
            revcodec::decode(stored[start].0.form, &stored[start].0.data, None).unwrap();
        for (e, _) in &stored[start + 1..=deepest] {
            bytes = revcodec::decode(e.form, &e.data, Some(bytes)).unwrap();
        }
        let read = ms(t);
        assert_eq!(bytes, bodies[deepest].as_bytes());
        println!(
            "| {kind} | delta, keyframe every {k} (depth {}) | {:.2} | {per:.2} | {read:.1} |",
            stored[deepest].1,
            mib(sum)
        );
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    ["streamhub.db", "streamhub.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn real_store(root: &Path, kind: &str, bodies: &[String]) {
    let dir = root.join(kind);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::open(&dir).unwrap();
    let accounts = Accounts::new(db.clone());
    let user = accounts
        .add_user("bench", "benchpassword1", Role::Member)
        .unwrap();
    let who = Author {
        id: user.id,
        name: user.name.clone(),
    };
    let store = NotesStore::new(Default::default());
    let content = Content {
        title: "big".into(),
        body: bodies[0].clone(),
        tags: vec![],
        visibility: Visibility::Private,
    };
    let note = db.with(|c| store.create(c, content, &who)).unwrap();
    db.with(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
        .unwrap();
    let before = dir_bytes(&dir);
    let mut revs = vec![note.rev.clone()];
    let t = Instant::now();
    for b in &bodies[1..] {
        let changes = Changes {
            body: Some(b.clone()),
            ..Changes::default()
        };
        let n = db
            .with(|c| store.update(c, &note.id, revs.last().unwrap(), changes, &who))
            .unwrap();
        revs.push(n.rev);
    }
    let per_edit = ms(t) / EDITS as f64;
    let grown = dir_bytes(&dir) - before;
    db.with(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
        .unwrap();
    let grown_db = dir_bytes(&dir) - before;
    let mut reads = Vec::new();
    for i in [1usize, 64, 65, 150] {
        let t = Instant::now();
        let r = db
            .with(|c| store.revision(c, &note.id, &revs[i], Some(who.id)))
            .unwrap();
        reads.push(format!("#{i} {:.1}", ms(t)));
        assert!(r.content.body == bodies[i]);
    }
    println!(
        "| {kind} | {:.2} | {:.2} | {per_edit:.1} | {} |",
        mib(grown),
        mib(grown_db),
        reads.join(", ")
    );
}

fn main() {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("revstore-bench"));
    let kinds = ["append", "middle", "rewrite"];
    let all: Vec<(&str, Vec<String>)> = kinds.iter().map(|k| (*k, bodies(k))).collect();
    println!("| edit | storage form | MiB stored (151 revisions) | ms per edit (encode) | ms to rebuild the deepest |");
    println!("|---|---|---|---|---|");
    for (k, b) in &all {
        simulate(k, b);
    }
    println!();
    println!("| edit | data dir growth, MiB (db + wal) | after checkpoint, MiB | ms per edit | ms to read revision #i |");
    println!("|---|---|---|---|---|");
    for (k, b) in &all {
        real_store(&root, k, b);
    }
}
