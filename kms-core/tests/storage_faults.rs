#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Storage failures and hostile storage: a commit that fails leaves no partial state and
//! reports InternalFailure; tampered, moved or foreign records are detected, never used; a
//! store does not open under another root key; and the engine holds up under concurrent use.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::*;
use kms_core::api::KeyState;
use kms_core::api::*;
use kms_core::{Batch, Caller, Entry, KmsError, ManualClock, RootKey, Storage, StorageError};
use kms_storage::MemoryStorage;

/// MemoryStorage whose commits (and, separately, reads) can be switched to fail.
struct FailingStorage {
    inner: Arc<MemoryStorage>,
    fail_commits: AtomicBool,
    fail_reads: AtomicBool,
    failed_commits: AtomicUsize,
}

impl FailingStorage {
    fn new(inner: Arc<MemoryStorage>) -> Self {
        FailingStorage {
            inner,
            fail_commits: AtomicBool::new(false),
            fail_reads: AtomicBool::new(false),
            failed_commits: AtomicUsize::new(0),
        }
    }

    fn read_check(&self) -> Result<(), StorageError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected read failure".into()));
        }
        Ok(())
    }
}

impl Storage for FailingStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.read_check()?;
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        self.read_check()?;
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(StorageError::Backend("injected commit failure".into()));
        }
        self.inner.commit(batch)
    }
}

/// An Env whose engine goes through a FailingStorage; `env.storage` is the store underneath
/// (and `env.reopen()` an engine directly on it).
fn failing_env() -> (Env, Arc<FailingStorage>) {
    let inner = Arc::new(MemoryStorage::new());
    let failing = Arc::new(FailingStorage::new(inner.clone()));
    let clock = Arc::new(ManualClock::new(START));
    let root_key = RootKey::generate().unwrap();
    let kms = build(failing.clone(), clock.clone(), root_key.clone());
    let env = Env {
        kms,
        clock,
        storage: inner,
        root_key,
        me: Caller::account_root(ACCOUNT),
    };
    (env, failing)
}

fn reopened(env: &Env) -> Env {
    Env {
        kms: env.reopen(),
        clock: env.clock.clone(),
        storage: env.storage.clone(),
        root_key: env.root_key.clone(),
        me: env.me.clone(),
    }
}

/// The keys of the fault scenarios: `a` Enabled with alias/a and a tag, `b` Disabled, `c`
/// Enabled with alias/c, `d` PendingDeletion.
struct Keys {
    a: String,
    b: String,
    c: String,
    d: String,
}

fn setup(env: &Env) -> Keys {
    let a = env.create_key().key_id;
    env.create_alias("alias/a", &a).unwrap();
    env.tag(&a, &[("team", "core")]).unwrap();
    let b = env.create_key().key_id;
    env.disable(&b).unwrap();
    let c = env.create_key().key_id;
    env.create_alias("alias/c", &c).unwrap();
    let d = env.create_key().key_id;
    env.schedule_deletion(&d, 30).unwrap();
    Keys { a, b, c, d }
}

type KeyView = (KeyMetadata, Vec<String>, Vec<(String, String)>, Vec<String>);

/// Everything observable about the account.
fn snapshot(env: &Env, keys: &Keys) -> (Vec<KeyView>, Vec<AliasEntry>, Vec<String>) {
    let views = [&keys.a, &keys.b, &keys.c, &keys.d]
        .into_iter()
        .map(|k| {
            (
                env.describe(k),
                env.aliases_of(k),
                env.tags(k),
                env.versions(k),
            )
        })
        .collect();
    let mut all_keys = env.all_keys();
    all_keys.sort();
    (views, env.all_aliases(), all_keys)
}

type Mutation = fn(&Env, &Keys) -> Result<(), KmsError>;

