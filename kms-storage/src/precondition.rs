//! The precondition rule shared by the backends.

use kms_core::{Precondition, StorageError};

/// Checks `precondition` against `current`, the revision of `key` before the batch (`None`
/// when absent).
///
/// Errors: [`StorageError::Conflict`] naming `key` when the precondition does not hold.
pub(crate) fn check(
    precondition: Precondition,
    current: Option<u64>,
    key: &[u8],
) -> Result<(), StorageError> {
    let holds = match precondition {
        Precondition::Absent => current.is_none(),
        Precondition::Revision(expected) => current == Some(expected),
    };
    if holds {
        Ok(())
    } else {
        Err(StorageError::Conflict {
            key: String::from_utf8_lossy(key).into_owned(),
        })
    }
}

/// The backend error for a revision counter that would pass `u64::MAX`.
pub(crate) fn revision_overflow() -> StorageError {
    StorageError::Backend("revision counter exhausted".to_owned())
}
