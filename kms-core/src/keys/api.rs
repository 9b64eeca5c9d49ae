//! The key operations' request and response types (see [`crate::api`] for their conventions).

use std::collections::BTreeMap;

use crate::crypto::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::api::{Filter, Tag};
use crate::keys::model::{
    AutomaticRotation, CreatorType, DeletionProtection, KeySpec, KeyState, KeyUsage, Origin,
    ProtectionLevel,
};
use crate::time::UnixTime;
use crate::wire::{base64_bytes, json_text, lenient_bool, lenient_int, utf8_bytes};

/// An EncryptionContext: string pairs bound to a ciphertext as associated data.
pub type EncryptionContext = BTreeMap<String, String>;

/// Everything DescribeKey tells about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// Lifecycle state.
    pub key_state: KeyState,
    /// Material type.
    pub key_spec: KeySpec,
    /// Allowed usage.
    pub key_usage: KeyUsage,
    /// Material origin.
    pub origin: Origin,
    /// Software or HSM.
    pub protection_level: ProtectionLevel,
    /// Creation time.
    pub creation_date: UnixTime,
    /// Creator's account id.
    pub creator: String,
    /// User or Service.
    pub creator_type: CreatorType,
    /// Description.
    pub description: String,
    /// Purge time (PendingDeletion only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delete_date: Option<UnixTime>,
    /// Expiry of imported material.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub material_expire_time: Option<UnixTime>,
    /// The primary version id. An EXTERNAL key's version exists from creation and holds
    /// material once it is imported.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary_key_version: Option<String>,
    /// Enabled, Disabled or Suspended.
    pub automatic_rotation: AutomaticRotation,
    /// Interval as `<n>s`, when rotation is on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rotation_interval: Option<String>,
    /// Next automatic rotation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_rotation_date: Option<UnixTime>,
    /// Last rotation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_rotation_date: Option<UnixTime>,
    /// Deletion protection.
    pub deletion_protection: DeletionProtection,
    /// Why the key is protected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deletion_protection_description: Option<String>,
    /// The KMS instance the key belongs to.
    #[serde(
        rename = "DKMSInstanceId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dkms_instance_id: Option<String>,
    /// For external keys: the key's id in the external key manager.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_key_id: Option<String>,
}

request!(
    /// CreateKey.
    CreateKeyRequest {
        /// Material type (default `Aliyun_AES_256`).
        pub key_spec: Option<KeySpec>,
        /// Usage (default `ENCRYPT/DECRYPT`; `SIGN/VERIFY` for EC keys).
        pub key_usage: Option<KeyUsage>,
        /// Origin (default `Aliyun_KMS`).
        pub origin: Option<Origin>,
        /// Protection level (default `SOFTWARE`).
        pub protection_level: Option<ProtectionLevel>,
        /// Description, at most 8192 characters.
        pub description: Option<String>,
        /// Turn on automatic rotation (needs RotationInterval).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub enable_automatic_rotation: Option<bool>,
        /// Rotation interval (`<n>s`, `<n>d`...; 7 to 365 days).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_interval: Option<String>,
        /// Tags to set.
        #[serde(with = "json_text")]
        pub tags: Vec<Tag>,
        /// Key policy document.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub policy: Option<String>,
        /// Store the policy even when the account owner could no longer change it afterwards
        /// (skips the lockout safety check; named after AWS's parameter of the same name).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub bypass_policy_lockout_safety_check: Option<bool>,
        /// KMS instance.
        #[serde(rename = "DKMSInstanceId", skip_serializing_if = "Option::is_none")]
        pub dkms_instance_id: Option<String>,
        /// An external key's id in the external key manager: makes an external key (Origin
        /// EXTERNAL_KEY_STORE, Aliyun_AES_256, ENCRYPT/DECRYPT) whose material never enters
        /// the engine.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub external_key_id: Option<String>,
    }
);

