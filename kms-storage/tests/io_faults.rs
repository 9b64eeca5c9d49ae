//! RedbStorage on a real full disk: a small tmpfs filled up. A commit that meets ENOSPC fails
//! (nothing half-written), calls answer `Unavailable` naming the cause while the store is
//! reopened with backoff, and once space is back writes succeed again without a restart.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says so and does nothing.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kms_core::{Batch, Storage, StorageError};
use kms_storage::RedbStorage;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?
            .success();
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the disk with a file until a write fails; returns the file.
fn fill(disk: &SmallDisk) -> PathBuf {
    use std::io::Write;
    let filler = disk.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    filler
}

fn put(storage: &RedbStorage, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
    let mut batch = Batch::new();
    batch.put(key.as_bytes().to_vec(), value);
    storage.commit(batch)
}

#[test]
fn writes_recover_by_themselves_after_the_disk_was_full() {
    let Some(disk) = SmallDisk::mount("4M") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let storage = RedbStorage::open(disk.path().join("kms.redb")).unwrap();
    put(&storage, "k/before", b"kept".to_vec()).unwrap();
    let filler = fill(&disk);

    // Writes fail while the disk is full, whatever their size, as Unavailable naming the cause.
    let mut failed = None;
    for i in 0..64 {
        if let Err(e) = put(&storage, &format!("k/big-{i}"), vec![7u8; 256 * 1024]) {
            failed = Some(e);
            break;
        }
    }
    let failed = failed.expect("a write on a full disk failed");
    match &failed {
        StorageError::Unavailable(cause) => assert!(
            cause.contains("No space left") || cause.contains("I/O"),
            "{cause}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(storage.fault().is_some());
    assert!(matches!(
        storage.get(b"k/before"),
        Err(StorageError::Unavailable(_))
    ));

    // Space comes back: within the backoff the store reopens by itself.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match put(&storage, "k/after", b"written".to_vec()) {
            Ok(()) => break,
            Err(StorageError::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("did not recover: {e}"),
        }
    }
    assert!(storage.fault().is_none());
    assert_eq!(storage.get(b"k/before").unwrap().unwrap().value, b"kept");
    assert_eq!(storage.get(b"k/after").unwrap().unwrap().value, b"written");
    drop(storage);
    // And the file opens cleanly afterwards.
    let reopened = RedbStorage::open(disk.path().join("kms.redb")).unwrap();
    assert_eq!(reopened.get(b"k/after").unwrap().unwrap().value, b"written");
}
