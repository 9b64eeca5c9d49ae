//! The PolicyAuthorizer wired into the engine: the default policy, custom policies with
//! wildcards, explicit Deny, conditions, ReEncrypt's two actions, and the GetKeyPolicy /
//! SetKeyPolicy operations.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::{Caller, Kms};
use kms_policy::{PolicyDocument, Verdict};
use serde_json::json;

fn policy(statements: serde_json::Value) -> String {
    json!({"Version": "1", "Statement": statements}).to_string()
}

fn allow(principals: &[&str], actions: &[&str]) -> serde_json::Value {
    json!({"Effect": "Allow", "Principal": {"RAM": principals}, "Action": actions, "Resource": ["*"]})
}

fn id(key: &str) -> KeyIdRequest {
    KeyIdRequest { key_id: key.into() }
}

fn list_key_versions(kms: &Kms, caller: &Caller, key: &str) -> Result<(), kms_core::KmsError> {
    kms.list_key_versions(
        caller,
        ListKeyVersionsRequest {
            key_id: key.into(),
            ..Default::default()
        },
    )
    .map(|_| ())
}

// ---- the default policy ---------------------------------------------------------------------

#[test]
fn default_policy_gives_the_owner_account_full_control_through_identity_policies() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&alice(), None);
    for c in [root(), alice(), bob(), app(), via(bob(), "oss")] {
        let blob = encrypt(&env.kms, &c, &key).unwrap();
        decrypt(&env.kms, &c, &blob).unwrap();
        generate_data_key(&env.kms, &c, &key).unwrap();
        re_encrypt(&env.kms, &c, &blob, &key).unwrap();
        describe(&env.kms, &c, &key).unwrap();
        env.kms.disable_key(&c, id(&key)).unwrap();
        env.kms.enable_key(&c, id(&key)).unwrap();
        get_policy(&env.kms, &c, &key).unwrap();
    }
}

#[test]
fn default_policy_denies_every_other_account() {
    let env = Env::new();
    let key = env.key(&root(), None);
    let blob = encrypt(&env.kms, &root(), &key).unwrap();
    for c in [partner(), partner_root(), stranger(), via(partner(), "oss")] {
        assert_denied(encrypt(&env.kms, &c, &key), "kms:Encrypt", &c);
        assert_denied(decrypt(&env.kms, &c, &blob), "kms:Decrypt", &c);
        assert_denied(
            generate_data_key(&env.kms, &c, &key),
            "kms:GenerateDataKey",
            &c,
        );
        assert_denied(describe(&env.kms, &c, &key), "kms:DescribeKey", &c);
        assert_denied(env.kms.disable_key(&c, id(&key)), "kms:DisableKey", &c);
        assert_denied(get_policy(&env.kms, &c, &key), "kms:GetKeyPolicy", &c);
        assert_denied(
            set_policy(
                &env.kms,
                &c,
                &key,
                &policy(json!([allow(&["*"], &["kms:*"])])),
            ),
            "kms:SetKeyPolicy",
            &c,
        );
        assert_denied(
            schedule_deletion(&env.kms, &c, &key),
            "kms:ScheduleKeyDeletion",
            &c,
        );
    }
    assert_eq!(
        describe(&env.kms, &root(), &key)
            .unwrap()
            .key_state
            .as_str(),
        "Enabled"
    );
}

#[test]
fn other_accounts_cannot_create_or_list_keys_or_aliases() {
    let env = Env::new().with_full_identity_policies();
    env.key(&root(), None);
    for c in [partner(), partner_root()] {
        assert_denied(env.try_key(&c, None, None), "kms:CreateKey", &c);
        assert_denied(
            env.kms.list_keys(&c, ListKeysRequest::default()),
            "kms:ListKeys",
            &c,
        );
        assert_denied(
            env.kms.list_aliases(&c, ListAliasesRequest::default()),
            "kms:ListAliases",
            &c,
        );
    }
    assert_eq!(env.key_count(), 1);
    // The owner account's principals can.
    for c in [alice(), app()] {
        env.try_key(&c, None, None).unwrap();
        env.kms.list_keys(&c, ListKeysRequest::default()).unwrap();
    }
}

