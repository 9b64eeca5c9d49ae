#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Batch tagging: TagResources, UntagResources and ListTagResources over keys (by id, alias
//! and ARN) and secrets; the limits (50 resources, 20 tags per call and per resource), the tag
//! rules and their error codes, all-or-nothing on every error, NextToken paging, and the wire
//! form the server decodes.

mod common;

use std::collections::BTreeMap;

use common::*;
use kms_core::api::*;
use kms_core::KmsError;
use serde_json::json;

// ---- helpers ------------------------------------------------------------------------------

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<TagKeyValue> {
    pairs
        .iter()
        .map(|(k, v)| TagKeyValue {
            key: (*k).to_owned(),
            value: (*v).to_owned(),
        })
        .collect()
}

fn tag(env: &Env, kind: &str, resources: &[&str], tags: &[(&str, &str)]) -> Result<(), KmsError> {
    tag_owned(env, kind, ids(resources), kv(tags))
}

fn tag_owned(
    env: &Env,
    kind: &str,
    resources: Vec<String>,
    tags: Vec<TagKeyValue>,
) -> Result<(), KmsError> {
    env.kms
        .tag_resources(
            &env.me,
            TagResourcesRequest {
                resource_type: kind.into(),
                resource_id: resources,
                tag: tags,
            },
        )
        .map(|r| assert!(!r.request_id.is_empty()))
}

fn untag(env: &Env, kind: &str, resources: &[&str], keys: &[&str]) -> Result<(), KmsError> {
    env.kms
        .untag_resources(
            &env.me,
            UntagResourcesRequest {
                resource_type: kind.into(),
                resource_id: ids(resources),
                tag_key: ids(keys),
                all: None,
            },
        )
        .map(|_| ())
}

fn untag_all(env: &Env, kind: &str, resources: &[&str]) -> Result<(), KmsError> {
    env.kms
        .untag_resources(
            &env.me,
            UntagResourcesRequest {
                resource_type: kind.into(),
                resource_id: ids(resources),
                all: Some(true),
                ..Default::default()
            },
        )
        .map(|_| ())
}

type Pair = (String, String, String);

fn list(
    env: &Env,
    kind: &str,
    resources: &[&str],
    filter: &[(&str, &str)],
) -> Result<Vec<Pair>, KmsError> {
    let r = env.kms.list_tag_resources(
        &env.me,
        ListTagResourcesRequest {
            resource_type: kind.into(),
            resource_id: ids(resources),
            tag: kv(filter),
            max_results: Some(100),
            ..Default::default()
        },
    )?;
    assert_eq!(r.next_token, None);
    Ok(r.tag_resources
        .tag_resource
        .into_iter()
        .map(|t| {
            assert_eq!(t.resource_type, kind);
            (t.resource_id, t.tag_key, t.tag_value)
        })
        .collect())
}

fn pairs(v: &[(&str, &str, &str)]) -> Vec<Pair> {
    let mut out: Vec<Pair> = v
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    out.sort();
    out
}

fn new_secret(env: &Env, name: &str) {
    env.kms
        .create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: name.into(),
                secret_data: "value".into(),
                version_id: "v1".into(),
                ..Default::default()
            },
        )
        .unwrap();
}

fn secret_tags(env: &Env, name: &str) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = env
        .kms
        .describe_secret(
            &env.me,
            DescribeSecretRequest {
                secret_name: name.into(),
                fetch_tags: Some(true),
            },
        )
        .unwrap()
        .tags
        .map(|t| t.tag)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.tag_key, t.tag_value))
        .collect();
    tags.sort();
    tags
}

/// Keys `k0..kn` and secrets `s0..sm`, untagged.
struct World {
    keys: Vec<String>,
    secrets: Vec<String>,
}

fn world(env: &Env, keys: usize, secrets: usize) -> World {
    let keys = (0..keys).map(|_| env.create_key().key_id).collect();
    let secrets = (0..secrets)
        .map(|i| {
            let name = format!("app/secret-{i}");
            new_secret(env, &name);
            name
        })
        .collect();
    World { keys, secrets }
}

type Snapshot = BTreeMap<String, Vec<(String, String)>>;

