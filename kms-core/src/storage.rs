//! The storage contract: an ordered key-value store with atomic conditional batches.
//!
//! The engine owns the schema and seals every value before it reaches a backend, so a
//! backend only ever stores opaque bytes under opaque keys. What a backend must provide is
//! small: point reads, ordered prefix scans with a resume point, and an all-or-nothing
//! `commit` of a batch of puts and deletes, each optionally guarded by a precondition. This is
//! the shape of etcd, TiKV, FoundationDB and a SQL transaction.
//!
//! `kms_storage::conformance::run` checks any implementation against this contract.

use std::fmt;

/// A stored value and its revision.
///
/// Revisions are assigned by the backend on every put; they start at 1 and a later put of the
/// same key always yields a greater revision. They exist for optimistic concurrency
/// ([`Precondition::Revision`]), not as a clock.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stored bytes (sealed by the engine; opaque to the backend).
    pub value: Vec<u8>,
    /// The revision of this value.
    pub revision: u64,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value_len", &self.value.len())
            .field("revision", &self.revision)
            .finish()
    }
}

/// A condition that must hold for a batch to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this revision.
    Revision(u64),
}

/// One write of a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` under `key`, replacing any previous value.
    Put {
        /// Record key.
        key: Vec<u8>,
        /// Value to store.
        value: Vec<u8>,
        /// Optional guard.
        precondition: Option<Precondition>,
    },
    /// Remove `key` (a no-op if absent, unless the precondition says otherwise).
    Delete {
        /// Record key.
        key: Vec<u8>,
        /// Optional guard.
        precondition: Option<Precondition>,
    },
}

impl Op {
    /// The record key this operation writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    /// The precondition of this operation, if any.
    pub fn precondition(&self) -> Option<Precondition> {
        match self {
            Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put {
                key,
                value,
                precondition,
            } => f
                .debug_struct("Put")
                .field("key", &String::from_utf8_lossy(key))
                .field("value_len", &value.len())
                .field("precondition", precondition)
                .finish(),
            Op::Delete { key, precondition } => f
                .debug_struct("Delete")
                .field("key", &String::from_utf8_lossy(key))
                .field("precondition", precondition)
                .finish(),
        }
    }
}

/// An ordered list of writes applied all together or not at all.
///
/// If one key appears more than once, the operations apply in order (the last write wins) and
/// each precondition is checked against the state before the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The writes, in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an unconditional put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
            precondition: None,
        });
        self
    }

    /// Adds a put guarded by `precondition`.
    pub fn put_if(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
            precondition: Some(precondition),
        });
        self
    }

    /// Adds an unconditional delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete {
            key: key.into(),
            precondition: None,
        });
        self
    }

    /// Adds a delete guarded by `precondition`.
    pub fn delete_if(&mut self, key: impl Into<Vec<u8>>, precondition: Precondition) -> &mut Self {
        self.ops.push(Op::Delete {
            key: key.into(),
            precondition: Some(precondition),
        });
        self
    }

    /// True when the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A precondition of the batch did not hold; nothing was written.
    #[error("storage precondition failed on record {key}")]
    Conflict {
        /// The record key whose precondition failed (lossy UTF-8).
        key: String,
    },
    /// The backend failed (I/O, corruption, lost connection). Nothing was written.
    #[error("storage backend failure: {0}")]
    Backend(String),
    /// The backend cannot serve now but expects to recover (after an I/O fault, while a
    /// database is down). Nothing was written; the call may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// An ordered key-value store with atomic conditional batches.
///
/// Implementations must be safe to call from many threads at once. `commit` must be durable
/// when it returns `Ok` if the backend claims durability (RedbStorage does).
pub trait Storage: Send + Sync {
    /// Reads one record.
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError>;

    /// Returns up to `limit` records whose key starts with `prefix`, in ascending key order,
    /// starting strictly after `after` when given.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError>;

    /// Applies every operation of `batch` atomically, or none of them.
    ///
    /// Returns [`StorageError::Conflict`] when a precondition fails.
    fn commit(&self, batch: Batch) -> Result<(), StorageError>;

    /// The record keys committed after `cursor` (by any writer, this one included), for
    /// engines that share the store with other engines and cache what they read, and the
    /// cursor to pass next time. `None` asks for the current position without changes.
    ///
    /// The default, for a store only one engine writes to, reports no changes.
    fn changes_since(&self, cursor: Option<u64>) -> Result<Changes, StorageError> {
        Ok(Changes {
            cursor: cursor.unwrap_or(0),
            keys: ChangedKeys::Some(Vec::new()),
        })
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`: `true` when `holder` holds it
    /// now. Engines sharing a store use it so that time-driven work runs on one at a time and
    /// moves to another when its holder stops renewing.
    ///
    /// The default, for a store only one engine uses, always grants it.
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        let _ = (name, holder, ttl);
        Ok(true)
    }
}

/// What [`Storage::changes_since`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Pass this next time.
    pub cursor: u64,
    /// The record keys changed since the cursor given.
    pub keys: ChangedKeys,
}

/// The record keys a [`Changes`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedKeys {
    /// These keys (possibly repeated, possibly empty).
    Some(Vec<Vec<u8>>),
    /// More than the store still remembers (the cursor is older than its trimmed change log):
    /// treat everything as changed.
    All,
}

impl<S: Storage + ?Sized> Storage for std::sync::Arc<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        (**self).get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        (**self).scan(prefix, after, limit)
    }
    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        (**self).commit(batch)
    }
    fn changes_since(&self, cursor: Option<u64>) -> Result<Changes, StorageError> {
        (**self).changes_since(cursor)
    }
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        (**self).try_lease(name, holder, ttl)
    }
}
