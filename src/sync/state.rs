//! Per-peer sync state (table `sync_peers`, migration 0015): the peers this node has accepted
//! (their node id, the SHA-256 of their sync certificate) and the pull checkpoint for each —
//! the peer's instance id and the last seq of its changes feed stored here. One table for
//! both, so forgetting a peer forgets its checkpoint too. Plain blocking code over a
//! `rusqlite::Connection`, run inside the caller's transaction where it matters:
//! `notes::apply` advances the checkpoint in the transaction that stores the revisions.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::db::DbError;

/// What this node remembers of one peer. Times are unix ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub node_id: String,
    pub name: String,
    /// The peer's instance id (its database's `node.id`) the checkpoint belongs to.
    pub instance: String,
    /// The last seq of the peer's changes feed stored here.
    pub seq: i64,
    pub first_seen: i64,
    pub last_sync: Option<i64>,
    pub last_error: Option<String>,
    /// The peer's highest seq minus `seq`, at the last successful pull.
    pub behind: i64,
}

const COLUMNS: &str =
    "node_id, name, instance, seq, first_seen, last_sync, last_error, behind FROM sync_peers";

fn row(r: &Row<'_>) -> rusqlite::Result<PeerState> {
    Ok(PeerState {
        node_id: r.get(0)?,
        name: r.get(1)?,
        instance: r.get(2)?,
        seq: r.get(3)?,
        first_seen: r.get(4)?,
        last_sync: r.get(5)?,
        last_error: r.get(6)?,
        behind: r.get(7)?,
    })
}

pub fn load(conn: &Connection, node_id: &str) -> Result<Option<PeerState>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} WHERE node_id = ?1"))?
        .query_row([node_id], row)
        .optional()?)
}

/// Every remembered peer, by name then node id.
pub fn list(conn: &Connection) -> Result<Vec<PeerState>, DbError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLUMNS} ORDER BY name, node_id"))?;
    let rows = st.query_map([], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Inserts the peer if new (first_seen = now) and updates its name otherwise.
pub fn remember(conn: &Connection, node_id: &str, name: &str, now_ms: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO sync_peers (node_id, name, first_seen) VALUES (?1, ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET name = excluded.name",
        params![node_id, name, now_ms],
    )?;
    Ok(())
}

/// The last failure of a pull from this peer (the checkpoint stays where it is). A peer not
/// remembered yet is left alone.
pub fn record_error(conn: &Connection, node_id: &str, error: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sync_peers SET last_error = ?2 WHERE node_id = ?1",
        params![node_id, error],
    )?;
    Ok(())
}

/// Start over: the peer's database was replaced or restored (a new instance id, or a highest
/// seq below our checkpoint), so its seqs mean something else now.
pub fn reset(conn: &Connection, node_id: &str, instance: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sync_peers SET instance = ?2, seq = 0 WHERE node_id = ?1",
        params![node_id, instance],
    )?;
    Ok(())
}

/// A successful pull up to `seq` of `instance`: the checkpoint moves, the error clears. A
/// peer not remembered yet is inserted with an empty name (`remember` names it). Called by
/// `notes::apply` inside the transaction that stored the revisions.
pub fn advance(
    conn: &Connection,
    node_id: &str,
    instance: &str,
    seq: i64,
    behind: i64,
    now_ms: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO sync_peers (node_id, name, instance, seq, first_seen, last_sync, behind)
         VALUES (?1, '', ?2, ?3, ?4, ?4, ?5)
         ON CONFLICT (node_id) DO UPDATE SET instance = excluded.instance, seq = excluded.seq,
             last_sync = excluded.last_sync, last_error = NULL, behind = excluded.behind",
        params![node_id, instance, seq, now_ms, behind.max(0)],
    )?;
    Ok(())
}

/// A pull that stored something but refused something: the checkpoint stays, the reason is
/// kept (the peer is inserted with an empty name if it was not remembered).
pub(crate) fn refused(
    conn: &Connection,
    node_id: &str,
    error: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO sync_peers (node_id, name, first_seen, last_error) VALUES (?1, '', ?2, ?3)
         ON CONFLICT (node_id) DO UPDATE SET last_error = excluded.last_error",
        params![node_id, now_ms, error],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remember_checkpoint_error_reset() {
        let c = crate::notes::testutil::conn();
        let id = "a".repeat(64);
        assert_eq!(load(&c, &id).unwrap(), None);
        remember(&c, &id, "living-room", 10).unwrap();
        remember(&c, &id, "lounge", 20).unwrap();
        let p = load(&c, &id).unwrap().unwrap();
        assert_eq!(
            (p.name.as_str(), p.first_seen, p.seq, p.last_sync),
            ("lounge", 10, 0, None)
        );
        advance(&c, &id, "inst1", 42, 8, 30).unwrap();
        record_error(&c, &id, "peer speaks sync API 2").unwrap();
        let p = load(&c, &id).unwrap().unwrap();
        assert_eq!(
            (p.instance.as_str(), p.seq, p.behind, p.last_sync),
            ("inst1", 42, 8, Some(30))
        );
        assert_eq!(p.last_error.as_deref(), Some("peer speaks sync API 2"));
        advance(&c, &id, "inst1", 50, 0, 40).unwrap();
        assert_eq!(load(&c, &id).unwrap().unwrap().last_error, None);
        reset(&c, &id, "inst2").unwrap();
        let p = load(&c, &id).unwrap().unwrap();
        assert_eq!((p.instance.as_str(), p.seq), ("inst2", 0));
        remember(&c, &"b".repeat(64), "attic", 50).unwrap();
        let names: Vec<String> = list(&c).unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["attic", "lounge"]);
    }
}