/// The tags of every key (ListResourceTags) and secret (DescribeSecret) of the world.
fn snapshot(env: &Env, w: &World) -> Snapshot {
    let mut out = BTreeMap::new();
    for k in &w.keys {
        out.insert(format!("key:{k}"), env.tags(k));
    }
    for s in &w.secrets {
        out.insert(format!("secret:{s}"), secret_tags(env, s));
    }
    out
}

/// Asserts that `r` fails with `code` and leaves every resource of `w` as it was.
#[track_caller]
fn refused_and_unchanged(
    env: &Env,
    w: &World,
    r: impl FnOnce() -> Result<(), KmsError>,
    code: &str,
) -> KmsError {
    let before = snapshot(env, w);
    let e = expect_err(r(), code);
    assert_eq!(snapshot(env, w), before, "{code} changed something");
    e
}

fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

// ---- TagResources -------------------------------------------------------------------------

#[test]
fn tags_keys_named_by_id_alias_and_arn() {
    let env = Env::new();
    let w = world(&env, 3, 0);
    env.create_alias("alias/second", &w.keys[1]).unwrap();
    let arn = format!("acs:kms:{REGION}:{ACCOUNT}:key/{}", w.keys[2]);
    let alias_arn = format!("acs:kms:{REGION}:{ACCOUNT}:alias/second");
    tag(
        &env,
        "key",
        &[&w.keys[0], "alias/second", &arn],
        &[("team", "core"), ("env", "prod")],
    )
    .unwrap();
    for k in &w.keys {
        assert_eq!(env.tags(k), owned(&[("env", "prod"), ("team", "core")]));
    }
    // Setting an existing tag key replaces its value; others stay.
    tag(&env, "key", &[&alias_arn], &[("env", "staging")]).unwrap();
    assert_eq!(
        env.tags(&w.keys[1]),
        owned(&[("env", "staging"), ("team", "core")])
    );
    assert_eq!(
        env.tags(&w.keys[0]),
        owned(&[("env", "prod"), ("team", "core")])
    );
    // The same key named twice (by id and by alias) is tagged once, without error.
    tag(&env, "key", &[&w.keys[1], "alias/second"], &[("x", "1")]).unwrap();
    assert_eq!(env.tags(&w.keys[1]).len(), 3);
    // Every allowed character, and the longest key and value.
    let long_key = "k".repeat(128);
    let long_value = "v".repeat(128);
    tag(
        &env,
        "key",
        &[&w.keys[0]],
        &[
            ("a/b\\c_d-e.f+g=h:i@j", "Z9/\\_-.+=:@"),
            (&long_key, &long_value),
            ("数据", "值"),
        ],
    )
    .unwrap();
    assert_eq!(env.tags(&w.keys[0]).len(), 5);
}

#[test]
fn tags_secrets_and_keeps_key_and_secret_ids_apart() {
    let env = Env::new();
    let w = world(&env, 1, 2);
    tag(
        &env,
        "secret",
        &[&w.secrets[0], &w.secrets[1]],
        &[("owner", "db-team")],
    )
    .unwrap();
    for s in &w.secrets {
        assert_eq!(secret_tags(&env, s), owned(&[("owner", "db-team")]));
    }
    assert!(env.tags(&w.keys[0]).is_empty());
    // A secret by its ARN is not a secret name; a key id is not a secret, nor the reverse.
    let e = refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "secret", &[&w.keys[0]], &[("a", "b")]),
        "InvalidResourceId.NotFound",
    );
    assert!(e.to_string().contains(&w.keys[0]), "{e}");
    refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &[&w.secrets[0]], &[("a", "b")]),
        "InvalidResourceId.NotFound",
    );
    assert_eq!(
        list(&env, "secret", &[&w.secrets[0]], &[]).unwrap(),
        pairs(&[(&w.secrets[0], "owner", "db-team")])
    );
}

