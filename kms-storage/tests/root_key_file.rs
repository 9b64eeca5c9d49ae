//! The root key file: creation, permissions, reloading, and rejection of bad files.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::fs;

use kms_core::KmsError;
use kms_storage::root_key_file::{self, FILE_NAME};

fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn creates_key_file_with_mode_0600_and_no_leftovers() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data").join("nested");
    let key = root_key_file::load_or_create(&dir).unwrap();

    let path = dir.join(FILE_NAME);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.as_slice(), key.expose_secret());
    assert_eq!(
        dir_entries(&dir),
        vec![FILE_NAME.to_owned()],
        "no temp file is left behind"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode is {mode:o}");
        let dir_mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            dir_mode & 0o077,
            0,
            "new data directory mode is {dir_mode:o}"
        );
    }
}

#[test]
fn loads_the_same_key_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = root_key_file::load_or_create(dir.path()).unwrap();
    let second = root_key_file::load_or_create(dir.path()).unwrap();
    let third = root_key_file::load(&dir.path().join(FILE_NAME)).unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(first.expose_secret(), third.expose_secret());
    assert_eq!(dir_entries(dir.path()), vec![FILE_NAME.to_owned()]);
}

#[test]
fn fresh_directories_get_different_keys() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ka = root_key_file::load_or_create(a.path()).unwrap();
    let kb = root_key_file::load_or_create(b.path()).unwrap();
    assert_ne!(ka.expose_secret(), kb.expose_secret());
}

#[test]
fn loads_an_existing_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..32).collect();
    fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
    let key = root_key_file::load_or_create(dir.path()).unwrap();
    assert_eq!(key.expose_secret().as_slice(), bytes.as_slice());
}

#[test]
fn rejects_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    for len in [0usize, 1, 31, 33, 64, 4096] {
        fs::write(&path, vec![0x42; len]).unwrap();
        for result in [
            root_key_file::load(&path),
            root_key_file::load_or_create(dir.path()),
        ] {
            match result {
                Err(KmsError::InvalidParameter { name, reason }) => {
                    assert_eq!(name, "RootKeyFile");
                    assert!(
                        reason.contains(FILE_NAME),
                        "reason names the file: {reason}"
                    );
                    assert!(!reason.contains("4242"), "reason leaks no bytes: {reason}");
                }
                other => panic!("length {len}: expected InvalidParameter, got {other:?}"),
            }
        }
        // A bad file is never replaced by a new key.
        assert_eq!(fs::read(&path).unwrap().len(), len);
    }
}

#[test]
fn missing_explicit_file_is_an_internal_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.key");
    match root_key_file::load(&path) {
        Err(KmsError::InternalFailure { reason }) => {
            assert!(reason.contains("absent.key"), "{reason}")
        }
        other => panic!("expected InternalFailure, got {other:?}"),
    }
}

#[test]
fn concurrent_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    *root_key_file::load_or_create(dir.path())
                        .unwrap()
                        .expose_secret()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "all creators use the published key"
    );
    assert_eq!(dir_entries(dir.path()), vec![FILE_NAME.to_owned()]);
}
