//! Search and listing of current notes: FTS5 over title, body and tags of the winning,
//! non-deleted revision of each note, ranked by bm25 with a highlighted snippet; filters by
//! tag, author and visibility; pages. Free text from users is turned into a safe FTS5 query
//! by [`fts_query`] (every word quoted, `word*` kept as a prefix query), so no input can make
//! the query fail to parse.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::hlc::Hlc;
use super::model::Visibility;
use super::read::{parse_tags, parse_visibility, to_u32, to_u64};
use super::snippet::{self, Term};
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
/// A query word is "common" when it is in this many of the newest `PROBE_WINDOW` notes.
const PROBE_WINDOW: i64 = 1000;
const COMMON_IN_WINDOW: i64 = 250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Free text; empty lists notes, newest change first.
    pub q: String,
    /// Every tag must be present.
    pub tags: Vec<String>,
    /// Notes whose current revision this user (name) wrote: the `author` field.
    pub author: Option<String>,
    /// Notes this user (name) wrote any revision of that the viewer may see.
    pub contributor: Option<String>,
    /// Notes owned by this local user (name): the `owner` field.
    pub owner: Option<String>,
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
            contributor: None,
            owner: None,
            visibility: None,
            page: 1,
            per_page: 20,
        }
    }
}

/// A piece of a snippet; `hit` pieces matched the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub text: String,
    pub hit: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: String,
    pub rev: String,
    pub title: String,
    pub tags: Vec<String>,
    pub visibility: Visibility,
    pub author: String,
    /// The local user who owns it; `None` for notes from another node.
    pub owner: Option<String>,
    pub updated: Hlc,
    pub changed_at: i64,
    /// Number of unresolved conflicting leaves.
    pub conflicts: i64,
    /// From the body, with the matching words marked (search only).
    pub snippet: Option<Vec<Fragment>>,
    /// bm25, lower is better (search only).
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    pub page: u32,
    pub per_page: u32,
    pub has_more: bool,
}

