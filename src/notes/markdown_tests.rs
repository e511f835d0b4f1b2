//! `notes::markdown`: what Markdown renders to, and an XSS battery.

use super::*;

/// Every tag in the output: its name and attributes (values unescaped of nothing: they are
/// checked as written). Values are always double-quoted, so a `"` ends one.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let after = &rest[i + 1..];
        let end = after.find('>').expect("every tag is closed");
        let inner = after[..end].trim_end_matches('/').trim();
        let (name, mut attrs_text) = inner.split_once(' ').unwrap_or((inner, ""));
        let mut attrs = Vec::new();
        loop {
            attrs_text = attrs_text.trim_start();
            if attrs_text.is_empty() {
                break;
            }
            let name_end = attrs_text.find(['=', ' ']).unwrap_or(attrs_text.len());
            let attr = attrs_text[..name_end].to_string();
            attrs_text = &attrs_text[name_end..];
            if let Some(v) = attrs_text.strip_prefix("=\"") {
                let close = v.find('"').expect("closed value");
                attrs.push((attr, v[..close].to_string()));
                attrs_text = &v[close + 1..];
            } else {
                attrs.push((attr, String::new()));
            }
        }
        out.push((name.to_string(), attrs));
        rest = &after[end + 1..];
    }
    out
}

// The browser's reading of a URL, written independently of `safe_url` (shared with the fuzz
// target, which cannot see test modules).
#[path = "markdown_oracle.rs"]
mod oracle;
use oracle::browser_scheme;

/// Tags and the attributes each may carry.
const ALLOWED: &[(&str, &[&str])] = &[
    ("p", &[]),
    ("h1", &[]),
    ("h2", &[]),
    ("h3", &[]),
    ("h4", &[]),
    ("h5", &[]),
    ("h6", &[]),
    ("blockquote", &[]),
    ("pre", &[]),
    ("code", &["class"]),
    ("ol", &["start"]),
    ("ul", &[]),
    ("li", &[]),
    ("table", &[]),
    ("thead", &[]),
    ("tbody", &[]),
    ("tr", &[]),
    ("th", &["align"]),
    ("td", &["align"]),
    ("em", &[]),
    ("strong", &[]),
    ("del", &[]),
    ("sup", &[]),
    ("sub", &[]),
    ("a", &["href", "title", "rel"]),
    ("img", &["src", "alt", "title"]),
    ("br", &[]),
    ("hr", &[]),
    ("input", &["type", "disabled", "checked"]),
];

/// The output's markup is only what the module allows: known tags with known attributes,
/// URLs with allowed schemes, `rel` on every link.
fn assert_safe(md: &str) -> String {
    let html = render(md);
    for (tag, attrs) in tags(&html) {
        let closing = tag.starts_with('/');
        let name = tag.trim_start_matches('/');
        let allowed = ALLOWED
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("tag <{name}> from {md:?}: {html}"))
            .1;
        for (attr, value) in &attrs {
            assert!(
                allowed.contains(&attr.as_str()),
                "<{name} {attr}> from {md:?}: {html}"
            );
            if attr == "href" || attr == "src" {
                let scheme = browser_scheme(value);
                assert!(
                    scheme.is_none_or(|s| ["http", "https", "mailto"].contains(&s.as_str())),
                    "unsafe {attr}={value} from {md:?}: {html}"
                );
            }
            if attr == "class" {
                assert!(value.starts_with("language-"), "{value}");
            }
        }
        if name == "a" && !closing {
            assert!(
                attrs
                    .iter()
                    .any(|(a, v)| a == "rel" && v == "noopener noreferrer nofollow"),
                "{html}"
            );
        }
    }
    html
}

