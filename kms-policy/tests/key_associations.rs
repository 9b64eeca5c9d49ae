//! The "key association" of Alibaba's key management guide: cryptographic calls made through an
//! integrated service record (service, last use to the minute) per key, visible at once, persisted
//! by maintenance, and removed with the key.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::{Caller, Clock, Kms, KmsError, Storage, UnixTime};

fn associations(kms: &Kms, caller: &Caller, key: &str) -> Result<Vec<(String, i64)>, KmsError> {
    kms.list_key_associations(caller, KeyIdRequest { key_id: key.into() })
        .map(|r| {
            r.associations
                .into_iter()
                .map(|a| (a.service, a.last_used.secs()))
                .collect()
        })
}

fn stored_associations(env: &Env) -> usize {
    env.storage.scan(b"u/", None, 10_000).unwrap().len()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(s, t)| ((*s).to_owned(), *t)).collect()
}

#[test]
fn a_crypto_call_through_a_service_is_visible_at_once_to_the_minute() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    env.clock.advance(37);
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    assert_eq!(
        associations(&env.kms, &root(), &key).unwrap(),
        pairs(&[("oss", START.secs())])
    );
    // A later use moves the last use forward, to its minute.
    env.clock.advance(130);
    let blob = encrypt(&env.kms, &root(), &key).unwrap();
    decrypt(&env.kms, &via(bob(), "oss"), &blob).unwrap();
    assert_eq!(
        associations(&env.kms, &root(), &key).unwrap(),
        pairs(&[("oss", START.secs() + 120)])
    );
}

#[test]
fn every_crypto_operation_through_a_service_records_it() {
    let env = Env::new().with_full_identity_policies();
    let source = env.key(&root(), None);
    let dest = env.key(&root(), None);
    let blob = encrypt(&env.kms, &root(), &source).unwrap();
    assert!(associations(&env.kms, &root(), &source).unwrap().is_empty());
    decrypt(&env.kms, &via(alice(), "ecs"), &blob).unwrap();
    generate_data_key(&env.kms, &via(alice(), "rds"), &source).unwrap();
    encrypt(&env.kms, &via(alice(), "oss"), &source).unwrap();
    re_encrypt(&env.kms, &via(alice(), "sls"), &blob, &dest).unwrap();
    let t = START.secs();
    assert_eq!(
        associations(&env.kms, &root(), &source).unwrap(),
        pairs(&[("ecs", t), ("oss", t), ("rds", t), ("sls", t)])
    );
    // ReEncrypt used the destination too.
    assert_eq!(
        associations(&env.kms, &root(), &dest).unwrap(),
        pairs(&[("sls", t)])
    );
}

#[test]
fn calls_without_a_service_record_nothing() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    let blob = encrypt(&env.kms, &alice(), &key).unwrap();
    decrypt(&env.kms, &app(), &blob).unwrap();
    generate_data_key(&env.kms, &root(), &key).unwrap();
    re_encrypt(&env.kms, &bob(), &blob, &key).unwrap();
    assert!(associations(&env.kms, &root(), &key).unwrap().is_empty());
    let report = env.kms.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(report.associations_written, 0);
    assert_eq!(stored_associations(&env), 0);
}

#[test]
fn denied_calls_through_a_service_record_nothing() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    let outsider = via(partner(), "oss");
    assert_denied(encrypt(&env.kms, &outsider, &key), "kms:Encrypt", &outsider);
    assert!(associations(&env.kms, &root(), &key).unwrap().is_empty());
    // Nor do calls refused by the key's state.
    env.kms
        .disable_key(
            &root(),
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    let e = expect_err(encrypt(&env.kms, &via(alice(), "oss"), &key));
    assert_eq!(e.code(), "Rejected.Disabled");
    assert!(associations(&env.kms, &root(), &key).unwrap().is_empty());
}