#[test]
fn get_key_policy_shows_the_default_policy_of_a_key_without_one() {
    let env = Env::new();
    let key = env.key(&root(), None);
    let text = get_policy(&env.kms, &root(), &key).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["Version"], "1");
    assert_eq!(doc["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        doc["Statement"][0]["Principal"]["RAM"],
        json!(["acs:ram::1234:*"])
    );
    assert_eq!(doc["Statement"][0]["Action"], json!(["kms:*"]));
    // It is a valid document that says what the engine does.
    let parsed = PolicyDocument::parse(&text).unwrap();
    let arn = describe(&env.kms, &root(), &key).unwrap().arn;
    for (c, expected) in [(alice(), Verdict::Allow), (partner(), Verdict::NoMatch)] {
        let principal = c.arn();
        let v = parsed.evaluate(&kms_policy::document::RequestContext {
            caller: &c,
            principal_arn: &principal,
            action: "kms:Encrypt",
            resource: &arn,
        });
        assert_eq!(v, expected, "{c}");
    }
}

#[test]
fn setting_the_shown_default_policy_keeps_the_same_access() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    let default = get_policy(&env.kms, &root(), &key).unwrap();
    set_policy(&env.kms, &root(), &key, &default).unwrap();
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), default);
    encrypt(&env.kms, &bob(), &key).unwrap();
    assert_denied(
        encrypt(&env.kms, &partner(), &key),
        "kms:Encrypt",
        &partner(),
    );
}

// ---- custom policies ------------------------------------------------------------------------

#[test]
fn a_custom_policy_replaces_the_default_one() {
    let env = Env::new();
    let text = policy(json!([allow(&["acs:ram::1234:user/alice"], &["kms:*"])]));
    let key = env.key(&root(), Some(&text));
    encrypt(&env.kms, &alice(), &key).unwrap();
    // Same account, but not named: denied, root included.
    assert_denied(encrypt(&env.kms, &bob(), &key), "kms:Encrypt", &bob());
    assert_denied(encrypt(&env.kms, &root(), &key), "kms:Encrypt", &root());
    assert_denied(describe(&env.kms, &app(), &key), "kms:DescribeKey", &app());
    assert_eq!(get_policy(&env.kms, &alice(), &key).unwrap(), text);
}

#[test]
fn list_wildcard_allows_list_actions_on_the_key_and_nothing_else() {
    let env = Env::new();
    let key = env.key(
        &root(),
        Some(&policy(json!([allow(
            &["acs:ram::1234:user/alice"],
            &["kms:List*"]
        )]))),
    );
    list_key_versions(&env.kms, &alice(), &key).unwrap();
    env.kms
        .list_aliases_by_key_id(
            &alice(),
            ListAliasesByKeyIdRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    env.kms.list_resource_tags(&alice(), id(&key)).unwrap();
    assert_denied(
        describe(&env.kms, &alice(), &key),
        "kms:DescribeKey",
        &alice(),
    );
    assert_denied(encrypt(&env.kms, &alice(), &key), "kms:Encrypt", &alice());
    assert_denied(
        env.kms.disable_key(&alice(), id(&key)),
        "kms:DisableKey",
        &alice(),
    );
}

#[test]
fn describe_wildcard_allows_describe_actions() {
    let env = Env::new();
    let key = env.key(
        &root(),
        Some(&policy(json!([allow(
            &["acs:ram::1234:user/alice"],
            &["kms:Describe*"]
        )]))),
    );
    let meta = describe(&env.kms, &alice(), &key).unwrap();
    env.kms
        .describe_key_version(
            &alice(),
            DescribeKeyVersionRequest {
                key_id: key.clone(),
                key_version_id: meta.primary_key_version.unwrap(),
            },
        )
        .unwrap();
    assert_denied(
        list_key_versions(&env.kms, &alice(), &key),
        "kms:ListKeyVersions",
        &alice(),
    );
}

#[test]
fn kms_star_allows_every_key_operation() {
    let env = Env::new();
    let key = env.key(
        &root(),
        Some(&policy(json!([allow(
            &["acs:ram::1234:user/alice"],
            &["kms:*"]
        )]))),
    );
    let blob = encrypt(&env.kms, &alice(), &key).unwrap();
    decrypt(&env.kms, &alice(), &blob).unwrap();
    re_encrypt(&env.kms, &alice(), &blob, &key).unwrap();
    env.kms.disable_key(&alice(), id(&key)).unwrap();
    env.kms.enable_key(&alice(), id(&key)).unwrap();
    create_alias(&env.kms, &alice(), "alias/star", &key).unwrap();
    tag(&env.kms, &alice(), &key, "k").unwrap();
    schedule_deletion(&env.kms, &alice(), &key).unwrap();
    env.kms.cancel_key_deletion(&alice(), id(&key)).unwrap();
}

#[test]
fn policy_actions_match_case_insensitively() {
    let env = Env::new();
    let key = env.key(
        &root(),
        Some(&policy(json!([allow(
            &["acs:ram::1234:user/alice"],
            &["KMS:ENCRYPT", "kms:decrypt", "Kms:describe*"]
        )]))),
    );
    let blob = encrypt(&env.kms, &alice(), &key).unwrap();
    decrypt(&env.kms, &alice(), &blob).unwrap();
    describe(&env.kms, &alice(), &key).unwrap();
    assert_denied(
        generate_data_key(&env.kms, &alice(), &key),
        "kms:GenerateDataKey",
        &alice(),
    );
}

#[test]
fn account_wildcard_principal_allows_the_whole_account_only() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(
        &root(),
        Some(&policy(json!([allow(
            &["acs:ram::1234:*"],
            &["kms:Encrypt"]
        )]))),
    );
    for c in [root(), alice(), bob(), app()] {
        encrypt(&env.kms, &c, &key).unwrap();
    }
    assert_denied(
        encrypt(&env.kms, &partner(), &key),
        "kms:Encrypt",
        &partner(),
    );
    assert_denied(
        encrypt(&env.kms, &partner_root(), &key),
        "kms:Encrypt",
        &partner_root(),
    );
}

