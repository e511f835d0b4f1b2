//! An upload's owner is recorded before its file becomes visible (issue 12, item 5): when
//! the library index refuses the record, PUT, tus, new folders and moves are refused and
//! the media storage is left as it was. The refusal is made real with a trigger that aborts
//! every write to the index, on the in-memory backend (so what is visible is exact).

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine;

use streamhub::storage::{MediaPath, Storage};

mod common;
use common::{call, fx, req, Fx};

/// From now on every write to the library index fails (the connection that records uploads
/// sees the trigger: it lives in the database file).
fn refuse_index_writes(f: &Fx, on: bool) {
    let sql = if on {
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON media BEGIN SELECT RAISE(ABORT, 'refused'); END;
         CREATE TRIGGER refuse_update BEFORE UPDATE ON media BEGIN SELECT RAISE(ABORT, 'refused'); END;"
    } else {
        "DROP TRIGGER refuse_insert; DROP TRIGGER refuse_update;"
    };
    f.db.with(|c| c.execute_batch(sql)).unwrap();
}

async fn put(f: &Fx, token: &str, uri: &str, bytes: &'static str) -> StatusCode {
    call(
        &f.app,
        req("PUT", uri, token).body(Body::from(bytes)).unwrap(),
    )
    .await
    .0
}

async fn exists(f: &Fx, path: &str) -> bool {
    let p = MediaPath::from_decoded(path).unwrap();
    f.mem.stat(&p).await.unwrap().is_some()
}

fn tus(method: &str, uri: &str, token: &str) -> axum::http::request::Builder {
    req(method, uri, token).header("tus-resumable", "1.0.0")
}

#[tokio::test]
async fn an_upload_whose_owner_cannot_be_recorded_is_refused_and_leaves_nothing() {
    let f = fx();
    assert_eq!(
        put(&f, &f.alice, "/media/a/mine.txt", "old").await,
        StatusCode::CREATED
    );
    refuse_index_writes(&f, true);

    let status = put(&f, &f.alice, "/media/new/deep/file.txt", "new").await;
    assert!(status.is_server_error(), "{status}");
    assert!(
        !exists(&f, "new").await,
        "no file, and no folder made for it"
    );
    let status = put(
        &f,
        &f.alice,
        "/media/a/mine.txt?overwrite=true",
        "replacement",
    )
    .await;
    assert!(status.is_server_error(), "{status}");
    assert_eq!(
        f.mem.read("a/mine.txt").unwrap(),
        b"old",
        "the old file is kept"
    );

    let (status, _, _) = call(
        &f.app,
        req("POST", "/api/library/folder", &f.alice)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"path":"made/here"}"#))
            .unwrap(),
    )
    .await;
    assert!(status.is_server_error(), "{status}");
    assert!(
        !exists(&f, "made").await,
        "the folder and its parent are removed again"
    );

    let (status, _, _) = call(
        &f.app,
        req("POST", "/api/library/move", &f.alice)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"from":"a/mine.txt","to":"a/moved.txt"}"#))
            .unwrap(),
    )
    .await;
    assert!(status.is_server_error(), "{status}");
    assert!(exists(&f, "a/mine.txt").await && !exists(&f, "a/moved.txt").await);

    refuse_index_writes(&f, false);
    // Ownership is as before: bob still may not replace alice's file, alice may.
    let status = put(&f, &f.bob, "/media/a/mine.txt?overwrite=true", "bob's").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = put(&f, &f.alice, "/media/a/mine.txt?overwrite=true", "new").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        put(&f, &f.alice, "/media/new/deep/file.txt", "new").await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_tus_upload_refused_at_its_commit_stays_resumable() {
    let f = fx();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (status, headers, _) = call(
        &f.app,
        tus("POST", "/api/tus/", &f.alice)
            .header("upload-length", "6")
            .header("upload-metadata", format!("filename {}", b64("t.bin")))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let loc = headers["location"].to_str().unwrap().to_string();
    let patch = |offset: &str, bytes: &'static str| {
        tus("PATCH", &loc, &f.alice)
            .header("upload-offset", offset)
            .header("content-type", "application/offset+octet-stream")
            .body(Body::from(bytes))
            .unwrap()
    };
    refuse_index_writes(&f, true);
    let (status, _, _) = call(&f.app, patch("0", "abcdef")).await;
    assert!(status.is_server_error(), "{status}");
    assert!(f.mem.read("t.bin").is_none(), "nothing visible");
    assert_eq!(f.mem.staged_keys().len(), 1, "the staged data is kept");

    refuse_index_writes(&f, false);
    let (status, headers, _) = call(
        &f.app,
        tus("HEAD", &loc, &f.alice).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let offset = headers["upload-offset"].to_str().unwrap().to_string();
    let rest: &'static str = &"abcdef"[offset.parse::<usize>().unwrap()..];
    let (status, _, _) = call(&f.app, patch(&offset, rest)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(f.mem.read("t.bin").unwrap(), b"abcdef");
    // Indexed as alice's.
    assert_eq!(
        put(&f, &f.bob, "/media/t.bin?overwrite=true", "x").await,
        StatusCode::FORBIDDEN
    );
}
