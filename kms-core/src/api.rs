//! The operations' request and response types, re-exported from their rooms, and the wire
//! types several rooms share.
//!
//! Field names are the wire names in snake_case; serde renames them to Alibaba's PascalCase,
//! so these structs serialize to Alibaba's wire shapes and [`decode_request`] decodes them from
//! a parameter map. Requests default every field, and the engine reports a missing required
//! field as `MissingParameter`, so a request can be written with `..Default::default()` and
//! decoded from a partial parameter map alike.

use serde::{Deserialize, Serialize};

pub use crate::applications::api::*;
pub use crate::certificates::api::*;
pub use crate::crypto::SecretBytes;
pub use crate::keys::api::*;
pub use crate::keys::model::{
    AutomaticRotation, CreatorType, DeletionProtection, KeySpec, KeyState, KeyUsage, Origin,
    ProtectionLevel,
};
pub use crate::policy::api::*;
pub use crate::secrets::api::*;
pub use crate::tags::api::*;
pub use crate::wire::decode_request;

/// A resource tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Tag key.
    pub tag_key: String,
    /// Tag value.
    pub tag_value: String,
}

/// A ListKeys filter: keys whose `key` field has one of `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    /// `KeyState`, `KeySpec`, `KeyUsage`, `CreatorType` or `ProtectionLevel`.
    pub key: String,
    /// Accepted values (any of them matches).
    pub values: Vec<String>,
}

/// `Tags: {Tag: [...]}` of a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagList {
    /// The tags.
    #[serde(rename = "Tag")]
    pub tag: Vec<Tag>,
}

response!(
    /// The answer of operations that return nothing but a RequestId.
    EmptyResponse {}
);

request!(
    /// A request without parameters: DescribeRegions, OpenKmsService,
    /// DescribeAccountKmsStatus.
    NoParamsRequest {}
);