fn mutations() -> Vec<(&'static str, Mutation)> {
    vec![
        ("CreateKey", |env, _| {
            env.kms
                .create_key(&env.me, CreateKeyRequest::default())
                .map(drop)
        }),
        ("EnableKey", |env, k| env.enable(&k.b).map(drop)),
        ("DisableKey", |env, k| env.disable(&k.a).map(drop)),
        ("ScheduleKeyDeletion", |env, k| {
            env.schedule_deletion(&k.a, 7).map(drop)
        }),
        ("CancelKeyDeletion", |env, k| {
            env.cancel_deletion(&k.d).map(drop)
        }),
        ("CreateAlias", |env, k| {
            env.create_alias("alias/new", &k.a).map(drop)
        }),
        ("UpdateAlias", |env, k| {
            env.update_alias("alias/a", &k.c).map(drop)
        }),
        ("DeleteAlias", |env, _| {
            env.delete_alias("alias/c").map(drop)
        }),
        ("TagResource", |env, k| {
            env.tag(&k.a, &[("env", "prod")]).map(drop)
        }),
        ("UntagResource", |env, k| {
            env.kms
                .untag_resource(
                    &env.me,
                    UntagResourceRequest {
                        key_id: k.a.clone(),
                        tag_keys: vec!["team".into()],
                        ..Default::default()
                    },
                )
                .map(drop)
        }),
        ("CreateKeyVersion", |env, k| {
            env.create_key_version(&k.a).map(drop)
        }),
        ("UpdateRotationPolicy", |env, k| {
            env.set_rotation(&k.a, true, Some("7d")).map(drop)
        }),
        ("UpdateKeyDescription", |env, k| {
            env.kms
                .update_key_description(
                    &env.me,
                    UpdateKeyDescriptionRequest {
                        key_id: k.a.clone(),
                        description: "changed".into(),
                    },
                )
                .map(drop)
        }),
        ("SetDeletionProtection", |env, k| {
            env.set_protection(&k.a, true).map(drop)
        }),
    ]
}

#[test]
fn a_failed_commit_is_internal_failure_and_changes_nothing() {
    for (name, op) in mutations() {
        let (env, failing) = failing_env();
        let keys = setup(&env);
        let before = snapshot(&env, &keys);

        failing.fail_commits.store(true, Ordering::SeqCst);
        let e = expect_err(op(&env, &keys), "InternalFailure");
        assert_eq!(e.http_status(), 500, "{name}");
        assert!(
            failing.failed_commits.load(Ordering::SeqCst) >= 1,
            "{name} tried to commit"
        );
        failing.fail_commits.store(false, Ordering::SeqCst);

        // Neither this engine (its caches) nor a restarted one (storage) sees a change.
        assert_eq!(
            snapshot(&env, &keys),
            before,
            "{name} changed this engine's view"
        );
        assert_eq!(
            snapshot(&reopened(&env), &keys),
            before,
            "{name} changed storage"
        );
        // The crypto path still works on the old state.
        let r = env.encrypt("alias/a", b"still here", &ctx(&[]));
        assert_eq!(r.key_id, keys.a, "{name}");

        // With storage healthy again, the same operation succeeds and has its effect.
        op(&env, &keys).unwrap_or_else(|e| panic!("{name} after recovery: {e}"));
        let after = snapshot(&env, &keys);
        assert_ne!(after, before, "{name} had no effect");
        assert_eq!(
            snapshot(&reopened(&env), &keys),
            after,
            "{name} was not durable"
        );
    }
}

#[test]
fn a_failed_commit_during_maintenance_leaves_keys_as_they_were() {
    let (env, failing) = failing_env();
    let rotating = env
        .create_key_with(CreateKeyRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("7d".into()),
            ..Default::default()
        })
        .key_id;
    let doomed = env.create_key().key_id;
    env.create_alias("alias/doomed", &doomed).unwrap();
    env.schedule_deletion(&doomed, 7).unwrap();
    env.clock.advance_days(8);

    failing.fail_commits.store(true, Ordering::SeqCst);
    // Each key's failure is reported and the pass goes on; nothing was applied.
    match env.kms.run_maintenance(env.now()) {
        Ok(report) => {
            let mut failed: Vec<&str> =
                report.failed_keys.iter().map(|(k, _)| k.as_str()).collect();
            failed.sort_unstable();
            let mut expected = vec![rotating.as_str(), doomed.as_str()];
            expected.sort_unstable();
            assert_eq!(failed, expected);
            assert!(report.purged_keys.is_empty() && report.rotated_keys.is_empty());
        }
        Err(e) => assert_eq!(e.code(), "InternalFailure", "{e}"),
    }
    failing.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(env.versions(&rotating).len(), 1, "no rotation happened");
    assert!(env
        .storage
        .get(format!("k/{doomed}").as_bytes())
        .unwrap()
        .is_some());
    assert!(env.storage.get(b"a/alias/doomed").unwrap().is_some());

    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.purged_keys, vec![doomed.clone()]);
    assert_eq!(report.rotated_keys, vec![rotating.clone()]);
    assert_eq!(env.versions(&rotating).len(), 2);
    assert!(env
        .storage
        .get(format!("k/{doomed}").as_bytes())
        .unwrap()
        .is_none());
}

