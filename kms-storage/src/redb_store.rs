//! An embedded backend on redb: one crash-safe file, copy-on-write B-trees, fsync per commit.

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use kms_core::{Batch, Entry, Op, Storage, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::precondition;

/// Records: key → 8-byte big-endian revision followed by the value bytes.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// Store metadata; holds the revision counter under [`REVISION`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The last revision handed out (absent before the first put).
const REVISION: &str = "revision";
/// Length of the revision prefix of a stored record.
const REVISION_LEN: usize = 8;

/// A store in one redb file.
///
/// Every `commit` is one write transaction with [`Durability::Immediate`]: when it returns `Ok`
/// the batch is on disk, and a crash at any point leaves either the whole batch or none of it.
/// Reads run in read transactions and see a consistent snapshot without blocking the writer.
/// Writers are serialized by redb; the handle is `Send + Sync` and meant to be shared (for
/// example in an `Arc`).
///
/// **I/O faults.** After an I/O error (a full disk, a failing device) redb refuses every
/// further transaction until the database is closed and opened again. This store does that
/// itself: the failing call answers [`StorageError::Unavailable`] naming the cause, the
/// database is closed, and the next call after a backoff (100 ms, doubling to 5 s) opens it
/// again; calls in between answer `Unavailable` at once. Once the fault is gone, reads and
/// writes succeed again without a restart. Nothing half-written survives: a transaction that
/// failed was never committed.
pub struct RedbStorage {
    db: RwLock<Option<Database>>,
    path: PathBuf,
    options: RedbOptions,
    /// Commits since the last durable one (with [`RedbOptions::sync_every`] above 1).
    unsynced: std::sync::atomic::AtomicU32,
    fault: Mutex<Option<Fault>>,
    /// Bumped at every reopen: an error met on an older handle does not close a newer one.
    generation: std::sync::atomic::AtomicU64,
}

/// A fault being recovered from.
#[derive(Debug, Clone)]
struct Fault {
    cause: String,
    next_try: Instant,
    backoff: Duration,
}

/// How a [`RedbStorage`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedbOptions {
    /// Bytes of redb's own page cache (default 128 MiB). The store's share of the process's
    /// memory stays within it, whatever the size of the file; pages beyond it are read
    /// through the operating system's file cache.
    pub cache_bytes: usize,
    /// Every how many commits one is made durable (default 1: every commit is on disk when
    /// it returns). Above 1, a crash can lose up to `sync_every - 1` acknowledged commits
    /// (never half of one): only for bulk-loading a store that can be made again, such as a
    /// benchmark's; [`RedbStorage::sync`] makes everything durable.
    pub sync_every: u32,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_bytes: 128 << 20,
            sync_every: 1,
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl RedbStorage {
    /// Opens the store at `path`, creating the file and its tables if they do not exist.
    ///
    /// Errors: [`StorageError::Backend`] when the file cannot be opened or created, is not a
    /// redb database, or is already open (in this or another process).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// As [`RedbStorage::open`], with `options`.
    ///
    /// Errors: as [`RedbStorage::open`].
    pub fn open_with(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path, &options)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path,
            options,
            unsynced: std::sync::atomic::AtomicU32::new(0),
            fault: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cause of the I/O fault being recovered from, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|f| f.cause.clone()))
    }

    /// Runs `f` on the open database, reopening it first when a fault's backoff is over, and
    /// closing it when `f` meets an I/O error.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.recover_if_due()?;
        let (result, generation) = {
            let guard = self
                .db
                .read()
                .map_err(|_| StorageError::Backend("the store's lock was poisoned".into()))?;
            let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
            match guard.as_ref() {
                Some(db) => (f(db), generation),
                None => return Err(self.unavailable()),
            }
        };
        if let Err(StorageError::Unavailable(cause)) = &result {
            self.start_fault(cause, generation);
        }
        result
    }

    fn unavailable(&self) -> StorageError {
        let cause = self.fault().unwrap_or_else(|| "closed".into());
        StorageError::Unavailable(format!(
            "{} is being reopened after an I/O error ({cause})",
            self.path.display()
        ))
    }

    /// Records a fault (once) and closes the database so that it can be opened again; an
    /// error met on a handle that was since reopened changes nothing.
    fn start_fault(&self, cause: &str, generation: u64) {
        if self.generation.load(std::sync::atomic::Ordering::Acquire) != generation {
            return;
        }
        {
            let Ok(mut fault) = self.fault.lock() else {
                return;
            };
            if fault.is_some() {
                return;
            }
            *fault = Some(Fault {
                cause: cause.to_owned(),
                next_try: Instant::now() + FIRST_BACKOFF,
                backoff: FIRST_BACKOFF,
            });
        }
        if let Ok(mut db) = self.db.write() {
            // Dropping the handle releases the file; redb needs a fresh open after I/O errors.
            *db = None;
        }
    }

    /// Reopens the database when a fault's backoff is over; `Unavailable` before that or when
    /// the reopen fails (with a longer backoff).
    fn recover_if_due(&self) -> Result<(), StorageError> {
        let due = {
            let Ok(fault) = self.fault.lock() else {
                return Err(StorageError::Backend(
                    "the store's lock was poisoned".into(),
                ));
            };
            match fault.as_ref() {
                None => return Ok(()),
                Some(f) => Instant::now() >= f.next_try,
            }
        };
        if !due {
            return Err(self.unavailable());
        }
        // One caller reopens; the others answer Unavailable at once instead of waiting on it.
        let mut db = match self.db.try_write() {
            Ok(db) => db,
            Err(std::sync::TryLockError::WouldBlock) => return Err(self.unavailable()),
            Err(std::sync::TryLockError::Poisoned(_)) => {
                return Err(StorageError::Backend(
                    "the store's lock was poisoned".into(),
                ))
            }
        };
        if db.is_some() {
            return Ok(()); // another thread reopened it
        }
        match open_database(&self.path, &self.options) {
            Ok(reopened) => {
                *db = Some(reopened);
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                if let Ok(mut fault) = self.fault.lock() {
                    *fault = None;
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(mut fault) = self.fault.lock() {
                    if let Some(f) = fault.as_mut() {
                        f.backoff = (f.backoff * 2).min(MAX_BACKOFF);
                        f.next_try = Instant::now() + f.backoff;
                        f.cause = e.to_string();
                    }
                }
                Err(self.unavailable())
            }
        }
    }
}

