//! LAN discovery with mDNS/DNS-SD (`mdns-sd`, which runs its own thread): this node is
//! advertised as `_streamhub._tcp.local.` (`advert`) and the same type is browsed into the
//! peer table. An announcement is only a hint of where a node may be: it never makes this
//! node trust anyone (replication checks certificates and the cluster key).
//!
//! Memory under a flood: the peer table is capped (`peers::table`), and so, indirectly, is
//! mdns-sd's own record cache, which has no limit of its own: every `CHECK_EVERY` the
//! daemon's cache counts are read and, past `CACHE_LIMIT` records, the daemon is shut down
//! and a new one started (its cache starts empty; real peers answer the new browse query
//! again). Restarts are at least `MIN_RESTART_GAP` apart, so a steady flood costs a bounded
//! cache plus what arrives in that gap.

pub mod advert;
mod start;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mdns_sd::{IfKind, IfPredicate, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio_util::sync::CancellationToken;

pub use advert::{Advert, SERVICE_TYPE};
pub use start::start;

use crate::peers::{Peers, Skipped, MAX_PEERS};
use crate::tls::TlsState;

/// How often the cache size and the TLS fingerprint are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Cached records (PTR + SRV + TXT + addresses) past which the daemon is restarted: about
/// four records per peer for twice the table's cap.
pub const CACHE_LIMIT: i64 = 8 * MAX_PEERS as i64;
/// Fewest time between two restarts.
const MIN_RESTART_GAP: Duration = Duration::from_secs(10);
/// How long a goodbye may take at shutdown.
const GOODBYE_WITHIN: Duration = Duration::from_secs(2);

/// What the discovery task needs.
pub struct Discovery {
    pub advert: Advert,
    /// `discovery.interfaces` (empty: every up, non-loopback, multicast-capable interface).
    pub interfaces: Vec<String>,
    pub peers: Peers,
    /// The user-facing certificate, whose fingerprint is published (`fp`) and re-published
    /// when SIGHUP or a name change replaces it.
    pub tls: Option<Arc<TlsState>>,
}

/// Runs discovery until `cancel`, then withdraws the advert (goodbye packets) and stops the
/// daemon. Errors starting the daemon are logged and retried after `MIN_RESTART_GAP`.
pub async fn run(mut d: Discovery, cancel: CancellationToken) {
    let mut last_start: Option<Instant> = None;
    'outer: loop {
        if let Some(t) = last_start {
            let wait = MIN_RESTART_GAP.saturating_sub(t.elapsed());
            if cancel
                .run_until_cancelled(tokio::time::sleep(wait))
                .await
                .is_none()
            {
                return;
            }
        }
        last_start = Some(Instant::now());
        d.peers.lock().all_offline(Instant::now());
        refresh_fingerprint(&mut d);
        let Started {
            daemon,
            events,
            fullname,
        } = match start_daemon(&d) {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(error = %e, "mDNS could not start; trying again");
                continue;
            }
        };
        tracing::info!(instance = %d.advert.instance, host = %d.advert.host,
            port = d.advert.port, "advertising this node on the LAN (mDNS)");
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let restart = loop {
            tokio::select! {
                _ = cancel.cancelled() => break false,
                ev = events.recv_async() => match ev {
                    Ok(ev) => handle(&d.peers, ev),
                    // The subscription ends when its queue overflows (a flood).
                    Err(_) => {
                        tracing::warn!("mDNS events overflowed (a flood of announcements?): \
                            restarting the responder with an empty cache");
                        break true;
                    }
                },
                _ = check.tick() => {
                    d.peers.lock().expire(Instant::now());
                    if let Some(n) = cached_records(&daemon).await {
                        if n > CACHE_LIMIT {
                            tracing::warn!(cached = n, limit = CACHE_LIMIT,
                                "mDNS cache past its limit (a flood of announcements?): \
                                 restarting the responder with an empty cache");
                            break true;
                        }
                    }
                    if refresh_fingerprint(&mut d) {
                        tracing::info!("the TLS certificate changed: re-announcing its fingerprint");
                        if let Err(e) = register(&daemon, &d.advert) {
                            tracing::warn!(error = %e, "mDNS: cannot re-announce");
                        }
                    }
                }
            }
        };
        stop(daemon, &fullname).await;
        if !restart {
            break 'outer;
        }
    }
}

