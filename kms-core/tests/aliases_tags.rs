#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Aliases (naming, uniqueness, the per-key limit, UpdateAlias, DeleteAlias, paging), tags
//! (rules, the limit, replace and untag, ordering, CreateKey with Tags), and ListKeys filters
//! and paging.

mod common;

use std::collections::BTreeSet;

use common::*;
use kms_core::api::decode_request;
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState};

// ---- aliases ------------------------------------------------------------------------------

#[test]
fn alias_names_follow_the_naming_rule() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let longest = format!("alias/{}", "x".repeat(255));
    for good in [
        "alias/a",
        "alias/A-z_0/9",
        "alias/team/app/prod",
        "alias/acs",
        "alias/acsx/y",
        longest.as_str(),
    ] {
        env.create_alias(good, &key).unwrap();
        assert_eq!(env.describe(good).key_id, key, "{good}");
    }
    for bad in [
        "a".to_string(),
        "alias".into(),
        "alias/".into(),
        "Alias/upper-prefix".into(),
        "alias/has space".into(),
        "alias/dot.no".into(),
        "alias/semi;colon".into(),
        "alias/ünïcode".into(),
        format!("alias/{}", "x".repeat(256)),
    ] {
        let e = expect_param_err(
            env.create_alias(&bad, &key),
            "InvalidParameter",
            "AliasName",
        );
        assert_eq!(e.http_status(), 400);
    }
    expect_param_err(env.create_alias("", &key), "MissingParameter", "AliasName");
    assert_eq!(env.aliases_of(&key).len(), 6);
}

#[test]
fn aliases_under_alias_acs_are_reserved() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.create_alias("alias/mine", &key).unwrap();
    for reserved in ["alias/acs/oss", "alias/acs/ecs/default"] {
        let e = expect_param_err(
            env.create_alias(reserved, &key),
            "InvalidParameter",
            "AliasName",
        );
        assert!(e.to_string().contains("reserved"), "{e}");
        expect_param_err(
            env.update_alias(reserved, &key),
            "InvalidParameter",
            "AliasName",
        );
        expect_param_err(env.delete_alias(reserved), "InvalidParameter", "AliasName");
    }
    assert_eq!(env.aliases_of(&key), ["alias/mine"]);
}

#[test]
fn a_duplicate_alias_is_alias_already_exists() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let b = env.create_key().key_id;
    env.create_alias("alias/shared", &a).unwrap();
    for target in [&a, &b] {
        let e = expect_err(
            env.create_alias("alias/shared", target),
            "AliasAlreadyExists",
        );
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().contains("alias/shared"), "{e}");
    }
    assert_eq!(env.describe("alias/shared").key_id, a);
    assert!(env.aliases_of(&b).is_empty());
}

#[test]
fn a_key_carries_at_most_50_aliases() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let other = env.create_key().key_id;
    for i in 0..50 {
        env.create_alias(&format!("alias/a{i:02}"), &key).unwrap();
    }
    let e = expect_err(
        env.create_alias("alias/a50", &key),
        "Rejected.LimitExceeded",
    );
    assert_eq!(e.http_status(), 400);
    assert_eq!(env.aliases_of(&key).len(), 50);
    expect_err(env.try_describe("alias/a50"), "Forbidden.AliasNotFound");
    // Moving another alias onto the full key is refused too, and leaves it where it was.
    env.create_alias("alias/elsewhere", &other).unwrap();
    expect_err(
        env.update_alias("alias/elsewhere", &key),
        "Rejected.LimitExceeded",
    );
    assert_eq!(env.describe("alias/elsewhere").key_id, other);
    // Deleting one makes room.
    env.delete_alias("alias/a00").unwrap();
    env.create_alias("alias/a50", &key).unwrap();
    assert_eq!(env.aliases_of(&key).len(), 50);
}

