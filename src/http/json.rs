//! `ApiJson<T>`: the JSON body extractor for every API endpoint, with the error contract:
//! 415 not JSON, 413 over 64 KiB, 400 malformed, 422 wrong shape (the message names the field).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A JSON body of at most `MAX` bytes (64 KiB unless an endpoint needs more, like notes).
pub struct ApiJson<T, const MAX: usize = MAX_JSON_BYTES>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const MAX: usize> FromRequest<S> for ApiJson<T, MAX> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("request body over {} KiB", MAX / 1024),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX as u64) {
            return Err(too_large());
        }
        let body: Body = req.into_body();
        let bytes = axum::body::to_bytes(body, MAX)
            .await
            .map_err(|_| too_large())?;
        parse(&bytes).map(ApiJson)
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
}
