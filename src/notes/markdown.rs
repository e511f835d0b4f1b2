//! A note's Markdown as HTML that is safe to put into a page (the notepad's preview and
//! reading view). CommonMark plus tables, strikethrough and task lists (`pulldown-cmark`),
//! written out here rather than by the crate's HTML writer, so that every tag and attribute
//! that can appear is listed below.
//!
//! Invariant: the output holds only the tags written in [`render`] and only these
//! attributes: `href` and `title` on `<a>` (which always has
//! `rel="noopener noreferrer nofollow"`), `src`, `alt` and `title` on `<img>`, `start` on
//! `<ol>`, `class="language-…"` (letters, digits, `+-_.#`) on `<code>`, `align` on table
//! cells, `type`, `disabled`, `checked` on task-list checkboxes. Raw HTML, block or inline,
//! is shown as text. Link and image URLs must be `http:`, `https:`, `mailto:` or have no
//! scheme (a relative path, `#fragment`, `?query`); any other (`javascript:`, `data:`,
//! `vbscript:`, however spelled) leaves only the link's text (an image's alt text).

use pulldown_cmark::{Alignment, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Schemes a link or image may use (compared in lower case).
const ALLOWED_SCHEMES: &[&str] = &["http", "https", "mailto"];

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS
}

/// Escapes text for an element's content or a quoted attribute value.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// The URL to write into `href`/`src`, or None when it may not be used. Browsers drop tabs
/// and line breaks anywhere in a URL and controls and spaces around it, so the scheme is
/// judged on the URL with all of those removed, exactly as a browser would read it.
pub fn safe_url(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .trim_matches(|c: char| c.is_ascii_control() || c == ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    if cleaned.chars().any(|c| c.is_control()) {
        return None;
    }
    let end = cleaned.find([':', '/', '?', '#']);
    if let Some(i) = end.filter(|&i| cleaned[i..].starts_with(':')) {
        let scheme = cleaned[..i].to_ascii_lowercase();
        if !ALLOWED_SCHEMES.contains(&scheme.as_str()) {
            return None;
        }
    }
    Some(cleaned.replace(' ', "%20"))
}

/// Images shown in a note load with the reader's login, so only the box's own pictures may:
/// a path under `/media/` or `/s/`, or a thumbnail, with no way back up (`..`, `\\`,
/// encoded dots or slashes). Anything else (another API route, an outside address the page
/// policy would block anyway) is written as a link.
fn image_source_allowed(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let lower = url.to_ascii_lowercase();
    let clean = !url.contains('\\')
        && !lower.contains("%2e")
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !path.split('/').any(|seg| seg == ".." || seg == ".");
    clean
        && (path.starts_with("/media/") || path.starts_with("/s/") || path == "/api/library/thumb")
}

/// A fenced code block's language, if it is a plain word.
fn language(info: &str) -> Option<&str> {
    let lang = info.split_whitespace().next()?;
    let ok = lang.len() <= 32
        && lang
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-_.#".contains(&b));
    ok.then_some(lang)
}

struct Writer {
    out: String,
    /// For each open link: whether an `<a>` was written (an unsafe URL writes none).
    links: Vec<bool>,
    /// Inside an image: its alt text is being collected (depth, for images in alt text).
    image_depth: usize,
    /// Whether the current image's URL may be loaded as an image (`image_source_allowed`).
    image_src_ok: bool,
    alt: String,
    image: Option<(Option<String>, String)>,
    alignments: Vec<Alignment>,
    cell: usize,
    in_head: bool,
    body_open: bool,
}

impl Writer {
    fn text(&mut self, s: &str) {
        if self.image_depth > 0 {
            self.alt.push_str(s);
        } else {
            escape(&mut self.out, s);
        }
    }

    fn raw(&mut self, s: &str) {
        if self.image_depth == 0 {
            self.out.push_str(s);
        }
    }

    fn cell_open(&mut self) {
        let tag = if self.in_head { "<th" } else { "<td" };
        self.out.push_str(tag);
        match self.alignments.get(self.cell) {
            Some(Alignment::Left) => self.out.push_str(" align=\"left\""),
            Some(Alignment::Center) => self.out.push_str(" align=\"center\""),
            Some(Alignment::Right) => self.out.push_str(" align=\"right\""),
            _ => {}
        }
        self.out.push('>');
    }

    fn start(&mut self, tag: Tag<'_>) {
        if self.image_depth > 0 {
            if let Tag::Image { .. } = tag {
                self.image_depth += 1;
            }
            return;
        }
        match tag {
            Tag::Paragraph => self.out.push_str("<p>"),
            Tag::Heading { level, .. } => {
                self.out.push('<');
                self.out.push_str(&level.to_string());
                self.out.push('>');
            }
            Tag::BlockQuote(_) => self.out.push_str("<blockquote>\n"),
            Tag::CodeBlock(kind) => {
                self.out.push_str("<pre><code");
                if let CodeBlockKind::Fenced(info) = kind {
                    if let Some(lang) = language(&info) {
                        self.out.push_str(" class=\"language-");
                        escape(&mut self.out, lang);
                        self.out.push('"');
                    }
                }
                self.out.push('>');
            }
            // Raw HTML is shown as the text it is.
            Tag::HtmlBlock => self.out.push_str("<p>"),
            Tag::List(Some(1)) => self.out.push_str("<ol>\n"),
            Tag::List(Some(start)) => {
                self.out.push_str(&format!("<ol start=\"{start}\">\n"));
            }
            Tag::List(None) => self.out.push_str("<ul>\n"),
            Tag::Item => self.out.push_str("<li>"),
            Tag::Table(alignments) => {
                self.alignments = alignments;
                self.body_open = false;
                self.out.push_str("<table>");
            }
            Tag::TableHead => {
                self.in_head = true;
                self.cell = 0;
                self.out.push_str("<thead><tr>");
            }
            Tag::TableRow => {
                if !self.body_open {
                    self.body_open = true;
                    self.out.push_str("<tbody>");
                }
                self.cell = 0;
                self.out.push_str("<tr>");
            }
            Tag::TableCell => self.cell_open(),
            Tag::Emphasis => self.out.push_str("<em>"),
            Tag::Strong => self.out.push_str("<strong>"),
            Tag::Strikethrough => self.out.push_str("<del>"),
            Tag::Superscript => self.out.push_str("<sup>"),
            Tag::Subscript => self.out.push_str("<sub>"),
            Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            } => {
                let url = if link_type == LinkType::Email {
                    safe_url(&format!("mailto:{dest_url}"))
                } else {
                    safe_url(&dest_url)
                };
                self.links.push(url.is_some());
                if let Some(url) = url {
                    self.open_link(&url, &title);
                }
            }
            Tag::Image {
                dest_url, title, ..
            } => {
                self.image_depth = 1;
                self.alt.clear();
                self.image = Some((safe_url(&dest_url), title.to_string()));
                self.image_src_ok = self
                    .image
                    .as_ref()
                    .and_then(|(u, _)| u.as_deref())
                    .is_some_and(image_source_allowed);
            }
            // Not enabled (footnotes, definition lists, metadata): their text still shows.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        if self.image_depth > 0 {
            if tag == TagEnd::Image {
                self.image_depth -= 1;
                if self.image_depth == 0 {
                    self.close_image();
                }
            }
            return;
        }
        let s = match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => "</p>\n",
            TagEnd::Heading(level) => {
                self.out.push_str("</");
                self.out.push_str(&level.to_string());
                self.out.push_str(">\n");
                return;
            }
            TagEnd::BlockQuote(_) => "</blockquote>\n",
            TagEnd::CodeBlock => "</code></pre>\n",
            TagEnd::List(true) => "</ol>\n",
            TagEnd::List(false) => "</ul>\n",
            TagEnd::Item => "</li>\n",
            TagEnd::Table => {
                if self.body_open {
                    self.out.push_str("</tbody>");
                }
                "</table>\n"
            }
            TagEnd::TableHead => {
                self.in_head = false;
                "</tr></thead>"
            }
            TagEnd::TableRow => "</tr>",
            TagEnd::TableCell => {
                self.cell += 1;
                if self.in_head {
                    "</th>"
                } else {
                    "</td>"
                }
            }
            TagEnd::Emphasis => "</em>",
            TagEnd::Strong => "</strong>",
            TagEnd::Strikethrough => "</del>",
            TagEnd::Superscript => "</sup>",
            TagEnd::Subscript => "</sub>",
            TagEnd::Link => {
                if self.links.pop().unwrap_or(false) {
                    "</a>"
                } else {
                    ""
                }
            }
            TagEnd::Image
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => "",
        };
        self.out.push_str(s);
    }

    /// `<a href=… title=… rel=…>` for a URL `safe_url` has passed.
    fn open_link(&mut self, url: &str, title: &str) {
        self.out.push_str("<a href=\"");
        escape(&mut self.out, url);
        self.out.push('"');
        if !title.is_empty() {
            self.out.push_str(" title=\"");
            escape(&mut self.out, title);
            self.out.push('"');
        }
        self.out.push_str(" rel=\"noopener noreferrer nofollow\">");
    }

    fn close_image(&mut self) {
        let alt = std::mem::take(&mut self.alt);
        let allowed = std::mem::take(&mut self.image_src_ok);
        match self.image.take() {
            // Not one of the box's own pictures: a link to it instead of a request every
            // reader's browser would make (with their login) when the note is shown.
            Some((Some(src), title)) if !allowed => {
                self.open_link(&src, &title);
                escape(&mut self.out, if alt.is_empty() { &src } else { &alt });
                self.out.push_str("</a>");
            }
            Some((Some(src), title)) => {
                self.out.push_str("<img src=\"");
                escape(&mut self.out, &src);
                self.out.push_str("\" alt=\"");
                escape(&mut self.out, &alt);
                self.out.push('"');
                if !title.is_empty() {
                    self.out.push_str(" title=\"");
                    escape(&mut self.out, &title);
                    self.out.push('"');
                }
                self.out.push_str(" />");
            }
            // An image whose URL may not be used: its alt text only.
            _ => escape(&mut self.out, &alt),
        }
    }
}

