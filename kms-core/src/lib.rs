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

// ---- Shared foundations -------------------------------------------------------------------
#[macro_use]
mod macros;
mod error;
mod ids;
mod schema;
mod storage;
mod time;
mod validate;
mod wire;

// ---- Shared crypto: primitives, the ciphertext blob, sealing, key providers ----------------
mod crypto;

// ---- Authorization: callers, actions, the Authorizer, policy operations --------------------
mod policy;

// ---- The engine: Kms, its builder, storage I/O, cache, indexes, maintenance ----------------
mod engine;

// ---- Domains: each with its pure rules, its engine operations and its wire types ----------
mod certificates;
mod keys;
mod secrets;
mod tags;

pub use crypto::asym::{EncryptionAlgorithm, PublicKey, SigningAlgorithm};
pub use crypto::external::{validate_external_key_id, ExternalCiphertext, ExternalKeyStore};
pub use crypto::provider::{InMemoryHsm, KeyProvider};
pub use crypto::root_key::{RootKey, ROOT_KEY_LEN};
pub use crypto::{ct_eq, AeadAlgorithm, OsRandom, RandomSource, NONCE_LEN, TAG_LEN};
pub use engine::{CacheStats, CorruptRecord, Kms, KmsBuilder};
pub use error::KmsError;
pub use ids::new_request_id;
pub use policy::{
    default_policy_document, AccessRequest, Action, AllowAll, Authorizer, Caller, Decision,
    Principal, SameAccountOnly, MAX_POLICY_BYTES,
};
pub use schema::ArnScope;
pub use secrets::ops::SecretRotationHandler;
pub use storage::{Batch, Entry, Op, Precondition, Storage, StorageError};
pub use time::{Clock, ManualClock, SystemClock, UnixTime, DAY};

/// The operations' request and response types and the values they carry.
///
/// Field names are the wire names in snake_case; serde renames them to Alibaba's PascalCase,
/// so these structs serialize to Alibaba's wire shapes and [`api::decode_request`] decodes them
/// from a parameter map.
pub mod api {
    pub use crate::certificates::api::*;
    pub use crate::keys::api::*;
    pub use crate::keys::model::{
        AutomaticRotation, CreatorType, DeletionProtection, KeySpec, KeyState, KeyUsage, Origin,
        ProtectionLevel,
    };
    pub use crate::secrets::api::*;
    pub use crate::wire::decode_request;
}

/// Internals for the fuzz targets and benchmarks of this repository. Not a stable interface:
/// anything here may change in any release.
#[doc(hidden)]
pub mod internal {
    pub use crate::certificates::x509;
    pub use crate::crypto::blob;
    /// Identifiers: UUIDs, ARNs, alias names.
    pub mod ids {
        pub use crate::ids::*;
    }
}

/// The README's code blocks compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