/// Opens (or creates) the database and its tables.
fn open_database(path: &Path, options: &RedbOptions) -> Result<Database, StorageError> {
    // Not opening is a Backend failure: a file that is not a database, or is locked, is no
    // fault to wait out (a reopen after a fault retries on its own).
    let db = Database::builder()
        .set_cache_size(options.cache_bytes)
        .create(path)
        .map_err(|e| StorageError::Backend(format!("open {}: {e}", path.display())))?;
    // Create both tables now so that read transactions can always open them.
    let txn = db.begin_write().map_err(backend)?;
    {
        txn.open_table(RECORDS).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
    }
    txn.commit().map_err(backend)?;
    Ok(db)
}

impl fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Storage for RedbStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(RECORDS).map_err(backend)?;
            let stored = table.get(key).map_err(backend)?;
            stored.map(|guard| decode(guard.value())).transpose()
        })
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lower = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.with_db(|db| scan_in(db, prefix, lower, limit))
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let durable = self.options.sync_every <= 1 || {
            let n = self
                .unsynced
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
                + 1;
            n >= self.options.sync_every
        };
        if durable && self.options.sync_every > 1 {
            self.unsynced.store(0, std::sync::atomic::Ordering::Release);
        }
        let result = self.with_db(|db| commit_in(db, batch, durable));
        if result.is_err() && durable && self.options.sync_every > 1 {
            // The commits before this one are still not durable: the next sync must not skip.
            self.unsynced
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        result
    }
}

impl RedbStorage {
    /// Makes every commit so far durable (a no-op when every commit already is).
    ///
    /// Errors: the I/O error, as with `commit`.
    pub fn sync(&self) -> Result<(), StorageError> {
        let pending = self.unsynced.swap(0, std::sync::atomic::Ordering::AcqRel);
        if pending == 0 {
            return Ok(());
        }
        let result = self.with_db(|db| commit_in(db, Batch::new(), true));
        if result.is_err() {
            self.unsynced
                .fetch_add(pending, std::sync::atomic::Ordering::AcqRel);
        }
        result
    }
}