#[test]
fn resource_type_is_required_and_closed() {
    let env = Env::new();
    let w = world(&env, 1, 0);
    let e = refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "", &[&w.keys[0]], &[("a", "b")]),
        "MissingParameter",
    );
    assert!(e.to_string().contains("ResourceType"), "{e}");
    for bad in ["certificate", "Key", "KEY", "keys", "alias"] {
        let e = refused_and_unchanged(
            &env,
            &w,
            || tag(&env, bad, &[&w.keys[0]], &[("a", "b")]),
            "InvalidParameter",
        );
        assert!(e.to_string().contains("ResourceType"), "{e}");
    }
    expect_param_err(
        untag(&env, "certificate", &[&w.keys[0]], &["a"]),
        "InvalidParameter",
        "ResourceType",
    );
    expect_param_err(
        list(&env, "", &[&w.keys[0]], &[]),
        "MissingParameter",
        "ResourceType",
    );
}

#[test]
fn at_most_50_resources_and_20_tags_per_call() {
    let env = Env::new();
    let w = world(&env, 51, 0);
    let fifty: Vec<&str> = w.keys[..50].iter().map(String::as_str).collect();
    let all: Vec<&str> = w.keys.iter().map(String::as_str).collect();

    let e = refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &all, &[("a", "b")]),
        "InvalidParameter",
    );
    assert!(e.to_string().contains("ResourceId"), "{e}");
    expect_param_err(
        untag(&env, "key", &all, &["a"]),
        "InvalidParameter",
        "ResourceId",
    );
    expect_param_err(
        list(&env, "key", &all, &[]),
        "InvalidParameter",
        "ResourceId",
    );
    tag(&env, "key", &fifty, &[("a", "b")]).unwrap();
    assert!(env.tags(&w.keys[50]).is_empty());
    assert_eq!(env.tags(&w.keys[49]), owned(&[("a", "b")]));
    assert_eq!(list(&env, "key", &fifty, &[]).unwrap().len(), 50);

    let names: Vec<String> = (0..21).map(|i| format!("t{i:02}")).collect();
    let tags21: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let e = refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &[&w.keys[50]], &tags21),
        "InvalidParameter",
    );
    assert!(e.to_string().contains("Tag"), "{e}");
    tag(&env, "key", &[&w.keys[50]], &tags21[..20]).unwrap();
    assert_eq!(env.tags(&w.keys[50]).len(), 20);
    // Untag takes at most 20 tag keys too.
    let keys21: Vec<&str> = names.iter().map(String::as_str).collect();
    refused_and_unchanged(
        &env,
        &w,
        || untag(&env, "key", &[&w.keys[50]], &keys21),
        "InvalidParameter",
    );

    // Nothing to do is a missing parameter.
    expect_param_err(
        tag(&env, "key", &[], &[("a", "b")]),
        "MissingParameter",
        "ResourceId",
    );
    expect_param_err(
        tag(&env, "key", &[&w.keys[0]], &[]),
        "MissingParameter",
        "Tag",
    );
    expect_param_err(
        untag(&env, "key", &[], &["a"]),
        "MissingParameter",
        "ResourceId",
    );
    expect_param_err(
        untag(&env, "key", &[&w.keys[0]], &[]),
        "MissingParameter",
        "TagKey",
    );
    expect_param_err(
        list(&env, "key", &[], &[]),
        "MissingParameter",
        "ResourceId",
    );
}

#[test]
fn the_20_tags_per_resource_limit_failing_on_the_third_of_five_keys_changes_nothing() {
    let env = Env::new();
    let w = world(&env, 5, 0);
    let nineteen: Vec<(String, String)> = (0..19)
        .map(|i| (format!("old{i:02}"), "v".to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = nineteen
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    tag(&env, "key", &[&w.keys[2]], &refs).unwrap();
    tag(&env, "key", &[&w.keys[0], &w.keys[4]], &[("keep", "me")]).unwrap();
    let five: Vec<&str> = w.keys.iter().map(String::as_str).collect();

    refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &five, &[("new1", "a"), ("new2", "b")]),
        "Rejected.LimitExceeded",
    );
    // One more fits exactly; replacing existing keys never counts against the limit.
    tag(&env, "key", &five, &[("new1", "a")]).unwrap();
    assert_eq!(env.tags(&w.keys[2]).len(), 20);
    tag(&env, "key", &five, &[("new1", "changed"), ("old00", "x")]).unwrap();
    assert_eq!(env.tags(&w.keys[2]).len(), 20);
    assert_eq!(
        env.tags(&w.keys[0]),
        owned(&[("keep", "me"), ("new1", "changed"), ("old00", "x")])
    );
    refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &five, &[("one-too-many", "a")]),
        "Rejected.LimitExceeded",
    );
}

