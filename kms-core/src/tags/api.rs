//! The tag operations' request and response types.

use serde::{Deserialize, Serialize};

use crate::api::Tag;
use crate::wire::{json_text, lenient_bool, lenient_int};

request!(
    /// TagResource.
    TagResourceRequest {
        /// The key to tag.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub key_id: String,
        /// Or the secret to tag.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub secret_name: String,
        /// Or the certificate to tag.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub certificate_id: String,
        /// The tags.
        #[serde(with = "json_text")]
        pub tags: Vec<Tag>,
    }
);

request!(
    /// UntagResource.
    UntagResourceRequest {
        /// The key to untag.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub key_id: String,
        /// Or the secret.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub secret_name: String,
        /// Or the certificate.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub certificate_id: String,
        /// Tag keys to remove.
        #[serde(with = "json_text")]
        pub tag_keys: Vec<String>,
    }
);

/// One tag of ListResourceTags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceTag {
    /// The key id.
    pub key_id: String,
    /// Tag key.
    pub tag_key: String,
    /// Tag value.
    pub tag_value: String,
}

/// `Tags: {Tag: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTagList {
    /// The tags.
    #[serde(rename = "Tag")]
    pub tag: Vec<ResourceTag>,
}

response!(
    /// ListResourceTags' answer.
    ListResourceTagsResponse {
        /// The tags, by key.
        pub tags: ResourceTagList,
    }
);

/// A tag in the batch tagging calls (`Tag.N.Key`, `Tag.N.Value` on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagKeyValue {
    /// Tag key.
    pub key: String,
    /// Tag value.
    #[serde(default)]
    pub value: String,
}

request!(
    /// TagResources: the same tags on up to 50 resources, all or nothing.
    TagResourcesRequest {
        /// `key` or `secret`.
        pub resource_type: String,
        /// Key ids (or aliases/ARNs) or secret names (`ResourceId.N` on the wire).
        #[serde(with = "json_text")]
        pub resource_id: Vec<String>,
        /// Up to 20 tags (`Tag.N.Key` / `Tag.N.Value` on the wire).
        #[serde(with = "json_text")]
        pub tag: Vec<TagKeyValue>,
    }
);

request!(
    /// UntagResources: removes tag keys from up to 50 resources, all or nothing.
    UntagResourcesRequest {
        /// `key` or `secret`.
        pub resource_type: String,
        /// The resources (`ResourceId.N`).
        #[serde(with = "json_text")]
        pub resource_id: Vec<String>,
        /// Up to 20 tag keys (`TagKey.N`).
        #[serde(with = "json_text")]
        pub tag_key: Vec<String>,
        /// Remove every tag (instead of TagKey.N).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub all: Option<bool>,
    }
);

request!(
    /// ListTagResources: the tags of the named resources, or the resources carrying the
    /// given tags.
    ListTagResourcesRequest {
        /// `key` or `secret`.
        pub resource_type: String,
        /// The resources (`ResourceId.N`), up to 50.
        #[serde(with = "json_text")]
        pub resource_id: Vec<String>,
        /// Tags to match (`Tag.N.Key`, optional `Tag.N.Value`), up to 20.
        #[serde(with = "json_text")]
        pub tag: Vec<TagKeyValue>,
        /// From a previous answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
        /// Page size, 1 to 100 (default 20).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub max_results: Option<i64>,
    }
);

/// One (resource, tag) pair of ListTagResources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceEntry {
    /// `key` or `secret`.
    pub resource_type: String,
    /// Key id or secret name.
    pub resource_id: String,
    /// Tag key.
    pub tag_key: String,
    /// Tag value.
    pub tag_value: String,
}

/// `TagResources: {TagResource: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResourceList {
    /// The pairs.
    #[serde(rename = "TagResource")]
    pub tag_resource: Vec<TagResourceEntry>,
}

response!(
    /// ListTagResources' answer.
    ListTagResourcesResponse {
        /// This page's pairs, by resource then tag key.
        pub tag_resources: TagResourceList,
        /// Pass back for the next page; absent on the last page.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub next_token: Option<String>,
    }
);
