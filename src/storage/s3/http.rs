//! The HTTP side of the S3 backend: requests over kept-alive connections (`pool`) of the
//! hyper client the program already has (plain TCP, or rustls with the system's CA bundle for https), with
//! the storage timeout on connecting and on every wait for bytes, and S3's answers mapped to
//! [`StorageError`]s that name the config key to fix.
//!
//! Requests are presigned URLs (`sign` signs in the query string), so nothing here knows
//! about SigV4: it only carries the signed headers along.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::{ByteStream, StorageError};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::body::ReqBody;
use super::pool;

/// Builds a request again, for a second try on a new connection.
type Rebuild<'a> = dyn Fn() -> Result<Request<ReqBody>, StorageError> + Sync + 'a;

/// Most bytes of an error answer (or a listing) read into memory.
const MAX_SMALL_BODY: usize = 8 << 20;

/// The connecting side, shared by every request of one backend.
pub(super) struct Http {
    tls: Option<tokio_rustls::TlsConnector>,
    pub(super) timeout: Duration,
    bucket: String,
    /// Where to connect, and the `Host` header (what was signed).
    host: String,
    port: u16,
    authority: String,
    /// Set when the bucket is not this library's (see `identity`): every request fails
    /// with this message instead of being sent.
    blocked: std::sync::OnceLock<String>,
    /// Set while the running service finds the marker wrong (`identity::watch`); cleared
    /// when it is right again. The marker's own reads (`identity`) pass.
    wrong_marker: std::sync::Mutex<Option<String>>,
    pool: pool::Pool,
}

/// An answer whose body is still to be read.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
}

impl Http {
    /// `https`: whether the endpoint needs TLS (then the system's CA bundle is loaded now, so
    /// a missing one fails the start, not the first request).
    pub(super) fn new(
        signer: &super::sign::Signer,
        timeout: Duration,
        bucket: &str,
    ) -> Result<Self, StorageError> {
        let https = signer.https();
        let (host, port) = signer.host_port();
        let tls = if https {
            Some(tokio_rustls::TlsConnector::from(Arc::new(tls_config()?)))
        } else {
            None
        };
        Ok(Http {
            tls,
            timeout,
            bucket: bucket.to_string(),
            host,
            port,
            authority: signer.authority.clone(),
            blocked: std::sync::OnceLock::new(),
            wrong_marker: std::sync::Mutex::new(None),
            pool: pool::Pool::default(),
        })
    }

    /// Refuses every request from now on with `why` (a wrong or empty bucket at start).
    pub(super) fn block(&self, why: String) {
        let _ = self.blocked.set(why);
    }

