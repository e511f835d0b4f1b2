//! Search and listing of current notes: FTS5 over title, body and tags of the winning,
//! non-deleted revision of each note, ranked by bm25 with a highlighted snippet; filters by
//! tag, author and visibility; pages. Free text from users is turned into a safe FTS5 query
//! by [`fts_query`] (every word quoted, `word*` kept as a prefix query), so no input can make
//! the query fail to parse.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use super::hlc::Hlc;
use super::model::Visibility;
use super::read::{parse_tags, parse_visibility, to_u32, to_u64};
use super::store::NotesStore;
use super::NoteError;

pub const MAX_PER_PAGE: u32 = 100;
const MAX_PAGE: u32 = 10_000;
const MAX_TERMS: usize = 32;
const MAX_TAG_FILTERS: usize = 16;
/// Most matches bm25 ranks for one query: the newest ones (FTS5 walks a term's matches in
/// rowid order without scoring them). A word in a third of 100k notes would otherwise be
/// scored 30k times per query; past this many matches the answer is "the best of the newest
/// 1,500", which keeps p95 search latency flat as the notepad grows. Specific queries (the
/// usual case) match fewer notes and are ranked completely.
const RANK_CANDIDATES: u32 = 1500;
/// Snippet highlight markers (private-use characters), split into `Fragment`s before returning.
const HIT_START: char = '\u{E000}';
const HIT_END: char = '\u{E001}';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Free text; empty lists notes, newest change first.
    pub q: String,
    /// Every tag must be present.
    pub tags: Vec<String>,
    /// Notes this user (name) wrote a revision of.
    pub author: Option<String>,
    pub visibility: Option<Visibility>,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            q: String::new(),
            tags: Vec::new(),
            author: None,
            visibility: None,
            page: 1,
            per_page: 20,
        }
    }
}

/// A piece of a snippet; `hit` pieces matched the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub text: String,
    pub hit: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub rev: String,
    pub title: String,
    pub tags: Vec<String>,
    pub visibility: Visibility,
    pub author: String,
    pub updated: Hlc,
    pub changed_at: i64,
    /// Number of unresolved conflicting leaves.
    pub conflicts: i64,
    /// From the body, with the matching words marked (search only).
    pub snippet: Option<Vec<Fragment>>,
    /// bm25, lower is better (search only).
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    pub page: u32,
    pub per_page: u32,
    pub has_more: bool,
}