#[test]
fn update_alias_moves_it_to_another_key() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let b = env.create_key().key_id;
    env.create_alias("alias/current", &a).unwrap();
    env.create_alias("alias/a-only", &a).unwrap();
    assert_eq!(env.encrypt("alias/current", b"x", &ctx(&[])).key_id, a);

    env.update_alias("alias/current", &b).unwrap();
    assert_eq!(env.aliases_of(&a), ["alias/a-only"]);
    assert_eq!(env.aliases_of(&b), ["alias/current"]);
    let listed: Vec<(String, String)> = env
        .all_aliases()
        .into_iter()
        .map(|x| (x.alias_name, x.key_id))
        .collect();
    assert_eq!(
        listed,
        // In creation order: moving an alias to another key keeps its place.
        [
            ("alias/current".to_string(), b.clone()),
            ("alias/a-only".to_string(), a.clone())
        ]
    );
    assert_eq!(env.encrypt("alias/current", b"x", &ctx(&[])).key_id, b);
    // A restarted engine sees the move too.
    let fresh = env.reopen();
    let m = fresh
        .describe_key(&env.me, key_req("alias/current"))
        .unwrap();
    assert_eq!(m.key_metadata.key_id, b);
    // Updating to the key it already names is a no-op.
    env.update_alias("alias/current", &b).unwrap();
    assert_eq!(env.aliases_of(&b), ["alias/current"]);
    // The new target may be named by its ARN, and a Disabled key is a valid target.
    env.disable(&a).unwrap();
    env.update_alias("alias/current", &env.describe(&a).arn)
        .unwrap();
    assert_eq!(env.aliases_of(&a), ["alias/a-only", "alias/current"]);
}

#[test]
fn update_alias_refuses_a_pending_deletion_target() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let b = env.create_key().key_id;
    env.create_alias("alias/x", &a).unwrap();
    env.schedule_deletion(&b, 7).unwrap();
    let e = expect_err(env.update_alias("alias/x", &b), "Rejected.PendingDeletion");
    assert_eq!(e.http_status(), 409);
    assert_eq!(env.describe("alias/x").key_id, a);
    assert_eq!(env.aliases_of(&a), ["alias/x"]);
    assert!(env.aliases_of(&b).is_empty());
}

#[test]
fn update_alias_of_an_unknown_alias_is_alias_not_found() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let e = expect_err(
        env.update_alias("alias/ghost", &a),
        "Forbidden.AliasNotFound",
    );
    assert_eq!(e.http_status(), 404);
    assert!(env.aliases_of(&a).is_empty());
    env.create_alias("alias/real", &a).unwrap();
    expect_err(
        env.update_alias("alias/real", "00000000-0000-4000-8000-000000000000"),
        "Forbidden.KeyNotFound",
    );
    assert_eq!(env.describe("alias/real").key_id, a);
}

#[test]
fn delete_alias_of_an_unknown_alias_is_alias_not_found() {
    let env = Env::new();
    let e = expect_err(env.delete_alias("alias/ghost"), "Forbidden.AliasNotFound");
    assert_eq!(e.http_status(), 404);
    assert!(e.to_string().contains("alias/ghost"));
    expect_param_err(env.delete_alias(""), "MissingParameter", "AliasName");
}

#[test]
fn deleting_an_alias_leaves_its_key() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.create_alias("alias/temp", &key).unwrap();
    env.create_alias("alias/keep", &key).unwrap();
    let blob = env
        .encrypt("alias/temp", b"kept", &ctx(&[]))
        .ciphertext_blob;
    env.delete_alias("alias/temp").unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    assert_eq!(env.aliases_of(&key), ["alias/keep"]);
    assert_eq!(&env.decrypt(&blob, &ctx(&[])).plaintext[..], b"kept");
    assert_eq!(env.encrypt(&key, b"x", &ctx(&[])).key_id, key);
    expect_err(env.delete_alias("alias/temp"), "Forbidden.AliasNotFound");
    // The name is free again, for any key.
    let other = env.create_key().key_id;
    env.create_alias("alias/temp", &other).unwrap();
    assert_eq!(env.describe("alias/temp").key_id, other);
}

#[test]
fn an_unknown_alias_as_key_id_is_alias_not_found() {
    let env = Env::new();
    env.create_key();
    let e = expect_err(env.try_describe("alias/nowhere"), "Forbidden.AliasNotFound");
    assert_eq!(e.http_status(), 404);
    expect_err(
        env.try_encrypt("alias/nowhere", b"x", &ctx(&[])),
        "Forbidden.AliasNotFound",
    );
    expect_err(
        env.create_alias("alias/new", "alias/nowhere"),
        "Forbidden.AliasNotFound",
    );
    assert!(env.all_aliases().is_empty());
}

