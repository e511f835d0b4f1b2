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
const VALIDITY: Duration = Duration::from_secs(820 * 86_400);
/// Back-dated by a day, for clients whose clock is a little behind the box's.
const BACKDATE: Duration = Duration::from_secs(86_400);
/// A kept certificate that expires within this is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

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

/// The self-signed pair in `dir`, kept when it still covers every name in `names` (and is not
/// about to expire), else made anew (logged at warn, with the reason): the certificate a
/// browser was told to trust stays as long as it is good for every name wanted now.
///
/// A pair that cannot be parsed or does not fit (a crash between the two renames) is made
/// anew too; one that cannot be read (permissions, I/O) is an error, never overwritten.
pub fn ensure_self_signed(
    dir: &Path,
    names: &[String],
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let why = match (cert.exists(), key.exists()) {
        (false, false) => None,
        (true, false) => Some("key.pem is missing".to_string()),
        (false, true) => Some("cert.pem is missing".to_string()),
        (true, true) => {
            let cert_pem = std::fs::read(&cert).map_err(|e| file_err(&cert, e))?;
            let key_pem = std::fs::read(&key).map_err(|e| file_err(&key, e))?;
            let pair = parse_chain(&cert, &cert_pem)
                .and_then(|chain| fit_key(chain, &key, &key_pem, provider));
            match pair {
                Err(e) => Some(format!("the pair is unusable: {e}")),
                Ok(kept) => match replacement_reason(&kept.cert[0], names, provider, now) {
                    None => {
                        tracing::info!(dir = %dir.display(), names = ?names,
                            "the self-signed certificate covers these names; kept");
                        return Ok(kept);
                    }
                    Some(why) => Some(why),
                },
            }
        }
    };
    if let Some(why) = &why {
        tracing::warn!(dir = %dir.display(), reason = %why, names = ?names,
            "replacing the self-signed certificate: clients that trusted the old one must \
             trust the new one");
    }
    generate_self_signed(dir, names, now)?;
    let made = load_pem(&cert, &key, provider)?;
    tracing::info!(dir = %dir.display(), names = ?names,
        "made a self-signed certificate covering these names");
    Ok(made)
}

/// Why a client that trusts `cert` (and only it) could not use it for every one of `names`
/// `RENEW_BEFORE` from now, or `None` when it can (one not valid yet by this box's clock
/// counts as good). Checked the way a client
/// checks (rustls' webpki verifier: the certificate as its own trust anchor, the serverAuth
/// usage, each name against the SANs), so the answer is what a browser's would be.
fn replacement_reason(
    cert: &CertificateDer<'_>,
    names: &[String],
    provider: &CryptoProvider,
    now: SystemTime,
) -> Option<String> {
    let parsed = match ParsedCertificate::try_from(cert) {
        Ok(p) => p,
        Err(e) => return Some(format!("the certificate cannot be parsed: {e}")),
    };
    let mut roots = RootCertStore::empty();
    if let Err(e) = roots.add(cert.clone().into_owned()) {
        return Some(format!("the certificate cannot be trusted as is: {e}"));
    }
    let soon = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(RENEW_BEFORE),
    );
    match rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        soon,
        provider.signature_verification_algorithms.all,
    ) {
        Ok(()) => {}
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => return Some("the certificate expires within 30 days".to_string()),
        // Not valid yet by this box's clock (set back, or no real-time clock yet): clients
        // with the right time accept it, a new one would not be better.
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => {}
        Err(e) => return Some(format!("a client would refuse the certificate: {e}")),
    }
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| match ServerName::try_from(n.as_str()) {
            Ok(name) => rustls::client::verify_server_name(&parsed, &name).is_err(),
            Err(_) => false,
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "the certificate does not cover {}",
            missing.join(", ")
        ))
    }
}

