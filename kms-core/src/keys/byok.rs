//! Bring your own key: import tokens, ImportKeyMaterial, DeleteKeyMaterial.
//!
//! GetParametersForImport makes a fresh RSA-2048 wrapping key pair and a random token, stored
//! as `t/<token>` (sealed like every record). The token is bound to one key, expires after 24
//! hours, and is deleted by the import that uses it, in the same atomic batch as the key's
//! change, so it can never be used twice.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::api::*;
use crate::crypto::asym::{EncryptionAlgorithm, PrivateKey};
use crate::engine::Kms;
use crate::error::KmsError;
use crate::keys::model::{KeyMaterial, KeyRecord, KeySpec, Origin, ProtectionLevel, VersionRecord};
use crate::keys::protection::material_label;
use crate::keys::rules;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::time::{UnixTime, DAY};
use crate::validate;

/// How long an import token is valid.
pub const IMPORT_TOKEN_TTL_SECS: i64 = DAY;
const TOKEN_BYTES: usize = 32;
/// The latest time a record (and the wire's ISO 8601 form) can carry: 9999-12-31T23:59:59Z.
const MAX_EXPIRE_UNIX: i64 = 253_402_300_799;

/// A stored import token.
#[derive(Serialize, Deserialize)]
pub(crate) struct ImportToken {
    pub(crate) key_id: String,
    pub(crate) algorithm: EncryptionAlgorithm,
    /// The wrapping key's PKCS#8, or its key provider handle when `in_provider`.
    pub(crate) wrapping_key: KeyMaterial,
    /// The wrapping key lives in the key provider, which unwraps the material itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) in_provider: bool,
    pub(crate) expires: UnixTime,
}

/// Imported HMAC keys may have any length up to this (what RSAES-OAEP-SHA-256 under the
/// RSA-2048 wrapping key carries); AES keys exactly their key length.
pub const MAX_HMAC_IMPORT_LEN: usize = 190;

fn check_import_length(spec: KeySpec, len: usize) -> Result<(), KmsError> {
    let ok = match spec {
        KeySpec::HmacSha256 => (1..=MAX_HMAC_IMPORT_LEN).contains(&len),
        other => other.aead().map(|a| a.key_len()) == Some(len),
    };
    if ok {
        return Ok(());
    }
    Err(KmsError::InvalidKeyMaterial {
        reason: match spec {
            KeySpec::HmacSha256 => format!(
                "HMAC_SHA256 needs 1 to {MAX_HMAC_IMPORT_LEN} bytes of key material, got {len}"
            ),
            other => format!(
                "{other} needs exactly {} bytes of key material, got {len}",
                other.symmetric_key_len().unwrap_or(0)
            ),
        },
    })
}

fn unsupported_origin(record: &KeyRecord) -> Result<(), KmsError> {
    if record.origin != Origin::External {
        return Err(KmsError::UnsupportedOrigin {
            key_id: record.key_id.clone(),
        });
    }
    Ok(())
}

impl Kms {
    /// GetParametersForImport: a wrapping public key (RSA-2048, DER SubjectPublicKeyInfo) and
    /// a single-use import token for an EXTERNAL key, valid for 24 hours. Works in every
    /// state.
    ///
    /// Errors: `Unsupported.Origin` for keys that are not EXTERNAL; `MissingParameter` /
    /// `InvalidParameter` for WrappingAlgorithm and WrappingKeySpec.
    pub fn get_parameters_for_import(
        &self,
        caller: &Caller,
        req: GetParametersForImportRequest,
    ) -> Result<GetParametersForImportResponse, KmsError> {
        let algorithm =
            EncryptionAlgorithm::parse_as("WrappingAlgorithm", &req.wrapping_algorithm)?;
        match req.wrapping_key_spec.as_str() {
            "RSA_2048" => {}
            "" => return Err(KmsError::missing("WrappingKeySpec")),
            other => {
                return Err(KmsError::invalid(
                    "WrappingKeySpec",
                    format!("{other:?} is not supported; use RSA_2048"),
                ))
            }
        }
        let now = self.clock.now();
        let key = self.live_key("KeyId", &req.key_id, now)?;
        self.authorize(caller, Action::GetParametersForImport, Some(&key))?;
        unsupported_origin(&key.record)?;
        // An HSM key's wrapping key lives in the module when it can unwrap there, so the
        // imported material never exists in clear outside it.
        let in_module = match key.record.protection_level {
            ProtectionLevel::Hsm => self.hsm()?.create_wrapping_key(
                key.record.key_spec,
                algorithm,
                &format!("{}/import", key.record.key_id),
            )?,
            ProtectionLevel::Software => None,
        };
        let (wrapping_key, public_key, in_provider) = match in_module {
            Some((handle, public)) => (
                KeyMaterial::new(Zeroizing::new(handle)),
                public.to_spki_der()?,
                true,
            ),
            None => {
                let (private, der) =
                    PrivateKey::generate(self.crypto, KeySpec::Rsa2048, &*self.rng)?;
                (der, private.public_key_der()?, false)
            }
        };
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        self.rng.fill(&mut raw[..])?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let record = ImportToken {
            key_id: key.record.key_id.clone(),
            algorithm,
            wrapping_key,
            in_provider,
            expires: now.plus_secs(IMPORT_TOKEN_TTL_SECS),
        };
        let tk = schema::import_token(&token);
        let mut batch = Batch::new();
        self.stage_put(&mut batch, tk, &record, Precondition::Absent)?;
        self.commit(batch)?;
        Ok(GetParametersForImportResponse {
            request_id: self.request_id(),
            key_id: key.record.key_id.clone(),
            import_token: token,
            public_key,
            token_expire_time: record.expires,
        })
    }

