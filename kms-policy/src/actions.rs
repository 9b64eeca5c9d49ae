//! The actions policies name, and the three custom-policy roles of Alibaba's key management
//! guide.

/// Every action the engine authorizes (policy names, `kms:` prefix): the names of
/// [`kms_core::Action`], the one list the engine, this crate and the server's dispatch table
/// share.
pub const ACTIONS: &[&str] = kms_core::Action::POLICY_NAMES;

/// True for an action of [`ACTIONS`] (case-insensitive).
pub fn is_known_action(action: &str) -> bool {
    kms_core::Action::from_policy_name(action).is_some()
}

/// The guide's administrators: manage keys, no cryptography.
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

/// The guide's users (and cross-account users): cryptography and reading.
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
