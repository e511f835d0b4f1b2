//! Fuzzes `notes::markdown::render`: whatever the Markdown, no `<script`, no event-handler
//! attribute (`on…`), and no link or image URL whose scheme (as a browser reads it, judged here
//! independently of the module's own `safe_url`) is other than http, https or mailto.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::notes::markdown::render;

/// The scheme a browser reads from an attribute value as written.
fn scheme(value: &str) -> Option<String> {
    let decoded = value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let url: String = decoded
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let end = url.find([':', '/', '?', '#'])?;
    url[end..]
        .starts_with(':')
        .then(|| url[..end].to_ascii_lowercase())
}

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
