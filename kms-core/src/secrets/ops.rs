//! Secrets Manager operations.
//!
//! Records: `s/<name>` holds the [`SecretRecord`] (metadata, versions, stages); each version's
//! value is `w/<name>/<version id>`, envelope-encrypted: a fresh data key made under the
//! secret's CMK (so a disabled or deleted CMK makes the secret unreadable, with the CMK's
//! error) encrypts the value with AES-256-GCM. Metadata is protected by the storage seal only.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::rules::{self, SecretRecord, ACS_CURRENT, GENERIC};
use crate::api::*;
use crate::crypto::{ct_eq, AeadAlgorithm, NONCE_LEN};
use crate::engine::mutate::Record;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::keys::rules as key_rules;
use crate::policy::{AccessRequest, Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::tags::Tagged;
use crate::time::UnixTime;
use crate::validate;

/// Rotates the value of a secret type: given the current value, makes the next one (e.g. by
/// changing a database password). Registered on the builder per SecretType.
pub trait SecretRotationHandler: Send + Sync {
    /// The next value of the secret.
    ///
    /// Errors: any `KmsError`; the rotation is then not applied.
    fn rotate(&self, secret_name: &str, current: &SecretData) -> Result<SecretData, KmsError>;
}

/// One version's value, envelope-encrypted.
#[derive(Serialize, Deserialize)]
pub(crate) struct SecretValueRecord {
    data_type: String,
    /// The data key, as a blob of the secret's CMK.
    #[serde(with = "crate::wire::base64_bytes")]
    data_key_blob: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    /// AES-256-GCM of the value under the data key.
    #[serde(with = "crate::wire::base64_bytes")]
    ciphertext: Vec<u8>,
    /// SHA-256 of the value, to tell an idempotent PutSecretValue from a conflicting one.
    digest: [u8; 32],
}

/// A version about to be added.
struct NewVersion<'a> {
    version_id: &'a str,
    data_type: &'a str,
    data: &'a SecretData,
    stages: &'a [String],
}

fn value_aad(name: &str, version_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + version_id.len() + 8);
    aad.extend_from_slice(&u32::try_from(name.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(version_id.as_bytes());
    aad
}

fn secret_context(name: &str, version_id: &str) -> EncryptionContext {
    [
        ("SecretName".to_owned(), name.to_owned()),
        ("VersionId".to_owned(), version_id.to_owned()),
    ]
    .into()
}

fn digest(data: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data.as_bytes()).into()
}

fn not_found(name: &str) -> KmsError {
    KmsError::ResourceNotFound {
        resource: name.to_owned(),
    }
}

pub(crate) fn in_delete_window(rec: &SecretRecord) -> Result<(), KmsError> {
    if rec.planned_delete_time.is_some() {
        return Err(KmsError::ResourceInDeleteWindow {
            resource: rec.name.clone(),
        });
    }
    Ok(())
}

fn rotation_status(rec: &SecretRecord) -> String {
    if rec.rotation_interval.is_some() {
        "Enabled".into()
    } else {
        "Disabled".into()
    }
}

fn tag_list(tags: &BTreeMap<String, String>) -> TagList {
    TagList {
        tag: tags
            .iter()
            .map(|(k, v)| Tag {
                tag_key: k.clone(),
                tag_value: v.clone(),
            })
            .collect(),
    }
}

impl Kms {
    pub(crate) fn secret_arn(&self, name: &str) -> String {
        self.scope.secret_arn(name)
    }

    pub(crate) fn authorize_secret(
        &self,
        caller: &Caller,
        action: Action,
        rec: &SecretRecord,
    ) -> Result<(), KmsError> {
        let arn = self.secret_arn(&rec.name);
        self.decide(&AccessRequest {
            caller,
            action,
            resource: &arn,
            resource_account: &self.scope.account_id,
            policy: rec.policy.as_deref(),
            creator: Some(&self.scope.account_id),
            instance_id: rec.dkms_instance_id.as_deref(),
        })
    }

    /// The answer naming the secret an operation changed.
    fn secret_name_response(&self, rec: SecretRecord) -> SecretNameResponse {
        SecretNameResponse {
            request_id: self.request_id(),
            secret_name: rec.name,
        }
    }

    /// The live secret and its revision; a secret past its recovery window is gone.
    pub(crate) fn load_secret(
        &self,
        name: &str,
        now: UnixTime,
    ) -> Result<(SecretRecord, u64), KmsError> {
        rules::validate_name(name)?;
        match self.read::<SecretRecord>(&schema::secret(name))? {
            Some((rec, _)) if rec.is_purged(now) => Err(not_found(name)),
            Some((rec, entry)) => Ok((rec, entry.revision)),
            None => Err(not_found(name)),
        }
    }

