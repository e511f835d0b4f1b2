//! The notepad over HTTP: `/api/notes…`, `/api/tags`, `/api/analytics`. Thin: each handler
//! checks who may act, then calls `notes::NotesStore` inside `Db::call`.
//!
//! Optimistic concurrency: a note's `ETag` is its current revision; `PUT`/`DELETE` need
//! `If-Match` (428 without it) and a stale one gets 412 with the current note, so a concurrent
//! edit is never silently overwritten.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Member, Reader};
use super::error::ApiError;
use super::json::{ApiJson, ApiPath};
use super::wire::notes::{
    AnalyticsJson, EventJson, EventsJson, NoteJson, RevisionInfoJson, RevisionJson, RevisionsJson,
    SearchPageJson, TagCountJson, TagsJson,
};
use super::AppState;
use crate::app::quota;
use crate::notes::{Author, Changes, Content, Note, NoteError, SearchQuery, Visibility};

/// A note body may be 1 MiB of text; JSON escaping can make that several times larger.
pub(super) const NOTE_JSON_MAX: usize = 8 * 1024 * 1024;

fn author(u: &crate::auth::User) -> Author {
    Author {
        id: u.id,
        name: u.name.clone(),
    }
}

/// Runs store work on the blocking pool with the database connection.
async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::notes::NotesStore, &mut rusqlite::Connection) -> Result<T, NoteError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let store = state.notes.clone();
    state
        .accounts
        .db()
        .call(move |conn| f(&store, conn))
        .await
        .map_err(ApiError::from)
}

/// Refuses a revision over the writer's `notes_bytes` quota (403 `quota_exceeded`).
fn notes_quota(
    c: &rusqlite::Connection,
    user: i64,
    defaults: &crate::config::QuotasConfig,
    adding: u64,
) -> Result<(), NoteError> {
    quota::check_notes(c, user, defaults, adding)?
        .map_err(|q| NoteError::QuotaExceeded(q.to_string()))
}

/// A note with its revision as the ETag.
fn note_response(status: StatusCode, note: Note) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", note.rev)).ok();
    let mut resp = (status, Json(NoteJson::from(&note))).into_response();
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// The revision an edit is based on, from `If-Match` (428 when missing).
fn base_rev(headers: &HeaderMap) -> Result<String, ApiError> {
    let v = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the revision you edited (the note's ETag)",
            )
        })?;
    // A weak tag never matches for If-Match (RFC 9110 §13.1.1).
    Ok(v.trim_matches('"').to_string())
}

/// 412 with the current note, so the client can show what changed.
async fn stale_or(state: &AppState, id: &str, viewer_id: i64, e: ApiError) -> ApiError {
    if e.code != "stale" {
        return e;
    }
    let id = id.to_string();
    match db(state, move |s, c| s.get(c, &id, Some(viewer_id))).await {
        // Through a `Value`, like every member of an error body (keys sorted).
        Ok(current) => ApiError {
            extra: Some(json!({ "current": NoteJson::from(&current) })),
            ..e
        },
        Err(_) => e,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_visibility")]
    visibility: Visibility,
}

fn default_visibility() -> Visibility {
    Visibility::Private
}

pub async fn create(
    State(state): State<AppState>,
    Member(user): Member,
    ApiJson(body): ApiJson<NewNote, NOTE_JSON_MAX>,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let content = Content {
        title: body.title,
        body: body.body,
        tags: body.tags,
        visibility: body.visibility,
    };
    let defaults = state.config.quotas.clone();
    let note = db(&state, move |s, c| {
        let admit = |c: &rusqlite::Connection, adding| notes_quota(c, who.id, &defaults, adding);
        s.create_admitted(c, content, &who, &admit)
    })
    .await?;
    Ok(note_response(StatusCode::CREATED, note))
}

pub async fn get_note(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let viewer_id = reader.viewer_id();
    let nid = id.clone();
    let note = db(&state, move |s, c| s.get(c, &nid, viewer_id)).await?;
    // Counting the view is a durable write: done after answering, off the request's path.
    let who = reader.0.as_ref().map(author);
    let st = state.clone();
    tokio::spawn(async move {
        let _ = db(&st, move |s, c| s.view(c, &id, who.as_ref())).await;
    });
    Ok(note_response(StatusCode::OK, note))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditNote {
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
    visibility: Option<Visibility>,
}

pub async fn update(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EditNote, NOTE_JSON_MAX>,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let base = base_rev(&headers)?;
    let changes = Changes {
        title: body.title,
        body: body.body,
        tags: body.tags,
        visibility: body.visibility,
    };
    let (nid, uid) = (id.clone(), who.id);
    let defaults = state.config.quotas.clone();
    let edit = move |s: &crate::notes::NotesStore, c: &mut rusqlite::Connection| {
        // Judged on what the new revision takes once stored (its change, mostly), inside
        // the edit's transaction.
        let admit = |c: &rusqlite::Connection, adding| notes_quota(c, who.id, &defaults, adding);
        s.update_admitted(c, &nid, &base, changes, &who, &admit)
    };
    match db(&state, edit).await {
        Ok(note) => Ok(note_response(StatusCode::OK, note)),
        Err(e) => Err(stale_or(&state, &id, uid, e).await),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let base = base_rev(&headers)?;
    let (nid, uid) = (id.clone(), who.id);
    match db(&state, move |s, c| s.delete(c, &nid, &base, &who)).await {
        Ok(note) => Ok(note_response(StatusCode::OK, note)),
        Err(e) => Err(stale_or(&state, &id, uid, e).await),
    }
}

/// `tag` may repeat (`?tag=a&tag=b`: every tag must be present).
pub async fn search(
    State(state): State<AppState>,
    reader: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchPageJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let mut q = SearchQuery::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let bad = |what: &str| ApiError::bad_request("bad_query", format!("{k}: {what}"));
        match k.as_ref() {
            "q" => q.q = v.into_owned(),
            "tag" => q.tags.push(v.into_owned()),
            "author" => q.author = Some(v.into_owned()),
            "contributor" => q.contributor = Some(v.into_owned()),
            "owner" => q.owner = Some(v.into_owned()),
            "visibility" => {
                q.visibility = Some(Visibility::parse(&v).ok_or_else(|| bad("public or private"))?)
            }
            "page" => {
                q.page = v
                    .parse()
                    .ok()
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| bad("a page number from 1"))?
            }
            "per_page" => {
                q.per_page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| bad("1 to 100"))?
            }
            _ => return Err(bad("unknown parameter")),
        }
    }
    let searching = !q.q.trim().is_empty();
    let page = db(&state, move |s, c| {
        let page = s.search(c, &q, viewer_id)?;
        // Counting is analytics, not the answer: a data dir that takes no write (read-only,
        // full) must not cost people their search.
        if searching {
            if let Err(e) = s.record_search(c) {
                tracing::warn!(error = %e, "search not counted in analytics");
            }
        }
        Ok(page)
    })
    .await?;
    Ok(Json(SearchPageJson::from(&page)))
}

