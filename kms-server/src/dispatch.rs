//! Action → engine method: one table, no business rules.
//!
//! Each action decodes its parameters with [`kms_core::api::decode_request`] into the
//! operation's request struct (whose serde attributes implement Alibaba's wire forms), calls
//! the engine, and serializes the response struct as the JSON body.

use kms_core::api::decode_request;
use kms_core::{Caller, Kms, KmsError};

/// A successful call: the engine's RequestId and the JSON body.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response's `RequestId`.
    pub request_id: String,
    /// The JSON response body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold plaintext or data keys.
        f.debug_struct("Reply")
            .field("request_id", &self.request_id)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish()
    }
}

fn encode<T: serde::Serialize>(request_id: String, response: &T) -> Result<Reply, KmsError> {
    let body = serde_json::to_vec(response)
        .map_err(|e| KmsError::internal(format!("the response cannot be encoded: {e}")))?;
    Ok(Reply { request_id, body })
}

macro_rules! actions {
    ($($action:literal => $method:ident),* $(,)?) => {
        /// Every action the server dispatches, by wire name.
        pub const ACTIONS: &[&str] = &[$($action),*];

        /// Calls the engine operation named `action` with the parameters in `params` (a JSON
        /// object of strings or JSON values).
        ///
        /// Errors: whatever the operation returns (`MissingParameter`, `InvalidParameter` for
        /// undecodable parameters, and the engine's codes); `InvalidParameter` (`Action`) for an
        /// action not in [`ACTIONS`] (check with [`is_action`] first to answer 404).
        pub fn call(
            kms: &Kms,
            caller: &Caller,
            action: &str,
            params: serde_json::Value,
        ) -> Result<Reply, KmsError> {
            match action {
                $($action => {
                    let response = kms.$method(caller, decode_request(params)?)?;
                    let request_id = response.request_id.clone();
                    encode(request_id, &response)
                })*
                other => Err(KmsError::invalid("Action", format!("unknown action {other:?}"))),
            }
        }
    };
}

actions! {
    "CreateKey" => create_key,
    "DescribeKey" => describe_key,
    "ListKeys" => list_keys,
    "EnableKey" => enable_key,
    "DisableKey" => disable_key,
    "SetDeletionProtection" => set_deletion_protection,
    "ScheduleKeyDeletion" => schedule_key_deletion,
    "CancelKeyDeletion" => cancel_key_deletion,
    "UpdateKeyDescription" => update_key_description,
    "DescribeKeyVersion" => describe_key_version,
    "ListKeyVersions" => list_key_versions,
    "UpdateRotationPolicy" => update_rotation_policy,
    "CreateKeyVersion" => create_key_version,
    "Encrypt" => encrypt,
    "Decrypt" => decrypt,
    "GenerateDataKey" => generate_data_key,
    "GenerateDataKeyWithoutPlaintext" => generate_data_key_without_plaintext,
    "ReEncrypt" => re_encrypt,
    "ExportDataKey" => export_data_key,
    "GenerateAndExportDataKey" => generate_and_export_data_key,
    "CreateAlias" => create_alias,
    "UpdateAlias" => update_alias,
    "DeleteAlias" => delete_alias,
    "ListAliases" => list_aliases,
    "ListAliasesByKeyId" => list_aliases_by_key_id,
    "TagResource" => tag_resource,
    "UntagResource" => untag_resource,
    "ListResourceTags" => list_resource_tags,
    "TagResources" => tag_resources,
    "UntagResources" => untag_resources,
    "ListTagResources" => list_tag_resources,
    "GenerateMac" => generate_mac,
    "VerifyMac" => verify_mac,
    "DescribeDefaultKey" => describe_default_key,
    "EnableDefaultKey" => enable_default_key,
    "DescribeRegions" => describe_regions,
    "OpenKmsService" => open_kms_service,
    "DescribeAccountKmsStatus" => describe_account_kms_status,
    "GetPublicKey" => get_public_key,
    "AsymmetricSign" => asymmetric_sign,
    "AsymmetricVerify" => asymmetric_verify,
    "AsymmetricEncrypt" => asymmetric_encrypt,
    "AsymmetricDecrypt" => asymmetric_decrypt,
    "GetParametersForImport" => get_parameters_for_import,
    "ImportKeyMaterial" => import_key_material,
    "DeleteKeyMaterial" => delete_key_material,
    "GetKeyPolicy" => get_key_policy,
    "SetKeyPolicy" => set_key_policy,
    "ListKeyAssociations" => list_key_associations,
    "CreateSecret" => create_secret,
    "GetSecretValue" => get_secret_value,
    "PutSecretValue" => put_secret_value,
    "UpdateSecretVersionStage" => update_secret_version_stage,
    "ListSecretVersionIds" => list_secret_version_ids,
    "DescribeSecret" => describe_secret,
    "UpdateSecret" => update_secret,
    "ListSecrets" => list_secrets,
    "DeleteSecret" => delete_secret,
    "RestoreSecret" => restore_secret,
    "RotateSecret" => rotate_secret,
    "UpdateSecretRotationPolicy" => update_secret_rotation_policy,
    "GetRandomPassword" => get_random_password,
    "GetSecretPolicy" => get_secret_policy,
    "SetSecretPolicy" => set_secret_policy,
    "CreateCertificate" => create_certificate,
    "UploadCertificate" => upload_certificate,
    "GetCertificate" => get_certificate,
    "DescribeCertificate" => describe_certificate,
    "UpdateCertificateStatus" => update_certificate_status,
    "DeleteCertificate" => delete_certificate,
    "CertificatePrivateKeySign" => certificate_private_key_sign,
    "CertificatePublicKeyVerify" => certificate_public_key_verify,
    "CertificatePublicKeyEncrypt" => certificate_public_key_encrypt,
    "CertificatePrivateKeyDecrypt" => certificate_private_key_decrypt,
}

