//! RAM identity policies combined with resource policies, as Alibaba RAM and AWS evaluate a
//! request: an explicit Deny anywhere wins; a resource policy naming the caller allows it; one
//! naming only the caller's account allows the account root, and its RAM users and roles as
//! far as their identity policies allow; a RAM identity without an identity policy can do
//! nothing it is not granted by name; another account also needs its own identity policy.
//! Then the lockout safety check and the break-glass reset.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::{Caller, Kms, KmsError};
use serde_json::json;

fn identity(statements: serde_json::Value) -> String {
    json!({"Version": "1", "Statement": statements}).to_string()
}

fn allow_actions(actions: &[&str], resources: &[&str]) -> serde_json::Value {
    json!({"Effect": "Allow", "Action": actions, "Resource": resources})
}

fn deny_actions(actions: &[&str], resources: &[&str]) -> serde_json::Value {
    json!({"Effect": "Deny", "Action": actions, "Resource": resources})
}

fn key_policy(statements: serde_json::Value) -> String {
    json!({"Version": "1", "Statement": statements}).to_string()
}

fn grant(effect: &str, principals: &[&str], actions: &[&str]) -> serde_json::Value {
    json!({"Effect": effect, "Principal": {"RAM": principals}, "Action": actions,
           "Resource": ["*"]})
}

/// What one caller may do with one key: (Encrypt, Decrypt, ScheduleKeyDeletion).
fn abilities(kms: &Kms, caller: &Caller, key: &str, blob: &[u8]) -> (bool, bool, bool) {
    let enc = encrypt(kms, caller, key).is_ok();
    let dec = decrypt(kms, caller, blob).is_ok();
    let del = match schedule_deletion(kms, caller, key) {
        Ok(()) => {
            kms.cancel_key_deletion(&root(), KeyIdRequest { key_id: key.into() })
                .unwrap();
            true
        }
        Err(e) => {
            assert_eq!(e.code(), "Forbidden.NoPermission", "{e}");
            false
        }
    };
    (enc, dec, del)
}

#[test]
fn allow_deny_table_of_identity_policy_by_resource_policy_by_account() {
    let env = Env::new();
    let crypto_only = identity(json!([allow_actions(
        &["kms:Encrypt", "kms:Decrypt"],
        &["acs:kms:*:1234:key/*"]
    )]));
    let all_but_decrypt = identity(json!([
        allow_actions(&["kms:*"], &["*"]),
        deny_actions(&["kms:Decrypt"], &["*"]),
    ]));
    // alice: Allow of cryptography; bob: kms:* with a Deny of Decrypt; app: no policy.
    env.authz
        .attach_identity_policy(&alice().arn(), &crypto_only)
        .unwrap();
    env.authz
        .attach_identity_policy(&bob().arn(), &all_but_decrypt)
        .unwrap();
    // The partner's account consents to KMS for its user.
    env.authz
        .attach_identity_policy(
            &partner().arn(),
            &identity(json!([allow_actions(&["kms:*"], &["*"])])),
        )
        .unwrap();

    // Under the default policy (the owning account).
    let key = env.key(&root(), None);
    let blob = encrypt(&env.kms, &root(), &key).unwrap();
    let table = [
        (root(), (true, true, true)),
        (app(), (false, false, false)),
        (alice(), (true, true, false)),
        (bob(), (true, false, true)),
        (partner_root(), (false, false, false)),
        (partner(), (false, false, false)),
        (stranger(), (false, false, false)),
    ];
    for (caller, expected) in &table {
        assert_eq!(
            abilities(&env.kms, caller, &key, &blob),
            *expected,
            "{caller} under the default policy"
        );
    }

    // Under a policy that also grants the partner account, and denies alice Encrypt.
    let shared = env.key(
        &root(),
        Some(&key_policy(json!([
            grant("Allow", &["acs:ram::1234:root"], &["kms:*"]),
            grant(
                "Allow",
                &["acs:ram::5678:*"],
                &["kms:Encrypt", "kms:Decrypt"]
            ),
            grant("Deny", &["acs:ram::1234:user/alice"], &["kms:Encrypt"]),
        ]))),
    );
    let blob = encrypt(&env.kms, &root(), &shared).unwrap();
    let table = [
        (root(), (true, true, true)),
        (app(), (false, false, false)),
        // An explicit Deny in the resource policy beats the identity policy's Allow.
        (alice(), (false, true, false)),
        (bob(), (true, false, true)),
        // The other account's root consents for itself; its user through its identity policy.
        (partner_root(), (true, true, false)),
        (partner(), (true, true, false)),
        (stranger(), (false, false, false)),
    ];
    for (caller, expected) in &table {
        assert_eq!(
            abilities(&env.kms, caller, &shared, &blob),
            *expected,
            "{caller} under the shared policy"
        );
    }
}

