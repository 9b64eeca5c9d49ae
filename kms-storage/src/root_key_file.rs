//! The root key as a file in the data directory.
//!
//! kms-core does no file I/O; a host that keeps its root key on local disk uses this module.
//! The file holds exactly [`ROOT_KEY_LEN`] raw bytes. [`load_or_create`] writes a new key so
//! that a crash never leaves a partial file under the final name: the key goes to a temporary
//! file created with mode `0600`, is synced, and is then published under `root.key` with a
//! hard link, which (unlike a rename) never replaces a key another process published first.
//! The temporary file is removed afterwards; only a crash in between can leave a
//! `.root.key.tmp-*` file behind, never a partial `root.key`. The data directory must be on a
//! filesystem with hard links (any local Unix filesystem).
//!
//! The permissions of an existing key file are not checked; keep the data directory private
//! (new directories are created with mode `0700`).
//!
//! Errors never contain key bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kms_core::ROOT_KEY_LEN;
use kms_core::{KmsError, RootKey};
use zeroize::Zeroizing;

/// Name of the key file inside the data directory.
pub const FILE_NAME: &str = "root.key";

/// Loads `dir/root.key`, or creates `dir` and a fresh key in it when the file does not exist.
///
/// When two processes create the key at once, both end up with the one that was published
/// first.
///
/// Errors: `InvalidParameter` (`RootKeyFile`) when the file is not exactly 32 bytes;
/// `InternalFailure` when the directory or file cannot be read, created or synced, or when
/// the OS random source fails.
pub fn load_or_create(dir: &Path) -> Result<RootKey, KmsError> {
    let path = dir.join(FILE_NAME);
    match read_key(&path) {
        Ok(key) => return Ok(key),
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into_kms(&path)),
    }
    create_dir(dir)?;
    let key = RootKey::generate()?;
    if publish(dir, &path, &key)? {
        Ok(key)
    } else {
        // Another process published its key first; use that one.
        load(&path)
    }
}

/// Loads a root key from an explicit file of exactly 32 raw bytes.
///
/// Errors: `InvalidParameter` (`RootKeyFile`) when the file is not exactly 32 bytes;
/// `InternalFailure` when it cannot be read.
pub fn load(path: &Path) -> Result<RootKey, KmsError> {
    read_key(path).map_err(|e| e.into_kms(path))
}

enum ReadError {
    Io(io::Error),
    Length(usize),
}

impl ReadError {
    fn into_kms(self, path: &Path) -> KmsError {
        match self {
            ReadError::Io(e) => io_error("read", path, &e),
            ReadError::Length(n) => {
                let found = if n > ROOT_KEY_LEN {
                    "more".to_owned()
                } else {
                    n.to_string()
                };
                KmsError::invalid(
                    "RootKeyFile",
                    format!(
                        "{} must hold exactly {ROOT_KEY_LEN} bytes, found {found}",
                        path.display()
                    ),
                )
            }
        }
    }
}

fn read_key(path: &Path) -> Result<RootKey, ReadError> {
    let mut file = File::open(path).map_err(ReadError::Io)?;
    // One spare byte tells a too-long file from an exact one without reading all of it.
    let mut buf = Zeroizing::new([0u8; ROOT_KEY_LEN + 1]);
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let bytes = buf.get(..filled).unwrap_or_default();
    if filled != ROOT_KEY_LEN {
        return Err(ReadError::Length(filled));
    }
    RootKey::from_bytes(bytes).map_err(|_| ReadError::Length(filled))
}

fn create_dir(dir: &Path) -> Result<(), KmsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_error("create directory", dir, &e))
}

/// Writes `key` to a synced temporary file and links it in as `path`.
///
/// Returns `false`, leaving `path` untouched, when `path` already exists.
fn publish(dir: &Path, path: &Path, key: &RootKey) -> Result<bool, KmsError> {
    let tmp = temp_path(dir);
    let result = write_new(&tmp, key).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("publish", path, &e)),
    });
    // The temporary name holds a copy of the key; never leave it behind.
    let removed = fs::remove_file(&tmp);
    let published = result?;
    removed.map_err(|e| io_error("remove", &tmp, &e))?;
    sync_dir(dir)?;
    Ok(published)
}

fn write_new(tmp: &Path, key: &RootKey) -> Result<(), KmsError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp).map_err(|e| io_error("create", tmp, &e))?;
    file.write_all(key.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", tmp, &e))
}

/// A name no other writer uses: process id, a per-process sequence number and the clock.
fn temp_path(dir: &Path) -> PathBuf {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        ".{FILE_NAME}.tmp-{}-{sequence}-{nanos}",
        std::process::id()
    ))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), KmsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, &e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), KmsError> {
    Ok(())
}

fn io_error(action: &str, path: &Path, e: &io::Error) -> KmsError {
    KmsError::internal(format!("root key file: {action} {}: {e}", path.display()))
}
