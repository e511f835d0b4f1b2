//! The peer table: the other nodes this one knows of, from mDNS announcements and from
//! `sync.peers`. Pure (the caller passes the time), capped and self-expiring, so a flood of
//! announcements costs at most [`MAX_PEERS`] entries of bounded size.
//!
//! An entry is only a hint of where a node may be reached: nothing in it is trusted. The
//! node id, name and fingerprint are what the announcement *claims*; replication will check
//! them with the node's certificate and the cluster key before it exchanges anything.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// The most mDNS peers kept. Static peers (`sync.peers`) come on top: the operator wrote them.
pub const MAX_PEERS: usize = 64;
/// The most addresses kept per peer (an announcement may list many).
pub const MAX_ADDRESSES: usize = 8;
/// The longest name kept, in bytes (a DNS label is at most 63).
pub const MAX_NAME: usize = 63;
/// An mDNS peer that left (a goodbye, or its records expired) is shown offline this long,
/// then forgotten.
pub const OFFLINE_TTL: Duration = Duration::from_secs(600);
/// While the table is full, an entry offline this long makes room for a newcomer.
pub const GIVE_WAY_AFTER: Duration = Duration::from_secs(60);

/// How an entry was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mdns,
    Static,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Mdns => "mdns",
            Source::Static => "static",
        }
    }
}

/// What one mDNS announcement claims, already decoded from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The DNS-SD instance's full name (`<name> (<id8>)._streamhub._tcp.local.`).
    pub instance: String,
    /// TXT `id`.
    pub id: String,
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    /// TXT `api`.
    pub api: Option<u32>,
    /// TXT `cluster` (None: the node has no cluster key).
    pub cluster: Option<String>,
    /// TXT `fp`: SHA-256 of the node's user-facing TLS certificate.
    pub fingerprint: Option<String>,
}

/// One known peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node id it claims (None for a static peer not yet reached).
    pub id: Option<String>,
    pub name: String,
    /// Where it may be reached: `ip:port` (mDNS) or the configured `host:port` (static).
    pub addresses: Vec<String>,
    pub source: Source,
    /// When an announcement of it was last processed (None: never, for a static peer).
    pub last_seen: Option<SystemTime>,
    /// Announced and not withdrawn (a static peer: unknown until replication reaches it).
    pub online: bool,
    pub api: Option<u32>,
    pub fingerprint: Option<String>,
    /// The instance it was announced as (to match a withdrawal).
    instance: Option<String>,
    /// Since when an mDNS entry is offline (None: online, or static).
    offline_since: Option<Instant>,
    /// Where replication last reached it with a proved membership (`ip:port`). Kept across
    /// announcements and listed first: an announcement is only a claim, so a spoofed one
    /// (another node's id with the attacker's address, which an mDNS cache flush lets
    /// replace the real one) neither hides where the node really is nor steers the next
    /// connection away from it.
    proved: Option<String>,
}

/// Why an announcement was not taken into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Its `id` is missing or not 64 hex digits.
    BadId,
    /// It is this node's own announcement.
    Own,
    /// It carries another cluster tag (or none while we have one, or one while we have none).
    OtherCluster,
    /// The table is full of other peers, all online: they are not pushed out by newcomers,
    /// so a flood cannot flush the peers already known.
    Full,
}

/// The table. Keyed by claimed node id (mDNS) or configured address (static). While full, a
/// newcomer takes the place of the entry offline longest (for at least [`GIVE_WAY_AFTER`]),
/// or is refused.
#[derive(Debug)]
pub struct PeerTable {
    own_id: String,
    cluster: Option<String>,
    mdns: BTreeMap<String, Peer>,
    statics: Vec<Peer>,
    skipped_full: u64,
    /// Boxes announcing another cluster (a mistyped key, a neighbour's cluster).
    others: super::others::Others,
}

impl PeerTable {
    /// A table for node `own_id` in cluster `cluster` (its tag; None: no cluster key), with
    /// the static peers `statics` (`host:port`).
    pub fn new(own_id: &str, cluster: Option<String>, statics: &[String]) -> Self {
        PeerTable {
            own_id: own_id.to_string(),
            cluster,
            mdns: BTreeMap::new(),
            statics: statics
                .iter()
                .map(|a| Peer {
                    id: None,
                    name: a.clone(),
                    addresses: vec![a.clone()],
                    source: Source::Static,
                    last_seen: None,
                    online: false,
                    api: None,
                    fingerprint: None,
                    instance: None,
                    offline_since: None,
                    proved: None,
                })
                .collect(),
            skipped_full: 0,
            others: Default::default(),
        }
    }

