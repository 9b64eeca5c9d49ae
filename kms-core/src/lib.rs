//! kms-core: an embeddable key lifecycle engine.
//!
//! Customer master keys with versions, automatic rotation, enable/disable, deletion protection
//! and scheduled deletion, aliases, tags, and envelope encryption, over a pluggable
//! [`Storage`], [`Authorizer`] and [`Clock`]. The operations and their rules follow Alibaba
//! Cloud KMS (API 2016-01-20); request and response structs serialize to its wire shapes.
//!
//! ```
//! use kms_core::{api::*, Caller, Kms, RootKey};
//! # fn main() -> Result<(), kms_core::KmsError> {
//! let kms = Kms::builder()
//!     .storage(kms_storage::MemoryStorage::new())
//!     .root_key(RootKey::generate()?)
//!     .account_id("1234")
//!     .build()?;
//! let me = Caller::account_root("1234");
//! let key = kms.create_key(&me, CreateKeyRequest::default())?.key_metadata;
//! let sealed = kms.encrypt(&me, EncryptRequest {
//!     key_id: key.key_id.clone(),
//!     plaintext: b"hello".to_vec().into(),
//!     ..Default::default()
//! })?;
//! let opened = kms.decrypt(&me, DecryptRequest {
//!     ciphertext_blob: sealed.ciphertext_blob,
//!     ..Default::default()
//! })?;
//! assert_eq!(&opened.plaintext[..], b"hello");
//! # Ok(()) }
//! ```
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]

#[macro_use]
mod macros;

pub mod api;
pub mod asym;
pub mod auth;
pub mod blob;
pub mod certs;
pub mod crypto;
mod engine;
pub mod error;
pub mod external;
pub mod ids;
pub mod lifecycle;
pub mod model;
pub mod provider;
pub mod root_key;
mod seal;
pub mod secrets;
pub mod storage;
pub mod time;
pub mod validate;
pub mod wire;

pub use auth::{AllowAll, Authorizer, Caller, SameAccountOnly};
pub use engine::{CacheStats, CorruptRecord, Kms, KmsBuilder, SecretRotationHandler};
pub use error::KmsError;
pub use root_key::RootKey;
pub use storage::{Batch, Entry, Op, Precondition, Storage, StorageError};
pub use time::{Clock, ManualClock, SystemClock, UnixTime};

/// The README's code blocks compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
