#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Versions and rotation, driven by the manual clock: the rotation policy and its interval
//! forms, automatic rotation by maintenance (and its suspension while a key is not Enabled),
//! manual rotation with CreateKeyVersion, and old versions that keep decrypting.

mod common;

use common::*;
use kms_core::api::*;
use kms_core::api::{AutomaticRotation, KeyState};

const WEEK: i64 = 7 * DAY;

#[test]
fn update_rotation_policy_accepts_every_unit_for_seven_days() {
    let env = Env::new();
    let key = env.create_key().key_id;
    for form in ["7d", "604800s", "168h", "10080m", " 7d "] {
        env.set_rotation(&key, true, Some(form)).unwrap();
        let m = env.describe(&key);
        assert_eq!(m.automatic_rotation, AutomaticRotation::Enabled, "{form}");
        assert_eq!(m.rotation_interval.as_deref(), Some("604800s"), "{form}");
    }
    env.set_rotation(&key, true, Some("365d")).unwrap();
    assert_eq!(
        env.describe(&key).rotation_interval.as_deref(),
        Some("31536000s")
    );
}

#[test]
fn update_rotation_policy_rejects_intervals_outside_7_to_365_days_and_garbage() {
    let env = Env::new();
    let key = env.create_key().key_id;
    for bad in [
        "6d",
        "366d",
        "604799s",
        "31536001s",
        "7",
        "7w",
        "d",
        "-7d",
        "7.0d",
        "abc",
        "7 d",
        "七d",
        "99999999999999999999s",
    ] {
        let e = expect_param_err(
            env.set_rotation(&key, true, Some(bad)),
            "InvalidParameter",
            "RotationInterval",
        );
        assert_eq!(e.http_status(), 400, "{bad}");
    }
    let m = env.describe(&key);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Disabled);
    assert_eq!(m.rotation_interval, None);
    assert_eq!(m.next_rotation_date, None);
}

#[test]
fn update_rotation_policy_needs_its_parameters() {
    let env = Env::new();
    let key = env.create_key().key_id;
    expect_param_err(
        env.set_rotation(&key, true, None),
        "MissingParameter",
        "RotationInterval",
    );
    expect_param_err(
        env.kms.update_rotation_policy(
            &env.me,
            UpdateRotationPolicyRequest {
                key_id: key.clone(),
                rotation_interval: Some("7d".into()),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "EnableAutomaticRotation",
    );
    // From wire text, as a server decodes it.
    let req: UpdateRotationPolicyRequest = kms_core::api::decode_request(serde_json::json!({
        "KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "8d"
    }))
    .unwrap();
    env.kms.update_rotation_policy(&env.me, req).unwrap();
    assert_eq!(
        env.describe(&key).rotation_interval.as_deref(),
        Some("691200s")
    );
}

#[test]
fn describe_key_shows_the_rotation_schedule() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let m = env.describe(&key);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Disabled);
    assert_eq!(
        m.last_rotation_date,
        Some(START),
        "a new key's first version"
    );
    assert_eq!(m.next_rotation_date, None);

    env.set_rotation(&key, true, Some("7d")).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Enabled);
    assert_eq!(m.rotation_interval.as_deref(), Some("604800s"));
    assert_eq!(m.next_rotation_date, Some(START.plus_secs(WEEK)));
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["AutomaticRotation"], "Enabled");
    assert_eq!(json["RotationInterval"], "604800s");
    assert_eq!(json["NextRotationDate"], START.plus_secs(WEEK).to_string());

    env.set_rotation(&key, false, None).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Disabled);
    assert_eq!(m.rotation_interval, None);
    assert_eq!(m.next_rotation_date, None);
}

