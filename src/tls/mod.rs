//! TLS: the certificate the HTTPS listeners present. Either the operator's PEM files or a
//! self-signed certificate made with rcgen and kept in `<data_dir>/tls/`: it names the host,
//! `<host>.local`, loopback and the addresses clients reach the box on (every LAN address when
//! a listener is on `0.0.0.0`/`[::]`), and is replaced only when it no longer covers every one
//! of those names (or is about to expire), so a browser that trusted it keeps trusting it. The
//! certificate sits behind an `ArcSwap` read by a rustls resolver, so SIGHUP swaps it for new
//! handshakes while open connections keep the one they started with.

use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// How long a new self-signed certificate is valid. Apple's TLS stack (Safari, and Chrome on
/// macOS and iOS) refuses a server certificate valid for more than 825 days even when the user
/// trusted it, so it stays under that.
mod names;
mod selfsigned;
#[cfg(test)]
mod tests;

pub use names::*;
pub use selfsigned::*;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("tls setup: {0}")]
    Setup(String),
}

fn file_err(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Operator-provided PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Self-signed, kept in `dir` (`cert.pem`, `key.pem`), for the TLS listeners `listen`: the
    /// names it must cover ([`default_names`]) are worked out again at every load, so a reload
    /// (SIGHUP) after an address change makes a certificate that names the new address.
    SelfSigned {
        dir: PathBuf,
        listen: Vec<SocketAddr>,
    },
}

impl CertSource {
    /// Checks, without writing anything, what `load` would use: operator files must exist,
    /// parse and fit together; a self-signed pair already made must be readable (a missing,
    /// broken or outdated one is made anew at start).
    pub fn check(&self) -> Result<(), TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let (cert, key) = self.paths();
        match self {
            CertSource::Files { .. } => load_pem(&cert, &key, &provider).map(|_| ()),
            CertSource::SelfSigned { .. } => {
                for path in [&cert, &key] {
                    if path.exists() {
                        std::fs::read(path).map_err(|e| file_err(path, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    pub fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            CertSource::Files { cert, key } => (cert.clone(), key.clone()),
            CertSource::SelfSigned { dir, .. } => (dir.join("cert.pem"), dir.join("key.pem")),
        }
    }

    /// Loads the certificate; a self-signed one is first made, or made anew, when the one kept
    /// does not cover every name wanted now ([`ensure_self_signed`]). Blocking (lists the
    /// network interfaces, reads and writes key files): call at start-up or from
    /// `spawn_blocking`.
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        self.load_named(provider).map(|(key, _)| key)
    }

    /// [`CertSource::load`], and for a self-signed certificate the names it was checked for.
    fn load_named(
        &self,
        provider: &CryptoProvider,
    ) -> Result<(CertifiedKey, Option<Vec<String>>), TlsError> {
        match self {
            CertSource::Files { cert, key } => Ok((load_pem(cert, key, provider)?, None)),
            CertSource::SelfSigned { dir, listen } => {
                let names = default_names(listen);
                let key = ensure_self_signed(dir, &names, provider, SystemTime::now())?;
                Ok((key, Some(names)))
            }
        }
    }
}

fn load_pem(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = std::fs::read(cert).map_err(|e| file_err(cert, e))?;
    let chain = parse_chain(cert, &cert_pem)?;
    let key_pem = std::fs::read(key).map_err(|e| file_err(key, e))?;
    fit_key(chain, key, &key_pem, provider)
}

fn parse_chain(cert: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate in file"));
    }
    Ok(chain)
}

fn fit_key(
    chain: Vec<CertificateDer<'static>>,
    key: &Path,
    pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let key_der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| file_err(key, e))?;
    CertifiedKey::from_der(chain, key_der, provider)
        .map_err(|e| file_err(key, format!("key does not fit the certificate: {e}")))
}

/// rustls resolver holding the current certificate.
pub struct ReloadableCert {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert").finish()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// How often the names a self-signed certificate must cover are worked out again
/// ([`TlsState::refresh`]): the service may start before DHCP has given the box its address, and
/// a lease may change while it runs.
pub const NAMES_EVERY: Duration = Duration::from_secs(60);

/// Everything the HTTPS listeners need, and the handle SIGHUP reloads through.
pub struct TlsState {
    source: CertSource,
    provider: Arc<CryptoProvider>,
    cert: Arc<ReloadableCert>,
    pub config: Arc<ServerConfig>,
    /// The names the self-signed certificate in use was checked for (`None`: operator files).
    /// Held while loading, so a reload and a refresh never write the pair at the same time.
    names: Mutex<Option<Vec<String>>>,
}

impl TlsState {
    /// Blocking (reads or writes key files): call before the runtime serves.
    pub fn new(source: CertSource) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, names) = source.load_named(&provider)?;
        let cert = Arc::new(ReloadableCert {
            current: ArcSwap::from_pointee(key),
        });
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsState {
            source,
            provider,
            cert,
            config: Arc::new(config),
            names: Mutex::new(names),
        })
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Option<Vec<String>>> {
        // Only ever replaced whole: a panic cannot leave it torn.
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the certificate (a self-signed one is checked against the names wanted now,
    /// and replaced if it does not cover them); on error the old one stays in use. Blocking.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut names = self.names();
        let (key, now) = self.source.load_named(&self.provider)?;
        self.cert.current.store(Arc::new(key));
        *names = now;
        Ok(())
    }

    /// Whether the certificate is the self-signed one (which [`TlsState::refresh`] keeps up).
    pub fn is_self_signed(&self) -> bool {
        matches!(self.source, CertSource::SelfSigned { .. })
    }

    /// For the self-signed certificate: works out the names wanted now (the interfaces are
    /// listed again) and, only when they differ from those of the last load, checks the pair
    /// against them, replacing it if it does not cover them, and serves it to new handshakes.
    /// Returns whether the names had changed. Blocking (one getifaddrs when nothing changed).
    pub fn refresh(&self) -> Result<bool, TlsError> {
        match &self.source {
            CertSource::Files { .. } => Ok(false),
            CertSource::SelfSigned { listen, .. } => {
                self.refresh_with(default_names(listen), SystemTime::now())
            }
        }
    }

    fn refresh_with(&self, wanted: Vec<String>, now: SystemTime) -> Result<bool, TlsError> {
        let CertSource::SelfSigned { dir, .. } = &self.source else {
            return Ok(false);
        };
        let mut names = self.names();
        if names.as_ref() == Some(&wanted) {
            return Ok(false);
        }
        tracing::info!(names = ?wanted, "the names for the self-signed certificate changed");
        let key = ensure_self_signed(dir, &wanted, &self.provider, now)?;
        self.cert.current.store(Arc::new(key));
        *names = Some(wanted);
        Ok(true)
    }

    /// Hex SHA-256 of the certificate served now (the leaf), as discovery publishes it (`fp`)
    /// for clients that pin it.
    pub fn fingerprint(&self) -> Option<String> {
        use sha2::Digest;
        let key = self.cert.current.load();
        let leaf = key.cert.first()?;
        Some(crate::sync::hex(&sha2::Sha256::digest(leaf.as_ref())))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}
