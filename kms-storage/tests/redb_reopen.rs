//! RedbStorage specifics: file creation, durability across reopen, open errors.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use kms_core::{Batch, Precondition, Storage, StorageError};
use kms_storage::RedbStorage;

#[test]
fn open_creates_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.redb");
    assert!(!path.exists());
    let storage = RedbStorage::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(storage.path(), path);
    assert_eq!(storage.get(b"anything").unwrap(), None);
    assert!(storage.scan(b"", None, 10).unwrap().is_empty());
}

#[test]
fn reopen_keeps_records_and_revisions_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.redb");

    let storage = RedbStorage::open(&path).unwrap();
    let mut batch = Batch::new();
    batch
        .put(b"key/a".to_vec(), b"alpha".to_vec())
        .put(b"key/b".to_vec(), vec![0, 0xff])
        .put(b"key/c".to_vec(), Vec::new());
    storage.commit(batch).unwrap();
    let mut batch = Batch::new();
    batch.delete(b"key/c".to_vec());
    storage.commit(batch).unwrap();
    let before = storage.scan(b"key/", None, 100).unwrap();
    let highest = before.iter().map(|(_, e)| e.revision).max().unwrap();
    drop(storage);

    let storage = RedbStorage::open(&path).unwrap();
    let after = storage.scan(b"key/", None, 100).unwrap();
    assert_eq!(after, before, "records and revisions survive a reopen");
    assert_eq!(after.len(), 2);
    assert_eq!(
        storage.get(b"key/c").unwrap(),
        None,
        "deletes survive a reopen"
    );

    // The counter continues: a revision read before the reopen still guards writes.
    let a = storage.get(b"key/a").unwrap().unwrap();
    let mut batch = Batch::new();
    batch.put_if(
        b"key/a".to_vec(),
        b"alpha2".to_vec(),
        Precondition::Revision(a.revision),
    );
    storage.commit(batch).unwrap();
    let mut batch = Batch::new();
    batch.put(b"key/new".to_vec(), b"n".to_vec());
    storage.commit(batch).unwrap();
    let a2 = storage.get(b"key/a").unwrap().unwrap();
    let new = storage.get(b"key/new").unwrap().unwrap();
    assert!(a2.revision > highest, "{} > {highest}", a2.revision);
    assert!(new.revision > a2.revision);

    // A stale revision from before the reopen conflicts.
    let mut batch = Batch::new();
    batch.put_if(
        b"key/a".to_vec(),
        b"x".to_vec(),
        Precondition::Revision(a.revision),
    );
    assert!(matches!(
        storage.commit(batch),
        Err(StorageError::Conflict { .. })
    ));
}

#[test]
fn second_open_of_same_file_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kms.redb");
    let _first = RedbStorage::open(&path).unwrap();
    assert!(matches!(
        RedbStorage::open(&path),
        Err(StorageError::Backend(_))
    ));
}

#[test]
fn garbage_file_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        RedbStorage::open(&path),
        Err(StorageError::Backend(_))
    ));
}

#[test]
fn storage_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RedbStorage>();
    assert_send_sync::<kms_storage::MemoryStorage>();
}

#[test]
fn batched_syncs_are_made_durable_by_sync_and_by_a_clean_close() {
    use kms_storage::RedbOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulk.redb");
    let options = RedbOptions {
        sync_every: 1000,
        ..RedbOptions::default()
    };
    {
        let storage = RedbStorage::open_with(&path, options).unwrap();
        for i in 0..10u8 {
            let mut batch = Batch::new();
            batch.put(vec![b'n', i], vec![i]);
            storage.commit(batch).unwrap();
        }
        storage.sync().unwrap();
        let mut batch = Batch::new();
        batch.put(b"after-sync".to_vec(), b"x".to_vec());
        storage.commit(batch).unwrap();
        // Dropped here: the clean close makes the last commit durable too.
    }
    let storage = RedbStorage::open(&path).unwrap();
    assert_eq!(storage.scan(b"n", None, 100).unwrap().len(), 10);
    assert_eq!(storage.get(b"after-sync").unwrap().unwrap().value, b"x");
}
