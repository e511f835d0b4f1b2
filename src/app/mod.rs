//! The application layer: what a request means, across domain modules. `http` handlers only
//! translate HTTP into these calls and their typed results back; the rules of who may change
//! what, and the orchestration of a write (storage → library index → metrics), live here, so
//! the web UI, sync and the CLI reuse them instead of re-implementing them per endpoint.
//!
//! Layout: `files` (uploads, folders and the ownership rules), `moves`, `trash` (deletes,
//! the trash and its sweep), `settle` (changes that answered 503 while the
//! storage did not answer: their bookkeeping follows what landed), `resumable` (tus uploads over storage and the `tus` state) and
//! `zip` (a folder as a zip archive streamed as it is built).

pub mod files;
mod moves;
pub mod quota;
pub mod resumable;
mod settle;
pub mod trash;
pub mod zip;

pub use files::{Files, FilesError, PutRequest};
pub use quota::{QuotaExceeded, Quotas};
pub use resumable::{Resumable, ResumableError};
pub use trash::{DeleteOptions, Deleted};
