//! The in-process fixture of the integration tests that run the real router over the
//! in-memory storage backend (`storage_boundary.rs`, `owner_record.rs`): a data dir with the
//! database and the library index, and two members with API tokens.
#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use streamhub::auth::Role;
use streamhub::config::Config;
use streamhub::http::{router, AppState};
use streamhub::storage::memory::MemoryStorage;
use streamhub::storage::Storage;

pub struct Fx {
    pub _data: tempfile::TempDir,
    pub app: axum::Router,
    pub mem: MemoryStorage,
    pub db: streamhub::db::Db,
    pub library: streamhub::library::Library,
    pub alice: String,
    pub bob: String,
}

pub fn fx() -> Fx {
    let data = tempfile::tempdir().unwrap();
    let mem = MemoryStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(mem.clone());
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
    .unwrap();
    let tus = Arc::new(streamhub::tus::Tus::new(
        streamhub::tus::TusStore::new(db.clone(), 3600),
        storage.clone(),
    ));
    let accounts = streamhub::auth::Accounts::new(db.clone());
    let token = |name: &str| {
        let u = accounts
            .add_user(name, "a long password", Role::Member)
            .unwrap();
        accounts.create_token(&u, "t", None).unwrap().1
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let state = AppState::new(config, storage, db.clone(), library.clone(), tus, None);
    Fx {
        _data: data,
        app: router(state),
        mem,
        db,
        library,
        alice,
        bob,
    }
}

pub fn req(method: &str, uri: &str, token: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
}

/// One request through the router: status, headers and the whole body.
pub async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}
