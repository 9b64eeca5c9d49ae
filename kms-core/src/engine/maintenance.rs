//! Time-driven work: purging keys past their DeleteDate, automatic rotation, expiry of
//! imported key material and of import tokens.

use crate::api::MaintenanceReport;
use crate::engine::Kms;
use crate::error::KmsError;
use crate::keys::byok::ImportToken;
use crate::keys::model::{KeyRecord, ProtectionLevel, VersionRecord};
use crate::keys::rules;
use crate::schema;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;

impl Kms {
    /// Does the work that is due at `now`: purges keys past their DeleteDate (the key, its
    /// versions and its aliases, in one atomic batch), rotates Enabled keys whose
    /// NextRotationDate has passed, removes imported material past its MaterialExpireTime,
    /// and deletes expired import tokens. A host calls this periodically; it is safe to call at any
    /// time and from any thread.
    ///
    /// Errors: `InternalFailure` when storage fails; work done before the failure stays done,
    /// and each key's change is atomic.
    pub fn run_maintenance(&self, now: UnixTime) -> Result<MaintenanceReport, KmsError> {
        let mut report = MaintenanceReport::default();
        // The due-date index names every record with work due by now: O(due), not O(store).
        let mut due: Vec<Vec<u8>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.for_each_due(now, |record_key, _| {
            if seen.insert(record_key.to_vec()) {
                due.push(record_key.to_vec());
            }
            Ok(())
        })?;
        for record_key in due {
            match schema::kind_of(&record_key) {
                Some(schema::KEY) => self.key_maintenance(&record_key, now, &mut report),
                // One secret or token failing (the store, a conflict) is looked at again on
                // the next pass; the rest of this one goes on.
                Some(schema::SECRET) => {
                    if let Err(e) = self.secret_maintenance(&record_key, now, &mut report) {
                        let name = String::from_utf8_lossy(record_key.get(2..).unwrap_or_default());
                        report
                            .failed_secret_rotations
                            .push((name.into_owned(), e.code()));
                    }
                }
                Some(schema::IMPORT_TOKEN) => {
                    if let Ok(true) = self.expire_token(&record_key, now) {
                        report.expired_import_tokens += 1;
                    }
                }
                _ => {}
            }
        }
        report.associations_written = self.flush_associations()?;
        report.corrupt_records = self.corrupt.lock().map(|c| c.len()).unwrap_or(0);
        Ok(report)
    }

    /// The due work of one key. One key failing (a version that does not open, a provider
    /// that is down) is reported and retried next pass; every other key is still looked
    /// after.
    fn key_maintenance(&self, record_key: &[u8], now: UnixTime, report: &mut MaintenanceReport) {
        let key_id = String::from_utf8_lossy(record_key.get(2..).unwrap_or_default()).into_owned();
        let record = match self.read::<KeyRecord>(record_key) {
            Ok(Some((record, _))) => record,
            // Gone meanwhile, or failing to open (remembered, and reported by fsck).
            Ok(None) | Err(KmsError::RecordCorrupt { .. }) => return,
            Err(e) => {
                report.failed_keys.push((key_id, e.code()));
                return;
            }
        };
        let outcome = if rules::is_purged(&record, now) {
            self.purge_key(&key_id, now)
                .map(|done| done.then_some(&mut report.purged_keys))
        } else if rules::rotation_due(&record, now) {
            self.rotate_if_due(&key_id, now)
                .map(|done| done.then_some(&mut report.rotated_keys))
        } else if rules::material_expired(&record, now) {
            self.expire_material(&key_id, now)
                .map(|done| done.then_some(&mut report.expired_material_keys))
        } else {
            Ok(None)
        };
        match outcome {
            Ok(Some(list)) => list.push(key_id),
            Ok(None) => {}
            Err(e) => report.failed_keys.push((key_id, e.code())),
        }
    }

    /// Deletes an import token past its expiry, with its wrapping key when the key provider
    /// holds it; false when it is not due or gone.
    fn expire_token(&self, record_key: &[u8], now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let (token, entry) = match self.read::<ImportToken>(record_key) {
            Ok(Some(found)) => found,
            Ok(None) | Err(KmsError::RecordCorrupt { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if token.expires > now {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.delete_if(record_key.to_vec(), Precondition::Revision(entry.revision));
        self.commit(batch)?;
        if token.in_provider {
            // Its wrapping key lives in the key provider: gone with the token.
            self.destroy_handle(Some(&token.wrapping_key));
        }
        Ok(true)
    }

    fn expire_material(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let Some((record, entry)) = self.read::<KeyRecord>(&schema::key(key_id))? else {
            return Ok(false);
        };
        if !rules::material_expired(&record, now) {
            return Ok(false);
        }
        self.remove_material_locked(&record, entry.revision)?;
        Ok(true)
    }

    fn purge_key(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        self.purge_locked(key_id, now)
    }

    /// Purges a key past its DeleteDate (write lock held); false when it is not due or gone.
    pub(crate) fn purge_locked(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let kk = schema::key(key_id);
        let Some((record, entry)) = self.read::<KeyRecord>(&kk)? else {
            return Ok(false);
        };
        if !rules::is_purged(&record, now) {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.delete_if(kk, Precondition::Revision(entry.revision));
        let mut materials = Vec::new();
        // Every version must open: a version that does not could hold HSM material that
        // would stay undestroyed, so the purge fails (reported, retried each pass) and the
        // record stays for fsck to report.
        for (k, entry) in self
            .storage
            .scan(&schema::versions_of(key_id), None, usize::MAX)?
        {
            let version = self.read_entry::<VersionRecord>(&k, &entry.value)?;
            materials.extend(version.material);
            batch.delete(k);
        }
        for (k, _) in self
            .storage
            .scan(&schema::associations_of(key_id), None, usize::MAX)?
        {
            batch.delete(k);
        }
        for alias in &record.aliases {
            batch.delete(schema::alias(alias));
        }
        self.commit(batch)?;
        self.cache_remove(key_id)?;
        for alias in &record.aliases {
            self.alias_cache_remove(alias)?;
        }
        if record.protection_level == ProtectionLevel::Hsm {
            for handle in &materials {
                self.destroy_handle(Some(handle));
            }
        }
        Ok(true)
    }

    fn rotate_if_due(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let Some((record, entry)) = self.read::<KeyRecord>(&schema::key(key_id))? else {
            return Ok(false);
        };
        if !rules::rotation_due(&record, now) {
            return Ok(false);
        }
        self.rotate_locked(&record, entry.revision, now)?;
        Ok(true)
    }
}
