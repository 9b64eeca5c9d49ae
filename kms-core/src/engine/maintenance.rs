//! Time-driven work: purging keys past their DeleteDate and automatic rotation.

use super::{alias_record_key, key_record_key, version_prefix, Kms};
use crate::api::MaintenanceReport;
use crate::error::KmsError;
use crate::lifecycle;
use crate::model::KeyRecord;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;

impl Kms {
    /// Does the work that is due at `now`: purges keys past their DeleteDate (the key, its
    /// versions and its aliases, in one atomic batch) and rotates Enabled keys whose
    /// NextRotationDate has passed. A host calls this periodically; it is safe to call at any
    /// time and from any thread.
    ///
    /// Errors: `InternalFailure` when storage fails; work done before the failure stays done,
    /// and each key's change is atomic.
    pub fn run_maintenance(&self, now: UnixTime) -> Result<MaintenanceReport, KmsError> {
        let mut report = MaintenanceReport::default();
        for (_, record, _) in self.scan_all::<KeyRecord>(b"k/")? {
            if lifecycle::is_purged(&record, now) {
                if self.purge_key(&record.key_id, now)? {
                    report.purged_keys.push(record.key_id);
                }
            } else if lifecycle::rotation_due(&record, now)
                && self.rotate_if_due(&record.key_id, now)?
            {
                report.rotated_keys.push(record.key_id);
            }
        }
        Ok(report)
    }

    fn purge_key(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let kk = key_record_key(key_id);
        let Some((record, entry)) = self.read::<KeyRecord>(&kk)? else {
            return Ok(false);
        };
        if !lifecycle::is_purged(&record, now) {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.delete_if(kk, Precondition::Revision(entry.revision));
        let mut after: Option<Vec<u8>> = None;
        let prefix = version_prefix(key_id);
        loop {
            let page = self
                .storage
                .scan(&prefix, after.as_deref(), super::SCAN_PAGE)?;
            let len = page.len();
            for (k, _) in page {
                after = Some(k.clone());
                batch.delete(k);
            }
            if len < super::SCAN_PAGE {
                break;
            }
        }
        for alias in &record.aliases {
            batch.delete(alias_record_key(alias));
        }
        self.commit(batch)?;
        self.cache_remove(key_id)?;
        for alias in &record.aliases {
            self.alias_cache_remove(alias)?;
        }
        Ok(true)
    }

    fn rotate_if_due(&self, key_id: &str, now: UnixTime) -> Result<bool, KmsError> {
        let _guard = self.write_guard()?;
        let Some((record, entry)) = self.read::<KeyRecord>(&key_record_key(key_id))? else {
            return Ok(false);
        };
        if !lifecycle::rotation_due(&record, now) {
            return Ok(false);
        }
        self.rotate_locked(&record, entry.revision, now)?;
        Ok(true)
    }
}