#[test]
fn a_ram_user_without_an_identity_policy_can_do_nothing() {
    let env = Env::new();
    let key = env.key(&root(), None);
    let blob = encrypt(&env.kms, &root(), &key).unwrap();
    assert_denied(encrypt(&env.kms, &alice(), &key), "kms:Encrypt", &alice());
    assert_denied(decrypt(&env.kms, &alice(), &blob), "kms:Decrypt", &alice());
    assert_denied(
        schedule_deletion(&env.kms, &alice(), &key),
        "kms:ScheduleKeyDeletion",
        &alice(),
    );
    assert_denied(env.try_key(&alice(), None, None), "kms:CreateKey", &alice());
    assert_denied(
        env.kms.list_keys(&alice(), ListKeysRequest::default()),
        "kms:ListKeys",
        &alice(),
    );
    let grab = key_policy(json!([grant(
        "Allow",
        &["acs:ram::1234:user/alice"],
        &["kms:*"]
    )]));
    assert_denied(
        env.kms.set_key_policy(
            &alice(),
            SetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: "default".into(),
                policy: grab,
                bypass_policy_lockout_safety_check: Some(true),
            },
        ),
        "kms:SetKeyPolicy",
        &alice(),
    );
    // The owner still has full control.
    assert_eq!(
        decrypt(&env.kms, &root(), &blob).unwrap(),
        b"policy test plaintext"
    );
    schedule_deletion(&env.kms, &root(), &key).unwrap();
}

#[test]
fn an_identity_policy_allows_only_the_resources_it_names() {
    let env = Env::new();
    let one = env.key(&root(), None);
    let other = env.key(&root(), None);
    let arn = describe(&env.kms, &root(), &one).unwrap().arn;
    env.authz
        .attach_identity_policy(
            &alice().arn(),
            &identity(json!([allow_actions(&["kms:Encrypt"], &[&arn])])),
        )
        .unwrap();
    encrypt(&env.kms, &alice(), &one).unwrap();
    assert_denied(encrypt(&env.kms, &alice(), &other), "kms:Encrypt", &alice());
}

#[test]
fn account_level_actions_are_authorized_on_the_collection_arn() {
    let env = Env::new();
    env.authz
        .attach_identity_policy(
            &alice().arn(),
            &identity(json!([allow_actions(
                &["kms:CreateKey", "kms:ListKeys"],
                &["acs:kms:cn-hangzhou:1234:key"]
            )])),
        )
        .unwrap();
    env.try_key(&alice(), None, None).unwrap();
    env.kms
        .list_keys(&alice(), ListKeysRequest::default())
        .unwrap();
    // The collection of keys is not the collection of secrets.
    assert_denied(
        env.kms
            .list_secrets(&alice(), ListSecretsRequest::default()),
        "kms:ListSecrets",
        &alice(),
    );
}

#[test]
fn a_resource_policy_naming_a_user_of_the_owning_account_needs_no_identity_policy() {
    let env = Env::new();
    let key = env.key(
        &root(),
        Some(&key_policy(json!([
            grant("Allow", &["acs:ram::1234:root"], &["kms:*"]),
            grant("Allow", &["acs:ram::1234:user/alice"], &["kms:Encrypt"]),
            grant("Allow", &["acs:ram::5678:user/partner"], &["kms:Encrypt"]),
        ]))),
    );
    encrypt(&env.kms, &alice(), &key).unwrap();
    // Named, but of another account: that account must consent too.
    assert_denied(
        encrypt(&env.kms, &partner(), &key),
        "kms:Encrypt",
        &partner(),
    );
    env.authz
        .attach_identity_policy(
            &partner().arn(),
            &identity(json!([allow_actions(
                &["kms:Encrypt"],
                &["acs:kms:*:1234:key/*"]
            )])),
        )
        .unwrap();
    encrypt(&env.kms, &partner(), &key).unwrap();
}

fn create_secret(
    kms: &Kms,
    caller: &Caller,
    name: &str,
    policy: Option<String>,
) -> Result<(), KmsError> {
    kms.create_secret(
        caller,
        CreateSecretRequest {
            secret_name: name.into(),
            secret_data: SecretData::new("s3cr3t"),
            version_id: "v1".into(),
            policy,
            ..Default::default()
        },
    )
    .map(|_| ())
}

fn get_secret(kms: &Kms, caller: &Caller, name: &str) -> Result<(), KmsError> {
    kms.get_secret_value(
        caller,
        GetSecretValueRequest {
            secret_name: name.into(),
            ..Default::default()
        },
    )
    .map(|_| ())
}

