//! The three custom-policy roles of Alibaba's key management guide (PolicyBuilder administrator
//! / user / cross_account_user) against each action class, through the real engine.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::{Caller, Kms, KmsError};
use kms_policy::PolicyBuilder;

/// A key of account 1234 whose policy names alice (administrator), the app role (user) and
/// partner of account 5678 (cross-account user).
fn role_policy() -> String {
    PolicyBuilder::new(OWNER)
        .administrator("acs:ram::1234:user/alice")
        .user("acs:ram::1234:role/app")
        .cross_account_user("acs:ram::5678:user/partner")
        .build()
}

/// Runs every management operation as `caller`, in an order in which each succeeds for a
/// caller allowed to do it all. `tag` keeps alias names unique across runs.
fn management(
    kms: &Kms,
    caller: &Caller,
    key: &str,
    policy: &str,
    tag_name: &str,
) -> Vec<(&'static str, Result<(), KmsError>)> {
    let id = || KeyIdRequest { key_id: key.into() };
    vec![
        ("kms:DisableKey", kms.disable_key(caller, id()).map(|_| ())),
        ("kms:EnableKey", kms.enable_key(caller, id()).map(|_| ())),
        (
            "kms:UpdateKeyDescription",
            kms.update_key_description(
                caller,
                UpdateKeyDescriptionRequest {
                    key_id: key.into(),
                    description: format!("managed by {caller}"),
                },
            )
            .map(|_| ()),
        ),
        (
            "kms:CreateAlias",
            create_alias(kms, caller, &format!("alias/{tag_name}"), key),
        ),
        ("kms:TagResource", tag(kms, caller, key, tag_name)),
        (
            "kms:UntagResource",
            kms.untag_resource(
                caller,
                UntagResourceRequest {
                    key_id: key.into(),
                    tag_keys: vec![tag_name.into()],
                    ..Default::default()
                },
            )
            .map(|_| ()),
        ),
        ("kms:SetKeyPolicy", set_policy(kms, caller, key, policy)),
        (
            "kms:GetKeyPolicy",
            get_policy(kms, caller, key).map(|p| assert_eq!(p, policy)),
        ),
        ("kms:DescribeKey", describe(kms, caller, key).map(|_| ())),
        (
            "kms:ListKeyVersions",
            kms.list_key_versions(
                caller,
                ListKeyVersionsRequest {
                    key_id: key.into(),
                    ..Default::default()
                },
            )
            .map(|r| assert_eq!(r.total_count, 1)),
        ),
        (
            "kms:SetDeletionProtection",
            kms.set_deletion_protection(
                caller,
                SetDeletionProtectionRequest {
                    key_id: key.into(),
                    enable_deletion_protection: Some(false),
                    ..Default::default()
                },
            )
            .map(|_| ()),
        ),
        (
            "kms:ScheduleKeyDeletion",
            schedule_deletion(kms, caller, key),
        ),
        (
            "kms:CancelKeyDeletion",
            kms.cancel_key_deletion(caller, id()).map(|_| ()),
        ),
    ]
}

/// Runs every symmetric cryptographic operation as `caller` on `key`; `blob` was made under
/// `key` by someone allowed to. The name is the action a denial must report.
fn cryptography(
    kms: &Kms,
    caller: &Caller,
    key: &str,
    blob: &[u8],
) -> Vec<(&'static str, Result<(), KmsError>)> {
    vec![
        ("kms:Encrypt", encrypt(kms, caller, key).map(|_| ())),
        (
            "kms:Decrypt",
            decrypt(kms, caller, blob).map(|p| assert_eq!(p, b"policy test plaintext")),
        ),
        ("kms:GenerateDataKey", generate_data_key(kms, caller, key)),
        // ReEncrypt checks kms:ReEncryptFrom on the source first.
        (
            "kms:ReEncryptFrom",
            re_encrypt(kms, caller, blob, key).map(|_| ()),
        ),
    ]
}