response!(
    /// CreateKey's answer.
    CreateKeyResponse {
        /// The new key.
        pub key_metadata: KeyMetadata,
    }
);

request!(
    /// A request that names only a key: DescribeKey, EnableKey, DisableKey, CancelKeyDeletion,
    /// CreateKeyVersion, ListResourceTags.
    KeyIdRequest {
        /// Key id, key ARN, alias or alias ARN.
        pub key_id: String,
    }
);

/// DescribeKey.
pub type DescribeKeyRequest = KeyIdRequest;
/// EnableKey.
pub type EnableKeyRequest = KeyIdRequest;
/// DisableKey.
pub type DisableKeyRequest = KeyIdRequest;
/// CancelKeyDeletion.
pub type CancelKeyDeletionRequest = KeyIdRequest;
/// CreateKeyVersion.
pub type CreateKeyVersionRequest = KeyIdRequest;
/// ListResourceTags.
pub type ListResourceTagsRequest = KeyIdRequest;

response!(
    /// DescribeKey's answer.
    DescribeKeyResponse {
        /// The key.
        pub key_metadata: KeyMetadata,
    }
);

request!(
    /// ListKeys.
    ListKeysRequest {
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 10).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
        /// Filters: AND across entries, OR across one entry's values.
        #[serde(with = "json_text")]
        pub filters: Vec<Filter>,
    }
);

/// One key in ListKeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub key_arn: String,
}

/// `Keys: {Key: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// The keys.
    #[serde(rename = "Key")]
    pub key: Vec<KeyListEntry>,
}

response!(
    /// ListKeys' answer.
    ListKeysResponse {
        /// This page's keys.
        pub keys: KeyList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of keys matching the filters.
        pub total_count: i64,
    }
);

request!(
    /// SetDeletionProtection.
    SetDeletionProtectionRequest {
        /// The key ARN (Alibaba's parameter).
        pub protected_resource_arn: String,
        /// Alternatively, a key id or alias.
        #[serde(skip_serializing_if = "String::is_empty")]
        pub key_id: String,
        /// Turn protection on or off (required).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub enable_deletion_protection: Option<bool>,
        /// Why.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub deletion_protection_description: Option<String>,
    }
);

request!(
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletionRequest {
        /// The key.
        pub key_id: String,
        /// 7 to 366 days (required).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub pending_window_in_days: Option<i64>,
    }
);

request!(
    /// UpdateKeyDescription.
    UpdateKeyDescriptionRequest {
        /// The key.
        pub key_id: String,
        /// The new description (may be empty).
        pub description: String,
    }
);

