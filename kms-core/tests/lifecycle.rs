#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Key lifecycle over time: scheduled deletion and its window, deletion protection, keys past
//! their DeleteDate, purging by maintenance, cancellation, and the Enable/Disable no-ops.

mod common;

use common::*;
use kms_core::api::*;
use kms_core::api::{DeletionProtection, KeyState};
use kms_core::{KmsError, Storage};

const CONTEXT: [(&str, &str); 1] = [("app", "billing")];

#[test]
fn schedule_key_deletion_accepts_windows_of_7_to_366_days() {
    let env = Env::new();
    for days in [7, 8, 30, 365, 366] {
        let key = env.create_key().key_id;
        env.schedule_deletion(&key, days).unwrap();
        let m = env.describe(&key);
        assert_eq!(m.key_state, KeyState::PendingDeletion, "{days} days");
        assert_eq!(
            m.delete_date,
            Some(START.plus_secs(days * DAY)),
            "{days} days"
        );
    }
}

#[test]
fn schedule_key_deletion_rejects_windows_outside_7_to_366_days() {
    let env = Env::new();
    let key = env.create_key().key_id;
    for days in [i64::MIN, -7, 0, 1, 6, 367, 1000, i64::MAX] {
        let e = expect_param_err(
            env.schedule_deletion(&key, days),
            "InvalidParameter",
            "PendingWindowInDays",
        );
        assert_eq!(e.http_status(), 400);
    }
    expect_param_err(
        env.kms.schedule_key_deletion(
            &env.me,
            ScheduleKeyDeletionRequest {
                key_id: key.clone(),
                pending_window_in_days: None,
            },
        ),
        "MissingParameter",
        "PendingWindowInDays",
    );
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.delete_date, None);
}

#[test]
fn pending_window_decodes_from_wire_text() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let req: ScheduleKeyDeletionRequest = kms_core::api::decode_request(serde_json::json!({
        "KeyId": key, "PendingWindowInDays": "10"
    }))
    .unwrap();
    env.kms.schedule_key_deletion(&env.me, req).unwrap();
    assert_eq!(
        env.describe(&key).delete_date,
        Some(START.plus_secs(10 * DAY))
    );
    expect_param_err(
        kms_core::api::decode_request::<ScheduleKeyDeletionRequest>(serde_json::json!({
            "KeyId": key, "PendingWindowInDays": "ten"
        })),
        "InvalidParameter",
        "PendingWindowInDays",
    );
}

