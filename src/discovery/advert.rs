//! What this node publishes over mDNS and how it reads others' records: pure functions of the
//! config, the identity and the records, so the rules are unit-tested without a network.

use std::net::{IpAddr, SocketAddr};

use crate::peers::Announcement;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_streamhub._tcp.local.";
/// TXT `api`: the sync API version this build speaks.
pub const API_VERSION: u32 = 1;
/// Longest node name published, in bytes: the instance `<name> (<id8>)` must fit one DNS
/// label (63 bytes).
pub const MAX_NODE_NAME: usize = 63 - " (12345678)".len();

/// This node's mDNS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// `<node name> (<id8>)`: the id makes it unique, so two boxes both called `raspberrypi`
    /// never collide and rename.
    pub instance: String,
    /// `streamhub-<id8>.local.`: never the OS host name, which avahi-daemon may be answering
    /// for with another set of addresses (two responders for one name fight and rename).
    pub host: String,
    /// The HTTPS port.
    pub port: u16,
    /// `id`, `api`, `cluster` (only with a key), `fp` (when there is a TLS certificate).
    pub txt: Vec<(String, String)>,
}

/// The node name people see: `discovery.name`, else the host name, cut to [`MAX_NODE_NAME`].
pub fn node_name(configured: &str, host: Option<String>) -> String {
    let name = if configured.trim().is_empty() {
        host.unwrap_or_else(|| "streamhub".to_string())
    } else {
        configured.trim().to_string()
    };
    let mut out = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_NODE_NAME {
            break;
        }
        out.push(c);
    }
    out
}

/// The port to advertise: the first TLS listener that is not on loopback; or why there is
/// none. Nothing is advertised, and no mDNS socket is opened, when this is an error: a node
/// that cannot be reached over HTTPS from the LAN has nothing to tell the LAN.
pub fn advertised_port(tls_bound: &[SocketAddr]) -> Result<u16, &'static str> {
    if tls_bound.is_empty() {
        return Err(
            "no TLS listener (server.tls_listen): peers reach each other over HTTPS \
                    only, so there is nothing to advertise",
        );
    }
    tls_bound
        .iter()
        .find(|a| !a.ip().is_loopback())
        .map(|a| a.port())
        .ok_or("every TLS listener is on loopback: no other box could reach this one")
}

/// The advert for node `id` named `name`.
pub fn advert(
    name: &str,
    id: &str,
    port: u16,
    cluster_tag: Option<&str>,
    tls_fingerprint: Option<&str>,
) -> Advert {
    let id8 = &id[..id.len().min(8)];
    let mut txt = vec![
        ("id".to_string(), id.to_string()),
        ("api".to_string(), API_VERSION.to_string()),
    ];
    if let Some(tag) = cluster_tag {
        txt.push(("cluster".to_string(), tag.to_string()));
    }
    if let Some(fp) = tls_fingerprint {
        txt.push(("fp".to_string(), fp.to_string()));
    }
    Advert {
        instance: format!("{name} ({id8})"),
        host: format!("streamhub-{id8}.local."),
        port,
        txt,
    }
}

/// What a resolved service claims, or None when it is not a streamhub node's (no valid `id`):
/// e.g. the static avahi service file, which carries no id.
pub fn read_announcement(
    fullname: &str,
    port: u16,
    addresses: impl IntoIterator<Item = IpAddr>,
    txt: impl Fn(&str) -> Option<String>,
) -> Option<Announcement> {
    let id = txt("id").filter(|i| crate::sync::is_node_id(i))?;
    let label = fullname
        .strip_suffix(SERVICE_TYPE)
        .and_then(|l| l.strip_suffix('.'))
        .unwrap_or(fullname);
    let label = label.replace("\\.", ".").replace("\\\\", "\\");
    // `<name> (<id8>)`: show the name people chose; the id is a column of its own.
    let suffix = format!(" ({})", &id[..8]);
    let name = label.strip_suffix(&suffix).unwrap_or(&label).to_string();
    let mut addresses: Vec<IpAddr> = addresses.into_iter().collect();
    addresses.sort();
    addresses.dedup();
    Some(Announcement {
        instance: fullname.to_string(),
        name,
        addresses,
        port,
        api: txt("api").and_then(|v| v.parse().ok()),
        cluster: txt("cluster").filter(|c| !c.is_empty()),
        fingerprint: txt("fp").filter(|f| crate::sync::is_node_id(f)),
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_advert_names_the_node_by_id_never_by_host_name() {
        let a = advert("raspberrypi", ID, 8443, Some("feedc0de12345678"), None);
        assert_eq!(a.instance, "raspberrypi (01234567)");
        assert_eq!(a.host, "streamhub-01234567.local.");
        assert_eq!(a.port, 8443);
        let keys: Vec<&str> = a.txt.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["id", "api", "cluster"]);
        let keyless = advert("x", ID, 1, None, Some(ID));
        let keys: Vec<&str> = keyless.txt.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["id", "api", "fp"], "no cluster entry without a key");
    }

    #[test]
    fn names_fit_one_label() {
        assert_eq!(node_name("", Some("pi".into())), "pi");
        assert_eq!(node_name("  Office  ", Some("pi".into())), "Office");
        assert_eq!(node_name("", None), "streamhub");
        let long = node_name(&"é".repeat(100), None);
        assert!(long.len() <= MAX_NODE_NAME);
        assert!(advert(&long, ID, 1, None, None).instance.len() <= 63);
    }

    #[test]
    fn only_a_lan_tls_listener_is_advertised() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(advertised_port(&[]).is_err());
        assert!(advertised_port(&[a("127.0.0.1:8443"), a("[::1]:8443")]).is_err());
        assert_eq!(
            advertised_port(&[a("127.0.0.1:1"), a("0.0.0.0:8443")]),
            Ok(8443)
        );
        assert_eq!(advertised_port(&[a("10.77.0.2:9443")]), Ok(9443));
    }

    #[test]
    fn announcements_are_read_from_the_records() {
        let txt = |k: &str| match k {
            "id" => Some(ID.to_string()),
            "api" => Some("1".to_string()),
            "cluster" => Some("abcd".to_string()),
            "fp" => Some("nothex".to_string()),
            _ => None,
        };
        let full = format!("living\\.room (01234567).{SERVICE_TYPE}");
        let ips = [IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 2])];
        let a = read_announcement(&full, 8443, ips, txt).expect("ours");
        assert_eq!(a.name, "living.room");
        assert_eq!(a.id, ID);
        assert_eq!(a.addresses, vec![IpAddr::from([10, 0, 0, 2])]);
        assert_eq!(a.api, Some(1));
        assert_eq!(a.cluster.as_deref(), Some("abcd"));
        assert_eq!(a.fingerprint, None, "a malformed fp is dropped");
        // The static avahi service file has no id: not a peer.
        let none = read_announcement(&full, 8443, [], |k| (k == "api").then(|| "1".into()));
        assert_eq!(none, None);
    }
}