#[test]
fn tag_rule_errors_have_their_codes_and_change_nothing() {
    let env = Env::new();
    let w = world(&env, 3, 1);
    tag(&env, "key", &[&w.keys[0]], &[("existing", "tag")]).unwrap();
    let targets = [w.keys[0].as_str(), w.keys[1].as_str(), w.keys[2].as_str()];
    let too_long = "k".repeat(129);

    let e = refused_and_unchanged(
        &env,
        &w,
        || {
            tag(
                &env,
                "key",
                &targets,
                &[("dup", "a"), ("other", "b"), ("dup", "c")],
            )
        },
        "Duplicate.TagKey",
    );
    assert!(e.to_string().contains("dup"), "{e}");
    assert_eq!(e.http_status(), 400);
    // Even with the same value twice.
    refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &targets, &[("dup", "a"), ("dup", "a")]),
        "Duplicate.TagKey",
    );

    for bad_key in [
        "aliyun",
        "aliyun-owner",
        "Aliyun.x",
        "ALIYUNx",
        "acs:project",
        "ACS:x",
        "has space",
        "semi;colon",
        "hash#",
        "quote\"",
        "",
        too_long.as_str(),
    ] {
        let e = refused_and_unchanged(
            &env,
            &w,
            || tag(&env, "key", &targets, &[("fine", "v"), (bad_key, "v")]),
            "InvalidParameter.TagKey",
        );
        assert_eq!(e.http_status(), 400);
        refused_and_unchanged(
            &env,
            &w,
            || tag(&env, "secret", &[&w.secrets[0]], &[(bad_key, "v")]),
            "InvalidParameter.TagKey",
        );
        // UntagResources checks its tag keys by the same rules.
        refused_and_unchanged(
            &env,
            &w,
            || untag(&env, "key", &targets, &["existing", bad_key]),
            "InvalidParameter.TagKey",
        );
    }
    // "acs" alone and "aliyu" are not the reserved prefixes.
    tag(
        &env,
        "key",
        &[&w.keys[2]],
        &[("acs", "1"), ("aliyu", "2"), ("my-aliyun", "3")],
    )
    .unwrap();

    for bad_value in ["", "has space", "semi;colon", too_long.as_str(), "<x>"] {
        let e = refused_and_unchanged(
            &env,
            &w,
            || tag(&env, "key", &targets, &[("fine", "v"), ("k", bad_value)]),
            "InvalidParameter.TagValue",
        );
        assert_eq!(e.http_status(), 400);
    }
}

#[test]
fn an_unknown_resource_among_known_ones_changes_nothing() {
    let env = Env::new();
    let w = world(&env, 3, 2);
    tag(&env, "key", &[&w.keys[1]], &[("keep", "1")]).unwrap();
    let unknown_key = "00000000-0000-4000-8000-000000000000";
    let unknown_arn = format!("acs:kms:{REGION}:{ACCOUNT}:key/{unknown_key}");
    for unknown in [unknown_key, "alias/none", unknown_arn.as_str()] {
        // Unknown first, in the middle, or last.
        for list_of in [
            vec![unknown, &w.keys[0], &w.keys[1]],
            vec![&w.keys[0], unknown, &w.keys[1]],
            vec![&w.keys[0], &w.keys[1], unknown],
        ] {
            let e = refused_and_unchanged(
                &env,
                &w,
                || tag(&env, "key", &list_of, &[("new", "x")]),
                "InvalidResourceId.NotFound",
            );
            assert!(e.to_string().contains(unknown), "{e}");
            assert_eq!(e.http_status(), 404);
            refused_and_unchanged(
                &env,
                &w,
                || untag(&env, "key", &list_of, &["keep"]),
                "InvalidResourceId.NotFound",
            );
            refused_and_unchanged(
                &env,
                &w,
                || untag_all(&env, "key", &list_of),
                "InvalidResourceId.NotFound",
            );
        }
        expect_err(
            list(&env, "key", &[&w.keys[0], unknown], &[]),
            "InvalidResourceId.NotFound",
        );
    }
    let e = refused_and_unchanged(
        &env,
        &w,
        || {
            tag(
                &env,
                "secret",
                &[&w.secrets[0], "app/none", &w.secrets[1]],
                &[("n", "x")],
            )
        },
        "InvalidResourceId.NotFound",
    );
    assert!(e.to_string().contains("app/none"), "{e}");
    expect_err(
        list(&env, "secret", &["app/none"], &[]),
        "InvalidResourceId.NotFound",
    );
}