#[test]
fn delete_date_is_now_plus_the_window() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.clock.advance(12_345);
    env.schedule_deletion(&key, 9).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.delete_date, Some(START.plus_secs(12_345 + 9 * DAY)));
    // On the wire as ISO 8601 UTC with Z.
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        json["DeleteDate"],
        serde_json::json!(START.plus_secs(12_345 + 9 * DAY).to_string())
    );
    assert!(json["DeleteDate"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn delete_date_is_absent_unless_pending_deletion() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let json = serde_json::to_value(env.describe(&key)).unwrap();
    assert!(json.get("DeleteDate").is_none(), "{json}");
    assert_eq!(env.describe(&key).delete_date, None);
}

#[test]
fn deletion_protection_refuses_scheduling_and_turning_it_off_allows_it() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.kms
        .set_deletion_protection(
            &env.me,
            SetDeletionProtectionRequest {
                protected_resource_arn: env.describe(&key).arn,
                enable_deletion_protection: Some(true),
                deletion_protection_description: Some("production data".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let m = env.describe(&key);
    assert_eq!(m.deletion_protection, DeletionProtection::Enabled);
    assert_eq!(
        m.deletion_protection_description.as_deref(),
        Some("production data")
    );

    let e = expect_err(
        env.schedule_deletion(&key, 7),
        "Rejected.DeletionProtection",
    );
    assert_eq!(e.http_status(), 409);
    assert_eq!(env.state(&key), KeyState::Enabled);
    // A Disabled protected key is protected too.
    env.disable(&key).unwrap();
    expect_err(
        env.schedule_deletion(&key, 7),
        "Rejected.DeletionProtection",
    );
    assert_eq!(env.state(&key), KeyState::Disabled);

    env.set_protection(&key, false).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.deletion_protection, DeletionProtection::Disabled);
    assert_eq!(m.deletion_protection_description, None);
    env.schedule_deletion(&key, 7).unwrap();
    assert_eq!(env.state(&key), KeyState::PendingDeletion);
}

#[test]
fn set_deletion_protection_requires_its_parameters() {
    let env = Env::new();
    let key = env.create_key().key_id;
    expect_param_err(
        env.kms.set_deletion_protection(
            &env.me,
            SetDeletionProtectionRequest {
                enable_deletion_protection: Some(true),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "ProtectedResourceArn",
    );
    expect_param_err(
        env.kms.set_deletion_protection(
            &env.me,
            SetDeletionProtectionRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "EnableDeletionProtection",
    );
    assert_eq!(
        env.describe(&key).deletion_protection,
        DeletionProtection::Disabled
    );
}

/// Every operation that names a key, each returning its outcome code.
fn every_key_operation(
    env: &Env,
    key: &str,
    blob: &[u8],
    other: &str,
) -> Vec<(&'static str, &'static str)> {
    let me = &env.me;
    let k = || key.to_owned();
    let kms = &env.kms;
    vec![
        ("DescribeKey", outcome(env.try_describe(key))),
        (
            "Encrypt",
            outcome(env.try_encrypt(key, b"x", &ctx(&CONTEXT))),
        ),
        ("Decrypt", outcome(env.try_decrypt(blob, &ctx(&CONTEXT)))),
        (
            "GenerateDataKey",
            outcome(kms.generate_data_key(
                me,
                GenerateDataKeyRequest {
                    key_id: k(),
                    ..Default::default()
                },
            )),
        ),
        (
            "GenerateDataKeyWithoutPlaintext",
            outcome(kms.generate_data_key_without_plaintext(
                me,
                GenerateDataKeyRequest {
                    key_id: k(),
                    ..Default::default()
                },
            )),
        ),
        (
            "ReEncrypt (source)",
            outcome(kms.re_encrypt(
                me,
                ReEncryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    source_encryption_context: ctx(&CONTEXT),
                    destination_key_id: other.to_owned(),
                    ..Default::default()
                },
            )),
        ),
        (
            "ReEncrypt (destination)",
            outcome(kms.re_encrypt(
                me,
                ReEncryptRequest {
                    ciphertext_blob: env.encrypt(other, b"o", &ctx(&[])).ciphertext_blob,
                    destination_key_id: k(),
                    ..Default::default()
                },
            )),
        ),
        ("EnableKey", outcome(env.enable(key))),
        ("DisableKey", outcome(env.disable(key))),
        ("CancelKeyDeletion", outcome(env.cancel_deletion(key))),
        (
            "ScheduleKeyDeletion",
            outcome(env.schedule_deletion(key, 7)),
        ),
        (
            "SetDeletionProtection",
            outcome(env.set_protection(key, true)),
        ),
        (
            "UpdateKeyDescription",
            outcome(kms.update_key_description(
                me,
                UpdateKeyDescriptionRequest {
                    key_id: k(),
                    description: "d".into(),
                },
            )),
        ),
        ("TagResource", outcome(env.tag(key, &[("a", "b")]))),
        (
            "UntagResource",
            outcome(kms.untag_resource(
                me,
                UntagResourceRequest {
                    key_id: k(),
                    tag_keys: vec!["team".into()],
                    ..Default::default()
                },
            )),
        ),
        (
            "ListResourceTags",
            outcome(kms.list_resource_tags(me, key_req(key))),
        ),
        ("CreateKeyVersion", outcome(env.create_key_version(key))),
        (
            "UpdateRotationPolicy",
            outcome(env.set_rotation(key, true, Some("7d"))),
        ),
        (
            "DescribeKeyVersion",
            outcome(
                kms.describe_key_version(
                    me,
                    DescribeKeyVersionRequest {
                        key_id: k(),
                        key_version_id: kms_core::internal::blob::decode(blob)
                            .unwrap()
                            .version_id
                            .to_owned(),
                    },
                ),
            ),
        ),
        (
            "ListKeyVersions",
            outcome(kms.list_key_versions(
                me,
                ListKeyVersionsRequest {
                    key_id: k(),
                    ..Default::default()
                },
            )),
        ),
        (
            "ListAliasesByKeyId",
            outcome(kms.list_aliases_by_key_id(
                me,
                ListAliasesByKeyIdRequest {
                    key_id: k(),
                    ..Default::default()
                },
            )),
        ),
        ("CreateAlias", outcome(env.create_alias("alias/late", key))),
        ("UpdateAlias", outcome(env.update_alias("alias/other", key))),
    ]
}

/// A key scheduled for deletion in 7 days, with an alias, a tag and a ciphertext, and another
/// Enabled key with the alias `alias/other`.
fn doomed() -> (Env, String, Vec<u8>, String) {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.create_alias("alias/doomed", &key).unwrap();
    env.tag(&key, &[("team", "core")]).unwrap();
    let blob = env
        .encrypt(&key, b"payroll", &ctx(&CONTEXT))
        .ciphertext_blob;
    let other = env.create_key().key_id;
    env.create_alias("alias/other", &other).unwrap();
    env.schedule_deletion(&key, 7).unwrap();
    (env, key, blob, other)
}

#[test]
fn a_key_past_its_delete_date_is_not_found_for_every_operation_before_maintenance() {
    let (env, key, blob, other) = doomed();
    let delete_date = env.describe(&key).delete_date.unwrap();

    // One second before: still there, PendingDeletion.
    env.clock.set(delete_date.plus_secs(-1));
    assert_eq!(env.state(&key), KeyState::PendingDeletion);

    env.clock.set(delete_date);
    for name in [
        key.clone(),
        "alias/doomed".into(),
        env.kms.scope().key_arn(&key),
    ] {
        for (op, got) in every_key_operation(&env, &name, &blob, &other) {
            assert_eq!(got, "Forbidden.KeyNotFound", "{op} with {name}");
        }
    }
    let e = env.try_describe(&key).unwrap_err();
    assert_eq!(e.http_status(), 404);
    assert!(!env.all_keys().contains(&key), "ListKeys hides it");
    assert!(
        env.all_aliases().iter().all(|a| a.key_id != key),
        "ListAliases hides its aliases"
    );
    // A restarted engine (empty caches) agrees.
    let fresh = env.reopen();
    expect_err(
        fresh.describe_key(&env.me, key_req(&key)),
        "Forbidden.KeyNotFound",
    );
    // The other key is unaffected.
    assert_eq!(env.state(&other), KeyState::Enabled);
}

#[test]
fn run_maintenance_before_delete_date_purges_nothing() {
    let (env, key, blob, _) = doomed();
    let delete_date = env.describe(&key).delete_date.unwrap();
    let report = env.kms.run_maintenance(delete_date.plus_secs(-1)).unwrap();
    assert!(report.purged_keys.is_empty());
    env.cancel_deletion(&key).unwrap();
    assert_eq!(
        &env.decrypt(&blob, &ctx(&CONTEXT)).plaintext[..],
        b"payroll"
    );
}

#[test]
fn run_maintenance_purges_the_key_its_versions_and_aliases() {
    let (env, key, blob, other) = doomed();
    // Two more versions, to purge more than one.
    env.cancel_deletion(&key).unwrap();
    env.create_key_version(&key).unwrap();
    let blob2 = env.encrypt(&key, b"second", &ctx(&[])).ciphertext_blob;
    env.create_alias("alias/doomed-2", &key).unwrap();
    env.schedule_deletion(&key, 7).unwrap();
    let delete_date = env.describe(&key).delete_date.unwrap();
    assert_eq!(env.versions(&key).len(), 2);

    env.clock.set(delete_date);
    let report = env.kms.run_maintenance(delete_date).unwrap();
    assert_eq!(report.purged_keys, vec![key.clone()]);
    assert!(report.rotated_keys.is_empty());

    // Gone from storage: the key record, every version and every alias record.
    let storage = &env.storage;
    assert!(storage
        .get(format!("k/{key}").as_bytes())
        .unwrap()
        .is_none());
    assert!(storage
        .scan(format!("v/{key}/").as_bytes(), None, 100)
        .unwrap()
        .is_empty());
    for alias in ["alias/doomed", "alias/doomed-2"] {
        assert!(storage
            .get(format!("a/{alias}").as_bytes())
            .unwrap()
            .is_none());
    }
    // ...and from the API.
    expect_err(env.try_describe(&key), "Forbidden.KeyNotFound");
    let aliases = env.all_aliases();
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].alias_name, "alias/other");
    expect_err(env.try_describe("alias/doomed"), "Forbidden.AliasNotFound");
    // Its ciphertexts can never decrypt again, with any engine.
    for b in [&blob, &blob2] {
        expect_err(env.try_decrypt(b, &ctx(&CONTEXT)), "Forbidden.KeyNotFound");
    }
    let fresh = env.reopen();
    expect_err(
        fresh.decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: blob.clone(),
                encryption_context: ctx(&CONTEXT),
                ..Default::default()
            },
        ),
        "Forbidden.KeyNotFound",
    );
    // The alias names are free again.
    env.create_alias("alias/doomed", &other).unwrap();
    assert_eq!(env.describe("alias/doomed").key_id, other);
    // A second pass has nothing to do; the other key survives.
    let again = env.kms.run_maintenance(delete_date.plus_secs(DAY)).unwrap();
    assert!(again.purged_keys.is_empty());
    assert_eq!(env.all_keys(), vec![other]);
}