/// Markdown as sanitised HTML (see the module's invariant).
/// Nesting a page needs is far below this; deeper is an attack on the renderer's time and
/// memory (a 1 MiB body of `>` is a million nested quotes).
const MAX_DEPTH: usize = 48;
/// Container markers (`>`, list markers) honoured at the start of one line.
const MAX_LINE_MARKERS: usize = 32;

/// The note as sanitised HTML. Bounded: at most `MAX_DEPTH` nested elements and about eight
/// times the input in output; past either the note is shown as plain text instead (escaped,
/// in `<pre>`), so a hostile body costs at most a few times its size, never a blow-up.
pub fn render(markdown: &str) -> String {
    let limited = limit_line_markers(markdown);
    let budget = markdown.len().saturating_mul(8).saturating_add(64 * 1024);
    render_within(&limited, budget).unwrap_or_else(|| {
        let mut out = String::with_capacity(markdown.len() + 32);
        out.push_str("<pre class=\"too-complex\">");
        escape(&mut out, markdown);
        out.push_str("</pre>\n");
        out
    })
}

/// Escapes (`\`) the container markers of a line past the first `MAX_LINE_MARKERS`, so one
/// line cannot open thousands of nested quotes or lists.
fn limit_line_markers(markdown: &str) -> std::borrow::Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut done = 0;
    for line in markdown.split_inclusive('\n') {
        let b = line.as_bytes();
        let (mut i, mut markers, mut cut) = (0, 0, None);
        while i < b.len() {
            match b[i] {
                b' ' | b'\t' => i += 1,
                b'>' => {
                    markers += 1;
                    if markers > MAX_LINE_MARKERS {
                        cut = Some(i);
                        break;
                    }
                    i += 1;
                }
                b'-' | b'+' | b'*' if matches!(b.get(i + 1), Some(b' ' | b'\t')) => {
                    markers += 1;
                    if markers > MAX_LINE_MARKERS {
                        cut = Some(i);
                        break;
                    }
                    i += 2;
                }
                b'0'..=b'9' => {
                    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let d = i + digits;
                    if digits <= 9
                        && matches!(b.get(d), Some(b'.' | b')'))
                        && matches!(b.get(d + 1), Some(b' ' | b'\t'))
                    {
                        markers += 1;
                        if markers > MAX_LINE_MARKERS {
                            cut = Some(d);
                            break;
                        }
                        i = d + 2;
                    } else {
                        break;
                    }
                }
                _ => break,
            }
        }
        if let Some(at) = cut {
            let o = out.get_or_insert_with(|| {
                let mut s = String::with_capacity(markdown.len() + 16);
                s.push_str(&markdown[..done]);
                s
            });
            o.push_str(&line[..at]);
            o.push('\\');
            o.push_str(&line[at..]);
        } else if let Some(o) = out.as_mut() {
            o.push_str(line);
        }
        done += line.len();
    }
    match out {
        Some(s) => std::borrow::Cow::Owned(s),
        None => std::borrow::Cow::Borrowed(markdown),
    }
}

