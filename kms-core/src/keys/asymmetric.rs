//! Asymmetric operations: sign, verify, encrypt, decrypt, public keys, and exporting data
//! keys under a caller's RSA public key.

use std::sync::Arc;

use base64::Engine;
use zeroize::Zeroizing;

use crate::api::*;
use crate::crypto::asym::{EncryptionAlgorithm, PublicKey, SigningAlgorithm};
use crate::engine::{CachedVersion, Kms};
use crate::error::KmsError;
use crate::keys::model::KeyUsage;
use crate::keys::symmetric::data_key_len;
use crate::keys::usable::UsableKey;
use crate::policy::{Action, Caller};
use crate::validate;

/// The key and version an asymmetric operation runs on.
struct AsymTarget {
    key: UsableKey,
    version: Arc<CachedVersion>,
}

fn check_wrapping(
    spec: &str,
    algorithm: &str,
    public_key_blob: &[u8],
) -> Result<(PublicKey, EncryptionAlgorithm), KmsError> {
    if public_key_blob.is_empty() {
        return Err(KmsError::missing("PublicKeyBlob"));
    }
    let bits = match spec {
        "RSA_2048" => 2048,
        "RSA_3072" => 3072,
        "RSA_4096" => 4096,
        "" => return Err(KmsError::missing("WrappingKeySpec")),
        other => {
            return Err(KmsError::invalid(
                "WrappingKeySpec",
                format!("{other:?} is not one of RSA_2048, RSA_3072, RSA_4096"),
            ))
        }
    };
    let alg = oaep_algorithm_named("WrappingAlgorithm", algorithm)?;
    let public = PublicKey::from_spki_der("PublicKeyBlob", public_key_blob)?;
    if public.modulus_len() * 8 != bits {
        return Err(KmsError::invalid(
            "PublicKeyBlob",
            format!("is not an RSA key of WrappingKeySpec {spec}"),
        ));
    }
    Ok((public, alg))
}

impl Kms {
    /// Resolves KeyId + KeyVersionId for an asymmetric operation needing `usage`.
    fn asym_target(
        &self,
        caller: &Caller,
        action: Action,
        key_id: &str,
        version_id: &str,
        usage: Option<KeyUsage>,
    ) -> Result<AsymTarget, KmsError> {
        validate::required("KeyVersionId", version_id)?;
        let key = self.usable_key(caller, action, "KeyId", key_id)?;
        if key.record.key_spec.is_symmetric() {
            return Err(KmsError::UnsupportedOperation {
                reason: format!(
                    "key {} is {}; this operation needs an asymmetric key",
                    key.record.key_id, key.record.key_spec
                ),
            });
        }
        if let Some(usage) = usage {
            if key.record.key_usage != usage {
                return Err(KmsError::UnsupportedOperation {
                    reason: format!(
                        "key {} has KeyUsage {}; this operation needs {usage}",
                        key.record.key_id, key.record.key_usage
                    ),
                });
            }
        }
        let version = self.load_version(&key, &version_id.to_ascii_lowercase())?;
        Ok(AsymTarget { key, version })
    }

    /// GetPublicKey: the PEM SubjectPublicKeyInfo of an asymmetric key version.
    ///
    /// Errors: `MissingParameter` (KeyVersionId), `Forbidden.KeyVersionNotFound`, the state
    /// errors, `Rejected.UnsupportedOperation` for symmetric keys.
    pub fn get_public_key(
        &self,
        caller: &Caller,
        req: GetPublicKeyRequest,
    ) -> Result<GetPublicKeyResponse, KmsError> {
        let t = self.asym_target(
            caller,
            Action::GetPublicKey,
            &req.key_id,
            &req.key_version_id,
            None,
        )?;
        let pem = self.version_public_key(&t.key, &t.version)?.to_pem()?;
        Ok(GetPublicKeyResponse {
            request_id: self.request_id(),
            public_key: pem,
            key_id: t.key.record.key_id.clone(),
            key_version_id: t.version.version_id().to_owned(),
        })
    }

