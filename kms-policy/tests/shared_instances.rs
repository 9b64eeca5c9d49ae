//! Shared KMS instances, per Alibaba's key management guide: account 1 shares instance A with
//! account 2; keys account 1 creates in A are account 1's alone, keys account 2 creates in A are
//! usable by both. Here account 1234 owns "kst-1" and shares it with 5678.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use common::*;
use kms_core::api::*;
use kms_core::Caller;
use kms_policy::document::RequestContext;
use kms_policy::{PolicyBuilder, PolicyDocument, Verdict};
use serde_json::json;

const INSTANCE: &str = "kst-1";

fn shared_env() -> Env {
    let env = Env::new().with_full_identity_policies();
    env.authz.add_instance(INSTANCE, OWNER);
    env.authz.share_instance(INSTANCE, PARTNER).unwrap();
    // A second instance of the owner, shared with nobody.
    env.authz.add_instance("kst-2", OWNER);
    env
}

fn key_in(env: &Env, caller: &Caller, instance: &str) -> String {
    env.try_key(caller, None, Some(instance))
        .unwrap()
        .key_metadata
        .key_id
}

fn id(key: &str) -> KeyIdRequest {
    KeyIdRequest { key_id: key.into() }
}

/// Asserts `caller` can use and manage `key`.
fn assert_full_control(env: &Env, caller: &Caller, key: &str) {
    let blob = encrypt(&env.kms, caller, key).unwrap();
    assert_eq!(
        decrypt(&env.kms, caller, &blob).unwrap(),
        b"policy test plaintext"
    );
    generate_data_key(&env.kms, caller, key).unwrap();
    describe(&env.kms, caller, key).unwrap();
    env.kms.disable_key(caller, id(key)).unwrap();
    env.kms.enable_key(caller, id(key)).unwrap();
    tag(&env.kms, caller, key, "shared").unwrap();
    get_policy(&env.kms, caller, key).unwrap();
}

/// Asserts `caller` can neither use nor manage `key`.
fn assert_no_access(env: &Env, caller: &Caller, key: &str) {
    let blob = encrypt(&env.kms, &root(), key).unwrap();
    assert_denied(encrypt(&env.kms, caller, key), "kms:Encrypt", caller);
    assert_denied(decrypt(&env.kms, caller, &blob), "kms:Decrypt", caller);
    assert_denied(describe(&env.kms, caller, key), "kms:DescribeKey", caller);
    assert_denied(
        env.kms.disable_key(caller, id(key)),
        "kms:DisableKey",
        caller,
    );
    assert_denied(
        get_policy(&env.kms, caller, key),
        "kms:GetKeyPolicy",
        caller,
    );
}

fn default_principals(env: &Env, key: &str) -> serde_json::Value {
    let text = get_policy(&env.kms, &root(), key).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["Statement"][0]["Principal"]["RAM"].clone()
}

#[test]
fn a_key_the_owner_creates_in_its_shared_instance_is_the_owners_alone() {
    let env = shared_env();
    let key = key_in(&env, &root(), INSTANCE);
    let meta = describe(&env.kms, &root(), &key).unwrap();
    assert_eq!(meta.dkms_instance_id.as_deref(), Some(INSTANCE));
    assert_eq!(meta.creator, OWNER);
    assert_full_control(&env, &root(), &key);
    assert_full_control(&env, &alice(), &key);
    for c in [partner(), partner_root(), stranger()] {
        assert_no_access(&env, &c, &key);
    }
}

#[test]
fn the_sharing_account_may_create_keys_in_the_shared_instance() {
    let env = shared_env();
    let before = env.key_count();
    let created = env.try_key(&partner(), None, Some(INSTANCE)).unwrap();
    assert_eq!(created.key_metadata.creator, PARTNER);
    assert_eq!(
        created.key_metadata.dkms_instance_id.as_deref(),
        Some(INSTANCE)
    );
    assert_eq!(env.key_count(), before + 1);
}

#[test]
fn a_key_the_sharing_account_creates_is_usable_by_both_accounts() {
    let env = shared_env();
    let key = key_in(&env, &partner(), INSTANCE);
    for c in [partner(), partner_root(), root(), alice(), app()] {
        assert_full_control(&env, &c, &key);
    }
    // Ciphertexts cross between the two accounts.
    let from_partner = encrypt(&env.kms, &partner(), &key).unwrap();
    assert_eq!(
        decrypt(&env.kms, &bob(), &from_partner).unwrap(),
        b"policy test plaintext"
    );
    // A third account gets nothing.
    assert_no_access(&env, &stranger(), &key);
    // Both may schedule its deletion and cancel it.
    schedule_deletion(&env.kms, &root(), &key).unwrap();
    env.kms.cancel_key_deletion(&partner(), id(&key)).unwrap();
    schedule_deletion(&env.kms, &partner_root(), &key).unwrap();
    env.kms.cancel_key_deletion(&alice(), id(&key)).unwrap();
}

