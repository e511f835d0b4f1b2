//! Replication: one worker per known peer pulls that peer's changes (anti-entropy, see
//! `notes::feed`), on a timer (`sync.interval_secs`), at once when the peer nudges this node,
//! and with exponential backoff while it fails. A local change makes every worker nudge its
//! peer, which then pulls from us. Nothing lives only in memory: the checkpoint moves in the
//! transaction that stores what was pulled (`notes::apply`), and a restart resumes from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rustls::ClientConfig;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{self, Connection, SyncError};
use super::session::Me;
use super::state;
use crate::db::Db;
use crate::notes::{NoteError, NotesStore};
use crate::peers::{Peer, Peers, Source};

/// Changes asked for per page.
const PAGE: usize = 200;
/// First wait after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Short: a peer on the LAN that fails is mostly one unplugged or restarting, and a try costs
/// one connect (or one handshake); what matters is catching up soon after it is back.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Pages pulled in one round at most (200,000 changes): a peer that keeps the feed growing
/// cannot hold a worker forever; the next round goes on from the checkpoint.
const MAX_PAGES: usize = 1000;
/// The shortest time between two rounds with one peer: nudges arriving faster are folded
/// into the next round.
const MIN_GAP: Duration = Duration::from_millis(100);
/// How often the set of workers is matched against the peer table.
const ROSTER_EVERY: Duration = Duration::from_secs(2);

/// One peer's replication state, as its worker keeps it (`status` is what is shown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The node id it proved (a static peer's is known once reached).
    pub id: Option<String>,
    pub name: Option<String>,
    pub connected: bool,
    pub last_sync: Option<SystemTime>,
    pub behind: Option<i64>,
    pub last_error: Option<String>,
    /// The last round that went through (it answered and proved itself).
    pub last_contact: Option<SystemTime>,
    /// Where it last proved membership: tried first next time, so an announcement that
    /// points elsewhere (spoofed, or stale) cannot cut it off.
    pub last_good: Option<SocketAddr>,
}

impl Live {
    /// What the API and `streamhub peers` show of it.
    pub fn status(self) -> crate::peers::SyncStatus {
        crate::peers::SyncStatus {
            id: self.id,
            name: self.name,
            connected: self.connected,
            last_sync: self.last_sync,
            behind: self.behind,
            last_error: self.last_error,
            last_contact: self.last_contact,
        }
    }
}

/// One peer's two tasks: the puller (`work`), woken to pull now, and the nudger (`nudge`),
/// woken after a local change to tell the peer to pull. Apart, so a long pull never
/// delays a nudge: the nudger opens a connection of its own.
struct Worker {
    wake: Notify,
    pull: AtomicBool,
    nudge_wake: Notify,
    nudge: AtomicBool,
    live: Mutex<Live>,
    cancel: CancellationToken,
}

struct Inner {
    me: Me,
    client: Arc<ClientConfig>,
    db: Db,
    notes: NotesStore,
    peers: Peers,
    interval: Duration,
    workers: Mutex<HashMap<String, Arc<Worker>>>,
}

#[path = "engine_pull.rs"]
mod pull;
use pull::addresses;

/// The replication engine's handle (cheap to clone).
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key a peer's worker is filed under: its node id (mDNS) or its configured address.
pub fn key(p: &Peer) -> Option<String> {
    match p.source {
        Source::Mdns => p.id.clone(),
        Source::Static => p.addresses.first().map(|a| format!("static:{a}")),
    }
}

