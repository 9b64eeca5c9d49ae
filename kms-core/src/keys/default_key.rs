//! The default CMK: one free key per engine that the owner enables with an alias, a
//! description and a material source (the "デフォルト CMK" of Alibaba's key management guide). It is created when
//! enabled, and is an ordinary customer master key afterwards; `m/default-key` remembers it.

use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::ids::{is_reserved_alias, validate_alias_name};
use crate::keys::model::{AliasRecord, KeySpec, Origin};
use crate::keys::rules;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::storage::Precondition;

const MARKER: &[u8] = schema::DEFAULT_KEY_MARKER;

#[derive(Serialize, Deserialize)]
pub(crate) struct DefaultKeyMarker {
    key_id: String,
}

impl Kms {
    /// The default key's id, when it is enabled and its key still exists.
    pub(crate) fn default_key_id(&self) -> Result<Option<String>, KmsError> {
        let Some((marker, _)) = self.read::<DefaultKeyMarker>(MARKER)? else {
            return Ok(None);
        };
        match self.load_key(&marker.key_id) {
            Ok(k) if !rules::is_purged(&k.record, self.clock.now()) => Ok(Some(marker.key_id)),
            Ok(_) | Err(KmsError::KeyNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DescribeDefaultKey: whether the default key is enabled, and its metadata.
    ///
    /// Errors: `Forbidden.NoPermission` (needs `kms:DescribeKey` on the account).
    pub fn describe_default_key(
        &self,
        caller: &Caller,
        _req: NoParamsRequest,
    ) -> Result<DefaultKeyResponse, KmsError> {
        self.authorize_account(caller, Action::DescribeKey, None)?;
        let key_metadata = match self.default_key_id()? {
            Some(id) => Some(self.metadata(&*self.load_key(&id)?)),
            None => None,
        };
        Ok(DefaultKeyResponse {
            request_id: self.request_id(),
            status: if key_metadata.is_some() {
                "Enabled"
            } else {
                "NotEnabled"
            }
            .into(),
            key_metadata,
        })
    }

    /// EnableDefaultKey: creates the default key (Aliyun_AES_256) with its alias, in one
    /// atomic batch. With Origin EXTERNAL it starts PendingImport.
    ///
    /// Errors: `MissingParameter`/`InvalidParameter` (AliasName, Description, Origin),
    /// `AliasAlreadyExists`, `Rejected.ResourceExist` (already enabled),
    /// `Forbidden.NoPermission` (needs `kms:CreateKey`).
    pub fn enable_default_key(
        &self,
        caller: &Caller,
        req: EnableDefaultKeyRequest,
    ) -> Result<DefaultKeyResponse, KmsError> {
        if req.alias_name.is_empty() {
            return Err(KmsError::missing("AliasName"));
        }
        validate_alias_name("AliasName", &req.alias_name)?;
        let origin = match req.origin {
            None | Some(Origin::AliyunKms) => Origin::AliyunKms,
            Some(Origin::External) => Origin::External,
            Some(other) => {
                return Err(KmsError::invalid(
                    "Origin",
                    format!("must be Aliyun_KMS or EXTERNAL, not {other}"),
                ))
            }
        };
        if is_reserved_alias(&req.alias_name) {
            return Err(KmsError::invalid(
                "AliasName",
                "aliases under alias/acs/ are reserved for service keys",
            ));
        }
        let guard = self.write_guard()?;
        let marker_entry = self.storage.get(MARKER)?;
        if let Some(id) = self.default_key_id()? {
            return Err(KmsError::ResourceExist {
                resource: format!("the default key (already enabled as {id})"),
            });
        }
        let ak = schema::alias(&req.alias_name);
        // An alias of a key past its DeleteDate is gone with the key, as for CreateAlias.
        match self.read_live_alias(&req.alias_name, self.clock.now()) {
            Ok(_) => {
                return Err(KmsError::AliasAlreadyExists {
                    alias: req.alias_name,
                })
            }
            Err(KmsError::AliasNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let alias = req.alias_name.clone();
        let cached = self.create_key_with(
            caller,
            CreateKeyRequest {
                key_spec: Some(KeySpec::Aes256),
                origin: Some(origin),
                description: req.description.clone(),
                ..Default::default()
            },
            Some(&guard),
            |record, batch| {
                record.aliases.insert(alias.clone());
                let alias_record = AliasRecord {
                    alias_name: alias.clone(),
                    key_id: record.key_id.clone(),
                };
                self.stage_put(batch, ak.clone(), &alias_record, Precondition::Absent)?;
                let marker = DefaultKeyMarker {
                    key_id: record.key_id.clone(),
                };
                let precondition = match &marker_entry {
                    Some(e) => Precondition::Revision(e.revision),
                    None => Precondition::Absent,
                };
                self.stage_put(batch, MARKER.to_vec(), &marker, precondition)?;
                Ok(())
            },
        )?;
        self.alias_cache_put(&alias, &cached.record.key_id)?;
        Ok(DefaultKeyResponse {
            request_id: self.request_id(),
            status: "Enabled".into(),
            key_metadata: Some(self.metadata(&cached)),
        })
    }
}