#[test]
fn star_principal_allows_other_accounts_too() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(
        &root(),
        Some(&policy(json!([{"Effect": "Allow", "Principal": "*",
            "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": ["*"]}]))),
    );
    for c in [alice(), partner(), stranger()] {
        let blob = encrypt(&env.kms, &c, &key).unwrap();
        decrypt(&env.kms, &c, &blob).unwrap();
        assert_denied(describe(&env.kms, &c, &key), "kms:DescribeKey", &c);
    }
}

#[test]
fn resource_patterns_apply_to_the_key_arn() {
    let env = Env::new();
    // A key's own ARN is only known after creation; the policy is set afterwards.
    let key = env.key(&root(), None);
    let other = env.key(&root(), None);
    let arn = describe(&env.kms, &root(), &key).unwrap().arn;
    let text = policy(json!([
        allow(&["acs:ram::1234:root"], &["kms:*"]),
        {"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:user/alice"]},
         "Action": ["kms:Encrypt"], "Resource": [arn]},
    ]));
    set_policy(&env.kms, &root(), &key, &text).unwrap();
    set_policy(&env.kms, &root(), &other, &text).unwrap();
    encrypt(&env.kms, &alice(), &key).unwrap();
    assert_denied(encrypt(&env.kms, &alice(), &other), "kms:Encrypt", &alice());
}

#[test]
fn explicit_deny_beats_allow_through_the_engine() {
    let env = Env::new().with_full_identity_policies();
    let text = policy(json!([
        allow(&["acs:ram::1234:*"], &["kms:*"]),
        {"Effect": "Deny", "Principal": {"RAM": ["acs:ram::1234:user/alice"]},
         "Action": ["kms:Decrypt"], "Resource": ["*"]},
    ]));
    let key = env.key(&root(), Some(&text));
    let blob = encrypt(&env.kms, &alice(), &key).unwrap();
    assert_denied(decrypt(&env.kms, &alice(), &blob), "kms:Decrypt", &alice());
    // Everything else stays allowed for alice, and Decrypt for everyone else.
    generate_data_key(&env.kms, &alice(), &key).unwrap();
    env.kms.disable_key(&alice(), id(&key)).unwrap();
    env.kms.enable_key(&alice(), id(&key)).unwrap();
    assert_eq!(
        decrypt(&env.kms, &bob(), &blob).unwrap(),
        b"policy test plaintext"
    );
    decrypt(&env.kms, &root(), &blob).unwrap();
}