/// Writes a new self-signed certificate for `names`: an ECDSA P-256 key, SANs only (no name in
/// the CN is relied on), basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
/// serverAuth, valid from a day before `now` for `VALIDITY`. The key file is created with mode
/// 0600; both files are written under temporary names, then renamed (key first) and the folder
/// synced, so a crash never leaves half a file (and a crash between the renames leaves a pair
/// that does not fit, which the next start replaces).
fn generate_self_signed(dir: &Path, names: &[String], now: SystemTime) -> Result<(), TlsError> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name(names));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = offset_time(now.checked_sub(BACKDATE).unwrap_or(now))?;
    params.not_after = offset_time(now + VALIDITY - BACKDATE)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;

    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let key_tmp = write_tmp(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    let cert_tmp = write_tmp(&cert_path, cert.pem().as_bytes(), 0o644)?;
    std::fs::rename(&key_tmp, &key_path).map_err(|e| file_err(&key_path, e))?;
    std::fs::rename(&cert_tmp, &cert_path).map_err(|e| file_err(&cert_path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Best effort: the renames reach the disk with the folder's entry.
        let _ = d.sync_all();
    }
    Ok(())
}

/// A name for people (trust stores list certificates by it): "streamhub <host>".
fn common_name(names: &[String]) -> String {
    let host = names
        .iter()
        .find(|n| n.parse::<IpAddr>().is_err() && *n != "localhost" && !n.ends_with(".local"));
    match host {
        // ub-common-name: at most 64 characters.
        Some(h) if h.len() <= 54 => format!("streamhub {h}"),
        _ => "streamhub".to_string(),
    }
}

fn offset_time(t: SystemTime) -> Result<time::OffsetDateTime, TlsError> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| TlsError::Generate(format!("the clock is out of range: {e}")))
}

/// Writes `data` to `<path>.tmp` (created with `mode`) and syncs it; returns the temp path.
fn write_tmp(path: &Path, data: &[u8], mode: u32) -> Result<PathBuf, TlsError> {
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
    Ok(tmp)
}

/// One address of one of the box's network interfaces, as [`local_addrs`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr {
    pub ip: IpAddr,
    /// The interface is up and running.
    pub up: bool,
    /// An IPv6 privacy (temporary) or deprecated address: it changes by design, so naming it
    /// would replace the certificate every day or so.
    pub fleeting: bool,
}

/// The addresses of the box's interfaces (getifaddrs, through if-addrs; which IPv6 addresses
/// are temporary or deprecated from `/proc/net/if_inet6`). A failure is logged and gives none:
/// the certificate then names the host and loopback only.
pub fn local_addrs() -> Vec<LocalAddr> {
    let fleeting: HashSet<Ipv6Addr> = std::fs::read_to_string("/proc/net/if_inet6")
        .map(|text| fleeting_ipv6(&text))
        .unwrap_or_default();
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs
            .iter()
            .map(|i| LocalAddr {
                ip: i.ip(),
                up: i.is_oper_up(),
                fleeting: matches!(i.ip(), IpAddr::V6(v6) if fleeting.contains(&v6)),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e,
                "cannot list the network interfaces: the self-signed certificate names no LAN \
                 address");
            Vec::new()
        }
    }
}

/// The temporary (0x01) and deprecated (0x20) addresses in `/proc/net/if_inet6`
/// (`<32 hex digits> <ifindex> <prefix length> <scope> <flags> <name>` per line).
fn fleeting_ipv6(text: &str) -> HashSet<Ipv6Addr> {
    const IFA_F_TEMPORARY: u32 = 0x01;
    const IFA_F_DEPRECATED: u32 = 0x20;
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = u128::from_str_radix(fields.first()?, 16).ok()?;
            let flags = u32::from_str_radix(fields.get(4)?, 16).ok()?;
            (flags & (IFA_F_TEMPORARY | IFA_F_DEPRECATED) != 0).then(|| Ipv6Addr::from(addr))
        })
        .collect()
}

/// SAN list for the self-signed certificate on this box: [`wanted_names`] with the host name
/// and, when a listener is on an unspecified address, the interfaces' addresses. Blocking
/// (lists the interfaces): call off the async runtime.
pub fn default_names(listen: &[SocketAddr]) -> Vec<String> {
    let host = gethostname::gethostname().into_string().ok();
    let local = if listen.iter().any(|a| a.ip().is_unspecified()) {
        local_addrs()
    } else {
        Vec::new()
    };
    wanted_names(host.as_deref(), listen, &local)
}

