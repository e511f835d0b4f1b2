//! Query terms matched against note text in Rust, the way the FTS5 tokenizer
//! (`unicode61 remove_diacritics 2`) sees words: runs of letters and digits, lower-cased,
//! accents removed. Used for highlighted snippets of the rows of one page and for ranking
//! queries whose words are in most notes (see `search`), so no second FTS5 pass over
//! possibly huge posting lists is needed.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::search::Fragment;

/// One word of a query: `prefix` for `word*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// As typed (for the FTS5 query).
    pub text: String,
    /// Folded like the index folds words.
    pub folded: String,
    pub prefix: bool,
}

/// Longest body prefix scanned for a snippet: a hit further in gets the body's start.
const SNIPPET_SCAN: usize = 256 * 1024;
/// Words in a snippet.
const SNIPPET_WORDS: usize = 24;

pub fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Term {
    pub fn new(text: &str, prefix: bool) -> Term {
        Term {
            text: text.to_string(),
            folded: fold(text),
            prefix,
        }
    }

    fn matches(&self, folded_word: &str) -> bool {
        if self.prefix {
            folded_word.starts_with(&self.folded)
        } else {
            folded_word == self.folded
        }
    }
}

/// Byte spans of the words of `text` (letters and digits; the tokenizer's notion).
fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut iter = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let start = loop {
            let (i, c) = iter.next()?;
            if c.is_alphanumeric() {
                break i;
            }
        };
        let mut end = text.len();
        while let Some(&(i, c)) = iter.peek() {
            if !c.is_alphanumeric() {
                end = i;
                break;
            }
            iter.next();
        }
        Some((start, end))
    })
}

/// How many words of `text` match any term.
pub fn hits(text: &str, terms: &[Term]) -> usize {
    words(text)
        .filter(|&(s, e)| {
            let w = fold(&text[s..e]);
            terms.iter().any(|t| t.matches(&w))
        })
        .count()
}

/// A window of the body around its first hit, with the matching words marked.
pub fn snippet(body: &str, terms: &[Term]) -> Vec<Fragment> {
    let mut cut = body.len().min(SNIPPET_SCAN);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let scanned = &body[..cut];
    let spans: Vec<(usize, usize, bool)> = words(scanned)
        .map(|(s, e)| {
            let w = fold(&scanned[s..e]);
            (s, e, terms.iter().any(|t| t.matches(&w)))
        })
        .collect();
    if spans.is_empty() {
        return Vec::new();
    }
    let first_hit = spans.iter().position(|s| s.2).unwrap_or(0);
    // The hit a quarter into the window: some context before it, more after.
    let from = first_hit.saturating_sub(SNIPPET_WORDS / 4);
    let to = (from + SNIPPET_WORDS).min(spans.len());
    let mut out: Vec<Fragment> = Vec::new();
    let mut push = |text: &str, hit: bool| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.hit == hit => last.text.push_str(text),
            _ => out.push(Fragment {
                text: text.to_string(),
                hit,
            }),
        }
    };
    if from > 0 {
        push("…", false);
    }
    let mut pos = spans[from].0;
    for &(s, e, hit) in &spans[from..to] {
        push(&scanned[pos..s], false);
        push(&scanned[s..e], hit);
        pos = e;
    }
    if to < spans.len() || cut < body.len() {
        push("…", false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(f: &[Fragment]) -> Vec<&str> {
        f.iter()
            .filter(|f| f.hit)
            .map(|f| f.text.as_str())
            .collect()
    }

    #[test]
    fn folds_like_the_tokenizer() {
        assert_eq!(fold("Éléphant"), "elephant");
        assert_eq!(fold("STRASSE"), "strasse");
        let t = [Term::new("elep", true), Term::new("zoo", false)];
        assert_eq!(hits("The Éléphant, the zoo; zoos!", &t), 2);
    }

    #[test]
    fn snippet_around_the_first_hit() {
        let body = (0..100)
            .map(|i| {
                if i == 50 {
                    "Streaming".to_string()
                } else {
                    format!("w{i}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let s = snippet(&body, &[Term::new("stream", true)]);
        assert_eq!(marked(&s), ["Streaming"]);
        let text: String = s.iter().map(|f| f.text.as_str()).collect();
        assert!(text.starts_with("…w44 ") && text.ends_with("…"), "{text}");
        assert!(text.contains("w49 Streaming w51"), "{text}");
    }

    #[test]
    fn snippet_without_a_hit_is_the_start_and_never_splits_characters() {
        let s = snippet("日本語 テキスト only", &[Term::new("x", false)]);
        let text: String = s.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(text, "日本語 テキスト only");
        assert!(snippet("", &[Term::new("x", false)]).is_empty());
        let long = "é".repeat(SNIPPET_SCAN); // multi-byte across the scan limit
        assert!(!snippet(&long, &[Term::new("x", false)]).is_empty());
    }
}