fn put_secret(kms: &Kms, caller: &Caller, name: &str) -> Result<(), KmsError> {
    kms.put_secret_value(
        caller,
        PutSecretValueRequest {
            secret_name: name.into(),
            secret_data: SecretData::new("overwritten"),
            version_id: "v2".into(),
            ..Default::default()
        },
    )
    .map(|_| ())
}

#[test]
fn secrets_follow_the_same_rules() {
    let env = Env::new();
    create_secret(&env.kms, &root(), "db", None).unwrap();
    assert_denied(
        create_secret(&env.kms, &alice(), "mine", None),
        "kms:CreateSecret",
        &alice(),
    );
    assert_denied(
        get_secret(&env.kms, &alice(), "db"),
        "kms:GetSecretValue",
        &alice(),
    );
    assert_denied(
        put_secret(&env.kms, &alice(), "db"),
        "kms:PutSecretValue",
        &alice(),
    );
    env.authz
        .attach_identity_policy(
            &alice().arn(),
            &identity(json!([
                allow_actions(&["kms:GetSecretValue"], &["acs:kms:*:1234:secret/db"]),
                // Reading a secret also decrypts it under its key.
                allow_actions(&["kms:Decrypt"], &["acs:kms:*:1234:key/*"]),
            ])),
        )
        .unwrap();
    get_secret(&env.kms, &alice(), "db").unwrap();
    assert_denied(
        put_secret(&env.kms, &alice(), "db"),
        "kms:PutSecretValue",
        &alice(),
    );
    // The owner keeps full control.
    put_secret(&env.kms, &root(), "db").unwrap();
    assert_denied(
        get_secret(&env.kms, &partner_root(), "db"),
        "kms:GetSecretValue",
        &partner_root(),
    );
}

#[test]
fn certificates_follow_the_same_rules() {
    let env = Env::new();
    let request = || CreateCertificateRequest {
        subject: "CN=test,C=CN,O=Example,OU=Ops".into(),
        key_spec: Some("EC_P256".into()),
        ..Default::default()
    };
    assert_denied(
        env.kms.create_certificate(&alice(), request()),
        "kms:CreateCertificate",
        &alice(),
    );
    env.kms.create_certificate(&root(), request()).unwrap();
}

#[test]
fn identity_policies_are_validated() {
    let env = Env::new();
    let with_principal = key_policy(json!([grant("Allow", &["*"], &["kms:*"])]));
    let e = env
        .authz
        .attach_identity_policy(&alice().arn(), &with_principal)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter");
    assert!(e.to_string().contains("Statement[0].Principal"), "{e}");
    let fine = identity(json!([allow_actions(&["kms:*"], &["*"])]));
    let e = env
        .authz
        .attach_identity_policy(&root().arn(), &fine)
        .unwrap_err();
    assert!(e.to_string().contains("Principal"), "{e}");
    assert!(env
        .authz
        .attach_identity_policy(&alice().arn(), "{\"Version\":\"1\"}")
        .is_err());
}

// ---- lockout safety ---------------------------------------------------------------------------

fn set_key_policy(
    kms: &Kms,
    caller: &Caller,
    key: &str,
    policy: &str,
    bypass: Option<bool>,
) -> Result<(), KmsError> {
    kms.set_key_policy(
        caller,
        SetKeyPolicyRequest {
            key_id: key.into(),
            policy_name: "default".into(),
            policy: policy.into(),
            bypass_policy_lockout_safety_check: bypass,
        },
    )
    .map(|_| ())
}

fn assert_lockout_refused<T: std::fmt::Debug>(r: Result<T, KmsError>) {
    let e = expect_err(r);
    assert_eq!(e.code(), "InvalidParameter", "{e}");
    let text = e.to_string();
    assert!(text.contains("Policy"), "{text}");
    assert!(text.contains("BypassPolicyLockoutSafetyCheck"), "{text}");
    assert!(text.contains("acs:ram::1234:root"), "{text}");
}

