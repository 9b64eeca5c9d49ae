//! Request decoding: arbitrary JSON (as the server's merged parameters or a JSON body) into
//! every operation's request struct with `kms_core::api::decode_request`, whose serde adapters
//! accept Alibaba's string forms (booleans, integers, JSON text, Base64). Errors are
//! `MissingParameter`/`InvalidParameter`; a panic is a bug.
#![no_main]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use kms_core::api::*;
use kms_core::api::decode_request;
use libfuzzer_sys::fuzz_target;

/// Decodes `value` as each type; a decoded request must re-encode and decode to itself.
macro_rules! decode_as {
    ($value:expr, $($t:ty),+ $(,)?) => {
        $(
            match decode_request::<$t>($value.clone()) {
                Ok(request) => {
                    let again = serde_json::to_value(&request)
                        .map(decode_request::<$t>);
                    // UTF-8 byte fields (Plaintext) always re-encode; a decoded request must
                    // read back the same.
                    if let Ok(again) = again {
                        assert_eq!(again.ok().as_ref(), Some(&request), stringify!($t));
                    }
                }
                Err(e) => {
                    let code = e.code();
                    assert!(
                        code == "MissingParameter" || code == "InvalidParameter",
                        "{} decoding failed with {code}: {e}",
                        stringify!($t)
                    );
                }
            }
        )+
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    decode_as!(
        value,
        CreateKeyRequest,
        KeyIdRequest,
        ListKeysRequest,
        SetDeletionProtectionRequest,
        ScheduleKeyDeletionRequest,
        UpdateKeyDescriptionRequest,
        DescribeKeyVersionRequest,
        ListKeyVersionsRequest,
        UpdateRotationPolicyRequest,
        EncryptRequest,
        DecryptRequest,
        GenerateDataKeyRequest,
        ReEncryptRequest,
        AliasRequest,
        DeleteAliasRequest,
        ListAliasesRequest,
        ListAliasesByKeyIdRequest,
        TagResourceRequest,
        UntagResourceRequest,
        NoParamsRequest,
        KeyVersionRequest,
        AsymmetricSignRequest,
        AsymmetricVerifyRequest,
        AsymmetricEncryptRequest,
        AsymmetricDecryptRequest,
        ExportDataKeyRequest,
        GenerateAndExportDataKeyRequest,
        GetParametersForImportRequest,
        ImportKeyMaterialRequest,
        GetKeyPolicyRequest,
        SetKeyPolicyRequest,
        CreateSecretRequest,
        SecretNameRequest,
        GetSecretValueRequest,
        PutSecretValueRequest,
        UpdateSecretVersionStageRequest,
        ListSecretVersionIdsRequest,
        DescribeSecretRequest,
        UpdateSecretRequest,
        ListSecretsRequest,
        DeleteSecretRequest,
        RotateSecretRequest,
        UpdateSecretRotationPolicyRequest,
        GetRandomPasswordRequest,
        GetSecretPolicyRequest,
        SetSecretPolicyRequest,
        CreateCertificateRequest,
        CertificateIdRequest,
        UploadCertificateRequest,
        UpdateCertificateStatusRequest,
        CertificatePrivateKeySignRequest,
        CertificatePublicKeyVerifyRequest,
        CertificatePublicKeyEncryptRequest,
        CertificatePrivateKeyDecryptRequest,
    );
});
