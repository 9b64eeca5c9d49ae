//! KMS 3.0 applications (docs/operations.md "Instances and applications"): network rules,
//! policies, application access points and client keys through the OpenAPI operations, how an
//! application's call is authorized (policy, instance, network rule, validity window), and
//! the instance API's operations, cross-checked against the RustCrypto crates, ring and the
//! openssl CLI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::net::IpAddr;

use base64::Engine;
use common::*;
use kms_core::api::*;
use kms_core::instance::{self as inst, CLIENT_KEY_PREFIX, KEY_USER, SECRET_USER};
use kms_core::{Caller, Kms};

const PASSWORD: &str = "passw0rd-x";

fn rule(env: &Env, name: &str, sources: &str) {
    env.kms
        .create_network_rule(
            &env.me,
            CreateNetworkRuleRequest {
                name: name.into(),
                rule_type: "Private".into(),
                source_private_ip: sources.into(),
                description: None,
            },
        )
        .unwrap();
}

fn policy(
    env: &Env,
    name: &str,
    permissions: &[&str],
    resources: &[&str],
    instance: &str,
    rules: &[&str],
) {
    env.kms
        .create_policy(
            &env.me,
            CreatePolicyRequest {
                name: name.into(),
                permissions: serde_json::to_string(permissions).unwrap(),
                resources: serde_json::to_string(resources).unwrap(),
                kms_instance: instance.into(),
                access_control_rules: serde_json::json!({ "NetworkRules": rules }).to_string(),
                description: None,
            },
        )
        .unwrap();
}

/// A second engine on `env`'s store that also has the instance `kst-other`.
fn with_other_instance(env: &Env) -> Kms {
    Kms::builder()
        .shared_storage(env.storage.clone())
        .clock(env.clock.clone())
        .root_key(env.root_key.clone())
        .account_id(ACCOUNT)
        .region(REGION)
        .kms_instance("kst-other")
        .build()
        .unwrap()
}

fn aap(env: &Env, name: &str, policies: &[&str]) {
    env.kms
        .create_application_access_point(
            &env.me,
            CreateApplicationAccessPointRequest {
                name: name.into(),
                authentication_method: Some("ClientKey".into()),
                policies: serde_json::to_string(policies).unwrap(),
                description: None,
            },
        )
        .unwrap();
}

fn client_key(env: &Env, aap: &str) -> CreateClientKeyResponse {
    env.kms
        .create_client_key(
            &env.me,
            CreateClientKeyRequest {
                aap_name: aap.into(),
                password: PASSWORD.into(),
                not_before: None,
                not_after: None,
            },
        )
        .unwrap()
}

fn localhost() -> Option<IpAddr> {
    Some("127.0.0.1".parse().unwrap())
}

/// The caller an application's call runs as, as the gateway makes it after the signature.
fn app(kms: &Kms, key: &CreateClientKeyResponse, from: Option<IpAddr>) -> Caller {
    let credential = kms.client_key_credential(&key.client_key_id).unwrap();
    kms.access_point_caller(&credential, &key.client_key_id, from)
}

/// An application allowed keys and secrets of the default instance from 127.0.0.1.
struct App {
    env: Env,
    key: CreateClientKeyResponse,
    caller: Caller,
}

