//! Accounts: users (argon2id passwords), login sessions, API tokens and share links, stored in
//! the database. Plain blocking code over [`Db`] — the HTTP layer calls it on the blocking pool
//! and the `streamhub user …` CLI calls it directly. The types here are domain values: the
//! JSON the API shows for them is `http`'s (`http::wire`), not theirs.
//!
//! Invariant: secrets (session ids, API tokens) are stored only as SHA-256 hashes; an unknown
//! user name costs the same argon2 work as a wrong password.

pub mod hashing;
mod limits;
pub mod ratelimit;
mod sessions;
pub mod shares;
mod tokens;
mod users;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::blocking::BlockingError;
use crate::db::{Db, DbError};

pub use limits::{Effective, Limits, LimitsChange};
pub use sessions::NewSession;
pub use tokens::ApiToken;
pub use users::{validate_name, validate_password, UserChange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    /// The name stored in the database and shown by the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// A role by its name; `None` for anything else (the API refuses it, 422).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// A stored role: anything but `admin` is a member (fail towards fewer rights).
    fn from_db(s: &str) -> Role {
        Role::parse(s).unwrap_or(Role::Member)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong name or password")]
    BadCredentials,
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("no user named {0}")]
    NoSuchUser(String),
    #[error("the last admin cannot be deleted or demoted")]
    LastAdmin,
    #[error("not found")]
    NotFound,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
    /// The blocking task that ran the work failed (panicked, cancelled, timed out).
    #[error(transparent)]
    Blocking(#[from] BlockingError),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Db(DbError::Sql(e))
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The accounts store: a cheap handle over the database. Its methods live beside the data
/// they touch: `users` (accounts and passwords), `sessions`, `tokens`, `shares`.
#[derive(Clone)]
pub struct Accounts {
    db: Db,
    /// argon2's memory, shared by every clone (see `hashing`).
    argon: Arc<hashing::HashMemory>,
}

impl Accounts {
    pub fn new(db: Db) -> Self {
        Accounts {
            db,
            argon: hashing::HashMemory::new(hashing::parallelism()),
        }
    }

    /// Taken by a caller before it waits for a hash slot and kept until its hash is done:
    /// while any is held, argon2's buffers are reused instead of freed and allocated again.
    pub fn hash_hold(&self) -> hashing::Hold {
        self.argon.hold()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