#[test]
fn a_failed_read_is_internal_failure() {
    let (env, failing) = failing_env();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"x", &ctx(&[])).ciphertext_blob;
    // A restarted engine on the failing store has nothing cached.
    let cold = build(failing.clone(), env.clock.clone(), env.root_key.clone());
    failing.fail_reads.store(true, Ordering::SeqCst);
    let e = expect_err(cold.describe_key(&env.me, key_req(&key)), "InternalFailure");
    assert_eq!(e.http_status(), 500);
    expect_err(
        cold.decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: blob.clone(),
                ..Default::default()
            },
        ),
        "InternalFailure",
    );
    expect_err(
        cold.list_keys(&env.me, ListKeysRequest::default()),
        "InternalFailure",
    );
    expect_err(env.disable(&key), "InternalFailure");
    failing.fail_reads.store(false, Ordering::SeqCst);
    assert_eq!(
        &cold
            .decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: blob,
                    ..Default::default()
                },
            )
            .unwrap()
            .plaintext[..],
        b"x"
    );
    assert_eq!(env.state(&key), KeyState::Enabled);
}

#[test]
fn build_fails_when_storage_fails() {
    let inner = Arc::new(MemoryStorage::new());
    let failing = Arc::new(FailingStorage::new(inner));
    failing.fail_commits.store(true, Ordering::SeqCst);
    let clock = Arc::new(ManualClock::new(START));
    let e = try_build(failing.clone(), clock.clone(), RootKey::generate().unwrap()).unwrap_err();
    assert_eq!(e.code(), "InternalFailure");
    failing.fail_commits.store(false, Ordering::SeqCst);
    failing.fail_reads.store(true, Ordering::SeqCst);
    let e = try_build(failing, clock, RootKey::generate().unwrap()).unwrap_err();
    assert_eq!(e.code(), "InternalFailure");
}

// ---- hostile storage ------------------------------------------------------------------------

fn raw_get(storage: &dyn Storage, key: &str) -> Vec<u8> {
    storage.get(key.as_bytes()).unwrap().unwrap().value
}

fn raw_put(storage: &dyn Storage, key: &str, value: Vec<u8>) {
    let mut batch = Batch::new();
    batch.put(key.as_bytes().to_vec(), value);
    storage.commit(batch).unwrap();
}

#[test]
fn a_tampered_key_record_is_detected_at_every_byte() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let record_key = format!("k/{key}");
    let good = raw_get(&env.storage, &record_key);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        raw_put(&env.storage, &record_key, bad);
        let fresh = env.reopen();
        let e = expect_err(
            fresh.describe_key(&env.me, key_req(&key)),
            "InternalFailure",
        );
        assert!(!e.to_string().is_empty());
    }
    raw_put(&env.storage, &record_key, good);
    assert_eq!(
        env.reopen()
            .describe_key(&env.me, key_req(&key))
            .unwrap()
            .key_metadata
            .key_id,
        key
    );
}

#[test]
fn a_tampered_key_record_is_never_used() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"x", &ctx(&[])).ciphertext_blob;
    let record_key = format!("k/{key}");
    let mut bad = raw_get(&env.storage, &record_key);
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    raw_put(&env.storage, &record_key, bad);
    // The running engine re-reads the record for every change, and refuses it.
    expect_err(env.disable(&key), "InternalFailure");
    expect_err(env.tag(&key, &[("a", "b")]), "InternalFailure");
    expect_err(env.create_key_version(&key), "InternalFailure");
    // A restarted engine refuses every use of it.
    let fresh = reopened(&env);
    expect_err(fresh.try_encrypt(&key, b"x", &ctx(&[])), "InternalFailure");
    expect_err(fresh.try_decrypt(&blob, &ctx(&[])), "InternalFailure");
    // Lists skip it (and answer the rest) rather than fail for every caller.
    let listed = fresh
        .kms
        .list_keys(&env.me, ListKeysRequest::default())
        .unwrap();
    assert!(listed.keys.key.iter().all(|k| k.key_id != key));
    assert_eq!(fresh.kms.corrupt_records().len(), 1);
    // A truncated record likewise.
    raw_put(&env.storage, &record_key, vec![0, 0, 0, 1, 2]);
    expect_err(reopened(&env).try_describe(&key), "InternalFailure");
    raw_put(&env.storage, &record_key, Vec::new());
    expect_err(reopened(&env).try_describe(&key), "InternalFailure");
}

