//! In-process handler tests: the router driven with `oneshot`, no sockets. Covers what a
//! client sees for bad paths, errors and listings; the end-to-end suite in `tests/e2e/` drives
//! the real binary with real clients.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use streamhub::config::Config;
use streamhub::http::{router, AppState};
use streamhub::storage::local::{LocalOptions, LocalStorage, NodeDir};
use streamhub::storage::Storage;

struct Fixture {
    _media: tempfile::TempDir,
    _outside: tempfile::TempDir,
    _data: tempfile::TempDir,
    app: axum::Router,
}

fn fixture() -> Fixture {
    let media = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::fs::write(media.path().join("hello.txt"), "hello world").unwrap();
    std::fs::create_dir(media.path().join("films")).unwrap();
    std::fs::write(media.path().join("films").join("a.mkv"), vec![7u8; 300]).unwrap();
    std::fs::write(media.path().join(".hidden"), "x").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        media.path().join("escape.txt"),
    )
    .unwrap();
    let storage = LocalStorage::new(
        media.path(),
        LocalOptions {
            allow_symlink_escape: false,
            timeout: Duration::from_secs(5),
            chunk_size: 64 * 1024,
            node: NodeDir::new(&"a".repeat(64)).expect("a node id"),
        },
    );
    storage.establish(None, 0).expect("a new media root");
    let storage: Arc<dyn Storage> = Arc::new(storage);
    let db = streamhub::db::Db::open(data.path()).unwrap();
    let mut config = Config::default();
    config.server.data_dir = data.path().to_path_buf();
    let config = Arc::new(config);
    let library = streamhub::library::Library::open(
        data.path(),
        storage.clone(),
        &config.library,
        Duration::from_secs(5),
    )
    .expect("library");
    let tus = Arc::new(streamhub::tus::Tus::new(
        streamhub::tus::TusStore::new(db.clone(), 3600),
        storage.clone(),
    ));
    let state = AppState::new(config, storage, db, library, tus, None);
    Fixture {
        app: router(state),
        _media: media,
        _outside: outside,
        _data: data,
    }
}

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON body")
}

#[tokio::test]
async fn traversal_is_400_json_and_never_the_file() {
    let f = fixture();
    for uri in [
        "/media/../etc/passwd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media/films%2F..%2F..%2Fetc%2Fpasswd",
        "/media/a%5C..%5Cb",
        "/media/%00",
        "/media//etc/passwd",
        "/media/films/./a.mkv",
    ] {
        let (status, _, body) = call(&f.app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(json(&body)["error"], "bad_path", "{uri}");
    }
}

#[tokio::test]
async fn symlink_escape_is_403() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/media/escape.txt")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json(&body)["error"], "outside_root");
    assert!(!String::from_utf8_lossy(&body).contains("top secret"));
}

#[tokio::test]
async fn missing_and_folder_are_404_json() {
    let f = fixture();
    for uri in [
        "/media/nope.mp4",
        "/media/films",
        "/media/",
        "/nothing-here",
    ] {
        let (status, _, body) = call(&f.app, get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(json(&body)["error"], "not_found", "{uri}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let f = fixture();
    let req = Request::patch("/media/hello.txt")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD, PUT, DELETE");
    assert_eq!(json(&body)["error"], "method_not_allowed");
}

#[tokio::test]
async fn range_and_416() {
    let f = fixture();
    let req = Request::get("/media/hello.txt")
        .header("range", "bytes=6-")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], "bytes 6-10/11");
    assert_eq!(body, b"world");

    let req = Request::get("/media/hello.txt")
        .header("range", "bytes=11-")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], "bytes */11");
    assert_eq!(json(&body)["error"], "range_not_satisfiable");
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let f = fixture();
    let req = Request::head("/media/films/a.mkv")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], "300");
    assert_eq!(headers["content-type"], "video/x-matroska");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(body.is_empty());
}

#[tokio::test]
async fn library_lists_visible_entries_inside_root() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/api/library?path=")).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["films", "hello.txt"],
        "dirs first, no dot-files, no escaping links"
    );
    let (_, _, body) = call(&f.app, get("/api/library?path=films")).await;
    let v = json(&body);
    assert_eq!(v["entries"][0]["name"], "a.mkv");
    assert_eq!(v["entries"][0]["size"], 300);
    assert_eq!(v["entries"][0]["content_type"], "video/x-matroska");
    assert_eq!(v["entries"][0]["kind"], "file");

    for bad in [
        "/api/library?path=../",
        "/api/library?path=films/..",
        "/api/library?bogus=1",
    ] {
        let (status, _, body) = call(&f.app, get(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(json(&body)["error"].is_string());
    }
    let (status, _, _) = call(&f.app, get("/api/library?path=hello.txt")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_and_ready() {
    let f = fixture();
    let (status, _, body) = call(&f.app, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["status"], "ok");
    let (status, _, body) = call(&f.app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["media_root"]["ok"], true);
    assert_eq!(v["checks"]["data_dir"]["ok"], true);
}
