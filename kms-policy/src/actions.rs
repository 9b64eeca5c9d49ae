//! The actions policies name, and the seed's three custom-policy roles.

/// Every action the engine authorizes (policy names, `kms:` prefix).
pub const ACTIONS: &[&str] = &[
    // Keys
    "kms:CreateKey",
    "kms:DescribeKey",
    "kms:ListKeys",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:SetDeletionProtection",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:UpdateKeyDescription",
    "kms:GetParametersForImport",
    "kms:ImportKeyMaterial",
    "kms:DeleteKeyMaterial",
    "kms:GetKeyPolicy",
    "kms:SetKeyPolicy",
    // Versions
    "kms:DescribeKeyVersion",
    "kms:ListKeyVersions",
    "kms:UpdateRotationPolicy",
    "kms:CreateKeyVersion",
    // Cryptography
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ExportDataKey",
    "kms:GenerateAndExportDataKey",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:AsymmetricSign",
    "kms:AsymmetricVerify",
    "kms:AsymmetricEncrypt",
    "kms:AsymmetricDecrypt",
    "kms:GetPublicKey",
    "kms:GenerateMac",
    "kms:VerifyMac",
    // Aliases and tags
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:ListAliases",
    "kms:ListAliasesByKeyId",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ListResourceTags",
    "kms:TagResources",
    "kms:UntagResources",
    "kms:ListTagResources",
    // Service
    "kms:DescribeRegions",
    "kms:OpenKmsService",
    "kms:DescribeAccountKmsStatus",
    "kms:DescribeService",
    // Secrets Manager
    "kms:CreateSecret",
    "kms:GetSecretValue",
    "kms:PutSecretValue",
    "kms:UpdateSecretVersionStage",
    "kms:ListSecretVersionIds",
    "kms:DescribeSecret",
    "kms:UpdateSecret",
    "kms:ListSecrets",
    "kms:DeleteSecret",
    "kms:RestoreSecret",
    "kms:RotateSecret",
    "kms:UpdateSecretRotationPolicy",
    "kms:GetRandomPassword",
    "kms:GetSecretPolicy",
    "kms:SetSecretPolicy",
    // Certificates
    "kms:CreateCertificate",
    "kms:UploadCertificate",
    "kms:GetCertificate",
    "kms:DescribeCertificate",
    "kms:UpdateCertificateStatus",
    "kms:DeleteCertificate",
    "kms:CertificatePrivateKeySign",
    "kms:CertificatePublicKeyVerify",
    "kms:CertificatePublicKeyEncrypt",
    "kms:CertificatePrivateKeyDecrypt",
];

/// True for an action of [`ACTIONS`] (case-insensitive).
pub fn is_known_action(action: &str) -> bool {
    ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action))
}

/// The seed's administrators: manage keys, no cryptography.
pub const ADMINISTRATOR_ACTIONS: &[&str] = &[
    "kms:List*",
    "kms:Describe*",
    "kms:Create*",
    "kms:Enable*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Set*",
    "kms:Update*",
    "kms:Delete*",
    "kms:Cancel*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ImportKeyMaterial",
    "kms:ScheduleKeyDeletion",
];

/// The seed's users (and cross-account users): cryptography and reading.
pub const USER_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateAndExportDataKey",
    "kms:AsymmetricEncrypt",
    "kms:AsymmetricDecrypt",
    "kms:DescribeKey",
    "kms:DescribeKeyVersion",
    "kms:ListKeyVersions",
    "kms:ListAliasesByKeyId",
    "kms:TagResource",
];
