//! Key management operations: creation, description, listing, state, versions, tags.

use std::collections::BTreeMap;

use crate::api::*;
use crate::engine::mutate::Record;
use crate::engine::{index, CachedKey, Kms};
use crate::error::KmsError;
use crate::ids::new_uuid;
use crate::keys::model::{
    CreatorType, DeletionProtection, KeyRecord, KeySpec, KeyState, KeyUsage, ProtectionLevel,
    VersionRecord,
};
use crate::keys::rules;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::tags::Tagged;
use crate::time::UnixTime;
use crate::validate;

impl Kms {
    pub(crate) fn metadata(&self, key: &CachedKey) -> KeyMetadata {
        let r = rules::effective(&key.record, self.clock.now());
        let r = r.as_ref();
        KeyMetadata {
            key_id: r.key_id.clone(),
            arn: key.arn.clone(),
            key_state: r.state,
            key_spec: r.key_spec,
            key_usage: r.key_usage,
            origin: r.origin,
            protection_level: r.protection_level,
            creation_date: r.creation_date,
            creator: r.creator.clone(),
            creator_type: r.creator_type,
            description: r.description.clone(),
            delete_date: r
                .delete_date
                .filter(|_| r.state == KeyState::PendingDeletion),
            material_expire_time: r.material_expire_time,
            primary_key_version: r.primary_version_id.clone(),
            automatic_rotation: rules::automatic_rotation(r),
            rotation_interval: r.rotation_interval.map(|s| format!("{s}s")),
            next_rotation_date: r.next_rotation_date,
            last_rotation_date: r.last_rotation_date,
            deletion_protection: if r.deletion_protection.is_some() {
                DeletionProtection::Enabled
            } else {
                DeletionProtection::Disabled
            },
            deletion_protection_description: r
                .deletion_protection
                .clone()
                .filter(|d| !d.is_empty()),
            dkms_instance_id: r.dkms_instance_id.clone(),
            external_key_id: r.external_key_id.clone(),
        }
    }

    /// DescribeKey. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `Forbidden.AliasNotFound`, `Forbidden.NoPermission`.
    pub fn describe_key(
        &self,
        caller: &Caller,
        req: DescribeKeyRequest,
    ) -> Result<DescribeKeyResponse, KmsError> {
        let key = self.readable_key(caller, Action::DescribeKey, &req.key_id)?;
        Ok(DescribeKeyResponse {
            request_id: self.request_id(),
            key_metadata: self.metadata(&key),
        })
    }

