//! Key policies, service keys, and key associations.

use std::collections::HashMap;

use crate::api::*;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::keys::model::{
    AliasRecord, CreatorType, KeyRecord, KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel,
    VersionRecord,
};
use crate::keys::rules::{self, Usage};
use crate::policy::{AccessRequest, Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;
use crate::validate;

/// Key associations are recorded to this granularity, so a busy key costs one map write a
/// minute per service.
const ASSOCIATION_GRANULARITY_SECS: i64 = 60;

pub(crate) fn check_policy_name(name: &str) -> Result<(), KmsError> {
    match name {
        "default" => Ok(()),
        "" => Err(KmsError::missing("PolicyName")),
        other => Err(KmsError::invalid(
            "PolicyName",
            format!("{other:?} is not a policy name; keys have one policy, named default"),
        )),
    }
}

/// The in-memory side of key associations: (key id, service) → last use, not yet persisted.
pub(crate) type PendingAssociations = HashMap<(String, String), UnixTime>;

impl Kms {
    /// GetKeyPolicy: the key's policy document, or the default policy when it has none.
    /// Works in every state.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (PolicyName), `Forbidden.KeyNotFound`.
    pub fn get_key_policy(
        &self,
        caller: &Caller,
        req: GetKeyPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        check_policy_name(&req.policy_name)?;
        let key = self.readable_key(caller, Action::GetKeyPolicy, &req.key_id)?;
        let policy = match &key.record.policy {
            Some(p) => p.clone(),
            None => self.authorizer.default_policy(&AccessRequest {
                caller,
                action: Action::GetKeyPolicy,
                resource: &key.arn,
                resource_account: &self.scope.account_id,
                policy: None,
                creator: Some(&key.record.creator),
                instance_id: key.record.dkms_instance_id.as_deref(),
            }),
        };
        Ok(GetKeyPolicyResponse {
            request_id: self.request_id(),
            policy,
        })
    }

    /// SetKeyPolicy: replaces the key's policy document after the authorizer validated it.
    ///
    /// Errors: `InvalidParameter` (malformed policy, naming the statement and field),
    /// `Rejected.PendingDeletion`, `Rejected.UnsupportedOperation` for service keys.
    pub fn set_key_policy(
        &self,
        caller: &Caller,
        req: SetKeyPolicyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        check_policy_name(&req.policy_name)?;
        validate::required("Policy", &req.policy)?;
        self.authorizer.validate_policy(&req.policy)?;
        self.mutate_key(
            caller,
            Action::SetKeyPolicy,
            "KeyId",
            &req.key_id,
            |r, _| {
                rules::check_usable(r, Usage::MetadataUpdate)?;
                self.check_policy_lockout(
                    &req.policy,
                    Action::SetKeyPolicy,
                    &self.scope.key_arn(&r.key_id),
                    Some(&r.creator),
                    r.dkms_instance_id.as_deref(),
                    req.bypass_policy_lockout_safety_check,
                )?;
                Ok(KeyRecord {
                    policy: Some(req.policy.clone()),
                    ..r.clone()
                })
            },
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// Host API, break-glass: gives a key its default policy back, whatever its current
    /// policy says and whoever is calling (no authorization: only the host that holds the store
    /// and its root key can call it, e.g. `kms reset-policy`). Works in every state but purged.
    ///
    /// Returns the key's id, and whether it had a policy of its own.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `Forbidden.AliasNotFound`.
    pub fn reset_key_policy(&self, key: &str) -> Result<(String, bool), KmsError> {
        let key_id = self.resolve_key_id("KeyId", key)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (record, revision) = self.load_for_update(&key_id, key, now)?;
        if record.policy.is_none() {
            return Ok((key_id, false));
        }
        let next = KeyRecord {
            policy: None,
            ..record
        };
        let mut batch = Batch::new();
        self.stage_put(
            &mut batch,
            schema::key(&key_id),
            &next,
            Precondition::Revision(revision),
        )?;
        self.commit(batch)?;
        self.cache_put(next, Vec::new())?;
        Ok((key_id, true))
    }

    /// Host API: the service key of an integrated service (`alias/acs/<product>`), created on
    /// first call (AES-256, Enabled, CreatorType Service). Users may use it for cryptography
    /// but cannot disable, delete, re-alias or re-policy it.
    ///
    /// Errors: `MissingParameter` for an empty product name, `InvalidParameter` for one that
    /// does not make a valid alias.
    pub fn create_service_key(&self, product: &str) -> Result<KeyMetadata, KmsError> {
        validate::required("Product", product)?;
        let alias = format!("alias/acs/{product}");
        crate::ids::validate_alias_name("Product", &alias)?;
        let _guard = self.write_guard()?;
        if let Some((existing, _)) = self.read::<AliasRecord>(&schema::alias(&alias))? {
            let key = self.load_key(&existing.key_id)?;
            return Ok(self.metadata(&key));
        }
        let now = self.clock.now();
        let key_id = new_uuid(&*self.rng)?;
        let version_id = new_uuid(&*self.rng)?;
        let version = VersionRecord {
            key_id: key_id.clone(),
            version_id: version_id.clone(),
            creation_date: now,
            seq: 0,
            material: Some(self.generate_material(
                KeySpec::Aes256,
                ProtectionLevel::Software,
                &key_id,
                &version_id,
            )?),
        };
        let record = KeyRecord {
            key_id: key_id.clone(),
            creation_date: now,
            creator: self.scope.account_id.clone(),
            creator_type: CreatorType::Service,
            description: format!("Default master key that protects my {product} data"),
            key_spec: KeySpec::Aes256,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AliyunKms,
            protection_level: ProtectionLevel::Software,
            state: KeyState::Enabled,
            delete_date: None,
            primary_version_id: Some(version_id.clone()),
            version_count: 1,
            rotation_interval: None,
            last_rotation_date: Some(now),
            next_rotation_date: None,
            deletion_protection: None,
            material_expire_time: None,
            material_fingerprint: None,
            has_material: true,
            dkms_instance_id: None,
            external_key_id: None,
            aliases: [alias.clone()].into(),
            tags: Default::default(),
            policy: None,
        };
        let kk = schema::key(&key_id);
        let vk = schema::version(&key_id, &version_id);
        let ak = schema::alias(&alias);
        let alias_record = AliasRecord {
            alias_name: alias.clone(),
            key_id: key_id.clone(),
        };
        let mut batch = Batch::new();
        self.stage_put(&mut batch, kk, &record, Precondition::Absent)?;
        self.stage_put(&mut batch, vk, &version, Precondition::Absent)?;
        self.stage_put(&mut batch, ak, &alias_record, Precondition::Absent)?;
        self.commit(batch)?;
        let cached = self.cache_put(record, vec![version])?;
        self.alias_cache_put(&alias, &key_id)?;
        Ok(self.metadata(&cached))
    }

    /// Notes that `caller.via_service` used a key. In memory, to the minute; maintenance
    /// persists it.
    pub(crate) fn note_association(&self, caller: &Caller, key_id: &str, now: UnixTime) {
        let Some(service) = &caller.via_service else {
            return;
        };
        let minute = UnixTime(now.secs() - now.secs().rem_euclid(ASSOCIATION_GRANULARITY_SECS));
        if let Ok(mut pending) = self.associations.lock() {
            pending.insert((key_id.to_owned(), service.clone()), minute);
        }
    }

    /// Writes the associations noted since the last call to storage (maintenance does this).
    pub(crate) fn flush_associations(&self) -> Result<usize, KmsError> {
        let pending = match self.associations.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Err(KmsError::internal("the association lock was poisoned")),
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let _guard = self.write_guard()?;
        let mut batch = Batch::new();
        let mut written = 0;
        for ((key_id, service), last_used) in &pending {
            // A key purged meanwhile keeps no associations.
            if self.storage.get(&schema::key(key_id))?.is_none() {
                continue;
            }
            let rk = schema::association(key_id, service);
            let record = KeyAssociation {
                service: service.clone(),
                last_used: *last_used,
            };
            batch.put(rk.clone(), self.encode(&rk, &record)?);
            written += 1;
        }
        if let Err(e) = self.commit(batch) {
            // Keep what was not written for the next pass.
            if let Ok(mut p) = self.associations.lock() {
                for (k, v) in pending {
                    p.entry(k).or_insert(v);
                }
            }
            return Err(e);
        }
        Ok(written)
    }

    /// The integrated services that used a key and when last (the "key association" of Alibaba's key management guide),
    /// so a user can check before deleting it. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `Forbidden.NoPermission` (needs `kms:DescribeKey`).
    pub fn list_key_associations(
        &self,
        caller: &Caller,
        req: KeyIdRequest,
    ) -> Result<ListKeyAssociationsResponse, KmsError> {
        let key = self.readable_key(caller, Action::DescribeKey, &req.key_id)?;
        let key_id = key.record.key_id.clone();
        let mut by_service: std::collections::BTreeMap<String, UnixTime> = self
            .scan_all::<KeyAssociation>(&schema::associations_of(&key_id))?
            .into_iter()
            .map(|(_, a, _)| (a.service, a.last_used))
            .collect();
        if let Ok(pending) = self.associations.lock() {
            for ((k, service), t) in pending.iter() {
                if *k == key_id {
                    let e = by_service.entry(service.clone()).or_insert(*t);
                    *e = (*e).max(*t);
                }
            }
        }
        Ok(ListKeyAssociationsResponse {
            request_id: self.request_id(),
            key_id,
            associations: by_service
                .into_iter()
                .map(|(service, last_used)| KeyAssociation { service, last_used })
                .collect(),
        })
    }
}
