//! Secrets Manager requests and responses.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::api::{Filter, Tag, TagList};
use crate::time::UnixTime;
use crate::wire::{json_text, lenient_bool, lenient_int};

/// A secret value: text, or Base64 text for `binary` secrets. Zeroized on drop; `Debug` is
/// redacted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretData(pub Zeroizing<String>);

impl SecretData {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretData(Zeroizing::new(value.into()))
    }

    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretData(..redacted..)")
    }
}

impl From<&str> for SecretData {
    fn from(s: &str) -> Self {
        SecretData::new(s)
    }
}

/// `VersionStages: {VersionStage: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionStageList {
    /// The stages.
    #[serde(rename = "VersionStage")]
    pub version_stage: Vec<String>,
}

request!(
    /// CreateSecret.
    CreateSecretRequest {
        /// 1 to 192 characters of `[A-Za-z0-9_/+=.@-]`.
        pub secret_name: String,
        /// The first version's value (at most 30720 bytes).
        pub secret_data: SecretData,
        /// `text` (default) or `binary` (SecretData is Base64).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_data_type: Option<String>,
        /// The first version's id.
        pub version_id: String,
        /// A symmetric CMK; default: the engine's secrets key.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub encryption_key_id: Option<String>,
        /// Description.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Tags.
        #[serde(with = "json_text")]
        pub tags: Vec<Tag>,
        /// Turn on automatic rotation (needs a rotation handler for the SecretType).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub enable_automatic_rotation: Option<bool>,
        /// Rotation interval (`<n>s`, `<n>d`...; 7 to 365 days).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_interval: Option<String>,
        /// `Generic` (default), or a type a rotation handler is registered for.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_type: Option<String>,
        /// Secret policy document.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub policy: Option<String>,
        /// Store the policy even when the account owner could no longer change it afterwards
        /// (skips the lockout safety check; named after AWS's parameter of the same name).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub bypass_policy_lockout_safety_check: Option<bool>,
        /// The KMS instance the secret belongs to (default: the engine's default instance).
        #[serde(rename = "DKMSInstanceId", skip_serializing_if = "Option::is_none")]
        pub dkms_instance_id: Option<String>,
        /// A JSON object of settings for the secret's type (at most 4096 characters).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub extended_config: Option<String>,
    }
);

response!(
    /// CreateSecret's answer.
    CreateSecretResponse {
        /// Secret ARN.
        pub arn: String,
        /// Name.
        pub secret_name: String,
        /// First version.
        pub version_id: String,
        /// Type.
        pub secret_type: String,
        /// `Enabled` or `Disabled`.
        pub automatic_rotation: String,
        /// `<n>s`, when rotation is on.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub rotation_interval: Option<String>,
        /// Next rotation.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub next_rotation_date: Option<UnixTime>,
        /// The KMS instance the secret was created in (none: the default instance).
        #[serde(rename = "DKMSInstanceId", skip_serializing_if = "Option::is_none", default)]
        pub dkms_instance_id: Option<String>,
        /// ExtendedConfig, as stored.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub extended_config: Option<String>,
    }
);

request!(
    /// A request naming only a secret: RestoreSecret.
    SecretNameRequest {
        /// The secret.
        pub secret_name: String,
    }
);

response!(
    /// The answer naming only a secret.
    SecretNameResponse {
        /// The secret.
        pub secret_name: String,
    }
);

request!(
    /// GetSecretValue.
    GetSecretValueRequest {
        /// The secret.
        pub secret_name: String,
        /// A version id.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub version_id: Option<String>,
        /// A stage (default `ACSCurrent`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub version_stage: Option<String>,
        /// Also answer the secret's rotation settings and ExtendedConfig.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub fetch_extended_config: Option<bool>,
    }
);

