//! `streamhub cluster new` (a new cluster key) and `streamhub peers` (the running service's
//! peer table, read from its control socket in the data dir: see `peers::control`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CliError, Target};
use crate::peers::control::{self, Snapshot};
use crate::sync::ClusterKey;

/// A new cluster key, one line.
pub fn cluster_new() -> String {
    ClusterKey::generate().to_text()
}

/// The peer table of the service that uses `target`'s data dir, as a table (or JSON).
pub fn peers(target: &Target, json: bool) -> Result<String, CliError> {
    let path = control::socket_path(target.dir());
    let snap = control::read(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "the service is not running with this data dir".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied: run this as the service's user (e.g. `sudo -u streamhub \
                 streamhub peers`)"
                    .to_string()
            }
            _ => e.to_string(),
        };
        CliError::Failed(format!("{}: {why}", path.display()))
    })?;
    if json {
        return serde_json::to_string_pretty(&snap).map_err(|e| CliError::Failed(e.to_string()));
    }
    Ok(render(&snap, SystemTime::now()))
}

/// The snapshot as people read it: this node, then one line per peer.
fn render(snap: &Snapshot, now: SystemTime) -> String {
    let id8 = |id: &Option<String>| {
        id.as_deref()
            .map_or("-".to_string(), |i| i[..8.min(i.len())].to_string())
    };
    let mut out = format!(
        "this node: {} ({})",
        snap.node.name,
        &snap.node.id[..8.min(snap.node.id.len())]
    );
    match &snap.node.cluster {
        Some(tag) => out.push_str(&format!(", cluster tag {tag}")),
        None => out.push_str(
            "\nin no cluster: sync.cluster_key is empty (make one key with `streamhub cluster \
             new` and set it on every box)",
        ),
    }
    if let Some(why) = &snap.node.discovery {
        out.push_str(&format!("\nmDNS off: {why}"));
    }
    let others = |mut out: String| {
        if !snap.other_clusters.is_empty() {
            let names: Vec<String> = snap
                .other_clusters
                .iter()
                .map(|o| format!("{} ({})", o.name, &o.id[..8.min(o.id.len())]))
                .collect();
            out.push_str(&format!(
                "\nwith another cluster key (not peers; compare sync.cluster_key): {}",
                names.join(", ")
            ));
        }
        out
    };
    if snap.peers.is_empty() {
        out.push_str("\nno peers");
        return others(out);
    }
    let rows: Vec<[String; 8]> = snap
        .peers
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                id8(&p.id),
                p.found_via.clone(),
                if p.online { "online" } else { "offline" }.to_string(),
                p.last_seen.map_or("never".to_string(), |s| ago(now, s)),
                p.last_sync.map_or("never".to_string(), |s| ago(now, s)),
                p.changes_behind.map_or("-".to_string(), |b| b.to_string()),
                p.addresses.join(" "),
            ]
        })
        .collect();
    let head = [
        "NAME",
        "ID",
        "FOUND",
        "STATE",
        "LAST SEEN",
        "LAST SYNC",
        "BEHIND",
        "ADDRESSES",
    ];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(head.map(str::to_string)).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push('\n');
        out.push_str(line.join("  ").trim_end());
    }
    for p in snap.peers.iter().filter(|p| p.last_error.is_some()) {
        let why = p.last_error.as_deref().unwrap_or_default();
        out.push_str(&format!("\n{}: {why}", p.name));
    }
    others(out)
}

fn ago(now: SystemTime, secs: u64) -> String {
    let then = UNIX_EPOCH + Duration::from_secs(secs);
    match now.duration_since(then) {
        Ok(d) if d.as_secs() < 120 => format!("{}s ago", d.as_secs()),
        Ok(d) if d.as_secs() < 7200 => format!("{}m ago", d.as_secs() / 60),
        Ok(d) => format!("{}h ago", d.as_secs() / 3600),
        Err(_) => "just now".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::control::{NodeInfo, OtherInfo, PeerInfo};

    #[test]
    fn the_table_lists_every_peer() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let snap = Snapshot {
            node: NodeInfo {
                id: "ab".repeat(32),
                name: "living-room".into(),
                discovery: None,
                cluster: Some("abcd1234".into()),
            },
            peers: vec![
                PeerInfo {
                    id: Some("cd".repeat(32)),
                    name: "office".into(),
                    addresses: vec!["10.0.0.2:8443".into()],
                    found_via: "mdns".into(),
                    online: true,
                    last_seen: Some(1_000_000 - 5),
                    last_sync: Some(1_000_000 - 3),
                    changes_behind: Some(0),
                    last_error: None,
                },
                PeerInfo {
                    id: None,
                    name: "nas.lan:8443".into(),
                    addresses: vec!["nas.lan:8443".into()],
                    found_via: "static".into(),
                    online: false,
                    last_seen: None,
                    last_sync: None,
                    changes_behind: None,
                    last_error: Some("unreachable: nas.lan:8443: connect timed out".into()),
                },
            ],
            other_clusters: vec![],
        };
        let text = render(&snap, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "this node: living-room (abababab), cluster tag abcd1234"
        );
        assert!(lines[1].starts_with("NAME"));
        assert!(lines[2].contains("office") && lines[2].contains("cdcdcdcd"));
        assert!(lines[2].contains("5s ago") && lines[2].contains("10.0.0.2:8443"));
        assert!(lines[2].contains("3s ago"));
        assert!(lines[3].contains("static") && lines[3].contains("never"));
        assert!(lines[3].contains("offline"));
        assert_eq!(
            lines[4],
            "nas.lan:8443: unreachable: nas.lan:8443: connect timed out"
        );
        assert_eq!(cluster_new().len(), 43);
    }

    #[test]
    fn a_node_without_a_key_says_so() {
        let snap = Snapshot {
            node: NodeInfo {
                id: "ab".repeat(32),
                name: "attic".into(),
                discovery: None,
                cluster: None,
            },
            peers: vec![],
            other_clusters: vec![OtherInfo {
                id: "0d3549a1".repeat(8),
                name: "node3".into(),
            }],
        };
        let text = render(&snap, UNIX_EPOCH);
        assert!(
            text.contains("in no cluster: sync.cluster_key is empty"),
            "{text}"
        );
        assert!(text.contains("\nno peers\n"), "{text}");
        assert!(
            text.ends_with(
                "with another cluster key (not peers; compare sync.cluster_key): node3 (0d3549a1)"
            ),
            "{text}"
        );
    }
}
