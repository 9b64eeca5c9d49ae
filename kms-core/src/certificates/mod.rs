//! The certificate manager: certificate records and their rules, the operations, and their
//! wire types.
//!
//! - [`rules`]: the pure status rules (which status may follow which, what a status allows).
//! - [`x509`]: X.509 parsing, CSR building and PEM encoding.
//! - [`ops`]: the engine operations (CreateCertificate, UploadCertificate, signing...).
//! - [`api`]: the request and response structs.

pub(crate) mod api;
pub(crate) mod ops;
pub(crate) mod rules;
pub mod x509;
