//! Library index benchmark: a media root of N small files spread over ~1000 folders (one of
//! them holding 1000 entries), indexed through the real `Library` (its own connections, the
//! same transactions as the service). Measures a full scan, a no-change rescan, search
//! latency (p50/p95/p99 over substring queries, common and rare, with type filters and
//! paging) and listing latency of the 1000-entry folder, and prints one JSON line.
//!
//! `cargo run --release --example library_bench -- [DIR] [FILES] [QUERIES]`
//! (DIR defaults to `$TMPDIR/streamhub-library-bench`). With `BENCH_REUSE=1` an existing
//! tree in DIR is kept (creating 100k files takes a while); the index is always rebuilt.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streamhub::config::LibraryConfig;
use streamhub::db::Db;
use streamhub::library::model::RawList;
use streamhub::library::{Library, ListRequest};
use streamhub::storage::local::{LocalOptions, LocalStorage, NodeDir};
use streamhub::storage::MediaPath;

const SHOWS: &[&str] = &[
    "Garden Diaries",
    "Kitchen Secrets",
    "Mountain Rescue",
    "Ocean Deep",
    "City Lights",
    "Night Shift",
    "Desert Roads",
    "Winter Tales",
    "Space Station",
    "Family Album",
    "Holiday",
    "Concert Live",
    "Birthday Party",
    "School Play",
    "Football Match",
    "Piano Lessons",
];
const WORDS: &[&str] = &[
    "intro",
    "finale",
    "pilot",
    "special",
    "behind the scenes",
    "interview",
    "trailer",
    "extended",
    "remastered",
    "directors cut",
    "bonus",
    "outtakes",
    "recap",
    "preview",
];
const EXTS: &[&str] = &[
    "mp4", "mkv", "mp4", "mp3", "flac", "jpg", "png", "txt", "srt", "mkv",
];