#[test]
fn create_key_with_automatic_rotation_needs_rotation_interval() {
    let env = Env::new();
    expect_param_err(
        env.kms.create_key(
            &env.me,
            CreateKeyRequest {
                enable_automatic_rotation: Some(true),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "RotationInterval",
    );
    expect_param_err(
        env.kms.create_key(
            &env.me,
            CreateKeyRequest {
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("2d".into()),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "RotationInterval",
    );
    assert!(env.all_keys().is_empty());
    let m = env.create_key_with(CreateKeyRequest {
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("30d".into()),
        ..Default::default()
    });
    assert_eq!(m.automatic_rotation, AutomaticRotation::Enabled);
    assert_eq!(m.rotation_interval.as_deref(), Some("2592000s"));
    assert_eq!(m.next_rotation_date, Some(START.plus_secs(30 * DAY)));
}

#[test]
fn maintenance_rotates_at_the_due_time_and_not_before() {
    let env = Env::new();
    let m = env.create_key_with(CreateKeyRequest {
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("7d".into()),
        ..Default::default()
    });
    let key = m.key_id;
    let first = m.primary_key_version.unwrap();
    let due = START.plus_secs(WEEK);

    env.clock.set(due.plus_secs(-1));
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.rotated_keys.is_empty());
    assert_eq!(
        env.describe(&key).primary_key_version.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(env.versions(&key).len(), 1);

    env.clock.set(due);
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![key.clone()]);
    let m = env.describe(&key);
    let second = m.primary_key_version.clone().unwrap();
    assert_ne!(second, first);
    assert_eq!(m.last_rotation_date, Some(due));
    assert_eq!(m.next_rotation_date, Some(due.plus_secs(WEEK)));
    assert_eq!(env.versions(&key), vec![first, second.clone()]);

    // Running again at the same instant does nothing more.
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.rotated_keys.is_empty());
    assert_eq!(env.versions(&key).len(), 2);

    // The next week rotates again, from the last rotation.
    env.clock.set(due.plus_secs(WEEK));
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![key.clone()]);
    assert_eq!(env.versions(&key).len(), 3);
    assert_eq!(
        env.describe(&key).next_rotation_date,
        Some(due.plus_secs(2 * WEEK))
    );
}

#[test]
fn keys_without_rotation_never_rotate() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let report = env
        .kms
        .run_maintenance(START.plus_secs(1000 * DAY))
        .unwrap();
    assert!(report.rotated_keys.is_empty());
    assert_eq!(env.versions(&key).len(), 1);
}

#[test]
fn a_disabled_key_shows_suspended_and_does_not_rotate_until_enabled() {
    let env = Env::new();
    let key = env.create_key_with(CreateKeyRequest {
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("7d".into()),
        ..Default::default()
    });
    let key = key.key_id;
    env.disable(&key).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Suspended);
    assert_eq!(
        serde_json::to_value(&m).unwrap()["AutomaticRotation"],
        "Suspended"
    );

    env.clock.advance_days(30);
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.rotated_keys.is_empty());
    assert_eq!(env.versions(&key).len(), 1);

    env.enable(&key).unwrap();
    assert_eq!(
        env.describe(&key).automatic_rotation,
        AutomaticRotation::Enabled
    );
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![key.clone()]);
    let m = env.describe(&key);
    assert_eq!(env.versions(&key).len(), 2);
    assert_eq!(m.last_rotation_date, Some(env.now()));
    assert_eq!(m.next_rotation_date, Some(env.now().plus_secs(WEEK)));
}

#[test]
fn a_key_pending_deletion_shows_suspended_and_does_not_rotate() {
    let env = Env::new();
    let key = env.create_key_with(CreateKeyRequest {
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("7d".into()),
        ..Default::default()
    });
    let key = key.key_id;
    env.schedule_deletion(&key, 30).unwrap();
    assert_eq!(
        env.describe(&key).automatic_rotation,
        AutomaticRotation::Suspended
    );
    env.clock.advance_days(10);
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert!(report.rotated_keys.is_empty());
    env.cancel_deletion(&key).unwrap();
    assert_eq!(
        env.describe(&key).automatic_rotation,
        AutomaticRotation::Enabled
    );
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![key.clone()]);
}