    /// ListKeys: the account's keys, paged, optionally filtered (AND across filters, OR across
    /// one filter's values).
    ///
    /// Errors: `InvalidParameter` for paging out of range or a malformed filter.
    pub fn list_keys(
        &self,
        caller: &Caller,
        req: ListKeysRequest,
    ) -> Result<ListKeysResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 10)?;
        let filters = parse_filters(&req.filters)?;
        self.authorize(caller, Action::ListKeys, None)?;
        let now = self.clock.now();
        // Filters pick whole sequences (one per combination of the filtered values); keys
        // past their DeleteDate that maintenance has not removed yet, and keys known to fail
        // to open (once read, or found by fsck), are skipped.
        let sequences: Vec<(String, u64)> = self
            .key_sequences()?
            .into_iter()
            .filter(|(name, _)| {
                index::parse_key_sequence(name)
                    .is_some_and(|values| filters.iter().all(|f| f.matches(values)))
            })
            .collect();
        // The page is served from the index alone (a key's id is all it shows), so its cost
        // does not depend on what the key cache holds.
        let gone = self.overdue_purges(now, schema::KEY)?;
        let paged = self.index_page(&self.selection(sequences, schema::KEY, &gone)?, page)?;
        Ok(ListKeysResponse {
            request_id: self.request_id(),
            keys: KeyList {
                key: paged
                    .items
                    .into_iter()
                    .map(|e| KeyListEntry {
                        key_arn: self.scope.key_arn(&e.id),
                        key_id: e.id,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    pub(crate) fn empty(&self) -> EmptyResponse {
        EmptyResponse {
            request_id: self.request_id(),
        }
    }

    /// EnableKey: Disabled → Enabled (a no-op when Enabled).
    ///
    /// Errors: `Rejected.StateModifiedFailed` from PendingDeletion or PendingImport.
    pub fn enable_key(
        &self,
        caller: &Caller,
        req: EnableKeyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.mutate_key(caller, Action::EnableKey, "KeyId", &req.key_id, |r, _| {
            rules::enable(r)
        })?;
        Ok(self.empty())
    }

    /// DisableKey: Enabled → Disabled (a no-op when Disabled).
    ///
    /// Errors: `Rejected.StateModifiedFailed` from PendingDeletion or PendingImport.
    pub fn disable_key(
        &self,
        caller: &Caller,
        req: DisableKeyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.mutate_key(caller, Action::DisableKey, "KeyId", &req.key_id, |r, _| {
            rules::disable(r)
        })?;
        Ok(self.empty())
    }

    /// SetDeletionProtection: names the key by ProtectedResourceArn (or KeyId).
    ///
    /// Errors: `MissingParameter`, `Rejected.StateModifiedFailed` when enabling on a
    /// PendingDeletion key.
    pub fn set_deletion_protection(
        &self,
        caller: &Caller,
        req: SetDeletionProtectionRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let (param, target) = if !req.protected_resource_arn.is_empty() {
            ("ProtectedResourceArn", req.protected_resource_arn.as_str())
        } else if !req.key_id.is_empty() {
            ("KeyId", req.key_id.as_str())
        } else {
            return Err(KmsError::missing("ProtectedResourceArn"));
        };
        let enable = req
            .enable_deletion_protection
            .ok_or_else(|| KmsError::missing("EnableDeletionProtection"))?;
        let description = req.deletion_protection_description;
        self.mutate_key(
            caller,
            Action::SetDeletionProtection,
            param,
            target,
            |r, _| rules::set_deletion_protection(r, enable, description.as_deref()),
        )?;
        Ok(self.empty())
    }

    /// ScheduleKeyDeletion: PendingDeletion for 7 to 366 days, then purged.
    ///
    /// Errors: `InvalidParameter`/`MissingParameter` (PendingWindowInDays),
    /// `Rejected.DeletionProtection`, `Rejected.StateModifiedFailed`.
    pub fn schedule_key_deletion(
        &self,
        caller: &Caller,
        req: ScheduleKeyDeletionRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::pending_window(req.pending_window_in_days)?;
        self.mutate_key(
            caller,
            Action::ScheduleKeyDeletion,
            "KeyId",
            &req.key_id,
            |r, now| rules::schedule_deletion(r, now, req.pending_window_in_days),
        )?;
        Ok(self.empty())
    }

    /// CancelKeyDeletion: PendingDeletion → Enabled.
    ///
    /// Errors: `Rejected.StateModifiedFailed` from any other state.
    pub fn cancel_key_deletion(
        &self,
        caller: &Caller,
        req: CancelKeyDeletionRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.mutate_key(
            caller,
            Action::CancelKeyDeletion,
            "KeyId",
            &req.key_id,
            |r, _| rules::cancel_deletion(r),
        )?;
        Ok(self.empty())
    }

    /// UpdateKeyDescription.
    ///
    /// Errors: `Rejected.PendingDeletion`, `InvalidParameter` over 8192 characters.
    pub fn update_key_description(
        &self,
        caller: &Caller,
        req: UpdateKeyDescriptionRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::description("Description", &req.description)?;
        self.mutate_key(
            caller,
            Action::UpdateKeyDescription,
            "KeyId",
            &req.key_id,
            |r, _| rules::update_description(r, &req.description),
        )?;
        Ok(self.empty())
    }

    /// DescribeKeyVersion. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `Forbidden.KeyVersionNotFound`, `MissingParameter`.
    pub fn describe_key_version(
        &self,
        caller: &Caller,
        req: DescribeKeyVersionRequest,
    ) -> Result<DescribeKeyVersionResponse, KmsError> {
        validate::required("KeyVersionId", &req.key_version_id)?;
        let key = self.readable_key(caller, Action::DescribeKeyVersion, &req.key_id)?;
        let v = self.load_version(&key, &req.key_version_id.to_ascii_lowercase())?;
        Ok(KeyVersionResponse {
            request_id: self.request_id(),
            key_version: KeyVersion {
                key_id: v.record.key_id.clone(),
                key_version_id: v.record.version_id.clone(),
                creation_date: v.record.creation_date,
            },
        })
    }

    /// ListKeyVersions: oldest first. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `InvalidParameter` for paging.
    pub fn list_key_versions(
        &self,
        caller: &Caller,
        req: ListKeyVersionsRequest,
    ) -> Result<ListKeyVersionsResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 10)?;
        let key = self.readable_key(caller, Action::ListKeyVersions, &req.key_id)?;
        let key_id = &key.record.key_id;
        let sel = self.single_selection(
            &index::version_sequence(key_id),
            &schema::versions_of(key_id),
            &[],
        )?;
        let paged = self.index_page(&sel, page)?;
        Ok(ListKeyVersionsResponse {
            request_id: self.request_id(),
            key_versions: KeyVersionList {
                key_version: paged
                    .items
                    .into_iter()
                    .map(|e| KeyVersion {
                        key_id: key_id.clone(),
                        creation_date: UnixTime(
                            e.extra.and_then(|d| d.parse().ok()).unwrap_or_default(),
                        ),
                        key_version_id: e.id,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        })
    }

    /// UpdateRotationPolicy: turns automatic rotation on (with an interval of 7 to 365 days)
    /// or off.
    ///
    /// Errors: `MissingParameter`, `InvalidParameter` (RotationInterval),
    /// `Rejected.UnsupportedOperation` (asymmetric or EXTERNAL keys), the state errors.
    pub fn update_rotation_policy(
        &self,
        caller: &Caller,
        req: UpdateRotationPolicyRequest,
    ) -> Result<EmptyResponse, KmsError> {
        let (enable, interval) = validate::rotation_policy(
            req.enable_automatic_rotation,
            req.rotation_interval.as_deref(),
        )?;
        self.mutate_key(
            caller,
            Action::UpdateRotationPolicy,
            "KeyId",
            &req.key_id,
            |r, now| rules::set_rotation_policy(r, now, enable, interval.or(r.rotation_interval)),
        )?;
        Ok(self.empty())
    }

    /// CreateKeyVersion: a manual rotation; the new version becomes primary.
    ///
    /// Errors: `Rejected.UnsupportedOperation` (EXTERNAL keys), the state errors.
    pub fn create_key_version(
        &self,
        caller: &Caller,
        req: CreateKeyVersionRequest,
    ) -> Result<CreateKeyVersionResponse, KmsError> {
        let key_id = self.resolve_key_id("KeyId", &req.key_id)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (record, revision) = self.load_for_update(&key_id, &req.key_id, now)?;
        self.authorize_record(caller, Action::CreateKeyVersion, &record)?;
        rules::check_not_service_key(&record)?;
        rules::check_can_rotate(&record)?;
        let version = self.rotate_locked(&record, revision, now)?;
        Ok(KeyVersionResponse {
            request_id: self.request_id(),
            key_version: KeyVersion {
                key_id: version.key_id.clone(),
                key_version_id: version.version_id.clone(),
                creation_date: version.creation_date,
            },
        })
    }

    /// Adds a new primary version to `record` (write lock held, checks done).
    pub(crate) fn rotate_locked(
        &self,
        record: &KeyRecord,
        revision: u64,
        now: UnixTime,
    ) -> Result<VersionRecord, KmsError> {
        let version_id = new_uuid(&*self.rng)?;
        let version = VersionRecord {
            key_id: record.key_id.clone(),
            version_id: version_id.clone(),
            creation_date: now,
            seq: record.version_count,
            material: Some(self.generate_material(
                record.key_spec,
                record.protection_level,
                &record.key_id,
                &version_id,
            )?),
        };
        let next = rules::rotate(record, now, &version_id);
        let kk = schema::key(&record.key_id);
        let vk = schema::version(&record.key_id, &version_id);
        let mut batch = Batch::new();
        self.stage_put(&mut batch, kk, &next, Precondition::Revision(revision))?;
        self.stage_put(&mut batch, vk, &version, Precondition::Absent)?;
        if let Err(e) = self.commit(batch) {
            if record.protection_level == ProtectionLevel::Hsm {
                self.destroy_handle(version.material.as_ref());
            }
            return Err(e);
        }
        self.cache_put(next, vec![version.clone()])?;
        Ok(version)
    }

    /// DescribeRegions: the engine's configured region.
    pub fn describe_regions(
        &self,
        caller: &Caller,
        _req: NoParamsRequest,
    ) -> Result<DescribeRegionsResponse, KmsError> {
        self.authorize(caller, Action::DescribeRegions, None)?;
        Ok(DescribeRegionsResponse {
            request_id: self.request_id(),
            regions: RegionList {
                region: vec![Region {
                    region_id: self.scope.region.clone(),
                }],
            },
        })
    }

    /// OpenKmsService: idempotent; an embedded engine is always open.
    pub fn open_kms_service(
        &self,
        caller: &Caller,
        _req: NoParamsRequest,
    ) -> Result<EmptyResponse, KmsError> {
        self.authorize(caller, Action::OpenKmsService, None)?;
        Ok(self.empty())
    }

    /// DescribeAccountKmsStatus: always `Enabled`.
    pub fn describe_account_kms_status(
        &self,
        caller: &Caller,
        _req: NoParamsRequest,
    ) -> Result<DescribeAccountKmsStatusResponse, KmsError> {
        self.authorize(caller, Action::DescribeAccountKmsStatus, None)?;
        Ok(DescribeAccountKmsStatusResponse {
            request_id: self.request_id(),
            account_status: "Enabled".into(),
        })
    }
}

/// A parsed ListKeys filter.
enum KeyFilter {
    State(Vec<KeyState>),
    Spec(Vec<KeySpec>),
    Usage(Vec<KeyUsage>),
    Creator(Vec<CreatorType>),
    Protection(Vec<ProtectionLevel>),
}

impl KeyFilter {
    fn matches(
        &self,
        (state, spec, usage, level, creator): (
            KeyState,
            KeySpec,
            KeyUsage,
            ProtectionLevel,
            CreatorType,
        ),
    ) -> bool {
        match self {
            KeyFilter::State(v) => v.contains(&state),
            KeyFilter::Spec(v) => v.contains(&spec),
            KeyFilter::Usage(v) => v.contains(&usage),
            KeyFilter::Creator(v) => v.contains(&creator),
            KeyFilter::Protection(v) => v.contains(&level),
        }
    }
}

const MAX_FILTERS: usize = 10;

fn parse_filters(filters: &[Filter]) -> Result<Vec<KeyFilter>, KmsError> {
    if filters.len() > MAX_FILTERS {
        return Err(KmsError::invalid(
            "Filters",
            format!("at most {MAX_FILTERS} filters are allowed"),
        ));
    }
    filters
        .iter()
        .map(|f| {
            if f.values.is_empty() {
                return Err(KmsError::invalid(
                    "Filters",
                    format!("the filter on {} has no Values", f.key),
                ));
            }
            fn all<T>(
                values: &[String],
                parse: fn(&str) -> Result<T, KmsError>,
            ) -> Result<Vec<T>, KmsError> {
                values.iter().map(|v| parse(v)).collect()
            }
            let with_name = |e: KmsError| match e {
                KmsError::InvalidParameter { name, reason } => {
                    KmsError::invalid("Filters", format!("{name} value {reason}"))
                }
                other => other,
            };
            Ok(match f.key.as_str() {
                "KeyState" => KeyFilter::State(all(&f.values, KeyState::parse).map_err(with_name)?),
                "KeySpec" => KeyFilter::Spec(all(&f.values, KeySpec::parse).map_err(with_name)?),
                "KeyUsage" => KeyFilter::Usage(all(&f.values, KeyUsage::parse).map_err(with_name)?),
                "CreatorType" => {
                    KeyFilter::Creator(all(&f.values, CreatorType::parse).map_err(with_name)?)
                }
                "ProtectionLevel" => KeyFilter::Protection(
                    all(&f.values, ProtectionLevel::parse).map_err(with_name)?,
                ),
                other => {
                    return Err(KmsError::invalid(
                        "Filters",
                        format!(
                            "{other:?} is not a filter key; use KeyState, KeySpec, KeyUsage, \
                             CreatorType or ProtectionLevel"
                        ),
                    ))
                }
            })
        })
        .collect()
}

impl Record for KeyRecord {
    fn record_key(&self) -> Vec<u8> {
        schema::key(&self.key_id)
    }
}

impl Tagged for KeyRecord {
    fn tags_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.tags
    }

    /// A key's tags change in every state but PendingDeletion.
    fn check_taggable(&self) -> Result<(), KmsError> {
        rules::check_usable(self, rules::Usage::MetadataUpdate)
    }

    fn touch(&mut self, _now: UnixTime) {}
}