    /// Encrypts a value under the secret's CMK (envelope), as `caller`.
    fn seal_secret_value(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        version_id: &str,
        data_type: &str,
        data: &SecretData,
    ) -> Result<SecretValueRecord, KmsError> {
        let (data_key, sealed) = self.make_data_key(
            caller,
            Action::GenerateDataKey,
            &rec.encryption_key_id,
            32,
            &secret_context(&rec.name, version_id),
        )?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce)?;
        let mut ciphertext = data.expose().as_bytes().to_vec();
        self.crypto
            .seal(
                AeadAlgorithm::Aes256Gcm,
                &data_key,
                &nonce,
                &value_aad(&rec.name, version_id),
                &mut ciphertext,
                0,
            )
            .map_err(|_| KmsError::internal("encrypting a secret value failed"))?;
        Ok(SecretValueRecord {
            data_type: data_type.to_owned(),
            data_key_blob: sealed.blob,
            nonce,
            ciphertext,
            digest: digest(data.expose()),
        })
    }

    /// Decrypts a version's value, using the secret's CMK as `caller`.
    fn open_secret_value(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        version_id: &str,
    ) -> Result<(SecretData, String), KmsError> {
        let (value, _) = self
            .read::<SecretValueRecord>(&schema::secret_value(&rec.name, version_id))?
            .ok_or_else(|| KmsError::internal("a secret version's value record is missing"))?;
        let opened = self.open_blob(
            caller,
            Action::Decrypt,
            &value.data_key_blob,
            &secret_context(&rec.name, version_id),
        )?;
        let data_key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&*opened.plaintext)
                .map_err(|_| KmsError::internal("a secret's data key is malformed"))?,
        );
        let plain = self
            .crypto
            .open(
                AeadAlgorithm::Aes256Gcm,
                &data_key,
                &value.nonce,
                &value_aad(&rec.name, version_id),
                &value.ciphertext,
            )
            .map_err(|_| KmsError::internal("a secret value failed authentication"))?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| KmsError::internal("a secret value is not UTF-8"))?;
        Ok((SecretData::new(text), value.data_type))
    }

    fn rotation_handler(
        &self,
        secret_type: &str,
    ) -> Result<Arc<dyn SecretRotationHandler>, KmsError> {
        self.rotation_handlers
            .get(secret_type)
            .cloned()
            .ok_or_else(|| KmsError::UnsupportedOperation {
                reason: format!("no rotation handler is registered for SecretType {secret_type}"),
            })
    }

    /// The CMK a secret uses when CreateSecret names none: the engine's default key when the
    /// owner enabled it, else the service key `alias/acs/secretsmanager`.
    fn default_secret_key(&self) -> Result<String, KmsError> {
        match self.default_key_id()? {
            Some(id) => Ok(id),
            None => Ok(self.create_service_key("secretsmanager")?.key_id),
        }
    }

    /// CreateSecret: a secret with its first version (stage ACSCurrent).
    ///
    /// Errors: `InvalidParameter`/`MissingParameter` (name, data, type, version id, rotation),
    /// `Rejected.ResourceExist` (the name exists, also while pending deletion),
    /// `Rejected.UnsupportedOperation` (a SecretType without a rotation handler, or an
    /// asymmetric EncryptionKeyId), the CMK's state errors.
    pub fn create_secret(
        &self,
        caller: &Caller,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, KmsError> {
        rules::validate_name(&req.secret_name)?;
        let data_type =
            rules::validate_data(req.secret_data_type.as_deref(), req.secret_data.expose())?;
        rules::validate_version_id("VersionId", &req.version_id)?;
        let description = req.description.unwrap_or_default();
        validate::description("Description", &description)?;
        let secret_type = req.secret_type.unwrap_or_else(|| GENERIC.to_owned());
        if secret_type != GENERIC {
            self.rotation_handler(&secret_type)?;
        }
        let interval = req
            .rotation_interval
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(validate::rotation_interval)
            .transpose()?;
        let rotation_interval = match req.enable_automatic_rotation {
            Some(true) => {
                self.rotation_handler(&secret_type)?;
                Some(interval.ok_or_else(|| KmsError::missing("RotationInterval"))?)
            }
            _ => None,
        };
        let mut tags = BTreeMap::new();
        for t in &req.tags {
            tags.insert(t.tag_key.clone(), t.tag_value.clone());
        }
        key_rules::merge_tags(&mut BTreeMap::new(), &tags)?;
        let instance_id = rules::validate_instance_id(req.dkms_instance_id.as_deref())?;
        let extended_config = rules::validate_extended_config(req.extended_config.as_deref())?;
        // Authorized before the policy is looked at: a caller who may not create secrets
        // learns nothing from how a policy would be judged.
        self.authorize_account(caller, Action::CreateSecret, instance_id.as_deref())?;
        if let Some(p) = &req.policy {
            self.authorizer.validate_policy(p)?;
            self.check_policy_lockout(
                p,
                Action::SetSecretPolicy,
                &self.secret_arn(&req.secret_name),
                Some(&self.scope.account_id),
                instance_id.as_deref(),
                req.bypass_policy_lockout_safety_check,
            )?;
        }
        let key_id = match req.encryption_key_id.as_deref().filter(|s| !s.is_empty()) {
            Some(k) => self.resolve_key_id("EncryptionKeyId", k)?,
            None => self.default_secret_key()?,
        };
        let key = self.load_key(&key_id)?;
        if key.record.key_spec.aead().is_none() {
            return Err(KmsError::UnsupportedOperation {
                reason: format!("EncryptionKeyId {key_id} must be a symmetric AES key"),
            });
        }

        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let sk = schema::secret(&req.secret_name);
        let mut batch = Batch::new();
        match self.read::<SecretRecord>(&sk)? {
            Some((old, entry)) if old.is_purged(now) => {
                // Past its recovery window: the old secret is gone; clear it in this batch.
                for v in &old.versions {
                    batch.delete(schema::secret_value(&old.name, &v.version_id));
                }
                batch.delete_if(sk.clone(), Precondition::Revision(entry.revision));
            }
            Some(_) => {
                return Err(KmsError::ResourceExist {
                    resource: req.secret_name,
                })
            }
            None => {}
        }
        let empty = SecretRecord {
            name: req.secret_name.clone(),
            secret_type,
            description,
            encryption_key_id: key_id,
            created: now,
            updated: now,
            tags,
            rotation_interval,
            last_rotation_date: None,
            next_rotation_date: rotation_interval.map(|i| now.plus_secs(i)),
            planned_delete_time: None,
            policy: req.policy,
            versions: Vec::new(),
            stages: BTreeMap::new(),
            version_seq: 0,
            dkms_instance_id: instance_id,
            extended_config,
        };
        let (rec, _) = rules::put_version(&empty, &req.version_id, now, &[ACS_CURRENT.to_owned()])?;
        let value =
            self.seal_secret_value(caller, &rec, &req.version_id, &data_type, &req.secret_data)?;
        let vk = schema::secret_value(&rec.name, &req.version_id);
        batch.put(vk.clone(), self.encode(&vk, &value)?);
        batch.put(sk.clone(), self.encode(&sk, &rec)?);
        self.commit(batch)?;
        Ok(CreateSecretResponse {
            request_id: self.request_id(),
            arn: self.secret_arn(&rec.name),
            secret_name: rec.name.clone(),
            version_id: req.version_id,
            secret_type: rec.secret_type.clone(),
            automatic_rotation: rotation_status(&rec),
            rotation_interval: rec.rotation_interval.map(|s| format!("{s}s")),
            next_rotation_date: rec.next_rotation_date,
            dkms_instance_id: rec.dkms_instance_id.clone(),
            extended_config: rec.extended_config.clone(),
        })
    }

    /// GetSecretValue: the value of a version, by VersionId or VersionStage (default
    /// ACSCurrent).
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Rejected.ResourceInDeleteWindow`,
    /// `InvalidParameter` (no such version or stage), the CMK's errors (e.g.
    /// `Rejected.Disabled`).
    pub fn get_secret_value(
        &self,
        caller: &Caller,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, KmsError> {
        self.get_secret_value_as(caller, caller, req)
    }

    /// GetSecretValue authorized for `caller`, the secret's encryption key used as
    /// `key_caller` (the instance API's applications read secrets whose keys the service
    /// uses for them).
    pub(crate) fn get_secret_value_as(
        &self,
        caller: &Caller,
        key_caller: &Caller,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, KmsError> {
        let (rec, _) = self.load_secret(&req.secret_name, self.clock.now())?;
        self.authorize_secret(caller, Action::GetSecretValue, &rec)?;
        in_delete_window(&rec)?;
        let version_id = match (
            req.version_id.as_deref().filter(|s| !s.is_empty()),
            req.version_stage.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(v), stage) => {
                if !rec.has_version(v) {
                    return Err(KmsError::invalid(
                        "VersionId",
                        format!("secret {} has no version {v}", rec.name),
                    ));
                }
                if let Some(stage) = stage {
                    if rec.stages.get(stage).map(String::as_str) != Some(v) {
                        return Err(KmsError::invalid(
                            "VersionStage",
                            format!("version {v} does not carry the stage {stage}"),
                        ));
                    }
                }
                v.to_owned()
            }
            (None, stage) => {
                let stage = stage.unwrap_or(ACS_CURRENT);
                rec.stages.get(stage).cloned().ok_or_else(|| {
                    KmsError::invalid(
                        "VersionStage",
                        format!(
                            "no version of secret {} carries the stage {stage}",
                            rec.name
                        ),
                    )
                })?
            }
        };
        let (data, data_type) = self.open_secret_value(key_caller, &rec, &version_id)?;
        // Rotation settings and ExtendedConfig only when asked for, as Alibaba answers.
        let extended = req.fetch_extended_config == Some(true);
        let created = rec
            .versions
            .iter()
            .find(|v| v.version_id == version_id)
            .map(|v| v.created)
            .unwrap_or(rec.created);
        Ok(GetSecretValueResponse {
            request_id: self.request_id(),
            secret_name: rec.name.clone(),
            secret_data: data,
            secret_data_type: data_type,
            version_stages: VersionStageList {
                version_stage: rec.stages_of(&version_id),
            },
            version_id,
            create_time: created,
            secret_type: rec.secret_type.clone(),
            automatic_rotation: extended.then(|| rotation_status(&rec)),
            rotation_interval: rec
                .rotation_interval
                .filter(|_| extended)
                .map(|s| format!("{s}s")),
            last_rotation_date: rec.last_rotation_date.filter(|_| extended),
            next_rotation_date: rec.next_rotation_date.filter(|_| extended),
            extended_config: rec.extended_config.clone().filter(|_| extended),
        })
    }

    /// Adds a version (write lock held, checks done), lets `adjust` amend the record, and
    /// commits both in one batch; returns the new record.
    fn put_value_locked(
        &self,
        caller: &Caller,
        (rec, revision): (&SecretRecord, u64),
        version: NewVersion<'_>,
        now: UnixTime,
        adjust: impl FnOnce(&mut SecretRecord),
    ) -> Result<SecretRecord, KmsError> {
        let (mut next, dropped) = rules::put_version(rec, version.version_id, now, version.stages)?;
        adjust(&mut next);
        let value = self.seal_secret_value(
            caller,
            &next,
            version.version_id,
            version.data_type,
            version.data,
        )?;
        let sk = schema::secret(&rec.name);
        let vk = schema::secret_value(&rec.name, version.version_id);
        let mut batch = Batch::new();
        self.stage_put(&mut batch, vk, &value, Precondition::Absent)?;
        for old in &dropped {
            batch.delete(schema::secret_value(&rec.name, old));
        }
        self.stage_put(&mut batch, sk, &next, Precondition::Revision(revision))?;
        self.commit(batch)?;
        Ok(next)
    }

    /// PutSecretValue: a new version; ACSCurrent (the default stage) moves to it and
    /// ACSPrevious to the old current. The same VersionId with the same data is a no-op.
    ///
    /// Errors: `Rejected.ResourceExist` (the VersionId exists with other data),
    /// `Rejected.ResourceInDeleteWindow`, `Rejected.LimitExceeded`, validation errors.
    pub fn put_secret_value(
        &self,
        caller: &Caller,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, KmsError> {
        rules::validate_version_id("VersionId", &req.version_id)?;
        let data_type =
            rules::validate_data(req.secret_data_type.as_deref(), req.secret_data.expose())?;
        let stages = if req.version_stages.is_empty() {
            vec![ACS_CURRENT.to_owned()]
        } else {
            req.version_stages.clone()
        };
        for s in &stages {
            rules::validate_stage("VersionStages", s)?;
        }
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (rec, revision) = self.load_secret(&req.secret_name, now)?;
        self.authorize_secret(caller, Action::PutSecretValue, &rec)?;
        in_delete_window(&rec)?;
        if rec.has_version(&req.version_id) {
            let (value, _) = self
                .read::<SecretValueRecord>(&schema::secret_value(&rec.name, &req.version_id))?
                .ok_or_else(|| KmsError::internal("a secret version's value record is missing"))?;
            if ct_eq(&value.digest, &digest(req.secret_data.expose())) {
                return Ok(PutSecretValueResponse {
                    request_id: self.request_id(),
                    secret_name: rec.name.clone(),
                    version_stages: VersionStageList {
                        version_stage: rec.stages_of(&req.version_id),
                    },
                    version_id: req.version_id,
                });
            }
            return Err(KmsError::ResourceExist {
                resource: format!("version {} of secret {}", req.version_id, rec.name),
            });
        }
        let next = self.put_value_locked(
            caller,
            (&rec, revision),
            NewVersion {
                version_id: &req.version_id,
                data_type: &data_type,
                data: &req.secret_data,
                stages: &stages,
            },
            now,
            |_| {},
        )?;
        Ok(PutSecretValueResponse {
            request_id: self.request_id(),
            secret_name: next.name.clone(),
            version_stages: VersionStageList {
                version_stage: next.stages_of(&req.version_id),
            },
            version_id: req.version_id,
        })
    }

    /// Applies a pure change to a secret's record under the write lock.
    pub(crate) fn mutate_secret(
        &self,
        caller: &Caller,
        action: Action,
        name: &str,
        allow_in_delete_window: bool,
        apply: impl Fn(&SecretRecord, UnixTime) -> Result<SecretRecord, KmsError>,
    ) -> Result<SecretRecord, KmsError> {
        self.mutate(
            |now| {
                let (rec, revision) = self.load_secret(name, now)?;
                self.authorize_secret(caller, action, &rec)?;
                if !allow_in_delete_window {
                    in_delete_window(&rec)?;
                }
                Ok((rec, revision))
            },
            apply,
            Ok,
        )
    }

    /// UpdateSecretVersionStage: moves a stage to MoveToVersion or removes it from
    /// RemoveFromVersion; ACSCurrent and ACSPrevious can only be moved.
    ///
    /// Errors: those of the stage rules (`InvalidParameter`, `Forbidden.ResourceNotFound` for an
    /// unknown version), `Rejected.ResourceInDeleteWindow`.
    pub fn update_secret_version_stage(
        &self,
        caller: &Caller,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<SecretNameResponse, KmsError> {
        let rec = self.mutate_secret(
            caller,
            Action::UpdateSecretVersionStage,
            &req.secret_name,
            false,
            |r, now| {
                rules::move_stage(
                    r,
                    &req.version_stage,
                    req.remove_from_version.as_deref().filter(|s| !s.is_empty()),
                    req.move_to_version.as_deref().filter(|s| !s.is_empty()),
                    now,
                )
            },
        )?;
        Ok(self.secret_name_response(rec))
    }

    /// ListSecretVersionIds: newest first; versions without stages only with
    /// IncludeDeprecated.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `InvalidParameter` (paging).
    pub fn list_secret_version_ids(
        &self,
        caller: &Caller,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 20)?;
        let (rec, _) = self.load_secret(&req.secret_name, self.clock.now())?;
        self.authorize_secret(caller, Action::ListSecretVersionIds, &rec)?;
        let include = req.include_deprecated.unwrap_or(false);
        let entries: Vec<SecretVersionEntry> = rec
            .versions
            .iter()
            .rev()
            .map(|v| SecretVersionEntry {
                version_id: v.version_id.clone(),
                version_stages: VersionStageList {
                    version_stage: rec.stages_of(&v.version_id),
                },
                create_time: v.created,
            })
            .filter(|e| include || !e.version_stages.version_stage.is_empty())
            .collect();
        let paged = page.take(entries);
        Ok(ListSecretVersionIdsResponse {
            request_id: self.request_id(),
            secret_name: rec.name.clone(),
            version_ids: SecretVersionList {
                version_id: paged.items,
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    fn describe(&self, rec: &SecretRecord, fetch_tags: bool) -> DescribeSecretResponse {
        DescribeSecretResponse {
            request_id: self.request_id(),
            arn: self.secret_arn(&rec.name),
            secret_name: rec.name.clone(),
            encryption_key_id: rec.encryption_key_id.clone(),
            description: rec.description.clone(),
            create_time: rec.created,
            update_time: rec.updated,
            planned_delete_time: rec.planned_delete_time,
            automatic_rotation: rotation_status(rec),
            rotation_interval: rec.rotation_interval.map(|s| format!("{s}s")),
            last_rotation_date: rec.last_rotation_date,
            next_rotation_date: rec.next_rotation_date,
            secret_type: rec.secret_type.clone(),
            dkms_instance_id: rec.dkms_instance_id.clone(),
            extended_config: rec.extended_config.clone(),
            tags: fetch_tags.then(|| tag_list(&rec.tags)),
        }
    }

    /// DescribeSecret: metadata (works while pending deletion).
    ///
    /// Errors: `Forbidden.ResourceNotFound`.
    pub fn describe_secret(
        &self,
        caller: &Caller,
        req: DescribeSecretRequest,
    ) -> Result<DescribeSecretResponse, KmsError> {
        let (rec, _) = self.load_secret(&req.secret_name, self.clock.now())?;
        self.authorize_secret(caller, Action::DescribeSecret, &rec)?;
        Ok(self.describe(&rec, req.fetch_tags.unwrap_or(false)))
    }

    /// UpdateSecret: changes the description.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, `Rejected.ResourceInDeleteWindow`.
    pub fn update_secret(
        &self,
        caller: &Caller,
        req: UpdateSecretRequest,
    ) -> Result<SecretNameResponse, KmsError> {
        let description = req.description.unwrap_or_default();
        validate::description("Description", &description)?;
        let rec = self.mutate_secret(
            caller,
            Action::UpdateSecret,
            &req.secret_name,
            false,
            |r, now| {
                Ok(SecretRecord {
                    description: description.clone(),
                    updated: now,
                    ..r.clone()
                })
            },
        )?;
        Ok(self.secret_name_response(rec))
    }

    /// ListSecrets: the account's secrets in creation order, with Filters on SecretName, Description
    /// (substring), TagKey and TagValue (exact); AND across filters, OR across values.
    ///
    /// Errors: `InvalidParameter` (paging, filters).
    pub fn list_secrets(
        &self,
        caller: &Caller,
        req: ListSecretsRequest,
    ) -> Result<ListSecretsResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 10)?;
        for f in &req.filters {
            if !matches!(
                f.key.as_str(),
                "SecretName" | "Description" | "TagKey" | "TagValue"
            ) {
                return Err(KmsError::invalid(
                    "Filters",
                    format!(
                        "{:?} is not a filter key; use SecretName, Description, TagKey or TagValue",
                        f.key
                    ),
                ));
            }
            if f.values.is_empty() {
                return Err(KmsError::invalid(
                    "Filters",
                    format!("the filter on {} has no Values", f.key),
                ));
            }
        }
        self.authorize_account(caller, Action::ListSecrets, None)?;
        let now = self.clock.now();
        let matches = |r: &SecretRecord| {
            req.filters.iter().all(|f| {
                f.values.iter().any(|v| match f.key.as_str() {
                    "SecretName" => r.name.contains(v.as_str()),
                    "Description" => r.description.contains(v.as_str()),
                    "TagKey" => r.tags.contains_key(v),
                    _ => r.tags.values().any(|t| t == v),
                })
            })
        };
        let fetch_tags = req.fetch_tags.unwrap_or(false);
        let entry = |r: SecretRecord| SecretListEntry {
            tags: fetch_tags.then(|| tag_list(&r.tags)),
            secret_name: r.name,
            create_time: r.created,
            update_time: r.updated,
            planned_delete_time: r.planned_delete_time,
            secret_type: r.secret_type,
        };
        let paged = if req.filters.is_empty() {
            self.secret_index_page(now, page)?.map(entry)
        } else {
            // Substring filters match no index: these lists read every secret (in the
            // index's order, as unfiltered lists show them).
            let all = validate::Page {
                number: 1,
                size: usize::MAX,
            };
            let found: Vec<SecretRecord> = self
                .secret_index_page(now, all)?
                .items
                .into_iter()
                .filter(|r| matches(r))
                .collect();
            page.take(found).map(entry)
        };
        Ok(ListSecretsResponse {
            request_id: self.request_id(),
            secret_list: SecretList {
                secret: paged.items,
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    /// One page of the secrets from the index: O(page), reading only the page's records.
    /// A record found failing to open is hidden and the page read again, so that the page
    /// and TotalCount agree.
    fn secret_index_page(
        &self,
        now: UnixTime,
        page: validate::Page,
    ) -> Result<validate::Paged<SecretRecord>, KmsError> {
        let gone = self.overdue_purges(now, schema::SECRET)?;
        self.checked_page(
            page,
            || self.single_selection(crate::engine::index::SECRETS, schema::SECRET, &gone),
            |e| {
                Ok(self
                    .read::<SecretRecord>(&schema::secret(&e.id))?
                    .map(|(r, _)| r)
                    .filter(|r| !r.is_purged(now)))
            },
        )
    }

    /// DeleteSecret: pending deletion for RecoveryWindowInDays (7 to 30, default 30), or
    /// deleted at once with ForceDeleteWithoutRecovery.
    ///
    /// Errors: `InvalidParameter` (window, or a window together with Force),
    /// `Rejected.ResourceInDeleteWindow` (already pending, without Force).
    pub fn delete_secret(
        &self,
        caller: &Caller,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, KmsError> {
        let force = req.force_delete_without_recovery.unwrap_or(false);
        let days = match (force, req.recovery_window_in_days) {
            (true, Some(_)) => {
                return Err(KmsError::invalid(
                    "RecoveryWindowInDays",
                    "cannot be given with ForceDeleteWithoutRecovery",
                ))
            }
            (true, None) => 0,
            (false, None) => 30,
            (false, Some(d)) if rules::RECOVERY_WINDOW_DAYS.contains(&d) => d,
            (false, Some(d)) => {
                return Err(KmsError::invalid(
                    "RecoveryWindowInDays",
                    format!("{d} is outside 7 to 30"),
                ))
            }
        };
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (rec, revision) = self.load_secret(&req.secret_name, now)?;
        self.authorize_secret(caller, Action::DeleteSecret, &rec)?;
        let sk = schema::secret(&rec.name);
        let mut batch = Batch::new();
        if force {
            for v in &rec.versions {
                batch.delete(schema::secret_value(&rec.name, &v.version_id));
            }
            batch.delete_if(sk, Precondition::Revision(revision));
            self.commit(batch)?;
            return Ok(DeleteSecretResponse {
                request_id: self.request_id(),
                secret_name: rec.name,
                planned_delete_time: now,
            });
        }
        in_delete_window(&rec)?;
        let planned = now.plus_secs(days * crate::time::DAY);
        let next = SecretRecord {
            planned_delete_time: Some(planned),
            updated: now,
            ..rec.clone()
        };
        self.stage_put(&mut batch, sk, &next, Precondition::Revision(revision))?;
        self.commit(batch)?;
        Ok(DeleteSecretResponse {
            request_id: self.request_id(),
            secret_name: rec.name,
            planned_delete_time: planned,
        })
    }

    /// RestoreSecret: cancels a pending deletion.
    ///
    /// Errors: `Rejected.ResourceInUse` when the secret is not pending deletion.
    pub fn restore_secret(
        &self,
        caller: &Caller,
        req: SecretNameRequest,
    ) -> Result<SecretNameResponse, KmsError> {
        let rec = self.mutate_secret(
            caller,
            Action::RestoreSecret,
            &req.secret_name,
            true,
            |r, now| {
                if r.planned_delete_time.is_none() {
                    return Err(KmsError::ResourceInUse {
                        resource: r.name.clone(),
                        reason: "the secret is not pending deletion".into(),
                    });
                }
                Ok(SecretRecord {
                    planned_delete_time: None,
                    updated: now,
                    ..r.clone()
                })
            },
        )?;
        Ok(self.secret_name_response(rec))
    }

    /// RotateSecret: asks the SecretType's rotation handler for the next value and stores it
    /// as a new ACSCurrent version.
    ///
    /// Errors: `Rejected.UnsupportedOperation` (no handler for the type), the errors of
    /// PutSecretValue and of the handler.
    pub fn rotate_secret(
        &self,
        caller: &Caller,
        req: RotateSecretRequest,
    ) -> Result<RotateSecretResponse, KmsError> {
        rules::validate_version_id("VersionId", &req.version_id)?;
        self.rotate_secret_as(caller, &req.secret_name, &req.version_id, None)?;
        Ok(RotateSecretResponse {
            request_id: self.request_id(),
            arn: self.secret_arn(&req.secret_name),
            version_id: req.version_id,
        })
    }

    /// Rotates a secret now, or, for maintenance, at `scheduled` and only if it is still due
    /// then (it may have been rotated or changed since the scan). False when not due.
    fn rotate_secret_as(
        &self,
        caller: &Caller,
        name: &str,
        version_id: &str,
        scheduled: Option<UnixTime>,
    ) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let now = scheduled.unwrap_or_else(|| self.clock.now());
        let (rec, revision) = self.load_secret(name, now)?;
        if scheduled.is_some()
            && !(rec.planned_delete_time.is_none()
                && rec.next_rotation_date.is_some_and(|t| t <= now))
        {
            return Ok(false);
        }
        self.authorize_secret(caller, Action::RotateSecret, &rec)?;
        in_delete_window(&rec)?;
        let handler = self.rotation_handler(&rec.secret_type)?;
        let current = rec
            .stages
            .get(ACS_CURRENT)
            .cloned()
            .ok_or_else(|| KmsError::internal("a secret without ACSCurrent"))?;
        let (value, data_type) = self.open_secret_value(caller, &rec, &current)?;
        let next_value = handler.rotate(&rec.name, &value)?;
        rules::validate_data(Some(&data_type), next_value.expose())?;
        self.put_value_locked(
            caller,
            (&rec, revision),
            NewVersion {
                version_id,
                data_type: &data_type,
                data: &next_value,
                stages: &[ACS_CURRENT.to_owned()],
            },
            now,
            |next| {
                next.last_rotation_date = Some(now);
                next.next_rotation_date = next.rotation_interval.map(|i| now.plus_secs(i));
            },
        )?;
        Ok(true)
    }

    /// UpdateSecretRotationPolicy: turns automatic rotation on (with an interval of 7 to
    /// 365 days) or off, for secret types with a rotation handler.
    ///
    /// Errors: `Rejected.UnsupportedOperation` (no handler), `MissingParameter`,
    /// `InvalidParameter` (RotationInterval).
    pub fn update_secret_rotation_policy(
        &self,
        caller: &Caller,
        req: UpdateSecretRotationPolicyRequest,
    ) -> Result<SecretNameResponse, KmsError> {
        let (enable, interval) = validate::rotation_policy(
            req.enable_automatic_rotation,
            req.rotation_interval.as_deref(),
        )?;
        let rec = self.mutate_secret(
            caller,
            Action::UpdateSecretRotationPolicy,
            &req.secret_name,
            false,
            |r, now| {
                self.rotation_handler(&r.secret_type)?;
                if !enable {
                    return Ok(SecretRecord {
                        rotation_interval: None,
                        next_rotation_date: None,
                        updated: now,
                        ..r.clone()
                    });
                }
                let interval = interval
                    .or(r.rotation_interval)
                    .ok_or_else(|| KmsError::missing("RotationInterval"))?;
                let base = r.last_rotation_date.unwrap_or(r.created);
                Ok(SecretRecord {
                    rotation_interval: Some(interval),
                    next_rotation_date: Some(base.plus_secs(interval).max(now)),
                    updated: now,
                    ..r.clone()
                })
            },
        )?;
        Ok(self.secret_name_response(rec))
    }

    /// GetRandomPassword: from the OS random source, uniform over the allowed characters.
    ///
    /// Errors: `InvalidParameter` (PasswordLength 8 to 128; exclusions leaving nothing).
    pub fn get_random_password(
        &self,
        caller: &Caller,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, KmsError> {
        self.authorize_account(caller, Action::GetRandomPassword, None)?;
        let password = rules::random_password(
            &rules::PasswordRules {
                length: req.password_length,
                exclude: req.exclude_characters.as_deref().unwrap_or_default(),
                exclude_lowercase: req.exclude_lowercase.unwrap_or(false),
                exclude_uppercase: req.exclude_uppercase.unwrap_or(false),
                exclude_numbers: req.exclude_numbers.unwrap_or(false),
                exclude_punctuation: req.exclude_punctuation.unwrap_or(false),
                require_each_included_type: req.require_each_included_type.unwrap_or(true),
            },
            &*self.rng,
        )?;
        Ok(GetRandomPasswordResponse {
            request_id: self.request_id(),
            random_password: SecretData::new(password),
        })
    }

    /// GetSecretPolicy: the secret's policy, or the default policy.
    ///
    /// Errors: `Forbidden.ResourceNotFound`, PolicyName errors.
    pub fn get_secret_policy(
        &self,
        caller: &Caller,
        req: GetSecretPolicyRequest,
    ) -> Result<GetKeyPolicyResponse, KmsError> {
        crate::policy::ops::check_policy_name(&req.policy_name)?;
        let (rec, _) = self.load_secret(&req.secret_name, self.clock.now())?;
        self.authorize_secret(caller, Action::GetSecretPolicy, &rec)?;
        let arn = self.secret_arn(&rec.name);
        let policy = match &rec.policy {
            Some(p) => p.clone(),
            None => self.authorizer.default_policy(&AccessRequest {
                caller,
                action: Action::GetSecretPolicy,
                resource: &arn,
                resource_account: &self.scope.account_id,
                policy: None,
                creator: Some(&self.scope.account_id),
                instance_id: rec.dkms_instance_id.as_deref(),
            }),
        };
        Ok(GetKeyPolicyResponse {
            request_id: self.request_id(),
            policy,
        })
    }

    /// SetSecretPolicy: replaces the secret's policy after the authorizer validated it.
    ///
    /// Errors: `InvalidParameter` (malformed policy), `Rejected.ResourceInDeleteWindow`.
    pub fn set_secret_policy(
        &self,
        caller: &Caller,
        req: SetSecretPolicyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        crate::policy::ops::check_policy_name(&req.policy_name)?;
        validate::required("Policy", &req.policy)?;
        self.authorizer.validate_policy(&req.policy)?;
        self.mutate_secret(
            caller,
            Action::SetSecretPolicy,
            &req.secret_name,
            false,
            |r, now| {
                self.check_policy_lockout(
                    &req.policy,
                    Action::SetSecretPolicy,
                    &self.secret_arn(&r.name),
                    Some(&self.scope.account_id),
                    None,
                    req.bypass_policy_lockout_safety_check,
                )?;
                Ok(SecretRecord {
                    policy: Some(req.policy.clone()),
                    updated: now,
                    ..r.clone()
                })
            },
        )?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// Host API, break-glass: gives a secret its default policy back, whatever its current
    /// policy says (no authorization: only the host that holds the store can call it, e.g.
    /// `kms reset-policy`). Works in the recovery window too.
    ///
    /// Returns whether the secret had a policy of its own.
    ///
    /// Errors: `Forbidden.ResourceNotFound`.
    pub fn reset_secret_policy(&self, name: &str) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (rec, revision) = self.load_secret(name, now)?;
        if rec.policy.is_none() {
            return Ok(false);
        }
        let next = SecretRecord {
            policy: None,
            updated: now,
            ..rec
        };
        let mut batch = Batch::new();
        self.stage_put(
            &mut batch,
            schema::secret(name),
            &next,
            Precondition::Revision(revision),
        )?;
        self.commit(batch)?;
        Ok(true)
    }

    /// Maintenance of one secret with work due: purges it past its recovery window, or
    /// rotates it when due.
    pub(crate) fn secret_maintenance(
        &self,
        record_key: &[u8],
        now: UnixTime,
        report: &mut MaintenanceReport,
    ) -> Result<(), KmsError> {
        let (rec, entry) = match self.read::<SecretRecord>(record_key) {
            Ok(Some(found)) => found,
            Ok(None) | Err(KmsError::RecordCorrupt { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.is_purged(now) {
            let _guard = self.write_guard()?;
            let mut batch = Batch::new();
            for v in &rec.versions {
                batch.delete(schema::secret_value(&rec.name, &v.version_id));
            }
            batch.delete_if(record_key.to_vec(), Precondition::Revision(entry.revision));
            // A secret changed meanwhile is looked at again on the next pass.
            if self.commit(batch).is_ok() {
                report.purged_secrets.push(rec.name);
            }
        } else if rec.planned_delete_time.is_none()
            && rec.next_rotation_date.is_some_and(|t| t <= now)
            && self.rotation_handlers.contains_key(&rec.secret_type)
        {
            let owner = Caller::account_root(self.scope.account_id.clone());
            let version_id = new_uuid(&*self.rng)?;
            match self.rotate_secret_as(&owner, &rec.name, &version_id, Some(now)) {
                Ok(true) => report.rotated_secrets.push(rec.name),
                Ok(false) => {}
                Err(e) => report.failed_secret_rotations.push((rec.name, e.code())),
            }
        }
        Ok(())
    }
}

impl Record for SecretRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::secret(&self.name)
    }
}

impl Tagged for SecretRecord {
    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    fn touch(&mut self, now: UnixTime) {
        self.updated = now;
    }
}