#[test]
fn list_aliases_pages_in_creation_order_with_total_count() {
    let env = Env::new();
    let a = env.create_key().key_id;
    let b = env.create_key().key_id;
    let mut names = Vec::new();
    for i in (0..25).rev() {
        let name = format!("alias/n{i:02}");
        env.create_alias(&name, if i % 2 == 0 { &a } else { &b })
            .unwrap();
        names.push(name);
    }
    let page = |n: i64| {
        env.kms
            .list_aliases(
                &env.me,
                ListAliasesRequest {
                    page_number: Some(n),
                    page_size: Some(10),
                },
            )
            .unwrap()
    };
    let mut seen = Vec::new();
    for (n, want) in [(1, 10), (2, 10), (3, 5), (4, 0)] {
        let p = page(n);
        assert_eq!(p.total_count, 25);
        assert_eq!(p.page_number, n);
        assert_eq!(p.page_size, 10);
        assert_eq!(p.aliases.alias.len(), want, "page {n}");
        for x in &p.aliases.alias {
            let suffix = x.alias_name.strip_prefix("alias/").unwrap();
            assert_eq!(
                x.alias_arn,
                format!("acs:kms:{REGION}:{ACCOUNT}:alias/{suffix}")
            );
        }
        seen.extend(p.aliases.alias.into_iter().map(|x| x.alias_name));
    }
    assert_eq!(seen, names);
    let default = env
        .kms
        .list_aliases(&env.me, ListAliasesRequest::default())
        .unwrap();
    assert_eq!(default.page_size, 10);
    assert_eq!(default.aliases.alias.len(), 10);
    let json = serde_json::to_value(&default).unwrap();
    assert_eq!(json["Aliases"]["Alias"].as_array().unwrap().len(), 10);
    assert!(json["Aliases"]["Alias"][0]["AliasArn"].is_string());
    assert_eq!(json["TotalCount"], 25);
    // By key: its own aliases only, paged the same way.
    let by_a = env
        .kms
        .list_aliases_by_key_id(
            &env.me,
            ListAliasesByKeyIdRequest {
                key_id: a.clone(),
                page_number: Some(2),
                page_size: Some(5),
            },
        )
        .unwrap();
    assert_eq!(by_a.total_count, 13);
    assert_eq!(by_a.aliases.alias.len(), 5);
    assert!(by_a.aliases.alias.iter().all(|x| x.key_id == a));
    for size in [0, 101] {
        expect_param_err(
            env.kms.list_aliases(
                &env.me,
                ListAliasesRequest {
                    page_size: Some(size),
                    ..Default::default()
                },
            ),
            "InvalidParameter",
            "PageSize",
        );
    }
}

// ---- tags ---------------------------------------------------------------------------------

#[test]
fn tag_keys_and_values_follow_the_guide_rules() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let max = "k".repeat(128);
    for (k, v) in [
        ("env", "prod"),
        ("a/b\\c_d-e.f+g=h:i@j", "v/\\_-.+=:@"),
        ("環境", "本番"),
        (max.as_str(), max.as_str()),
        ("owner", "aliyun-is-fine-in-values"),
        ("my-aliyun", "x"),
    ] {
        env.tag(&key, &[(k, v)]).unwrap();
    }
    assert_eq!(env.tags(&key).len(), 6);
    let long = "k".repeat(129);
    for (k, v) in [
        ("", "v"),
        ("k", ""),
        (long.as_str(), "v"),
        ("k", long.as_str()),
        ("has space", "v"),
        ("k", "semi;colon"),
        ("aliyun", "v"),
        ("aliyun-owner", "v"),
        ("ALIYUNX", "v"),
        ("acs:service", "v"),
        ("ACS:x", "v"),
    ] {
        let e = expect_param_err(env.tag(&key, &[(k, v)]), "InvalidParameter", "Tags");
        assert_eq!(e.http_status(), 400);
    }
    assert_eq!(env.tags(&key).len(), 6, "refused tags change nothing");
    // One bad tag in a list refuses the whole list.
    expect_err(
        env.tag(&key, &[("good", "1"), ("acs:bad", "2")]),
        "InvalidParameter",
    );
    assert!(env.tags(&key).iter().all(|(k, _)| k != "good"));
    expect_param_err(env.tag(&key, &[]), "MissingParameter", "Tags");
}