/// Turns free text into an FTS5 query that always parses: each whitespace-separated word
/// becomes a quoted string (`"` doubled), a trailing `*` stays a prefix query, words with no
/// letter or digit are dropped (they could match nothing), and the words are ANDed. `None`
/// when nothing searchable is left.
pub fn fts_query(input: &str) -> Option<String> {
    let mut terms = Vec::new();
    for word in input.split_whitespace() {
        let word: String = word.chars().filter(|c| !c.is_control()).collect();
        let (word, prefix) = match word.strip_suffix('*') {
            Some(w) => (w.trim_end_matches('*'), true),
            None => (word.as_str(), false),
        };
        if !word.chars().any(char::is_alphanumeric) {
            continue;
        }
        let quoted = format!("\"{}\"", word.replace('"', "\"\""));
        terms.push(if prefix { quoted + "*" } else { quoted });
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

impl NotesStore {
    /// Searches (or, with an empty `q`, lists) the current notes `viewer` may see. Read-only;
    /// call `record_search` to count it in analytics.
    pub fn search(
        &self,
        conn: &Connection,
        query: &SearchQuery,
        viewer: Option<i64>,
    ) -> Result<SearchPage, NoteError> {
        if query.tags.len() > MAX_TAG_FILTERS {
            return Err(NoteError::Invalid {
                field: "tag",
                reason: format!("at most {MAX_TAG_FILTERS} tag filters"),
            });
        }
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let page = query.page.clamp(1, MAX_PAGE);
        let text = query.q.trim();
        let fts = fts_query(text);
        if !text.is_empty() && fts.is_none() {
            return Ok(SearchPage {
                items: Vec::new(),
                page,
                per_page,
                has_more: false,
            });
        }
        let mut args: Vec<Value> = vec![viewer.map_or(Value::Null, Value::Integer)];
        if let Some(q) = &fts {
            args.push(Value::Text(HIT_START.to_string()));
            args.push(Value::Text(HIT_END.to_string()));
            args.push(Value::Text(q.clone()));
        }
        let mut filters =
            String::from("n.deleted = 0 AND (n.visibility = 'public' OR n.owner_id = ?1)");
        for tag in &query.tags {
            args.push(Value::Text(tag.trim().to_lowercase()));
            filters.push_str(&format!(
                " AND n.nid IN (SELECT note FROM note_tags WHERE tag = ?{})",
                args.len()
            ));
        }
        if let Some(author) = &query.author {
            args.push(Value::Text(author.clone()));
            filters.push_str(&format!(
                " AND n.nid IN (SELECT note FROM note_revisions WHERE author = ?{} COLLATE NOCASE
                                AND (visibility = 'public' OR author_id = ?1))",
                args.len()
            ));
        }
        if let Some(v) = query.visibility {
            args.push(Value::Text(v.as_str().to_string()));
            filters.push_str(&format!(" AND n.visibility = ?{}", args.len()));
        }
        // One extra row tells whether there is a next page.
        args.push(Value::Integer(i64::from(per_page) + 1));
        args.push(Value::Integer(i64::from(page - 1) * i64::from(per_page)));
        let limit = format!(" LIMIT ?{} OFFSET ?{}", args.len() - 1, args.len());
        let columns = "n.id, n.rev, n.title, n.tags, n.visibility, n.author, n.hlc_wall,
                       n.hlc_logical, n.hlc_node, n.changed_at, n.conflicts";
        let sql = match fts {
            // Ranking has to score every match, but the snippet (which re-reads the body) is
            // made only for the rows of this page: the inner query picks them by bm25, the
            // outer one decorates them.
            Some(_) => format!(
                "SELECT {columns}, snippet(notes_fts, 1, ?2, ?3, '…', 24), h.score
                 FROM (SELECT n.nid AS nid, c.score AS score
                       FROM (SELECT rowid AS rid, bm25(notes_fts, 10.0, 1.0, 5.0) AS score
                             FROM notes_fts WHERE notes_fts MATCH ?4
                             ORDER BY rowid DESC LIMIT {RANK_CANDIDATES}) c
                       JOIN notes n ON n.nid = c.rid
                       WHERE {filters}
                       ORDER BY score, n.nid{limit}) h
                 JOIN notes n ON n.nid = h.nid
                 JOIN notes_fts ON notes_fts.rowid = h.nid
                 WHERE notes_fts MATCH ?4
                 ORDER BY h.score, h.nid"
            ),
            None => format!(
                "SELECT {columns}, NULL, NULL FROM notes n WHERE {filters}
                 ORDER BY n.changed_at DESC, n.nid DESC{limit}"
            ),
        };

        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(params_from_iter(args), |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ),
                (
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ),
                (
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                ),
                (r.get::<_, i64>(9)?, r.get::<_, i64>(10)?),
                (
                    r.get::<_, Option<String>>(11)?,
                    r.get::<_, Option<f64>>(12)?,
                ),
            ))
        })?;
        let mut items = Vec::new();
        for row in rows {
            let (
                (id, rev, title),
                (tags, vis, author),
                (wall, logical, node),
                (changed_at, conflicts),
                (snippet, score),
            ) = row?;
            items.push(SearchHit {
                id,
                rev,
                title,
                tags: parse_tags(&tags)?,
                visibility: parse_visibility(&vis)?,
                author,
                updated: Hlc::new(to_u64(wall), to_u32(logical), node),
                changed_at,
                conflicts,
                snippet: snippet.map(|s| fragments(&s)),
                score,
            });
        }
        let has_more = items.len() > per_page as usize;
        items.truncate(per_page as usize);
        Ok(SearchPage {
            items,
            page,
            per_page,
            has_more,
        })
    }
}

/// Splits a snippet with `HIT_START`/`HIT_END` markers into plain and highlighted pieces.
fn fragments(snippet: &str) -> Vec<Fragment> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut hit = false;
    for c in snippet.chars() {
        let toggle = match c {
            HIT_START => Some(true),
            HIT_END => Some(false),
            _ => None,
        };
        match toggle {
            Some(h) => {
                if !cur.is_empty() {
                    out.push(Fragment {
                        text: std::mem::take(&mut cur),
                        hit,
                    });
                }
                hit = h;
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(Fragment { text: cur, hit });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_becomes_a_quoted_query() {
        assert_eq!(fts_query("stre*").as_deref(), Some("\"stre\"*"));
        assert_eq!(
            fts_query(" rust  sqlite ").as_deref(),
            Some("\"rust\" \"sqlite\"")
        );
        assert_eq!(
            fts_query("say \"hi\"").as_deref(),
            Some("\"say\" \"\"\"hi\"\"\"")
        );
        assert_eq!(fts_query("title:x").as_deref(), Some("\"title:x\""));
        for junk in ["", "   ", "\"", "*", "( ) - ^", "\u{0}"] {
            assert_eq!(fts_query(junk), None, "{junk:?}");
        }
        assert_eq!(fts_query("AND OR (").as_deref(), Some("\"AND\" \"OR\""));
        assert_eq!(
            fts_query(&"w ".repeat(100)).map(|q| q.matches('"').count()),
            Some(64)
        );
    }

    #[test]
    fn snippet_markers_become_fragments() {
        let s = format!("a {HIT_START}b{HIT_END} c{HIT_START}d{HIT_END}");
        let f = fragments(&s);
        let got: Vec<(&str, bool)> = f.iter().map(|f| (f.text.as_str(), f.hit)).collect();
        assert_eq!(
            got,
            [("a ", false), ("b", true), (" c", false), ("d", true)]
        );
    }
}