#[test]
fn an_explicit_deny_of_everything_for_an_account_beats_a_star_allow() {
    let env = Env::new().with_full_identity_policies();
    let text = policy(json!([
        {"Effect": "Deny", "Principal": {"RAM": ["acs:ram::5678:*"]}, "Action": ["kms:*"], "Resource": ["*"]},
        {"Effect": "Allow", "Principal": "*", "Action": ["kms:*"], "Resource": ["*"]},
    ]));
    let key = env.key(&root(), Some(&text));
    encrypt(&env.kms, &stranger(), &key).unwrap();
    for c in [partner(), partner_root()] {
        assert_denied(encrypt(&env.kms, &c, &key), "kms:Encrypt", &c);
        assert_denied(describe(&env.kms, &c, &key), "kms:DescribeKey", &c);
    }
}

// ---- conditions -----------------------------------------------------------------------------

fn conditional_key(env: &Env, condition: serde_json::Value) -> String {
    env.key(
        &root(),
        Some(&policy(json!([
            allow(&["acs:ram::1234:root"], &["kms:*"]),
            {"Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:user/alice"]},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": ["*"],
             "Condition": condition},
        ]))),
    )
}

#[test]
fn string_equals_via_service_allows_alice_only_through_that_service() {
    let env = Env::new();
    let key = conditional_key(&env, json!({"StringEquals": {"kms:ViaService": ["oss"]}}));
    let blob = encrypt(&env.kms, &via(alice(), "oss"), &key).unwrap();
    decrypt(&env.kms, &via(alice(), "oss"), &blob).unwrap();
    assert_denied(encrypt(&env.kms, &alice(), &key), "kms:Encrypt", &alice());
    assert_denied(decrypt(&env.kms, &alice(), &blob), "kms:Decrypt", &alice());
    let ecs = via(alice(), "ecs");
    assert_denied(
        generate_data_key(&env.kms, &ecs, &key),
        "kms:GenerateDataKey",
        &ecs,
    );
}

#[test]
fn string_not_equals_via_service_allows_everything_but_that_service() {
    let env = Env::new();
    let key = conditional_key(&env, json!({"StringNotEquals": {"kms:ViaService": "oss"}}));
    encrypt(&env.kms, &alice(), &key).unwrap();
    encrypt(&env.kms, &via(alice(), "ecs"), &key).unwrap();
    let oss = via(alice(), "oss");
    assert_denied(encrypt(&env.kms, &oss, &key), "kms:Encrypt", &oss);
}

#[test]
fn string_like_via_service_allows_matching_services() {
    let env = Env::new();
    let key = conditional_key(&env, json!({"StringLike": {"kms:ViaService": ["rds*"]}}));
    encrypt(&env.kms, &via(alice(), "rds"), &key).unwrap();
    encrypt(&env.kms, &via(alice(), "rds-mysql"), &key).unwrap();
    let oss = via(alice(), "oss");
    assert_denied(encrypt(&env.kms, &oss, &key), "kms:Encrypt", &oss);
    assert_denied(encrypt(&env.kms, &alice(), &key), "kms:Encrypt", &alice());
}

// ---- ReEncrypt --------------------------------------------------------------------------------

fn re_encrypt_keys(env: &Env, source_actions: &[&str], dest_actions: &[&str]) -> (Vec<u8>, String) {
    let source = env.key(
        &root(),
        Some(&policy(json!([
            allow(&["acs:ram::1234:root"], &["kms:*"]),
            allow(&["acs:ram::1234:user/alice"], source_actions),
        ]))),
    );
    let dest = env.key(
        &root(),
        Some(&policy(json!([
            allow(&["acs:ram::1234:root"], &["kms:*"]),
            allow(&["acs:ram::1234:user/alice"], dest_actions),
        ]))),
    );
    (encrypt(&env.kms, &root(), &source).unwrap(), dest)
}

#[test]
fn re_encrypt_needs_re_encrypt_from_on_the_source_and_re_encrypt_to_on_the_destination() {
    let env = Env::new();
    let (blob, dest) = re_encrypt_keys(&env, &["kms:ReEncryptFrom"], &["kms:ReEncryptTo"]);
    let out = re_encrypt(&env.kms, &alice(), &blob, &dest).unwrap();
    // Alice may not read either side; the root checks the result.
    assert_denied(decrypt(&env.kms, &alice(), &out), "kms:Decrypt", &alice());
    assert_eq!(
        decrypt(&env.kms, &root(), &out).unwrap(),
        b"policy test plaintext"
    );
}

