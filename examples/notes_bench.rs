//! Notes benchmark for `scripts/bench.sh`: builds a notepad of N generated notes through the
//! real store (FTS triggers and all), then measures full-text search latency (p50/p95/p99 over
//! a mix of word, prefix and tag queries) and the database size per 1,000 notes.
//!
//! Generation runs with `PRAGMA synchronous = NORMAL` so 100k notes take seconds, not minutes
//! of fsyncs; the service itself always runs with FULL (the HTTP create rate is measured
//! separately, against the real server, by `scripts/bench/notes_http.py`).
//!
//! `cargo run --release --example notes_bench -- DIR [NOTES] [QUERIES]`

use std::path::PathBuf;
use std::time::Instant;

use streamhub::auth::{Accounts, Role};
use streamhub::db::Db;
use streamhub::notes::{Author, Content, NotesStore, SearchQuery, Visibility};

const WORDS: &[&str] = &[
    "stream",
    "media",
    "raspberry",
    "film",
    "music",
    "season",
    "episode",
    "garden",
    "recipe",
    "holiday",
    "invoice",
    "backup",
    "network",
    "router",
    "printer",
    "school",
    "birthday",
    "camera",
    "travel",
    "kitchen",
    "budget",
    "meeting",
    "project",
    "weather",
    "bicycle",
    "piano",
    "football",
    "library",
    "subtitle",
    "playlist",
    "concert",
    "doctor",
    "insurance",
    "garage",
    "window",
    "heating",
    "battery",
    "charger",
    "laptop",
    "tablet",
    "password",
    "wifi",
    "server",
    "storage",
    "archive",
    "photo",
    "album",
    "video",
    "podcast",
    "radio",
];
const TAGS: &[&str] = &[
    "home", "work", "family", "media", "todo", "ideas", "pi", "shopping",
];

/// A vocabulary of `n` pronounceable pseudo-words; with Zipf-like sampling (`Lcg::zipf`) a few
/// are common and most are rare, as in real notes. (The 50 real words above are mixed in.)
fn vocabulary(n: usize) -> Vec<String> {
    const SYL: &[&str] = &[
        "ka", "lo", "mi", "ren", "tu", "sa", "vel", "no", "dar", "pi", "qu", "os", "ber", "lin",
        "ta", "mor", "gi", "sun", "fe", "xa",
    ];
    let mut words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
    let mut i = 0usize;
    while words.len() < n {
        let (a, b, c) = (i % 20, (i / 20) % 20, (i / 400) % 20);
        words.push(format!("{}{}{}{}", SYL[a], SYL[b], SYL[c], i / 8000));
        i += 1;
    }
    words
}