    /// Blocks (Some) or unblocks (None) every request but the marker's own, at run time.
    pub(super) fn set_wrong_marker(&self, why: Option<String>) {
        *self.wrong_marker.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    fn stalled(&self, op: &'static str) -> StorageError {
        StorageError::Stalled {
            op,
            secs: self.timeout.as_secs(),
        }
    }

    /// Sends one request and waits for the answer's head (not its body).
    pub(super) async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, StorageError> {
        self.send_timed(op, method, url, headers, body, self.timeout)
            .await
    }

    /// [`Http::send`] with its own bound on sending the body and getting the answer's head
    /// (uploads of whole parts need more than the storage timeout).
    pub(super) async fn send_timed(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, StorageError> {
        let build = || self.request(&method, url, headers, ReqBody::bytes(body.clone()));
        let again: Option<&Rebuild> = if method.is_idempotent() {
            Some(&build)
        } else {
            None
        };
        self.dispatch(op, build()?, again, Some(timeout)).await
    }

    /// A PUT whose body, exactly `len` bytes, is streamed on from `rx` as it arrives (an
    /// upload's part). Not bounded here as a whole: the caller bounds each chunk it hands
    /// over, and its wait for the answer once the last one is in.
    pub(super) async fn send_stream(
        &self,
        op: &'static str,
        url: &str,
        len: u64,
        rx: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Result<Answer, StorageError> {
        let req = self.request(&Method::PUT, url, &[], ReqBody::Stream { rx, left: len })?;
        self.dispatch(op, req, None, None).await
    }

    fn request(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> Result<Request<ReqBody>, StorageError> {
        // Sent in origin form (`/bucket/key?…`): the URL's scheme and host are the signer's.
        let origin = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        let mut req = Request::builder()
            .method(method.clone())
            .uri(origin)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_LENGTH, body.len());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(body)
            .map_err(|e| StorageError::Io(format!("S3 request: {e}")))
    }

    async fn within<T>(
        &self,
        op: &'static str,
        limit: Option<Duration>,
        fut: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        match limit {
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .map_err(|_| self.stalled(op))?,
            None => fut.await,
        }
    }

    /// Sends `req` on a kept connection if one is ready, else on a new one; `limit` bounds
    /// the wait for the answer's head. `again` rebuilds a request that is safe to repeat.
    async fn dispatch(
        &self,
        op: &'static str,
        mut req: Request<ReqBody>,
        again: Option<&Rebuild<'_>>,
        limit: Option<Duration>,
    ) -> Result<Answer, StorageError> {
        if let Some(why) = self.blocked.get() {
            return Err(StorageError::Unavailable(why.clone()));
        }
        if op != "identity" {
            let wrong = self.wrong_marker.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(why) = wrong.as_ref() {
                return Err(StorageError::Unavailable(why.clone()));
            }
        }
        if let Some(mut send) = self.pool.take() {
            let sent = self
                .within(op, limit, async { Ok(send.try_send_request(req).await) })
                .await?;
            match sent {
                Ok(resp) => {
                    self.pool.put(send);
                    return Ok(answer(resp));
                }
                // The store had closed the kept connection: a request it never saw, or one
                // that is safe to repeat, goes again on a new connection.
                Err(mut e) => match (e.take_message(), again) {
                    (Some(r), _) => req = r,
                    (None, Some(build)) => req = build()?,
                    (None, None) => {
                        return Err(StorageError::Unavailable(format!(
                            "the S3 store closed the connection: {}",
                            e.into_error()
                        )))
                    }
                },
            }
        }
        let fut = async {
            let mut send = self.connect(op).await?;
            let resp = send.send_request(req).await.map_err(|e| {
                StorageError::Unavailable(format!("the S3 store closed the connection: {e}"))
            })?;
            self.pool.put(send);
            Ok::<_, StorageError>(resp)
        };
        Ok(answer(self.within(op, limit, fut).await?))
    }

    /// A new connection to the store (TCP, then TLS for https), ready for requests.
    async fn connect(&self, op: &'static str) -> Result<pool::Sender, StorageError> {
        let authority = &self.authority;
        let tcp = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| self.stalled(op))?
        .map_err(|e| {
            StorageError::Unavailable(format!(
                "cannot reach the S3 endpoint {authority} (s3.endpoint): {}",
                crate::storage::errno_message(&e)
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|_| StorageError::Invalid("s3.endpoint: bad host name".into()))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| {
                    // What rustls says of an answer in plain HTTP.
                    let hint = if e.to_string().contains("InvalidContentType") {
                        " (the store answered in plain HTTP: if it has no TLS, the endpoint is \
                         http://, not https://)"
                    } else {
                        ""
                    };
                    StorageError::Unavailable(format!(
                        "TLS with the S3 endpoint {authority} (s3.endpoint) failed: {e}{hint}"
                    ))
                })?;
                Box::new(stream)
            }
        };
        handshake(io).await
    }

    /// Reads a small body whole (a listing, an upload id, an error), bounded in size and time.
    pub(super) async fn small_body(
        &self,
        op: &'static str,
        body: Incoming,
    ) -> Result<Bytes, StorageError> {
        let limited = http_body_util::Limited::new(body, MAX_SMALL_BODY);
        let collected = tokio::time::timeout(self.timeout, limited.collect())
            .await
            .map_err(|_| self.stalled(op))?
            .map_err(|e| StorageError::Io(format!("S3 answer cut short: {e}")))?;
        Ok(collected.to_bytes())
    }

    /// The error an unexpected answer means; reads its body for S3's error code.
    pub(super) async fn error(&self, op: &'static str, a: Answer) -> StorageError {
        let body = self.small_body(op, a.body).await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        let code = super::xml::field(&body, "Code").unwrap_or_default();
        match self.error_of(a.status, &code) {
            // Unexpected answers keep S3's own words for the log.
            StorageError::Io(m) => match super::xml::field(&body, "Message") {
                Some(msg) => StorageError::Io(format!("{m}: {msg}")),
                None => StorageError::Io(m),
            },
            e => e,
        }
    }

    pub(super) fn error_of(&self, status: StatusCode, code: &str) -> StorageError {
        let bucket = &self.bucket;
        match (status.as_u16(), code) {
            (404, "NoSuchBucket") => StorageError::Unavailable(format!(
                "the S3 bucket '{bucket}' does not exist (s3.bucket)"
            )),
            (404, "NoSuchUpload") => StorageError::UploadDropped,
            (404, _) => StorageError::NotFound,
            (403, _) | (400, "InvalidAccessKeyId") | (400, "AuthorizationHeaderMalformed") => {
                let why = if code.is_empty() { "403" } else { code };
                StorageError::Unavailable(format!(
                    "the S3 store refused the credentials for bucket '{bucket}' ({why}): check \
                     s3.access_key_id, s3.secret_access_key and s3.region"
                ))
            }
            (412, _) => StorageError::Changed,
            (416, _) => StorageError::Invalid("range outside the object".into()),
            (s, _) if s >= 500 => {
                StorageError::Unavailable(format!("the S3 store answered {s} {code}"))
            }
            (s, _) => StorageError::Io(format!("the S3 store answered {s} {code}")),
        }
    }

    /// Streams `body`, which must be `expected` bytes: a shorter one ends in an error, so a
    /// client sees a cut connection, never wrong bytes. Each wait for bytes is bounded.
    pub(super) fn stream(&self, body: Incoming, expected: u64) -> ByteStream {
        let timeout = self.timeout;
        let stalled = self.stalled("read");
        let state = (body, 0u64, false);
        Box::pin(futures_util::stream::unfold(
            state,
            move |(mut body, got, done)| {
                let stalled = stalled.clone_stalled();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        let frame = match tokio::time::timeout(timeout, body.frame()).await {
                            Err(_) => return Some((Err(stalled), (body, got, true))),
                            Ok(f) => f,
                        };
                        match frame {
                            None if got == expected => return None,
                            None => {
                                let e = StorageError::Io(format!(
                                    "the S3 store sent {got} of {expected} bytes"
                                ));
                                return Some((Err(e), (body, got, true)));
                            }
                            Some(Err(e)) => {
                                let e = StorageError::Io(format!("reading from the S3 store: {e}"));
                                return Some((Err(e), (body, got, true)));
                            }
                            Some(Ok(f)) => {
                                let Ok(data) = f.into_data() else { continue };
                                if data.is_empty() {
                                    continue;
                                }
                                let got = got + data.len() as u64;
                                if got > expected {
                                    let e =
                                        StorageError::Io("the S3 store sent too many bytes".into());
                                    return Some((Err(e), (body, got, true)));
                                }
                                return Some((Ok(data), (body, got, false)));
                            }
                        }
                    }
                }
            },
        ))
    }
}

