//! CreateKey: the parameter rules as one pure function ([`NewKey::check`]), the records a new
//! key starts with ([`NewKey::records`]), and the operation that authorizes, makes the
//! material and commits them.

use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

use crate::api::*;
use crate::engine::{CachedKey, Kms};
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::keys::model::{
    CreatorType, KeyMaterial, KeyRecord, KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel,
    VersionRecord,
};
use crate::keys::protection::no_key_provider;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::tags::tags_to_map;
use crate::time::UnixTime;
use crate::validate;

/// A CreateKey request whose parameters passed every rule that needs no I/O.
#[derive(Debug)]
pub(crate) struct NewKey {
    spec: KeySpec,
    usage: KeyUsage,
    origin: Origin,
    protection: ProtectionLevel,
    description: String,
    tags: BTreeMap<String, String>,
    rotation_interval: Option<i64>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    dkms_instance_id: Option<String>,
    external_key_id: Option<String>,
}

impl NewKey {
    /// Checks CreateKey's parameters against each other: spec and usage, origin and external
    /// key id, protection level, description, tags, rotation, instance id.
    ///
    /// Errors: `InvalidParameter` naming the parameter; `MissingParameter` (ExternalKeyId for
    /// EXTERNAL_KEY_STORE, RotationInterval with automatic rotation); `Rejected.LimitExceeded`
    /// past 20 tags; `Rejected.UnsupportedOperation` for automatic rotation of an asymmetric or
    /// imported key, and for ProtectionLevel HSM without a key provider (`hsm_available`).
    pub(crate) fn check(req: CreateKeyRequest, hsm_available: bool) -> Result<NewKey, KmsError> {
        let spec = req.key_spec.unwrap_or(KeySpec::Aes256);
        let external_key_id = req.external_key_id.filter(|s| !s.is_empty());
        let origin = match (&external_key_id, req.origin) {
            (Some(_), None | Some(Origin::ExternalKeyStore)) => Origin::ExternalKeyStore,
            (Some(_), Some(other)) => {
                return Err(KmsError::invalid(
                    "Origin",
                    format!("an ExternalKeyId needs Origin EXTERNAL_KEY_STORE, not {other}"),
                ))
            }
            (None, Some(Origin::ExternalKeyStore)) => {
                return Err(KmsError::missing("ExternalKeyId"))
            }
            (None, origin) => origin.unwrap_or(Origin::AliyunKms),
        };
        if let Some(id) = &external_key_id {
            crate::crypto::external::validate_external_key_id(id)?;
            if spec != KeySpec::Aes256 {
                return Err(KmsError::invalid(
                    "KeySpec",
                    format!("external keys are Aliyun_AES_256, not {spec}"),
                ));
            }
            if req.protection_level == Some(ProtectionLevel::Hsm) {
                return Err(KmsError::invalid(
                    "ProtectionLevel",
                    "an external key's material is in the external key manager, not an HSM",
                ));
            }
        }
        let protection = req.protection_level.unwrap_or(ProtectionLevel::Software);
        let usage = usage_for(spec, req.key_usage)?;
        if origin == Origin::External && !spec.is_symmetric() {
            return Err(KmsError::invalid(
                "Origin",
                format!("EXTERNAL keys must be symmetric; {spec} is not"),
            ));
        }
        if protection == ProtectionLevel::Hsm && !hsm_available {
            return Err(no_key_provider());
        }
        let description = req.description.unwrap_or_default();
        validate::description("Description", &description)?;
        let tags = tags_to_map("Tags", &req.tags)?;
        if tags.len() > validate::MAX_TAGS {
            return Err(KmsError::LimitExceeded {
                what: format!("a resource may have at most {} tags", validate::MAX_TAGS),
            });
        }
        let interval = req
            .rotation_interval
            .as_deref()
            .map(validate::rotation_interval)
            .transpose()?;
        let rotation_interval = match req.enable_automatic_rotation {
            Some(true) => {
                if !spec.is_symmetric() || origin != Origin::AliyunKms {
                    return Err(KmsError::UnsupportedOperation {
                        reason: format!(
                            "automatic rotation needs a symmetric key with Origin Aliyun_KMS, \
                             not {spec} / {origin}"
                        ),
                    });
                }
                Some(interval.ok_or_else(|| KmsError::missing("RotationInterval"))?)
            }
            _ => None,
        };
        if let Some(id) = &req.dkms_instance_id {
            if id.is_empty() || id.len() > 128 {
                return Err(KmsError::invalid(
                    "DKMSInstanceId",
                    "must have 1 to 128 characters",
                ));
            }
        }
        Ok(NewKey {
            spec,
            usage,
            origin,
            protection,
            description,
            tags,
            rotation_interval,
            policy: req.policy,
            bypass_policy_lockout_safety_check: req.bypass_policy_lockout_safety_check,
            dkms_instance_id: req.dkms_instance_id,
            external_key_id,
        })
    }