/// The daemon, configured before anything is sent: our interfaces only, no multicast loop
/// (our own packets must not come back as a peer, and a box with avahi-daemon must not see
/// two answers for us), our service registered, the type browsed.
fn start_daemon(d: &Discovery) -> Result<Started, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let names = d.interfaces.clone();
    daemon.disable_interface(IfKind::All)?;
    daemon.enable_interface(IfKind::Predicate(IfPredicate::new(move |intf| {
        wanted_interface(&intf.name, intf.is_loopback(), &names)
    })))?;
    daemon.set_multicast_loop_v4(false)?;
    daemon.set_multicast_loop_v6(false)?;
    let fullname = register(&daemon, &d.advert)?;
    let events = daemon.browse(SERVICE_TYPE)?;
    Ok(Started {
        daemon,
        events,
        fullname,
    })
}

struct Started {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
    fullname: String,
}

/// Registers (or re-registers) the advert; returns its full name as mdns-sd escaped it.
fn register(daemon: &ServiceDaemon, a: &Advert) -> Result<String, mdns_sd::Error> {
    let txt: Vec<(&str, &str)> = a
        .txt
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let info = ServiceInfo::new(SERVICE_TYPE, &a.instance, &a.host, (), a.port, &txt[..])?
        .enable_addr_auto();
    let fullname = info.get_fullname().to_string();
    daemon.register(info)?;
    Ok(fullname)
}

/// `discovery.interfaces` names them; else every non-loopback interface that can multicast.
fn wanted_interface(name: &str, loopback: bool, configured: &[String]) -> bool {
    if !configured.is_empty() {
        return configured.iter().any(|c| c == name);
    }
    !loopback && can_multicast(name)
}

/// IFF_MULTICAST from sysfs; when it cannot be read, assume yes (mdns-sd then finds out).
fn can_multicast(name: &str) -> bool {
    const IFF_MULTICAST: u32 = 0x1000;
    if name.contains('/') || name.starts_with('.') {
        return false;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_none_or(|flags| flags & IFF_MULTICAST != 0)
}

fn handle(peers: &Peers, ev: ServiceEvent) {
    match ev {
        ServiceEvent::ServiceResolved(r) => {
            let txt = |k: &str| r.get_property_val_str(k).map(str::to_string);
            let ips = r.get_addresses().iter().map(|a| a.to_ip_addr());
            let Some(a) = advert::read_announcement(r.get_fullname(), r.get_port(), ips, txt)
            else {
                return;
            };
            let (id, name) = (a.id.clone(), a.name.clone());
            match peers.lock().announce(a, Instant::now(), SystemTime::now()) {
                Ok(()) => tracing::debug!(peer = %id, name = %name, "mDNS: peer announced"),
                Err(Skipped::Full) => tracing::debug!(peer = %id, "mDNS: peer table full"),
                Err(why) => tracing::debug!(peer = %id, ?why, "mDNS: announcement skipped"),
            }
        }
        ServiceEvent::ServiceRemoved(_, fullname) => {
            peers.lock().withdraw(&fullname, Instant::now());
        }
        _ => {}
    }
}

/// Records in the daemon's cache, or None if it did not say within a second.
async fn cached_records(daemon: &ServiceDaemon) -> Option<i64> {
    let rx = daemon.get_metrics().ok()?;
    let m = tokio::time::timeout(Duration::from_secs(1), rx.recv_async())
        .await
        .ok()?
        .ok()?;
    Some(
        ["cached-ptr", "cached-srv", "cached-txt", "cached-addr"]
            .iter()
            .filter_map(|k| m.get(*k))
            .sum(),
    )
}

/// Updates the advert's `fp` from the certificate in use; whether it changed.
fn refresh_fingerprint(d: &mut Discovery) -> bool {
    let Some(fp) = d.tls.as_ref().and_then(|t| t.fingerprint()) else {
        return false;
    };
    let entry = d.advert.txt.iter_mut().find(|(k, _)| k == "fp");
    match entry {
        Some((_, v)) if *v == fp => false,
        Some((_, v)) => {
            *v = fp;
            true
        }
        None => {
            d.advert.txt.push(("fp".to_string(), fp));
            true
        }
    }
}

/// Withdraws the advert (goodbye packets, so peers drop us at once) and stops the daemon.
async fn stop(daemon: ServiceDaemon, fullname: &str) {
    if let Ok(rx) = daemon.unregister(fullname) {
        let _ = tokio::time::timeout(GOODBYE_WITHIN, rx.recv_async()).await;
    }
    if let Ok(rx) = daemon.shutdown() {
        let _ = tokio::time::timeout(GOODBYE_WITHIN, rx.recv_async()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_chosen_by_name_or_loopback() {
        assert!(!wanted_interface("lo", true, &[]));
        assert!(wanted_interface("lo", true, &["lo".to_string()]));
        assert!(!wanted_interface("eth0", false, &["wlan0".to_string()]));
        assert!(!can_multicast("../etc"));
    }
}