#[test]
fn alias_of_a_key_past_its_delete_date_is_reusable_before_maintenance() {
    let (env, key, _, other) = doomed();
    env.clock.set(env.describe(&key).delete_date.unwrap());
    // ListAliases no longer shows it, so CreateAlias must not call it taken.
    assert!(env
        .all_aliases()
        .iter()
        .all(|a| a.alias_name != "alias/doomed"));
    env.create_alias("alias/doomed", &other).unwrap();
    assert_eq!(env.describe("alias/doomed").key_id, other);
    assert_eq!(env.aliases_of(&other), ["alias/doomed", "alias/other"]);
    // Maintenance then purges the old key without taking the alias from its new key.
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.purged_keys.is_empty() || report.purged_keys == vec![key.clone()]);
    assert!(env
        .storage
        .get(format!("k/{key}").as_bytes())
        .unwrap()
        .is_none());
    assert_eq!(env.describe("alias/doomed").key_id, other);
    let fresh = env.reopen();
    let found = fresh
        .describe_key(&env.me, key_req("alias/doomed"))
        .unwrap();
    assert_eq!(found.key_metadata.key_id, other);
}

#[test]
fn cancel_key_deletion_returns_key_to_enabled_and_clears_delete_date() {
    let (env, key, blob, _) = doomed();
    env.clock.advance_days(6);
    env.cancel_deletion(&key).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.delete_date, None);
    // Long after the old DeleteDate it is still there, usable, and maintenance leaves it.
    env.clock.advance_days(30);
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.purged_keys.is_empty());
    assert_eq!(
        &env.decrypt(&blob, &ctx(&CONTEXT)).plaintext[..],
        b"payroll"
    );
    assert_eq!(env.aliases_of(&key), ["alias/doomed"]);
    assert_eq!(env.tags(&key), [("team".to_string(), "core".to_string())]);
    // A second cancel is refused: the key is no longer PendingDeletion.
    expect_err(env.cancel_deletion(&key), "Rejected.StateModifiedFailed");
}