#[test]
fn a_record_copied_under_another_record_key_is_detected() {
    let env = Env::new();
    let a = env.create_key();
    let b = env.create_key();
    env.disable(&b.key_id).unwrap();
    // Copying A's (Enabled) record over B's would re-enable B if it were accepted.
    let a_record = raw_get(&env.storage, &format!("k/{}", a.key_id));
    raw_put(&env.storage, &format!("k/{}", b.key_id), a_record);
    let fresh = reopened(&env);
    expect_err(fresh.try_describe(&b.key_id), "InternalFailure");
    expect_err(
        fresh.try_encrypt(&b.key_id, b"x", &ctx(&[])),
        "InternalFailure",
    );
    expect_err(env.enable(&b.key_id), "InternalFailure");
    assert_eq!(fresh.describe(&a.key_id).key_state, KeyState::Enabled);
}

#[test]
fn a_version_record_copied_under_another_key_is_detected() {
    let env = Env::new();
    let a = env.create_key();
    let b = env.create_key();
    let b_blob = env.encrypt(&b.key_id, b"for b", &ctx(&[])).ciphertext_blob;
    let a_version = raw_get(
        &env.storage,
        &format!("v/{}/{}", a.key_id, a.primary_key_version.unwrap()),
    );
    raw_put(
        &env.storage,
        &format!("v/{}/{}", b.key_id, b.primary_key_version.unwrap()),
        a_version,
    );
    let fresh = reopened(&env);
    expect_err(fresh.try_decrypt(&b_blob, &ctx(&[])), "InternalFailure");
    expect_err(
        fresh.try_encrypt(&b.key_id, b"x", &ctx(&[])),
        "InternalFailure",
    );
}

#[test]
fn a_tampered_alias_record_is_detected() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let b = env.create_key().key_id;
    env.create_alias("alias/a", &a).unwrap();
    env.create_alias("alias/b", &b).unwrap();
    // alias/b's record moved under alias/a would silently redirect alias/a to key b.
    let b_alias = raw_get(&env.storage, "a/alias/b");
    raw_put(&env.storage, "a/alias/a", b_alias);
    let fresh = reopened(&env);
    expect_err(fresh.try_describe("alias/a"), "InternalFailure");
    expect_err(
        fresh.try_encrypt("alias/a", b"x", &ctx(&[])),
        "InternalFailure",
    );
    assert_eq!(fresh.describe("alias/b").key_id, b);
}

#[test]
fn a_tampered_keyring_fails_build() {
    let env = Env::new();
    env.create_key();
    let mut keyring = raw_get(&env.storage, "m/keyring");
    let last = keyring.len() - 1;
    keyring[last] ^= 0x01;
    raw_put(&env.storage, "m/keyring", keyring);
    let e = try_build(env.storage.clone(), env.clock.clone(), env.root_key.clone()).unwrap_err();
    assert_eq!(e.code(), "InternalFailure");
}

#[test]
fn opening_a_store_with_another_root_key_fails_at_build() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let other = RootKey::generate().unwrap();
    let e = try_build(env.storage.clone(), env.clock.clone(), other).unwrap_err();
    assert_eq!(e.code(), "InternalFailure");
    assert!(e.to_string().contains("root key"), "{e}");
    // The store is unharmed: the right root key still opens it.
    let again = env.reopen();
    assert_eq!(
        again
            .describe_key(&env.me, key_req(&key))
            .unwrap()
            .key_metadata
            .key_id,
        key
    );
}

