//! PolicyAuthorizer on its own: the parsed-policy cache, failing closed, account-level requests,
//! and the validation it gives the engine.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use kms_core::{AccessRequest, Action, Authorizer, Caller, Decision};
use kms_policy::{PolicyAuthorizer, PolicyBuilder, PolicyDocument};
use serde_json::json;

const KEY_ARN: &str = "acs:kms:cn-hangzhou:1234:key/0b8d1f6e-3c2a-4f1e-9a7b-2c4d6e8f0a1b";

fn request<'a>(
    caller: &'a Caller,
    action: &'static str,
    policy: Option<&'a str>,
) -> AccessRequest<'a> {
    AccessRequest {
        caller,
        action: Action::from_policy_name(action).expect("a known action"),
        resource: KEY_ARN,
        resource_account: "1234",
        policy,
        creator: Some("1234"),
        instance_id: None,
    }
}

fn account_request<'a>(
    caller: &'a Caller,
    action: &'static str,
    instance_id: Option<&'a str>,
) -> AccessRequest<'a> {
    AccessRequest {
        caller,
        action: Action::from_policy_name(action).expect("a known action"),
        resource: "acs:kms:cn-hangzhou:1234:key",
        resource_account: "1234",
        policy: None,
        creator: None,
        instance_id,
    }
}

#[test]
fn the_same_document_text_is_parsed_once() {
    let a = PolicyAuthorizer::new();
    let text = PolicyBuilder::new("1234")
        .user("acs:ram::1234:user/alice")
        .build();
    let first = a.parsed(&text).unwrap();
    let second = a.parsed(&text).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(*first, PolicyDocument::parse(&text).unwrap());
}

#[test]
fn a_malformed_document_is_not_cached_and_stays_an_error() {
    let a = PolicyAuthorizer::new();
    for _ in 0..2 {
        let e = a.parsed("{\"Version\": \"2\"}").unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
    }
}

#[test]
fn a_stored_policy_that_does_not_parse_denies_everyone() {
    let a = PolicyAuthorizer::new();
    for caller in [
        Caller::account_root("1234"),
        Caller::ram_user("1234", "alice"),
    ] {
        for policy in ["not json", "{}", "{\"Version\":\"1\",\"Statement\":[]}"] {
            assert_eq!(
                a.authorize(&request(&caller, "kms:DescribeKey", Some(policy))),
                Decision::Deny,
                "{caller} under {policy:?}"
            );
        }
    }
}

#[test]
fn decisions_stay_right_past_the_cache_limit() {
    let a = PolicyAuthorizer::new();
    let alice = Caller::ram_user("1234", "alice");
    let bob = Caller::ram_user("1234", "bob");
    // More distinct documents than the cache holds; each allows one numbered user.
    for i in 0..4200 {
        let text = json!({"Version": "1", "Statement": [{"Sid": format!("{i}"),
            "Effect": "Allow", "Principal": {"RAM": ["acs:ram::1234:user/alice"]},
            "Action": ["kms:Encrypt"], "Resource": ["*"]}]})
        .to_string();
        assert_eq!(
            a.authorize(&request(&alice, "kms:Encrypt", Some(&text))),
            Decision::Allow
        );
        assert_eq!(
            a.authorize(&request(&bob, "kms:Encrypt", Some(&text))),
            Decision::Deny
        );
    }
}

#[test]
fn account_level_requests_belong_to_the_owning_account() {
    let a = PolicyAuthorizer::new();
    let all =
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:*"],"Resource":["*"]}]}"#;
    a.attach_identity_policy("acs:ram::1234:user/alice", all)
        .unwrap();
    a.attach_identity_policy("acs:ram::5678:user/partner", all)
        .unwrap();
    // The root, and RAM identities whose identity policy allows it.
    for caller in [
        Caller::account_root("1234"),
        Caller::ram_user("1234", "alice"),
    ] {
        for action in ["kms:CreateKey", "kms:ListKeys", "kms:ListAliases"] {
            assert_eq!(
                a.authorize(&account_request(&caller, action, None)),
                Decision::Allow
            );
        }
    }
    // A RAM role without an identity policy, and any other account, even with one.
    for caller in [
        Caller::ram_role("1234", "app"),
        Caller::account_root("5678"),
        Caller::ram_user("5678", "partner"),
    ] {
        for action in ["kms:CreateKey", "kms:ListKeys", "kms:ListAliases"] {
            assert_eq!(
                a.authorize(&account_request(&caller, action, None)),
                Decision::Deny
            );
        }
    }
}