#[test]
fn a_key_pending_deletion_refuses_and_nothing_changes() {
    let env = Env::new();
    let w = world(&env, 3, 0);
    tag(&env, "key", &[&w.keys[1]], &[("keep", "1")]).unwrap();
    env.schedule_deletion(&w.keys[1], 7).unwrap();
    let three: Vec<&str> = w.keys.iter().map(String::as_str).collect();
    refused_and_unchanged(
        &env,
        &w,
        || tag(&env, "key", &three, &[("new", "x")]),
        "Rejected.PendingDeletion",
    );
    refused_and_unchanged(
        &env,
        &w,
        || untag(&env, "key", &three, &["keep"]),
        "Rejected.PendingDeletion",
    );
    refused_and_unchanged(
        &env,
        &w,
        || untag_all(&env, "key", &three),
        "Rejected.PendingDeletion",
    );
    // Listing works in every state.
    assert_eq!(
        list(&env, "key", &[&w.keys[1]], &[]).unwrap(),
        pairs(&[(&w.keys[1], "keep", "1")])
    );
    // Disabled keys and keys pending import may be tagged (the state table).
    env.disable(&w.keys[0]).unwrap();
    let pending_import = env
        .create_key_with(CreateKeyRequest {
            origin: Some(kms_core::api::Origin::External),
            ..Default::default()
        })
        .key_id;
    tag(&env, "key", &[&w.keys[0], &pending_import], &[("ok", "y")]).unwrap();
    assert_eq!(env.tags(&pending_import), owned(&[("ok", "y")]));
    // Once the deletion is cancelled, the key takes tags again.
    env.cancel_deletion(&w.keys[1]).unwrap();
    tag(&env, "key", &three, &[("new", "x")]).unwrap();
    // Past its DeleteDate the key is gone: not found.
    env.schedule_deletion(&w.keys[2], 7).unwrap();
    env.clock.advance(8 * DAY);
    expect_err(
        tag(&env, "key", &[&w.keys[2]], &[("a", "b")]),
        "InvalidResourceId.NotFound",
    );
}