#[test]
fn enable_on_enabled_and_disable_on_disabled_are_no_ops() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let record_key = format!("k/{key}");
    let revision = |env: &Env| {
        env.storage
            .get(record_key.as_bytes())
            .unwrap()
            .unwrap()
            .revision
    };

    let before = env.describe(&key);
    let rev = revision(&env);
    env.enable(&key).unwrap();
    assert_eq!(env.describe(&key), before);
    assert_eq!(
        revision(&env),
        rev,
        "EnableKey on an Enabled key writes nothing"
    );

    env.disable(&key).unwrap();
    let disabled = env.describe(&key);
    assert_eq!(disabled.key_state, KeyState::Disabled);
    let rev = revision(&env);
    env.disable(&key).unwrap();
    assert_eq!(env.describe(&key), disabled);
    assert_eq!(
        revision(&env),
        rev,
        "DisableKey on a Disabled key writes nothing"
    );
}

#[test]
fn state_changes_survive_a_restart() {
    let env = Env::new();
    let disabled = env.create_key().key_id;
    env.disable(&disabled).unwrap();
    let pending = env.create_key().key_id;
    env.schedule_deletion(&pending, 20).unwrap();
    let fresh = env.reopen();
    let d = |k: &str| {
        fresh
            .describe_key(&env.me, key_req(k))
            .unwrap()
            .key_metadata
    };
    assert_eq!(d(&disabled), env.describe(&disabled));
    assert_eq!(d(&pending).delete_date, Some(START.plus_secs(20 * DAY)));
}