fn setup(resources: &[&str]) -> App {
    let env = Env::new();
    let instance = env.kms.default_kms_instance().to_owned();
    rule(&env, "local", r#"["127.0.0.1"]"#);
    policy(
        &env,
        "p",
        &[KEY_USER, SECRET_USER],
        resources,
        &instance,
        &["local"],
    );
    aap(&env, "app", &["p"]);
    let key = client_key(&env, "app");
    let caller = app(&env.kms, &key, localhost());
    App { env, key, caller }
}

fn encrypt_req(key_id: &str, plaintext: &[u8], aad: &[u8]) -> inst::EncryptRequest {
    inst::EncryptRequest {
        key_id: key_id.into(),
        plaintext: plaintext.to_vec().into(),
        aad: aad.to_vec(),
        ..Default::default()
    }
}

// ---- the OpenAPI operations -------------------------------------------------------------------

#[test]
fn network_rules_policies_and_access_points_are_created_described_updated_and_deleted() {
    let env = Env::new();
    let instance = env.kms.default_kms_instance().to_owned();
    rule(&env, "r1", "10.0.0.0/8, 192.168.1.1");
    let d = env
        .kms
        .describe_network_rule(&env.me, NameRequest { name: "r1".into() })
        .unwrap();
    assert_eq!(d.source_private_ip, r#"["10.0.0.0/8","192.168.1.1"]"#);
    assert!(d.arn.ends_with(":network/r1"), "{}", d.arn);
    env.kms
        .update_network_rule(
            &env.me,
            UpdateNetworkRuleRequest {
                name: "r1".into(),
                source_private_ip: Some(r#"["172.16.0.0/12"]"#.into()),
                description: Some("office".into()),
            },
        )
        .unwrap();
    let d = env
        .kms
        .describe_network_rule(&env.me, NameRequest { name: "r1".into() })
        .unwrap();
    assert_eq!(
        (d.source_private_ip.as_str(), d.description.as_str()),
        (r#"["172.16.0.0/12"]"#, "office")
    );

    policy(&env, "p1", &[KEY_USER], &["key/*"], &instance, &["r1"]);
    let p = env
        .kms
        .describe_policy(&env.me, NameRequest { name: "p1".into() })
        .unwrap();
    assert_eq!(p.resources, ["key/*"]);
    assert_eq!(p.access_control_rules, r#"{"NetworkRules":["r1"]}"#);
    aap(&env, "a1", &["p1"]);
    let a = env
        .kms
        .describe_application_access_point(&env.me, NameRequest { name: "a1".into() })
        .unwrap();
    assert_eq!(
        (a.policies.as_str(), a.authentication_method.as_str()),
        (r#"["p1"]"#, "ClientKey")
    );
    assert!(a.arn.ends_with(":applicationaccesspoint/a1"), "{}", a.arn);

    let rules = env
        .kms
        .list_network_rules(&env.me, ListPageRequest::default())
        .unwrap();
    assert_eq!((rules.total_count, rules.page_size), (1, 20));
    assert_eq!(rules.network_rules.network_rule[0].name, "r1");
    let pols = env
        .kms
        .list_policies(&env.me, ListPageRequest::default())
        .unwrap();
    assert_eq!(pols.policies.policy[0].name, "p1");
    let aaps = env
        .kms
        .list_application_access_points(&env.me, ListPageRequest::default())
        .unwrap();
    assert_eq!(
        aaps.application_access_points.application_access_point[0].name,
        "a1"
    );

    // Names are unique per kind.
    expect_err(
        env.kms.create_network_rule(
            &env.me,
            CreateNetworkRuleRequest {
                name: "r1".into(),
                rule_type: "Private".into(),
                source_private_ip: "10.0.0.1".into(),
                description: None,
            },
        ),
        "Rejected.ResourceExist",
    );
    for (kind, r) in [
        (
            "rule",
            env.kms
                .delete_network_rule(&env.me, NameRequest { name: "r1".into() }),
        ),
        (
            "policy",
            env.kms
                .delete_policy(&env.me, NameRequest { name: "p1".into() }),
        ),
        (
            "aap",
            env.kms
                .delete_application_access_point(&env.me, NameRequest { name: "a1".into() }),
        ),
    ] {
        assert!(r.is_ok(), "{kind}: {r:?}");
    }
    expect_err(
        env.kms
            .describe_policy(&env.me, NameRequest { name: "p1".into() }),
        "Forbidden.ResourceNotFound",
    );
}

#[test]
fn bad_parameters_are_refused_naming_the_parameter() {
    let env = Env::new();
    let instance = env.kms.default_kms_instance().to_owned();
    let rule_req = |name: &str, t: &str, ips: &str| CreateNetworkRuleRequest {
        name: name.into(),
        rule_type: t.into(),
        source_private_ip: ips.into(),
        description: None,
    };
    expect_param_err(
        env.kms
            .create_network_rule(&env.me, rule_req("r", "Public", "10.0.0.1")),
        "InvalidParameter",
        "Type",
    );
    expect_param_err(
        env.kms
            .create_network_rule(&env.me, rule_req("r", "Private", "10.0.0.300")),
        "InvalidParameter",
        "SourcePrivateIp",
    );
    expect_param_err(
        env.kms
            .create_network_rule(&env.me, rule_req("bad name", "Private", "10.0.0.1")),
        "InvalidParameter",
        "Name",
    );
    expect_err(
        env.kms
            .create_network_rule(&env.me, rule_req("r", "Private", "")),
        "MissingParameter",
    );
    let policy_req = |perm: &str, res: &str, inst: &str, acr: &str| CreatePolicyRequest {
        name: "p".into(),
        permissions: perm.into(),
        resources: res.into(),
        kms_instance: inst.into(),
        access_control_rules: acr.into(),
        description: None,
    };
    let ok_perm = format!(r#"["{KEY_USER}"]"#);
    let acr = r#"{"NetworkRules":["r"]}"#;
    expect_param_err(
        env.kms.create_policy(
            &env.me,
            policy_req(r#"["kms:*"]"#, r#"["key/*"]"#, &instance, acr),
        ),
        "InvalidParameter",
        "Permissions",
    );
    expect_param_err(
        env.kms.create_policy(
            &env.me,
            policy_req(&ok_perm, r#"["alias/*"]"#, &instance, acr),
        ),
        "InvalidParameter",
        "Resources",
    );
    expect_param_err(
        env.kms.create_policy(
            &env.me,
            policy_req(&ok_perm, r#"["key/*"]"#, "kst-none", acr),
        ),
        "InvalidParameter",
        "KmsInstance",
    );
    expect_param_err(
        env.kms.create_policy(
            &env.me,
            policy_req(&ok_perm, r#"["key/*"]"#, &instance, "[]"),
        ),
        "InvalidParameter",
        "AccessControlRules",
    );
    // `shared` is Alibaba's scope of keys outside instances.
    env.kms
        .create_policy(&env.me, policy_req(&ok_perm, r#"["key/*"]"#, "shared", acr))
        .unwrap();
    let aap_req = |policies: &str| CreateApplicationAccessPointRequest {
        name: "a".into(),
        authentication_method: None,
        policies: policies.into(),
        description: None,
    };
    expect_param_err(
        env.kms
            .create_application_access_point(&env.me, aap_req(r#"["a","b","c","d"]"#)),
        "InvalidParameter",
        "Policies",
    );
    expect_err(
        env.kms
            .create_application_access_point(&env.me, aap_req("")),
        "MissingParameter",
    );
    let ck = |password: &str, nb: Option<&str>, na: Option<&str>| CreateClientKeyRequest {
        aap_name: "a".into(),
        password: password.into(),
        not_before: nb.map(Into::into),
        not_after: na.map(Into::into),
    };
    expect_param_err(
        env.kms.create_client_key(&env.me, ck("short1", None, None)),
        "InvalidParameter",
        "Password",
    );
    expect_err(
        env.kms
            .create_client_key(&env.me, ck(PASSWORD, Some("2026-01-01T00:00:00Z"), None)),
        "MissingParameter",
    );
    // No such AAP.
    expect_err(
        env.kms.create_client_key(&env.me, ck(PASSWORD, None, None)),
        "Forbidden.ResourceNotFound",
    );
    expect_err(
        env.kms.get_kms_instance(
            &env.me,
            GetKmsInstanceRequest {
                kms_instance_id: "kst-nope".into(),
            },
        ),
        "Forbidden.DKMSInstanceNotFound",
    );
}

#[test]
fn the_default_instance_is_the_same_at_every_start_and_more_can_be_declared() {
    let env = Env::new();
    let first = env.kms.default_kms_instance().to_owned();
    assert!(first.starts_with("kst-") && first.len() == 25, "{first}");
    assert_eq!(env.reopen().default_kms_instance(), first);
    let got = env
        .kms
        .get_default_kms_instance(&env.me, NoParamsRequest {})
        .unwrap();
    assert_eq!(got.default_kms_instance_id, first);
    let kms = Kms::builder()
        .shared_storage(env.storage.clone())
        .root_key(env.root_key.clone())
        .account_id(ACCOUNT)
        .region(REGION)
        .kms_instance("kst-second")
        .build()
        .unwrap();
    let list = kms
        .list_kms_instances(&env.me, ListPageRequest::default())
        .unwrap();
    let ids: Vec<_> = list
        .kms_instances
        .kms_instance
        .iter()
        .map(|i| i.kms_instance_id.as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), "kst-second"]);
    assert!(list.kms_instances.kms_instance[1]
        .kms_instance_arn
        .ends_with(":keystore/kst-second"));
    env.create_key();
    let info = env
        .kms
        .get_kms_instance(
            &env.me,
            GetKmsInstanceRequest {
                kms_instance_id: first,
            },
        )
        .unwrap()
        .kms_instance;
    assert_eq!((info.key_num, info.status.as_str()), (1, "Connected"));
}

// ---- client keys ---------------------------------------------------------------------------

#[test]
fn a_client_key_file_is_a_pkcs12_that_openssl_opens_with_the_password_and_only_the_certificate_is_kept(
) {
    let a = setup(&["key/*"]);
    let key = &a.key;
    assert!(key.client_key_id.starts_with(CLIENT_KEY_PREFIX));
    assert_eq!(key.key_algorithm, "RSA_2048");
    let file: serde_json::Value = serde_json::from_str(&key.client_key_file()).unwrap();
    assert_eq!(file["KeyId"], key.client_key_id.as_str());
    let p12 = base64::engine::general_purpose::STANDARD
        .decode(file["PrivateKeyData"].as_str().unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.p12");
    std::fs::write(&path, &p12).unwrap();
    // An independent implementation: openssl checks the MAC and decrypts both bags.
    let out = std::process::Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&path)
        .args(["-nodes", "-passin", &format!("pass:{PASSWORD}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(pem.contains("BEGIN PRIVATE KEY") && pem.contains("BEGIN CERTIFICATE"));
    let wrong = std::process::Command::new("openssl")
        .args(["pkcs12", "-in"])
        .arg(&path)
        .args(["-nodes", "-passin", "pass:not-the-password1"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    // GetClientKey shows the certificate, never the private key.
    let got = a
        .env
        .kms
        .get_client_key(
            &a.env.me,
            ClientKeyIdRequest {
                client_key_id: key.client_key_id.clone(),
            },
        )
        .unwrap();
    assert!(got
        .client_key
        .public_key_data
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(got.client_key.key_origin, "KMS_PROVIDED");
    let cert_in_file = pem.split("-----BEGIN CERTIFICATE-----").nth(1).unwrap();
    assert!(got.client_key.public_key_data.contains(&cert_in_file[..64]));
    // Debug output never shows the private key.
    assert!(!format!("{key:?}").contains(&file["PrivateKeyData"].as_str().unwrap()[..32]));
}

#[test]
fn deleting_an_access_point_deletes_its_client_keys_so_a_new_one_of_the_same_name_inherits_none() {
    let a = setup(&["key/*"]);
    let kms = &a.env.kms;
    kms.delete_application_access_point(&a.env.me, NameRequest { name: "app".into() })
        .unwrap();
    expect_err(
        kms.client_key_credential(&a.key.client_key_id),
        "Forbidden.ResourceNotFound",
    );
    aap(&a.env, "app", &["p"]);
    expect_err(
        kms.client_key_credential(&a.key.client_key_id),
        "Forbidden.ResourceNotFound",
    );
    let listed = kms
        .list_client_keys(&a.env.me, ListClientKeysRequest::default())
        .unwrap();
    assert!(listed.client_keys.is_empty());
}

// ---- authorization ---------------------------------------------------------------------------

#[test]
fn an_application_may_use_only_what_its_policies_allow_from_its_network_rules() {
    let env = Env::new();
    let instance = env.kms.default_kms_instance().to_owned();
    let allowed = env.create_key().key_id;
    let other = env.create_key().key_id;
    rule(&env, "office", "10.1.0.0/16");
    policy(
        &env,
        "one-key",
        &[KEY_USER],
        &[&format!("key/{allowed}")],
        &instance,
        &["office"],
    );
    aap(&env, "app", &["one-key"]);
    let key = client_key(&env, "app");
    let inside = app(&env.kms, &key, Some("10.1.2.3".parse().unwrap()));
    env.kms
        .instance_encrypt(&inside, encrypt_req(&allowed, b"x", b""))
        .unwrap();
    // Another key: not among the policy's resources.
    expect_err(
        env.kms
            .instance_encrypt(&inside, encrypt_req(&other, b"x", b"")),
        "Forbidden.NoPermission",
    );
    // Another address: outside the network rule; no address at all matches no rule.
    let outside = app(&env.kms, &key, Some("10.2.0.1".parse().unwrap()));
    expect_err(
        env.kms
            .instance_encrypt(&outside, encrypt_req(&allowed, b"x", b"")),
        "Forbidden.NoPermission",
    );
    let nowhere = app(&env.kms, &key, None);
    expect_err(
        env.kms
            .instance_encrypt(&nowhere, encrypt_req(&allowed, b"x", b"")),
        "Forbidden.NoPermission",
    );
    // Only the key-user template: no secrets, and no management at all.
    expect_err(
        env.kms.instance_get_secret_value(
            &inside,
            inst::GetSecretValueRequest {
                secret_name: "s".into(),
                ..Default::default()
            },
        ),
        "Forbidden.ResourceNotFound",
    );
    expect_err(
        env.kms.create_key(&inside, CreateKeyRequest::default()),
        "Forbidden.NoPermission",
    );
    expect_err(
        env.kms.describe_key(&inside, key_req(&allowed)),
        "Forbidden.NoPermission",
    );
    // The OpenAPI's Encrypt checks the same policies for an application.
    env.kms
        .encrypt(
            &inside,
            EncryptRequest {
                key_id: allowed.clone(),
                plaintext: b"x".to_vec().into(),
                ..Default::default()
            },
        )
        .unwrap();
    // A key of another instance is outside a policy of the default instance.
    let kms2 = with_other_instance(&env);
    let in_other = kms2
        .create_key(
            &env.me,
            CreateKeyRequest {
                dkms_instance_id: Some("kst-other".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .key_metadata
        .key_id;
    env.kms
        .update_policy(
            &env.me,
            UpdatePolicyRequest {
                name: "one-key".into(),
                resources: Some(r#"["key/*"]"#.into()),
                ..Default::default()
            },
        )
        .unwrap();
    let inside2 = app(&kms2, &key, Some("10.1.2.3".parse().unwrap()));
    kms2.instance_encrypt(&inside2, encrypt_req(&other, b"x", b""))
        .unwrap();
    expect_err(
        kms2.instance_encrypt(&inside2, encrypt_req(&in_other, b"x", b"")),
        "Forbidden.NoPermission",
    );
}

#[test]
fn a_client_key_works_only_inside_its_validity_window_and_until_it_is_deleted() {
    let a = setup(&["key/*"]);
    let key_id = a.env.create_key().key_id;
    let now = a.env.now();
    let later = a
        .env
        .kms
        .create_client_key(
            &a.env.me,
            CreateClientKeyRequest {
                aap_name: "app".into(),
                password: PASSWORD.into(),
                not_before: Some(now.plus_secs(DAY).to_string()),
                not_after: Some(now.plus_secs(2 * DAY).to_string()),
            },
        )
        .unwrap();
    let early = app(&a.env.kms, &later, localhost());
    let e = expect_err(
        a.env
            .kms
            .instance_encrypt(&early, encrypt_req(&key_id, b"x", b"")),
        "Unauthorized",
    );
    assert_eq!(e.http_status(), 401);
    a.env.clock.advance(DAY + 1);
    a.env
        .kms
        .instance_encrypt(&early, encrypt_req(&key_id, b"x", b""))
        .unwrap();
    a.env.clock.advance(DAY);
    expect_err(
        a.env
            .kms
            .instance_encrypt(&early, encrypt_req(&key_id, b"x", b"")),
        "Unauthorized",
    );
    // Deleted: the caller made from it no longer authorizes anything.
    let fresh = client_key(&a.env, "app");
    let caller = app(&a.env.kms, &fresh, localhost());
    a.env
        .kms
        .delete_client_key(
            &a.env.me,
            ClientKeyIdRequest {
                client_key_id: fresh.client_key_id.clone(),
            },
        )
        .unwrap();
    expect_err(
        a.env
            .kms
            .instance_encrypt(&caller, encrypt_req(&key_id, b"x", b"")),
        "Forbidden.NoPermission",
    );
    expect_err(
        a.env.kms.instance_generate_random(&caller, 8),
        "Forbidden.NoPermission",
    );
}

// ---- the instance API ----------------------------------------------------------------------

#[test]
fn encrypt_returns_the_iv_apart_and_decrypt_takes_the_same_tuple_and_aad() {
    let a = setup(&["key/*"]);
    let key_id = a.env.create_key().key_id;
    let kms = &a.env.kms;
    let sealed = kms
        .instance_encrypt(&a.caller, encrypt_req(&key_id, b"hello", b"aad"))
        .unwrap();
    assert_eq!(
        (
            sealed.iv.len(),
            sealed.ciphertext_blob.len(),
            sealed.algorithm.as_str()
        ),
        (12, 5 + 16, "AES_GCM")
    );
    let opened = kms
        .instance_decrypt(
            &a.caller,
            inst::DecryptRequest {
                key_id: key_id.clone(),
                ciphertext_blob: sealed.ciphertext_blob.clone(),
                iv: sealed.iv.clone(),
                aad: b"aad".to_vec(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"hello");
    let mut tampered = sealed.ciphertext_blob.clone();
    tampered[0] ^= 1;
    for (blob, aad) in [
        (tampered, b"aad".to_vec()),
        (sealed.ciphertext_blob.clone(), b"other".to_vec()),
    ] {
        expect_err(
            kms.instance_decrypt(
                &a.caller,
                inst::DecryptRequest {
                    key_id: key_id.clone(),
                    ciphertext_blob: blob,
                    iv: sealed.iv.clone(),
                    aad,
                    ..Default::default()
                },
            ),
            "InvalidCiphertext",
        );
    }
    // A caller's IV is used as given; a wrong length is refused.
    let with_iv = kms
        .instance_encrypt(
            &a.caller,
            inst::EncryptRequest {
                iv: vec![7; 12],
                ..encrypt_req(&key_id, b"x", b"")
            },
        )
        .unwrap();
    assert_eq!(with_iv.iv, vec![7; 12]);
    expect_param_err(
        kms.instance_encrypt(
            &a.caller,
            inst::EncryptRequest {
                iv: vec![7; 8],
                ..encrypt_req(&key_id, b"x", b"")
            },
        ),
        "InvalidParameter",
        "Iv",
    );
    expect_param_err(
        kms.instance_encrypt(
            &a.caller,
            inst::EncryptRequest {
                algorithm: "AES_CBC".into(),
                ..encrypt_req(&key_id, b"x", b"")
            },
        ),
        "InvalidParameter",
        "Algorithm",
    );
    expect_err(
        kms.instance_encrypt(&a.caller, encrypt_req(&key_id, b"", b"")),
        "MissingParameter",
    );
    // Encrypt's tuples name no version: they use the initial one, so they open after rotation.
    a.env.create_key_version(&key_id).unwrap();
    let after = kms
        .instance_encrypt(&a.caller, encrypt_req(&key_id, b"later", b""))
        .unwrap();
    assert_eq!(after.key_version_id, sealed.key_version_id);
    kms.instance_decrypt(
        &a.caller,
        inst::DecryptRequest {
            key_id: key_id.clone(),
            ciphertext_blob: sealed.ciphertext_blob,
            iv: sealed.iv,
            aad: b"aad".to_vec(),
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn advance_blobs_name_their_key_use_the_primary_version_and_open_after_rotation() {
    let a = setup(&["key/*"]);
    let key_id = a.env.create_key().key_id;
    let kms = &a.env.kms;
    let v1 = kms
        .instance_advance_encrypt(&a.caller, encrypt_req(&key_id, b"first", b"a"))
        .unwrap();
    // Alibaba's layout: `$`, format 0, AES-GCM, the key id, the IV, ciphertext and tag.
    assert_eq!(&v1.ciphertext_blob[..3], b"$\x00\x02");
    assert_eq!(&v1.ciphertext_blob[3..39], key_id.as_bytes());
    assert_eq!(&v1.ciphertext_blob[39..51], &v1.iv[..]);
    assert_eq!(v1.ciphertext_blob.len(), 51 + 5 + 16);
    a.env.create_key_version(&key_id).unwrap();
    let v2 = kms
        .instance_advance_encrypt(&a.caller, encrypt_req(&key_id, b"second", b"a"))
        .unwrap();
    assert_ne!(v1.key_version_id, v2.key_version_id);
    for (sealed, text) in [(&v1, &b"first"[..]), (&v2, &b"second"[..])] {
        let opened = kms
            .instance_advance_decrypt(
                &a.caller,
                inst::DecryptRequest {
                    ciphertext_blob: sealed.ciphertext_blob.clone(),
                    aad: b"a".to_vec(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            (&opened.plaintext[..], opened.key_version_id.as_str()),
            (text, sealed.key_version_id.as_str())
        );
    }
    // The header is authenticated: another key id in it does not open.
    let other = a.env.create_key().key_id;
    let mut moved = v1.ciphertext_blob.clone();
    moved[3..39].copy_from_slice(other.as_bytes());
    expect_err(
        kms.instance_advance_decrypt(
            &a.caller,
            inst::DecryptRequest {
                ciphertext_blob: moved,
                aad: b"a".to_vec(),
                ..Default::default()
            },
        ),
        "InvalidCiphertext",
    );
    // AdvanceDecrypt also takes Encrypt's tuples.
    let tuple = kms
        .instance_encrypt(&a.caller, encrypt_req(&key_id, b"tuple", b""))
        .unwrap();
    let opened = kms
        .instance_advance_decrypt(
            &a.caller,
            inst::DecryptRequest {
                key_id: key_id.clone(),
                ciphertext_blob: tuple.ciphertext_blob,
                iv: tuple.iv,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"tuple");
}

#[test]
fn data_keys_and_data_key_pairs_come_back_encrypted_under_the_key() {
    use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
    let a = setup(&["key/*"]);
    let key_id = a.env.create_key().key_id;
    let kms = &a.env.kms;
    let dk = kms
        .instance_generate_data_key(
            &a.caller,
            inst::GenerateDataKeyRequest {
                key_id: key_id.clone(),
                number_of_bytes: 24,
                aad: b"k".to_vec(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(dk.plaintext.len(), 24);
    let opened = kms
        .instance_decrypt(
            &a.caller,
            inst::DecryptRequest {
                key_id: key_id.clone(),
                ciphertext_blob: dk.ciphertext_blob,
                iv: dk.iv,
                aad: b"k".to_vec(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(opened.plaintext, dk.plaintext);
    expect_param_err(
        kms.instance_generate_data_key(
            &a.caller,
            inst::GenerateDataKeyRequest {
                key_id: key_id.clone(),
                number_of_bytes: 1025,
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "NumberOfBytes",
    );
    for format in ["DER", "PEM"] {
        let pair = kms
            .instance_advance_generate_data_key_pair(
                &a.caller,
                inst::GenerateDataKeyPairRequest {
                    key_id: key_id.clone(),
                    key_pair_spec: "EC_P256".into(),
                    key_format: format.into(),
                    ..Default::default()
                },
                true,
            )
            .unwrap();
        let private = pair.private_key_plaintext.clone().unwrap();
        // A second implementation reads both halves, and they are one pair.
        let (sk, pk) = if format == "DER" {
            (
                p256::SecretKey::from_pkcs8_der(&private).unwrap(),
                p256::PublicKey::from_public_key_der(&pair.public_key).unwrap(),
            )
        } else {
            let (_, der) = p256::pkcs8::der::pem::decode_vec(&private).unwrap();
            let (_, pub_der) = p256::pkcs8::der::pem::decode_vec(&pair.public_key).unwrap();
            (
                p256::SecretKey::from_pkcs8_der(&der).unwrap(),
                p256::PublicKey::from_public_key_der(&pub_der).unwrap(),
            )
        };
        assert_eq!(sk.public_key(), pk);
        let opened = kms
            .instance_advance_decrypt(
                &a.caller,
                inst::DecryptRequest {
                    ciphertext_blob: pair.private_key_ciphertext_blob,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(&opened.plaintext[..], &private[..]);
    }
    let without = kms
        .instance_generate_data_key_pair(
            &a.caller,
            inst::GenerateDataKeyPairRequest {
                key_id: key_id.clone(),
                key_pair_spec: "RSA_2048".into(),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    assert!(without.private_key_plaintext.is_none());
    assert!(String::from_utf8(without.public_key)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    expect_param_err(
        kms.instance_generate_data_key_pair(
            &a.caller,
            inst::GenerateDataKeyPairRequest {
                key_id,
                key_pair_spec: "Aliyun_AES_256".into(),
                ..Default::default()
            },
            true,
        ),
        "InvalidParameter",
        "KeyPairSpec",
    );
}

#[test]
fn sign_and_verify_take_raw_messages_and_digests_and_ring_verifies_the_signatures() {
    use sha2::Digest;
    let a = setup(&["key/*"]);
    let kms = &a.env.kms;
    let ec = a
        .env
        .create_key_with(CreateKeyRequest {
            key_spec: Some(KeySpec::EcP256),
            key_usage: Some(KeyUsage::SignVerify),
            ..Default::default()
        })
        .key_id;
    let message = b"an instance message".to_vec();
    let raw = kms
        .instance_sign(
            &a.caller,
            inst::SignRequest {
                key_id: ec.clone(),
                algorithm: "ECDSA_SHA_256".into(),
                message: message.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(raw.message_type, "RAW");
    let pem = kms
        .instance_get_public_key(&a.caller, &ec)
        .unwrap()
        .public_key;
    let (_, spki) = p256::pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap();
    let point = {
        use p256::pkcs8::DecodePublicKey;
        p256::PublicKey::from_public_key_der(&spki)
            .unwrap()
            .to_sec1_bytes()
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &point)
        .verify(&message, &raw.signature)
        .unwrap();
    let digest = sha2::Sha256::digest(&message).to_vec();
    let verified = kms
        .instance_verify(
            &a.caller,
            inst::VerifyRequest {
                key_id: ec.clone(),
                algorithm: "ECDSA_SHA_256".into(),
                message: digest.clone(),
                message_type: "DIGEST".into(),
                signature: raw.signature.clone(),
            },
        )
        .unwrap();
    assert!(verified.value);
    let wrong = kms
        .instance_verify(
            &a.caller,
            inst::VerifyRequest {
                key_id: ec.clone(),
                algorithm: "ECDSA_SHA_256".into(),
                message: b"other".to_vec(),
                signature: raw.signature,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!wrong.value);
    expect_param_err(
        kms.instance_sign(
            &a.caller,
            inst::SignRequest {
                key_id: ec.clone(),
                algorithm: "ECDSA_SHA_256".into(),
                message: vec![1; 20],
                message_type: "DIGEST".into(),
            },
        ),
        "InvalidParameter",
        "Message",
    );
    let aes = a.env.create_key().key_id;
    expect_err(
        kms.instance_sign(
            &a.caller,
            inst::SignRequest {
                key_id: aes.clone(),
                algorithm: "ECDSA_SHA_256".into(),
                message,
                ..Default::default()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        kms.instance_get_public_key(&a.caller, &aes),
        "Rejected.UnsupportedOperation",
    );
}

#[test]
fn rsa_keys_encrypt_with_oaep_and_hmac_keys_give_the_mac_the_openapi_gives() {
    let a = setup(&["key/*"]);
    let kms = &a.env.kms;
    let rsa = a
        .env
        .create_key_with(CreateKeyRequest {
            key_spec: Some(KeySpec::Rsa2048),
            key_usage: Some(KeyUsage::EncryptDecrypt),
            ..Default::default()
        })
        .key_id;
    let sealed = kms
        .instance_encrypt(
            &a.caller,
            inst::EncryptRequest {
                algorithm: "RSAES_OAEP_SHA_256".into(),
                ..encrypt_req(&rsa, b"rsa", b"")
            },
        )
        .unwrap();
    assert!(sealed.iv.is_empty());
    assert_eq!(sealed.ciphertext_blob.len(), 256);
    let opened = kms
        .instance_decrypt(
            &a.caller,
            inst::DecryptRequest {
                key_id: rsa.clone(),
                ciphertext_blob: sealed.ciphertext_blob,
                algorithm: "RSAES_OAEP_SHA_256".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"rsa");
    // RSA keys need their OAEP algorithm named.
    expect_param_err(
        kms.instance_encrypt(&a.caller, encrypt_req(&rsa, b"rsa", b"")),
        "MissingParameter",
        "Algorithm",
    );
    let mac_key = a
        .env
        .create_key_with(CreateKeyRequest {
            key_spec: Some(KeySpec::HmacSha256),
            key_usage: Some(KeyUsage::GenerateVerifyMac),
            ..Default::default()
        })
        .key_id;
    let mac = kms.instance_hmac(&a.caller, &mac_key, b"message").unwrap();
    let openapi = kms
        .generate_mac(
            &a.env.me,
            GenerateMacRequest {
                key_id: mac_key.clone(),
                message: b"message".to_vec(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(mac.signature, openapi.mac);
    expect_err(
        kms.instance_hmac(&a.caller, &mac_key, b""),
        "MissingParameter",
    );
}

#[test]
fn secrets_are_read_with_the_secret_user_template_and_random_bytes_need_only_a_valid_key() {
    let a = setup(&["secret/db-*"]);
    let kms = &a.env.kms;
    let key_id = a.env.create_key().key_id;
    for name in ["db-main", "web"] {
        kms.create_secret(
            &a.env.me,
            CreateSecretRequest {
                secret_name: name.into(),
                secret_data: SecretData(format!("value of {name}").into()),
                version_id: "v1".into(),
                encryption_key_id: Some(key_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let got = kms
        .instance_get_secret_value(
            &a.caller,
            inst::GetSecretValueRequest {
                secret_name: "db-main".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (got.secret_data.expose(), got.version_id.as_str()),
        ("value of db-main", "v1")
    );
    assert_eq!(got.version_stages, ["ACSCurrent"]);
    expect_err(
        kms.instance_get_secret_value(
            &a.caller,
            inst::GetSecretValueRequest {
                secret_name: "web".into(),
                ..Default::default()
            },
        ),
        "Forbidden.NoPermission",
    );
    // The secret's key is outside the policy's resources: the service uses it for the secret.
    expect_err(
        kms.instance_encrypt(&a.caller, encrypt_req(&key_id, b"x", b"")),
        "Forbidden.NoPermission",
    );
    let random = kms.instance_generate_random(&a.caller, 64).unwrap();
    assert_eq!(random.random.len(), 64);
    expect_param_err(
        kms.instance_generate_random(&a.caller, 0),
        "InvalidParameter",
        "Length",
    );
    expect_param_err(
        kms.instance_generate_random(&a.caller, 1025),
        "InvalidParameter",
        "Length",
    );
}

#[test]
fn a_secret_belongs_to_the_instance_it_was_created_in_and_only_that_instances_policies_reach_it() {
    let a = setup(&["secret/*"]);
    let env = &a.env;
    let kms2 = with_other_instance(env);
    let create = |kms: &Kms, name: &str, instance: Option<&str>| {
        kms.create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: name.into(),
                secret_data: SecretData(format!("value of {name}").into()),
                version_id: "v1".into(),
                dkms_instance_id: instance.map(Into::into),
                extended_config: Some(r#"{"CustomData":{"team":"db"}}"#.into()),
                ..Default::default()
            },
        )
    };
    let made = create(&kms2, "in-other", Some("kst-other")).unwrap();
    assert_eq!(made.dkms_instance_id.as_deref(), Some("kst-other"));
    create(&kms2, "in-default", None).unwrap();
    expect_param_err(
        create(&kms2, "bad", Some(&"k".repeat(129))),
        "InvalidParameter",
        "DKMSInstanceId",
    );
    let described = kms2
        .describe_secret(
            &env.me,
            DescribeSecretRequest {
                secret_name: "in-other".into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(described.dkms_instance_id.as_deref(), Some("kst-other"));
    assert_eq!(
        described.extended_config.as_deref(),
        Some(r#"{"CustomData":{"team":"db"}}"#)
    );

    // The application's policy is of the default instance: the other instance's secret is
    // outside it, the default one's inside.
    let read = |kms: &Kms, caller: &Caller, name: &str| {
        kms.instance_get_secret_value(
            caller,
            inst::GetSecretValueRequest {
                secret_name: name.into(),
                fetch_extended_config: true,
                ..Default::default()
            },
        )
    };
    let inside = app(&kms2, &a.key, localhost());
    read(&kms2, &inside, "in-default").unwrap();
    expect_err(read(&kms2, &inside, "in-other"), "Forbidden.NoPermission");
    // A policy of the other instance reaches only its secret.
    kms2.create_policy(
        &env.me,
        CreatePolicyRequest {
            name: "other".into(),
            permissions: serde_json::to_string(&[SECRET_USER]).unwrap(),
            resources: r#"["secret/*"]"#.into(),
            kms_instance: "kst-other".into(),
            access_control_rules: r#"{"NetworkRules":["local"]}"#.into(),
            description: None,
        },
    )
    .unwrap();
    aap(env, "other-app", &["other"]);
    let other_key = client_key(env, "other-app");
    let other = app(&kms2, &other_key, localhost());
    let got = read(&kms2, &other, "in-other").unwrap();
    assert_eq!(got.secret_data.expose(), "value of in-other");
    assert_eq!(got.automatic_rotation.as_deref(), Some("Disabled"));
    assert_eq!(
        got.extended_config.as_deref(),
        Some(r#"{"CustomData":{"team":"db"}}"#)
    );
    expect_err(read(&kms2, &other, "in-default"), "Forbidden.NoPermission");

    // GetKmsInstance counts each instance's own secrets.
    let count = |id: &str| {
        kms2.get_kms_instance(
            &env.me,
            GetKmsInstanceRequest {
                kms_instance_id: id.into(),
            },
        )
        .unwrap()
        .kms_instance
        .secret_num
    };
    assert_eq!(count("kst-other"), "1");
    assert_eq!(count(kms2.default_kms_instance()), "1");
}

#[test]
fn get_secret_value_answers_rotation_settings_and_extended_config_only_when_asked() {
    let env = Env::new();
    env.kms
        .create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: "s".into(),
                secret_data: SecretData("v".to_owned().into()),
                version_id: "v1".into(),
                extended_config: Some(r#"{"CustomData":{}}"#.into()),
                ..Default::default()
            },
        )
        .unwrap();
    let get = |fetch: Option<bool>| {
        env.kms
            .get_secret_value(
                &env.me,
                GetSecretValueRequest {
                    secret_name: "s".into(),
                    fetch_extended_config: fetch,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    for plain in [get(None), get(Some(false))] {
        assert_eq!(plain.automatic_rotation, None);
        assert_eq!(plain.extended_config, None);
    }
    let full = get(Some(true));
    assert_eq!(full.automatic_rotation.as_deref(), Some("Disabled"));
    assert_eq!(
        full.extended_config.as_deref(),
        Some(r#"{"CustomData":{}}"#)
    );
    assert_eq!(full.rotation_interval, None);
    expect_param_err(
        env.kms.create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: "t".into(),
                secret_data: SecretData("v".to_owned().into()),
                version_id: "v1".into(),
                extended_config: Some("[]".into()),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "ExtendedConfig",
    );
}