#[test]
fn get_key_policy_shows_the_shared_instance_default_policy() {
    let env = shared_env();
    let owners = key_in(&env, &root(), INSTANCE);
    let partners = key_in(&env, &partner(), INSTANCE);
    let plain = env.key(&root(), None);
    assert_eq!(
        default_principals(&env, &owners),
        json!(["acs:ram::1234:*"])
    );
    assert_eq!(default_principals(&env, &plain), json!(["acs:ram::1234:*"]));
    let both = default_principals(&env, &partners);
    let mut both: Vec<&str> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    both.sort_unstable();
    assert_eq!(both, ["acs:ram::1234:*", "acs:ram::5678:*"]);
    // The partner reads the same document.
    assert_eq!(
        get_policy(&env.kms, &partner(), &partners).unwrap(),
        get_policy(&env.kms, &root(), &partners).unwrap()
    );
}

#[test]
fn the_shown_default_policy_agrees_with_the_engine() {
    let env = shared_env();
    for (creator, key) in [
        (root(), key_in(&env, &root(), INSTANCE)),
        (partner(), key_in(&env, &partner(), INSTANCE)),
        (root(), env.key(&root(), None)),
    ] {
        let doc = PolicyDocument::parse(&get_policy(&env.kms, &creator, &key).unwrap()).unwrap();
        let arn = describe(&env.kms, &creator, &key).unwrap().arn;
        for c in [root(), alice(), partner(), partner_root(), stranger()] {
            let principal = c.arn();
            let shown = doc.evaluate(&RequestContext {
                caller: &c,
                principal_arn: &principal,
                action: "kms:Encrypt",
                resource: &arn,
            });
            let engine = encrypt(&env.kms, &c, &key);
            assert_eq!(shown == Verdict::Allow, engine.is_ok(), "{c} on {key}");
        }
    }
}

#[test]
fn an_account_the_instance_is_not_shared_with_cannot_create_keys_in_it() {
    let env = shared_env();
    let before = env.key_count();
    for c in [stranger(), Caller::account_root(STRANGER)] {
        assert_denied(env.try_key(&c, None, Some(INSTANCE)), "kms:CreateKey", &c);
    }
    // Sharing is per instance: 5678 may not create in the owner's unshared kst-2.
    assert_denied(
        env.try_key(&partner(), None, Some("kst-2")),
        "kms:CreateKey",
        &partner(),
    );
    // Nor outside any instance, nor in an instance nobody registered.
    assert_denied(
        env.try_key(&partner(), None, None),
        "kms:CreateKey",
        &partner(),
    );
    assert_denied(
        env.try_key(&partner(), None, Some("kst-unknown")),
        "kms:CreateKey",
        &partner(),
    );
    assert_eq!(env.key_count(), before);
    // The owner may create in each of them.
    key_in(&env, &alice(), "kst-2");
    key_in(&env, &alice(), "kst-unknown");
}

#[test]
fn keys_in_an_unshared_instance_are_the_owners_alone() {
    let env = shared_env();
    let key = key_in(&env, &root(), "kst-2");
    assert_full_control(&env, &bob(), &key);
    assert_no_access(&env, &partner(), &key);
}

#[test]
fn sharing_an_unknown_instance_is_invalid() {
    let env = Env::new().with_full_identity_policies();
    let e = env
        .authz
        .share_instance("kst-missing", PARTNER)
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter");
    assert!(e.to_string().contains("DKMSInstanceId"), "{e}");
}

#[test]
fn sharing_later_opens_the_instance_to_new_keys_of_that_account() {
    let env = Env::new().with_full_identity_policies();
    env.authz.add_instance(INSTANCE, OWNER);
    let owners = key_in(&env, &root(), INSTANCE);
    assert_denied(
        env.try_key(&partner(), None, Some(INSTANCE)),
        "kms:CreateKey",
        &partner(),
    );
    env.authz.share_instance(INSTANCE, PARTNER).unwrap();
    let partners = key_in(&env, &partner(), INSTANCE);
    assert_full_control(&env, &root(), &partners);
    assert_full_control(&env, &partner(), &partners);
    // The owner's key stays the owner's.
    assert_no_access(&env, &partner(), &owners);
}

#[test]
fn a_custom_policy_replaces_the_shared_instance_default() {
    let env = shared_env();
    // The partner creates a key in the shared instance with a policy naming only itself.
    let text = PolicyBuilder::new(PARTNER).build();
    let key = env
        .try_key(&partner_root(), Some(&text), Some(INSTANCE))
        .unwrap()
        .key_metadata
        .key_id;
    encrypt(&env.kms, &partner_root(), &key).unwrap();
    assert_denied(encrypt(&env.kms, &root(), &key), "kms:Encrypt", &root());
    // The policy names the partner account's root: the account, so the partner's RAM user gets
    // in through its identity policy.
    encrypt(&env.kms, &partner(), &key).unwrap();
    assert_eq!(get_policy(&env.kms, &partner_root(), &key).unwrap(), text);
}

#[test]
fn shared_instance_access_holds_after_a_restart() {
    let env = shared_env();
    let partners = key_in(&env, &partner(), INSTANCE);
    let owners = key_in(&env, &root(), INSTANCE);
    let restarted = env.reopen();
    encrypt(&restarted, &partner(), &partners).unwrap();
    encrypt(&restarted, &alice(), &partners).unwrap();
    assert_denied(
        encrypt(&restarted, &partner(), &owners),
        "kms:Encrypt",
        &partner(),
    );
}
