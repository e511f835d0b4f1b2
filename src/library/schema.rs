//! The library's own connections to the database (its tables are `db`'s migration
//! `0006_library.sql`): the scanner and the query side never take the service's shared `Db`
//! mutex.

use std::path::Path;

use rusqlite::Connection;

use super::LibraryError;

/// Opens another connection to `<data_dir>/streamhub.db` with the pragmas `db::Db` uses
/// (`db::open_conn`). The schema is already migrated.
pub fn open_conn(db_file: &Path) -> Result<Connection, LibraryError> {
    let conn = crate::db::open_conn(db_file).map_err(|e| match crate::db::classify(&e) {
        Some(fault) => LibraryError::DataDir(fault),
        None => LibraryError::Db(format!("{}: {e}", db_file.display())),
    })?;
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'media'",
        [],
        |r| r.get(0),
    )?;
    if present == 0 {
        return Err(LibraryError::Db(
            "the media table is missing (database not migrated)".into(),
        ));
    }
    Ok(conn)
}
