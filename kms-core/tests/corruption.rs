//! One record that no longer opens (a flipped bit) is reported, never served, and isolated:
//! lists answer with the rest, maintenance goes on for every other record, `fsck` finds it
//! and `quarantine` moves it aside.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::{Batch, Storage};

/// Flips one bit in the middle of the stored (sealed) record under `key`.
fn flip_a_bit(env: &Env, key: &[u8]) {
    let mut entry = env.storage.get(key).unwrap().unwrap();
    let mid = entry.value.len() / 2;
    entry.value[mid] ^= 0x10;
    let mut batch = Batch::new();
    batch.put(key.to_vec(), entry.value);
    env.storage.commit(batch).unwrap();
}

#[test]
fn a_corrupt_key_record_is_isolated_reported_and_quarantined() {
    let env = Env::new();
    let good = env.create_key().key_id;
    let due = env.create_key().key_id;
    let bad = env.create_key().key_id;
    env.schedule_deletion(&due, 7).unwrap();
    // A restarted engine has nothing cached: every read goes to the store.
    let record_key = format!("k/{bad}").into_bytes();
    flip_a_bit(&env, &record_key);
    let kms = env.reopen();

    // Never served as data: the key answers an error, not a wrong record.
    let e = kms
        .describe_key(
            &env.me,
            KeyIdRequest {
                key_id: bad.clone(),
            },
        )
        .unwrap_err();
    assert_eq!(e.http_status(), 500, "{e}");
    // Lists answer with the rest.
    let listed = kms.list_keys(&env.me, ListKeysRequest::default()).unwrap();
    let ids: Vec<&str> = listed.keys.key.iter().map(|k| k.key_id.as_str()).collect();
    assert!(ids.contains(&good.as_str()) && ids.contains(&due.as_str()));
    assert!(!ids.contains(&bad.as_str()));
    assert_eq!(listed.total_count, 2);

    // Maintenance carries on: the key past its deletion date is purged.
    env.clock.advance_days(8);
    let report = kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.purged_keys, vec![due.clone()]);
    assert_eq!(report.corrupt_records, 1);
    let known = kms.corrupt_records();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].key, record_key);

    // fsck finds exactly it; quarantine takes it out and keeps its bytes.
    let (checked, corrupt) = kms.fsck().unwrap();
    assert!(checked >= 3, "{checked}");
    assert_eq!(corrupt.len(), 1);
    assert_eq!(corrupt[0].key, record_key);
    // A record that opens is not quarantined.
    assert!(kms
        .quarantine(format!("k/{good}").as_bytes(), |_| Ok(()))
        .is_err());
    // When the bytes cannot be kept, the record stays.
    let refused = kms.quarantine(&record_key, |_| {
        Err(kms_core::KmsError::internal("disk full"))
    });
    assert!(refused.is_err());
    assert_eq!(kms.fsck().unwrap().1.len(), 1);
    let mut kept = Vec::new();
    kms.quarantine(&record_key, |raw| {
        kept = raw.to_vec();
        Ok(())
    })
    .unwrap();
    assert!(!kept.is_empty());
    assert!(kms.fsck().unwrap().1.iter().all(|r| r.key != record_key));
    assert!(kms.corrupt_records().is_empty());
    let e = kms
        .describe_key(&env.me, KeyIdRequest { key_id: bad })
        .unwrap_err();
    assert_eq!(e.code(), "Forbidden.KeyNotFound");
    // The good key still works end to end.
    let blob = kms
        .encrypt(
            &env.me,
            EncryptRequest {
                key_id: good,
                plaintext: b"still here".to_vec().into(),
                ..Default::default()
            },
        )
        .unwrap()
        .ciphertext_blob;
    assert!(!blob.is_empty());
}

#[test]
fn a_corrupt_secret_does_not_stop_secret_listing() {
    let env = Env::new();
    for name in ["a", "b", "c"] {
        env.kms
            .create_secret(
                &env.me,
                CreateSecretRequest {
                    secret_name: name.into(),
                    secret_data: SecretData::new("v"),
                    version_id: "v1".into(),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    flip_a_bit(&env, b"s/b");
    let kms = env.reopen();
    let listed = kms
        .list_secrets(&env.me, ListSecretsRequest::default())
        .unwrap();
    let names: Vec<&str> = listed
        .secret_list
        .secret
        .iter()
        .map(|s| s.secret_name.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert!(kms.run_maintenance(env.now()).is_ok());
    assert_eq!(kms.fsck().unwrap().1.len(), 1);
}