    /// AsymmetricSign: signs a 32-byte SHA-256 digest.
    ///
    /// Errors: `InvalidParameter` (Digest length, Algorithm), `Rejected.UnsupportedOperation`
    /// (not a SIGN/VERIFY key, or an algorithm of another key type), the state errors.
    pub fn asymmetric_sign(
        &self,
        caller: &Caller,
        req: AsymmetricSignRequest,
    ) -> Result<AsymmetricSignResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let t = self.asym_target(
            caller,
            Action::AsymmetricSign,
            &req.key_id,
            &req.key_version_id,
            Some(KeyUsage::SignVerify),
        )?;
        let value = self.version_sign(&t.key, &t.version, alg, &req.digest)?;
        Ok(AsymmetricSignResponse {
            request_id: self.request_id(),
            value,
            key_id: t.key.record.key_id.clone(),
            key_version_id: t.version.version_id().to_owned(),
        })
    }

    /// AsymmetricVerify: `Value: false` for a wrong or malformed signature (not an error).
    ///
    /// Errors: as [`Kms::asymmetric_sign`].
    pub fn asymmetric_verify(
        &self,
        caller: &Caller,
        req: AsymmetricVerifyRequest,
    ) -> Result<AsymmetricVerifyResponse, KmsError> {
        let alg = SigningAlgorithm::parse(&req.algorithm)?;
        let t = self.asym_target(
            caller,
            Action::AsymmetricVerify,
            &req.key_id,
            &req.key_version_id,
            Some(KeyUsage::SignVerify),
        )?;
        let ok =
            self.version_public_key(&t.key, &t.version)?
                .verify(alg, &req.digest, &req.value)?;
        Ok(AsymmetricVerifyResponse {
            request_id: self.request_id(),
            value: ok,
            key_id: t.key.record.key_id.clone(),
            key_version_id: t.version.version_id().to_owned(),
        })
    }

    /// AsymmetricEncrypt: RSA-OAEP with the key version's public key.
    ///
    /// Errors: `InvalidParameter` (plaintext over the OAEP limit of the key size, Algorithm),
    /// `Rejected.UnsupportedOperation` (not an RSA ENCRYPT/DECRYPT key), the state errors.
    pub fn asymmetric_encrypt(
        &self,
        caller: &Caller,
        req: AsymmetricEncryptRequest,
    ) -> Result<AsymmetricEncryptResponse, KmsError> {
        let alg = oaep_algorithm(&req.algorithm)?;
        if req.plaintext.is_empty() {
            return Err(KmsError::missing("Plaintext"));
        }
        let t = self.asym_target(
            caller,
            Action::AsymmetricEncrypt,
            &req.key_id,
            &req.key_version_id,
            Some(KeyUsage::EncryptDecrypt),
        )?;
        let ciphertext = self.version_public_key(&t.key, &t.version)?.encrypt(
            "Plaintext",
            alg,
            &req.plaintext,
        )?;
        Ok(AsymmetricEncryptResponse {
            request_id: self.request_id(),
            ciphertext_blob: ciphertext,
            key_id: t.key.record.key_id.clone(),
            key_version_id: t.version.version_id().to_owned(),
        })
    }

    /// AsymmetricDecrypt: RSA-OAEP with the key version's private key.
    ///
    /// Errors: `InvalidCiphertext` when decryption fails; as [`Kms::asymmetric_encrypt`].
    pub fn asymmetric_decrypt(
        &self,
        caller: &Caller,
        req: AsymmetricDecryptRequest,
    ) -> Result<AsymmetricDecryptResponse, KmsError> {
        let alg = oaep_algorithm(&req.algorithm)?;
        if req.ciphertext_blob.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        let t = self.asym_target(
            caller,
            Action::AsymmetricDecrypt,
            &req.key_id,
            &req.key_version_id,
            Some(KeyUsage::EncryptDecrypt),
        )?;
        let plaintext = self.version_decrypt(&t.key, &t.version, alg, &req.ciphertext_blob)?;
        Ok(AsymmetricDecryptResponse {
            request_id: self.request_id(),
            plaintext: plaintext.into(),
            key_id: t.key.record.key_id.clone(),
            key_version_id: t.version.version_id().to_owned(),
        })
    }

    /// ReEncrypt's asymmetric source: RSA-decrypts the blob with SourceKeyId /
    /// SourceKeyVersionId / SourceEncryptionAlgorithm under `kms:ReEncryptFrom`.
    pub(crate) fn asymmetric_source_plaintext(
        &self,
        caller: &Caller,
        req: &ReEncryptRequest,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let key_id = req
            .source_key_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| KmsError::missing("SourceKeyId"))?;
        let version_id = req
            .source_key_version_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| KmsError::missing("SourceKeyVersionId"))?;
        let alg = match req
            .source_encryption_algorithm
            .as_deref()
            .unwrap_or_default()
        {
            "" => return Err(KmsError::missing("SourceEncryptionAlgorithm")),
            other => oaep_algorithm_named("SourceEncryptionAlgorithm", other)?,
        };
        if req.ciphertext_blob.is_empty() {
            return Err(KmsError::missing("CiphertextBlob"));
        }
        let t = self.asym_target(
            caller,
            Action::ReEncryptFrom,
            key_id,
            version_id,
            Some(KeyUsage::EncryptDecrypt),
        )?;
        self.version_decrypt(&t.key, &t.version, alg, &req.ciphertext_blob)
    }

    /// ExportDataKey: decrypts a data key blob and wraps the data key under the caller's RSA
    /// public key, so it can be carried to a place that holds the private key.
    ///
    /// Errors: as [`Kms::decrypt`]; `InvalidParameter` for a blob that does not hold a data
    /// key, or a public key that is not an RSA key of WrappingKeySpec.
    pub fn export_data_key(
        &self,
        caller: &Caller,
        req: ExportDataKeyRequest,
    ) -> Result<ExportDataKeyResponse, KmsError> {
        let (public, alg) = check_wrapping(
            &req.wrapping_key_spec,
            &req.wrapping_algorithm,
            &req.public_key_blob,
        )?;
        let opened = self.open_blob(
            caller,
            Action::ExportDataKey,
            &req.ciphertext_blob,
            &req.encryption_context,
        )?;
        // A data key blob holds the Base64 text of the key (see generate_data_key).
        let data_key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&*opened.plaintext)
                .ok()
                .filter(|k| validate::DATA_KEY_BYTES.contains(&i64::try_from(k.len()).unwrap_or(0)))
                .ok_or_else(|| {
                    KmsError::invalid(
                        "CiphertextBlob",
                        "does not hold a data key from GenerateDataKey",
                    )
                })?,
        );
        let exported = public.encrypt("CiphertextBlob", alg, &data_key)?;
        Ok(ExportDataKeyResponse {
            request_id: self.request_id(),
            exported_data_key: exported,
            key_id: opened.key_id,
            key_version_id: opened.version_id,
        })
    }

    /// GenerateAndExportDataKey: a new data key, wrapped under the CMK (as GenerateDataKey)
    /// and under the caller's RSA public key.
    ///
    /// Errors: as [`Kms::generate_data_key`] and [`Kms::export_data_key`].
    pub fn generate_and_export_data_key(
        &self,
        caller: &Caller,
        req: GenerateAndExportDataKeyRequest,
    ) -> Result<GenerateAndExportDataKeyResponse, KmsError> {
        let len = data_key_len(req.number_of_bytes, req.key_spec.as_deref())?;
        let (public, alg) = check_wrapping(
            &req.wrapping_key_spec,
            &req.wrapping_algorithm,
            &req.public_key_blob,
        )?;
        let (data_key, sealed) = self.make_data_key(
            caller,
            Action::GenerateAndExportDataKey,
            &req.key_id,
            len,
            &req.encryption_context,
        )?;
        let exported = public.encrypt("PublicKeyBlob", alg, &data_key)?;
        Ok(GenerateAndExportDataKeyResponse {
            request_id: self.request_id(),
            ciphertext_blob: sealed.blob,
            exported_data_key: exported,
            key_id: sealed.key_id,
            key_version_id: sealed.version_id,
        })
    }
}

fn oaep_algorithm_named(param: &'static str, s: &str) -> Result<EncryptionAlgorithm, KmsError> {
    match EncryptionAlgorithm::parse_as(param, s)? {
        EncryptionAlgorithm::RsaesPkcs1V15 => Err(KmsError::invalid(
            param,
            "must be RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
        )),
        alg => Ok(alg),
    }
}

fn oaep_algorithm(s: &str) -> Result<EncryptionAlgorithm, KmsError> {
    oaep_algorithm_named("Algorithm", s)
}