response!(
    /// GetSecretValue's answer.
    GetSecretValueResponse {
        /// Name.
        pub secret_name: String,
        /// The value.
        pub secret_data: SecretData,
        /// `text` or `binary`.
        pub secret_data_type: String,
        /// Version id.
        pub version_id: String,
        /// Its stages.
        pub version_stages: VersionStageList,
        /// When the version was made.
        pub create_time: UnixTime,
        /// Type.
        pub secret_type: String,
        /// `Enabled` or `Disabled` (with FetchExtendedConfig).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub automatic_rotation: Option<String>,
        /// `<n>s`, when rotation is on (with FetchExtendedConfig).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub rotation_interval: Option<String>,
        /// Last rotation (with FetchExtendedConfig).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub last_rotation_date: Option<UnixTime>,
        /// Next rotation (with FetchExtendedConfig).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub next_rotation_date: Option<UnixTime>,
        /// ExtendedConfig (with FetchExtendedConfig, when the secret has one).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub extended_config: Option<String>,
    }
);

request!(
    /// PutSecretValue.
    PutSecretValueRequest {
        /// The secret.
        pub secret_name: String,
        /// The new version's id.
        pub version_id: String,
        /// The value.
        pub secret_data: SecretData,
        /// `text` (default) or `binary`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_data_type: Option<String>,
        /// Stages for the new version (default `["ACSCurrent"]`).
        #[serde(with = "json_text")]
        pub version_stages: Vec<String>,
    }
);

response!(
    /// PutSecretValue's answer.
    PutSecretValueResponse {
        /// Name.
        pub secret_name: String,
        /// Version id.
        pub version_id: String,
        /// Its stages.
        pub version_stages: VersionStageList,
    }
);

request!(
    /// UpdateSecretVersionStage.
    UpdateSecretVersionStageRequest {
        /// The secret.
        pub secret_name: String,
        /// The stage to move or remove.
        pub version_stage: String,
        /// The version the stage is on (to remove it, or to check a move).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub remove_from_version: Option<String>,
        /// The version to move the stage to.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub move_to_version: Option<String>,
    }
);

request!(
    /// ListSecretVersionIds.
    ListSecretVersionIdsRequest {
        /// The secret.
        pub secret_name: String,
        /// Include versions without stages.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub include_deprecated: Option<bool>,
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 20).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

/// One version in ListSecretVersionIds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretVersionEntry {
    /// Version id.
    pub version_id: String,
    /// Its stages.
    pub version_stages: VersionStageList,
    /// When it was made.
    pub create_time: UnixTime,
}

/// `VersionIds: {VersionId: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionList {
    /// The versions.
    #[serde(rename = "VersionId")]
    pub version_id: Vec<SecretVersionEntry>,
}

response!(
    /// ListSecretVersionIds' answer.
    ListSecretVersionIdsResponse {
        /// Name.
        pub secret_name: String,
        /// This page's versions, newest first.
        pub version_ids: SecretVersionList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of versions listed.
        pub total_count: i64,
    }
);

request!(
    /// DescribeSecret.
    DescribeSecretRequest {
        /// The secret.
        pub secret_name: String,
        /// Include tags.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub fetch_tags: Option<bool>,
    }
);

response!(
    /// DescribeSecret's answer.
    DescribeSecretResponse {
        /// ARN.
        pub arn: String,
        /// Name.
        pub secret_name: String,
        /// The CMK that encrypts the values.
        pub encryption_key_id: String,
        /// Description.
        pub description: String,
        /// Creation time.
        pub create_time: UnixTime,
        /// Last change of metadata or value.
        pub update_time: UnixTime,
        /// Purge time, while pending deletion.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub planned_delete_time: Option<UnixTime>,
        /// `Enabled` or `Disabled`.
        pub automatic_rotation: String,
        /// `<n>s`, when rotation is on.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub rotation_interval: Option<String>,
        /// Last rotation.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub last_rotation_date: Option<UnixTime>,
        /// Next rotation.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub next_rotation_date: Option<UnixTime>,
        /// Type.
        pub secret_type: String,
        /// The KMS instance the secret was created in (none: the default instance).
        #[serde(rename = "DKMSInstanceId", skip_serializing_if = "Option::is_none", default)]
        pub dkms_instance_id: Option<String>,
        /// ExtendedConfig, when the secret has one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub extended_config: Option<String>,
        /// Tags (with FetchTags).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub tags: Option<TagList>,
    }
);