impl Drop for RedbStorage {
    fn drop(&mut self) {
        // Commits not yet made durable (sync_every above 1) are made so on a clean close; a
        // caller that must know it worked calls `sync` first.
        let _ = self.sync();
    }
}

fn scan_in(
    db: &Database,
    prefix: &[u8],
    lower: Bound<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
    {
        let txn = db.begin_read().map_err(backend)?;
        let table = txn.open_table(RECORDS).map_err(backend)?;
        let mut out = Vec::new();
        // Keys with a common prefix are contiguous, so the scan stops at the first other key.
        for item in table
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(backend)?
        {
            let (key, stored) = item.map_err(backend)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), decode(stored.value())?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

fn commit_in(db: &Database, batch: Batch, durable: bool) -> Result<(), StorageError> {
    {
        let mut txn = db.begin_write().map_err(backend)?;
        // Immediate is redb's default; set it so durability never rests on a default.
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(backend)?;
        {
            let mut records = txn.open_table(RECORDS).map_err(backend)?;
            for op in &batch.ops {
                if let Some(p) = op.precondition() {
                    let current = match records.get(op.key()).map_err(backend)? {
                        Some(guard) => Some(decode_revision(guard.value())?),
                        None => None,
                    };
                    precondition::check(p, current, op.key())?;
                }
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut revision = meta
                .get(REVISION)
                .map_err(backend)?
                .map_or(0, |guard| guard.value());
            for op in batch.ops {
                match op {
                    Op::Put { key, value, .. } => {
                        revision = revision
                            .checked_add(1)
                            .ok_or_else(precondition::revision_overflow)?;
                        let stored = encode(revision, &value);
                        records
                            .insert(key.as_slice(), stored.as_slice())
                            .map_err(backend)?;
                    }
                    Op::Delete { key, .. } => {
                        records.remove(key.as_slice()).map_err(backend)?;
                    }
                }
            }
            meta.insert(REVISION, revision).map_err(backend)?;
        }
        // An early return above drops `txn`, which aborts it: nothing is written.
        txn.commit().map_err(backend)
    }
}

fn backend(e: impl Into<redb::Error>) -> StorageError {
    classify("", e.into())
}

/// An I/O error (or redb's refusal after one) is `Unavailable`, to recover from by reopening;
/// anything else is a `Backend` failure.
fn classify(context: &str, e: redb::Error) -> StorageError {
    let text = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    match e {
        redb::Error::Io(_) | redb::Error::PreviousIo => StorageError::Unavailable(text),
        _ => StorageError::Backend(text),
    }
}

fn encode(revision: u64, value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(REVISION_LEN + value.len());
    stored.extend_from_slice(&revision.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

fn split(stored: &[u8]) -> Result<(u64, &[u8]), StorageError> {
    let (revision, value) = stored
        .split_first_chunk::<REVISION_LEN>()
        .ok_or_else(|| StorageError::Backend("corrupt record: shorter than its revision".into()))?;
    Ok((u64::from_be_bytes(*revision), value))
}

fn decode_revision(stored: &[u8]) -> Result<u64, StorageError> {
    split(stored).map(|(revision, _)| revision)
}

fn decode(stored: &[u8]) -> Result<Entry, StorageError> {
    split(stored).map(|(revision, value)| Entry {
        value: value.to_vec(),
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_encoding_round_trips() {
        let stored = encode(0x0102_0304_0506_0708, b"sealed");
        assert_eq!(stored.get(..8), Some(&[1u8, 2, 3, 4, 5, 6, 7, 8][..]));
        let entry = decode(&stored).ok();
        assert_eq!(
            entry,
            Some(Entry {
                value: b"sealed".to_vec(),
                revision: 0x0102_0304_0506_0708
            })
        );
    }

    #[test]
    fn short_record_is_a_backend_error() {
        assert!(matches!(decode(&[0; 7]), Err(StorageError::Backend(_))));
        assert!(decode(&[0; 8]).is_ok_and(|e| e.value.is_empty() && e.revision == 0));
    }
}
