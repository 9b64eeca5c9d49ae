//! PostgresStorage against a real PostgreSQL: the conformance suite, the change log that keeps
//! several engines' caches coherent, leases, the database going away and coming back, and two
//! engines on one database.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

#[path = "support/pg.rs"]
mod pg;

use std::time::Duration;

use kms_core::api::*;
use kms_core::{
    Batch, Caller, ChangedKeys, Changes, Kms, KmsError, Precondition, RootKey, Storage,
    StorageError,
};
use kms_storage::{conformance, PostgresOptions, PostgresStorage};
use pg::TestDatabase;

fn store(db: &TestDatabase) -> PostgresStorage {
    PostgresStorage::connect(db.url()).unwrap()
}

fn changed(c: &Changes) -> Vec<Vec<u8>> {
    match &c.keys {
        ChangedKeys::Some(keys) => keys.clone(),
        ChangedKeys::All => panic!("the whole log was reported"),
    }
}

#[test]
fn postgres_storage_passes_conformance() {
    let db = TestDatabase::create();
    conformance::run(&store(&db));
}

#[test]
fn a_second_connection_finds_the_schema_and_the_records_of_the_first() {
    let db = TestDatabase::create();
    let a = store(&db);
    let mut batch = Batch::new();
    batch.put(b"k/1".to_vec(), b"one".to_vec());
    a.commit(batch).unwrap();
    let b = store(&db);
    assert_eq!(b.get(b"k/1").unwrap().unwrap().value, b"one");
}

#[test]
fn the_change_log_names_every_committed_key_in_commit_order_to_every_reader() {
    let db = TestDatabase::create();
    let (a, b) = (store(&db), store(&db));
    let start = b.changes_since(None).unwrap();
    assert!(changed(&start).is_empty());
    let mut batch = Batch::new();
    batch.put(b"k/1".to_vec(), b"one".to_vec());
    batch.put(b"a/x".to_vec(), b"x".to_vec());
    a.commit(batch).unwrap();
    let mut batch = Batch::new();
    batch.delete(b"a/x".to_vec());
    a.commit(batch).unwrap();
    // A refused batch leaves no trace.
    let mut refused = Batch::new();
    refused.put_if(b"k/1".to_vec(), b"two".to_vec(), Precondition::Absent);
    assert!(matches!(
        a.commit(refused),
        Err(StorageError::Conflict { .. })
    ));
    let seen = b.changes_since(Some(start.cursor)).unwrap();
    assert_eq!(
        changed(&seen),
        vec![b"k/1".to_vec(), b"a/x".to_vec(), b"a/x".to_vec()]
    );
    let again = b.changes_since(Some(seen.cursor)).unwrap();
    assert!(changed(&again).is_empty());
    assert_eq!(again.cursor, seen.cursor);
}

#[test]
fn a_reader_behind_the_trimmed_log_is_told_everything_changed() {
    let db = TestDatabase::create();
    let options = PostgresOptions {
        keep_changes: Duration::ZERO,
        ..PostgresOptions::default()
    };
    let a = PostgresStorage::connect_with(db.url(), options.clone()).unwrap();
    let start = a.changes_since(None).unwrap();
    let mut batch = Batch::new();
    batch.put(b"k/1".to_vec(), b"one".to_vec());
    a.commit(batch).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The first read trims what is older than keep_changes (here: everything).
    let b = PostgresStorage::connect_with(db.url(), options).unwrap();
    let seen = b.changes_since(Some(start.cursor)).unwrap();
    assert_eq!(seen.keys, ChangedKeys::All);
    assert!(changed(&b.changes_since(Some(seen.cursor)).unwrap()).is_empty());
}