#[test]
fn unknown_keys_are_not_found() {
    let env = Env::new();
    for name in [
        "00000000-0000-4000-8000-000000000000".to_string(),
        "not-a-key".into(),
        format!("acs:kms:{REGION}:9999:key/00000000-0000-4000-8000-000000000000"),
    ] {
        let e = expect_err(env.try_describe(&name), "Forbidden.KeyNotFound");
        assert_eq!(e.http_status(), 404);
        expect_err(env.enable(&name), "Forbidden.KeyNotFound");
        expect_err(env.schedule_deletion(&name, 7), "Forbidden.KeyNotFound");
    }
    expect_param_err(env.try_describe(""), "MissingParameter", "KeyId");
}

#[test]
fn describe_key_reports_the_metadata_of_a_new_key() {
    let env = Env::new();
    let m = env.create_key_with(CreateKeyRequest {
        description: Some("orders".into()),
        ..Default::default()
    });
    assert!(kms_core::internal::ids::is_uuid(&m.key_id), "{}", m.key_id);
    assert_eq!(
        m.arn,
        format!("acs:kms:{REGION}:{ACCOUNT}:key/{}", m.key_id)
    );
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.creation_date, START);
    assert_eq!(m.creator, ACCOUNT);
    assert_eq!(m.description, "orders");
    assert_eq!(m.deletion_protection, DeletionProtection::Disabled);
    assert_eq!(
        env.versions(&m.key_id),
        vec![m.primary_key_version.clone().unwrap()]
    );
    assert_eq!(env.describe(&m.key_id), m);
    let json = serde_json::to_value(&m).unwrap();
    for field in [
        "KeyId",
        "Arn",
        "KeyState",
        "KeySpec",
        "KeyUsage",
        "Origin",
        "ProtectionLevel",
        "CreationDate",
        "Creator",
        "Description",
        "PrimaryKeyVersion",
        "AutomaticRotation",
        "DeletionProtection",
    ] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
    assert_eq!(json["KeySpec"], "Aliyun_AES_256");
    assert_eq!(json["KeyUsage"], "ENCRYPT/DECRYPT");
    assert_eq!(json["Origin"], "Aliyun_KMS");
    assert_eq!(json["ProtectionLevel"], "SOFTWARE");
    assert_eq!(json["CreationDate"], START.to_string());
}

