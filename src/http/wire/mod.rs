//! The JSON the API promises, owned by `http`: response structs with `From<&Domain>`
//! conversions, and the few request-side types that need more than a derive. Domain modules
//! (`auth`, `notes`) never derive the wire format, so changing a domain type cannot change
//! what clients receive unnoticed: the golden tests here pin the exact bytes.
//!
//! Field order is part of the bytes: each struct lists its fields in the order the API has
//! always sent them (for most answers that was alphabetical, as they were built through a
//! `serde_json::Value`, which sorts keys).

pub mod accounts;
pub mod library;
pub mod notes;
pub mod peers;
pub mod time;
