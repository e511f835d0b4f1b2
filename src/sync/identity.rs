//! The node's sync identity: an ECDSA P-256 key and a self-signed certificate kept together in
//! `<data_dir>/sync/identity.pem` (mode 0600), made once at the first start and never replaced
//! by the service. The node id peers know is the hex SHA-256 of that certificate's DER.
//!
//! It is not the user-facing TLS certificate (`tls`): that one may be renewed by names or
//! replaced by the operator on SIGHUP, and a node id must not change with it. Nor is it the
//! notes' HLC node id (table `node`), which stays what it is: it is stamped into revisions
//! already written, while this one is what peers pin and trust.
//!
//! Key and certificate are one file so they are written by one rename: there is no state in
//! which one exists without the other. A file that is there but unusable is an error at start,
//! never silently replaced: a new identity is a new node to every peer.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The folder under the data dir that holds sync state.
pub const SYNC_DIR: &str = "sync";
/// The identity file's name in [`SYNC_DIR`].
pub const IDENTITY_FILE: &str = "identity.pem";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file exists but cannot be used: never replaced behind the operator's back.
    #[error(
        "{path}: the node's sync identity cannot be used: {reason}. It holds the node id \
         peers know: restore it from a backup, or remove it to make a new identity (peers \
         will see a new node)"
    )]
    Unusable { path: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("cannot make the node's sync identity: {0}")]
    Generate(String),
}

fn io_err(path: &Path, e: std::io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.display().to_string(),
        reason: crate::storage::errno_message(&e),
    }
}

/// The node's identity, loaded.
#[derive(Clone)]
pub struct NodeIdentity {
    /// Hex SHA-256 of the certificate's DER (64 characters).
    id: String,
    /// The certificate and its key, for the mutually authenticated TLS replication will use.
    key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("id", &self.id)
            .finish()
    }
}

impl NodeIdentity {
    /// Loads `<data_dir>/sync/identity.pem`, making it first if there is none. Blocking.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let provider = rustls::crypto::ring::default_provider();
        let dir = data_dir.join(SYNC_DIR);
        let path = dir.join(IDENTITY_FILE);
        real_dir(&dir)?;
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create(&dir, &path)?;
                let made = load(&path, &provider)?;
                tracing::info!(node_id = %made.id, file = %path.display(),
                    "made the node's sync identity");
                return Ok(made);
            }
            Err(e) => return Err(io_err(&path, e)),
        }
        let loaded = load(&path, &provider)?;
        tighten(&path);
        Ok(loaded)
    }

    /// For `config check`: an identity that is there must load; none is fine (the first
    /// start makes it). Reads only.
    pub fn check(data_dir: &Path) -> Result<(), IdentityError> {
        real_dir(&data_dir.join(SYNC_DIR))?;
        let path = data_dir.join(SYNC_DIR).join(IDENTITY_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
            Ok(_) => load(&path, &rustls::crypto::ring::default_provider()).map(|_| ()),
        }
    }

    /// The node id: hex SHA-256 of the identity certificate.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first 8 hex digits of the id, as people and host names see it.
    pub fn id8(&self) -> &str {
        &self.id[..8]
    }

    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.key.clone()
    }
}

/// The node id of a certificate: hex SHA-256 of its DER.
pub fn node_id_of(cert: &CertificateDer<'_>) -> String {
    super::hex(&Sha256::digest(cert.as_ref()))
}

fn unusable(path: &Path, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unusable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The most an identity file may hold: a key and a certificate take about 1 KiB.
const MAX_IDENTITY_BYTES: u64 = 64 * 1024;

/// `<data_dir>/sync`, if there, must be a folder of its own: a link there would make the node
/// keep its private key wherever the link points (and take whatever identity is there). One
/// left open to others is made 0700 again. Missing is fine: the first start makes it.
fn real_dir(dir: &Path) -> Result<(), IdentityError> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir, e)),
        Ok(md) if !md.is_dir() => Err(unusable(dir, "not a folder (a link is not followed)")),
        Ok(md) => {
            if md.permissions().mode() & 0o077 != 0 {
                if let Err(e) =
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                {
                    tracing::warn!(dir = %dir.display(), error = %crate::storage::errno_message(&e),
                        "the sync folder is open to other users and could not be made private");
                }
            }
            Ok(())
        }
    }
}

fn load(path: &Path, provider: &CryptoProvider) -> Result<NodeIdentity, IdentityError> {
    let md = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    if !md.is_file() {
        return Err(unusable(path, "not a regular file"));
    }
    if md.len() > MAX_IDENTITY_BYTES {
        return Err(unusable(
            path,
            format!("{} bytes, more than an identity holds", md.len()),
        ));
    }
    let pem = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| unusable(path, format!("not PEM: {e}")))?;
    let [cert] = <[_; 1]>::try_from(certs)
        .map_err(|c: Vec<_>| unusable(path, format!("{} certificates, not one", c.len())))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| unusable(path, format!("no usable private key: {e}")))?;
    let id = node_id_of(&cert);
    let key = CertifiedKey::from_der(vec![cert], key, provider)
        .map_err(|e| unusable(path, format!("the key does not fit the certificate: {e}")))?;
    Ok(NodeIdentity {
        id,
        key: Arc::new(key),
    })
}