#[test]
fn re_encrypt_without_re_encrypt_from_on_the_source_is_denied() {
    let env = Env::new();
    // Decrypt on the source is not ReEncryptFrom, and ReEncryptTo there does not help.
    let (blob, dest) = re_encrypt_keys(
        &env,
        &["kms:Decrypt", "kms:ReEncryptTo"],
        &["kms:ReEncryptTo"],
    );
    assert_denied(
        re_encrypt(&env.kms, &alice(), &blob, &dest),
        "kms:ReEncryptFrom",
        &alice(),
    );
}

#[test]
fn re_encrypt_without_re_encrypt_to_on_the_destination_is_denied() {
    let env = Env::new();
    // Encrypt on the destination is not ReEncryptTo, and ReEncryptFrom there does not help.
    let (blob, dest) = re_encrypt_keys(
        &env,
        &["kms:ReEncryptFrom"],
        &["kms:Encrypt", "kms:ReEncryptFrom"],
    );
    assert_denied(
        re_encrypt(&env.kms, &alice(), &blob, &dest),
        "kms:ReEncryptTo",
        &alice(),
    );
}

#[test]
fn re_encrypt_wildcard_grants_both_directions() {
    let env = Env::new();
    let (blob, dest) = re_encrypt_keys(&env, &["kms:ReEncrypt*"], &["kms:reencrypt*"]);
    re_encrypt(&env.kms, &alice(), &blob, &dest).unwrap();
}

// ---- GetKeyPolicy / SetKeyPolicy --------------------------------------------------------------

#[test]
fn policy_name_must_be_default() {
    let env = Env::new();
    let key = env.key(&root(), None);
    let text = policy(json!([allow(&["acs:ram::1234:*"], &["kms:*"])]));
    let get = |name: &str| {
        env.kms.get_key_policy(
            &root(),
            GetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: name.into(),
            },
        )
    };
    let set = |name: &str| {
        env.kms.set_key_policy(
            &root(),
            SetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: name.into(),
                policy: text.clone(),
                bypass_policy_lockout_safety_check: None,
            },
        )
    };
    for e in [expect_err(get("")), expect_err(set(""))] {
        assert_eq!(e.code(), "MissingParameter", "{e}");
        assert!(e.to_string().contains("PolicyName"), "{e}");
    }
    for name in ["Default", "custom", "default "] {
        for e in [expect_err(get(name)), expect_err(set(name))] {
            assert_eq!(e.code(), "InvalidParameter", "{e}");
            assert!(e.to_string().contains("PolicyName"), "{e}");
        }
    }
    // Nothing was set.
    assert_ne!(get_policy(&env.kms, &root(), &key).unwrap(), text);
    get("default").unwrap();
    set("default").unwrap();
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), text);
}

#[test]
fn set_key_policy_requires_a_policy() {
    let env = Env::new();
    let key = env.key(&root(), None);
    let e = expect_err(set_policy(&env.kms, &root(), &key, ""));
    assert_eq!(e.code(), "MissingParameter", "{e}");
    assert!(e.to_string().contains("Policy"), "{e}");
}

#[test]
fn get_key_policy_returns_the_stored_document_verbatim() {
    let env = Env::new();
    // Whitespace and field order as the caller wrote them.
    let text = r#"{ "Statement": [ { "Resource": "*", "Action": "kms:*", "Effect": "Allow",
        "Principal": { "RAM": [ "acs:ram::1234:*" ] } } ], "Version": "1" }"#;
    let key = env.key(&root(), Some(text));
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), text);
    let replaced = policy(json!([allow(&["acs:ram::1234:root"], &["kms:*"])]));
    set_policy(&env.kms, &root(), &key, &replaced).unwrap();
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), replaced);
    // By alias and by ARN too.
    create_alias(&env.kms, &root(), "alias/verbatim", &key).unwrap();
    assert_eq!(
        get_policy(&env.kms, &root(), "alias/verbatim").unwrap(),
        replaced
    );
    let arn = describe(&env.kms, &root(), &key).unwrap().arn;
    assert_eq!(get_policy(&env.kms, &root(), &arn).unwrap(), replaced);
}