/// A small deterministic generator (no `rand` dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Index in 0..n, roughly Zipf-distributed (rank r with weight ~1/r).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        (((n as f64).powf(u)) as usize).saturating_sub(1).min(n - 1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        // Skewed towards the front, like real vocabularies.
        let a = self.next() as usize % xs.len();
        let b = self.next() as usize % xs.len();
        xs[a.min(b)]
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: notes_bench DIR [NOTES] [QUERIES]")?,
    );
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let queries: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2_000);
    let reuse = dir.join("streamhub.db").exists() && std::env::var_os("BENCH_REUSE").is_some();
    if !reuse {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
    }
    let db = Db::open(&dir)?;
    let accounts = Accounts::new(db.clone());
    let user = match accounts.add_user("bench", "benchmark-password", Role::Member) {
        Ok(u) => u,
        Err(_) => accounts.verify("bench", "benchmark-password")?,
    };
    let author = Author {
        id: user.id,
        name: user.name.clone(),
    };
    let store = NotesStore::new(Default::default());
    db.with(|c| c.execute_batch("PRAGMA synchronous = NORMAL"))?;
    // To compare SQLite's mmap window with the service's (`db::open_conn`) on one database.
    if let Some(bytes) = std::env::var("BENCH_MMAP_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        db.with(|c| c.execute_batch(&format!("PRAGMA mmap_size = {bytes}")))?;
    }
    let mut rng = Lcg(42);
    let vocab = vocabulary(20_000);
    let t0 = Instant::now();
    for i in 0..if reuse { 0 } else { n } {
        let title: Vec<&str> = (0..4)
            .map(|_| vocab[rng.zipf(vocab.len())].as_str())
            .collect();
        let body: Vec<&str> = (0..60)
            .map(|_| vocab[rng.zipf(vocab.len())].as_str())
            .collect();
        let tags = vec![rng.pick(TAGS).to_string(), rng.pick(TAGS).to_string()];
        let visibility = if i % 10 == 0 {
            Visibility::Private
        } else {
            Visibility::Public
        };
        let content = Content {
            title: format!("{} {i}", title.join(" ")),
            body: body.join(" "),
            tags,
            visibility,
        };
        db.with(|c| store.create(c, content, &author))?;
    }
    let gen_secs = t0.elapsed().as_secs_f64();
    if let Ok(pragmas) = std::env::var("BENCH_PRAGMAS") {
        db.with(|c| c.execute_batch(&pragmas))?;
    }
    db.with(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))?;
    let size: u64 = ["streamhub.db", "streamhub.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();

    let slow_ms: Option<f64> = std::env::var("BENCH_SLOW_MS")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut lat = Vec::with_capacity(queries);
    let mut by_kind: [Vec<f64>; 4] = Default::default();
    let mut by_source: [Vec<f64>; 2] = Default::default();
    let mut hits = 0usize;
    for i in 0..queries {
        let mut q = SearchQuery::default();
        // Query words as people type them: drawn like the text, so common words are asked
        // for more often (and match more notes) than rare ones.
        // Half the queries are words people remember a note by: any word of the vocabulary,
        // uniformly (mostly rare ones); the other half are drawn like the text itself, so the
        // most common words — in most notes — are asked for too.
        let uniform = i % 8 >= 4;
        let mut word = || {
            if uniform {
                vocab[(rng.next() as usize) % vocab.len()].clone()
            } else {
                vocab[rng.zipf(vocab.len())].clone()
            }
        };
        match i % 4 {
            0 => q.q = word(),
            1 => q.q = format!("{} {}", word(), word()),
            2 => {
                let w = word();
                q.q = format!("{}*", &w[..w.len().min(5)]);
            }
            _ => {
                q.q = word();
                q.tags = vec![TAGS[i % TAGS.len()].to_string()];
            }
        }
        let viewer = if i % 2 == 0 { Some(user.id) } else { None };
        let t = Instant::now();
        let page = db.with(|c| store.search(c, &q, viewer))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if slow_ms.is_some_and(|s| ms > s) {
            eprintln!("slow: {ms:.1} ms {q:?} viewer={viewer:?}");
        }
        lat.push(ms);
        by_kind[i % 4].push(ms);
        by_source[usize::from(i % 8 >= 4)].push(ms);
        hits += page.items.len();
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!("notes: {n}");
    println!(
        "generation through the store (synchronous=NORMAL): {gen_secs:.1} s ({:.0} notes/s)",
        n as f64 / gen_secs
    );
    println!(
        "search queries: {queries} (avg {:.1} hits/page)",
        hits as f64 / queries as f64
    );
    println!("search p50 (ms): {:.2}", percentile(&lat, 0.50));
    println!("search p95 (ms): {:.2}", percentile(&lat, 0.95));
    println!("search p99 (ms): {:.2}", percentile(&lat, 0.99));
    for (name, v) in [
        "words as common as in the text",
        "any vocabulary word (mostly rare)",
    ]
    .iter()
    .zip(by_source.iter_mut())
    {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  {name}: p50 {:.2} ms, p95 {:.2} ms",
            percentile(v, 0.5),
            percentile(v, 0.95)
        );
    }
    for (name, v) in ["one word", "two words", "prefix", "word + tag"]
        .iter()
        .zip(by_kind.iter_mut())
    {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  {name}: p50 {:.2} ms, p95 {:.2} ms",
            percentile(v, 0.5),
            percentile(v, 0.95)
        );
    }
    println!("database size (MiB): {:.1}", size as f64 / 1048576.0);
    println!(
        "database size per 1k notes (KiB): {:.0}",
        size as f64 / 1024.0 / (n as f64 / 1000.0)
    );
    Ok(())
}