    /// ImportKeyMaterial: unwraps the material with the token's private key and makes the key
    /// usable (PendingImport → Enabled). Everything is checked before anything changes: a
    /// failed import leaves the key and the token exactly as they were.
    ///
    /// Errors: `Unsupported.Origin`; `InvalidImportToken` (unknown, used, or for another
    /// key); `ExpiredImportToken`; `InvalidKeyMaterial` (does not unwrap, wrong length, or
    /// other material than the key had); `Rejected.StateModifiedFailed` (PendingDeletion);
    /// `InvalidParameter` (KeyMaterialExpireUnix in the past).
    pub fn import_key_material(
        &self,
        caller: &Caller,
        req: ImportKeyMaterialRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::required("ImportToken", &req.import_token)?;
        if req.encrypted_key_material.is_empty() {
            return Err(KmsError::missing("EncryptedKeyMaterial"));
        }
        let key_id = self.resolve_key_id("KeyId", &req.key_id)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (record, revision) = self.load_for_update(&key_id, &req.key_id, now)?;
        self.authorize_record(caller, Action::ImportKeyMaterial, &record)?;
        unsupported_origin(&record)?;
        let expire = match req.key_material_expire_unix {
            None | Some(0) => None,
            Some(t) if t <= now.secs() => {
                return Err(KmsError::invalid(
                    "KeyMaterialExpireUnix",
                    format!("{t} is not in the future; use 0 for material that never expires"),
                ))
            }
            Some(t) if t > MAX_EXPIRE_UNIX => {
                return Err(KmsError::invalid(
                    "KeyMaterialExpireUnix",
                    format!("{t} is after 9999-12-31T23:59:59Z"),
                ))
            }
            Some(t) => Some(UnixTime(t)),
        };
        let bad_token = |reason: &str| KmsError::InvalidImportToken {
            reason: reason.to_owned(),
        };
        if req.import_token.len() != 2 * TOKEN_BYTES
            || !req.import_token.bytes().all(|c| c.is_ascii_hexdigit())
        {
            return Err(bad_token("the token is malformed"));
        }
        let tk = schema::import_token(&req.import_token.to_ascii_lowercase());
        let (token, token_entry) = self
            .read::<ImportToken>(&tk)?
            .ok_or_else(|| bad_token("the token is unknown or was already used"))?;
        if token.key_id != key_id {
            return Err(bad_token("the token was issued for another key"));
        }
        if token.expires <= now {
            return Err(KmsError::ExpiredImportToken);
        }
        let (vk, mut version, version_entry) = self.read_primary_version(&record)?;
        let label = material_label(&key_id, &version.version_id);
        let (next, stored) = if token.in_provider {
            // Unwrapped inside the module: the engine sees only a handle and a check value.
            let imported = self.hsm()?.unwrap_import(
                token.wrapping_key.expose(),
                token.algorithm,
                record.key_spec,
                &req.encrypted_key_material,
                &label,
            )?;
            let stored = KeyMaterial::new(Zeroizing::new(imported.handle));
            let checked = check_import_length(record.key_spec, imported.len)
                .and_then(|()| rules::import_material(&record, imported.check_value, expire));
            match checked {
                Ok(next) => (next, stored),
                Err(e) => {
                    self.destroy_handle(Some(&stored));
                    return Err(e);
                }
            }
        } else {
            let material =
                PrivateKey::from_pkcs8(self.crypto, KeySpec::Rsa2048, token.wrapping_key.expose())?
                    .decrypt(token.algorithm, &req.encrypted_key_material)
                    .map_err(|_| KmsError::InvalidKeyMaterial {
                        reason: format!(
                            "EncryptedKeyMaterial does not unwrap with the token's key and {}",
                            token.algorithm
                        ),
                    })?;
            check_import_length(record.key_spec, material.len())?;
            let material = KeyMaterial::new(material);
            let next = rules::import_material(&record, material.fingerprint(), expire)?;
            let stored = match record.protection_level {
                ProtectionLevel::Software => material,
                ProtectionLevel::Hsm => KeyMaterial::new(Zeroizing::new(self.hsm()?.import(
                    record.key_spec,
                    material.expose(),
                    &label,
                )?)),
            };
            (next, stored)
        };
        let previous = version.material.replace(stored.clone());
        let kk = schema::key(&key_id);
        let mut batch = Batch::new();
        batch.delete_if(tk, Precondition::Revision(token_entry.revision));
        self.stage_put(
            &mut batch,
            vk,
            &version,
            Precondition::Revision(version_entry.revision),
        )?;
        self.stage_put(&mut batch, kk, &next, Precondition::Revision(revision))?;
        if let Err(e) = self.commit(batch) {
            if record.protection_level == ProtectionLevel::Hsm {
                self.destroy_handle(Some(&stored));
            }
            return Err(e);
        }
        self.cache_put(next, vec![version])?;
        if record.protection_level == ProtectionLevel::Hsm {
            self.destroy_handle(previous.as_ref());
        }
        if token.in_provider {
            // The token is spent; so is its wrapping key in the module.
            self.destroy_handle(Some(&token.wrapping_key));
        }
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeleteKeyMaterial: the key keeps its metadata but loses its material and becomes
    /// PendingImport (a PendingDeletion key keeps its state). Only the same material can be
    /// imported again.
    ///
    /// Errors: `Unsupported.Origin` for keys that are not EXTERNAL.
    pub fn delete_key_material(
        &self,
        caller: &Caller,
        req: DeleteKeyMaterialRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let key_id = self.resolve_key_id("KeyId", &req.key_id)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (record, revision) = self.load_for_update(&key_id, &req.key_id, now)?;
        self.authorize_record(caller, Action::DeleteKeyMaterial, &record)?;
        unsupported_origin(&record)?;
        self.remove_material_locked(&record, revision)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// Removes an EXTERNAL key's material (write lock held): DeleteKeyMaterial and expiry.
    pub(crate) fn remove_material_locked(
        &self,
        record: &KeyRecord,
        revision: u64,
    ) -> Result<(), KmsError> {
        let next = rules::delete_material(record);
        let (vk, mut version, version_entry) = self.read_primary_version(record)?;
        let previous = version.material.take();
        let kk = schema::key(&record.key_id);
        let mut batch = Batch::new();
        self.stage_put(
            &mut batch,
            vk,
            &version,
            Precondition::Revision(version_entry.revision),
        )?;
        self.stage_put(&mut batch, kk, &next, Precondition::Revision(revision))?;
        self.commit(batch)?;
        self.cache_put(next, vec![version])?;
        if record.protection_level == ProtectionLevel::Hsm {
            self.destroy_handle(previous.as_ref());
        }
        Ok(())
    }

    /// The primary version record of an EXTERNAL key, with its record key and entry, for
    /// changing its material (write lock held).
    fn read_primary_version(
        &self,
        record: &KeyRecord,
    ) -> Result<(Vec<u8>, VersionRecord, crate::storage::Entry), KmsError> {
        let primary = record
            .primary_version_id
            .as_deref()
            .ok_or_else(|| KmsError::internal("an EXTERNAL key without a version"))?;
        let vk = schema::version(&record.key_id, primary);
        let (version, entry) = self
            .read::<VersionRecord>(&vk)?
            .ok_or_else(|| KmsError::internal("the key's primary version record is missing"))?;
        Ok((vk, version, entry))
    }

    /// Asks the key provider to destroy material whose records are gone. Best effort: the
    /// engine's change is already durable, and a handle the engine no longer stores can never
    /// be used again through it.
    pub(crate) fn destroy_handle(&self, handle: Option<&KeyMaterial>) {
        if let (Some(handle), Ok(provider)) = (handle, self.hsm()) {
            let _ = provider.destroy(handle.expose());
        }
    }
}