#[test]
fn stored_values_are_sealed_not_plain() {
    let env = Env::new();
    let key = env
        .create_key_with(CreateKeyRequest {
            description: Some("VISIBLE-DESCRIPTION".into()),
            ..Default::default()
        })
        .key_id;
    env.create_alias("alias/visible-alias", &key).unwrap();
    env.tag(&key, &[("visible-tag", "visible-value")]).unwrap();
    for (record, entry) in env.storage.scan(b"", None, 1000).unwrap() {
        let v = &entry.value;
        for needle in [
            &b"VISIBLE-DESCRIPTION"[..],
            b"visible-alias",
            b"visible-tag",
            b"visible-value",
            key.as_bytes(),
            b"Aliyun_AES_256",
            b"Enabled",
        ] {
            assert!(
                !contains(v, needle),
                "{} holds {} in plain",
                String::from_utf8_lossy(&record),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

// ---- concurrency ----------------------------------------------------------------------------

#[test]
fn concurrent_crypto_during_rotation_and_state_changes_never_loses_a_ciphertext() {
    const WORKERS: usize = 8;
    const MIN_SEALED: usize = 25;
    let env = Arc::new(Env::new());
    let key = env
        .create_key_with(CreateKeyRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("7d".into()),
            ..Default::default()
        })
        .key_id;
    env.create_alias("alias/hot", &key).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(WORKERS + 1));

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (env, done, start) = (env.clone(), done.clone(), start.clone());
            let key = key.clone();
            thread::spawn(move || {
                start.wait();
                let mut sealed = Vec::new();
                let mut refused = 0usize;
                let mut i = 0usize;
                while sealed.len() < MIN_SEALED || !done.load(Ordering::SeqCst) {
                    let text = format!("worker {w} message {i}");
                    let c = ctx(&[("worker", &w.to_string()), ("i", &i.to_string())]);
                    let name = if i.is_multiple_of(2) {
                        "alias/hot"
                    } else {
                        key.as_str()
                    };
                    match env.try_encrypt(name, text.as_bytes(), &c) {
                        Ok(r) => {
                            match env.try_decrypt(&r.ciphertext_blob, &c) {
                                Ok(back) => assert_eq!(&back.plaintext[..], text.as_bytes()),
                                Err(e) => assert_eq!(e.code(), "Rejected.Disabled", "{e}"),
                            }
                            sealed.push((r.ciphertext_blob, text, c, r.key_version_id));
                        }
                        Err(e) => {
                            assert_eq!(e.code(), "Rejected.Disabled", "{e}");
                            refused += 1;
                        }
                    }
                    i += 1;
                }
                (sealed, refused)
            })
        })
        .collect();

    let admin = {
        let (env, done, start, key) = (env.clone(), done.clone(), start.clone(), key.clone());
        thread::spawn(move || {
            start.wait();
            let mut rotations = 0;
            for round in 0..30 {
                match round % 3 {
                    0 => {
                        env.create_key_version(&key).unwrap();
                        rotations += 1;
                    }
                    1 => {
                        env.disable(&key).unwrap();
                        thread::yield_now();
                        env.enable(&key).unwrap();
                    }
                    _ => {
                        env.clock.advance_days(8);
                        let r = env.kms.run_maintenance(env.now()).unwrap();
                        rotations += r.rotated_keys.len();
                        env.tag(&key, &[("round", &round.to_string())]).unwrap();
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            rotations
        })
    };

    let rotations = admin.join().unwrap();
    let mut all = Vec::new();
    for w in workers {
        let (sealed, _refused) = w.join().unwrap();
        all.extend(sealed);
    }
    assert!(
        all.len() >= WORKERS * MIN_SEALED,
        "{} ciphertexts",
        all.len()
    );
    let versions = env.versions(&key);
    assert_eq!(versions.len(), 1 + rotations);
    assert_eq!(env.state(&key), KeyState::Enabled);
    // Every ciphertext made during the storm decrypts, with this engine and a restarted one.
    let fresh = env.reopen();
    for (blob, text, c, version) in &all {
        assert!(versions.contains(version));
        let r = env.decrypt(blob, c);
        assert_eq!(&r.plaintext[..], text.as_bytes());
        assert_eq!(&r.key_version_id, version);
        let r = fresh
            .decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: blob.clone(),
                    encryption_context: c.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(&r.plaintext[..], text.as_bytes());
    }
}

#[test]
fn concurrent_alias_creation_gives_each_name_to_exactly_one_key() {
    let env = Arc::new(Env::new());
    let keys: Vec<String> = (0..4).map(|_| env.create_key().key_id).collect();
    let handles: Vec<_> = keys
        .iter()
        .cloned()
        .map(|k| {
            let env = env.clone();
            thread::spawn(move || {
                (0..20)
                    .map(|i| outcome(env.create_alias(&format!("alias/race-{i}"), &k)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<&str>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for i in 0..20 {
        let winners = results.iter().filter(|r| r[i] == "OK").count();
        assert_eq!(winners, 1, "alias/race-{i}");
        assert!(results
            .iter()
            .all(|r| r[i] == "OK" || r[i] == "AliasAlreadyExists"));
    }
    let total: usize = keys.iter().map(|k| env.aliases_of(k).len()).sum();
    assert_eq!(total, 20);
    assert_eq!(env.all_aliases().len(), 20);
}
