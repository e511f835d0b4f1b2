use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

async fn get(uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = routes::<()>()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
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

fn app_js() -> &'static Asset {
    generated::ASSETS
        .iter()
        .find(|a| a.path == "app.js")
        .expect("ui/app.js is embedded")
}

#[tokio::test]
async fn index_names_this_version_and_is_revalidated() {
    let (status, headers, body) = get("/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(&format!("/ui/{VERSION}/app.js")), "{text}");
    assert!(!text.contains("{{v}}"));
    // No inline script: the page-wide CSP allows none.
    assert!(!text.contains("<script>"));
}

#[tokio::test]
async fn assets_are_negotiated_and_cached_for_good() {
    let uri = format!("/ui/{VERSION}/app.js");
    let a = app_js();
    let (status, headers, body) = get(&uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE);
    assert_eq!(headers[header::VARY], "accept-encoding");
    let mut plain = Vec::new();
    brotli_decompress(&body, &mut plain);
    assert_eq!(plain, a.plain().unwrap());

    let (_, headers, body) = get(&uri, &[("accept-encoding", "gzip, br;q=0")]).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(body, a.gzip.unwrap());

    let (_, headers, body) = get(&uri, &[]).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body, a.plain().unwrap());
    let etag = headers[header::ETAG].to_str().unwrap().to_string();

    let (status, _, body) = get(&uri, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn another_version_or_name_is_not_found() {
    let (status, _, body) = get("/ui/000000000000/app.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(body).unwrap().contains("reload"));
    let (status, _, _) = get(&format!("/ui/{VERSION}/nothing.js"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&format!("/ui/{VERSION}/../Cargo.toml"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The module specifiers a file imports (`from '…'`, `import('…')`), either quote.
fn imports(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for marker in ["from '", "from \"", "import('", "import(\""] {
        for rest in text.split(marker).skip(1) {
            let quote = marker.chars().last().unwrap_or('\'');
            if let Some(end) = rest.find(quote) {
                out.push(&rest[..end]);
            }
        }
    }
    out
}

#[test]
fn every_module_import_is_embedded() {
    // A relative import of a file that is not embedded would fail only in the browser.
    let mut checked = 0;
    for a in generated::ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let plain = a.plain().unwrap();
        let text = std::str::from_utf8(&plain).unwrap();
        for spec in imports(text) {
            let mut dir: Vec<&str> = a.path.split('/').collect();
            dir.pop();
            let mut rest = spec;
            loop {
                if let Some(r) = rest.strip_prefix("./") {
                    rest = r;
                } else if let Some(r) = rest.strip_prefix("../") {
                    assert!(dir.pop().is_some(), "{}: {spec} leaves the UI", a.path);
                    rest = r;
                } else {
                    break;
                }
            }
            assert!(
                spec.starts_with('.'),
                "{}: import {spec:?} is not relative",
                a.path
            );
            dir.push(rest);
            let full = dir.join("/");
            assert!(
                generated::ASSETS.iter().any(|b| b.path == full),
                "{}: imports {spec} ({full}), which is not embedded",
                a.path
            );
            checked += 1;
        }
    }
    // app.js alone imports a dozen modules: finding none means the scan is broken.
    assert!(checked > 20, "only {checked} imports found");
}

fn brotli_decompress(data: &[u8], out: &mut Vec<u8>) {
    use std::io::Read;
    brotli::Decompressor::new(data, 4096)
        .read_to_end(out)
        .expect("a valid brotli stream");
}