/// Makes a new key and certificate and writes them as one file (0600) by one rename, in a
/// folder made 0700. The certificate's dates are not checked by peers (they pin its hash), so
/// it is valid from 1975 to 4096: no clock, however wrong, makes it look expired.
fn create(dir: &Path, path: &Path) -> Result<(), IdentityError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let gen_err = |e: rcgen::Error| IdentityError::Generate(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "streamhub sync node");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let text = format!("{}{}", cert.pem(), key.serialize_pem());
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // The rename reaches the disk with the folder's entry.
        let _ = d.sync_all();
    }
    Ok(())
}

/// A kept file readable by others (copied in by hand) is made 0600 again, or a warning says so.
fn tighten(path: &Path) {
    let Ok(md) = std::fs::metadata(path) else {
        return;
    };
    if md.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(file = %path.display(), error = %crate::storage::errno_message(&e),
            "the sync identity is readable by other users and could not be made private");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_the_same_id_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = NodeIdentity::load_or_create(dir.path()).expect("made");
        assert_eq!(a.id().len(), 64);
        assert!(a.id().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a.id8(), &a.id()[..8]);
        let file = dir.path().join("sync/identity.pem");
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = NodeIdentity::load_or_create(dir.path()).expect("loaded");
        assert_eq!(a.id(), b.id());
        // The id is the certificate's hash.
        assert_eq!(node_id_of(&b.certified_key().cert[0]), b.id());
        let other = tempfile::tempdir().expect("tmp");
        let c = NodeIdentity::load_or_create(other.path()).expect("made");
        assert_ne!(c.id(), a.id());
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        NodeIdentity::load_or_create(dir.path()).expect("made");
        let file = dir.path().join("sync/identity.pem");
        let good = std::fs::read_to_string(&file).expect("read");
        let cert_only: String = good
            .split_inclusive('\n')
            .take_while(|l| !l.contains("PRIVATE KEY"))
            .collect();
        let other = tempfile::tempdir().expect("tmp");
        NodeIdentity::load_or_create(other.path()).expect("made");
        let other_text =
            std::fs::read_to_string(other.path().join("sync/identity.pem")).expect("read");
        let other_key = &other_text[other_text.find("-----BEGIN PRIVATE").expect("key")..];
        assert!(NodeIdentity::check(dir.path()).is_ok());
        assert!(NodeIdentity::check(&dir.path().join("none")).is_ok());
        for (bad, why) in [
            ("garbage\n".to_string(), "0 certificates"),
            (cert_only.clone(), "no usable private key"),
            (format!("{cert_only}{other_key}"), "does not fit"),
            (String::new(), "0 certificates"),
            (
                format!("{cert_only}{cert_only}{other_key}"),
                "2 certificates",
            ),
        ] {
            std::fs::write(&file, &bad).expect("write");
            let err = NodeIdentity::load_or_create(dir.path()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, IdentityError::Unusable { .. }), "{msg}");
            assert!(msg.contains(why), "{why}: {msg}");
            assert!(msg.contains("identity.pem"), "{msg}");
            assert_eq!(std::fs::read_to_string(&file).expect("read"), bad);
            assert!(NodeIdentity::check(dir.path()).is_err());
        }
    }

    #[test]
    fn a_loose_mode_is_tightened() {
        let dir = tempfile::tempdir().expect("tmp");
        NodeIdentity::load_or_create(dir.path()).expect("made");
        let file = dir.path().join("sync/identity.pem");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        NodeIdentity::load_or_create(dir.path()).expect("loaded");
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// The attack run: a `sync` folder replaced by a link made the node write a new private
    /// key wherever the link pointed. A link (or a file) there stops the start, and nothing
    /// is written through it; an oversized file is refused before it is read.
    #[test]
    fn a_linked_sync_folder_or_a_huge_file_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let elsewhere = tempfile::tempdir().expect("tmp");
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("sync")).expect("link");
        let err = NodeIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        assert!(NodeIdentity::check(dir.path()).is_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).expect("dir").count(), 0);

        let dir = tempfile::tempdir().expect("tmp");
        NodeIdentity::load_or_create(dir.path()).expect("made");
        let sync = dir.path().join("sync");
        std::fs::set_permissions(&sync, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        NodeIdentity::load_or_create(dir.path()).expect("loaded");
        let mode = std::fs::metadata(&sync).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(sync.join("identity.pem"), vec![b'x'; 100_000]).expect("write");
        let err = NodeIdentity::load_or_create(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("more than an identity holds"),
            "{err}"
        );
    }
}