    /// Whether the key starts without material (EXTERNAL: imported later; an external key
    /// store's key: never in the engine).
    fn without_material(&self) -> bool {
        self.origin == Origin::External || self.external_key_id.is_some()
    }

    /// The key and version records the key starts with, created by `creator` at `now`.
    pub(crate) fn records(
        self,
        key_id: String,
        version_id: String,
        creator: String,
        now: UnixTime,
        material: Option<KeyMaterial>,
    ) -> (KeyRecord, VersionRecord) {
        let external = self.origin == Origin::External;
        let version = VersionRecord {
            key_id: key_id.clone(),
            version_id: version_id.clone(),
            creation_date: now,
            seq: 0,
            material,
        };
        let record = KeyRecord {
            key_id,
            creation_date: now,
            creator,
            creator_type: CreatorType::User,
            description: self.description,
            key_spec: self.spec,
            key_usage: self.usage,
            origin: self.origin,
            protection_level: self.protection,
            state: if external {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
            delete_date: None,
            primary_version_id: Some(version_id),
            version_count: 1,
            rotation_interval: self.rotation_interval,
            last_rotation_date: (!external).then_some(now),
            next_rotation_date: self.rotation_interval.map(|i| now.plus_secs(i)),
            deletion_protection: None,
            material_expire_time: None,
            material_fingerprint: None,
            has_material: !external,
            dkms_instance_id: self.dkms_instance_id,
            external_key_id: self.external_key_id,
            aliases: Default::default(),
            tags: self.tags,
            policy: self.policy,
        };
        (record, version)
    }
}

/// The KeyUsage of a new key: the one asked for when `spec` allows it, else the spec's first.
///
/// Errors: `InvalidParameter` (KeyUsage) naming the usages the spec allows.
fn usage_for(spec: KeySpec, asked: Option<KeyUsage>) -> Result<KeyUsage, KmsError> {
    let allowed = spec.allowed_usages();
    match asked {
        None => Ok(allowed.first().copied().unwrap_or(KeyUsage::EncryptDecrypt)),
        Some(u) if allowed.contains(&u) => Ok(u),
        Some(u) => {
            let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
            Err(KmsError::invalid(
                "KeyUsage",
                format!("{spec} keys support only {}, not {u}", names.join(" or ")),
            ))
        }
    }
}

impl Kms {
    /// CreateKey: a new customer master key with one primary version: Enabled, or
    /// PendingImport for Origin EXTERNAL (BYOK).
    ///
    /// Errors: `InvalidParameter` (spec/usage/origin mismatch, description, tags, rotation
    /// interval, policy size), `Rejected.UnsupportedOperation` (automatic rotation of an
    /// asymmetric or EXTERNAL key; HSM without a key provider), `Forbidden.NoPermission`.
    pub fn create_key(
        &self,
        caller: &Caller,
        req: CreateKeyRequest,
    ) -> Result<CreateKeyResponse, KmsError> {
        let cached = self.create_key_with(caller, req, None, |_, _| Ok(()))?;
        Ok(CreateKeyResponse {
            request_id: self.request_id(),
            key_metadata: self.metadata(&cached),
        })
    }