    /// Takes an announcement in: a known id is updated in place (never a second entry), a new
    /// one is added while there is room.
    pub fn announce(
        &mut self,
        a: Announcement,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), Skipped> {
        if !crate::sync::is_node_id(&a.id) {
            return Err(Skipped::BadId);
        }
        if a.id == self.own_id {
            return Err(Skipped::Own);
        }
        if a.cluster != self.cluster {
            if self.others.note(&a.id, &a.name, now) {
                tracing::info!(peer = %a.id, name = %a.name,
                    "a box on the LAN announces another cluster: not a peer (if it should be, \
                     compare sync.cluster_key on both boxes)");
            }
            return Err(Skipped::OtherCluster);
        }
        self.expire(now);
        if !self.mdns.contains_key(&a.id) && self.mdns.len() >= MAX_PEERS {
            // An entry offline for `GIVE_WAY_AFTER` (withdrawn, or not heard again since the
            // responder restarted) gives way, the one offline longest first. Online ones never
            // do, nor ones just marked offline: real peers answer a restarted responder's
            // query within seconds, and a flood arriving meanwhile must not take their place.
            let oldest = self
                .mdns
                .iter()
                .filter_map(|(id, p)| p.offline_since.map(|t| (t, id.clone())))
                .filter(|(t, _)| now.saturating_duration_since(*t) >= GIVE_WAY_AFTER)
                .min();
            match oldest {
                Some((_, id)) => {
                    self.mdns.remove(&id);
                }
                None => {
                    self.skipped_full += 1;
                    return Err(Skipped::Full);
                }
            }
        }
        let mut addresses: Vec<String> = a
            .addresses
            .iter()
            .take(MAX_ADDRESSES)
            .map(|ip| std::net::SocketAddr::new(*ip, a.port).to_string())
            .collect();
        addresses.sort();
        let proved = self.mdns.get(&a.id).and_then(|p| p.proved.clone());
        let peer = Peer {
            id: Some(a.id.clone()),
            name: crate::sync::wire::clip(&a.name, MAX_NAME),
            addresses,
            source: Source::Mdns,
            last_seen: Some(wall),
            online: true,
            api: a.api,
            fingerprint: a.fingerprint,
            instance: Some(a.instance),
            offline_since: None,
            proved,
        };
        self.mdns.insert(a.id, peer);
        Ok(())
    }

    /// The instance `instance` was withdrawn (goodbye, or its records expired): shown offline
    /// for [`OFFLINE_TTL`], then forgotten.
    pub fn withdraw(&mut self, instance: &str, now: Instant) {
        for p in self.mdns.values_mut() {
            if p.online && p.instance.as_deref() == Some(instance) {
                p.online = false;
                p.offline_since = Some(now);
            }
        }
        self.expire(now);
    }

    /// Every mDNS entry is offline until announced again (the responder was restarted, and
    /// its view of the network starts over).
    pub fn all_offline(&mut self, now: Instant) {
        for p in self.mdns.values_mut().filter(|p| p.online) {
            p.online = false;
            p.offline_since = Some(now);
        }
    }

    /// Replication reached the mDNS peer `id` at `at` and it proved its membership there.
    pub fn proved(&mut self, id: &str, at: &str) {
        if let Some(p) = self.mdns.get_mut(id) {
            p.proved = Some(at.to_string());
        }
    }

    /// Forgets offline entries whose time is up.
    pub fn expire(&mut self, now: Instant) {
        self.mdns
            .retain(|_, p| p.offline_since.is_none_or(|t| !gone(t, now)));
    }

    /// Boxes heard announcing another cluster (or none), for the people reading the table.
    pub fn others(&self, now: Instant) -> Vec<super::others::Other> {
        self.others.list(now)
    }

    /// The peers: mDNS ones by name then id, then the static ones in configured order. An
    /// mDNS peer's addresses start with the one it last proved itself at, if any.
    pub fn list(&self, now: Instant) -> Vec<Peer> {
        let mut out: Vec<Peer> = self
            .mdns
            .values()
            .filter(|p| p.offline_since.is_none_or(|t| !gone(t, now)))
            .cloned()
            .map(|mut p| {
                if let Some(at) = p.proved.clone() {
                    p.addresses.retain(|a| *a != at);
                    p.addresses.insert(0, at);
                }
                p
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        out.extend(self.statics.iter().cloned());
        out
    }

    /// mDNS entries held (online or offline), never more than [`MAX_PEERS`].
    pub fn mdns_len(&self) -> usize {
        self.mdns.len()
    }

    /// Announcements refused because the table was full.
    pub fn skipped_full(&self) -> u64 {
        self.skipped_full
    }

    /// This node's id (its own announcements are skipped).
    pub fn own_id(&self) -> &str {
        &self.own_id
    }
}

/// Whether an entry offline since `since` is to be forgotten at `now`.
fn gone(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) >= OFFLINE_TTL
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