fn assert_all_ok(results: Vec<(&'static str, Result<(), KmsError>)>, who: &Caller) {
    for (action, r) in results {
        if let Err(e) = r {
            panic!("{who} should be allowed {action}: {e}");
        }
    }
}

fn assert_all_denied(results: Vec<(&'static str, Result<(), KmsError>)>, who: &Caller) {
    for (action, r) in results {
        assert_denied(r, action, who);
    }
}

struct Setup {
    env: Env,
    key: String,
    policy: String,
    blob: Vec<u8>,
}

fn setup() -> Setup {
    let env = Env::new();
    // Cross-account access needs the partner account's consent too: its user's identity
    // policy allows KMS (identity_policies.rs tests the refusal without it).
    env.authz
        .attach_identity_policy(&partner().arn(), FULL_ACCESS)
        .unwrap();
    let policy = role_policy();
    let key = env.key(&root(), Some(&policy));
    let blob = encrypt(&env.kms, &root(), &key).unwrap();
    Setup {
        env,
        key,
        policy,
        blob,
    }
}

#[test]
fn administrators_manage_the_key() {
    let s = setup();
    assert_all_ok(
        management(&s.env.kms, &alice(), &s.key, &s.policy, "admin"),
        &alice(),
    );
    // The changes took effect.
    let meta = describe(&s.env.kms, &root(), &s.key).unwrap();
    assert_eq!(meta.description, format!("managed by {}", alice()));
    assert_eq!(meta.key_state.as_str(), "Enabled");
}

#[test]
fn administrators_get_forbidden_no_permission_for_cryptography() {
    let s = setup();
    assert_all_denied(
        cryptography(&s.env.kms, &alice(), &s.key, &s.blob),
        &alice(),
    );
}

#[test]
fn administrators_may_also_be_ram_roles() {
    let env = Env::new();
    let policy = PolicyBuilder::new(OWNER)
        .administrator("acs:ram::1234:role/ops")
        .build();
    let key = env.key(&root(), Some(&policy));
    let ops = Caller::ram_role(OWNER, "ops");
    assert_all_ok(management(&env.kms, &ops, &key, &policy, "ops"), &ops);
    assert_denied(encrypt(&env.kms, &ops, &key), "kms:Encrypt", &ops);
}

#[test]
fn users_do_cryptography() {
    let s = setup();
    let results: Vec<_> = cryptography(&s.env.kms, &app(), &s.key, &s.blob)
        .into_iter()
        .filter(|(a, _)| *a != "kms:ReEncryptFrom")
        .collect();
    assert_all_ok(results, &app());
    // What a user encrypts, the user decrypts.
    let mine = encrypt(&s.env.kms, &app(), &s.key).unwrap();
    assert_eq!(
        decrypt(&s.env.kms, &app(), &mine).unwrap(),
        b"policy test plaintext"
    );
}

#[test]
fn users_read_the_key_as_the_guide_lists() {
    let s = setup();
    let kms = &s.env.kms;
    let meta = describe(kms, &app(), &s.key).unwrap();
    let versions = kms
        .list_key_versions(
            &app(),
            ListKeyVersionsRequest {
                key_id: s.key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(versions.total_count, 1);
    kms.describe_key_version(
        &app(),
        DescribeKeyVersionRequest {
            key_id: s.key.clone(),
            key_version_id: meta.primary_key_version.clone().unwrap(),
        },
    )
    .unwrap();
    kms.list_aliases_by_key_id(
        &app(),
        ListAliasesByKeyIdRequest {
            key_id: s.key.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    // The guide's user list includes kms:TagResource.
    tag(kms, &app(), &s.key, "team").unwrap();
}

#[test]
fn users_cannot_manage_the_key() {
    let s = setup();
    let results: Vec<_> = management(&s.env.kms, &app(), &s.key, &s.policy, "user")
        .into_iter()
        .filter(|(a, _)| {
            !matches!(
                *a,
                "kms:DescribeKey" | "kms:ListKeyVersions" | "kms:TagResource"
            )
        })
        .collect();
    assert_eq!(results.len(), 10);
    assert_all_denied(results, &app());
    // Nothing changed.
    let meta = describe(&s.env.kms, &root(), &s.key).unwrap();
    assert_eq!(meta.key_state.as_str(), "Enabled");
    assert_eq!(meta.description, "");
}

#[test]
fn users_cannot_re_encrypt_without_the_re_encrypt_actions() {
    // The guide's user list has Encrypt and Decrypt but neither ReEncryptFrom nor ReEncryptTo.
    let s = setup();
    assert_denied(
        re_encrypt(&s.env.kms, &app(), &s.blob, &s.key),
        "kms:ReEncryptFrom",
        &app(),
    );
}

#[test]
fn cross_account_users_do_the_same_cryptography_from_another_account() {
    let s = setup();
    let results: Vec<_> = cryptography(&s.env.kms, &partner(), &s.key, &s.blob)
        .into_iter()
        .filter(|(a, _)| *a != "kms:ReEncryptFrom")
        .collect();
    assert_all_ok(results, &partner());
    // By key ARN, as another account names a key.
    let arn = describe(&s.env.kms, &partner(), &s.key).unwrap().arn;
    let blob = encrypt(&s.env.kms, &partner(), &arn).unwrap();
    assert_eq!(
        decrypt(&s.env.kms, &partner(), &blob).unwrap(),
        b"policy test plaintext"
    );
    tag(&s.env.kms, &partner(), &s.key, "partner").unwrap();
}

#[test]
fn cross_account_users_cannot_manage_the_key() {
    let s = setup();
    let results: Vec<_> = management(&s.env.kms, &partner(), &s.key, &s.policy, "xacct")
        .into_iter()
        .filter(|(a, _)| {
            !matches!(
                *a,
                "kms:DescribeKey" | "kms:ListKeyVersions" | "kms:TagResource"
            )
        })
        .collect();
    assert_all_denied(results, &partner());
}

#[test]
fn only_the_named_principal_of_the_other_account_is_allowed() {
    let s = setup();
    for other in [
        partner_root(),
        Caller::ram_user(PARTNER, "intern"),
        Caller::ram_role(PARTNER, "partner"),
        Caller::ram_user(STRANGER, "partner"),
    ] {
        assert_all_denied(cryptography(&s.env.kms, &other, &s.key, &s.blob), &other);
        assert_denied(
            describe(&s.env.kms, &other, &s.key),
            "kms:DescribeKey",
            &other,
        );
    }
}

#[test]
fn cross_account_users_cannot_act_on_the_account() {
    let s = setup();
    assert_denied(
        s.env.try_key(&partner(), None, None),
        "kms:CreateKey",
        &partner(),
    );
    assert_denied(
        s.env.kms.list_keys(&partner(), ListKeysRequest::default()),
        "kms:ListKeys",
        &partner(),
    );
}

#[test]
fn the_owner_root_keeps_full_control() {
    let s = setup();
    assert_all_ok(cryptography(&s.env.kms, &root(), &s.key, &s.blob), &root());
    assert_all_ok(
        management(&s.env.kms, &root(), &s.key, &s.policy, "root"),
        &root(),
    );
    // Including handing the key to a new policy and back.
    let only_root = PolicyBuilder::new(OWNER).build();
    set_policy(&s.env.kms, &root(), &s.key, &only_root).unwrap();
    assert_denied(encrypt(&s.env.kms, &app(), &s.key), "kms:Encrypt", &app());
    set_policy(&s.env.kms, &root(), &s.key, &s.policy).unwrap();
    encrypt(&s.env.kms, &app(), &s.key).unwrap();
}

#[test]
fn principals_of_the_owner_account_not_named_are_denied() {
    let s = setup();
    for other in [
        bob(),
        Caller::ram_role(OWNER, "alice"),
        Caller::ram_user(OWNER, "app"),
    ] {
        assert_all_denied(cryptography(&s.env.kms, &other, &s.key, &s.blob), &other);
        assert_all_denied(
            management(&s.env.kms, &other, &s.key, &s.policy, "other"),
            &other,
        );
    }
}

#[test]
fn a_denial_names_the_action_the_principal_and_the_key() {
    let s = setup();
    let e = expect_err(encrypt(&s.env.kms, &alice(), &s.key));
    let arn = describe(&s.env.kms, &root(), &s.key).unwrap().arn;
    assert_eq!(e.code(), "Forbidden.NoPermission");
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        e.to_string(),
        format!("acs:ram::1234:user/alice is not allowed to perform kms:Encrypt on {arn}")
    );
}

#[test]
fn roles_combine_for_a_principal_named_twice() {
    // An administrator who is also a user may do both.
    let env = Env::new();
    let policy = PolicyBuilder::new(OWNER)
        .administrator("acs:ram::1234:user/alice")
        .user("acs:ram::1234:user/alice")
        .build();
    let key = env.key(&root(), Some(&policy));
    let blob = encrypt(&env.kms, &alice(), &key).unwrap();
    env.kms
        .disable_key(
            &alice(),
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    env.kms
        .enable_key(
            &alice(),
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    decrypt(&env.kms, &alice(), &blob).unwrap();
}

#[test]
fn dry_run_reports_a_role_denial_as_access_denied() {
    let s = setup();
    let e = expect_err(s.env.kms.encrypt(
        &alice(),
        EncryptRequest {
            key_id: s.key.clone(),
            plaintext: b"x".to_vec().into(),
            dry_run: Some(true),
            ..Default::default()
        },
    ));
    assert_eq!(e.code(), "AccessDeniedError");
    assert!(e.to_string().contains("kms:Encrypt"), "{e}");
    assert!(e.to_string().contains("acs:ram::1234:user/alice"), "{e}");
    let e = expect_err(s.env.kms.encrypt(
        &app(),
        EncryptRequest {
            key_id: s.key.clone(),
            plaintext: b"x".to_vec().into(),
            dry_run: Some(true),
            ..Default::default()
        },
    ));
    assert_eq!(e.code(), "DryRunOperationError");
}