request!(
    /// DescribeKeyVersion.
    DescribeKeyVersionRequest {
        /// The key.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

/// A key version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyVersion {
    /// Key id.
    pub key_id: String,
    /// Version id.
    pub key_version_id: String,
    /// Creation time.
    pub creation_date: UnixTime,
}

response!(
    /// DescribeKeyVersion's and CreateKeyVersion's answer.
    KeyVersionResponse {
        /// The version.
        pub key_version: KeyVersion,
    }
);

/// DescribeKeyVersion's answer.
pub type DescribeKeyVersionResponse = KeyVersionResponse;
/// CreateKeyVersion's answer.
pub type CreateKeyVersionResponse = KeyVersionResponse;

request!(
    /// ListKeyVersions.
    ListKeyVersionsRequest {
        /// The key.
        pub key_id: String,
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 10).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

/// `KeyVersions: {KeyVersion: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionList {
    /// The versions.
    #[serde(rename = "KeyVersion")]
    pub key_version: Vec<KeyVersion>,
}

response!(
    /// ListKeyVersions' answer.
    ListKeyVersionsResponse {
        /// This page's versions, oldest first.
        pub key_versions: KeyVersionList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of versions.
        pub total_count: i64,
    }
);

request!(
    /// UpdateRotationPolicy.
    UpdateRotationPolicyRequest {
        /// The key.
        pub key_id: String,
        /// On or off (required).
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub enable_automatic_rotation: Option<bool>,
        /// Interval, required when turning rotation on.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rotation_interval: Option<String>,
    }
);

request!(
    /// Encrypt.
    EncryptRequest {
        /// The key (its primary version encrypts).
        pub key_id: String,
        /// At most 6144 bytes; a string on the wire.
        #[serde(with = "utf8_bytes")]
        pub plaintext: SecretBytes,
        /// Pairs bound to the ciphertext.
        #[serde(with = "json_text")]
        pub encryption_context: EncryptionContext,
        /// Check only; fail with DryRunOperationError if the call would succeed.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

response!(
    /// Encrypt's answer.
    EncryptResponse {
        /// The blob (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The key id.
        pub key_id: String,
        /// The version that encrypted.
        pub key_version_id: String,
    }
);

request!(
    /// Decrypt.
    DecryptRequest {
        /// A blob from Encrypt or GenerateDataKey (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The context given at encryption.
        #[serde(with = "json_text")]
        pub encryption_context: EncryptionContext,
        /// Check only.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

response!(
    /// Decrypt's answer.
    DecryptResponse {
        /// The plaintext (a string on the wire).
        #[serde(with = "utf8_bytes")]
        pub plaintext: SecretBytes,
        /// The key id.
        pub key_id: String,
        /// The version that decrypted.
        pub key_version_id: String,
    }
);

request!(
    /// GenerateDataKey and GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyRequest {
        /// The key that wraps the data key.
        pub key_id: String,
        /// `AES_256` (default) or `AES_128`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key_spec: Option<String>,
        /// 1 to 1024; overrides KeySpec.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub number_of_bytes: Option<i64>,
        /// Pairs bound to the ciphertext.
        #[serde(with = "json_text")]
        pub encryption_context: EncryptionContext,
        /// Check only.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

/// GenerateDataKeyWithoutPlaintext.
pub type GenerateDataKeyWithoutPlaintextRequest = GenerateDataKeyRequest;

response!(
    /// GenerateDataKey's answer.
    ///
    /// `plaintext` is the data key; `ciphertext_blob` encrypts its Base64 text, as Alibaba KMS
    /// does, so Decrypt of the blob returns that Base64 string.
    GenerateDataKeyResponse {
        /// The wrapped data key.
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The data key (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub plaintext: SecretBytes,
        /// The key id.
        pub key_id: String,
        /// The version that encrypted.
        pub key_version_id: String,
    }
);

response!(
    /// GenerateDataKeyWithoutPlaintext's answer.
    GenerateDataKeyWithoutPlaintextResponse {
        /// The wrapped data key.
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The key id.
        pub key_id: String,
        /// The version that encrypted.
        pub key_version_id: String,
    }
);

request!(
    /// ReEncrypt.
    ReEncryptRequest {
        /// The blob to re-encrypt.
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The context the blob was made with.
        #[serde(with = "json_text")]
        pub source_encryption_context: EncryptionContext,
        /// The key to encrypt under.
        pub destination_key_id: String,
        /// The context for the new blob.
        #[serde(with = "json_text")]
        pub destination_encryption_context: EncryptionContext,
        /// Asymmetric sources: the key.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source_key_id: Option<String>,
        /// Asymmetric sources: the version.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source_key_version_id: Option<String>,
        /// Asymmetric sources: the algorithm.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source_encryption_algorithm: Option<String>,
        /// Check only.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

response!(
    /// ReEncrypt's answer.
    ReEncryptResponse {
        /// The new blob.
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The destination key id.
        pub key_id: String,
        /// The destination version.
        pub key_version_id: String,
    }
);

request!(
    /// CreateAlias and UpdateAlias.
    AliasRequest {
        /// `alias/...`.
        pub alias_name: String,
        /// The key the alias names.
        pub key_id: String,
    }
);

/// CreateAlias.
pub type CreateAliasRequest = AliasRequest;
/// UpdateAlias.
pub type UpdateAliasRequest = AliasRequest;

request!(
    /// DeleteAlias.
    DeleteAliasRequest {
        /// `alias/...`.
        pub alias_name: String,
    }
);

request!(
    /// ListAliases.
    ListAliasesRequest {
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 10).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

request!(
    /// ListAliasesByKeyId.
    ListAliasesByKeyIdRequest {
        /// The key.
        pub key_id: String,
        /// Page number, from 1.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_number: Option<i64>,
        /// Page size, 1 to 100 (default 10).
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub page_size: Option<i64>,
    }
);

/// One alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasEntry {
    /// `alias/...`.
    pub alias_name: String,
    /// Alias ARN.
    pub alias_arn: String,
    /// The key it names.
    pub key_id: String,
}

/// `Aliases: {Alias: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasList {
    /// The aliases.
    #[serde(rename = "Alias")]
    pub alias: Vec<AliasEntry>,
}

response!(
    /// ListAliases' and ListAliasesByKeyId's answer.
    ListAliasesResponse {
        /// This page's aliases, by name.
        pub aliases: AliasList,
        /// Page number.
        pub page_number: i64,
        /// Page size.
        pub page_size: i64,
        /// Number of aliases.
        pub total_count: i64,
    }
);

/// One region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Region {
    /// Region id.
    pub region_id: String,
}

/// `Regions: {Region: [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionList {
    /// The regions.
    #[serde(rename = "Region")]
    pub region: Vec<Region>,
}

response!(
    /// DescribeRegions' answer.
    DescribeRegionsResponse {
        /// The engine's region.
        pub regions: RegionList,
    }
);

response!(
    /// DescribeAccountKmsStatus' answer.
    DescribeAccountKmsStatusResponse {
        /// Always `Enabled`: an embedded engine is always open.
        pub account_status: String,
    }
);

/// The work one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Keys purged (past their DeleteDate).
    pub purged_keys: Vec<String>,
    /// Keys rotated automatically.
    pub rotated_keys: Vec<String>,
    /// EXTERNAL keys whose imported material expired.
    pub expired_material_keys: Vec<String>,
    /// Import tokens removed after expiry.
    pub expired_import_tokens: usize,
    /// Key associations persisted.
    pub associations_written: usize,
    /// Secrets purged (past their recovery window).
    pub purged_secrets: Vec<String>,
    /// Secrets rotated automatically.
    pub rotated_secrets: Vec<String>,
    /// Secrets whose automatic rotation failed, with the error code (retried next pass).
    pub failed_secret_rotations: Vec<(String, &'static str)>,
    /// Keys whose purge, rotation or material expiry failed, with the error code (retried
    /// next pass; the other keys were looked after).
    pub failed_keys: Vec<(String, &'static str)>,
    /// Records that failed to open, known to the engine after this pass (see
    /// `Kms::corrupt_records`).
    pub corrupt_records: usize,
}

request!(
    /// A request naming one version of an asymmetric key: GetPublicKey.
    KeyVersionRequest {
        /// The key.
        pub key_id: String,
        /// The version (required for asymmetric operations).
        pub key_version_id: String,
    }
);

/// GetPublicKey.
pub type GetPublicKeyRequest = KeyVersionRequest;

response!(
    /// GetPublicKey's answer.
    GetPublicKeyResponse {
        /// PEM SubjectPublicKeyInfo.
        pub public_key: String,
        /// The key id.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

request!(
    /// AsymmetricSign.
    AsymmetricSignRequest {
        /// The key.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
        /// `RSA_PSS_SHA_256`, `RSA_PKCS1_SHA_256` or `ECDSA_SHA_256`.
        pub algorithm: String,
        /// The SHA-256 digest of the message (32 bytes; Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub digest: Vec<u8>,
    }
);

response!(
    /// AsymmetricSign's answer.
    AsymmetricSignResponse {
        /// The signature (Base64 on the wire; ECDSA in DER).
        #[serde(with = "base64_bytes")]
        pub value: Vec<u8>,
        /// The key id.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

request!(
    /// AsymmetricVerify.
    AsymmetricVerifyRequest {
        /// The key.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
        /// The signature algorithm.
        pub algorithm: String,
        /// The SHA-256 digest (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub digest: Vec<u8>,
        /// The signature (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub value: Vec<u8>,
    }
);

response!(
    /// AsymmetricVerify's answer.
    AsymmetricVerifyResponse {
        /// True when the signature is valid.
        pub value: bool,
        /// The key id.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

request!(
    /// AsymmetricEncrypt.
    AsymmetricEncryptRequest {
        /// The key.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
        /// `RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`.
        pub algorithm: String,
        /// The plaintext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub plaintext: SecretBytes,
    }
);

response!(
    /// AsymmetricEncrypt's answer.
    AsymmetricEncryptResponse {
        /// The ciphertext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The key id.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

request!(
    /// AsymmetricDecrypt.
    AsymmetricDecryptRequest {
        /// The key.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
        /// `RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`.
        pub algorithm: String,
        /// The ciphertext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
    }
);

response!(
    /// AsymmetricDecrypt's answer.
    AsymmetricDecryptResponse {
        /// The plaintext (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub plaintext: SecretBytes,
        /// The key id.
        pub key_id: String,
        /// The version.
        pub key_version_id: String,
    }
);

request!(
    /// ExportDataKey: re-wraps a data key blob under a caller's RSA public key.
    ExportDataKeyRequest {
        /// A blob from GenerateDataKey(WithoutPlaintext).
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// DER SubjectPublicKeyInfo of the RSA key to wrap with (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub public_key_blob: Vec<u8>,
        /// `RSA_2048`, `RSA_3072` or `RSA_4096` (must match the public key).
        pub wrapping_key_spec: String,
        /// `RSAES_OAEP_SHA_256` or `RSAES_OAEP_SHA_1`.
        pub wrapping_algorithm: String,
        /// The context the blob was made with.
        #[serde(with = "json_text")]
        pub encryption_context: EncryptionContext,
    }
);

response!(
    /// ExportDataKey's answer.
    ExportDataKeyResponse {
        /// The data key wrapped under the public key (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub exported_data_key: Vec<u8>,
        /// The key that wrapped the blob.
        pub key_id: String,
        /// Its version.
        pub key_version_id: String,
    }
);

request!(
    /// GenerateAndExportDataKey.
    GenerateAndExportDataKeyRequest {
        /// The CMK that wraps the data key.
        pub key_id: String,
        /// `AES_256` (default) or `AES_128`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key_spec: Option<String>,
        /// 1 to 1024; overrides KeySpec.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub number_of_bytes: Option<i64>,
        /// DER SubjectPublicKeyInfo of the RSA key to export to.
        #[serde(with = "base64_bytes")]
        pub public_key_blob: Vec<u8>,
        /// `RSA_2048`, `RSA_3072` or `RSA_4096`.
        pub wrapping_key_spec: String,
        /// `RSAES_OAEP_SHA_256` or `RSAES_OAEP_SHA_1`.
        pub wrapping_algorithm: String,
        /// Pairs bound to the blob.
        #[serde(with = "json_text")]
        pub encryption_context: EncryptionContext,
    }
);

response!(
    /// GenerateAndExportDataKey's answer.
    GenerateAndExportDataKeyResponse {
        /// The data key wrapped under the CMK.
        #[serde(with = "base64_bytes")]
        pub ciphertext_blob: Vec<u8>,
        /// The data key wrapped under the public key.
        #[serde(with = "base64_bytes")]
        pub exported_data_key: Vec<u8>,
        /// The CMK.
        pub key_id: String,
        /// Its version.
        pub key_version_id: String,
    }
);

request!(
    /// GetParametersForImport.
    GetParametersForImportRequest {
        /// An EXTERNAL key.
        pub key_id: String,
        /// `RSAES_OAEP_SHA_256`, `RSAES_OAEP_SHA_1` or `RSAES_PKCS1_V1_5`.
        pub wrapping_algorithm: String,
        /// `RSA_2048`.
        pub wrapping_key_spec: String,
    }
);

response!(
    /// GetParametersForImport's answer.
    GetParametersForImportResponse {
        /// The key id.
        pub key_id: String,
        /// The single-use token for ImportKeyMaterial.
        pub import_token: String,
        /// DER SubjectPublicKeyInfo of the wrapping key (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub public_key: Vec<u8>,
        /// When the token expires (24 hours).
        pub token_expire_time: UnixTime,
    }
);

request!(
    /// ImportKeyMaterial.
    ImportKeyMaterialRequest {
        /// The EXTERNAL key.
        pub key_id: String,
        /// The material wrapped with the token's public key (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub encrypted_key_material: Vec<u8>,
        /// The token from GetParametersForImport.
        pub import_token: String,
        /// Unix seconds when the material expires; 0 or absent = never.
        #[serde(with = "lenient_int", skip_serializing_if = "Option::is_none")]
        pub key_material_expire_unix: Option<i64>,
    }
);

/// DeleteKeyMaterial.
pub type DeleteKeyMaterialRequest = KeyIdRequest;

request!(
    /// GenerateMac.
    GenerateMacRequest {
        /// An HMAC key (its primary version computes the MAC).
        pub key_id: String,
        /// The message, at most 4096 bytes (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub message: Vec<u8>,
        /// `HMAC_SHA_256`, the one algorithm of HMAC_SHA256 keys (the default when absent).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub algorithm: Option<String>,
        /// Check only; fail with DryRunOperationError if the call would succeed.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

response!(
    /// GenerateMac's answer.
    GenerateMacResponse {
        /// The key id.
        pub key_id: String,
        /// The version that computed the MAC.
        pub key_version_id: String,
        /// The algorithm: `HMAC_SHA_256`.
        pub algorithm: String,
        /// HMAC-SHA256 of the message (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub mac: Vec<u8>,
    }
);

request!(
    /// VerifyMac.
    VerifyMacRequest {
        /// The HMAC key.
        pub key_id: String,
        /// The message (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub message: Vec<u8>,
        /// The MAC to check (Base64 on the wire).
        #[serde(with = "base64_bytes")]
        pub mac: Vec<u8>,
        /// `HMAC_SHA_256` (the default when absent).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub algorithm: Option<String>,
        /// The version to check against; every version when absent (newest first).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key_version_id: Option<String>,
        /// Check only; fail with DryRunOperationError if the call would succeed.
        #[serde(with = "lenient_bool", skip_serializing_if = "Option::is_none")]
        pub dry_run: Option<bool>,
    }
);

response!(
    /// VerifyMac's answer.
    VerifyMacResponse {
        /// The key id.
        pub key_id: String,
        /// The version whose MAC matched (or the one asked for).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub key_version_id: Option<String>,
        /// The algorithm: `HMAC_SHA_256`.
        pub algorithm: String,
        /// True when the MAC is valid (constant-time comparison); `Value` on the wire, as
        /// the SDKs read it.
        pub value: bool,
    }
);

request!(
    /// EnableDefaultKey: turns on the engine's one default CMK.
    EnableDefaultKeyRequest {
        /// The alias the default key gets (required).
        pub alias_name: String,
        /// Description.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Material source: `Aliyun_KMS` (default, the engine makes it) or `EXTERNAL`
        /// (imported afterwards with GetParametersForImport / ImportKeyMaterial).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub origin: Option<Origin>,
    }
);

response!(
    /// DescribeDefaultKey's and EnableDefaultKey's answer.
    DefaultKeyResponse {
        /// `NotEnabled` until the owner enables it, then `Enabled`.
        pub status: String,
        /// The default key, once enabled.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub key_metadata: Option<KeyMetadata>,
    }
);
