//! The storage boundary, proved: the library, PUT, multipart and tus run against a second
//! backend (`storage::memory`) through the `Storage` trait alone — the same router and
//! application layer the service uses, with no media folder anywhere. If any of them reached
//! for a path on disk, these tests would not find their files.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;

mod common;
use common::{call, fx, req, Fx};

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(body)))
}

async fn names(f: &Fx, dir: &str) -> Vec<String> {
    let (status, _, body) = call(
        &f.app,
        req("GET", &format!("/api/library?path={dir}"), &f.alice)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    json(&body)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn put_read_list_search_move_delete_through_the_trait() {
    let f = fx();
    let (status, headers, body) = call(
        &f.app,
        req("PUT", "/media/films/new/clip.mp4", &f.alice)
            .body(Body::from("moving pictures"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(headers["location"], "/media/films/new/clip%2Emp4");
    assert_eq!(
        f.mem.read("films/new/clip.mp4").unwrap(),
        b"moving pictures"
    );
    // Read back with a range, as a player would.
    let (status, _, body) = call(
        &f.app,
        req("GET", "/media/films/new/clip.mp4", &f.alice)
            .header("range", "bytes=7-14")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"pictures"[..])
    );
    assert_eq!(names(&f, "films/new").await, ["clip.mp4"]);
    let (_, _, body) = call(
        &f.app,
        req("GET", "/api/library?q=clip", &f.alice)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(json(&body)["entries"][0]["path"], "films/new/clip.mp4");
    // Ownership comes from the index: bob may not replace alice's file, alice may move it.
    let (status, _, _) = call(
        &f.app,
        req("PUT", "/media/films/new/clip.mp4?overwrite=true", &f.bob)
            .body(Body::from("mine now"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = call(
        &f.app,
        req("POST", "/api/library/move", &f.alice)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"from":"films/new/clip.mp4","to":"kept/clip.mp4"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(f.mem.read("kept/clip.mp4").unwrap(), b"moving pictures");
    assert_eq!(names(&f, "kept").await, ["clip.mp4"]);
    let (status, _, _) = call(
        &f.app,
        req("DELETE", "/media/kept/clip.mp4", &f.alice)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(f.mem.read("kept/clip.mp4").is_none());
    assert!(names(&f, "kept").await.is_empty());
}

#[tokio::test]
async fn multipart_stores_every_file_through_the_trait() {
    let f = fx();
    let b = "XyZ";
    let form = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.jpg\"\r\n\r\nAAA\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"b.jpg\"\r\n\r\nBBBB\r\n--{b}--\r\n"
    );
    let (status, _, body) = call(
        &f.app,
        req("POST", "/api/upload?dir=photos", &f.alice)
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(json(&body)["files"].as_array().unwrap().len(), 2);
    assert_eq!(f.mem.read("photos/a.jpg").unwrap(), b"AAA");
    assert_eq!(f.mem.read("photos/b.jpg").unwrap(), b"BBBB");
    assert_eq!(names(&f, "photos").await, ["a.jpg", "b.jpg"]);
    // A hidden folder is refused as a new name, on this backend too.
    let (status, _, body) = call(
        &f.app,
        req("POST", "/api/upload?dir=.hid", &f.alice)
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(Body::from(format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"c.jpg\"\r\n\r\nC\r\n--{b}--\r\n"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_name"))
    );
}

/// `POST /api/tus/` as `token`: (status, Location, body).
async fn tus_create(
    f: &Fx,
    token: &str,
    length: &str,
    meta: String,
) -> (StatusCode, String, Vec<u8>) {
    let (status, headers, body) = call(
        &f.app,
        req("POST", "/api/tus/", token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length)
            .header("upload-metadata", meta)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let loc = headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, loc, body)
}

/// A tus PATCH of `bytes` at `offset` to `loc` as `token`.
fn tus_patch(loc: &str, token: &str, offset: &str, bytes: &'static str) -> Request<Body> {
    req("PATCH", loc, token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset)
        .header("content-type", "application/offset+octet-stream")
        .body(Body::from(bytes))
        .unwrap()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn tus_resumes_and_commits_through_the_trait() {
    let f = fx();
    let tus = |method: &str, uri: &str| req(method, uri, &f.alice).header("tus-resumable", "1.0.0");
    let meta = format!("filename {},folder {}", b64("song.flac"), b64("music"));
    let (status, loc, body) = tus_create(&f, &f.alice, "10", meta).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        f.mem.staged_keys().len(),
        1,
        "staged in the backend under a key"
    );
    let patch = |offset: &str, bytes: &'static str| tus_patch(&loc, &f.alice, offset, bytes);
    let (status, headers, _) = call(&f.app, patch("0", "0123")).await;
    assert_eq!(
        (status, &headers["upload-offset"]),
        (StatusCode::NO_CONTENT, &"4".parse().unwrap())
    );
    let (status, headers, _) = call(&f.app, tus("HEAD", &loc).body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, &headers["upload-offset"]),
        (StatusCode::OK, &"4".parse().unwrap())
    );
    assert!(
        f.mem.read("music/song.flac").is_none(),
        "nothing visible before the end"
    );
    let (status, _, _) = call(&f.app, patch("2", "xx")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, headers, _) = call(&f.app, patch("4", "456789")).await;
    assert_eq!(
        (status, &headers["upload-offset"]),
        (StatusCode::NO_CONTENT, &"10".parse().unwrap())
    );
    assert_eq!(f.mem.read("music/song.flac").unwrap(), b"0123456789");
    assert!(f.mem.staged_keys().is_empty());
    assert_eq!(names(&f, "music").await, ["song.flac"]);
    // Bob cannot see alice's upload.
    let (status, _, _) = call(
        &f.app,
        req("HEAD", &loc, &f.bob)
            .header("tus-resumable", "1.0.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_scanner_walks_the_backend_not_a_disk() {
    let f = fx();
    f.mem.insert("shows/s01/e01.mkv", b"1");
    f.mem.insert("shows/s01/e02.mkv", b"22");
    f.mem.insert("top.mp3", b"333");
    let r = f.library.scan_now().await.unwrap();
    assert_eq!((r.files, r.dirs), (3, 3), "{r:?}");
    assert_eq!(names(&f, "shows/s01").await, ["e01.mkv", "e02.mkv"]);
    let (_, _, body) = call(
        &f.app,
        req("GET", "/api/library?q=e02", &f.alice)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let v = json(&body);
    assert_eq!(v["entries"][0]["path"], "shows/s01/e02.mkv");
    assert_eq!(v["entries"][0]["size"], 2);
}

#[tokio::test]
async fn put_rules_hold_on_the_second_backend() {
    let f = fx();
    let put = |uri: &str, token: &str, body: &'static str| {
        req("PUT", uri, token).body(Body::from(body)).unwrap()
    };
    let (status, _, _) = call(&f.app, put("/media/a/one.txt", &f.alice, "first")).await;
    assert_eq!(status, StatusCode::CREATED);
    // An existing name: 409 and the bytes are untouched.
    let (status, _, body) = call(&f.app, put("/media/a/one.txt", &f.alice, "second")).await;
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (StatusCode::CONFLICT, Some("exists"))
    );
    assert_eq!(f.mem.read("a/one.txt").unwrap(), b"first");
    // The uploader may overwrite; the file is replaced whole.
    let (status, _, _) = call(
        &f.app,
        put("/media/a/one.txt?overwrite=true", &f.alice, "second"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(f.mem.read("a/one.txt").unwrap(), b"second");
    // A folder where a file should go, and a file where a folder should go.
    let (status, _, _) = call(&f.app, put("/media/a", &f.alice, "x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&f.app, put("/media/a/one.txt/inner.txt", &f.alice, "x")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // New names must be visible, portable names all the way.
    for bad in [
        "/media/.hidden/x.txt",
        "/media/CON/x.txt",
        "/media/ok/trail./x.txt",
    ] {
        let (status, _, body) = call(&f.app, put(bad, &f.alice, "x")).await;
        assert_eq!(
            (status, json(&body)["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_name")),
            "{bad}"
        );
    }
    // Folders, a non-empty delete, a move into itself.
    for folder in ["b", "b/c"] {
        let (status, _, _) = call(
            &f.app,
            req("POST", "/api/library/folder", &f.bob)
                .header("content-type", "application/json")
                .body(Body::from(format!(r#"{{"path":"{folder}"}}"#)))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _, body) = call(
        &f.app,
        req("DELETE", "/media/b", &f.bob)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, json(&body)["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_empty"))
    );
    let (status, _, _) = call(
        &f.app,
        req("POST", "/api/library/move", &f.bob)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"from":"b","to":"b/c/d"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tus_protocol_errors_on_the_second_backend() {
    use sha1::Digest;
    let f = fx();
    let tus = |method: &str, uri: &str| req(method, uri, &f.alice).header("tus-resumable", "1.0.0");
    let (_, headers, _) = call(
        &f.app,
        tus("POST", "/api/tus/")
            .header("upload-length", "6")
            .header("upload-metadata", format!("filename {}", b64("c.bin")))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let loc = headers["location"].to_str().unwrap().to_string();
    let patch = |offset: &str, body: &'static str, checksum: Option<String>| {
        let mut b = tus("PATCH", &loc)
            .header("upload-offset", offset)
            .header("content-type", "application/offset+octet-stream");
        if let Some(c) = checksum {
            b = b.header("upload-checksum", c);
        }
        b.body(Body::from(body)).unwrap()
    };
    let sum = |s: &str| {
        format!(
            "sha1 {}",
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
        )
    };
    // A wrong checksum: 460 and the body is discarded.
    let (status, _, _) = call(&f.app, patch("0", "abc", Some(sum("xyz")))).await;
    assert_eq!(status.as_u16(), 460);
    let (_, headers, _) = call(&f.app, tus("HEAD", &loc).body(Body::empty()).unwrap()).await;
    assert_eq!(headers["upload-offset"], "0");
    let (status, _, _) = call(&f.app, patch("0", "abc", Some(sum("abc")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Past Upload-Length: 413, nothing kept.
    let (status, _, _) = call(&f.app, patch("3", "defg", None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, headers, _) = call(&f.app, tus("HEAD", &loc).body(Body::empty()).unwrap()).await;
    assert_eq!(headers["upload-offset"], "3");
    // Termination deletes state and data.
    let (status, _, _) = call(&f.app, tus("DELETE", &loc).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(f.mem.staged_keys().is_empty());
    let (status, _, _) = call(&f.app, tus("HEAD", &loc).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(f.mem.read("c.bin").is_none());
}

/// Who may replace a file is judged again at commit, on any backend: bob's paused tus upload
/// with `overwrite` cannot replace the file alice put at that name meanwhile.
#[tokio::test]
async fn overwrite_is_judged_again_at_commit_on_the_second_backend() {
    let f = fx();
    let meta = format!("filename {},overwrite {}", b64("report.pdf"), b64("true"));
    let (status, loc, _) = tus_create(&f, &f.bob, "4", meta).await;
    assert_eq!(status, StatusCode::CREATED);
    let first = call(&f.app, tus_patch(&loc, &f.bob, "0", "EV")).await;
    assert_eq!(first.0, StatusCode::NO_CONTENT);
    let (status, _, _) = call(
        &f.app,
        req("PUT", "/media/report.pdf", &f.alice)
            .body(Body::from("alice's"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(&f.app, tus_patch(&loc, &f.bob, "2", "IL")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(f.mem.read("report.pdf").unwrap(), b"alice's");
    assert!(
        f.mem.staged_keys().is_empty(),
        "the refused upload's data is gone"
    );
}

/// The storage page and the subtitles read the backend through the trait: free space is the
/// memory backend's, a subtitle file inserted a moment ago is listed and converted.
#[tokio::test]
async fn storage_state_and_subtitles_through_the_trait() {
    let f = fx();
    f.mem.insert("films/movie.mkv", &[0u8; 100]);
    f.mem.insert(
        "films/movie.en.srt",
        b"1\r\n00:00:01,000 --> 00:00:02,500\r\ncaf\xe9\r\n",
    );
    f.mem.insert("films/movie.vtt", b"not webvtt\n");
    f.mem.insert("films/movie2.srt", b"");
    let get = |uri: &str| req("GET", uri, &f.alice).body(Body::empty()).unwrap();

    let (status, _, body) = call(&f.app, get("/api/storage")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let s = json(&body);
    assert_eq!(s["backend"], "memory");
    assert_eq!(s["healthy"], true);
    let used = 100 + 40 + 11;
    assert_eq!(s["total_bytes"], streamhub::storage::memory::CAPACITY);
    assert_eq!(s["free_bytes"], streamhub::storage::memory::CAPACITY - used);
    assert!(
        s.get("media_root").is_none(),
        "members are not told the path"
    );

    let (status, _, body) = call(&f.app, get("/api/library/subtitles?path=films/movie.mkv")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let tracks = json(&body)["tracks"].as_array().unwrap().clone();
    let paths: Vec<&str> = tracks.iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["films/movie.en.srt", "films/movie.vtt"]);
    assert_eq!(tracks[0]["lang"], "en");
    assert_eq!(tracks[1]["label"], "movie");

    let (status, headers, body) = call(&f.app, get(tracks[0]["url"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/vtt; charset=utf-8");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.500\ncafé\n"
    );
    let (status, _, body) = call(&f.app, get("/api/library/vtt?path=films/movie.vtt")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(&body)["error"], "bad_subtitles");
}