#[test]
fn create_key_in_a_shared_instance_is_open_to_owner_and_sharing_accounts_only() {
    let a = PolicyAuthorizer::new();
    a.add_instance("kst-1", "1234");
    a.share_instance("kst-1", "5678").unwrap();
    a.share_instance("kst-1", "4321").unwrap();
    for (account, expected) in [
        ("1234", Decision::Allow),
        ("5678", Decision::Allow),
        ("4321", Decision::Allow),
        ("9999", Decision::Deny),
    ] {
        let caller = Caller::account_root(account);
        assert_eq!(
            a.authorize(&account_request(&caller, "kms:CreateKey", Some("kst-1"))),
            expected,
            "{account}"
        );
    }
}

#[test]
fn a_key_of_one_sharing_account_is_not_shared_with_the_others() {
    // Alibaba's key management guide: keys created by the sharing account are usable by it and
    // the owner, not by every account the instance is shared with.
    let a = PolicyAuthorizer::new();
    a.add_instance("kst-1", "1234");
    a.share_instance("kst-1", "5678").unwrap();
    a.share_instance("kst-1", "4321").unwrap();
    let key = |caller: &Caller| {
        a.authorize(&AccessRequest {
            creator: Some("5678"),
            instance_id: Some("kst-1"),
            ..request(caller, "kms:Encrypt", None)
        })
    };
    assert_eq!(key(&Caller::account_root("5678")), Decision::Allow);
    assert_eq!(key(&Caller::account_root("1234")), Decision::Allow);
    assert_eq!(key(&Caller::account_root("4321")), Decision::Deny);
    assert_eq!(key(&Caller::account_root("9999")), Decision::Deny);
    // The accounts' RAM users need an identity policy on top.
    assert_eq!(key(&Caller::ram_user("5678", "u")), Decision::Deny);
}

#[test]
fn validate_policy_is_the_documents_parse() {
    let a = PolicyAuthorizer::new();
    let good = PolicyBuilder::new("1234").build();
    a.validate_policy(&good).unwrap();
    let bad = json!({"Version": "1", "Statement": [{"Effect": "Allow",
        "Principal": {"RAM": ["acs:ram::1234:*"]}, "Action": ["kms:Fly"], "Resource": ["*"]}]})
    .to_string();
    let e = a.validate_policy(&bad).unwrap_err();
    assert_eq!(e, PolicyDocument::parse(&bad).unwrap_err());
    assert!(e.to_string().contains("Statement[0].Action[0]"), "{e}");
    // Through an Arc too, as an engine holds it.
    let shared: Arc<PolicyAuthorizer> = Arc::new(a);
    assert_eq!(shared.validate_policy(&bad).unwrap_err(), e);
}

#[test]
fn the_authorizer_is_safe_to_share_across_threads() {
    let a = Arc::new(PolicyAuthorizer::new());
    a.add_instance("kst-1", "1234");
    let text = PolicyBuilder::new("1234")
        .user("acs:ram::1234:user/alice")
        .build();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let a = a.clone();
            let text = text.clone();
            std::thread::spawn(move || {
                let alice = Caller::ram_user("1234", "alice");
                let other = Caller::account_root(format!("{}", 6000 + i));
                for _ in 0..200 {
                    assert_eq!(
                        a.authorize(&request(&alice, "kms:Encrypt", Some(&text))),
                        Decision::Allow
                    );
                    assert_eq!(
                        a.authorize(&request(&alice, "kms:DisableKey", Some(&text))),
                        Decision::Deny
                    );
                }
                a.share_instance("kst-1", &other.account_id).unwrap();
                assert_eq!(
                    a.authorize(&account_request(&other, "kms:CreateKey", Some("kst-1"))),
                    Decision::Allow
                );
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
