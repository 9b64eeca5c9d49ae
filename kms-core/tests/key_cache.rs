//! The key cache is bounded: past its capacity the least recently used keys are evicted and
//! read again from the store when next needed, with the same answers.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use kms_core::api::*;
use kms_core::{Kms, ManualClock, RootKey, Storage};
use kms_storage::MemoryStorage;

fn engine(capacity: usize) -> (Kms, kms_core::Caller) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let kms = Kms::builder()
        .shared_storage(storage)
        .clock(Arc::new(ManualClock::new(START)))
        .root_key(RootKey::generate().unwrap())
        .account_id(ACCOUNT)
        .region(REGION)
        .key_cache_capacity(capacity)
        .build()
        .unwrap();
    (kms, kms_core::Caller::account_root(ACCOUNT))
}

fn encrypt(kms: &Kms, me: &kms_core::Caller, key: &str, text: &[u8]) -> Vec<u8> {
    kms.encrypt(
        me,
        EncryptRequest {
            key_id: key.into(),
            plaintext: text.to_vec().into(),
            ..Default::default()
        },
    )
    .unwrap()
    .ciphertext_blob
}

#[test]
fn the_cache_never_holds_more_than_its_capacity_and_evicted_keys_still_work() {
    let (kms, me) = engine(10);
    let mut keys = Vec::new();
    for _ in 0..50 {
        keys.push(
            kms.create_key(&me, CreateKeyRequest::default())
                .unwrap()
                .key_metadata
                .key_id,
        );
        assert!(kms.cache_stats().keys <= 10);
    }
    let blobs: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| encrypt(&kms, &me, k, k.as_bytes()))
        .collect();
    assert!(kms.cache_stats().keys <= 10);
    // Every key decrypts its blob, cached or not.
    for (k, blob) in keys.iter().zip(&blobs) {
        let plain = kms
            .decrypt(
                &me,
                DecryptRequest {
                    ciphertext_blob: blob.clone(),
                    ..Default::default()
                },
            )
            .unwrap()
            .plaintext;
        assert_eq!(&plain[..], k.as_bytes());
    }
    let stats = kms.cache_stats();
    assert!(stats.keys <= 10);
    assert!(stats.misses > 0, "evicted keys were read again");
}

#[test]
fn a_key_in_use_stays_cached_while_others_come_and_go() {
    let (kms, me) = engine(8);
    let hot = kms
        .create_key(&me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    for _ in 0..40 {
        let cold = kms
            .create_key(&me, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        encrypt(&kms, &me, &cold, b"x");
        encrypt(&kms, &me, &hot, b"x");
    }
    let before = kms.cache_stats().misses;
    encrypt(&kms, &me, &hot, b"x");
    assert_eq!(kms.cache_stats().misses, before, "the hot key was a hit");
}

#[test]
fn changes_to_an_evicted_key_are_seen_when_it_is_loaded_again() {
    let (kms, me) = engine(2);
    let key = kms
        .create_key(&me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    kms.disable_key(
        &me,
        KeyIdRequest {
            key_id: key.clone(),
        },
    )
    .unwrap();
    for _ in 0..5 {
        let k = kms
            .create_key(&me, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        encrypt(&kms, &me, &k, b"x");
    }
    let e = kms
        .encrypt(
            &me,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"x".to_vec().into(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "Rejected.Disabled");
    let state = kms
        .describe_key(&me, KeyIdRequest { key_id: key })
        .unwrap()
        .key_metadata
        .key_state;
    assert_eq!(state.as_str(), "Disabled");
}