/// xorshift: reproducible and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes `n` empty files: folder `big` gets 1000, the rest spread over 999 folders in two
/// levels (show/season), names like `Ocean Deep s02e117 interview.mkv`.
fn make_tree(media: &Path, n: usize) -> std::io::Result<()> {
    let mut rng = Rng(0x5eed_1234_abcd);
    std::fs::create_dir_all(media.join("big"))?;
    for i in 0..1000.min(n) {
        std::fs::File::create(media.join("big").join(format!("clip {i:04}.mp4")))?;
    }
    let rest = n.saturating_sub(1000);
    let folders = 999;
    for f in 0..folders {
        let show = SHOWS[f % SHOWS.len()];
        let dir = media
            .join(format!("{show} {}", f / SHOWS.len()))
            .join(format!("season {:02}", f % 7));
        std::fs::create_dir_all(&dir)?;
        let count = rest / folders + usize::from(f < rest % folders);
        for e in 0..count {
            let word = WORDS[rng.below(WORDS.len())];
            let ext = EXTS[rng.below(EXTS.len())];
            let name = format!(
                "{show} s{:02}e{e:03} {word} {:05}.{ext}",
                f % 7,
                rng.below(100_000)
            );
            std::fs::File::create(dir.join(name))?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("streamhub-library-bench"));
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let queries: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000);
    let media = dir.join("media");
    let data = dir.join("data");
    let reuse = media.join("big").exists() && std::env::var_os("BENCH_REUSE").is_some();
    let t = Instant::now();
    if !reuse {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        make_tree(&media, n)?;
    }
    let make_ms = ms(t.elapsed());
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    std::fs::create_dir_all(&data)?;
    let _db = Db::open(&data)?;
    let config = LibraryConfig {
        scan_interval_secs: 0,
        search_rescan_secs: 0,
        // Empty files: nothing to probe; the benchmark measures the index.
        ffprobe: "/nonexistent/ffprobe".into(),
        ffmpeg: "/nonexistent/ffmpeg".into(),
        thumbnails: false,
        probe_timeout_secs: 30,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let storage = LocalStorage::new(
        &media,
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(30),
            chunk_size: 64 * 1024,
            node: NodeDir::new(&"b".repeat(64))?,
        },
    );
    storage.establish(None, 0)?;
    let lib = Library::open(&data, Arc::new(storage), &config, Duration::from_secs(30))?;

    let t = Instant::now();
    let full = rt.block_on(lib.scan_now())?;
    let full_ms = ms(t.elapsed());
    let t = Instant::now();
    let again = rt.block_on(lib.scan_now())?;
    let rescan_ms = ms(t.elapsed());
    assert_eq!(again.added + again.changed + again.removed, 0, "{again:?}");

    // Common substrings (thousands of hits), rare ones (a few), short ones (LIKE path), with
    // type filters and later pages.
    let common = [
        "garden",
        "s02e",
        "interview",
        "ocean deep",
        "mp4",
        "season",
        "trailer",
        "Night",
    ];
    let rare = [
        "e117 inter",
        "00042",
        "remastered 9",
        "s06e2",
        "kitchen secrets 3",
    ];
    let short = ["e1", "z", "42"];
    let types = [
        None,
        None,
        Some("video"),
        Some("audio"),
        Some("image"),
        Some("other"),
    ];
    let mut rng = Rng(42);
    let mut lat = Vec::with_capacity(queries);
    let mut slowest: Vec<(f64, String)> = Vec::new();
    let mut hits = 0u64;
    let root = MediaPath::root();
    for i in 0..queries {
        let q = match i % 4 {
            0 | 1 => common[rng.below(common.len())],
            2 => rare[rng.below(rare.len())],
            _ => short[rng.below(short.len())],
        };
        let page = (1 + rng.below(3)).to_string();
        let raw = RawList {
            q: Some(q),
            class: types[rng.below(types.len())],
            page: Some(&page),
            per_page: Some(if rng.below(2) == 0 { "50" } else { "100" }),
            sort: if rng.below(4) == 0 {
                Some("-mtime")
            } else {
                None
            },
        };
        let req = ListRequest::parse(root.clone(), &raw)?;
        let t = Instant::now();
        let page = rt.block_on(lib.list(req))?;
        let took = ms(t.elapsed());
        lat.push(took);
        slowest.push((
            took,
            format!(
                "{q:?} {:?} page {} of {}",
                raw.class,
                raw.page.unwrap_or("1"),
                page.total
            ),
        ));
        hits += page.total;
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        for (t, what) in slowest.iter().take(15) {
            eprintln!("{t:7.2} ms  {what}");
        }
    }

    let big = MediaPath::from_decoded("big")?;
    let mut list_lat = Vec::new();
    for _ in 0..200 {
        let raw = RawList {
            per_page: Some("1000"),
            ..Default::default()
        };
        let req = ListRequest::parse(big.clone(), &raw)?;
        let t = Instant::now();
        let page = rt.block_on(lib.list(req))?;
        list_lat.push(ms(t.elapsed()));
        assert_eq!(page.entries.len(), 1000.min(n));
    }
    list_lat.sort_by(|a, b| a.total_cmp(b));

    let summary = serde_json::json!({
        "files": full.files,
        "dirs": full.dirs,
        "tree_reused": reuse,
        "make_tree_ms": make_ms.round(),
        "full_scan_ms": full_ms.round(),
        "rescan_ms": rescan_ms.round(),
        "queries": queries,
        "mean_hits": hits / queries.max(1) as u64,
        "search_p50_ms": (percentile(&lat, 0.50) * 100.0).round() / 100.0,
        "search_p95_ms": (percentile(&lat, 0.95) * 100.0).round() / 100.0,
        "search_p99_ms": (percentile(&lat, 0.99) * 100.0).round() / 100.0,
        "list1000_p50_ms": (percentile(&list_lat, 0.50) * 100.0).round() / 100.0,
        "list1000_p95_ms": (percentile(&list_lat, 0.95) * 100.0).round() / 100.0,
    });
    println!("{summary}");
    Ok(())
}
