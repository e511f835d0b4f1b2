//! Per-client-address accounting: how many connections one address holds
//! (`server.max_connections_per_ip`), and the share of response memory it may pin
//! (`budget::SendBudget`). One address on the LAN — a script, a broken player, an attacker —
//! must not be able to take every connection slot or every byte of buffer the box has, and the
//! rest of the LAN must still be served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use super::budget::SendBudget;
use super::pool::Pool;
use super::stall::{Conn, Conns, Registered};

/// Frames in flight (read from storage but not yet taken by the socket) for all clients.
/// A frame is at most one storage chunk (`streaming.chunk_kib`, 64 KiB by default; grown chunks
/// have their own 8 MiB cap in `storage::local`), so this bounds response buffers to ~24 MiB.
pub const GLOBAL_FRAMES: usize = 384;
/// Frames in flight for one client address: a third of the whole, so it takes at least three
/// addresses to exhaust it, and one TV or phone never comes near (a paused or slow stream pins
/// one frame, a fast one frees its frame as soon as the kernel takes it).
pub const CLIENT_FRAMES: usize = 128;

/// The connections and send budget of every client address currently connected.
pub struct Clients {
    /// 0: no per-address limits (behind a reverse proxy every client is the proxy).
    max_per_ip: usize,
    global: Arc<Pool>,
    table: Mutex<HashMap<IpAddr, Entry>>,
    /// Every live connection, for closing stalled ones when the global pool runs dry.
    conns: Arc<Conns>,
}

struct Entry {
    conns: usize,
    frames: Arc<Semaphore>,
}

impl Clients {
    pub fn new(max_per_ip: usize) -> Arc<Self> {
        Arc::new(Clients {
            max_per_ip,
            global: Pool::new(GLOBAL_FRAMES),
            table: Mutex::new(HashMap::new()),
            conns: Arc::default(),
        })
    }

    /// Counts a new connection from `ip`; `None` when the address already holds its share.
    /// `fd` is the connection's socket, for the stall scan (`stall`).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, fd: Option<RawFd>) -> Option<ClientSlot> {
        // `::ffff:10.0.0.5` on a dual-stack listener is the same client as `10.0.0.5`.
        let ip = ip.to_canonical();
        if self.max_per_ip == 0 {
            let conn = self.conns.register(None, fd);
            return Some(ClientSlot {
                clients: self.clone(),
                ip: None,
                budget: SendBudget::new(
                    self.global.clone(),
                    None,
                    Some((self.conns.clone(), conn.conn().clone())),
                ),
                conn,
            });
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.entry(ip).or_insert_with(|| Entry {
            conns: 0,
            frames: Arc::new(Semaphore::new(CLIENT_FRAMES)),
        });
        if entry.conns >= self.max_per_ip {
            return None;
        }
        entry.conns += 1;
        let frames = entry.frames.clone();
        drop(table);
        let conn = self.conns.register(Some(ip), fd);
        Some(ClientSlot {
            clients: self.clone(),
            ip: Some(ip),
            budget: SendBudget::new(
                self.global.clone(),
                Some(frames),
                Some((self.conns.clone(), conn.conn().clone())),
            ),
            conn,
        })
    }

    /// Connections currently held by `ip` (for tests and metrics).
    pub fn connections(&self, ip: IpAddr) -> usize {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.get(&ip.to_canonical()).map_or(0, |e| e.conns)
    }
}

/// One admitted connection; dropping it gives the slot back.
pub struct ClientSlot {
    clients: Arc<Clients>,
    ip: Option<IpAddr>,
    budget: SendBudget,
    conn: Registered,
}

impl ClientSlot {
    pub fn budget(&self) -> &SendBudget {
        &self.budget
    }

    /// The connection as the stall scan sees it: `closed()` resolves when it must close.
    pub fn conn(&self) -> &Arc<Conn> {
        self.conn.conn()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut table = self
            .clients
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = table.get_mut(&ip) {
            e.conns = e.conns.saturating_sub(1);
            // The entry goes with the address's last connection, so the table holds only
            // connected clients (bounded by max_connections).
            if e.conns == 0 {
                table.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_capped_and_others_are_not() {
        let c = Clients::new(2);
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        let b: IpAddr = "10.0.0.6".parse().unwrap();
        let s1 = c.admit(a, None).unwrap();
        let _s2 = c.admit(a, None).unwrap();
        assert!(c.admit(a, None).is_none());
        // The IPv4-mapped form is the same client.
        assert!(c.admit("::ffff:10.0.0.5".parse().unwrap(), None).is_none());
        assert!(c.admit(b, None).is_some());
        drop(s1);
        assert_eq!(c.connections(a), 1);
        assert!(c.admit(a, None).is_some());
    }

    #[test]
    fn the_entry_goes_with_the_last_connection() {
        let c = Clients::new(4);
        let a: IpAddr = "::1".parse().unwrap();
        drop(c.admit(a, None).unwrap());
        assert_eq!(c.table.lock().unwrap().len(), 0);
    }

    #[test]
    fn zero_turns_the_cap_off() {
        let c = Clients::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| c.admit(a, None).unwrap()).collect();
        assert_eq!(slots.len(), 1000);
        assert_eq!(c.connections(a), 0);
    }
}