#[test]
fn associations_survive_maintenance_and_a_restart() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    let service_key = env.kms.create_service_key("oss").unwrap().key_id;
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    encrypt(&env.kms, &via(alice(), "oss"), &service_key).unwrap();
    env.clock.advance(61);
    encrypt(&env.kms, &via(alice(), "ecs"), &key).unwrap();
    let report = env.kms.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(report.associations_written, 3);
    assert_eq!(stored_associations(&env), 3);
    let t = START.secs();
    let expected = pairs(&[("ecs", t + 60), ("oss", t)]);
    assert_eq!(associations(&env.kms, &root(), &key).unwrap(), expected);
    let restarted = env.reopen();
    assert_eq!(associations(&restarted, &root(), &key).unwrap(), expected);
    assert_eq!(
        associations(&restarted, &root(), &service_key).unwrap(),
        pairs(&[("oss", t)])
    );
    // A later use through the restarted engine moves the stored record forward.
    env.clock.advance(600);
    encrypt(&restarted, &via(bob(), "oss"), &key).unwrap();
    assert_eq!(
        associations(&restarted, &root(), &key).unwrap(),
        pairs(&[("ecs", t + 60), ("oss", t + 660)])
    );
    restarted.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(
        associations(&env.reopen(), &root(), &key).unwrap(),
        pairs(&[("ecs", t + 60), ("oss", t + 660)])
    );
    // A second maintenance pass has nothing new to write.
    assert_eq!(
        restarted
            .run_maintenance(env.clock.now())
            .unwrap()
            .associations_written,
        0
    );
}

#[test]
fn listing_associations_needs_describe_key() {
    // alice may use keys through her identity policy; bob has none.
    let env = Env::new();
    env.authz
        .attach_identity_policy(&alice().arn(), FULL_ACCESS)
        .unwrap();
    let key = env.key(&root(), None);
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    assert_denied(
        associations(&env.kms, &partner(), &key),
        "kms:DescribeKey",
        &partner(),
    );
    let text = kms_policy::PolicyBuilder::new(OWNER)
        .user("acs:ram::1234:user/alice")
        .build();
    set_policy(&env.kms, &root(), &key, &text).unwrap();
    // Users may describe, so they may check associations; an unnamed principal may not.
    assert_eq!(associations(&env.kms, &alice(), &key).unwrap().len(), 1);
    assert_denied(
        associations(&env.kms, &bob(), &key),
        "kms:DescribeKey",
        &bob(),
    );
}

#[test]
fn associations_can_be_checked_on_a_key_pending_deletion() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    env.kms.run_maintenance(env.clock.now()).unwrap();
    schedule_deletion(&env.kms, &root(), &key).unwrap();
    assert_eq!(
        associations(&env.kms, &root(), &key).unwrap(),
        pairs(&[("oss", START.secs())])
    );
}

#[test]
fn purging_a_key_removes_its_associations() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    let kept = env.key(&root(), None);
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    encrypt(&env.kms, &via(alice(), "oss"), &kept).unwrap();
    env.kms.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(stored_associations(&env), 2);
    schedule_deletion(&env.kms, &root(), &key).unwrap();
    env.clock.advance_days(8);
    let report = env.kms.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(report.purged_keys, vec![key.clone()]);
    assert_eq!(stored_associations(&env), 1);
    let e = expect_err(associations(&env.kms, &root(), &key));
    assert_eq!(e.code(), "Forbidden.KeyNotFound");
    assert_eq!(associations(&env.kms, &root(), &kept).unwrap().len(), 1);
}

#[test]
fn associations_noted_but_not_yet_written_are_dropped_with_a_purged_key() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    schedule_deletion(&env.kms, &root(), &key).unwrap();
    env.clock.advance_days(8);
    let report = env.kms.run_maintenance(env.clock.now()).unwrap();
    assert_eq!(report.purged_keys, vec![key]);
    assert_eq!(report.associations_written, 0);
    assert_eq!(stored_associations(&env), 0);
}

#[test]
fn the_last_use_is_a_whole_minute() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    for offset in [0, 1, 59, 60, 61, 3599] {
        env.clock.set(UnixTime(START.secs() + offset));
        encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
        let list = associations(&env.kms, &root(), &key).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1 % 60, 0, "offset {offset}");
        assert_eq!(
            list[0].1,
            START.secs() + offset - offset % 60,
            "offset {offset}"
        );
    }
}
