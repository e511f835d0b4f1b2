//! Embeds the web UI (`ui/`) in the binary: every file raw, gzip- and brotli-compressed (only
//! where that is smaller), under one version fingerprint. The front end has no build step of
//! its own (plain ES modules); this is the only processing its files get.
//!
//! The fingerprint is a hash of every file, so one version directory (`/ui/<v>/…`) holds the
//! whole front end: relative imports between modules resolve inside it, and any change gives
//! every file a new, long-cacheable URL. `index.html` names the version (`{{v}}`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    hot_code_first(&root);
    let ui = root.join("ui");
    println!("cargo:rerun-if-changed=ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this")).join("ui");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/ui");

    let mut files = Vec::new();
    walk(&ui, &ui, &mut files);
    files.sort();

    let mut hasher = Sha256::new();
    for rel in &files {
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(ui.join(rel)).expect("read ui file"));
        hasher.update([0]);
    }
    let version: String = hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();

    let mut code = String::new();
    writeln!(code, "pub const VERSION: &str = {version:?};").unwrap();
    writeln!(code, "pub static ASSETS: &[Asset] = &[").unwrap();
    let mut index = None;
    for rel in &files {
        let Some(content_type) = content_type(rel) else {
            // Licences and notes beside the vendored code are for people, not browsers.
            continue;
        };
        let mut bytes = std::fs::read(ui.join(rel)).expect("read ui file");
        if rel == "index.html" {
            let text = String::from_utf8(bytes).expect("index.html is UTF-8");
            bytes = text.replace("{{v}}", &version).into_bytes();
        }
        let entry = emit(&out, rel, content_type, &bytes);
        if rel == "index.html" {
            index = Some(entry);
        } else {
            code.push_str(&entry);
        }
    }
    writeln!(code, "];").unwrap();
    let index = index.expect("ui/index.html exists");
    writeln!(
        code,
        "pub static INDEX: Asset = {};",
        index.trim_end_matches(",\n")
    )
    .unwrap();
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

fn walk(base: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read ui dir") {
        let entry = entry.expect("read ui dir entry");
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(base, &path, files);
        } else {
            let rel = path.strip_prefix(base).expect("under ui/");
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn content_type(rel: &str) -> Option<&'static str> {
    let ext = rel.rsplit('.').next().unwrap_or("");
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "" | "md" | "txt" => return None,
        _ if rel.contains("LICENSE") => return None,
        other => panic!("ui/{rel}: no content type known for .{other}; add it to build.rs"),
    })
}

/// Writes the file's representations to OUT_DIR and returns its `Asset { … },` literal.
fn emit(out: &Path, rel: &str, content_type: &str, bytes: &[u8]) -> String {
    let flat = rel.replace('/', "__");
    let raw_path = out.join(&flat);
    std::fs::write(&raw_path, bytes).expect("write raw asset");
    let tag: String = Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 11, 22);
        w.write_all(bytes).expect("brotli");
    }
    let variant = |data: &[u8], suffix: &str| -> String {
        if data.len() + 32 >= bytes.len() {
            return "None".to_string();
        }
        let p = out.join(format!("{flat}.{suffix}"));
        std::fs::write(&p, data).expect("write compressed asset");
        format!("Some(include_bytes!({:?}))", p.display().to_string())
    };
    let gzip = variant(&gz, "gz");
    // Where gzip pays, the raw bytes are not embedded: the server inflates the gzip form for
    // a client that takes no compression (`http::ui::Asset::plain`), so check it inflates
    // back to these bytes, as that code reads it (fixed 10-byte header, 8-byte trailer).
    let raw = if gzip == "None" {
        format!("Some(include_bytes!({:?}))", raw_path.display().to_string())
    } else {
        let back = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8])
            .expect("gzip body inflates");
        assert!(back == bytes, "ui/{rel}: gzip form does not inflate back");
        "None".to_string()
    };
    format!(
        "Asset {{ path: {rel:?}, content_type: {content_type:?}, tag: {tag:?}, raw: {raw}, gzip: {gzip}, brotli: {} }},\n",
        variant(&br, "br"),
    )
}

/// Release builds for x86-64 Linux link the functions in `link/hot-symbols.txt` (what start-up,
/// serving a file and idling run: `scripts/hot-symbols.sh`) first and together, so an idle
/// service keeps about 2 MiB of its code resident rather than 6 (the kernel maps code around
/// every touched page). Only where rustc links with its own lld (rustup's toolchains from 1.90
/// on, unless told otherwise): GNU ld has no such option. `STREAMHUB_NO_SYMBOL_ORDER` turns it
/// off. A stale name is ignored, so an out-of-date list costs memory, never a build.
fn hot_code_first(root: &Path) {
    println!("cargo:rerun-if-changed=link/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=STREAMHUB_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let list = root.join("link/hot-symbols.txt");
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || std::env::var_os("STREAMHUB_NO_SYMBOL_ORDER").is_some()
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
        || !list.exists()
        || !rustc_links_with_lld()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// rustc 1.90 or later with its self-contained lld next to it.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let run = |args: &[&str]| {
        std::process::Command::new(&rustc)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let minor = run(&["--version"]).and_then(|v| {
        let version = v.split_whitespace().nth(1)?.to_string();
        let mut parts = version.split('.');
        (parts.next()? == "1").then_some(())?;
        parts.next()?.parse::<u32>().ok()
    });
    let lld = run(&["--print", "sysroot"]).is_some_and(|root| {
        Path::new(&root)
            .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
            .exists()
    });
    minor.is_some_and(|m| m >= 90) && lld
}
