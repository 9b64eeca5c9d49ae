//! kms-core: an embeddable key lifecycle engine.
//!
//! Customer master keys with versions, automatic rotation, enable/disable, deletion protection
//! and scheduled deletion, aliases, tags, and envelope encryption, over a pluggable
//! [`Storage`], [`Authorizer`] and [`Clock`]. The operations and their rules follow Alibaba
//! Cloud KMS (API 2016-01-20); request and response structs serialize to its wire shapes.
//!
//! The primitives come from a [`CryptoProvider`]: aws-lc-rs with the default `aws-lc` feature,
//! the pure-Rust RustCrypto crates without it (`default-features = false`: no C compiler
//! needed).
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

// ---- The rooms (private; ARCHITECTURE.md describes each) ---------------------------------
#[macro_use]
mod macros;
mod applications; // KMS 3.0: instances, network rules, policies, AAPs, client keys, instance API
mod certificates; // the certificate manager: status rules, X.509, operations, wire types
mod crypto; // primitives, the ciphertext blob, sealing, root key, key providers
mod engine; // Kms, its builder, storage I/O, mutate, cache, indexes, maintenance
mod error; // KmsError and Alibaba's error codes
mod ids; // UUIDs, alias names, key references
mod keys; // customer master keys: records, rules, operations, wire types
mod policy; // callers, actions, the Authorizer, policy operations
mod schema; // record-key prefixes, record keys, scan ranges, ARNs
mod secrets; // the secrets manager: rules, operations, wire types
mod storage; // the Storage trait
mod tags; // tags on every record kind, single and batch
mod time; // UnixTime and the Clock
mod validate; // parameter checks
mod wire; // serde adapters for Alibaba's wire values

// ---- The engine and its errors ------------------------------------------------------------
pub use engine::{CacheStats, CorruptRecord, Kms, KmsBuilder};
pub use error::KmsError;

pub mod api;

/// The instance API of KMS 3.0 applications: the operations an application calls with a
/// client key of an application access point (Alibaba's `dkms-gcs-0.2` gateway), and the
/// identity such a call runs as.
pub mod instance {
    pub use crate::applications::access::{AccessPointCaller, ClientKeyCredential};
    pub use crate::applications::gateway::*;
    pub use crate::applications::model::{
        CLIENT_KEY_PREFIX, KEY_USER, NETWORK_PRIVATE, SECRET_USER, SHARED_SCOPE,
    };
}

// ---- Who calls, and what they may do ------------------------------------------------------
pub use policy::{
    default_policy_document, AccessRequest, Action, AllowAll, Authorizer, Caller, Decision,
    Principal, SameAccountOnly, MAX_POLICY_BYTES,
};
pub use schema::ArnScope;

// ---- What a host plugs in, and the values those traits carry ------------------------------
pub use crypto::asym::{EncryptionAlgorithm, PublicKey, SigningAlgorithm};
pub use crypto::backend::CryptoProvider;
pub use crypto::external::{validate_external_key_id, ExternalCiphertext, ExternalKeyStore};
pub use crypto::hsm::{ImportedMaterial, InMemoryHsm, KeyProvider};
pub use crypto::root_key::{RootKey, RootKeyProvider, RootSeal, ROOT_KEY_LEN};
pub use crypto::seal::rewrap_keyring;
pub use crypto::{AeadAlgorithm, OsRandom, RandomSource, NONCE_LEN, TAG_LEN};
pub use secrets::ops::SecretRotationHandler;
pub use storage::{Batch, ChangedKeys, Changes, Entry, Op, Precondition, Storage, StorageError};
pub use time::{Clock, ManualClock, SystemClock, UnixTime, DAY};

// ---- Helpers a server needs ----------------------------------------------------------------
pub use crypto::ct_eq;
pub use ids::new_request_id;

/// Internals for the fuzz targets and benchmarks of this repository. Not a stable interface:
/// anything here may change in any release.
#[doc(hidden)]
pub mod internal {
    pub use crate::certificates::x509;
    pub use crate::crypto::blob;
    /// Identifiers: UUIDs, alias names, key references.
    pub mod ids {
        pub use crate::ids::*;
    }
    /// Record keys.
    pub mod schema {
        pub use crate::schema::{alias, key, version, KEY, KEYRING};
    }
}

/// The README's code blocks compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
