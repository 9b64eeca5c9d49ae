//! Alias operations: an alias names exactly one key; a key may have up to 50 aliases.

use crate::api::*;
use crate::engine::{index, Kms};
use crate::error::KmsError;
use crate::ids::{is_reserved_alias, validate_alias_name};
use crate::keys::model::{AliasRecord, KeyRecord};
use crate::keys::rules;
use crate::policy::{Action, Caller};
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::validate;

fn check_user_alias(name: &str) -> Result<(), KmsError> {
    validate_alias_name("AliasName", name)?;
    if is_reserved_alias(name) {
        return Err(KmsError::invalid(
            "AliasName",
            "aliases under alias/acs/ are reserved for service keys",
        ));
    }
    Ok(())
}

impl Kms {
    /// The alias record and its entry (write lock held). An alias whose key is past its
    /// DeleteDate is gone with the key (ListAliases no longer shows it): that key is purged
    /// now, and the alias is not found.
    pub(crate) fn read_live_alias(
        &self,
        name: &str,
        now: crate::time::UnixTime,
    ) -> Result<(AliasRecord, crate::storage::Entry), KmsError> {
        let not_found = || KmsError::AliasNotFound {
            alias: name.to_owned(),
        };
        let (alias, entry) = self
            .read::<AliasRecord>(&schema::alias(name))?
            .ok_or_else(not_found)?;
        if self.purge_locked(&alias.key_id, now)? {
            return Err(not_found());
        }
        Ok((alias, entry))
    }

