//! The connecting side of a sync connection: TCP, TLS with this node's sync identity and the
//! sync ALPN, the membership handshake (the other node proves first), then JSON requests
//! over HTTP/1.1 on the one connection. A connection is kept between rounds, so an idle
//! cluster exchanges one small changes request per round, not a handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::proof::{self, Role, Transcript};
use super::session::Me;
use super::tlsconf::{self, ALPN};
use super::wire::{self, Auth, Hello, HelloReply, RevsReply, RevsRequest, API};
use crate::notes::{ChangesPage, WireRev};
use crate::secret;

/// How long a TCP connect may take, per address.
const CONNECT: Duration = Duration::from_secs(3);
/// How long the TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How long one request may take, answer included.
const REQUEST: Duration = Duration::from_secs(30);
/// The largest answer read from a peer that proved its membership.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The largest answer read before that (`hello`, `auth`: a few hundred bytes). Anyone on the
/// LAN can announce a node of its own with the cluster's (public) tag and so be connected
/// to by every member, once per peer task: at 16 MiB a hello, 30 such fakes held 1 GiB of
/// a node's memory until the request deadline (attack7's evil_peer.py).
const MAX_ANSWER_UNPROVED: usize = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// It answered, but not in the sync protocol version this node speaks.
    #[error("{0}")]
    Version(String),
    /// It is not the node it was announced as.
    #[error("presented node id {got}, expected {expected}")]
    WrongNode { got: String, expected: String },
    /// Its proof of the cluster key does not check: another cluster, or an impostor.
    #[error(
        "not a member of this cluster: its proof of the cluster key does not check (the two \
         boxes have different sync.cluster_key values, or it is an impostor)"
    )]
    NotMember,
    /// It refused this node's proof (its cluster key differs).
    #[error("refused this node: its cluster key differs (compare sync.cluster_key on both boxes)")]
    Refused,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out")]
    Timeout,
}

/// An authenticated connection to a peer.
pub struct Connection {
    send: SendRequest<Full<Bytes>>,
    pub peer_id: String,
    pub peer_name: String,
    /// The peer proved its membership (its answers may be large from then on).
    proved: bool,
}

/// Connects to the first address of `addrs` that answers, proves membership both ways, and
/// returns the connection. `expect`: the node id the peer was announced with, if any.
pub async fn connect(
    addrs: &[SocketAddr],
    host: &str,
    config: &Arc<ClientConfig>,
    me: &Me,
    expect: Option<&str>,
) -> Result<Connection, SyncError> {
    let mut last = SyncError::Unreachable("no address".into());
    let mut tcp = None;
    for a in addrs {
        match tokio::time::timeout(CONNECT, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = SyncError::Unreachable(format!("{a}: {e}")),
            Err(_) => last = SyncError::Unreachable(format!("{a}: connect timed out")),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    let name = server_name(host);
    let tls = tokio::time::timeout(
        HANDSHAKE,
        tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| SyncError::Timeout)?
    .map_err(|e| {
        let text = e.to_string();
        if text.contains("NoApplicationProtocol") || text.contains("no_application_protocol") {
            SyncError::Version(format!(
                "the peer does not speak {} (another version, or sync is off there)",
                String::from_utf8_lossy(ALPN)
            ))
        } else if text.contains("InvalidContentType") {
            // The answer to a ClientHello was not TLS: most likely an HTTP port.
            SyncError::Tls(format!(
                "{text}: the peer answered in plain HTTP? peers need its HTTPS port \
                 (server.tls_listen, 8443 by default)"
            ))
        } else {
            SyncError::Tls(text)
        }
    })?;
    let (_, session) = tls.get_ref();
    if session.alpn_protocol() != Some(ALPN) {
        return Err(SyncError::Version(format!(
            "the peer does not speak {} (another version, or sync is off there)",
            String::from_utf8_lossy(ALPN)
        )));
    }
    let peer_id = tlsconf::peer_id(session.peer_certificates())
        .ok_or_else(|| SyncError::Tls("no certificate".into()))?;
    if let Some(expected) = expect {
        if expected != peer_id {
            return Err(SyncError::WrongNode {
                got: peer_id,
                expected: expected.to_string(),
            });
        }
    }
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| SyncError::Protocol(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "sync connection ended");
        }
    });
    let mut c = Connection {
        send,
        peer_id,
        peer_name: String::new(),
        proved: false,
    };
    c.prove(me).await?;
    Ok(c)
}

fn server_name(host: &str) -> ServerName<'static> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    // The name is not checked (certificates are pinned by hash); it only goes into SNI.
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

