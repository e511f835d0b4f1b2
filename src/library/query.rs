//! Reads from the index: a folder's children, name search (FTS5 trigram: substring and
//! case-insensitive; LIKE for queries shorter than a trigram), one item. Every user-supplied
//! value is a bound parameter; the only SQL assembled from words is the fixed ORDER BY
//! chosen from `SortKey`.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};

use super::index::subtree_bounds;
use super::model::{Item, Kind, ListRequest, MediaClass, Page, SortKey};
use super::LibraryError;

pub(super) const COLS: &str = "m.path, m.name, m.kind, m.size, m.mtime_ns, m.content_type, m.media,
    m.duration, m.video_codec, m.audio_codec, m.width, m.height, m.probed_at, m.probe_error,
    m.thumb, m.thumb_state, m.owner";
/// How many columns `COLS` selects (`item_of` reads them by index; a numbered search's own
/// columns come after them).
pub(super) const COLS_N: usize = 17;

fn item_of(r: &Row<'_>) -> rusqlite::Result<Item> {
    let kind: String = r.get(2)?;
    let class: String = r.get(6)?;
    Ok(Item {
        path: r.get(0)?,
        name: r.get(1)?,
        kind: if kind == "dir" { Kind::Dir } else { Kind::File },
        size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        mtime_ns: r.get(4)?,
        content_type: r.get(5)?,
        class: MediaClass::parse(&class).unwrap_or(MediaClass::Other),
        duration: r.get(7)?,
        video_codec: r.get(8)?,
        audio_codec: r.get(9)?,
        width: r.get(10)?,
        height: r.get(11)?,
        probed: r.get::<_, Option<i64>>(12)?.is_some(),
        probe_error: r.get(13)?,
        thumb: r.get(14)?,
        thumb_failed: r.get::<_, Option<String>>(15)?.as_deref() == Some("failed"),
        owner: r.get(16)?,
    })
}

/// `%` `_` and the escape character itself, escaped for `LIKE … ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An FTS5 phrase: the whole query in double quotes (inner quotes doubled), so operators,
/// column filters and `*` in user input are plain characters.
pub fn fts_phrase(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `rank`: the search's relevance expression (None for a listing).
fn order_by(req: &ListRequest, rank: Option<&str>) -> String {
    let dir = if req.sort.descending { "DESC" } else { "ASC" };
    let then_name = "m.name COLLATE NOCASE, m.name";
    match req.sort.key {
        None => match rank {
            Some(rank) => format!("{rank}, m.kind = 'file', {then_name}"),
            None => format!("m.kind = 'file', {then_name}"),
        },
        Some(SortKey::Name) => format!("m.name COLLATE NOCASE {dir}, m.name {dir}"),
        Some(SortKey::Size) => format!("m.size {dir}, {then_name}"),
        Some(SortKey::Mtime) => format!("m.mtime_ns {dir}, {then_name}"),
        // Unknown durations (folders, unprobed files) last in both directions.
        Some(SortKey::Duration) => format!("m.duration IS NULL, m.duration {dir}, {then_name}"),
    }
}

/// One page of a listing or search. The folder's existence is the caller's business.
///
/// Plans are pinned where SQLite's choice would be slow at 100k entries: the FTS match is
/// the outer loop (`CROSS JOIN`; otherwise SQLite may run the match once per candidate row),
/// and a short query walks the small name index, not the table. For listings and FTS
/// searches the page is a top-N sort and the total a lean count (skipped when the page
/// itself tells it, or taken from the FTS index alone); a short query, which must look at
/// every name, gets both from one numbered pass.
pub fn page(conn: &Connection, req: &ListRequest) -> Result<Page, LibraryError> {
    let mut args: Vec<Value> = Vec::new();
    let mut from = String::from("media m");
    let mut wh: Vec<String> = Vec::new();
    let mut rank = String::from("0");
    // The count of an unfiltered search from the root comes from the FTS index alone.
    let mut fts_only_count = None;
    let mut short = false;
    if !req.is_search() {
        args.push(Value::Text(req.path.to_string()));
        wh.push(format!("m.parent = ?{}", args.len()));
    } else if req.path.is_root() {
        // The root's own row (a folder named "") is not in its subtree.
        wh.push("m.path <> ''".into());
    } else {
        let (lo, hi) = subtree_bounds(&req.path.to_string());
        args.push(Value::Text(lo));
        wh.push(format!("m.path > ?{}", args.len()));
        args.push(Value::Text(hi));
        wh.push(format!("m.path < ?{}", args.len()));
    }
    match &req.query {
        None => {}
        Some(q) => {
            if q.chars().count() >= 3 {
                from = "media_fts f CROSS JOIN media m ON m.id = f.rowid".into();
                args.push(Value::Text(fts_phrase(q)));
                wh.push(format!("media_fts MATCH ?{}", args.len()));
                if req.path.is_root() && req.class.is_none() {
                    fts_only_count = Some(fts_phrase(q));
                }
            } else {
                // The name index is a fifth of the table; only matches load their row. The
                // root row's empty name never matches a non-empty pattern.
                from = "media m INDEXED BY media_name".into();
                short = true;
                args.push(Value::Text(format!("%{}%", like_escape(q))));
                wh.push(format!("m.name LIKE ?{} ESCAPE '\\'", args.len()));
            }
        }
    }
    if let Some(class) = req.class {
        args.push(Value::Text(class.as_str().into()));
        wh.push(format!("m.media = ?{}", args.len()));
    }
    // The rank's parameters come last, so the count can bind only the filter's.
    let where_args = args.len();
    if let Some(q) = &req.query {
        args.push(Value::Text(q.clone()));
        let exact = args.len();
        args.push(Value::Text(format!("{}%", like_escape(q))));
        let prefix = args.len();
        rank = format!(
            "CASE WHEN m.name = ?{exact} COLLATE NOCASE THEN 0 \
             WHEN m.name LIKE ?{prefix} ESCAPE '\\' THEN 1 ELSE 2 END"
        );
    }
    let per_page = req.per_page.max(1);
    let offset = u64::from(req.page.max(1) - 1) * u64::from(per_page);
    let where_sql = if wh.is_empty() {
        "1".to_string()
    } else {
        wh.join(" AND ")
    };
    let order = order_by(req, req.query.is_some().then_some(rank.as_str()));
    // The numbered pass returns the first hit (which carries the count even when the page is
    // past the end) and the page's hits.
    let window = short;
    let sql = if window {
        // The sort carries only ids and keys; the page's rows are fetched by id afterwards.
        format!(
            "SELECT {COLS}, {rank} AS rank, h.total, h.rn FROM (
                SELECT m.id, count(*) OVER () AS total,
                       row_number() OVER (ORDER BY {order}) AS rn
                FROM {from} WHERE {where_sql}) h
             CROSS JOIN media m ON m.id = h.id
             WHERE h.rn = 1 OR h.rn > {offset} ORDER BY h.rn LIMIT {}",
            u64::from(per_page) + 1
        )
    } else {
        format!(
            // rank is selected even when unused so every bound parameter is referenced.
            "SELECT {COLS}, {rank} AS rank FROM {from} WHERE {where_sql}
             ORDER BY {order} LIMIT {per_page} OFFSET {offset}"
        )
    };
    let mut windowed = None;
    let mut entries = Vec::new();
    {
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            if window {
                // After COLS: the rank, then the window's total and row number.
                windowed = Some(r.get::<_, i64>(COLS_N + 1)?);
                if r.get::<_, i64>(COLS_N + 2)? <= offset as i64
                    || entries.len() == per_page as usize
                {
                    continue;
                }
            }
            entries.push(item_of(r)?);
        }
    }
    // A short page (or an empty first page) tells the total without counting.
    let known = (entries.len() < per_page as usize && (!entries.is_empty() || offset == 0))
        .then(|| offset as i64 + entries.len() as i64);
    // The numbered query returns the first hit whenever there is one: no row, no hits.
    let windowed = if window { windowed.or(Some(0)) } else { None };
    let total: i64 = match (windowed.or(known), fts_only_count) {
        (Some(t), _) => t,
        (None, Some(phrase)) => conn
            .prepare_cached("SELECT count(*) FROM media_fts WHERE media_fts MATCH ?1")?
            .query_row([phrase], |r| r.get(0))?,
        (None, None) => conn
            .prepare_cached(&format!("SELECT count(*) FROM {from} WHERE {where_sql}"))?
            .query_row(params_from_iter(args[..where_args].iter()), |r| r.get(0))?,
    };
    Ok(Page {
        path: req.path.to_string(),
        entries,
        total: u64::try_from(total).unwrap_or(0),
        page: req.page.max(1),
        per_page,
    })
}