/// The names a client may use to reach the TLS listeners `listen`, sorted: the host name and
/// `<host>.local` (its first label, as mDNS announces it), localhost, 127.0.0.1, ::1, each
/// listener's own address, and for a listener on `0.0.0.0` every IPv4 address of an up
/// interface in `local` (`[::]`: IPv4 and IPv6). Left out: loopback (named once above), link-
/// local addresses (fe80::/10 cannot be used in a URL without a zone; 169.254/16 appears only
/// while DHCP fails, and would replace the certificate twice; `<host>.local` reaches the box
/// there), temporary IPv6 addresses, and anything that is not a valid name.
pub fn wanted_names(host: Option<&str>, listen: &[SocketAddr], local: &[LocalAddr]) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = host.map(str::to_ascii_lowercase) {
        let host = host.trim_end_matches('.');
        if !host.is_empty() && host != "localhost" {
            let label = host.split('.').next().unwrap_or(host);
            names.push(format!("{label}.local"));
            names.push(host.to_string());
        }
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    let any_v4 = listen.iter().any(|a| a.ip() == IpAddr::from([0, 0, 0, 0]));
    let any_v6 = listen
        .iter()
        .any(|a| a.ip() == IpAddr::from(Ipv6Addr::UNSPECIFIED));
    for a in listen {
        if !a.ip().is_unspecified() {
            names.push(a.ip().to_string());
        }
    }
    for a in local {
        let usable = a.up
            && !a.fleeting
            && !a.ip.is_loopback()
            && !a.ip.is_unspecified()
            && !a.ip.is_multicast()
            && match a.ip {
                IpAddr::V4(v4) => (any_v4 || any_v6) && !v4.is_link_local() && !v4.is_broadcast(),
                IpAddr::V6(v6) => any_v6 && !v6.is_unicast_link_local(),
            };
        if usable {
            names.push(a.ip.to_string());
        }
    }
    names.retain(|n| ServerName::try_from(n.as_str()).is_ok());
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

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn up(ip: &str) -> LocalAddr {
        LocalAddr {
            ip: ip.parse().unwrap(),
            up: true,
            fleeting: false,
        }
    }

    fn listen(addrs: &[&str]) -> Vec<SocketAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// A box with an Ethernet and a Wi-Fi address, IPv6 (global, ULA, privacy, link-local),
    /// a down interface, a self-assigned address and loopback.
    fn lan() -> Vec<LocalAddr> {
        let mut v: Vec<LocalAddr> = [
            "127.0.0.1",
            "::1",
            "192.168.1.20",
            "10.0.0.7",
            "fd00::20",
            "2001:db8::20",
            "fe80::1234",
            "169.254.3.4",
        ]
        .iter()
        .map(|ip| up(ip))
        .collect();
        v.push(LocalAddr {
            fleeting: true,
            ..up("2001:db8::dead:beef")
        });
        v.push(LocalAddr {
            up: false,
            ..up("172.16.5.5")
        });
        v
    }

    #[test]
    fn names_include_loopback_and_listen_ips() {
        let names = wanted_names(None, &listen(&["10.1.2.3:8443", "0.0.0.0:1"]), &[]);
        for n in ["localhost", "127.0.0.1", "::1", "10.1.2.3"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x == "0.0.0.0"));
    }

    #[test]
    fn ipv4_wildcard_names_the_ipv4_lan_addresses() {
        let names = wanted_names(Some("pi"), &listen(&["0.0.0.0:8443"]), &lan());
        assert_eq!(
            names,
            strings(&[
                "10.0.0.7",
                "127.0.0.1",
                "192.168.1.20",
                "::1",
                "localhost",
                "pi",
                "pi.local"
            ])
        );
    }

    #[test]
    fn ipv6_wildcard_names_both_families_but_no_link_local_or_privacy_address() {
        let names = wanted_names(Some("pi"), &listen(&["[::]:8443"]), &lan());
        for n in [
            "192.168.1.20",
            "10.0.0.7",
            "fd00::20",
            "2001:db8::20",
            "pi.local",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        for n in [
            "fe80::1234",
            "169.254.3.4",
            "2001:db8::dead:beef",
            "172.16.5.5",
        ] {
            assert!(!names.iter().any(|x| x == n), "{n} not in {names:?}");
        }
        assert_eq!(names.iter().filter(|n| *n == "::1").count(), 1);
        assert_eq!(names.iter().filter(|n| *n == "127.0.0.1").count(), 1);
    }

    #[test]
    fn specific_listeners_name_no_interface_address() {
        let names = wanted_names(Some("pi"), &listen(&["192.168.1.20:8443"]), &lan());
        assert!(names.contains(&"192.168.1.20".to_string()));
        assert!(!names.contains(&"10.0.0.7".to_string()), "{names:?}");
    }

    #[test]
    fn host_names() {
        let names = wanted_names(Some("Media-Box.home.arpa"), &[], &[]);
        assert!(names.contains(&"media-box.local".to_string()), "{names:?}");
        assert!(
            names.contains(&"media-box.home.arpa".to_string()),
            "{names:?}"
        );
        let names = wanted_names(Some("box.local"), &[], &[]);
        assert_eq!(names.iter().filter(|n| n.ends_with(".local")).count(), 1);
        assert_eq!(
            wanted_names(Some("localhost"), &[], &[]),
            strings(&["127.0.0.1", "::1", "localhost"])
        );
        // not a DNS name: left out rather than failing the generation
        assert_eq!(
            wanted_names(Some("my box"), &[], &[]),
            strings(&["127.0.0.1", "::1", "localhost"])
        );
    }

    #[test]
    fn proc_if_inet6_flags() {
        let text = "fd000000000000000000000000000002 04 40 00 82     eth0\n\
                    20010db8000000000000deadbeef0001 04 40 00 01     eth0\n\
                    20010db8000000000000000000000099 04 40 00 20     eth0\n\
                    fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
                    garbage\n";
        let f = fleeting_ipv6(text);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f.contains(&"2001:db8::dead:beef:1".parse().unwrap()));
        assert!(f.contains(&"2001:db8::99".parse().unwrap()));
    }

    #[test]
    fn local_addrs_lists_loopback() {
        assert!(local_addrs().iter().any(|a| a.ip.is_loopback()));
    }

    #[test]
    fn self_signed_is_made_once_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = CertSource::SelfSigned {
            dir: dir.path().join("tls"),
            listen: listen(&["127.0.0.1:0"]),
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

    /// The certificate as a client sees it: trusted alone, used for `name` at `at`.
    fn client_accepts(dir: &Path, name: &str, at: SystemTime) -> Result<(), rustls::Error> {
        let pem = std::fs::read(dir.join("cert.pem")).unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider()),
        )
        .build()
        .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(
                &der,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::since_unix_epoch(at.duration_since(SystemTime::UNIX_EPOCH).unwrap()),
            )
            .map(|_| ())
    }

    #[test]
    fn kept_while_it_covers_the_names_replaced_when_one_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let now = SystemTime::now();
        let p = provider();
        let first = strings(&["localhost", "pi.local", "192.168.1.20", "fd00::20"]);
        ensure_self_signed(&dir, &first, &p, now).unwrap();
        let original = std::fs::read(dir.join("cert.pem")).unwrap();
        for n in &first {
            client_accepts(&dir, n, now).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        assert!(client_accepts(&dir, "192.168.1.21", now).is_err());

        // the same names, or fewer (an interface is down): kept
        ensure_self_signed(&dir, &first, &p, now).unwrap();
        ensure_self_signed(&dir, &first[..2], &p, now).unwrap();
        assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), original);

        // a new DHCP address: replaced, covering it and the others
        let moved = strings(&["localhost", "pi.local", "192.168.1.21", "fd00::20"]);
        let served = ensure_self_signed(&dir, &moved, &p, now).unwrap();
        let replaced = std::fs::read(dir.join("cert.pem")).unwrap();
        assert_ne!(replaced, original);
        assert_eq!(
            served.cert[0].as_ref(),
            CertificateDer::from_pem_slice(&replaced).unwrap().as_ref()
        );
        for n in &moved {
            client_accepts(&dir, n, now).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        let mode = std::fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.join("key.tmp").exists() && !dir.join("cert.tmp").exists());
    }

    #[test]
    fn renamed_host_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let p = provider();
        ensure_self_signed(tmp.path(), &strings(&["pi", "pi.local"]), &p, now).unwrap();
        let before = std::fs::read(tmp.path().join("cert.pem")).unwrap();
        ensure_self_signed(tmp.path(), &strings(&["media", "media.local"]), &p, now).unwrap();
        assert_ne!(std::fs::read(tmp.path().join("cert.pem")).unwrap(), before);
        client_accepts(tmp.path(), "media.local", now).unwrap();
    }

    #[test]
    fn valid_for_under_825_days_and_renewed_before_it_expires() {
        let tmp = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let p = provider();
        let names = strings(&["localhost"]);
        ensure_self_signed(tmp.path(), &names, &p, now).unwrap();
        let day = Duration::from_secs(86_400);
        client_accepts(tmp.path(), "localhost", now - day / 2).unwrap();
        client_accepts(tmp.path(), "localhost", now + 818 * day).unwrap();
        assert!(client_accepts(tmp.path(), "localhost", now + 820 * day).is_err());
        assert!(client_accepts(tmp.path(), "localhost", now - 2 * day).is_err());
        let original = std::fs::read(tmp.path().join("cert.pem")).unwrap();

        // 700 days on: kept; 800 days on (under 30 left): replaced
        ensure_self_signed(tmp.path(), &names, &p, now + 700 * day).unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("cert.pem")).unwrap(),
            original
        );
        ensure_self_signed(tmp.path(), &names, &p, now + 800 * day).unwrap();
        assert_ne!(
            std::fs::read(tmp.path().join("cert.pem")).unwrap(),
            original
        );
        client_accepts(tmp.path(), "localhost", now + 1500 * day).unwrap();

        // the box's clock set back before the certificate: kept
        let renewed = std::fs::read(tmp.path().join("cert.pem")).unwrap();
        ensure_self_signed(tmp.path(), &names, &p, now).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("cert.pem")).unwrap(), renewed);
    }

    #[test]
    fn a_certificate_from_before_is_kept_when_it_covers_the_names() {
        // what earlier versions made: rcgen's defaults (no EKU, valid until 4096)
        let tmp = tempfile::tempdir().unwrap();
        let names = strings(&["localhost", "127.0.0.1", "::1", "pi", "pi.local"]);
        let ck = rcgen::generate_simple_self_signed(names.clone()).unwrap();
        std::fs::write(tmp.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        std::fs::write(tmp.path().join("cert.pem"), ck.cert.pem()).unwrap();
        let p = provider();
        ensure_self_signed(tmp.path(), &names, &p, SystemTime::now()).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cert.pem")).unwrap(),
            ck.cert.pem()
        );
    }

    #[test]
    fn a_broken_pair_is_made_anew() {
        let tmp = tempfile::tempdir().unwrap();
        let names = strings(&["localhost"]);
        let p = provider();
        let now = SystemTime::now();
        ensure_self_signed(tmp.path(), &names, &p, now).unwrap();
        // a crash between the two renames: a new key beside the old certificate
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(tmp.path().join("key.pem"), other.serialize_pem()).unwrap();
        ensure_self_signed(tmp.path(), &names, &p, now).expect("made anew");
        client_accepts(tmp.path(), "localhost", now).unwrap();
        // garbage, or half a pair
        std::fs::write(tmp.path().join("cert.pem"), "not pem").unwrap();
        ensure_self_signed(tmp.path(), &names, &p, now).expect("made anew");
        std::fs::remove_file(tmp.path().join("key.pem")).unwrap();
        ensure_self_signed(tmp.path(), &names, &p, now).expect("made anew");
        client_accepts(tmp.path(), "localhost", now).unwrap();
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
    fn refresh_replaces_the_served_certificate_only_when_the_names_change() {
        let tmp = tempfile::tempdir().unwrap();
        let state = TlsState::new(CertSource::SelfSigned {
            dir: tmp.path().to_path_buf(),
            listen: listen(&["127.0.0.1:0"]),
        })
        .unwrap();
        let served = || state.cert.current.load_full().cert[0].clone();
        let first = served();
        let loaded = state.names().clone().expect("self-signed names");
        let now = SystemTime::now();
        assert!(!state.refresh_with(loaded.clone(), now).unwrap());
        assert!(!state.refresh().unwrap(), "the same box, the same names");
        assert_eq!(served(), first);

        let mut more = loaded.clone();
        more.push("192.168.1.30".into());
        assert!(state.refresh_with(more.clone(), now).unwrap());
        assert_ne!(served(), first, "a new certificate for new handshakes");
        client_accepts(tmp.path(), "192.168.1.30", now).unwrap();
        assert!(!state.refresh_with(more, now).unwrap());

        // fewer names again (the address went away): checked, and kept
        let second = served();
        assert!(state.refresh_with(loaded, now).unwrap());
        assert_eq!(served(), second);
        assert!(!TlsState::new(CertSource::Files {
            cert: tmp.path().join("cert.pem"),
            key: tmp.path().join("key.pem"),
        })
        .unwrap()
        .refresh()
        .unwrap());
    }
}