#[test]
fn commonmark_and_the_extensions() {
    assert_eq!(
        render("# Title\n\nsome *em* and **strong**"),
        "<h1>Title</h1>\n<p>some <em>em</em> and <strong>strong</strong></p>\n"
    );
    assert_eq!(render("~~gone~~"), "<p><del>gone</del></p>\n");
    assert_eq!(
        render("- [x] done\n- [ ] todo\n"),
        "<ul>\n<li><input type=\"checkbox\" disabled checked /> done</li>\n<li><input type=\"checkbox\" disabled /> todo</li>\n</ul>\n"
    );
    assert_eq!(
        render("| a | b |\n|:--|--:|\n| 1 | 2 |\n"),
        "<table><thead><tr><th align=\"left\">a</th><th align=\"right\">b</th></tr></thead><tbody><tr><td align=\"left\">1</td><td align=\"right\">2</td></tr></tbody></table>\n"
    );
    assert_eq!(
        render("3. three\n4. four"),
        "<ol start=\"3\">\n<li>three</li>\n<li>four</li>\n</ol>\n"
    );
    assert_eq!(
        render("```rust\nfn main() {}\n```"),
        "<pre><code class=\"language-rust\">fn main() {}\n</code></pre>\n"
    );
    assert_eq!(
        render("[site](https://example.com \"t\")"),
        "<p><a href=\"https://example.com\" title=\"t\" rel=\"noopener noreferrer nofollow\">site</a></p>\n"
    );
    assert_eq!(
        render("![cat](/media/pics/cat.jpg)"),
        "<p><img src=\"/media/pics/cat.jpg\" alt=\"cat\" /></p>\n"
    );
    assert_eq!(render("a  \nb\n\n---"), "<p>a<br />\nb</p>\n<hr />\n");
    for ok in [
        "http://x",
        "HTTPS://x",
        "mailto:a@b",
        "/abs",
        "rel/path",
        "#frag",
        "?q=1",
        "//host/p",
        "",
    ] {
        assert!(safe_url(ok).is_some(), "{ok}");
    }
}

#[test]
fn raw_html_is_text() {
    assert_eq!(
        assert_safe("<script>alert(1)</script>"),
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    );
    assert_eq!(
        assert_safe("hi <img src=x onerror=alert(1)> there"),
        "<p>hi &lt;img src=x onerror=alert(1)&gt; there</p>\n"
    );
    assert_safe("<div onclick=\"alert(1)\">\n\n*x*\n\n</div>");
    assert_safe("<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>");
    assert_safe("<svg><script>alert(1)</script></svg>");
    assert_safe("<a href=\"javascript:alert(1)\">x</a>");
    assert_safe("<!-- comment --><style>*{}</style>");
    assert_eq!(
        assert_safe("`<b>code</b>`"),
        "<p><code>&lt;b&gt;code&lt;/b&gt;</code></p>\n"
    );
    assert_eq!(
        assert_safe("```\n<script>x</script>\n```"),
        "<pre><code>&lt;script&gt;x&lt;/script&gt;\n</code></pre>\n"
    );
}

#[test]
fn unsafe_urls_leave_only_text() {
    for md in [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x]( javascript:alert(1))",
        "[x](<java\tscript:alert(1)>)",
        "[x](java&#09;script:alert(1))",
        "[x](java&#x0A;script:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](javascript&colon;alert(1))",
        "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](file:///etc/passwd)",
        "[x][r]\n\n[r]: javascript:alert(1)",
        "[x][R]\n\n[r]: JAVASCRIPT:alert(1) \"title\"",
    ] {
        let html = assert_safe(md);
        assert_eq!(html, "<p>x</p>\n", "{md}");
    }
    // A control character: not a link destination at all, so it stays text.
    assert!(!assert_safe("[x](\u{1}javascript:alert(1))").contains("<a"));
    assert_eq!(
        assert_safe("![alt *text*](javascript:alert(1))"),
        "<p>alt text</p>\n"
    );
    assert_eq!(
        assert_safe("![a\"b](data:image/png;base64,AAAA)"),
        "<p>a&quot;b</p>\n"
    );
    // Autolinks: allowed schemes become links, others stay text.
    assert_eq!(
        assert_safe("<https://example.com/a?b=1&c=2>"),
        "<p><a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"noopener noreferrer nofollow\">https://example.com/a?b=1&amp;c=2</a></p>\n"
    );
    assert_eq!(
        assert_safe("<me@example.com>"),
        "<p><a href=\"mailto:me@example.com\" rel=\"noopener noreferrer nofollow\">me@example.com</a></p>\n"
    );
    assert_eq!(
        assert_safe("<javascript:alert(1)>"),
        "<p>javascript:alert(1)</p>\n"
    );
    // A reference link with an allowed URL works.
    assert!(
        assert_safe("[x][r]\n\n[r]: https://ok.example").contains("href=\"https://ok.example\"")
    );
}