#[test]
fn set_key_policy_takes_effect_at_once_and_survives_a_restart() {
    let env = Env::new().with_full_identity_policies();
    let key = env.key(&root(), None);
    encrypt(&env.kms, &bob(), &key).unwrap();
    // Names alice and the partner only: the account (and so bob's identity policy) no longer
    // counts.
    let text = policy(json!([
        allow(&["acs:ram::1234:user/alice"], &["kms:*"]),
        allow(&["acs:ram::5678:user/partner"], &["kms:Encrypt"]),
    ]));
    set_policy(&env.kms, &root(), &key, &text).unwrap();
    assert_denied(encrypt(&env.kms, &bob(), &key), "kms:Encrypt", &bob());
    encrypt(&env.kms, &partner(), &key).unwrap();
    let restarted = env.reopen();
    assert_eq!(get_policy(&restarted, &alice(), &key).unwrap(), text);
    assert_denied(encrypt(&restarted, &bob(), &key), "kms:Encrypt", &bob());
    encrypt(&restarted, &partner(), &key).unwrap();
}

#[test]
fn a_principal_without_set_key_policy_cannot_change_the_policy() {
    let env = Env::new();
    let text = policy(json!([
        allow(&["acs:ram::1234:root"], &["kms:*"]),
        allow(&["acs:ram::1234:user/alice"], &["kms:GetKeyPolicy"]),
    ]));
    let key = env.key(&root(), Some(&text));
    let grab = policy(json!([allow(&["acs:ram::1234:user/alice"], &["kms:*"])]));
    assert_denied(
        set_policy(&env.kms, &alice(), &key, &grab),
        "kms:SetKeyPolicy",
        &alice(),
    );
    assert_eq!(get_policy(&env.kms, &alice(), &key).unwrap(), text);
    assert_denied(
        get_policy(&env.kms, &bob(), &key),
        "kms:GetKeyPolicy",
        &bob(),
    );
}

#[test]
fn set_key_policy_on_a_pending_deletion_key_is_rejected() {
    let env = Env::new();
    let key = env.key(&root(), None);
    schedule_deletion(&env.kms, &root(), &key).unwrap();
    let text = policy(json!([allow(&["acs:ram::1234:root"], &["kms:*"])]));
    let e = expect_err(set_policy(&env.kms, &root(), &key, &text));
    assert_eq!(e.code(), "Rejected.PendingDeletion", "{e}");
    assert_eq!(e.http_status(), 409);
    // GetKeyPolicy still works, showing the unchanged (default) policy.
    let shown = get_policy(&env.kms, &root(), &key).unwrap();
    assert_ne!(shown, text);
    env.kms.cancel_key_deletion(&root(), id(&key)).unwrap();
    set_policy(&env.kms, &root(), &key, &text).unwrap();
}

#[test]
fn set_key_policy_works_on_disabled_keys() {
    let env = Env::new();
    let key = env.key(&root(), None);
    env.kms.disable_key(&root(), id(&key)).unwrap();
    let text = policy(json!([allow(&["acs:ram::1234:root"], &["kms:*"])]));
    set_policy(&env.kms, &root(), &key, &text).unwrap();
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), text);
}

#[test]
fn key_policy_operations_on_a_missing_key_are_key_not_found() {
    let env = Env::new();
    let missing = "0b8d1f6e-3c2a-4f1e-9a7b-2c4d6e8f0a1b";
    let e = expect_err(get_policy(&env.kms, &root(), missing));
    assert_eq!(e.code(), "Forbidden.KeyNotFound", "{e}");
    let text = policy(json!([allow(&["acs:ram::1234:root"], &["kms:*"])]));
    let e = expect_err(set_policy(&env.kms, &root(), missing, &text));
    assert_eq!(e.code(), "Forbidden.KeyNotFound", "{e}");
}

#[test]
fn create_key_stores_its_policy() {
    let env = Env::new();
    let text = kms_policy::PolicyBuilder::new(OWNER)
        .user("acs:ram::1234:user/alice")
        .build();
    let key = env.key(&root(), Some(&text));
    assert_eq!(get_policy(&env.kms, &root(), &key).unwrap(), text);
    encrypt(&env.kms, &alice(), &key).unwrap();
    assert_denied(encrypt(&env.kms, &bob(), &key), "kms:Encrypt", &bob());
}

#[test]
fn allow_all_lets_a_host_authorize_elsewhere() {
    let kms = Kms::builder()
        .storage(kms_storage::MemoryStorage::new())
        .root_key(kms_core::RootKey::generate().unwrap())
        .account_id(OWNER)
        .authorizer(kms_core::AllowAll)
        .build()
        .unwrap();
    let key = kms
        .create_key(&partner(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let blob = encrypt(&kms, &stranger(), &key).unwrap();
    decrypt(&kms, &partner_root(), &blob).unwrap();
}