#[test]
fn ciphertexts_of_every_old_version_decrypt_after_several_rotations() {
    let env = Env::new();
    let key = env.create_key_with(CreateKeyRequest {
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("7d".into()),
        ..Default::default()
    });
    let key = key.key_id;
    let mut sealed = Vec::new();
    for round in 0..5 {
        let primary = env.describe(&key).primary_key_version.unwrap();
        let text = format!("message of round {round}");
        let c = ctx(&[("round", &round.to_string())]);
        let r = env.encrypt(&key, text.as_bytes(), &c);
        assert_eq!(
            r.key_version_id, primary,
            "Encrypt uses the primary version"
        );
        sealed.push((r.ciphertext_blob, text, c, primary));
        if round % 2 == 0 {
            env.clock.advance(WEEK);
            let report = env.kms.run_maintenance(env.now()).unwrap();
            assert_eq!(report.rotated_keys, vec![key.clone()]);
        } else {
            env.create_key_version(&key).unwrap();
        }
    }
    let versions = env.versions(&key);
    assert_eq!(versions.len(), 6);
    let used: Vec<_> = sealed.iter().map(|s| s.3.clone()).collect();
    assert_eq!(
        used,
        versions[..5],
        "each round used a new version, oldest first"
    );
    // Also with a restarted engine, which has to load old versions from storage.
    let fresh = env.reopen();
    for (blob, text, c, version) in &sealed {
        let r = env.decrypt(blob, c);
        assert_eq!(&r.plaintext[..], text.as_bytes());
        assert_eq!(&r.key_version_id, version);
        assert_eq!(r.key_id, key);
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
        assert_eq!(&r.key_version_id, version);
        assert_eq!(&r.plaintext[..], text.as_bytes());
    }
}

#[test]
fn create_key_version_makes_a_new_primary_that_encrypt_uses() {
    let env = Env::new();
    let m = env.create_key();
    let key = m.key_id;
    env.clock.advance(3600);
    let v = env.create_key_version(&key).unwrap().key_version;
    assert_eq!(v.key_id, key);
    assert_eq!(v.creation_date, START.plus_secs(3600));
    assert!(kms_core::internal::ids::is_uuid(&v.key_version_id));
    assert_ne!(Some(v.key_version_id.clone()), m.primary_key_version);
    let now = env.describe(&key);
    assert_eq!(
        now.primary_key_version.as_deref(),
        Some(v.key_version_id.as_str())
    );
    assert_eq!(now.last_rotation_date, Some(START.plus_secs(3600)));
    let r = env.encrypt(&key, b"fresh", &ctx(&[]));
    assert_eq!(r.key_version_id, v.key_version_id);
    // Its response serializes to Alibaba's shape.
    let json = serde_json::to_value(env.create_key_version(&key).unwrap()).unwrap();
    assert!(json["KeyVersion"]["KeyVersionId"].is_string(), "{json}");
    assert!(json["RequestId"].is_string(), "{json}");
}

