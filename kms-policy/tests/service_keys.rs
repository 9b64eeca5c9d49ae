//! Service keys (`alias/acs/<product>`): created by the host for an integrated service, usable
//! by the account's principals for cryptography, read-only to everyone.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::CreatorType;
use kms_core::api::*;
use kms_core::{Caller, KmsError};

fn id(key: &str) -> KeyIdRequest {
    KeyIdRequest { key_id: key.into() }
}

fn assert_read_only<T: std::fmt::Debug>(r: Result<T, KmsError>, what: &str) {
    let e = expect_err(r);
    assert_eq!(e.code(), "Rejected.UnsupportedOperation", "{what}: {e}");
    assert!(e.to_string().contains("service key"), "{what}: {e}");
}

fn assert_reserved_alias<T: std::fmt::Debug>(r: Result<T, KmsError>, what: &str) {
    let e = expect_err(r);
    assert_eq!(e.code(), "InvalidParameter", "{what}: {e}");
    assert!(e.to_string().contains("AliasName"), "{what}: {e}");
    assert!(e.to_string().contains("alias/acs/"), "{what}: {e}");
}

fn filtered(env: &Env, creator_type: &str) -> Vec<String> {
    env.kms
        .list_keys(
            &root(),
            ListKeysRequest {
                filters: vec![Filter {
                    key: "CreatorType".into(),
                    values: vec![creator_type.into()],
                }],
                ..Default::default()
            },
        )
        .unwrap()
        .keys
        .key
        .into_iter()
        .map(|k| k.key_id)
        .collect()
}

#[test]
fn create_service_key_is_idempotent() {
    let env = Env::new().with_full_identity_policies();
    let first = env.kms.create_service_key("oss").unwrap();
    let second = env.kms.create_service_key("oss").unwrap();
    assert_eq!(first.key_id, second.key_id);
    assert_eq!(env.key_count(), 1);
    // Across a restart too.
    let third = env.reopen().create_service_key("oss").unwrap();
    assert_eq!(first.key_id, third.key_id);
    assert_eq!(env.key_count(), 1);
    // Another product gets another key.
    let ecs = env.kms.create_service_key("ecs").unwrap();
    assert_ne!(ecs.key_id, first.key_id);
    assert_eq!(env.key_count(), 2);
}