    /// CreateKey's work; `extra` may amend the new record and add writes to the same atomic
    /// batch (the default key's alias and marker).
    ///
    /// `held` is the write lock when the caller holds it; otherwise it is taken for the
    /// commit and the cache update only (after the material is made), since the commit
    /// updates shared index records.
    pub(crate) fn create_key_with(
        &self,
        caller: &Caller,
        req: CreateKeyRequest,
        held: Option<&MutexGuard<'_, ()>>,
        extra: impl FnOnce(&mut KeyRecord, &mut Batch) -> Result<(), KmsError>,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let new = NewKey::check(req, self.key_provider.is_some())?;
        self.authorize_account(caller, Action::CreateKey, new.dkms_instance_id.as_deref())?;
        // Looked at only once the caller may create keys.
        if let Some(p) = &new.policy {
            self.authorizer.validate_policy(p)?;
        }
        if let Some(id) = &new.external_key_id {
            // The proxy must know the key before the engine records it.
            self.external_store()?.check_key(id)?;
        }
        let now = self.clock.now();
        let key_id = new_uuid(&*self.rng)?;
        let version_id = new_uuid(&*self.rng)?;
        if let Some(p) = &new.policy {
            self.check_policy_lockout(
                p,
                Action::SetKeyPolicy,
                &self.scope.key_arn(&key_id),
                Some(&caller.account_id),
                new.dkms_instance_id.as_deref(),
                new.bypass_policy_lockout_safety_check,
            )?;
        }
        let protection = new.protection;
        let material = if new.without_material() {
            None
        } else {
            Some(self.generate_material(new.spec, protection, &key_id, &version_id)?)
        };
        let (mut record, version) =
            new.records(key_id, version_id, caller.account_id.clone(), now, material);
        let kk = schema::key(&record.key_id);
        let vk = schema::version(&record.key_id, &version.version_id);
        let mut batch = Batch::new();
        // Held until the cache has the new key: a mutation of it (its id is listed as soon
        // as the commit lands) must not be overwritten in the cache by this older record.
        let _guard = match held {
            Some(_) => None,
            None => Some(self.write_guard()?),
        };
        let written = extra(&mut record, &mut batch).and_then(|()| {
            self.stage_put(&mut batch, kk, &record, Precondition::Absent)?;
            self.stage_put(&mut batch, vk, &version, Precondition::Absent)?;
            self.commit(batch)
        });
        if let Err(e) = written {
            // Nothing refers to the provider's new material: destroy it, not orphan it.
            if protection == ProtectionLevel::Hsm {
                self.destroy_handle(version.material.as_ref());
            }
            return Err(e);
        }
        self.cache_put(record, vec![version])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(req: CreateKeyRequest) -> Result<NewKey, KmsError> {
        NewKey::check(req, false)
    }

    #[test]
    fn a_bare_request_is_an_enabled_aes_256_software_key_without_rotation() {
        let new = check(CreateKeyRequest::default()).unwrap();
        assert_eq!(
            (new.spec, new.usage, new.origin, new.protection),
            (
                KeySpec::Aes256,
                KeyUsage::EncryptDecrypt,
                Origin::AliyunKms,
                ProtectionLevel::Software
            )
        );
        let (record, version) = new.records("k".into(), "v".into(), "1".into(), UnixTime(5), None);
        assert_eq!(record.state, KeyState::Enabled);
        assert_eq!(record.primary_version_id.as_deref(), Some("v"));
        assert_eq!(record.next_rotation_date, None);
        assert_eq!(version.key_id, "k");
    }

    #[test]
    fn usage_must_be_one_the_spec_allows() {
        let e = check(CreateKeyRequest {
            key_spec: Some(KeySpec::EcP256),
            key_usage: Some(KeyUsage::EncryptDecrypt),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
        assert!(e.to_string().contains("KeyUsage"), "{e}");
        let new = check(CreateKeyRequest {
            key_spec: Some(KeySpec::EcP256),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(new.usage, KeyUsage::SignVerify);
    }

    #[test]
    fn external_origin_starts_pending_import_and_refuses_rotation_and_asymmetric_specs() {
        let new = check(CreateKeyRequest {
            origin: Some(Origin::External),
            ..Default::default()
        })
        .unwrap();
        assert!(new.without_material());
        let (record, _) = new.records("k".into(), "v".into(), "1".into(), UnixTime(5), None);
        assert_eq!(record.state, KeyState::PendingImport);
        assert!(!record.has_material);
        let rotating = check(CreateKeyRequest {
            origin: Some(Origin::External),
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("30d".into()),
            ..Default::default()
        });
        assert_eq!(
            rotating.unwrap_err().code(),
            "Rejected.UnsupportedOperation"
        );
        let asymmetric = check(CreateKeyRequest {
            origin: Some(Origin::External),
            key_spec: Some(KeySpec::Rsa2048),
            ..Default::default()
        });
        assert_eq!(asymmetric.unwrap_err().code(), "InvalidParameter");
    }

    #[test]
    fn automatic_rotation_needs_an_interval_and_sets_the_next_date() {
        let missing = check(CreateKeyRequest {
            enable_automatic_rotation: Some(true),
            ..Default::default()
        });
        assert_eq!(missing.unwrap_err().code(), "MissingParameter");
        let new = check(CreateKeyRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("7d".into()),
            ..Default::default()
        })
        .unwrap();
        let (record, _) = new.records("k".into(), "v".into(), "1".into(), UnixTime(5), None);
        assert_eq!(record.next_rotation_date, Some(UnixTime(5 + 7 * 86_400)));
    }
}
