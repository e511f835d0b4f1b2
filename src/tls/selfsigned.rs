//! The self-signed pair in `<data_dir>/tls/`: made, checked against the names wanted now, and
//! replaced (atomically, key 0600) only when it no longer covers them or is about to expire.

use super::*;

const VALIDITY: Duration = Duration::from_secs(820 * 86_400);
/// Back-dated by a day, for clients whose clock is a little behind the box's.
const BACKDATE: Duration = Duration::from_secs(86_400);
/// A kept certificate that expires within this is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

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