#[test]
fn a_service_key_has_its_alias_and_creator_type_service() {
    let env = Env::new().with_full_identity_policies();
    let meta = env.kms.create_service_key("oss").unwrap();
    assert_eq!(meta.creator_type, CreatorType::Service);
    assert_eq!(meta.creator, OWNER);
    assert_eq!(meta.key_state.as_str(), "Enabled");
    assert_eq!(meta.key_spec.as_str(), "Aliyun_AES_256");
    let by_alias = describe(&env.kms, &alice(), "alias/acs/oss").unwrap();
    assert_eq!(by_alias.key_id, meta.key_id);
    assert_eq!(by_alias.creator_type, CreatorType::Service);
    let aliases = env
        .kms
        .list_aliases_by_key_id(
            &alice(),
            ListAliasesByKeyIdRequest {
                key_id: meta.key_id.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let names: Vec<_> = aliases
        .aliases
        .alias
        .iter()
        .map(|a| a.alias_name.as_str())
        .collect();
    assert_eq!(names, ["alias/acs/oss"]);
}

#[test]
fn list_keys_filters_service_keys_by_creator_type() {
    let env = Env::new().with_full_identity_policies();
    let user_key = env.key(&root(), None);
    let service = env.kms.create_service_key("oss").unwrap().key_id;
    assert_eq!(filtered(&env, "Service"), vec![service]);
    assert_eq!(filtered(&env, "User"), vec![user_key]);
}

#[test]
fn users_encrypt_and_decrypt_with_a_service_key() {
    let env = Env::new().with_full_identity_policies();
    let service = env.kms.create_service_key("oss").unwrap().key_id;
    for c in [root(), alice(), app(), via(bob(), "oss")] {
        let blob = encrypt(&env.kms, &c, "alias/acs/oss").unwrap();
        assert_eq!(
            decrypt(&env.kms, &c, &blob).unwrap(),
            b"policy test plaintext"
        );
        generate_data_key(&env.kms, &c, &service).unwrap();
        re_encrypt(&env.kms, &c, &blob, &service).unwrap();
    }
    // Under the default policy: other accounts are denied.
    assert_denied(
        encrypt(&env.kms, &partner(), "alias/acs/oss"),
        "kms:Encrypt",
        &partner(),
    );
}

#[test]
fn a_service_key_cannot_be_changed_by_anyone() {
    let env = Env::new().with_full_identity_policies();
    let key = env.kms.create_service_key("oss").unwrap().key_id;
    let user_key = env.key(&root(), None);
    let kms = &env.kms;
    for c in [root(), alice()] {
        assert_read_only(kms.disable_key(&c, id(&key)), "DisableKey");
        assert_read_only(kms.enable_key(&c, id(&key)), "EnableKey");
        assert_read_only(schedule_deletion(kms, &c, &key), "ScheduleKeyDeletion");
        assert_read_only(
            schedule_deletion(kms, &c, "alias/acs/oss"),
            "ScheduleKeyDeletion by alias",
        );
        assert_read_only(
            kms.set_deletion_protection(
                &c,
                SetDeletionProtectionRequest {
                    key_id: key.clone(),
                    enable_deletion_protection: Some(true),
                    ..Default::default()
                },
            ),
            "SetDeletionProtection",
        );
        assert_read_only(
            kms.update_key_description(
                &c,
                UpdateKeyDescriptionRequest {
                    key_id: key.clone(),
                    description: "mine now".into(),
                },
            ),
            "UpdateKeyDescription",
        );
        assert_read_only(tag(kms, &c, &key, "owner"), "TagResource");
        assert_read_only(
            kms.untag_resource(
                &c,
                UntagResourceRequest {
                    key_id: key.clone(),
                    tag_keys: vec!["owner".into()],
                    ..Default::default()
                },
            ),
            "UntagResource",
        );
        assert_read_only(
            set_policy(
                kms,
                &c,
                &key,
                &kms_policy::PolicyBuilder::new(OWNER).build(),
            ),
            "SetKeyPolicy",
        );
        assert_read_only(kms.create_key_version(&c, id(&key)), "CreateKeyVersion");
        assert_read_only(
            kms.update_rotation_policy(
                &c,
                UpdateRotationPolicyRequest {
                    key_id: key.clone(),
                    enable_automatic_rotation: Some(true),
                    rotation_interval: Some("30d".into()),
                },
            ),
            "UpdateRotationPolicy",
        );
        assert_read_only(
            create_alias(kms, &c, "alias/my-oss", &key),
            "CreateAlias targeting it",
        );
        create_alias(
            kms,
            &c,
            &format!("alias/plain-{}", c.arn().len()),
            &user_key,
        )
        .unwrap();
        assert_read_only(
            kms.update_alias(
                &c,
                AliasRequest {
                    alias_name: format!("alias/plain-{}", c.arn().len()),
                    key_id: key.clone(),
                },
            ),
            "UpdateAlias to it",
        );
        assert_reserved_alias(
            kms.delete_alias(
                &c,
                DeleteAliasRequest {
                    alias_name: "alias/acs/oss".into(),
                },
            ),
            "DeleteAlias of its alias",
        );
        assert_reserved_alias(
            kms.update_alias(
                &c,
                AliasRequest {
                    alias_name: "alias/acs/oss".into(),
                    key_id: user_key.clone(),
                },
            ),
            "UpdateAlias of its alias",
        );
    }
    // Nothing changed.
    let meta = describe(kms, &root(), "alias/acs/oss").unwrap();
    assert_eq!(meta.key_id, key);
    assert_eq!(meta.key_state.as_str(), "Enabled");
    assert_eq!(
        meta.description,
        "Default master key that protects my oss data"
    );
    assert_eq!(meta.delete_date, None);
    assert_eq!(meta.deletion_protection.as_str(), "Disabled");
    assert_eq!(meta.automatic_rotation.as_str(), "Disabled");
    assert!(kms
        .list_resource_tags(&root(), id(&key))
        .unwrap()
        .tags
        .tag
        .is_empty());
    let versions = kms
        .list_key_versions(
            &root(),
            ListKeyVersionsRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(versions.total_count, 1);
    let aliases = kms
        .list_aliases_by_key_id(
            &root(),
            ListAliasesByKeyIdRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(aliases.total_count, 1);
    assert_eq!(get_policy(kms, &root(), &key).unwrap(), {
        let fresh = Env::new();
        let k = fresh.kms.create_service_key("oss").unwrap().key_id;
        // The default policy of an engine of the same account.
        get_policy(&fresh.kms, &root(), &k).unwrap()
    });
    encrypt(kms, &alice(), &key).unwrap();
}

#[test]
fn users_cannot_create_or_delete_any_reserved_alias() {
    let env = Env::new().with_full_identity_policies();
    let user_key = env.key(&root(), None);
    env.kms.create_service_key("oss").unwrap();
    for name in ["alias/acs/oss", "alias/acs/ecs", "alias/acs/x/y"] {
        assert_reserved_alias(
            create_alias(&env.kms, &root(), name, &user_key),
            &format!("CreateAlias {name}"),
        );
    }
    // Deleting a reserved alias is refused before it is looked up, existing or not.
    for name in ["alias/acs/oss", "alias/acs/ecs"] {
        assert_reserved_alias(
            env.kms.delete_alias(
                &root(),
                DeleteAliasRequest {
                    alias_name: name.into(),
                },
            ),
            &format!("DeleteAlias {name}"),
        );
    }
    // The reserved prefix does not block ordinary names that merely contain "acs".
    create_alias(&env.kms, &root(), "alias/acs-team", &user_key).unwrap();
    create_alias(&env.kms, &root(), "alias/team/acs/x", &user_key).unwrap();
}

#[test]
fn a_service_key_denies_outsiders_and_is_read_only_to_insiders() {
    // Authorization comes first: other accounts are denied; the account is told read-only.
    let env = Env::new().with_full_identity_policies();
    let key = env.kms.create_service_key("oss").unwrap().key_id;
    assert_denied(
        env.kms.disable_key(&partner(), id(&key)),
        "kms:DisableKey",
        &partner(),
    );
    let c: Caller = via(alice(), "oss");
    assert_read_only(env.kms.disable_key(&c, id(&key)), "DisableKey via oss");
}

#[test]
fn a_service_key_needs_a_product_that_makes_a_valid_alias() {
    let env = Env::new().with_full_identity_policies();
    let e = expect_err(env.kms.create_service_key(""));
    assert_eq!(e.code(), "MissingParameter", "{e}");
    assert!(e.to_string().contains("Product"), "{e}");
    for product in ["o ss", "oss!", "éoss"] {
        let e = expect_err(env.kms.create_service_key(product));
        assert_eq!(e.code(), "InvalidParameter", "{product:?}: {e}");
        assert!(e.to_string().contains("Product"), "{product:?}: {e}");
    }
    assert_eq!(env.key_count(), 0);
}