trait CloneStalled {
    fn clone_stalled(&self) -> StorageError;
}

impl CloneStalled for StorageError {
    fn clone_stalled(&self) -> StorageError {
        match self {
            StorageError::Stalled { op, secs } => StorageError::Stalled { op, secs: *secs },
            other => StorageError::Io(other.to_string()),
        }
    }
}

/// A connection to the store, plain or TLS: one type, so hyper's client is built once for
/// both (each I/O type is another copy of it in the binary).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn answer(resp: hyper::Response<Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn handshake(io: Box<dyn Io>) -> Result<pool::Sender, StorageError> {
    let io = TokioIo::new(io);
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| StorageError::Unavailable(format!("S3 connection: {e}")))?;
    // The connection task ends when the store closes the connection, or when its sender
    // is dropped (from the pool, or with a request given up) and no answer is in flight.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// The system's CA bundle (`SSL_CERT_FILE`, or Debian's and Fedora's usual paths).
fn tls_config() -> Result<rustls::ClientConfig, StorageError> {
    use rustls_pki_types::pem::PemObject;
    let candidates = [
        std::env::var("SSL_CERT_FILE").unwrap_or_default(),
        "/etc/ssl/certs/ca-certificates.crt".to_string(),
        "/etc/pki/tls/certs/ca-bundle.crt".to_string(),
    ];
    let mut roots = rustls::RootCertStore::empty();
    for path in candidates.iter().filter(|p| !p.is_empty()) {
        let Ok(iter) = rustls_pki_types::CertificateDer::pem_file_iter(path) else {
            continue;
        };
        for cert in iter.flatten() {
            let _ = roots.add(cert);
        }
        if !roots.is_empty() {
            break;
        }
    }
    if roots.is_empty() {
        return Err(StorageError::Unavailable(
            "s3.endpoint is https but no CA certificates were found (SSL_CERT_FILE or \
             /etc/ssl/certs/ca-certificates.crt)"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Io(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_to_fix() {
        let signer =
            super::super::sign::Signer::new("http://127.0.0.1:1", "media", "r", true, "k", "s")
                .unwrap();
        let h = Http::new(&signer, Duration::from_secs(1), "media").unwrap();
        let e = h
            .error_of(StatusCode::NOT_FOUND, "NoSuchBucket")
            .to_string();
        assert!(e.contains("s3.bucket") && e.contains("'media'"), "{e}");
        assert!(matches!(
            h.error_of(StatusCode::NOT_FOUND, "NoSuchKey"),
            StorageError::NotFound
        ));
        let e = h
            .error_of(StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
            .to_string();
        assert!(e.contains("s3.secret_access_key"), "{e}");
        assert!(matches!(
            h.error_of(StatusCode::PRECONDITION_FAILED, ""),
            StorageError::Changed
        ));
        assert_eq!(
            h.error_of(StatusCode::SERVICE_UNAVAILABLE, "").outcome(),
            "storage_unavailable"
        );
    }
}
