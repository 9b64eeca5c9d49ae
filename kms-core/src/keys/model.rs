//! The domain model: wire enums and the records the engine stores.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::AeadAlgorithm;
use crate::time::UnixTime;

wire_enum!(
    /// The type of a key's material.
    KeySpec, "KeySpec", {
        /// AES-256-GCM (the default).
        Aes256 => "Aliyun_AES_256",
        /// AES-192-GCM.
        Aes192 => "Aliyun_AES_192",
        /// AES-128-GCM.
        Aes128 => "Aliyun_AES_128",
        /// RSA 2048-bit.
        Rsa2048 => "RSA_2048",
        /// RSA 3072-bit.
        Rsa3072 => "RSA_3072",
        /// RSA 4096-bit.
        Rsa4096 => "RSA_4096",
        /// ECDSA over NIST P-256.
        EcP256 => "EC_P256",
        /// ECDSA over secp256k1.
        EcP256K => "EC_P256K",
        /// HMAC with SHA-256 (GenerateMac / VerifyMac).
        HmacSha256 => "HMAC_SHA256",
    }
);

impl KeySpec {
    /// The AEAD algorithm of a symmetric spec; `None` for asymmetric specs.
    pub fn aead(self) -> Option<AeadAlgorithm> {
        match self {
            KeySpec::Aes256 => Some(AeadAlgorithm::Aes256Gcm),
            KeySpec::Aes192 => Some(AeadAlgorithm::Aes192Gcm),
            KeySpec::Aes128 => Some(AeadAlgorithm::Aes128Gcm),
            _ => None,
        }
    }

    /// True for the RSA specs.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// True for the symmetric specs: AES and HMAC.
    pub fn is_symmetric(self) -> bool {
        self.aead().is_some() || self == KeySpec::HmacSha256
    }

    /// Length of the material the engine generates for a symmetric spec.
    pub fn symmetric_key_len(self) -> Option<usize> {
        match self {
            KeySpec::HmacSha256 => Some(32),
            other => other.aead().map(|a| a.key_len()),
        }
    }

    /// The usages a key of this spec may have; the first is the default.
    pub fn allowed_usages(self) -> &'static [KeyUsage] {
        match self {
            KeySpec::Aes256 | KeySpec::Aes192 | KeySpec::Aes128 => &[KeyUsage::EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify]
            }
            KeySpec::EcP256 | KeySpec::EcP256K => &[KeyUsage::SignVerify],
            KeySpec::HmacSha256 => &[KeyUsage::GenerateVerifyMac],
        }
    }
}

wire_enum!(
    /// What a key may be used for.
    KeyUsage, "KeyUsage", {
        /// Encrypt and decrypt.
        EncryptDecrypt => "ENCRYPT/DECRYPT",
        /// Sign and verify.
        SignVerify => "SIGN/VERIFY",
        /// Generate and verify MACs (HMAC keys).
        GenerateVerifyMac => "GENERATE/VERIFY_MAC",
    }
);

wire_enum!(
    /// Where a key's material comes from.
    Origin, "Origin", {
        /// The engine generates it.
        AliyunKms => "Aliyun_KMS",
        /// The owner imports it (BYOK).
        External => "EXTERNAL",
        /// It stays in an external key manager behind a proxy (external keys).
        ExternalKeyStore => "EXTERNAL_KEY_STORE",
    }
);

wire_enum!(
    /// Where a key's material is kept.
    ProtectionLevel, "ProtectionLevel", {
        /// In the engine, sealed at rest.
        Software => "SOFTWARE",
        /// In a hardware module behind a key provider.
        Hsm => "HSM",
    }
);

wire_enum!(
    /// The lifecycle state of a key.
    KeyState, "KeyState", {
        /// Usable.
        Enabled => "Enabled",
        /// Kept but unusable until enabled.
        Disabled => "Disabled",
        /// Scheduled for deletion at DeleteDate.
        PendingDeletion => "PendingDeletion",
        /// Waiting for imported key material.
        PendingImport => "PendingImport",
    }
);

wire_enum!(
    /// Whether a key rotates automatically, as DescribeKey shows it.
    AutomaticRotation, "AutomaticRotation", {
        /// Rotation is on and the key is Enabled.
        Enabled => "Enabled",
        /// Rotation is off.
        Disabled => "Disabled",
        /// Rotation is on but the key is not Enabled, so it does not rotate.
        Suspended => "Suspended",
    }
);

