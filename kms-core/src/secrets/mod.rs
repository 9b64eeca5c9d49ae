//! The secrets manager: secret records and their rules, the operations, and their wire types.
//!
//! - [`rules`]: the pure rules (names, version stages, deletion windows, rotation, passwords).
//! - [`ops`]: the engine operations (CreateSecret, GetSecretValue, rotation...).
//! - [`api`]: the request and response structs.

pub(crate) mod api;
pub(crate) mod ops;
pub(crate) mod rules;