request!(
    /// UpdateSecret.
    UpdateSecretRequest {
        /// The secret.
        pub secret_name: String,
        /// The new description.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
    }
);

request!(
    /// ListSecrets.
    ListSecretsRequest {
        /// Include tags.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub fetch_tags: Option<bool>,
        /// Filters on SecretName, Description, TagKey, TagValue (AND across filters, OR
        /// across values; names and descriptions match by substring).
        #[serde(with = "json_text")]
        pub filters: Vec<Filter>,
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 10).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

/// One secret in ListSecrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretListEntry {
    /// Name.
    pub secret_name: String,
    /// Creation time.
    pub create_time: UnixTime,
    /// Last change.
    pub update_time: UnixTime,
    /// Purge time, while pending deletion.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub planned_delete_time: Option<UnixTime>,
    /// Type.
    pub secret_type: String,
    /// Tags (with FetchTags).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tags: Option<TagList>,
}

/// `SecretList: {Secret: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    /// The secrets.
    #[serde(rename = "Secret")]
    pub secret: Vec<SecretListEntry>,
}

response!(
    /// ListSecrets' answer.
    ListSecretsResponse {
        /// This page's secrets, by name.
        pub secret_list: SecretList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number matching.
        pub total_count: i64,
    }
);

request!(
    /// DeleteSecret.
    DeleteSecretRequest {
        /// The secret.
        pub secret_name: String,
        /// 7 to 30 days (default 30); not with ForceDeleteWithoutRecovery.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub recovery_window_in_days: Option<i64>,
        /// Delete at once, without a recovery window.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub force_delete_without_recovery: Option<bool>,
    }
);

response!(
    /// DeleteSecret's answer.
    DeleteSecretResponse {
        /// Name.
        pub secret_name: String,
        /// When it is (or was) purged.
        pub planned_delete_time: UnixTime,
    }
);

request!(
    /// RotateSecret.
    RotateSecretRequest {
        /// The secret.
        pub secret_name: String,
        /// The id of the version the rotation makes.
        pub version_id: String,
    }
);

response!(
    /// RotateSecret's answer.
    RotateSecretResponse {
        /// ARN.
        pub arn: String,
        /// The new version.
        pub version_id: String,
    }
);

request!(
    /// UpdateSecretRotationPolicy.
    UpdateSecretRotationPolicyRequest {
        /// The secret.
        pub secret_name: String,
        /// On or off (required).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub enable_automatic_rotation: Option<bool>,
        /// Interval, required when turning rotation on.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_interval: Option<String>,
    }
);

request!(
    /// GetRandomPassword.
    GetRandomPasswordRequest {
        /// 8 to 128 (default 32).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub password_length: Option<i64>,
        /// Characters never to use.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub exclude_characters: Option<String>,
        /// No a-z.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub exclude_lowercase: Option<bool>,
        /// No A-Z.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub exclude_uppercase: Option<bool>,
        /// No 0-9.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub exclude_numbers: Option<bool>,
        /// No punctuation.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub exclude_punctuation: Option<bool>,
        /// At least one of each included type (default true).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub require_each_included_type: Option<bool>,
    }
);

response!(
    /// GetRandomPassword's answer.
    GetRandomPasswordResponse {
        /// The password.
        pub random_password: SecretData,
    }
);

request!(
    /// GetSecretPolicy.
    GetSecretPolicyRequest {
        /// The secret.
        pub secret_name: String,
        /// Must be `default`.
        pub policy_name: String,
    }
);

request!(
    /// SetSecretPolicy.
    SetSecretPolicyRequest {
        /// The secret.
        pub secret_name: String,
        /// Must be `default`.
        pub policy_name: String,
        /// The policy document.
        pub policy: String,
        /// Store the policy even when the account owner could no longer change it afterwards
        /// (skips the lockout safety check; named after AWS's parameter of the same name).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub bypass_policy_lockout_safety_check: Option<bool>,
    }
);