#[test]
fn list_key_versions_is_oldest_first_with_paging_and_total_count() {
    let env = Env::new();
    let m = env.create_key();
    let key = m.key_id;
    let mut expected = vec![m.primary_key_version.unwrap()];
    for _ in 0..4 {
        env.clock.advance(60);
        expected.push(
            env.create_key_version(&key)
                .unwrap()
                .key_version
                .key_version_id,
        );
    }
    let page = |n: i64, size: i64| {
        env.kms
            .list_key_versions(
                &env.me,
                ListKeyVersionsRequest {
                    key_id: key.clone(),
                    page_number: Some(n),
                    page_size: Some(size),
                },
            )
            .unwrap()
    };
    let mut seen = Vec::new();
    for n in 1..=3 {
        let p = page(n, 2);
        assert_eq!(p.total_count, 5);
        assert_eq!(p.page_number, n);
        assert_eq!(p.page_size, 2);
        let want = if n == 3 { 1 } else { 2 };
        assert_eq!(p.key_versions.key_version.len(), want, "page {n}");
        for v in &p.key_versions.key_version {
            assert_eq!(v.key_id, key);
        }
        seen.extend(
            p.key_versions
                .key_version
                .into_iter()
                .map(|v| v.key_version_id),
        );
    }
    assert_eq!(seen, expected);
    assert!(page(4, 2).key_versions.key_version.is_empty());
    assert_eq!(page(4, 2).total_count, 5);
    // Creation dates ascend.
    let all = page(1, 100).key_versions.key_version;
    assert!(all
        .windows(2)
        .all(|w| w[0].creation_date < w[1].creation_date));
    // The default page size is 10.
    let default = env
        .kms
        .list_key_versions(
            &env.me,
            ListKeyVersionsRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(default.page_size, 10);
    assert_eq!(default.page_number, 1);
    // Wire shape: KeyVersions: {KeyVersion: [...]}.
    let json = serde_json::to_value(&default).unwrap();
    assert_eq!(
        json["KeyVersions"]["KeyVersion"].as_array().unwrap().len(),
        5
    );
    assert_eq!(json["TotalCount"], 5);
    for (size, param) in [(0, "PageSize"), (101, "PageSize")] {
        expect_param_err(
            env.kms.list_key_versions(
                &env.me,
                ListKeyVersionsRequest {
                    key_id: key.clone(),
                    page_size: Some(size),
                    ..Default::default()
                },
            ),
            "InvalidParameter",
            param,
        );
    }
    expect_param_err(
        env.kms.list_key_versions(
            &env.me,
            ListKeyVersionsRequest {
                key_id: key.clone(),
                page_number: Some(0),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "PageNumber",
    );
}

#[test]
fn describe_key_version_of_an_unknown_version_is_key_version_not_found() {
    let env = Env::new();
    let a = env.create_key();
    let b = env.create_key();
    let describe = |key: &str, version: &str| {
        env.kms.describe_key_version(
            &env.me,
            DescribeKeyVersionRequest {
                key_id: key.into(),
                key_version_id: version.into(),
            },
        )
    };
    let a_version = a.primary_key_version.unwrap();
    let found = describe(&a.key_id, &a_version).unwrap().key_version;
    assert_eq!(found.key_id, a.key_id);
    assert_eq!(found.creation_date, START);
    // Upper case is the same version.
    assert_eq!(
        describe(&a.key_id, &a_version.to_uppercase())
            .unwrap()
            .key_version
            .key_version_id,
        a_version
    );
    for unknown in [
        "00000000-0000-4000-8000-000000000000",
        "not-a-version",
        "../../k/x",
        b.primary_key_version.as_deref().unwrap(),
    ] {
        let e = expect_err(describe(&a.key_id, unknown), "Forbidden.KeyVersionNotFound");
        assert_eq!(e.http_status(), 404);
    }
    expect_param_err(describe(&a.key_id, ""), "MissingParameter", "KeyVersionId");
}

#[test]
fn rotation_of_a_disabled_key_is_refused() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.disable(&key).unwrap();
    expect_err(env.create_key_version(&key), "Rejected.Disabled");
    expect_err(
        env.set_rotation(&key, true, Some("7d")),
        "Rejected.Disabled",
    );
    assert_eq!(env.versions(&key).len(), 1);
    assert_eq!(env.state(&key), KeyState::Disabled);
}

#[test]
fn setting_the_policy_on_a_key_that_is_overdue_rotates_at_the_next_maintenance() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.clock.advance_days(30);
    env.set_rotation(&key, true, Some("7d")).unwrap();
    let next = env.describe(&key).next_rotation_date.unwrap();
    assert!(
        next >= START.plus_secs(WEEK) && next <= env.now(),
        "{next:?}"
    );
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![key.clone()]);
    assert_eq!(
        env.describe(&key).next_rotation_date,
        Some(env.now().plus_secs(WEEK))
    );
}
