//! The one mutate-and-commit path every record kind goes through.
//!
//! Under the engine's write lock: read the record and its revision, authorize and check it
//! (`load`), compute the next record with a pure rule (`apply`), commit it with a revision
//! precondition when it changed, then update what the engine caches about it (`after`, still
//! under the lock, so a later writer's cache update cannot be overtaken by this one's). When
//! another engine on the same store changed the record meanwhile, the whole of it runs again on
//! the new record.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CommitFailure, Kms, COMMIT_ATTEMPTS};
use crate::error::KmsError;
use crate::storage::{Batch, Precondition};
use crate::time::UnixTime;

/// A record the engine stores under a key of its own (see [`crate::schema`]).
pub(crate) trait Record: Serialize + DeserializeOwned + PartialEq {
    /// The record key the record is stored under.
    fn record_key(&self) -> Vec<u8>;
}

impl Kms {
    /// Loads, changes and commits one record; see the module documentation.
    ///
    /// Errors: whatever `load`, `apply` and `after` return; the storage errors of the commit
    /// (`Rejected.ConcurrentModification`-style conflicts included), after which nothing
    /// changed.
    pub(crate) fn mutate<R: Record, T>(
        &self,
        load: impl Fn(UnixTime) -> Result<(R, u64), KmsError>,
        apply: impl Fn(&R, UnixTime) -> Result<R, KmsError>,
        after: impl FnOnce(R) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let _guard = self.write_guard()?;
        // Another engine on the same store may change the record between the read and the
        // commit: read, check and apply again (this engine's own writers wait on the lock).
        for attempt in 1.. {
            let now = self.clock.now();
            let (record, revision) = load(now)?;
            let next = apply(&record, now)?;
            if next != record {
                let mut batch = Batch::new();
                self.stage_put(
                    &mut batch,
                    next.record_key(),
                    &next,
                    Precondition::Revision(revision),
                )?;
                match self.commit_with_indexes(batch) {
                    Ok(()) => {}
                    Err(CommitFailure::Conflict(_)) if attempt < COMMIT_ATTEMPTS => continue,
                    Err(e) => return Err(e.into_error()),
                }
            }
            return after(next);
        }
        unreachable!("the loop returns on its last attempt")
    }
}
