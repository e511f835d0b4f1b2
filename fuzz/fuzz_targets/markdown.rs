//! Fuzzes `notes::markdown::render`: whatever the Markdown, no `<script`, no event-handler
//! attribute (`on…`), and no link or image URL whose scheme (as a browser reads it, judged here
//! independently of the module's own `safe_url`) is other than http, https or mailto.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::notes::markdown::render;

#[path = "../../src/notes/markdown_oracle.rs"]
mod oracle;
use oracle::browser_scheme as scheme;

fuzz_target!(|md: &str| {
    let html = render(md);
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    let mut rest = html.as_str();
    while let Some(i) = rest.find('<') {
        let tag = &rest[i..rest[i..].find('>').map_or(rest.len(), |e| i + e)];
        // Attribute names only (quoted values, e.g. alt text, may say anything).
        let mut names = String::new();
        let mut quoted = false;
        for c in tag.chars() {
            if c == '"' {
                quoted = !quoted;
            } else if !quoted {
                names.push(c.to_ascii_lowercase());
            }
        }
        assert!(!names.contains(" on"), "{tag}");
        for attr in ["href=\"", "src=\""] {
            if let Some(j) = tag.find(attr) {
                let url = &tag[j + attr.len()..];
                let url = &url[..url.find('"').unwrap_or(url.len())];
                let s = scheme(url);
                assert!(
                    s.is_none_or(|s| ["http", "https", "mailto"].contains(&s.as_str())),
                    "{tag}"
                );
            }
        }
        rest = &rest[i + 1..];
    }
});