#[test]
fn a_lease_has_one_holder_until_it_expires() {
    let db = TestDatabase::create();
    let (a, b) = (store(&db), store(&db));
    let ttl = Duration::from_secs(2);
    assert!(a.try_lease("maintenance", "a", ttl).unwrap());
    assert!(!b.try_lease("maintenance", "b", ttl).unwrap());
    assert!(a.try_lease("maintenance", "a", ttl).unwrap(), "renewed");
    assert!(
        b.try_lease("other", "b", ttl).unwrap(),
        "leases are by name"
    );
    // Taken over once expired (the database's clock decides).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b.try_lease("maintenance", "b", ttl).unwrap() {
        assert!(std::time::Instant::now() < deadline, "never taken over");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!a.try_lease("maintenance", "a", ttl).unwrap());
}

#[test]
fn a_database_that_goes_away_answers_unavailable_and_is_used_again_when_back() {
    let mut db = TestDatabase::create();
    let options = PostgresOptions {
        connect_timeout: Duration::from_millis(500),
        ..PostgresOptions::default()
    };
    let s = PostgresStorage::connect_with(db.url(), options).unwrap();
    let mut batch = Batch::new();
    batch.put(b"k/1".to_vec(), b"one".to_vec());
    s.commit(batch).unwrap();
    if std::env::var("KMS_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        // A shared server is not stopped under other tests; the stop and restart run when
        // the test starts its own cluster.
        return;
    }
    db.stop_server();
    for _ in 0..3 {
        match s.get(b"k/1") {
            Err(StorageError::Unavailable(why)) => assert!(!why.is_empty()),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    let mut batch = Batch::new();
    batch.put(b"k/2".to_vec(), b"two".to_vec());
    assert!(matches!(s.commit(batch), Err(StorageError::Unavailable(_))));
    db.start_server();
    assert_eq!(s.get(b"k/1").unwrap().unwrap().value, b"one");
    let mut batch = Batch::new();
    batch.put(b"k/2".to_vec(), b"two".to_vec());
    s.commit(batch).unwrap();
}

#[test]
fn concurrent_commits_from_two_pools_on_one_row_lose_none_and_apply_none_twice() {
    let db = TestDatabase::create();
    let (a, b) = (store(&db), store(&db));
    let mut batch = Batch::new();
    batch.put(b"n".to_vec(), 0u64.to_be_bytes().to_vec());
    a.commit(batch).unwrap();
    let bump = |s: &PostgresStorage| {
        let mut done = 0;
        while done < 50 {
            let cur = s.get(b"n").unwrap().unwrap();
            let n = u64::from_be_bytes(cur.value.clone().try_into().unwrap());
            let mut batch = Batch::new();
            batch.put_if(
                b"n".to_vec(),
                (n + 1).to_be_bytes().to_vec(),
                Precondition::Revision(cur.revision),
            );
            match s.commit(batch) {
                Ok(()) => done += 1,
                Err(StorageError::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| bump(&a));
        scope.spawn(|| bump(&b));
    });
    let n = a.get(b"n").unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(n.value.try_into().unwrap()), 100);
}

// ---- two engines on one database ----------------------------------------------------------

const ROOT: [u8; 32] = [7; 32];

fn engine(db: &TestDatabase, strict: bool) -> Kms {
    Kms::builder()
        .storage(store(db))
        .root_key(RootKey::from_bytes(&ROOT).unwrap())
        .account_id("1")
        .strict_revalidation(strict)
        .build()
        .unwrap()
}

fn me() -> Caller {
    Caller::account_root("1")
}

fn encrypt(kms: &Kms, key: &str) -> Result<Vec<u8>, KmsError> {
    kms.encrypt(
        &me(),
        EncryptRequest {
            key_id: key.into(),
            plaintext: b"hello".to_vec().into(),
            ..Default::default()
        },
    )
    .map(|r| r.ciphertext_blob)
}

fn decrypt(kms: &Kms, blob: &[u8]) -> Result<Vec<u8>, KmsError> {
    kms.decrypt(
        &me(),
        DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            ..Default::default()
        },
    )
    .map(|r| r.plaintext.to_vec())
}

fn create(kms: &Kms) -> String {
    kms.create_key(&me(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id
}

#[test]
fn a_key_created_on_one_engine_is_usable_on_the_other_at_once() {
    let db = TestDatabase::create();
    let (a, b) = (engine(&db, false), engine(&db, false));
    let key = create(&a);
    let blob = encrypt(&b, &key).unwrap();
    assert_eq!(decrypt(&a, &blob).unwrap(), b"hello");
    // A version made on A (rotation) decrypts on B, whose cache had the key already.
    a.create_key_version(
        &me(),
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    let newer = encrypt(&a, &key).unwrap();
    assert_eq!(decrypt(&b, &newer).unwrap(), b"hello");
    // An alias made on A resolves on B.
    a.create_alias(
        &me(),
        AliasRequest {
            alias_name: "alias/shared".into(),
            key_id: key.clone(),
        },
    )
    .unwrap();
    assert!(encrypt(&b, "alias/shared").is_ok());
}

#[test]
fn a_change_on_one_engine_is_honoured_by_the_other_once_it_follows_the_log() {
    let db = TestDatabase::create();
    let (a, b) = (engine(&db, false), engine(&db, false));
    let key = create(&a);
    let other = create(&a);
    encrypt(&b, &key).unwrap();
    a.create_alias(
        &me(),
        AliasRequest {
            alias_name: "alias/moving".into(),
            key_id: key.clone(),
        },
    )
    .unwrap();
    let blob = encrypt(&b, "alias/moving").unwrap();
    // DisableKey and an alias move on A; B is told at its next follow_changes.
    a.disable_key(
        &me(),
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    a.update_alias(
        &me(),
        AliasRequest {
            alias_name: "alias/moving".into(),
            key_id: other.clone(),
        },
    )
    .unwrap();
    assert!(b.follow_changes().unwrap() > 0);
    let refused = encrypt(&b, &key).unwrap_err();
    assert_eq!(refused.code(), "Rejected.Disabled");
    assert_eq!(decrypt(&b, &blob).unwrap_err().code(), "Rejected.Disabled");
    let moved = encrypt(&b, "alias/moving").unwrap();
    assert_eq!(decrypt(&a, &moved).unwrap(), b"hello");
    let described = b
        .describe_key(
            &me(),
            KeyIdRequest {
                key_id: "alias/moving".into(),
            },
        )
        .unwrap();
    assert_eq!(described.key_metadata.key_id, other);
    // ScheduleKeyDeletion on A, seen by B.
    a.enable_key(
        &me(),
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    b.follow_changes().unwrap();
    encrypt(&b, &key).unwrap();
    a.schedule_key_deletion(
        &me(),
        ScheduleKeyDeletionRequest {
            key_id: key.clone(),
            pending_window_in_days: Some(7),
        },
    )
    .unwrap();
    b.follow_changes().unwrap();
    assert_eq!(
        encrypt(&b, &key).unwrap_err().code(),
        "Rejected.PendingDeletion"
    );
}

#[test]
fn strict_mode_honours_another_engines_change_on_the_next_call() {
    let db = TestDatabase::create();
    let a = engine(&db, false);
    let b = engine(&db, true);
    let key = create(&a);
    let blob = encrypt(&b, &key).unwrap();
    a.disable_key(
        &me(),
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    // No follow_changes: strict mode reads the key's revision on every call.
    assert_eq!(encrypt(&b, &key).unwrap_err().code(), "Rejected.Disabled");
    assert_eq!(decrypt(&b, &blob).unwrap_err().code(), "Rejected.Disabled");
    a.enable_key(
        &me(),
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    assert_eq!(decrypt(&b, &blob).unwrap(), b"hello");
}

#[test]
fn an_engine_with_another_root_key_is_refused_before_it_writes() {
    let db = TestDatabase::create();
    let a = engine(&db, false);
    create(&a);
    let s = store(&db);
    let before = s.scan(b"", None, 10_000).unwrap();
    let wrong = Kms::builder()
        .storage(store(&db))
        .root_key(RootKey::from_bytes(&[8; 32]).unwrap())
        .build();
    assert!(wrong.is_err());
    let after = s.scan(b"", None, 10_000).unwrap();
    assert_eq!(before, after, "the refused engine wrote nothing");
}
