//! Customer master keys: their records and rules, the operations on them, and their wire types.
//!
//! - [`model`]: the key, version and alias records and the enums they carry.
//! - [`rules`]: the pure lifecycle rules (state transitions, rotation, deletion windows).
//! - [`usable`]: [`usable::UsableKey`], the proof that a key passed the checks cryptography
//!   needs; the only thing the material-using version operations accept.
//! - [`protection`]: how a version's material is used, by protection level (software or a
//!   [`crate::KeyProvider`]).
//! - operations: [`create`] (CreateKey: its parameter rules and records), [`ops`] (describe, list, enable/disable, deletion, versions, tags),
//!   [`aliases`], [`symmetric`] (Encrypt, Decrypt, data keys, ReEncrypt), [`asymmetric`],
//!   [`mac`], [`byok`] (import), [`default_key`].
//! - [`api`]: the request and response structs.

pub(crate) mod aliases;
pub(crate) mod api;
pub(crate) mod asymmetric;
pub(crate) mod byok;
pub(crate) mod create;
pub(crate) mod default_key;
pub(crate) mod mac;
pub(crate) mod model;
pub(crate) mod ops;
pub(crate) mod protection;
pub(crate) mod rules;
pub(crate) mod symmetric;
pub(crate) mod usable;
