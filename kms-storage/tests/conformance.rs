//! Both backends pass the conformance suite, and the suite rejects broken backends.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use kms_core::{Batch, Entry, Op, Storage, StorageError};
use kms_storage::{conformance, MemoryStorage, RedbStorage};

#[test]
fn memory_storage_passes_conformance() {
    conformance::run(&MemoryStorage::new());
}

#[test]
fn redb_storage_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let storage = RedbStorage::open(dir.path().join("kms.redb")).unwrap();
    conformance::run(&storage);
}

#[test]
fn redb_storage_with_a_small_cache_and_batched_syncs_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let storage = kms_storage::RedbStorage::open_with(
        dir.path().join("kms.redb"),
        kms_storage::RedbOptions {
            cache_bytes: 1 << 20,
            sync_every: 7,
        },
    )
    .unwrap();
    conformance::run(&storage);
}

#[test]
fn arc_of_storage_passes_conformance() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    conformance::run(&storage);
}

/// A backend that breaks one rule of the contract, wrapped around a correct one.
struct Broken {
    inner: MemoryStorage,
    flaw: Flaw,
}

#[derive(Clone, Copy, Debug)]
enum Flaw {
    IgnoresPreconditions,
    AppliesOpsOneByOne,
    ScanIncludesAfter,
    ScanIgnoresPrefixEnd,
    ScanIgnoresLimit,
}

impl Storage for Broken {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        match self.flaw {
            Flaw::ScanIncludesAfter => {
                let mut out = Vec::new();
                if let Some(after) = after.filter(|a| a.starts_with(prefix)) {
                    if let Some(entry) = self.inner.get(after)? {
                        out.push((after.to_vec(), entry));
                    }
                }
                out.extend(self.inner.scan(prefix, after, limit)?);
                out.truncate(limit);
                Ok(out)
            }
            Flaw::ScanIgnoresPrefixEnd => {
                let end = prefix.len().saturating_sub(1);
                let mut out = self.inner.scan(&prefix[..end], after, usize::MAX)?;
                out.retain(|(k, _)| k.as_slice() >= prefix);
                out.truncate(limit);
                Ok(out)
            }
            Flaw::ScanIgnoresLimit => self.inner.scan(prefix, after, usize::MAX),
            _ => self.inner.scan(prefix, after, limit),
        }
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        match self.flaw {
            Flaw::IgnoresPreconditions => {
                let ops = batch
                    .ops
                    .into_iter()
                    .map(|op| match op {
                        Op::Put { key, value, .. } => Op::Put {
                            key,
                            value,
                            precondition: None,
                        },
                        Op::Delete { key, .. } => Op::Delete {
                            key,
                            precondition: None,
                        },
                    })
                    .collect();
                self.inner.commit(Batch { ops })
            }
            Flaw::AppliesOpsOneByOne => {
                for op in batch.ops {
                    self.inner.commit(Batch { ops: vec![op] })?;
                }
                Ok(())
            }
            _ => self.inner.commit(batch),
        }
    }
}

#[test]
fn conformance_rejects_broken_backends() {
    for flaw in [
        Flaw::IgnoresPreconditions,
        Flaw::AppliesOpsOneByOne,
        Flaw::ScanIncludesAfter,
        Flaw::ScanIgnoresPrefixEnd,
        Flaw::ScanIgnoresLimit,
    ] {
        let broken = Broken {
            inner: MemoryStorage::new(),
            flaw,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| conformance::run(&broken)));
        assert!(
            outcome.is_err(),
            "the suite accepted a backend that {flaw:?}"
        );
    }
}