    /// CreateAlias: a new alias for a key.
    ///
    /// Errors: `InvalidParameter` (name rules, reserved `alias/acs/`), `AliasAlreadyExists`,
    /// `Rejected.StateModifiedFailed` (PendingDeletion key), `Rejected.LimitExceeded` (50 per
    /// key), `Forbidden.KeyNotFound`.
    pub fn create_alias(
        &self,
        caller: &Caller,
        req: CreateAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::required("AliasName", &req.alias_name)?;
        check_user_alias(&req.alias_name)?;
        let key_id = self.resolve_key_id("KeyId", &req.key_id)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let (record, revision) = self.load_for_update(&key_id, &req.key_id, now)?;
        self.authorize_record(caller, Action::CreateAlias, &record)?;
        rules::check_not_service_key(&record)?;
        let ak = schema::alias(&req.alias_name);
        match self.read_live_alias(&req.alias_name, now) {
            Ok(_) => {
                return Err(KmsError::AliasAlreadyExists {
                    alias: req.alias_name,
                })
            }
            Err(KmsError::AliasNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let next = rules::add_alias(&record, &req.alias_name, "CreateAlias")?;
        let alias = AliasRecord {
            alias_name: req.alias_name.clone(),
            key_id: key_id.clone(),
        };
        let kk = schema::key(&key_id);
        let mut batch = Batch::new();
        self.stage_put(&mut batch, ak, &alias, Precondition::Absent)?;
        self.stage_put(&mut batch, kk, &next, Precondition::Revision(revision))?;
        self.commit(batch)?;
        self.cache_put(next, Vec::new())?;
        self.alias_cache_put(&req.alias_name, &key_id)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// UpdateAlias: points an existing alias at another key.
    ///
    /// Errors: `Forbidden.AliasNotFound`, `Rejected.PendingDeletion` (new target),
    /// `Rejected.LimitExceeded`, `Forbidden.KeyNotFound`.
    pub fn update_alias(
        &self,
        caller: &Caller,
        req: UpdateAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::required("AliasName", &req.alias_name)?;
        check_user_alias(&req.alias_name)?;
        let new_key_id = self.resolve_key_id("KeyId", &req.key_id)?;
        let _guard = self.write_guard()?;
        let now = self.clock.now();
        let ak = schema::alias(&req.alias_name);
        let (alias, alias_entry) = self.read_live_alias(&req.alias_name, now)?;
        let (target, target_rev) = self.load_for_update(&new_key_id, &req.key_id, now)?;
        self.authorize_record(caller, Action::UpdateAlias, &target)?;
        rules::check_not_service_key(&target)?;
        if alias.key_id == new_key_id {
            return Ok(EmptyResponse {
                request_id: self.request_id(),
            });
        }
        let next_target = rules::add_alias(&target, &req.alias_name, "UpdateAlias")?;
        let old_kk = schema::key(&alias.key_id);
        let old = self.read::<KeyRecord>(&old_kk)?;
        if let Some((old_rec, _)) = &old {
            self.authorize_record(caller, Action::UpdateAlias, old_rec)?;
        }
        let new_alias = AliasRecord {
            alias_name: req.alias_name.clone(),
            key_id: new_key_id.clone(),
        };
        let kk = schema::key(&new_key_id);
        let mut batch = Batch::new();
        self.stage_put(
            &mut batch,
            ak,
            &new_alias,
            Precondition::Revision(alias_entry.revision),
        )?;
        self.stage_put(
            &mut batch,
            kk,
            &next_target,
            Precondition::Revision(target_rev),
        )?;
        let mut old_next = None;
        if let Some((old_rec, old_entry)) = old {
            let n = rules::remove_alias(&old_rec, &req.alias_name);
            self.stage_put(
                &mut batch,
                old_kk,
                &n,
                Precondition::Revision(old_entry.revision),
            )?;
            old_next = Some(n);
        }
        self.commit(batch)?;
        self.cache_put(next_target, Vec::new())?;
        if let Some(n) = old_next {
            self.cache_put(n, Vec::new())?;
        }
        self.alias_cache_put(&req.alias_name, &new_key_id)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// DeleteAlias: removes the alias; the key is untouched. Works in every key state.
    ///
    /// Errors: `Forbidden.AliasNotFound`, `InvalidParameter` (reserved aliases).
    pub fn delete_alias(
        &self,
        caller: &Caller,
        req: DeleteAliasRequest,
    ) -> Result<EmptyResponse, KmsError> {
        validate::required("AliasName", &req.alias_name)?;
        check_user_alias(&req.alias_name)?;
        let _guard = self.write_guard()?;
        let ak = schema::alias(&req.alias_name);
        let (alias, alias_entry) = self.read_live_alias(&req.alias_name, self.clock.now())?;
        let kk = schema::key(&alias.key_id);
        let key = self.read::<KeyRecord>(&kk)?;
        if let Some((rec, _)) = &key {
            self.authorize_record(caller, Action::DeleteAlias, rec)?;
        } else {
            self.authorize(caller, Action::DeleteAlias, None)?;
        }
        let mut batch = Batch::new();
        batch.delete_if(ak, Precondition::Revision(alias_entry.revision));
        let mut next = None;
        if let Some((rec, entry)) = key {
            let n = rules::remove_alias(&rec, &req.alias_name);
            self.stage_put(&mut batch, kk, &n, Precondition::Revision(entry.revision))?;
            next = Some(n);
        }
        self.commit(batch)?;
        if let Some(n) = next {
            self.cache_put(n, Vec::new())?;
        }
        self.alias_cache_remove(&req.alias_name)?;
        Ok(EmptyResponse {
            request_id: self.request_id(),
        })
    }

    /// ListAliases: every alias of the account, in creation order (see the index module).
    ///
    /// Errors: `InvalidParameter` for paging.
    pub fn list_aliases(
        &self,
        caller: &Caller,
        req: ListAliasesRequest,
    ) -> Result<ListAliasesResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 10)?;
        self.authorize(caller, Action::ListAliases, None)?;
        let now = self.clock.now();
        // An alias of a key past its DeleteDate is gone with the key, before maintenance
        // removes it.
        let mut gone = Vec::new();
        for record_key in self.overdue_purges(now, schema::KEY)? {
            let key_id = record_key.strip_prefix(schema::KEY).unwrap_or_default();
            match self.load_key(&String::from_utf8_lossy(key_id)) {
                Ok(k) => gone.extend(k.record.aliases.iter().map(|a| schema::alias(a))),
                Err(KmsError::KeyNotFound { .. } | KmsError::RecordCorrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let sel = self.single_selection(index::ALIASES, schema::ALIAS, &gone)?;
        let paged = self.index_page(&sel, page)?.map(|e| AliasRecord {
            alias_name: e.id,
            key_id: e.extra.unwrap_or_default(),
        });
        Ok(self.alias_response(paged))
    }

    /// ListAliasesByKeyId: the aliases of one key, by name. Works in every key state.
    ///
    /// Errors: `Forbidden.KeyNotFound`, `InvalidParameter` for paging.
    pub fn list_aliases_by_key_id(
        &self,
        caller: &Caller,
        req: ListAliasesByKeyIdRequest,
    ) -> Result<ListAliasesResponse, KmsError> {
        let page = validate::paging(req.page_number, req.page_size, 10)?;
        let key = self.readable_key(caller, Action::ListAliasesByKeyId, &req.key_id)?;
        let aliases = key
            .record
            .aliases
            .iter()
            .map(|name| AliasRecord {
                alias_name: name.clone(),
                key_id: key.record.key_id.clone(),
            })
            .collect();
        Ok(self.alias_response(page.take(aliases)))
    }

    fn alias_response(&self, paged: validate::Paged<AliasRecord>) -> ListAliasesResponse {
        ListAliasesResponse {
            request_id: self.request_id(),
            aliases: AliasList {
                alias: paged
                    .items
                    .into_iter()
                    .map(|a| AliasEntry {
                        alias_arn: self.scope.alias_arn(&a.alias_name),
                        alias_name: a.alias_name,
                        key_id: a.key_id,
                    })
                    .collect(),
            },
            page_number: paged.page_number,
            page_size: paged.page_size,
            total_count: paged.total_count,
        }
    }
}
