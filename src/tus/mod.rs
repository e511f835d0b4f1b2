//! Resumable uploads (tus 1.0.0): upload state in SQLite, data in a staging file on the
//! destination's filesystem, committed like any other upload when the last byte is in.

/// Schema of the upload state, appended to the database migrations (`db::migrations`).
pub const MIGRATIONS: &[&str] = &[];
