use super::names::fleeting_ipv6;
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
