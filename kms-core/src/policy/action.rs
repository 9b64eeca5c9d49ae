//! [`Action`]: every action the engine authorizes, as key and RAM policies name it.
//!
//! One enum serves the engine (each operation asks the [`crate::Authorizer`] about its
//! action), kms-policy (the action names a policy document may use) and the server's dispatch
//! table (each wire action declares the policy actions it is authorized as).

use std::fmt;

macro_rules! actions {
    ($($(#[$meta:meta])* $variant:ident,)+) => {
        /// An API action, named in policies as `kms:<name>` (`kms:Encrypt`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Action {
            $(
                #[doc = concat!("`kms:", stringify!($variant), "`")]
                $(#[$meta])*
                $variant,
            )+
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),+];

            /// Every action's policy name (`kms:` prefix), in the order of [`Action::ALL`].
            pub const POLICY_NAMES: &'static [&'static str] =
                &[$(concat!("kms:", stringify!($variant))),+];

            /// The policy name, e.g. `kms:Encrypt`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => concat!("kms:", stringify!($variant)),)+
                }
            }
        }
    };
}

actions! {
    // Keys
    CreateKey,
    DescribeKey,
    ListKeys,
    EnableKey,
    DisableKey,
    SetDeletionProtection,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    UpdateKeyDescription,
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteKeyMaterial,
    GetKeyPolicy,
    SetKeyPolicy,
    // Versions
    DescribeKeyVersion,
    ListKeyVersions,
    UpdateRotationPolicy,
    CreateKeyVersion,
    // Cryptography
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    ExportDataKey,
    GenerateAndExportDataKey,
    ReEncryptFrom,
    ReEncryptTo,
    AsymmetricSign,
    AsymmetricVerify,
    AsymmetricEncrypt,
    AsymmetricDecrypt,
    GetPublicKey,
    GenerateMac,
    VerifyMac,
    // Aliases and tags
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    ListAliases,
    ListAliasesByKeyId,
    TagResource,
    UntagResource,
    ListResourceTags,
    TagResources,
    UntagResources,
    ListTagResources,
    // Service
    DescribeRegions,
    OpenKmsService,
    DescribeAccountKmsStatus,
    DescribeService,
    // Secrets Manager
    CreateSecret,
    GetSecretValue,
    PutSecretValue,
    UpdateSecretVersionStage,
    ListSecretVersionIds,
    DescribeSecret,
    UpdateSecret,
    ListSecrets,
    DeleteSecret,
    RestoreSecret,
    RotateSecret,
    UpdateSecretRotationPolicy,
    GetRandomPassword,
    GetSecretPolicy,
    SetSecretPolicy,
    // Certificates
    CreateCertificate,
    UploadCertificate,
    GetCertificate,
    DescribeCertificate,
    UpdateCertificateStatus,
    DeleteCertificate,
    CertificatePrivateKeySign,
    CertificatePublicKeyVerify,
    CertificatePublicKeyEncrypt,
    CertificatePrivateKeyDecrypt,
    // KMS instances and applications (KMS 3.0)
    GetKmsInstance,
    ListKmsInstances,
    GetDefaultKmsInstance,
    CreateNetworkRule,
    DescribeNetworkRule,
    UpdateNetworkRule,
    DeleteNetworkRule,
    ListNetworkRules,
    CreatePolicy,
    DescribePolicy,
    UpdatePolicy,
    DeletePolicy,
    ListPolicies,
    CreateApplicationAccessPoint,
    DescribeApplicationAccessPoint,
    UpdateApplicationAccessPoint,
    DeleteApplicationAccessPoint,
    ListApplicationAccessPoints,
    CreateClientKey,
    GetClientKey,
    DeleteClientKey,
    ListClientKeys,
}

impl Action {
    /// The name without its `kms:` prefix, e.g. `Encrypt`.
    pub fn name(self) -> &'static str {
        let full = self.as_str();
        full.get(4..).unwrap_or(full)
    }

    /// The action a policy name (`kms:Encrypt`, any case) stands for.
    pub fn from_policy_name(policy_name: &str) -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.as_str().eq_ignore_ascii_case(policy_name))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_unique_and_round_trip() {
        let mut names = Action::POLICY_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        for (a, n) in Action::ALL.iter().zip(Action::POLICY_NAMES) {
            assert_eq!(a.as_str(), *n);
            assert_eq!(Action::from_policy_name(n), Some(*a));
            assert_eq!(Action::from_policy_name(&n.to_ascii_uppercase()), Some(*a));
            assert_eq!(format!("kms:{}", a.name()), *n);
        }
        assert_eq!(Action::from_policy_name("kms:Nope"), None);
        assert_eq!(Action::from_policy_name("Encrypt"), None);
    }
}
