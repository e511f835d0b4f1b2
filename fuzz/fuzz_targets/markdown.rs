//! Fuzzes `notes::markdown::render`: whatever the Markdown, no `<script`, no event-handler
//! attribute and no link or image URL with a scheme outside http, https and mailto.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::notes::markdown::{render, safe_url};

fuzz_target!(|md: &str| {
    let html = render(md);
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    let mut rest = lower.as_str();
    while let Some(i) = rest.find('<') {
        let tag = &rest[i..rest[i..].find('>').map_or(rest.len(), |e| i + e)];
        assert!(!tag.contains(" on"), "{tag}");
        for attr in ["href=\"", "src=\""] {
            if let Some(j) = tag.find(attr) {
                let url = &tag[j + attr.len()..];
                let url = &url[..url.find('"').unwrap_or(url.len())];
                assert!(safe_url(url).is_some(), "{tag}");
            }
        }
        rest = &rest[i + 1..];
    }
});