wire_enum!(
    /// Whether deletion protection is on.
    DeletionProtection, "DeletionProtection", {
        /// ScheduleKeyDeletion is refused.
        Enabled => "Enabled",
        /// No protection.
        Disabled => "Disabled",
    }
);

wire_enum!(
    /// Who created a key.
    CreatorType, "CreatorType", {
        /// A user of the account.
        User => "User",
        /// An integrated cloud service (service keys).
        Service => "Service",
    }
);

/// Key material: zeroized on drop, redacted in `Debug`, never serialized outside the sealed
/// store.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(pub(crate) Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// Wraps raw material.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        KeyMaterial(bytes)
    }

    /// The raw bytes.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// SHA-256 of the material, for "same material" checks without keeping a second copy.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(&self.0[..]).into()
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(..redacted..)")
    }
}

impl Serialize for KeyMaterial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.0));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        // Borrowed: base64 never needs escapes, so no unzeroized copy of the text is made.
        let text = <&'de str>::deserialize(d)?;
        let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
        base64::engine::general_purpose::STANDARD
            .decode_vec(text, &mut out)
            .map_err(|_| serde::de::Error::custom("malformed key material"))?;
        Ok(KeyMaterial(out))
    }
}

/// A key's record: everything about a CMK except its versions' material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key id (UUID).
    pub key_id: String,
    /// When the key was created.
    pub creation_date: UnixTime,
    /// The account id of the creator.
    pub creator: String,
    /// User or Service.
    pub creator_type: CreatorType,
    /// Free text, at most 8192 characters.
    pub description: String,
    /// Material type.
    pub key_spec: KeySpec,
    /// Allowed usage.
    pub key_usage: KeyUsage,
    /// Material origin.
    pub origin: Origin,
    /// Software or HSM.
    pub protection_level: ProtectionLevel,
    /// Lifecycle state.
    pub state: KeyState,
    /// When a PendingDeletion key is purged.
    pub delete_date: Option<UnixTime>,
    /// The version Encrypt uses; `None` only for a key that never had material.
    pub primary_version_id: Option<String>,
    /// Number of versions ever created (the sequence of the next version record).
    pub version_count: u32,
    /// Automatic rotation interval in seconds, when automatic rotation is on.
    pub rotation_interval: Option<i64>,
    /// When the key last rotated (automatically or manually).
    pub last_rotation_date: Option<UnixTime>,
    /// When automatic rotation is due.
    pub next_rotation_date: Option<UnixTime>,
    /// Deletion protection, with its description when on.
    pub deletion_protection: Option<String>,
    /// When imported material expires (EXTERNAL keys).
    pub material_expire_time: Option<UnixTime>,
    /// SHA-256 of imported material (EXTERNAL keys), kept after the material is deleted so
    /// that only the same material can ever be imported again.
    pub material_fingerprint: Option<[u8; 32]>,
    /// False for an EXTERNAL key whose material was never imported, was deleted or expired.
    #[serde(default = "default_true")]
    pub has_material: bool,
    /// The KMS instance the key belongs to.
    pub dkms_instance_id: Option<String>,
    /// For Origin EXTERNAL_KEY_STORE: the key's id in the external key manager.
    #[serde(default)]
    pub external_key_id: Option<String>,
    /// Alias names that point at this key.
    pub aliases: BTreeSet<String>,
    /// Tags, key to value.
    pub tags: BTreeMap<String, String>,
    /// The key policy document, when one was set.
    pub policy: Option<String>,
}

fn default_true() -> bool {
    true
}

/// One version of a key, with its sealed-at-rest material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The key this version belongs to.
    pub key_id: String,
    /// The version id (UUID).
    pub version_id: String,
    /// When the version was created.
    pub creation_date: UnixTime,
    /// The version's position among the key's versions (0 = first).
    pub seq: u32,
    /// The material: raw AES key bytes or PKCS#8 DER for SOFTWARE keys, the key provider's
    /// handle for HSM keys. Absent for an EXTERNAL key without imported material.
    pub material: Option<KeyMaterial>,
}

/// An alias record: the name and the key it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The alias name, with its `alias/` prefix.
    pub alias_name: String,
    /// The target key id.
    pub key_id: String,
}
