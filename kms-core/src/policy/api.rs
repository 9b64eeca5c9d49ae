//! The policy operations' request and response types.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;
use crate::wire::lenient_bool;

request!(
    /// GetKeyPolicy.
    GetKeyPolicyRequest {
        /// The key.
        pub key_id: String,
        /// Must be `default`.
        pub policy_name: String,
    }
);

response!(
    /// GetKeyPolicy's answer.
    GetKeyPolicyResponse {
        /// The policy document: the key's own, or the default policy.
        pub policy: String,
    }
);

request!(
    /// SetKeyPolicy.
    SetKeyPolicyRequest {
        /// The key.
        pub key_id: String,
        /// Must be `default`.
        pub policy_name: String,
        /// The policy document (JSON, at most 32768 bytes).
        pub policy: String,
        /// Store the policy even when the account owner could no longer change it afterwards
        /// (skips the lockout safety check; named after AWS's parameter of the same name).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub bypass_policy_lockout_safety_check: Option<bool>,
    }
);

/// One integrated service that used a key (the "key association" of Alibaba's key management guide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyAssociation {
    /// The service, e.g. `oss`.
    pub service: String,
    /// When it last used the key (to the minute).
    pub last_used: UnixTime,
}

response!(
    /// ListKeyAssociations' answer.
    ListKeyAssociationsResponse {
        /// The key id.
        pub key_id: String,
        /// The services that used the key, by name.
        pub associations: Vec<KeyAssociation>,
    }
);
