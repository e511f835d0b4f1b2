//! TLS: the certificate the HTTPS listeners present. Either the operator's PEM files or a
//! self-signed certificate made once with rcgen and kept in `<data_dir>/tls/`. The certificate
//! sits behind an `ArcSwap` read by a rustls resolver, so SIGHUP swaps it for new handshakes
//! while open connections keep the one they started with.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    /// Self-signed, kept in `dir` (`cert.pem`, `key.pem`); `names` are its SANs.
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

impl CertSource {
    /// Checks, without writing anything, what `load` would use: operator files must exist,
    /// parse and fit together; a self-signed pair already made is checked the same way (a
    /// missing one is made at start).
    pub fn check(&self) -> Result<(), TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let (cert, key) = self.paths();
        if matches!(self, CertSource::SelfSigned { .. }) && !(cert.exists() && key.exists()) {
            return Ok(());
        }
        load_pem(&cert, &key, &provider).map(|_| ())
    }

    pub fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            CertSource::Files { cert, key } => (cert.clone(), key.clone()),
            CertSource::SelfSigned { dir, .. } => (dir.join("cert.pem"), dir.join("key.pem")),
        }
    }

    /// Loads the certificate, first generating the self-signed one if it does not exist yet.
    /// Blocking file I/O: call at start-up or from `spawn_blocking`.
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        if let CertSource::SelfSigned { dir, names } = self {
            let (cert, key) = self.paths();
            if !cert.exists() || !key.exists() {
                generate_self_signed(dir, names)?;
            }
        }
        let (cert, key) = self.paths();
        load_pem(&cert, &key, provider)
    }
}

fn load_pem(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate in file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    CertifiedKey::from_der(chain, key_der, provider)
        .map_err(|e| file_err(key, format!("key does not fit the certificate: {e}")))
}

/// Writes a new self-signed certificate; the key file is created with mode 0600 and both files
/// appear atomically (temp file + rename), so a crash never leaves half a key.
fn generate_self_signed(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_atomic(
        &dir.join("key.pem"),
        ck.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomic(&dir.join("cert.pem"), ck.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), names = ?names, "generated a self-signed certificate");
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| file_err(&tmp, e))?;
    f.write_all(data).map_err(|e| file_err(&tmp, e))?;
    f.sync_all().map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))?;
    Ok(())
}

/// SAN list for the self-signed certificate: host name, `<host>.local`, localhost and the
/// addresses we listen on (loopback for wildcard listeners).
pub fn default_names(listen: &[std::net::SocketAddr]) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(host) = gethostname::gethostname().into_string() {
        if !host.is_empty() && host != "localhost" {
            names.push(format!("{host}.local"));
            names.push(host);
        }
    }
    names.push("localhost".to_string());
    names.push("127.0.0.1".to_string());
    names.push("::1".to_string());
    for a in listen {
        if !a.ip().is_unspecified() {
            names.push(a.ip().to_string());
        }
    }
    names.sort();
    names.dedup();
    names
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

/// Everything the HTTPS listeners need, and the handle SIGHUP reloads through.
pub struct TlsState {
    source: CertSource,
    provider: Arc<CryptoProvider>,
    cert: Arc<ReloadableCert>,
    pub config: Arc<ServerConfig>,
}

impl TlsState {
    /// Blocking (reads or writes key files): call before the runtime serves.
    pub fn new(source: CertSource) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = source.load(&provider)?;
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
        })
    }

    /// Re-reads the certificate; on error the old one stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = self.source.load(&self.provider)?;
        self.cert.current.store(Arc::new(key));
        Ok(())
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_is_made_once_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = CertSource::SelfSigned {
            dir: dir.path().join("tls"),
            names: vec!["localhost".into(), "127.0.0.1".into()],
        };
        let state = TlsState::new(src.clone()).expect("generated");
        let (cert, key) = src.paths();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(&cert).unwrap();
        state.reload().unwrap();
        let again = TlsState::new(src).unwrap();
        drop(again);
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "reused, not regenerated"
        );
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let err = TlsState::new(CertSource::Files {
            cert: cert.clone(),
            key: dir.path().join("missing.pem"),
        })
        .err()
        .expect("fails");
        assert!(err.to_string().contains("c.pem"), "{err}");
    }

    #[test]
    fn names_include_loopback_and_listen_ips() {
        let names = default_names(&[
            "10.1.2.3:8443".parse().unwrap(),
            "0.0.0.0:1".parse().unwrap(),
        ]);
        for n in ["localhost", "127.0.0.1", "::1", "10.1.2.3"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "0.0.0.0"));
    }
}