pub async fn revisions(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RevisionsJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let revs = db(&state, move |s, c| s.revisions(c, &id, viewer_id)).await?;
    Ok(Json(RevisionsJson {
        revisions: revs.iter().map(RevisionInfoJson::from).collect(),
    }))
}

pub async fn revision(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath((id, rev)): ApiPath<(String, String)>,
) -> Result<Json<RevisionJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let r = db(&state, move |s, c| s.revision(c, &id, &rev, viewer_id)).await?;
    Ok(Json(RevisionJson::from(&r)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    rev: String,
}

pub async fn restore(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let defaults = state.config.quotas.clone();
    let note = db(&state, move |s, c| {
        let admit = |c: &rusqlite::Connection, adding| notes_quota(c, who.id, &defaults, adding);
        s.restore_admitted(c, &id, &body.rev, &who, &admit)
    })
    .await?;
    Ok(note_response(StatusCode::OK, note))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    merged: NewNote,
    resolves: Vec<String>,
}

pub async fn resolve(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResolveBody, NOTE_JSON_MAX>,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let base = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_string());
    let merged = Content {
        title: body.merged.title,
        body: body.merged.body,
        tags: body.merged.tags,
        visibility: body.merged.visibility,
    };
    let (nid, uid) = (id.clone(), who.id);
    let res = db(&state, move |s, c| {
        s.resolve(c, &nid, base.as_deref(), merged, &body.resolves, &who)
    })
    .await;
    match res {
        Ok(note) => Ok(note_response(StatusCode::OK, note)),
        Err(e) => Err(stale_or(&state, &id, uid, e).await),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    rev: String,
}

/// Three-way merge of the current revision with a conflicting one; overlapping edits -> 409.
pub async fn merge(
    State(state): State<AppState>,
    Member(user): Member,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Response, ApiError> {
    let who = author(&user);
    let note = db(&state, move |s, c| s.merge(c, &id, &body.rev, &who)).await?;
    Ok(note_response(StatusCode::OK, note))
}

pub async fn events(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventsJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let (mut before, mut limit) = (None, 100u32);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "before" => {
                before = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad_request("bad_query", "before: an event id"))?,
                )
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| ApiError::bad_request("bad_query", "limit: 1 to 1000"))?
            }
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("{k}: unknown parameter"),
                ))
            }
        }
    }
    let ev = db(&state, move |s, c| {
        s.events(c, &id, viewer_id, before, limit)
    })
    .await?;
    Ok(Json(EventsJson {
        events: ev.iter().map(EventJson::from).collect(),
    }))
}

pub async fn tags(
    State(state): State<AppState>,
    reader: Reader,
) -> Result<Json<TagsJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let t = db(&state, move |s, c| s.tags(c, viewer_id)).await?;
    Ok(Json(TagsJson {
        tags: t.iter().map(TagCountJson::from).collect(),
    }))
}

pub async fn analytics(
    State(state): State<AppState>,
    reader: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<AnalyticsJson>, ApiError> {
    let viewer_id = reader.viewer_id();
    let (mut days, mut top) = (30u32, 10u32);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let n = v.parse::<u32>().ok();
        match (k.as_ref(), n) {
            ("days", Some(d)) if (1..=3660).contains(&d) => days = d,
            ("top", Some(t)) if (1..=100).contains(&t) => top = t,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("{k}: days is 1 to 3660, top is 1 to 100"),
                ))
            }
        }
    }
    let a = db(&state, move |s, c| s.analytics(c, viewer_id, days, top)).await?;
    Ok(Json(AnalyticsJson::from(&a)))
}