#[test]
fn a_key_carries_at_most_20_tags_and_setting_a_tag_replaces_its_value() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let pairs: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i:02}"), format!("v{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.tag(&key, &refs).unwrap();
    assert_eq!(env.tags(&key).len(), 20);
    let e = expect_err(env.tag(&key, &[("k20", "v")]), "Rejected.LimitExceeded");
    assert_eq!(e.http_status(), 400);
    assert_eq!(env.tags(&key).len(), 20);
    // Replacing a value at the limit is fine.
    env.tag(&key, &[("k00", "replaced")]).unwrap();
    let tags = env.tags(&key);
    assert_eq!(tags.len(), 20);
    assert_eq!(tags[0], ("k00".to_string(), "replaced".to_string()));
    // A batch that would cross the limit sets none of its tags.
    env.kms
        .untag_resource(
            &env.me,
            UntagResourceRequest {
                key_id: key.clone(),
                tag_keys: vec!["k19".into()],
                ..Default::default()
            },
        )
        .unwrap();
    expect_err(
        env.tag(&key, &[("n1", "v"), ("n2", "v")]),
        "Rejected.LimitExceeded",
    );
    assert_eq!(env.tags(&key).len(), 19);
    assert!(env.tags(&key).iter().all(|(k, _)| !k.starts_with('n')));
}

#[test]
fn untag_removes_tags_and_ignores_absent_keys() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.tag(&key, &[("a", "1"), ("b", "2"), ("c", "3")])
        .unwrap();
    let untag = |keys: &[&str]| {
        env.kms.untag_resource(
            &env.me,
            UntagResourceRequest {
                key_id: key.clone(),
                tag_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                ..Default::default()
            },
        )
    };
    untag(&["a", "c", "zzz"]).unwrap();
    assert_eq!(env.tags(&key), [("b".to_string(), "2".to_string())]);
    expect_param_err(untag(&[]), "MissingParameter", "TagKeys");
    expect_param_err(untag(&["bad key"]), "InvalidParameter", "TagKeys");
    // From wire text: TagKeys is a JSON list in a string.
    let req: UntagResourceRequest = decode_request(serde_json::json!({
        "KeyId": key, "TagKeys": "[\"b\"]"
    }))
    .unwrap();
    env.kms.untag_resource(&env.me, req).unwrap();
    assert!(env.tags(&key).is_empty());
}

#[test]
fn list_resource_tags_is_sorted_by_tag_key() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.tag(
        &key,
        &[("zeta", "1"), ("alpha", "2"), ("Mid", "3"), ("beta", "4")],
    )
    .unwrap();
    let r = env.kms.list_resource_tags(&env.me, key_req(&key)).unwrap();
    let keys: Vec<&str> = r.tags.tag.iter().map(|t| t.tag_key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(keys, ["Mid", "alpha", "beta", "zeta"]);
    assert!(r.tags.tag.iter().all(|t| t.key_id == key));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["Tags"]["Tag"][1]["TagKey"], "alpha");
    assert_eq!(json["Tags"]["Tag"][1]["TagValue"], "2");
    assert_eq!(json["Tags"]["Tag"][1]["KeyId"], key);
}

