//! Wiring at start: the peer table for this node, its control socket, and the mDNS task when
//! this node can be advertised (each a task of the service's `TaskSet`).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::peers::control::{self, NodeInfo};
use crate::peers::Peers;
use crate::sync::NodeIdentity;
use crate::tasks::TaskSet;
use crate::tls::TlsState;

use super::{advert, Discovery};

/// Builds the peer table and starts the tasks that fill and serve it. `tls_bound` are the
/// bound TLS listeners (their real ports). With `discovery.enabled` off, or nothing to
/// advertise, no mDNS socket is opened; why is logged once.
pub fn start(
    config: &Config,
    identity: &NodeIdentity,
    tls: Option<Arc<TlsState>>,
    tls_bound: &[SocketAddr],
    tasks: &TaskSet,
) -> Peers {
    let tag = config.cluster_key().map(|k| k.tag());
    let name = advert::node_name(&config.discovery.name, crate::tls::host_name());
    let port = if config.discovery.enabled {
        advert::advertised_port(tls_bound)
    } else {
        Err("discovery.enabled is off (or --no-discovery)")
    };
    let mdns = port.is_ok();
    let peers = Peers::new(
        identity.id(),
        tag.clone(),
        &config.sync.peers,
        mdns || !config.sync.peers.is_empty(),
    )
    .named(&name);
    if tag.is_none() && (mdns || !config.sync.peers.is_empty()) {
        tracing::warn!(
            "sync.cluster_key is empty: this node is in no cluster (make a key with \
             `streamhub cluster new` and set it on every box); it lists only other keyless nodes"
        );
    }
    let why_not = port.err().map(str::to_string);
    match (&why_not, config.discovery.enabled) {
        (Some(why), true) => tracing::warn!("LAN discovery (mDNS) is off: {why}"),
        (Some(why), false) => tracing::info!("LAN discovery (mDNS) is off: {why}"),
        (None, _) => {}
    }
    let node = NodeInfo {
        id: identity.id().to_string(),
        name: name.clone(),
        discovery: why_not,
        cluster: tag.clone(),
    };
    let path = control::socket_path(&config.server.data_dir);
    let p = peers.clone();
    tasks.spawn("peers-control", move |cancel| {
        control::serve(path, node, p, cancel)
    });
    if let Ok(port) = port {
        let fp = tls.as_ref().and_then(|t| t.fingerprint());
        let d = Discovery {
            advert: advert::advert(&name, identity.id(), port, tag.as_deref(), fp.as_deref()),
            interfaces: config.discovery.interfaces.clone(),
            peers: peers.clone(),
            tls,
        };
        // Something to finish after the cancellation: the goodbye packets.
        tasks.spawn("mdns", move |cancel| super::run(d, cancel));
    }
    peers
}