/// The searchable words of free text: each whitespace-separated word, a trailing `*` making
/// it a prefix; words with no letter or digit are dropped (they could match nothing).
pub fn parse_terms(input: &str) -> Vec<Term> {
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
        terms.push(Term::new(word, prefix));
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

fn fts_term(t: &Term) -> String {
    let quoted = format!("\"{}\"", t.text.replace('"', "\"\""));
    if t.prefix {
        quoted + "*"
    } else {
        quoted
    }
}

/// Turns free text into an FTS5 query that always parses: each word becomes a quoted string
/// (`"` doubled), a trailing `*` stays a prefix query, and the words are ANDed. `None` when
/// nothing searchable is left.
pub fn fts_query(input: &str) -> Option<String> {
    let terms = parse_terms(input);
    (!terms.is_empty()).then(|| terms.iter().map(fts_term).collect::<Vec<_>>().join(" "))
}

/// Whether a query has a word in a large share of the notes. bm25 computes each word's
/// inverse document frequency by walking the word's whole posting list, on every query: for
/// a word in most of 100k notes that walk is most of the query's time, and the weight it
/// yields is about zero anyway. Such queries are ranked by `rank_common` instead. Decided by
/// counting matches among the newest notes (a bounded read). A prefix longer than the prefix
/// index (3 characters) is merged from every word it covers, so probing it would double that
/// cost; those queries take the cheap ranking too.
fn has_common_term(conn: &Connection, terms: &[Term]) -> Result<bool, NoteError> {
    if terms.iter().any(|t| t.prefix && t.text.chars().count() > 3) {
        return Ok(true);
    }
    let newest: i64 =
        conn.query_row("SELECT coalesce(max(nid), 0) FROM notes", [], |r| r.get(0))?;
    let mut st = conn
        .prepare_cached("SELECT count(*) FROM notes_fts WHERE notes_fts MATCH ?1 AND rowid > ?2")?;
    for t in terms {
        let n: i64 = st.query_row(rusqlite::params![fts_term(t), newest - PROBE_WINDOW], |r| {
            r.get(0)
        })?;
        if n >= COMMON_IN_WINDOW {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Ranking for queries with a common word: among the newest candidates, notes with the words
/// in the title (weight 10) and tags (5) first, then the rest, newest first. Scores are
/// negative like bm25's: lower is better.
fn rank_common(candidates: Vec<(i64, String, String)>, terms: &[Term]) -> Vec<(i64, f64)> {
    let mut scored: Vec<(i64, f64)> = candidates
        .into_iter()
        .map(|(nid, title, tags)| {
            let s = 10 * snippet::hits(&title, terms) + 5 * snippet::hits(&tags, terms) + 1;
            (nid, -(s as f64))
        })
        .collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    scored
}

const COLUMNS: &str = "n.id, n.rev, n.title, n.tags, n.visibility, n.author, n.hlc_wall,
                       n.hlc_logical, n.hlc_node, n.changed_at, n.conflicts,
                       (SELECT name FROM users WHERE id = n.owner_id)";

type Row = (SearchHit, i64, Option<String>);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let hit = (|| -> Result<SearchHit, NoteError> {
        Ok(SearchHit {
            id: r.get(0)?,
            rev: r.get(1)?,
            title: r.get(2)?,
            tags: parse_tags(&r.get::<_, String>(3)?)?,
            visibility: parse_visibility(&r.get::<_, String>(4)?)?,
            author: r.get(5)?,
            updated: Hlc::new(to_u64(r.get(6)?), to_u32(r.get(7)?), r.get::<_, String>(8)?),
            changed_at: r.get(9)?,
            conflicts: r.get(10)?,
            owner: r.get(11)?,
            snippet: None,
            score: r.get(14)?,
        })
    })();
    let hit = hit.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok((hit, r.get(12)?, r.get(13)?))
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
        let terms = parse_terms(text);
        let empty = SearchPage {
            items: Vec::new(),
            page,
            per_page,
            has_more: false,
        };
        if !text.is_empty() && terms.is_empty() {
            return Ok(empty);
        }
        let fts =
            (!terms.is_empty()).then(|| terms.iter().map(fts_term).collect::<Vec<_>>().join(" "));
        let mut args: Vec<Value> = vec![
            viewer.map_or(Value::Null, Value::Integer),
            Value::Text(fts.clone().unwrap_or_default()),
        ];
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
            filters.push_str(&format!(" AND n.author = ?{} COLLATE NOCASE", args.len()));
        }
        if let Some(name) = &query.contributor {
            args.push(Value::Text(name.clone()));
            filters.push_str(&format!(
                " AND n.nid IN (SELECT note FROM note_revisions WHERE author = ?{} COLLATE NOCASE
                                AND (visibility = 'public' OR author_id = ?1))",
                args.len()
            ));
        }
        if let Some(owner) = &query.owner {
            args.push(Value::Text(owner.clone()));
            filters.push_str(&format!(
                " AND n.owner_id = (SELECT id FROM users WHERE name = ?{} COLLATE NOCASE)",
                args.len()
            ));
        }
        if let Some(v) = query.visibility {
            args.push(Value::Text(v.as_str().to_string()));
            filters.push_str(&format!(" AND n.visibility = ?{}", args.len()));
        }
        // One extra row tells whether there is a next page.
        let (take, skip) = (
            i64::from(per_page) + 1,
            i64::from(page - 1) * i64::from(per_page),
        );
        let common = fts.is_some() && has_common_term(conn, &terms)?;
        let rows: Vec<Row> = if common {
            // Candidates (newest matches the viewer may see), ranked here, then the page's rows.
            let sql = format!(
                "SELECT n.nid, n.title, n.tags
                 FROM (SELECT rowid AS rid FROM notes_fts WHERE notes_fts MATCH ?2
                       ORDER BY rowid DESC LIMIT {RANK_CANDIDATES}) c
                 JOIN notes n ON n.nid = c.rid
                 WHERE {filters}"
            );
            let mut st = conn.prepare_cached(&sql)?;
            let candidates = st
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<(i64, String, String)>>>()?;
            let ranked = rank_common(candidates, &terms);
            let mut st = conn.prepare_cached(&format!(
                "SELECT {COLUMNS}, n.nid, n.body, ?2 FROM notes n WHERE n.nid = ?1"
            ))?;
            let mut rows = Vec::new();
            for (nid, score) in ranked.into_iter().skip(skip as usize).take(take as usize) {
                let row = st.query_row(rusqlite::params![nid, score], read_row)?;
                rows.push(row);
            }
            rows
        } else {
            args.push(Value::Integer(take));
            args.push(Value::Integer(skip));
            let limit = format!(" LIMIT ?{} OFFSET ?{}", args.len() - 1, args.len());
            let sql = match fts {
                // The inner query picks the page's rows by bm25; the outer one reads their
                // columns (bodies only for the page, for its snippets).
                Some(_) => format!(
                    "SELECT {COLUMNS}, n.nid, n.body, h.score
                     FROM (SELECT n.nid AS nid, c.score AS score
                           FROM (SELECT rowid AS rid, bm25(notes_fts, 10.0, 1.0, 5.0) AS score
                                 FROM notes_fts WHERE notes_fts MATCH ?2
                                 ORDER BY rowid DESC LIMIT {RANK_CANDIDATES}) c
                           JOIN notes n ON n.nid = c.rid
                           WHERE {filters}
                           ORDER BY score, n.nid{limit}) h
                     JOIN notes n ON n.nid = h.nid
                     ORDER BY h.score, h.nid"
                ),
                None => format!(
                    "SELECT {COLUMNS}, n.nid, NULL, NULL FROM notes n
                     WHERE {filters} AND ?2 = ''
                     ORDER BY n.changed_at DESC, n.nid DESC{limit}"
                ),
            };
            let mut st = conn.prepare_cached(&sql)?;
            let rows = st
                .query_map(params_from_iter(args), read_row)?
                .collect::<rusqlite::Result<Vec<Row>>>()?;
            rows
        };
        let mut items: Vec<SearchHit> = rows
            .into_iter()
            .map(|(mut hit, _nid, body)| {
                if let (Some(body), false) = (body, terms.is_empty()) {
                    hit.snippet = Some(snippet::snippet(&body, &terms));
                }
                hit
            })
            .collect();
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
}