#[test]
fn set_key_policy_refuses_a_document_that_locks_the_owner_out() {
    let env = Env::new();
    env.authz
        .attach_identity_policy(
            &alice().arn(),
            &identity(json!([allow_actions(&["kms:*"], &["*"])])),
        )
        .unwrap();
    let key = env.key(&root(), None);
    let only_alice = key_policy(json!([grant(
        "Allow",
        &["acs:ram::1234:user/alice"],
        &["kms:*"]
    )]));
    // alice may set policies, but not one after which the owner could not.
    assert_lockout_refused(set_key_policy(&env.kms, &alice(), &key, &only_alice, None));
    assert_lockout_refused(set_key_policy(
        &env.kms,
        &root(),
        &key,
        &only_alice,
        Some(false),
    ));
    // A Deny of SetKeyPolicy to the account locks the owner out just as well.
    let deny_owner = key_policy(json!([
        grant("Allow", &["acs:ram::1234:root"], &["kms:*"]),
        grant("Deny", &["acs:ram::1234:*"], &["kms:SetKeyPolicy"]),
    ]));
    assert_lockout_refused(set_key_policy(&env.kms, &root(), &key, &deny_owner, None));
    // Nothing was stored.
    assert!(get_policy(&env.kms, &root(), &key)
        .unwrap()
        .contains("acs:ram::1234:*"));
    // A document that keeps the owner is accepted.
    let keeps_owner = key_policy(json!([
        grant("Allow", &["acs:ram::1234:root"], &["kms:*"]),
        grant("Allow", &["acs:ram::1234:user/bob"], &["kms:Encrypt"]),
    ]));
    set_key_policy(&env.kms, &alice(), &key, &keeps_owner, None).unwrap();
    // With the bypass, the owner can be locked out on purpose...
    set_key_policy(&env.kms, &alice(), &key, &only_alice, Some(true)).unwrap();
    assert_denied(
        set_key_policy(&env.kms, &root(), &key, &keeps_owner, Some(true)),
        "kms:SetKeyPolicy",
        &root(),
    );
    // ...and the host's break-glass reset gives the key its default policy back.
    let (key_id, had_policy) = env.kms.reset_key_policy(&key).unwrap();
    assert_eq!(key_id, key);
    assert!(had_policy);
    set_key_policy(&env.kms, &root(), &key, &keeps_owner, None).unwrap();
    // Resetting a key without a policy of its own changes nothing.
    let plain = env.key(&root(), None);
    assert!(!env.kms.reset_key_policy(&plain).unwrap().1);
}

#[test]
fn create_key_refuses_a_policy_that_locks_the_owner_out() {
    let env = Env::new();
    let only_alice = key_policy(json!([grant(
        "Allow",
        &["acs:ram::1234:user/alice"],
        &["kms:*"]
    )]));
    let before = env.key_count();
    let e = env.kms.create_key(
        &root(),
        CreateKeyRequest {
            policy: Some(only_alice.clone()),
            ..Default::default()
        },
    );
    assert_lockout_refused(e);
    assert_eq!(env.key_count(), before, "no key was created");
    env.kms
        .create_key(
            &root(),
            CreateKeyRequest {
                policy: Some(only_alice),
                bypass_policy_lockout_safety_check: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.key_count(), before + 1);
}

#[test]
fn secret_policies_have_the_same_lockout_check_and_reset() {
    let env = Env::new();
    let only_alice = key_policy(json!([grant(
        "Allow",
        &["acs:ram::1234:user/alice"],
        &["kms:*"]
    )]));
    assert_lockout_refused(create_secret(
        &env.kms,
        &root(),
        "locked",
        Some(only_alice.clone()),
    ));
    create_secret(&env.kms, &root(), "db", None).unwrap();
    let set = |bypass| {
        env.kms.set_secret_policy(
            &root(),
            SetSecretPolicyRequest {
                secret_name: "db".into(),
                policy_name: "default".into(),
                policy: only_alice.clone(),
                bypass_policy_lockout_safety_check: bypass,
            },
        )
    };
    assert_lockout_refused(set(None));
    set(Some(true)).unwrap();
    assert_denied(
        get_secret(&env.kms, &root(), "db"),
        "kms:GetSecretValue",
        &root(),
    );
    assert!(env.kms.reset_secret_policy("db").unwrap());
    get_secret(&env.kms, &root(), "db").unwrap();
    assert!(!env.kms.reset_secret_policy("db").unwrap());
}

#[test]
fn listing_every_tag_shows_only_the_resources_the_caller_may_see() {
    let env = Env::new();
    env.authz
        .attach_identity_policy(
            &alice().arn(),
            &identity(json!([allow_actions(
                &["kms:ListTagResources", "kms:TagResource"],
                &["*"]
            )])),
        )
        .unwrap();
    let open = env.key(&root(), None);
    let hidden = env.key(
        &root(),
        Some(&key_policy(json!([
            grant("Allow", &["acs:ram::1234:root"], &["kms:*"]),
            grant(
                "Deny",
                &["acs:ram::1234:user/alice"],
                &["kms:ListTagResources"]
            ),
        ]))),
    );
    for k in [&open, &hidden] {
        tag(&env.kms, &root(), k, "team").unwrap();
    }
    let listed = env
        .kms
        .list_tag_resources(
            &alice(),
            ListTagResourcesRequest {
                resource_type: "key".into(),
                tag: vec![TagKeyValue {
                    key: "team".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
    let ids: Vec<&str> = listed
        .tag_resources
        .tag_resource
        .iter()
        .map(|t| t.resource_id.as_str())
        .collect();
    assert!(ids.contains(&open.as_str()), "{ids:?}");
    assert!(!ids.contains(&hidden.as_str()), "{ids:?}");
}
