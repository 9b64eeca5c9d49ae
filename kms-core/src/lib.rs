//! kms-core: an embeddable key lifecycle engine.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic))]

pub mod crypto;
pub mod error;
pub mod root_key;
pub mod storage;

pub use error::KmsError;
pub use root_key::RootKey;
pub use storage::{Batch, Entry, Op, Precondition, Storage, StorageError};