#[test]
fn update_key_description_is_bounded_to_8192_characters() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let update = |d: String| {
        env.kms.update_key_description(
            &env.me,
            UpdateKeyDescriptionRequest {
                key_id: key.clone(),
                description: d,
            },
        )
    };
    update("é".repeat(8192)).unwrap();
    assert_eq!(env.describe(&key).description.chars().count(), 8192);
    expect_param_err(update("d".repeat(8193)), "InvalidParameter", "Description");
    update(String::new()).unwrap();
    assert_eq!(env.describe(&key).description, "");
    let e: Result<_, KmsError> = env.kms.create_key(
        &env.me,
        CreateKeyRequest {
            description: Some("d".repeat(8193)),
            ..Default::default()
        },
    );
    expect_param_err(e, "InvalidParameter", "Description");
}

// ---- model-based check ------------------------------------------------------------------

mod model {
    use super::*;
    use kms_core::UnixTime;
    use proptest::prelude::*;

    /// One operation on key 0 or 1, or a move of time.
    #[derive(Clone, Debug)]
    pub enum Step {
        Enable(usize),
        Disable(usize),
        Schedule(usize, i64),
        Cancel(usize),
        Protect(usize, bool),
        CreateVersion(usize),
        Encrypt(usize),
        AdvanceDays(i64),
        Maintain,
    }

    fn step() -> impl Strategy<Value = Step> {
        let key = 0..2usize;
        prop_oneof![
            key.clone().prop_map(Step::Enable),
            key.clone().prop_map(Step::Disable),
            (
                key.clone(),
                prop_oneof![Just(6i64), Just(7), Just(9), Just(366), Just(367)]
            )
                .prop_map(|(k, d)| Step::Schedule(k, d)),
            key.clone().prop_map(Step::Cancel),
            (key.clone(), any::<bool>()).prop_map(|(k, b)| Step::Protect(k, b)),
            key.clone().prop_map(Step::CreateVersion),
            key.prop_map(Step::Encrypt),
            (0..12i64).prop_map(Step::AdvanceDays),
            Just(Step::Maintain),
        ]
    }

    /// The reference model of one key: the state rules of docs/states.md, and nothing else.
    #[derive(Clone, Debug)]
    struct Key {
        id: String,
        state: KeyState,
        delete_date: Option<UnixTime>,
        protected: bool,
        versions: usize,
        purged: bool,
    }

    impl Key {
        fn gone(&self, now: UnixTime) -> bool {
            self.purged || self.delete_date.is_some_and(|d| d <= now)
        }