#[test]
fn attributes_cannot_be_broken_out_of() {
    let html = assert_safe("[x](https://a.example/\"onmouseover=\"alert(1) \"t\\\"onclick=x\")");
    assert!(!html.contains("\" onmouseover"), "{html}");
    let html = assert_safe("![x\" onerror=\"alert(1)](/media/p.png)");
    assert!(
        html.contains("alt=\"x&quot; onerror=&quot;alert(1)\""),
        "{html}"
    );
    let html = assert_safe("```js\" onclick=\"x\nbody\n```");
    assert_eq!(html, "<pre><code>body\n</code></pre>\n");
    assert_safe("[x](https://a.example/ 'it''s')");
}

proptest::proptest! {
    #[test]
    fn any_text_renders_to_allowed_markup(s in "[ -~\\n\\t]{0,200}") {
        assert_safe(&s);
    }

    #[test]
    fn html_looking_text_stays_safe(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "<", ">", "script", "img", " src=", "onerror=", "javascript:", "[", "]", "(", ")",
            "!", "`", "\"", "'", "&#58;", "&#x3a;", "\n", "\n\n", "    ", "*", "|", "-", ":",
            "<a href=", "data:", "http://x", "\t", "&", ";",
        ]), 0..40)
    ) {
        assert_safe(&parts.concat());
    }
}

// Hostile bodies (all at the 1 MiB note limit) cost a few times their size, never a blow-up.
#[test]
fn deep_nesting_on_one_line_is_cut_to_plain_text() {
    let quotes = ">".repeat(1 << 20);
    let html = render(&quotes);
    assert!(
        html.matches("<blockquote>").count() <= MAX_LINE_MARKERS,
        "{}",
        &html[..200]
    );
    assert!(html.len() <= 8 * quotes.len(), "{}", html.len());

    let lists = "1. ".repeat(349_525);
    let html = render(&lists);
    assert!(html.matches("<ol").count() <= MAX_LINE_MARKERS);
    assert!(html.len() <= 8 * lists.len());

    let bullets = "- ".repeat(1 << 19);
    let html = render(&bullets);
    assert!(html.matches("<ul").count() <= MAX_LINE_MARKERS);
}

#[test]
fn nesting_past_the_limit_or_an_output_blow_up_falls_back_to_text() {
    // Nested by indentation, one level a line: deeper than a page needs.
    let mut deep = String::new();
    for i in 0..200 {
        deep.push_str(&" ".repeat(2 * i));
        deep.push_str("- x\n");
    }
    let html = render(&deep);
    assert!(
        html.starts_with("<pre class=\"too-complex\">"),
        "{}",
        &html[..80]
    );
    assert!(html.contains("- x"));

    let emph = "*_".repeat(1 << 19);
    let html = render(&emph);
    assert!(html.len() <= 8 * emph.len() + 64 * 1024);

    let links = "[a](b)".repeat(174_762);
    let html = render(&links);
    assert!(html.len() <= 8 * links.len() + 64 * 1024);
    // Either way it is still safe HTML.
    assert!(!html.contains("<script"));
}

#[test]
fn ordinary_notes_are_untouched_by_the_limits() {
    let md = "> quote\n> > nested\n\n- a\n  - b\n    1. c\n\n**bold** and *em*\n";
    let html = render(md);
    assert_eq!(html.matches("<blockquote>").count(), 2);
    assert!(html.contains("<strong>bold</strong>") && html.contains("<ol>"));
    assert!(!html.contains("too-complex"));
    assert_eq!(limit_line_markers(md), md);
}

#[test]
fn images_load_only_the_boxs_own_pictures() {
    for ok in [
        "/media/pics/a.jpg",
        "/s/TOKEN/x.png",
        "/api/library/thumb?path=a.mp4",
    ] {
        let html = render(&format!("![p]({ok})"));
        assert!(html.contains("<img src="), "{ok}: {html}");
    }
    // Anything else would be fetched with every reader's login: a link instead.
    for no in [
        "/api/library/zip?path=/",
        "/api/notes/x/html?a=1",
        "api/library/zip?path=/",
        "/media/../api/library/zip",
        "/media/%2e%2e/api/library/zip",
        "/media/..%2fapi",
        "https://elsewhere.example/p.png",
        "pic.png",
    ] {
        let html = render(&format!("![p]({no})"));
        assert!(!html.contains("<img"), "{no}: {html}");
        assert!(
            html.contains("<a href=") && html.contains(">p</a>"),
            "{no}: {html}"
        );
    }
}
