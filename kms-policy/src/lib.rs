//! kms-policy: key policy documents for kms-core.
//!
//! - [`PolicyDocument`]: parse and validate a document (precise errors naming the statement
//!   and field), evaluate it (explicit Deny over Allow over default deny, action and principal
//!   wildcards, conditions).
//! - [`PolicyAuthorizer`]: kms-core's `Authorizer` over key policies, the default policy and
//!   shared KMS instances, combined with RAM identity policies attached to RAM users and roles
//!   ([`PolicyAuthorizer::attach_identity_policy`]) as RAM evaluates them, with parsed
//!   documents cached.
//! - [`PolicyBuilder`]: the administrator, user and cross-account user roles of Alibaba's key
//!   management guide.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod actions;
mod authorizer;
mod builder;
pub mod document;
pub mod pattern;

pub use authorizer::PolicyAuthorizer;
pub use builder::PolicyBuilder;
pub use document::{Effect, PolicyDocument, PolicyKind, ResourceVerdict, Verdict};