#[test]
fn a_secret_pending_deletion_refuses_and_nothing_changes() {
    let env = Env::new();
    let w = world(&env, 0, 3);
    tag(&env, "secret", &[&w.secrets[0]], &[("keep", "1")]).unwrap();
    env.kms
        .delete_secret(
            &env.me,
            DeleteSecretRequest {
                secret_name: w.secrets[2].clone(),
                recovery_window_in_days: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
    let all: Vec<&str> = w.secrets.iter().map(String::as_str).collect();
    let before: Snapshot = w.secrets[..2]
        .iter()
        .map(|s| (s.clone(), secret_tags(&env, s)))
        .collect();
    expect_err(
        tag(&env, "secret", &all, &[("new", "x")]),
        "Rejected.ResourceInDeleteWindow",
    );
    expect_err(
        untag(&env, "secret", &all, &["keep"]),
        "Rejected.ResourceInDeleteWindow",
    );
    let after: Snapshot = w.secrets[..2]
        .iter()
        .map(|s| (s.clone(), secret_tags(&env, s)))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn service_keys_cannot_be_tagged_by_users() {
    let env = Env::new();
    let w = world(&env, 1, 1); // the secret made the Secrets Manager's service key
    let service = env
        .all_aliases()
        .into_iter()
        .find(|a| a.alias_name == "alias/acs/secretsmanager")
        .unwrap()
        .key_id;
    let before = snapshot(&env, &w);
    expect_err(
        tag(&env, "key", &[&w.keys[0], &service], &[("a", "b")]),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        untag_all(&env, "key", &[&service]),
        "Rejected.UnsupportedOperation",
    );
    assert_eq!(snapshot(&env, &w), before);
    assert!(env.tags(&service).is_empty());
}

// ---- UntagResources -----------------------------------------------------------------------

#[test]
fn untag_by_tag_key_and_all() {
    let env = Env::new();
    let w = world(&env, 3, 2);
    let keys: Vec<&str> = w.keys.iter().map(String::as_str).collect();
    let secrets: Vec<&str> = w.secrets.iter().map(String::as_str).collect();
    let tags = [("a", "1"), ("b", "2"), ("c", "3")];
    tag(&env, "key", &keys, &tags).unwrap();
    tag(&env, "secret", &secrets, &tags).unwrap();

    // TagKey.N: those keys go from every named resource; absent keys are ignored.
    untag(&env, "key", &keys[..2], &["a", "absent"]).unwrap();
    assert_eq!(env.tags(keys[0]), owned(&[("b", "2"), ("c", "3")]));
    assert_eq!(env.tags(keys[1]), owned(&[("b", "2"), ("c", "3")]));
    assert_eq!(env.tags(keys[2]), owned(&tags));
    untag(&env, "secret", &secrets[..1], &["b", "c"]).unwrap();
    assert_eq!(secret_tags(&env, secrets[0]), owned(&[("a", "1")]));
    assert_eq!(secret_tags(&env, secrets[1]), owned(&tags));

    // All: every tag, on every named resource.
    untag_all(&env, "key", &[keys[0], keys[2]]).unwrap();
    assert!(env.tags(keys[0]).is_empty());
    assert!(env.tags(keys[2]).is_empty());
    assert_eq!(env.tags(keys[1]), owned(&[("b", "2"), ("c", "3")]));
    untag_all(&env, "secret", &secrets).unwrap();
    assert!(secret_tags(&env, secrets[0]).is_empty());
    assert!(secret_tags(&env, secrets[1]).is_empty());
    // All on untagged resources is a no-op, not an error.
    untag_all(&env, "key", &[keys[0]]).unwrap();
    // All=false needs TagKey.
    expect_param_err(
        env.kms.untag_resources(
            &env.me,
            UntagResourcesRequest {
                resource_type: "key".into(),
                resource_id: ids(&[keys[1]]),
                all: Some(false),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "TagKey",
    );
}

// ---- ListTagResources ---------------------------------------------------------------------

#[test]
fn list_by_resource_and_by_tag_filter() {
    let env = Env::new();
    let w = world(&env, 3, 1);
    let (k0, k1, k2) = (&w.keys[0], &w.keys[1], &w.keys[2]);
    env.create_alias("alias/one", k1).unwrap();
    tag(&env, "key", &[k0], &[("env", "prod"), ("team", "a")]).unwrap();
    tag(&env, "key", &[k1], &[("env", "dev"), ("team", "b")]).unwrap();
    tag(&env, "key", &[k2], &[("owner", "c")]).unwrap();
    tag(&env, "secret", &[&w.secrets[0]], &[("env", "prod")]).unwrap();

    // By resource, in id order whatever the order asked; an alias lists as its key id.
    assert_eq!(
        list(&env, "key", &["alias/one", k0], &[]).unwrap(),
        pairs(&[
            (k0, "env", "prod"),
            (k0, "team", "a"),
            (k1, "env", "dev"),
            (k1, "team", "b"),
        ])
    );
    // A resource without tags lists nothing.
    let untagged = env.create_key().key_id;
    assert!(list(&env, "key", &[&untagged], &[]).unwrap().is_empty());

    // By tag key only: every key carrying it, only the matching pairs; secrets apart.
    assert_eq!(
        list(&env, "key", &[], &[("env", "")]).unwrap(),
        pairs(&[(k0, "env", "prod"), (k1, "env", "dev")])
    );
    // By key and value.
    assert_eq!(
        list(&env, "key", &[], &[("env", "prod")]).unwrap(),
        pairs(&[(k0, "env", "prod")])
    );
    // Several filters: any of them.
    assert_eq!(
        list(&env, "key", &[], &[("env", "dev"), ("owner", "")]).unwrap(),
        pairs(&[(k1, "env", "dev"), (k2, "owner", "c")])
    );
    assert!(list(&env, "key", &[], &[("nobody", "")])
        .unwrap()
        .is_empty());
    assert_eq!(
        list(&env, "secret", &[], &[("env", "prod")]).unwrap(),
        pairs(&[(&w.secrets[0], "env", "prod")])
    );
    // Resources and a filter together: the filter within those resources.
    assert_eq!(
        list(&env, "key", &[k0, k2], &[("env", "")]).unwrap(),
        pairs(&[(k0, "env", "prod")])
    );
}

#[test]
fn next_token_pages_through_every_pair_exactly_once_in_order() {
    let env = Env::new();
    let w = world(&env, 9, 0);
    let mut expected = Vec::new();
    for (i, k) in w.keys.iter().enumerate() {
        let tags: Vec<(String, String)> = (0..=i % 5)
            .map(|j| (format!("tag{j}"), format!("value-{i}-{j}")))
            .collect();
        let refs: Vec<(&str, &str)> = tags.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        tag(&env, "key", &[k], &refs).unwrap();
        for (a, b) in tags {
            expected.push((k.clone(), a, b));
        }
    }
    expected.sort();
    let all: Vec<&str> = w.keys.iter().map(String::as_str).collect();
    assert!(expected.len() > 20);

    for (by_filter, max) in [(false, 1), (false, 4), (true, 7), (false, 100)] {
        let mut got = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let r = env
                .kms
                .list_tag_resources(
                    &env.me,
                    ListTagResourcesRequest {
                        resource_type: "key".into(),
                        resource_id: if by_filter { Vec::new() } else { ids(&all) },
                        tag: if by_filter {
                            kv(&[
                                ("tag0", ""),
                                ("tag1", ""),
                                ("tag2", ""),
                                ("tag3", ""),
                                ("tag4", ""),
                            ])
                        } else {
                            Vec::new()
                        },
                        next_token: token.clone(),
                        max_results: Some(max),
                    },
                )
                .unwrap();
            pages += 1;
            let page = r.tag_resources.tag_resource;
            assert!(page.len() <= usize::try_from(max).unwrap());
            assert!(!page.is_empty(), "no empty pages");
            got.extend(
                page.into_iter()
                    .map(|t| (t.resource_id, t.tag_key, t.tag_value)),
            );
            match r.next_token {
                Some(t) => {
                    assert!(!t.is_empty());
                    token = Some(t);
                }
                None => break,
            }
        }
        assert_eq!(got, expected, "max {max}, filter {by_filter}");
        let max = usize::try_from(max).unwrap();
        assert_eq!(pages, expected.len().div_ceil(max));
    }

    // The default page is 20.
    let first = env
        .kms
        .list_tag_resources(
            &env.me,
            ListTagResourcesRequest {
                resource_type: "key".into(),
                resource_id: ids(&all),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(first.tag_resources.tag_resource.len(), 20);
    assert!(first.next_token.is_some());

    // A token that is not one of ours, and MaxResults out of range.
    for bad in ["garbage", "!!!", "b2Zmc2V0Oi0x", "offset:3"] {
        expect_param_err(
            env.kms.list_tag_resources(
                &env.me,
                ListTagResourcesRequest {
                    resource_type: "key".into(),
                    resource_id: ids(&all),
                    next_token: Some(bad.into()),
                    ..Default::default()
                },
            ),
            "InvalidParameter",
            "NextToken",
        );
    }
    for bad in [0, -1, 101] {
        expect_param_err(
            env.kms.list_tag_resources(
                &env.me,
                ListTagResourcesRequest {
                    resource_type: "key".into(),
                    resource_id: ids(&all),
                    max_results: Some(bad),
                    ..Default::default()
                },
            ),
            "InvalidParameter",
            "MaxResults",
        );
    }
}

// ---- the wire form ------------------------------------------------------------------------

#[test]
fn flattened_wire_parameters_decode() {
    // What kms-server's Params::operation_json makes of
    // ResourceType=key&ResourceId.1=..&ResourceId.2=..&Tag.1.Key=..&Tag.1.Value=..&Tag.2.Key=..
    let req: TagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "key",
        "ResourceId": ["k-1", "alias/two"],
        "Tag": [{"Key": "team", "Value": "core"}, {"Key": "solo"}],
    }))
    .unwrap();
    assert_eq!(req.resource_type, "key");
    assert_eq!(req.resource_id, ids(&["k-1", "alias/two"]));
    assert_eq!(req.tag, kv(&[("team", "core"), ("solo", "")]));
    // The same lists as JSON text (as an SDK that serializes them sends).
    let text: TagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "key",
        "ResourceId": "[\"k-1\",\"alias/two\"]",
        "Tag": "[{\"Key\":\"team\",\"Value\":\"core\"},{\"Key\":\"solo\"}]",
    }))
    .unwrap();
    assert_eq!(text, req);

    let untag: UntagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "secret",
        "ResourceId": ["db"],
        "TagKey": ["a", "b"],
        "All": "false",
    }))
    .unwrap();
    assert_eq!(untag.tag_key, ids(&["a", "b"]));
    assert_eq!(untag.all, Some(false));
    let all: UntagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "secret", "ResourceId": ["db"], "All": "true",
    }))
    .unwrap();
    assert_eq!(all.all, Some(true));
    assert!(all.tag_key.is_empty());

    let listed: ListTagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "key",
        "Tag": [{"Key": "env"}],
        "MaxResults": "10",
        "NextToken": "abc",
    }))
    .unwrap();
    assert_eq!(listed.max_results, Some(10));
    assert_eq!(listed.next_token.as_deref(), Some("abc"));
    assert_eq!(listed.tag, kv(&[("env", "")]));
    assert!(listed.resource_id.is_empty());

    // Malformed shapes name the parameter.
    expect_param_err(
        kms_core::api::decode_request::<TagResourcesRequest>(json!({
            "ResourceType": "key", "ResourceId": "not json", "Tag": [],
        })),
        "InvalidParameter",
        "ResourceId",
    );
    expect_param_err(
        kms_core::api::decode_request::<TagResourcesRequest>(json!({
            "ResourceType": "key", "ResourceId": ["a"], "Tag": [{"Value": "no key"}],
        })),
        "MissingParameter",
        "Key",
    );
    expect_param_err(
        kms_core::api::decode_request::<ListTagResourcesRequest>(json!({
            "ResourceType": "key", "ResourceId": ["a"], "MaxResults": "ten",
        })),
        "InvalidParameter",
        "MaxResults",
    );
}

