//! Storage backends for kms-core.
//!
//! - [`MemoryStorage`]: an in-process ordered map, for tests and ephemeral embedding.
//! - [`RedbStorage`]: an embedded, crash-safe file on [redb](https://docs.rs/redb); the default
//!   for a single engine process.
//! - `PostgresStorage` (feature `postgres`): one PostgreSQL (or compatible) database shared by
//!   several engine processes, with the change log that keeps their caches coherent.
//! - [`conformance`]: the suite every [`kms_core::Storage`] implementation must pass.
//! - [`root_key_file`]: loads the root key from, or creates it in, a data directory.
//!
//! Both backends assign revisions from one counter per store, so a key that is deleted and
//! written again never reuses a revision an earlier reader may still hold.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod precondition;
mod redb_store;

pub mod conformance;
pub mod root_key_file;

pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStorage, SCHEMA_VERSION};
pub use redb_store::{RedbOptions, RedbStorage};
