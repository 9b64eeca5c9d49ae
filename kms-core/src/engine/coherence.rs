//! Several engines on one store: following the store's change log so that what another
//! engine changed leaves this engine's caches, strict revalidation for hosts that want no
//! staleness at all, and the lease that lets one engine at a time run maintenance.
//!
//! What an engine has never read is always read from storage (a key or version created by
//! another engine is usable at once); what it has cached stays until [`Kms::follow_changes`]
//! sees it changed. With a store only one engine writes to, the store reports no changes and
//! all of this costs nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{CachedKey, Kms};
use crate::error::KmsError;
use crate::keys::rules;
use crate::schema;
use crate::storage::ChangedKeys;
use crate::time::UnixTime;

impl Kms {
    /// Drops from this engine's caches every record another engine (or this one) committed
    /// since the last call, as the store's change log reports; returns how many record keys
    /// the log named. A host running several engines on one store calls it periodically: how
    /// often bounds how long a change made elsewhere (DisableKey, ScheduleKeyDeletion, an
    /// alias or a policy change, a material deletion) can go unnoticed here. `kms serve` calls
    /// it every `cache_coherence_ms`.
    ///
    /// Errors: the storage errors of reading the change log (nothing is dropped then; the next
    /// call catches up).
    pub fn follow_changes(&self) -> Result<usize, KmsError> {
        let mut cursor = self
            .change_cursor
            .lock()
            .map_err(|_| KmsError::internal("change cursor lock poisoned"))?;
        let changes = self.storage.changes_since(*cursor)?;
        // The first call only learns where the log is: nothing was cached before it.
        let named = match (cursor.is_some(), changes.keys) {
            (false, _) => 0,
            (true, ChangedKeys::Some(keys)) => {
                self.forget_records(keys.iter().map(Vec::as_slice));
                keys.len()
            }
            (true, ChangedKeys::All) => {
                self.clear_caches();
                usize::MAX
            }
        };
        *cursor = Some(changes.cursor);
        Ok(named)
    }

    /// Drops what the caches hold about these records (keys, their versions, aliases).
    pub(crate) fn forget_records<'k>(&self, record_keys: impl Iterator<Item = &'k [u8]>) {
        for k in record_keys {
            if let Some(id) = k.strip_prefix(schema::KEY) {
                let _ = self.cache_remove(&String::from_utf8_lossy(id));
            } else if let Some(alias) = k.strip_prefix(schema::ALIAS) {
                let _ = self.alias_cache_remove(&String::from_utf8_lossy(alias));
            } else if let Some(rest) = k.strip_prefix(schema::VERSION) {
                if let Some(id) = rest.split(|b| *b == b'/').next() {
                    let _ = self.cache_remove(&String::from_utf8_lossy(id));
                }
            }
        }
    }

    /// Empties the key and alias caches: everything is read from storage again. For a host
    /// that could not follow the change log for longer than it tolerates staleness.
    pub fn clear_caches(&self) {
        if let Ok(mut keys) = self.keys.write() {
            self.removals.fetch_add(1, Ordering::AcqRel);
            keys.clear();
        }
        if let Ok(mut aliases) = self.aliases.write() {
            self.alias_epoch.fetch_add(1, Ordering::AcqRel);
            aliases.clear();
        }
    }

    /// Strict mode: the cached key if its stored record is still the one cached, else the key
    /// as stored now (which `input` named, at `now`).
    ///
    /// Errors: `Forbidden.KeyNotFound` when the key is gone or past its DeleteDate; storage
    /// errors.
    pub(crate) fn revalidated(
        &self,
        key: Arc<CachedKey>,
        input: &str,
        now: UnixTime,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let not_found = || KmsError::KeyNotFound {
            key_id: input.to_owned(),
        };
        let key_id = &key.record.key_id;
        match self.storage.get(&schema::key(key_id))? {
            Some(entry) if Some(entry.revision) == key.revision => Ok(key),
            stored => {
                self.cache_remove(key_id)?;
                if stored.is_none() {
                    return Err(not_found());
                }
                let fresh = self.load_key(key_id)?;
                if rules::is_purged(&fresh.record, now) {
                    return Err(not_found());
                }
                Ok(fresh)
            }
        }
    }

    /// Writes the key associations (ListKeyAssociations) noted since the last call; maintenance
    /// does it too. An engine that does not run maintenance (another holds the lease) calls
    /// this instead, so that what it noted is kept.
    ///
    /// Errors: storage errors.
    pub fn flush_key_associations(&self) -> Result<usize, KmsError> {
        self.flush_associations()
    }

    /// Takes or renews the store's lease `name` for `holder` (see
    /// [`crate::Storage::try_lease`]): `true` while this holder has it. `kms serve` runs
    /// maintenance only while it holds the `maintenance` lease.
    ///
    /// Errors: the storage errors of the lease.
    pub fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, KmsError> {
        Ok(self.storage.try_lease(name, holder, ttl)?)
    }
}