#[test]
fn decoded_wire_requests_drive_the_engine() {
    let env = Env::new();
    let w = world(&env, 2, 1);
    let req: TagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "key",
        "ResourceId": [w.keys[0], w.keys[1]],
        "Tag": [{"Key": "team", "Value": "core"}],
    }))
    .unwrap();
    env.kms.tag_resources(&env.me, req).unwrap();
    // A Tag.N.Key without its Value is an empty value, which the tag rules refuse.
    let req: TagResourcesRequest = kms_core::api::decode_request(json!({
        "ResourceType": "key", "ResourceId": [w.keys[0]], "Tag": [{"Key": "novalue"}],
    }))
    .unwrap();
    refused_and_unchanged(
        &env,
        &w,
        || env.kms.tag_resources(&env.me, req).map(|_| ()),
        "InvalidParameter.TagValue",
    );
    let listed = env
        .kms
        .list_tag_resources(
            &env.me,
            kms_core::api::decode_request(json!({
                "ResourceType": "key", "Tag": [{"Key": "team", "Value": "core"}],
            }))
            .unwrap(),
        )
        .unwrap();
    let wire = serde_json::to_value(&listed).unwrap();
    let entries = wire["TagResources"]["TagResource"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!(e["ResourceType"], "key");
        assert_eq!(e["TagKey"], "team");
        assert_eq!(e["TagValue"], "core");
        assert!(w
            .keys
            .contains(&e["ResourceId"].as_str().unwrap().to_owned()));
    }
    assert!(wire.get("NextToken").is_none());
    assert!(wire["RequestId"].is_string());
}
