//! An in-memory backend: a `BTreeMap` behind a lock.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kms_core::{Batch, Entry, Op, Storage, StorageError};

use crate::precondition;

/// An ordered in-memory store; nothing survives the process.
///
/// Reads share a lock; a commit takes it exclusively, so every batch is atomic and isolated.
/// Revisions come from one counter for the whole store.
#[derive(Default)]
pub struct MemoryStorage {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<Vec<u8>, Entry>,
    /// The last revision handed out (0 before the first put).
    revision: u64,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A commit checks every precondition before it changes anything and its writes cannot
    // panic halfway, so a poisoned lock still guards a consistent map.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.read();
        f.debug_struct("MemoryStorage")
            .field("records", &inner.records.len())
            .field("revision", &inner.revision)
            .finish()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        Ok(self.read().records.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        let lower = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let inner = self.read();
        Ok(inner
            .records
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect())
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        let mut inner = self.write();
        for op in &batch.ops {
            if let Some(p) = op.precondition() {
                let current = inner.records.get(op.key()).map(|e| e.revision);
                precondition::check(p, current, op.key())?;
            }
        }
        let puts = batch
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Put { .. }))
            .count();
        let last = u64::try_from(puts)
            .ok()
            .and_then(|n| inner.revision.checked_add(n))
            .ok_or_else(precondition::revision_overflow)?;
        let mut revision = inner.revision;
        for op in batch.ops {
            match op {
                Op::Put { key, value, .. } => {
                    revision += 1;
                    inner.records.insert(key, Entry { value, revision });
                }
                Op::Delete { key, .. } => {
                    inner.records.remove(&key);
                }
            }
        }
        debug_assert_eq!(revision, last);
        inner.revision = last;
        Ok(())
    }
}
