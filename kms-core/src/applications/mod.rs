//! KMS 3.0 applications: KMS instances, network rules, permission policies, application
//! access points (AAPs) and their client keys, and the instance API an application calls
//! with a client key.
//!
//! - [`model`]: the records and their pure rules (names, address blocks, permissions,
//!   resources, passwords, validity).
//! - [`ops`]: the OpenAPI operations that manage them.
//! - [`access`]: how an application's call is authorized (client key, policies, network
//!   rules).
//! - [`client_key`]: the key pair and PKCS#12 file of CreateClientKey.
//! - [`gateway`]: the instance API's cryptographic operations.
//! - [`api`]: the OpenAPI request and response structs.

pub(crate) mod access;
pub(crate) mod api;
pub(crate) mod client_key;
pub(crate) mod gateway;
pub(crate) mod model;
pub(crate) mod ops;