impl Engine {
    pub fn new(
        me: Me,
        client: Arc<ClientConfig>,
        db: Db,
        notes: NotesStore,
        peers: Peers,
        interval: Duration,
    ) -> Self {
        Engine(Arc::new(Inner {
            me,
            client,
            db,
            notes,
            peers,
            interval,
            workers: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs until `cancel`: keeps one worker per peer in the table (and shows their state
    /// through the table's handle, for `streamhub peers`).
    pub async fn run(self, cancel: CancellationToken) {
        let me = self.clone();
        self.0
            .peers
            .set_status(move |p| key(p).and_then(|k| me.live(&k)).map(Live::status));
        loop {
            self.roster(&cancel);
            tokio::select! {
                _ = tokio::time::sleep(ROSTER_EVERY) => {}
                _ = cancel.cancelled() => break,
            }
        }
        for w in lock(&self.0.workers).values() {
            w.cancel.cancel();
        }
    }

    fn roster(&self, cancel: &CancellationToken) {
        let keys: Vec<String> = self.0.peers.list().iter().filter_map(key).collect();
        let mut workers = lock(&self.0.workers);
        workers.retain(|k, w| {
            let keep = keys.contains(k);
            if !keep {
                w.cancel.cancel();
            }
            keep
        });
        for k in keys {
            if workers.contains_key(&k) {
                continue;
            }
            let w = Arc::new(Worker {
                wake: Notify::new(),
                pull: AtomicBool::new(true),
                nudge_wake: Notify::new(),
                // A peer just found may have missed what changed here before (changes made
                // before discovery found it had no one to nudge): one nudge to start.
                nudge: AtomicBool::new(true),
                live: Mutex::new(Live::default()),
                cancel: cancel.child_token(),
            });
            w.nudge_wake.notify_one();
            workers.insert(k.clone(), w.clone());
            tokio::spawn(self.clone().nudger(k.clone(), w.clone()));
            tokio::spawn(self.clone().work(k, w));
        }
    }

    /// A local change: every peer is nudged to pull it.
    pub fn local_change(&self) {
        self.local_change_except("");
    }

    /// Pull from the peer `id` now (it nudged us, or an admin asked). False: no worker
    /// knows that node.
    pub fn pull_now(&self, id: &str) -> bool {
        let workers = lock(&self.0.workers);
        let mut found = false;
        for (k, w) in workers.iter() {
            if k == id || lock(&w.live).id.as_deref() == Some(id) {
                w.pull.store(true, Ordering::Relaxed);
                w.wake.notify_one();
                found = true;
            }
        }
        found
    }

    /// What the API shows of the peer filed under `key`.
    pub fn live(&self, key: &str) -> Option<Live> {
        lock(&self.0.workers)
            .get(key)
            .map(|w| lock(&w.live).clone())
    }

    fn entry(&self, key: &str) -> Option<Peer> {
        self.0
            .peers
            .list()
            .into_iter()
            .find(|p| self::key(p).as_deref() == Some(key))
    }

    async fn work(self, key: String, w: Arc<Worker>) {
        let mut conn: Option<Connection> = None;
        let mut failures = 0u32;
        let mut due = tokio::time::Instant::now();
        loop {
            // Due, or asked for (a nudge from the peer, an admin): also while backing off.
            let pull = w.pull.swap(false, Ordering::Relaxed) || tokio::time::Instant::now() >= due;
            if pull {
                let started = tokio::time::Instant::now();
                let reused = conn.is_some();
                let mut result = self.round(&key, &w, &mut conn).await;
                if reused && matches!(result, Err(RoundError::Sync(SyncError::Protocol(_)))) {
                    // A kept connection the peer closed meanwhile (its idle timeout, a
                    // restart): one more try on a new one before this counts as a failure.
                    conn = None;
                    result = self.round(&key, &w, &mut conn).await;
                }
                // Rounds back to back (a peer nudging in a loop) are spaced out.
                tokio::time::sleep_until(started + MIN_GAP).await;
                match result {
                    Ok(()) => {
                        if failures > 0 {
                            // Back after an outage: the peer may be backing off from us too,
                            // and our nudges of the meantime were lost; tell it to pull now,
                            // so edits made on both sides cross at once.
                            w.nudge.store(true, Ordering::Relaxed);
                            w.nudge_wake.notify_one();
                        }
                        failures = 0;
                        lock(&w.live).last_contact = Some(SystemTime::now());
                        due = tokio::time::Instant::now() + self.0.interval;
                    }
                    Err(e) => {
                        conn = None;
                        failures = failures.saturating_add(1);
                        due = tokio::time::Instant::now() + self.backoff(failures);
                        self.failed(&key, &w, &e).await;
                    }
                }
            }
            tokio::select! {
                _ = w.wake.notified() => {}
                _ = tokio::time::sleep_until(due) => {}
                _ = w.cancel.cancelled() => return,
            }
        }
    }

    async fn failed(&self, key: &str, w: &Worker, e: &RoundError) {
        let text = e.to_string();
        let id = {
            let mut live = lock(&w.live);
            live.connected = false;
            if live.last_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(peer = live.name.as_deref().unwrap_or(key), error = %text,
                    "sync with a peer failed");
            }
            live.last_error = Some(text.clone());
            live.id.clone()
        };
        if let Some(id) = id {
            let _ = self
                .0
                .db
                .call(move |c| state::record_error(c, &id, &text))
                .await;
        }
    }

    /// Tells the peer to pull, on a connection of its own, after every local change (those
    /// that arrive while one nudge is sent make one more). A nudge that cannot be delivered
    /// (the peer unplugged, restarting) is tried again, backing off as the puller does, so
    /// an edit made during an outage reaches the peer soon after it is back, not a whole
    /// interval later.
    async fn nudger(self, key: String, w: Arc<Worker>) {
        // Kept while the peer keeps it open (a burst of edits costs one handshake).
        let mut conn: Option<Connection> = None;
        let mut failures = 0u32;
        loop {
            // An undelivered nudge is tried again after the backoff (the branch is off while
            // there is none pending).
            let retry = tokio::time::sleep(self.backoff(failures));
            tokio::select! {
                _ = w.nudge_wake.notified() => {}
                _ = retry, if failures > 0 => w.nudge.store(true, Ordering::Relaxed),
                _ = w.cancel.cancelled() => return,
            }
            if !w.nudge.swap(false, Ordering::Relaxed) {
                continue;
            }
            let started = tokio::time::Instant::now();
            let mut delivered = false;
            for _ in 0..2 {
                if conn.as_ref().is_none_or(|c| !c.is_open()) {
                    conn = match self.open(&key, &w).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::debug!(peer = %key, error = %e, "nudge not delivered");
                            break;
                        }
                    };
                }
                let Some(c) = conn.as_mut() else { break };
                match c.nudge().await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    // Closed by the peer meanwhile: once more on a new connection.
                    Err(e) => {
                        tracing::debug!(peer = %key, error = %e, "nudge not delivered");
                        conn = None;
                    }
                }
            }
            failures = if delivered {
                0
            } else {
                failures.saturating_add(1)
            };
            tokio::time::sleep_until(started + MIN_GAP).await;
        }
    }

    /// The wait after `failures` failures in a row: doubling from [`FIRST_BACKOFF`], never
    /// longer than [`MAX_BACKOFF`] nor than the interval (a failing peer is never tried less
    /// often than a healthy one, so a link back up is noticed within seconds).
    fn backoff(&self, failures: u32) -> Duration {
        FIRST_BACKOFF
            .saturating_mul(1 << failures.min(8).saturating_sub(1))
            .min(MAX_BACKOFF)
            .min(self.0.interval)
            .max(Duration::from_millis(100))
    }

    /// Opens an authenticated connection to the peer filed under `key`, and remembers it.
    async fn open(&self, key: &str, w: &Worker) -> Result<Connection, RoundError> {
        let peer = self.entry(key).ok_or(RoundError::Gone)?;
        let last_good = lock(&w.live).last_good;
        // A goodbye is no more authenticated than an announcement: anyone on the LAN can
        // send one in a peer's name. A peer that proved itself somewhere is tried there
        // anyway (one that really left costs a refused connect per backoff step until the
        // table forgets it); only one never reached waits for an announcement.
        if peer.source == Source::Mdns && !peer.online && last_good.is_none() {
            return Err(RoundError::Offline);
        }
        let (mut addrs, host) = addresses(&peer).await?;
        if let Some(good) = last_good {
            addrs.retain(|a| *a != good);
            addrs.insert(0, good);
        }
        // Each address in turn, the whole way to a proved membership: one that answers but
        // is not the node (a spoofed announcement) does not end the attempt.
        let mut last = None;
        let mut found = None;
        for a in &addrs {
            match client::connect(
                std::slice::from_ref(a),
                &host,
                &self.0.client,
                &self.0.me,
                peer.id.as_deref(),
            )
            .await
            {
                Ok(c) => {
                    found = Some((c, *a));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let (c, at) = match found {
            Some(x) => x,
            None => {
                return Err(last
                    .unwrap_or_else(|| SyncError::Unreachable("no usable address".into()))
                    .into())
            }
        };
        lock(&w.live).last_good = Some(at);
        if let (Source::Mdns, Some(id)) = (peer.source, peer.id.as_deref()) {
            // Shown (and tried) first from now on, whatever announcements claim meanwhile.
            self.0.peers.lock().proved(id, &at.to_string());
        }
        let (id, name) = (c.peer_id.clone(), c.peer_name.clone());
        {
            let mut live = lock(&w.live);
            live.id = Some(id.clone());
            live.name = Some(name.clone());
            live.connected = true;
        }
        let now = super::unix_ms();
        self.0
            .db
            .call(move |c| state::remember(c, &id, &name, now))
            .await?;
        Ok(c)
    }

    /// One pull round on the kept connection (opened first if there is none).
    async fn round(
        &self,
        key: &str,
        w: &Worker,
        conn: &mut Option<Connection>,
    ) -> Result<(), RoundError> {
        if conn.as_ref().is_none_or(|c| !c.is_open()) {
            *conn = None;
            *conn = Some(self.open(key, w).await?);
        }
        let Some(c) = conn.as_mut() else {
            return Err(RoundError::Gone);
        };
        let stored = self.pull(c, w).await?;
        if stored > 0 {
            // What arrived (and any merge made of it) is news to the other peers.
            self.local_change_except(key);
        }
        Ok(())
    }

    fn local_change_except(&self, skip: &str) {
        for (k, w) in lock(&self.0.workers).iter() {
            if k != skip {
                w.nudge.store(true, Ordering::Relaxed);
                w.nudge_wake.notify_one();
            }
        }
    }
}

/// Why a round ended early.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A revision was refused (too far in the future): the checkpoint stays before it.
    #[error("{0}")]
    Refused(String),
    #[error("offline (its mDNS announcement was withdrawn)")]
    Offline,
    #[error("no longer in the peer table")]
    Gone,
    #[error("local database: {0}")]
    Local(String),
}

impl From<NoteError> for RoundError {
    fn from(e: NoteError) -> Self {
        RoundError::Local(e.to_string())
    }
}

impl From<crate::db::DbError> for RoundError {
    fn from(e: crate::db::DbError) -> Self {
        RoundError::Local(e.to_string())
    }
}
