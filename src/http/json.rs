//! `ApiJson<T>`: the JSON body extractor for every API endpoint, with the error contract:
//! 415 not JSON, 413 over 64 KiB, 400 malformed, 422 wrong shape (the message names the field).
//! `ApiPath<T>`: axum's `Path` with its rejections as JSON errors too (400 `bad_path_param`).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A JSON body of at most `MAX` bytes (64 KiB unless an endpoint needs more, like notes).
pub struct ApiJson<T, const MAX: usize = MAX_JSON_BYTES>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S> for ApiJson<T, MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        require_json(&req)?;
        let bytes = read_limited(req, MAX).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// Path parameters (`/api/notes/{id}`); a parameter that does not decode (`%ff%fe` is not
/// UTF-8) is a JSON 400 like every other bad input, not axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(
                "bad_path_param",
                format!(
                    "a parameter in the URL path is not valid: {}",
                    e.body_text()
                ),
            )),
            // No parameters captured at all: a route wired wrongly, ours to fix.
            Err(e) => Err(ApiError::internal(&e.body_text())),
        }
    }
}

/// A JSON body that may be left out: no body (or only whitespace) is `None`, in any
/// content type; anything else follows `ApiJson`'s rules (415, 413, 400, 422).
pub struct OptionalJson<T, const MAX: usize = MAX_JSON_BYTES>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S>
    for OptionalJson<T, MAX>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = require_json(&req);
        let bytes = read_limited(req, MAX).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        is_json?;
        parse(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// 415 unless the request says its body is `application/json`.
fn require_json(req: &Request) -> Result<(), ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ))
    }
}

/// How long a body read whole (JSON, at most a few hundred KiB) may take to arrive
/// (`server.body_read_timeout_secs`; the server puts it on every request). The idle timeout
/// acts per read, so without a total deadline a client trickling one byte every few seconds
/// held a connection slot for as long as it liked, before any authentication (login).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub std::time::Duration);

/// For requests that did not come through our server (in-process tests).
const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The body, at most `max` bytes (413 past it, before reading when the length is declared).
pub(crate) async fn read_limited(req: Request, max: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body over {} KiB", max / 1024),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let deadline = req
        .extensions()
        .get::<BodyDeadline>()
        .map_or(DEFAULT_DEADLINE, |d| d.0);
    let body: Body = req.into_body();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, max)).await {
        Ok(read) => read.map_err(|_| too_large()),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s",
                deadline.as_secs()
            ),
        )
        .with_header(header::CONNECTION, HeaderValue::from_static("close"))),
    }
}

/// Pure core, unit-tested.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also fill a struct from a JSON array (`["bob","pw"]`); the API takes
    // objects only, so positional bodies are refused rather than guessed at.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the body must be a JSON object",
            ),
            Err(e) => ApiError::bad_request("bad_json", format!("malformed JSON: {e}")),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end()
                .map_err(|e| ApiError::bad_request("bad_json", format!("malformed JSON: {e}")))?;
            Ok(v)
        }
        Err(e) => {
            let inner = e.inner();
            if inner.is_data() {
                let path = e.path().to_string();
                let message = if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    message,
                ))
            } else {
                Err(ApiError::bad_request(
                    "bad_json",
                    format!("malformed JSON: {inner}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        name: String,
        password: String,
    }

    #[test]
    fn errors_follow_the_contract() {
        let e = parse::<Login>(b"{nope").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "bad_json"));
        let e = parse::<Login>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid"));
        assert!(e.message.contains("password"), "{}", e.message);
        let e = parse::<Login>(br#"{"name":5,"password":"x"}"#).unwrap_err();
        assert!(e.message.starts_with("name:"), "{}", e.message);
        let e = parse::<Login>(br#"{"name":"a","password":"b","x":1}"#).unwrap_err();
        assert!(e.message.contains("`x`"), "{}", e.message);
        let e = parse::<Login>(br#"{"name":"a","password":"b"} trailing"#).unwrap_err();
        assert_eq!(e.code, "bad_json");
        assert!(parse::<Login>(br#"{"name":"a","password":"b"}"#).is_ok());
        let e = parse::<Login>(br#"["a","b"]"#).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid"));
        let e = parse::<Login>(b"[1,").unwrap_err();
        assert_eq!(e.code, "bad_json");
    }

    async fn optional(ct: Option<&str>, body: &'static str) -> Result<Option<Login>, ApiError> {
        let mut req = Request::builder().method("POST").uri("/");
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body)).unwrap();
        OptionalJson::<Login>::from_request(req, &())
            .await
            .map(|j| j.0)
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_but_not_sent_wrong() {
        assert!(optional(None, "").await.unwrap().is_none());
        assert!(optional(Some("text/plain"), " \n").await.unwrap().is_none());
        let l = optional(Some("application/json"), r#"{"name":"a","password":"b"}"#).await;
        assert_eq!(l.unwrap().unwrap().name, "a");
        assert_eq!(
            optional(Some("text/plain"), "to=x")
                .await
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(optional(None, "{}").await.unwrap_err().status, 415);
        assert_eq!(
            optional(Some("application/json"), "{")
                .await
                .unwrap_err()
                .status,
            400
        );
    }
}