/// The HTML, or `None` when it nests deeper than `MAX_DEPTH` or outgrows `budget` bytes.
fn render_within(markdown: &str, budget: usize) -> Option<String> {
    let mut depth = 0usize;
    let mut w = Writer {
        out: String::with_capacity(markdown.len() + markdown.len() / 4),
        links: Vec::new(),
        image_depth: 0,
        image_src_ok: false,
        alt: String::new(),
        image: None,
        alignments: Vec::new(),
        cell: 0,
        in_head: false,
        body_open: false,
    };
    for event in Parser::new_ext(markdown, options()) {
        if w.out.len() > budget {
            return None;
        }
        match event {
            Event::Start(tag) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                w.start(tag)
            }
            Event::End(tag) => {
                depth = depth.saturating_sub(1);
                w.end(tag)
            }
            Event::Text(t) | Event::InlineMath(t) | Event::DisplayMath(t) => w.text(&t),
            Event::Html(t) | Event::InlineHtml(t) => w.text(&t),
            Event::Code(t) => {
                if w.image_depth > 0 {
                    w.alt.push_str(&t);
                } else {
                    w.out.push_str("<code>");
                    escape(&mut w.out, &t);
                    w.out.push_str("</code>");
                }
            }
            Event::FootnoteReference(t) => {
                w.text("[^");
                w.text(&t);
                w.text("]");
            }
            Event::SoftBreak => w.text("\n"),
            Event::HardBreak => w.raw("<br />\n"),
            Event::Rule => w.raw("<hr />\n"),
            Event::TaskListMarker(checked) => w.raw(if checked {
                "<input type=\"checkbox\" disabled checked /> "
            } else {
                "<input type=\"checkbox\" disabled /> "
            }),
        }
    }
    (w.out.len() <= budget).then_some(w.out)
}

#[cfg(test)]
#[path = "markdown_tests.rs"]
mod tests;
