//! Action → engine method: one table, no business rules.
//!
//! Each entry names the wire action, the engine method, and the policy actions ([`Action`])
//! the engine authorizes it as; `tests/actions.rs` checks the three agree.
//!
//! Each action decodes its parameters with [`kms_core::api::decode_request`] into the
//! operation's request struct (whose serde attributes implement Alibaba's wire forms), calls
//! the engine, and serializes the response struct as the JSON body.

use kms_core::api::decode_request;
use kms_core::{Action, Caller, Kms, KmsError};

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
    ($($action:literal => $method:ident [$($policy:ident),+]),* $(,)?) => {
        /// Every action the server dispatches, by wire name.
        pub const ACTIONS: &[&str] = &[$($action),*];

        /// The policy actions the engine may ask the authorizer about while serving the wire
        /// action `action` (ReEncrypt: `kms:ReEncryptFrom` on the source key and
        /// `kms:ReEncryptTo` on the destination), or `None` for an action not dispatched.
        pub fn policy_actions(action: &str) -> Option<&'static [Action]> {
            match action {
                $($action => Some(&[$(Action::$policy),+]),)*
                _ => None,
            }
        }

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
    "CreateKey" => create_key [CreateKey, SetKeyPolicy],
    "DescribeKey" => describe_key [DescribeKey],
    "ListKeys" => list_keys [ListKeys],
    "EnableKey" => enable_key [EnableKey],
    "DisableKey" => disable_key [DisableKey],
    "SetDeletionProtection" => set_deletion_protection [SetDeletionProtection],
    "ScheduleKeyDeletion" => schedule_key_deletion [ScheduleKeyDeletion],
    "CancelKeyDeletion" => cancel_key_deletion [CancelKeyDeletion],
    "UpdateKeyDescription" => update_key_description [UpdateKeyDescription],
    "DescribeKeyVersion" => describe_key_version [DescribeKeyVersion],
    "ListKeyVersions" => list_key_versions [ListKeyVersions],
    "UpdateRotationPolicy" => update_rotation_policy [UpdateRotationPolicy],
    "CreateKeyVersion" => create_key_version [CreateKeyVersion],
    "Encrypt" => encrypt [Encrypt],
    "Decrypt" => decrypt [Decrypt],
    "GenerateDataKey" => generate_data_key [GenerateDataKey],
    "GenerateDataKeyWithoutPlaintext" => generate_data_key_without_plaintext [GenerateDataKeyWithoutPlaintext],
    "ReEncrypt" => re_encrypt [ReEncryptFrom, ReEncryptTo],
    "ExportDataKey" => export_data_key [ExportDataKey],
    "GenerateAndExportDataKey" => generate_and_export_data_key [GenerateAndExportDataKey],
    "CreateAlias" => create_alias [CreateAlias],
    "UpdateAlias" => update_alias [UpdateAlias],
    "DeleteAlias" => delete_alias [DeleteAlias],
    "ListAliases" => list_aliases [ListAliases],
    "ListAliasesByKeyId" => list_aliases_by_key_id [ListAliasesByKeyId],
    "TagResource" => tag_resource [TagResource],
    "UntagResource" => untag_resource [UntagResource],
    "ListResourceTags" => list_resource_tags [ListResourceTags],
    "TagResources" => tag_resources [TagResources],
    "UntagResources" => untag_resources [UntagResources],
    "ListTagResources" => list_tag_resources [ListTagResources],
    "GenerateMac" => generate_mac [GenerateMac],
    "VerifyMac" => verify_mac [VerifyMac],
    "DescribeDefaultKey" => describe_default_key [DescribeKey],
    "EnableDefaultKey" => enable_default_key [CreateKey],
    "DescribeRegions" => describe_regions [DescribeRegions],
    "OpenKmsService" => open_kms_service [OpenKmsService],
    "DescribeAccountKmsStatus" => describe_account_kms_status [DescribeAccountKmsStatus],
    "GetPublicKey" => get_public_key [GetPublicKey],
    "AsymmetricSign" => asymmetric_sign [AsymmetricSign],
    "AsymmetricVerify" => asymmetric_verify [AsymmetricVerify],
    "AsymmetricEncrypt" => asymmetric_encrypt [AsymmetricEncrypt],
    "AsymmetricDecrypt" => asymmetric_decrypt [AsymmetricDecrypt],
    "GetParametersForImport" => get_parameters_for_import [GetParametersForImport],
    "ImportKeyMaterial" => import_key_material [ImportKeyMaterial],
    "DeleteKeyMaterial" => delete_key_material [DeleteKeyMaterial],
    "GetKeyPolicy" => get_key_policy [GetKeyPolicy],
    "SetKeyPolicy" => set_key_policy [SetKeyPolicy],
    "ListKeyAssociations" => list_key_associations [DescribeKey],
    "CreateSecret" => create_secret [CreateSecret, SetSecretPolicy, GenerateDataKey],
    "GetSecretValue" => get_secret_value [GetSecretValue, Decrypt],
    "PutSecretValue" => put_secret_value [PutSecretValue, GenerateDataKey],
    "UpdateSecretVersionStage" => update_secret_version_stage [UpdateSecretVersionStage],
    "ListSecretVersionIds" => list_secret_version_ids [ListSecretVersionIds],
    "DescribeSecret" => describe_secret [DescribeSecret],
    "UpdateSecret" => update_secret [UpdateSecret],
    "ListSecrets" => list_secrets [ListSecrets],
    "DeleteSecret" => delete_secret [DeleteSecret],
    "RestoreSecret" => restore_secret [RestoreSecret],
    "RotateSecret" => rotate_secret [RotateSecret, Decrypt, GenerateDataKey],
    "UpdateSecretRotationPolicy" => update_secret_rotation_policy [UpdateSecretRotationPolicy],
    "GetRandomPassword" => get_random_password [GetRandomPassword],
    "GetSecretPolicy" => get_secret_policy [GetSecretPolicy],
    "SetSecretPolicy" => set_secret_policy [SetSecretPolicy],
    "CreateCertificate" => create_certificate [CreateCertificate],
    "UploadCertificate" => upload_certificate [UploadCertificate],
    "GetCertificate" => get_certificate [GetCertificate],
    "DescribeCertificate" => describe_certificate [DescribeCertificate],
    "UpdateCertificateStatus" => update_certificate_status [UpdateCertificateStatus],
    "DeleteCertificate" => delete_certificate [DeleteCertificate],
    "CertificatePrivateKeySign" => certificate_private_key_sign [CertificatePrivateKeySign],
    "CertificatePublicKeyVerify" => certificate_public_key_verify [CertificatePublicKeyVerify],
    "CertificatePublicKeyEncrypt" => certificate_public_key_encrypt [CertificatePublicKeyEncrypt],
    "CertificatePrivateKeyDecrypt" => certificate_private_key_decrypt [CertificatePrivateKeyDecrypt],
    "GetKmsInstance" => get_kms_instance [GetKmsInstance],
    "ListKmsInstances" => list_kms_instances [ListKmsInstances],
    "GetDefaultKmsInstance" => get_default_kms_instance [GetDefaultKmsInstance],
    "CreateNetworkRule" => create_network_rule [CreateNetworkRule],
    "DescribeNetworkRule" => describe_network_rule [DescribeNetworkRule],
    "UpdateNetworkRule" => update_network_rule [UpdateNetworkRule],
    "DeleteNetworkRule" => delete_network_rule [DeleteNetworkRule],
    "ListNetworkRules" => list_network_rules [ListNetworkRules],
    "CreatePolicy" => create_policy [CreatePolicy],
    "DescribePolicy" => describe_policy [DescribePolicy],
    "UpdatePolicy" => update_policy [UpdatePolicy],
    "DeletePolicy" => delete_policy [DeletePolicy],
    "ListPolicies" => list_policies [ListPolicies],
    "CreateApplicationAccessPoint" => create_application_access_point [CreateApplicationAccessPoint],
    "DescribeApplicationAccessPoint" => describe_application_access_point [DescribeApplicationAccessPoint],
    "UpdateApplicationAccessPoint" => update_application_access_point [UpdateApplicationAccessPoint],
    "DeleteApplicationAccessPoint" => delete_application_access_point [DeleteApplicationAccessPoint],
    "ListApplicationAccessPoints" => list_application_access_points [ListApplicationAccessPoints],
    "CreateClientKey" => create_client_key [CreateClientKey],
    "GetClientKey" => get_client_key [GetClientKey],
    "DeleteClientKey" => delete_client_key [DeleteClientKey],
    "ListClientKeys" => list_client_keys [ListClientKeys],
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