/// Whether `action` is one the server dispatches.
pub fn is_action(action: &str) -> bool {
    ACTIONS.contains(&action)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use kms_core::RootKey;
    use serde_json::json;

    fn engine() -> (Kms, Caller) {
        let kms = Kms::builder()
            .storage(kms_storage::MemoryStorage::new())
            .root_key(RootKey::generate().unwrap())
            .account_id("1")
            .build()
            .unwrap();
        (kms, Caller::account_root("1"))
    }

    fn ok(kms: &Kms, me: &Caller, action: &str, params: serde_json::Value) -> serde_json::Value {
        let reply = call(kms, me, action, params).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["RequestId"], reply.request_id.as_str());
        v
    }

    #[test]
    fn wire_strings_reach_the_engine() {
        let (kms, me) = engine();
        let key = ok(
            &kms,
            &me,
            "CreateKey",
            json!({"Description": "d",
            "Tags": "[{\"TagKey\":\"team\",\"TagValue\":\"a\"}]"}),
        );
        let id = key["KeyMetadata"]["KeyId"].as_str().unwrap();
        let tags = ok(&kms, &me, "ListResourceTags", json!({"KeyId": id}));
        assert_eq!(tags["Tags"]["Tag"][0]["TagKey"], "team");
        let sealed = ok(
            &kms,
            &me,
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "hello",
            "EncryptionContext": "{\"a\":\"b\"}"}),
        );
        let opened = ok(
            &kms,
            &me,
            "Decrypt",
            json!({
            "CiphertextBlob": sealed["CiphertextBlob"], "EncryptionContext": "{\"a\":\"b\"}"}),
        );
        assert_eq!(opened["Plaintext"], "hello");
        let page = ok(&kms, &me, "ListKeys", json!({"PageSize": "5"}));
        assert_eq!(page["PageSize"], 5);
        assert_eq!(page["Keys"]["Key"][0]["KeyId"], id);
    }

    #[test]
    fn engine_errors_pass_through() {
        let (kms, me) = engine();
        let e = call(&kms, &me, "DescribeKey", json!({})).unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
        let e = call(
            &kms,
            &me,
            "Encrypt",
            json!({"KeyId": "alias/none", "Plaintext": "x"}),
        )
        .unwrap_err();
        assert_eq!(e.code(), "Forbidden.AliasNotFound");
        let e = call(&kms, &me, "ListKeys", json!({"PageSize": "many"})).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
        assert!(e.to_string().contains("PageSize"));
        assert!(!is_action("Nope"));
        assert_eq!(
            call(&kms, &me, "Nope", json!({})).unwrap_err().code(),
            "InvalidParameter"
        );
    }

    #[test]
    fn every_action_is_unique() {
        let mut all = ACTIONS.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), ACTIONS.len());
    }
}