impl Connection {
    /// Hello and auth: checks the peer's proof first, then sends this node's.
    async fn prove(&mut self, me: &Me) -> Result<(), SyncError> {
        let client_nonce = proof::nonce();
        let hello = Hello {
            api: API,
            nonce: secret::b64(&client_nonce),
        };
        let (status, body) = self.call("POST", "/sync/v1/hello", Some(&hello)).await?;
        if status == 409 {
            return Err(SyncError::Version(error_message(&body)));
        }
        if status != 200 {
            return Err(SyncError::Protocol(format!("hello: HTTP {status}")));
        }
        let reply: HelloReply = decode(&body)?;
        if reply.api != API {
            return Err(SyncError::Version(format!(
                "the peer speaks sync API {}, this node {API}",
                reply.api
            )));
        }
        let server_nonce = wire::decode_nonce(&reply.nonce)
            .ok_or_else(|| SyncError::Protocol("hello: bad nonce".into()))?;
        let transcript = Transcript {
            server_id: &self.peer_id,
            client_id: &me.id,
            server_nonce: &server_nonce,
            client_nonce: &client_nonce,
        };
        let proved = reply.id == self.peer_id
            && wire::decode_proof(&reply.proof)
                .is_some_and(|p| transcript.check(&me.key, Role::Server, &p));
        if !proved {
            return Err(SyncError::NotMember);
        }
        let auth = Auth {
            proof: secret::b64(&transcript.proof(&me.key, Role::Client)),
            name: me.name.clone(),
        };
        let (status, _) = self.call("POST", "/sync/v1/auth", Some(&auth)).await?;
        if status != 204 {
            return Err(SyncError::Refused);
        }
        self.proved = true;
        self.peer_name = wire::clean_name(&reply.name);
        Ok(())
    }

    /// One page of the peer's changes after `since`.
    /// `instance`: the one our checkpoint belongs to (empty: none yet); when it is still the
    /// peer's and nothing is new, the peer answers 204 and the page is empty.
    pub async fn changes(
        &mut self,
        since: i64,
        limit: usize,
        instance: &str,
    ) -> Result<ChangesPage, SyncError> {
        let mut path = format!("/sync/v1/changes?since={since}&limit={limit}");
        if super::is_instance(instance) {
            path.push_str("&instance=");
            path.push_str(instance);
        }
        let (status, body) = self.call::<()>("GET", &path, None).await?;
        if status == 204 && !instance.is_empty() {
            return Ok(ChangesPage {
                instance: instance.to_string(),
                max_seq: since,
                last_seq: since,
                changes: Vec::new(),
            });
        }
        expect_ok(status, &body)?;
        decode(&body)
    }

    /// The revisions asked for, as the peer may send them (it may leave some out).
    pub async fn revs(&mut self, revs: &[String]) -> Result<Vec<WireRev>, SyncError> {
        let req = RevsRequest {
            revs: revs.to_vec(),
        };
        let (status, body) = self.call("POST", "/sync/v1/revs", Some(&req)).await?;
        expect_ok(status, &body)?;
        Ok(decode::<RevsReply>(&body)?.revs)
    }

    /// Tells the peer this node has changes for it to pull.
    pub async fn nudge(&mut self) -> Result<(), SyncError> {
        let (status, body) = self.call::<()>("POST", "/sync/v1/nudge", None).await?;
        if status != 204 {
            return Err(SyncError::Protocol(format!(
                "nudge: HTTP {status}: {}",
                error_message(&body)
            )));
        }
        Ok(())
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.send.is_closed()
    }

    async fn call<T: Serialize>(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&T>,
    ) -> Result<(u16, Bytes), SyncError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| SyncError::Protocol(e.to_string()))?,
            None => Vec::new(),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "streamhub-sync");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| SyncError::Protocol(e.to_string()))?;
        let limit = if self.proved {
            MAX_ANSWER
        } else {
            MAX_ANSWER_UNPROVED
        };
        let exchange = async {
            self.send
                .ready()
                .await
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let res = self
                .send
                .send_request(req)
                .await
                .map_err(|e| SyncError::Protocol(e.to_string()))?;
            let status = res.status().as_u16();
            let body = Limited::new(res.into_body(), limit)
                .collect()
                .await
                .map_err(|e| SyncError::Protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST, exchange)
            .await
            .map_err(|_| SyncError::Timeout)?
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SyncError> {
    serde_json::from_slice(body).map_err(|e| SyncError::Protocol(format!("bad answer: {e}")))
}

fn expect_ok(status: u16, body: &[u8]) -> Result<(), SyncError> {
    match status {
        200 => Ok(()),
        403 => Err(SyncError::Refused),
        _ => Err(SyncError::Protocol(format!(
            "HTTP {status}: {}",
            error_message(body)
        ))),
    }
}

/// The `message` of a JSON error body, or a note that there was none.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .map(|m| wire::clip(&m, 300))
        .unwrap_or_else(|| "no message".into())
}