/// One entry by path (None if not indexed). The root is not an item.
pub fn item(conn: &Connection, path: &str) -> Result<Option<Item>, LibraryError> {
    if path.is_empty() {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM media m WHERE m.path = ?1"))?
        .query_row([path], item_of)
        .optional()?)
}

/// The folder's read mark (`dir_mtime_ns`): Ok(None) when the folder is not indexed, Ok(Some
/// (None)) when indexed but never read (or too recently to trust).
pub fn dir_mark(conn: &Connection, path: &str) -> Result<Option<Option<i64>>, LibraryError> {
    Ok(conn
        .prepare_cached("SELECT dir_mtime_ns FROM media WHERE path = ?1 AND kind = 'dir'")?
        .query_row([path], |r| r.get(0))
        .optional()?)
}

/// Number of indexed entries (files and folders, without the root row).
pub fn count(conn: &Connection) -> Result<u64, LibraryError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM media WHERE path <> ''", [], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Whether `user` owns `path` and everything indexed under it (a folder full of other
/// people's files is not one member's to move).
pub fn owns_subtree(conn: &Connection, path: &str, user: i64) -> Result<bool, LibraryError> {
    let (lo, hi) = super::index::subtree_bounds(path);
    let (own, foreign): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE path = ?1 AND owner = ?4),
                    count(*) FILTER (WHERE owner IS NOT ?4)
             FROM media WHERE (path = ?1 OR (path > ?2 AND path < ?3)) AND path <> ''",
        )?
        .query_row(rusqlite::params![path, lo, hi, user], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(own == 1 && foreign == 0)
}

/// When `user` owns `path` and everything indexed under it: the paths indexed under it (so
/// a caller can tell whether something on disk is not in the index, hence not theirs).
pub fn owned_subtree(
    conn: &Connection,
    path: &str,
    user: i64,
) -> Result<Option<std::collections::HashSet<String>>, LibraryError> {
    if !owns_subtree(conn, path, user)? {
        return Ok(None);
    }
    let (lo, hi) = subtree_bounds(path);
    let mut stmt = conn.prepare_cached("SELECT path FROM media WHERE path > ?1 AND path < ?2")?;
    let rows = stmt.query_map([lo, hi], |r| r.get::<_, String>(0))?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}

pub fn owner(conn: &Connection, path: &str) -> Result<Option<i64>, LibraryError> {
    Ok(conn
        .prepare_cached("SELECT owner FROM media WHERE path = ?1")?
        .query_row([path], |r| r.get(0))
        .optional()?
        .flatten())
}