        /// The state error of a crypto or versioning operation, if any.
        fn usage_error(&self) -> Option<&'static str> {
            match self.state {
                KeyState::Enabled => None,
                KeyState::Disabled => Some("Rejected.Disabled"),
                _ => Some("Rejected.PendingDeletion"),
            }
        }
    }

    const SMF: &str = "Rejected.StateModifiedFailed";

    /// Applies `step` to the model and returns the outcome docs/states.md requires.
    fn expect(keys: &mut [Key], step: &Step, now: UnixTime) -> &'static str {
        match step {
            Step::AdvanceDays(_) | Step::Maintain => "OK",
            Step::Schedule(_, days) if !(7..=366).contains(days) => "InvalidParameter",
            other => {
                let i = match other {
                    Step::Enable(i)
                    | Step::Disable(i)
                    | Step::Schedule(i, _)
                    | Step::Cancel(i)
                    | Step::Protect(i, _)
                    | Step::CreateVersion(i)
                    | Step::Encrypt(i) => *i,
                    _ => unreachable!(),
                };
                let k = &mut keys[i];
                if k.gone(now) {
                    return "Forbidden.KeyNotFound";
                }
                let pending = k.state == KeyState::PendingDeletion;
                match other {
                    Step::Enable(_) | Step::Disable(_) if pending => SMF,
                    Step::Enable(_) => {
                        k.state = KeyState::Enabled;
                        "OK"
                    }
                    Step::Disable(_) => {
                        k.state = KeyState::Disabled;
                        "OK"
                    }
                    Step::Schedule(_, _) if pending => SMF,
                    Step::Schedule(_, _) if k.protected => "Rejected.DeletionProtection",
                    Step::Schedule(_, days) => {
                        k.state = KeyState::PendingDeletion;
                        k.delete_date = Some(now.plus_secs(days * DAY));
                        "OK"
                    }
                    Step::Cancel(_) if !pending => SMF,
                    Step::Cancel(_) => {
                        k.state = KeyState::Enabled;
                        k.delete_date = None;
                        "OK"
                    }
                    Step::Protect(_, true) if pending => SMF,
                    Step::Protect(_, on) => {
                        k.protected = *on;
                        "OK"
                    }
                    Step::CreateVersion(_) => match k.usage_error() {
                        Some(e) => e,
                        None => {
                            k.versions += 1;
                            "OK"
                        }
                    },
                    Step::Encrypt(_) => k.usage_error().unwrap_or("OK"),
                    _ => unreachable!(),
                }
            }
        }
    }

    fn run(env: &Env, keys: &[Key], step: &Step) -> &'static str {
        let id = |i: &usize| keys[*i].id.as_str();
        match step {
            Step::Enable(i) => outcome(env.enable(id(i))),
            Step::Disable(i) => outcome(env.disable(id(i))),
            Step::Schedule(i, d) => outcome(env.schedule_deletion(id(i), *d)),
            Step::Cancel(i) => outcome(env.cancel_deletion(id(i))),
            Step::Protect(i, on) => outcome(env.set_protection(id(i), *on)),
            Step::CreateVersion(i) => outcome(env.create_key_version(id(i))),
            Step::Encrypt(i) => outcome(env.try_encrypt(id(i), b"model", &ctx(&[]))),
            Step::AdvanceDays(d) => {
                env.clock.advance_days(*d);
                "OK"
            }
            Step::Maintain => outcome(env.kms.run_maintenance(env.now())),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn lifecycle_matches_the_state_rules_for_any_sequence_of_operations(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let env = Env::new();
            let mut keys: Vec<Key> = (0..2)
                .map(|_| Key {
                    id: env.create_key().key_id,
                    state: KeyState::Enabled,
                    delete_date: None,
                    protected: false,
                    versions: 1,
                    purged: false,
                })
                .collect();
            for (n, step) in steps.iter().enumerate() {
                let now = env.now();
                let want = expect(&mut keys, step, now);
                let got = run(&env, &keys, step);
                prop_assert_eq!(got, want, "step {} {:?}", n, step);
                if matches!(step, Step::Maintain) {
                    for k in keys.iter_mut() {
                        if k.gone(now) {
                            k.purged = true;
                            let rk = format!("k/{}", k.id);
                            prop_assert!(env.storage.get(rk.as_bytes()).unwrap().is_none());
                        }
                    }
                }
                let now = env.now();
                for k in &keys {
                    match env.try_describe(&k.id) {
                        Err(e) => {
                            prop_assert!(k.gone(now), "{} vanished: {}", k.id, e);
                            prop_assert_eq!(e.code(), "Forbidden.KeyNotFound");
                        }
                        Ok(m) => {
                            prop_assert!(!k.gone(now), "{} is past its DeleteDate", k.id);
                            prop_assert_eq!(m.key_state, k.state);
                            prop_assert_eq!(m.delete_date, k.delete_date);
                            prop_assert_eq!(
                                m.deletion_protection == DeletionProtection::Enabled,
                                k.protected
                            );
                            prop_assert_eq!(env.versions(&k.id).len(), k.versions);
                        }
                    }
                }
            }
        }
    }
}
