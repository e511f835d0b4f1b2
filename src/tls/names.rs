//! Which names the self-signed certificate must cover: the host, `<host>.local`, loopback
//! and the addresses clients reach the box on.

use super::*;

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
pub(super) fn fleeting_ipv6(text: &str) -> HashSet<Ipv6Addr> {
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

/// This box's host name, as the certificate names it (None when it is not UTF-8). One
/// `uname` call: does not block.
pub fn host_name() -> Option<String> {
    gethostname::gethostname().into_string().ok()
}

/// SAN list for the self-signed certificate on this box: [`wanted_names`] with the host name
/// and, when a listener is on an unspecified address, the interfaces' addresses. Blocking
/// (lists the interfaces): call off the async runtime.
pub fn default_names(listen: &[SocketAddr]) -> Vec<String> {
    let host = host_name();
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