#[test]
fn create_key_sets_tags_from_json_text() {
    let env = Env::new();
    let req: CreateKeyRequest = decode_request(serde_json::json!({
        "KeySpec": "Aliyun_AES_128",
        "Description": "tagged",
        "Tags": r#"[{"TagKey":"team","TagValue":"core"},{"TagKey":"env","TagValue":"prod"}]"#,
    }))
    .unwrap();
    let m = env.kms.create_key(&env.me, req).unwrap().key_metadata;
    assert_eq!(m.key_spec, KeySpec::Aes128);
    assert_eq!(
        env.tags(&m.key_id),
        [
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "core".to_string())
        ]
    );
    expect_param_err(
        decode_request::<CreateKeyRequest>(serde_json::json!({"Tags": "[{\"TagKey\":"})),
        "InvalidParameter",
        "Tags",
    );
    expect_param_err(
        env.kms.create_key(
            &env.me,
            CreateKeyRequest {
                tags: tag_list(&[("acs:no", "x")]),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "Tags",
    );
    let many: Vec<(String, String)> = (0..21).map(|i| (format!("t{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expect_err(
        env.kms.create_key(
            &env.me,
            CreateKeyRequest {
                tags: tag_list(&refs),
                ..Default::default()
            },
        ),
        "Rejected.LimitExceeded",
    );
    assert_eq!(env.all_keys(), vec![m.key_id]);
}

#[test]
fn tags_on_secrets_or_several_resources_are_refused() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let e = env.kms.tag_resource(
        &env.me,
        TagResourceRequest {
            key_id: key.clone(),
            secret_name: "s".into(),
            tags: tag_list(&[("a", "b")]),
            ..Default::default()
        },
    );
    expect_err(e, "InvalidParameter");
    expect_param_err(
        env.kms.tag_resource(
            &env.me,
            TagResourceRequest {
                tags: tag_list(&[("a", "b")]),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "KeyId",
    );
    assert!(env.tags(&key).is_empty());
}

// ---- ListKeys -----------------------------------------------------------------------------

fn list(env: &Env, filters: Vec<Filter>) -> Result<BTreeSet<String>, kms_core::KmsError> {
    env.kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                page_size: Some(100),
                filters,
                ..Default::default()
            },
        )
        .map(|r| r.keys.key.into_iter().map(|k| k.key_id).collect())
}

fn filter(key: &str, values: &[&str]) -> Filter {
    Filter {
        key: key.into(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

#[test]
fn list_keys_filters_and_across_filters_or_within_values() {
    let env = Env::new();
    let e1 = env.create_key().key_id;
    let e2 = env.create_key_spec(KeySpec::Aes128).key_id;
    let d = env.create_key_spec(KeySpec::Aes128).key_id;
    env.disable(&d).unwrap();
    let p = env.create_key_spec(KeySpec::Aes192).key_id;
    env.schedule_deletion(&p, 7).unwrap();
    let set = |ids: &[&String]| ids.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();
    let all = set(&[&e1, &e2, &d, &p]);

    assert_eq!(list(&env, vec![]).unwrap(), all);
    assert_eq!(
        list(&env, vec![filter("KeyState", &["Enabled"])]).unwrap(),
        set(&[&e1, &e2])
    );
    assert_eq!(
        list(&env, vec![filter("KeyState", &["Enabled", "Disabled"])]).unwrap(),
        set(&[&e1, &e2, &d])
    );
    assert_eq!(
        list(&env, vec![filter("KeyState", &["PendingDeletion"])]).unwrap(),
        set(&[&p])
    );
    assert_eq!(
        list(&env, vec![filter("KeySpec", &["Aliyun_AES_128"])]).unwrap(),
        set(&[&e2, &d])
    );
    assert_eq!(
        list(
            &env,
            vec![
                filter("KeySpec", &["Aliyun_AES_128"]),
                filter("KeyState", &["Enabled"])
            ]
        )
        .unwrap(),
        set(&[&e2])
    );
    assert_eq!(
        list(
            &env,
            vec![
                filter("KeySpec", &["Aliyun_AES_256"]),
                filter("KeyState", &["Disabled"])
            ]
        )
        .unwrap(),
        set(&[])
    );
    assert_eq!(
        list(&env, vec![filter("KeyUsage", &["ENCRYPT/DECRYPT"])]).unwrap(),
        all
    );
    assert_eq!(
        list(&env, vec![filter("KeyUsage", &["SIGN/VERIFY"])]).unwrap(),
        set(&[])
    );
    assert_eq!(
        list(&env, vec![filter("CreatorType", &["User"])]).unwrap(),
        all
    );
    assert_eq!(
        list(&env, vec![filter("CreatorType", &["Service"])]).unwrap(),
        set(&[])
    );
    assert_eq!(
        list(&env, vec![filter("ProtectionLevel", &["SOFTWARE"])]).unwrap(),
        all
    );
    assert_eq!(
        list(&env, vec![filter("ProtectionLevel", &["HSM"])]).unwrap(),
        set(&[])
    );
    // TotalCount counts the matching keys, not all keys.
    let r = env
        .kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                filters: vec![filter("KeyState", &["Enabled"])],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.total_count, 2);
}

#[test]
fn list_keys_rejects_unknown_filters_and_values_naming_filters() {
    let env = Env::new();
    env.create_key();
    for bad in [
        vec![filter("Color", &["Blue"])],
        vec![filter("keystate", &["Enabled"])],
        vec![filter("KeyState", &["Gone"])],
        vec![filter("KeyState", &["Enabled", "enabled"])],
        vec![filter("KeySpec", &["AES_256"])],
        vec![filter("KeyUsage", &["ENCRYPT"])],
        vec![filter("CreatorType", &["Robot"])],
        vec![filter("ProtectionLevel", &["TPM"])],
        vec![filter("KeyState", &[])],
    ] {
        let e = expect_param_err(list(&env, bad.clone()), "InvalidParameter", "Filters");
        assert_eq!(e.http_status(), 400, "{bad:?}");
    }
}

#[test]
fn list_keys_filters_decode_from_json_text() {
    let env = Env::new();
    let enabled = env.create_key().key_id;
    let disabled = env.create_key().key_id;
    env.disable(&disabled).unwrap();
    let req: ListKeysRequest = decode_request(serde_json::json!({
        "PageNumber": "1",
        "PageSize": "5",
        "Filters": r#"[{"Key":"KeyState","Values":["Disabled"]}]"#,
    }))
    .unwrap();
    let r = env.kms.list_keys(&env.me, req).unwrap();
    assert_eq!(r.keys.key.len(), 1);
    assert_eq!(r.keys.key[0].key_id, disabled);
    assert_eq!(r.keys.key[0].key_arn, env.describe(&disabled).arn);
    assert_eq!(r.page_size, 5);
    assert_ne!(r.keys.key[0].key_id, enabled);
    for bad in [
        serde_json::json!("[{\"Key\":\"KeyState\","),
        serde_json::json!("{\"Key\":\"KeyState\"}"),
        serde_json::json!("[{\"Key\":\"KeyState\",\"Values\":\"Enabled\"}]"),
        serde_json::json!(7),
    ] {
        expect_param_err(
            decode_request::<ListKeysRequest>(serde_json::json!({ "Filters": bad })),
            "InvalidParameter",
            "Filters",
        );
    }
}

#[test]
fn list_keys_pages_with_total_count() {
    let env = Env::new();
    let mut ids = BTreeSet::new();
    for _ in 0..12 {
        ids.insert(env.create_key().key_id);
    }
    let page = |n: Option<i64>, size: Option<i64>| {
        env.kms.list_keys(
            &env.me,
            ListKeysRequest {
                page_number: n,
                page_size: size,
                ..Default::default()
            },
        )
    };
    let mut seen = Vec::new();
    for (n, want) in [(1, 5), (2, 5), (3, 2), (4, 0)] {
        let p = page(Some(n), Some(5)).unwrap();
        assert_eq!(p.total_count, 12);
        assert_eq!(p.page_number, n);
        assert_eq!(p.page_size, 5);
        assert_eq!(p.keys.key.len(), want, "page {n}");
        seen.extend(p.keys.key.into_iter().map(|k| k.key_id));
    }
    assert_eq!(seen.len(), 12, "no key on two pages");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), ids);
    let default = page(None, None).unwrap();
    assert_eq!((default.page_number, default.page_size), (1, 10));
    assert_eq!(default.keys.key.len(), 10);
    assert_eq!(page(Some(1), Some(1)).unwrap().keys.key.len(), 1);
    assert_eq!(page(Some(1), Some(100)).unwrap().keys.key.len(), 12);
    for size in [0, -1, 101] {
        expect_param_err(page(None, Some(size)), "InvalidParameter", "PageSize");
    }
    for n in [0, -3] {
        expect_param_err(page(Some(n), None), "InvalidParameter", "PageNumber");
    }
    let json = serde_json::to_value(&default).unwrap();
    assert_eq!(json["Keys"]["Key"].as_array().unwrap().len(), 10);
    assert!(json["Keys"]["Key"][0]["KeyArn"].is_string());
    assert_eq!(json["TotalCount"], 12);
    assert_eq!(json["PageNumber"], 1);
}

#[test]
fn an_alias_of_a_key_past_its_delete_date_is_gone_before_maintenance() {
    let env = Env::new();
    let doomed = env.create_key().key_id;
    let other = env.create_key().key_id;
    env.create_alias("alias/a", &doomed).unwrap();
    env.create_alias("alias/b", &doomed).unwrap();
    env.schedule_deletion(&doomed, 7).unwrap();
    env.clock.advance(7 * DAY);
    expect_err(
        env.update_alias("alias/a", &other),
        "Forbidden.AliasNotFound",
    );
    expect_err(env.delete_alias("alias/b"), "Forbidden.AliasNotFound");
    assert!(env.all_aliases().is_empty());
    // The names are free again.
    env.create_alias("alias/a", &other).unwrap();
    env.create_alias("alias/b", &other).unwrap();
    assert_eq!(env.aliases_of(&other), ["alias/a", "alias/b"]);
}
