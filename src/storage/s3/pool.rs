//! Kept-alive connections to the store. Every seek of a player is a ranged GET, every stat a
//! HEAD: a new TCP (and TLS) connection for each costs a round trip or three, so connections
//! whose last answer has been read are reused.
//!
//! A connection goes back into the pool as soon as its answer's head has arrived; hyper
//! marks it ready again only once that answer's body has been read to the end (an answer
//! dropped half-read closes it), so a taker skips busy ones and drops closed ones.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use super::body::ReqBody;

pub(super) type Sender = SendRequest<ReqBody>;

/// Connections kept at most (idle or finishing an answer).
const MAX_KEPT: usize = 16;
/// An idle connection older than this is not reused: stores close idle connections after
/// some seconds (AWS about 20), and a request on a connection the server is closing fails.
const MAX_IDLE: Duration = Duration::from_secs(15);

#[derive(Default)]
pub(super) struct Pool {
    kept: Mutex<Vec<(Sender, Instant)>>,
}

impl Pool {
    /// A connection ready for a request, if one is kept.
    pub(super) fn take(&self) -> Option<Sender> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        kept.retain(|(s, at)| !s.is_closed() && now.duration_since(*at) < MAX_IDLE);
        let i = kept.iter().position(|(s, _)| s.is_ready())?;
        Some(kept.swap_remove(i).0)
    }

    /// Keeps `send` for a later request (its answer may still be streaming).
    pub(super) fn put(&self, send: Sender) {
        if send.is_closed() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_KEPT {
            kept.remove(0);
        }
        kept.push((send, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use ::http::{Method, Response};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;

    use super::super::{http::Http, sign::Signer};

    /// A store stand-in on loopback that counts the connections it accepts; `close` makes
    /// it end each connection after one answer.
    async fn store(close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"hello"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    async fn three_gets(endpoint: &str) {
        let signer = Signer::new(endpoint, "media", "r", true, "k", "s").unwrap();
        let http = Http::new(&signer, std::time::Duration::from_secs(5), "media").unwrap();
        let url = format!("{endpoint}/media/a.bin");
        for _ in 0..3 {
            let a = http
                .send("read", Method::GET, &url, &[], Bytes::new())
                .await
                .unwrap();
            assert!(a.status.is_success());
            let body = http.small_body("read", a.body).await.unwrap();
            assert_eq!(&body[..], b"hello");
        }
    }

    #[tokio::test]
    async fn answers_read_to_the_end_free_their_connection_for_the_next_request() {
        let (endpoint, accepted) = store(false).await;
        three_gets(&endpoint).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_store_that_closes_after_each_answer_still_gets_every_request() {
        let (endpoint, accepted) = store(true).await;
        three_gets(&endpoint).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }
}
