#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! The default CMK: DescribeDefaultKey and EnableDefaultKey (alias rules, description, material
//! from the engine or imported), one per engine until it is purged, the key new secrets use
//! when they name none, and an EnableDefaultKey that fails to commit leaving nothing behind.

mod support_asym;

use std::sync::atomic::Ordering;

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, Origin};
use kms_core::{Caller, KmsError};
use support_asym::*;

const MARKER: &[u8] = b"m/default-key";

fn describe_default(env: &Env) -> DefaultKeyResponse {
    env.kms
        .describe_default_key(&env.me, NoParamsRequest::default())
        .unwrap()
}

fn enable(env: &Env, alias: &str) -> Result<DefaultKeyResponse, KmsError> {
    enable_with(env, alias, None, None)
}

fn enable_with(
    env: &Env,
    alias: &str,
    description: Option<&str>,
    origin: Option<Origin>,
) -> Result<DefaultKeyResponse, KmsError> {
    env.kms.enable_default_key(
        &env.me,
        EnableDefaultKeyRequest {
            alias_name: alias.into(),
            description: description.map(str::to_owned),
            origin,
        },
    )
}

fn key_ids(env: &Env) -> Vec<String> {
    let mut ids: Vec<String> = env
        .kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                page_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap()
        .keys
        .key
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    ids.sort();
    ids
}

fn aliases(env: &Env) -> Vec<(String, String)> {
    env.kms
        .list_aliases(
            &env.me,
            ListAliasesRequest {
                page_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap()
        .aliases
        .alias
        .into_iter()
        .map(|a| (a.alias_name, a.key_id))
        .collect()
}

fn new_secret(env: &Env, name: &str, key: Option<&str>) -> Result<(), KmsError> {
    env.kms
        .create_secret(
            &env.me,
            CreateSecretRequest {
                secret_name: name.into(),
                secret_data: "s3cr3t".into(),
                version_id: "v1".into(),
                encryption_key_id: key.map(str::to_owned),
                ..Default::default()
            },
        )
        .map(|_| ())
}

fn secret_key(env: &Env, name: &str) -> String {
    env.kms
        .describe_secret(
            &env.me,
            DescribeSecretRequest {
                secret_name: name.into(),
                ..Default::default()
            },
        )
        .unwrap()
        .encryption_key_id
}

fn secret_value(env: &Env, name: &str) -> Result<String, KmsError> {
    env.kms
        .get_secret_value(
            &env.me,
            GetSecretValueRequest {
                secret_name: name.into(),
                ..Default::default()
            },
        )
        .map(|r| r.secret_data.expose().to_owned())
}

/// Asserts that the default key is not enabled and nothing of it exists.
#[track_caller]
fn not_enabled(env: &Env) {
    let d = describe_default(env);
    assert_eq!(d.status, "NotEnabled");
    assert_eq!(d.key_metadata, None);
}

// ---- DescribeDefaultKey / EnableDefaultKey ------------------------------------------------

#[test]
fn not_enabled_until_the_owner_enables_it() {
    let env = Env::new();
    let d = describe_default(&env);
    assert_eq!(d.status, "NotEnabled");
    assert!(d.key_metadata.is_none());
    assert!(!d.request_id.is_empty());
    // On the wire: Status, no KeyMetadata.
    let wire = serde_json::to_value(&d).unwrap();
    assert_eq!(wire["Status"], "NotEnabled");
    assert!(wire.get("KeyMetadata").is_none(), "{wire}");
    // Nothing is created by asking.
    assert!(key_ids(&env).is_empty());
}

#[test]
fn enable_needs_a_valid_free_alias() {
    let env = Env::new();
    let e = expect_err(enable(&env, ""), "MissingParameter");
    assert!(e.to_string().contains("AliasName"), "{e}");
    for bad in [
        "default",
        "alias/",
        "alias/has space",
        "alias/semi;colon",
        "Alias/x",
        &format!("alias/{}", "a".repeat(256)),
    ] {
        expect_param_err(enable(&env, bad), "InvalidParameter", "AliasName");
    }
    for reserved in ["alias/acs/kms", "alias/acs/secretsmanager", "alias/acs/x/y"] {
        expect_param_err(enable(&env, reserved), "InvalidParameter", "AliasName");
    }
    let other = env.create(CreateKeyRequest::default()).unwrap().key_id;
    env.kms
        .create_alias(
            &env.me,
            CreateAliasRequest {
                alias_name: "alias/taken".into(),
                key_id: other.clone(),
            },
        )
        .unwrap();
    let e = expect_err(enable(&env, "alias/taken"), "AliasAlreadyExists");
    assert_eq!(e.http_status(), 400);
    // None of that created a key, an alias or the default key.
    assert_eq!(key_ids(&env), vec![other.clone()]);
    assert_eq!(aliases(&env), vec![("alias/taken".to_owned(), other)]);
    not_enabled(&env);
    // The longest alias is fine.
    let longest = format!("alias/{}", "a".repeat(255));
    enable(&env, &longest).unwrap();
}

#[test]
fn enable_creates_an_enabled_aes_256_key_with_its_alias_and_description() {
    let env = Env::new();
    let r = enable_with(&env, "alias/default", Some("the free key"), None).unwrap();
    assert_eq!(r.status, "Enabled");
    let meta = r.key_metadata.unwrap();
    assert_eq!(meta.key_state, KeyState::Enabled);
    assert_eq!(meta.key_spec, KeySpec::Aes256);
    assert_eq!(meta.key_usage, KeyUsage::EncryptDecrypt);
    assert_eq!(meta.origin, Origin::AliyunKms);
    assert_eq!(meta.description, "the free key");
    assert!(meta.primary_key_version.is_some());
    assert_eq!(meta, env.describe(&meta.key_id));

    let d = describe_default(&env);
    assert_eq!(d.status, "Enabled");
    assert_eq!(d.key_metadata.as_ref(), Some(&meta));
    let wire = serde_json::to_value(&d).unwrap();
    assert_eq!(wire["Status"], "Enabled");
    assert_eq!(wire["KeyMetadata"]["KeyId"], meta.key_id.as_str());
    assert_eq!(wire["KeyMetadata"]["Description"], "the free key");

    // The alias names it, and it is an ordinary key otherwise.
    assert_eq!(
        aliases(&env),
        vec![("alias/default".to_owned(), meta.key_id.clone())]
    );
    assert_eq!(env.describe("alias/default").key_id, meta.key_id);
    let blob = env
        .encrypt("alias/default", b"with the default key")
        .unwrap();
    assert_eq!(env.decrypt(&blob).unwrap(), b"with the default key");
    env.new_version(&meta.key_id).unwrap();
    assert_eq!(env.decrypt(&blob).unwrap(), b"with the default key");
    env.disable(&meta.key_id);
    let d = describe_default(&env);
    assert_eq!(d.status, "Enabled");
    assert_eq!(d.key_metadata.unwrap().key_state, KeyState::Disabled);

    // A restarted engine knows it.
    let again = env.reopen(None);
    let d = again
        .describe_default_key(&env.me, NoParamsRequest::default())
        .unwrap();
    assert_eq!(d.key_metadata.unwrap().key_id, meta.key_id);

    // Without a description, the description is empty.
    let env = Env::new();
    let meta = enable(&env, "alias/d").unwrap().key_metadata.unwrap();
    assert_eq!(meta.description, "");
    // A description over 8192 characters is refused, and nothing is created.
    let env = Env::new();
    expect_param_err(
        enable_with(&env, "alias/d", Some(&"x".repeat(8193)), None),
        "InvalidParameter",
        "Description",
    );
    not_enabled(&env);
    assert!(key_ids(&env).is_empty() && aliases(&env).is_empty());
}

#[test]
fn external_origin_starts_pending_import_and_takes_imported_material() {
    let env = Env::new();
    let meta = enable_with(&env, "alias/byok-default", None, Some(Origin::External))
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.origin, Origin::External);
    assert_eq!(meta.key_state, KeyState::PendingImport);
    assert_eq!(meta.key_spec, KeySpec::Aes256);
    expect_err(env.encrypt(&meta.key_id, b"x"), "Rejected.PendingImport");
    assert_eq!(describe_default(&env).status, "Enabled");

    // BYOK as for any EXTERNAL key.
    expect_err(
        env.import_material(&meta.key_id, &[7; 16], None),
        "InvalidKeyMaterial",
    );
    env.import_material(&meta.key_id, &[7; 32], None).unwrap();
    assert_eq!(env.state(&meta.key_id), KeyState::Enabled);
    let blob = env.encrypt("alias/byok-default", b"imported").unwrap();
    assert_eq!(env.decrypt(&blob).unwrap(), b"imported");
    // The material is the imported one: a second import of other material is refused.
    expect_err(
        env.import_material(&meta.key_id, &[8; 32], None),
        "InvalidKeyMaterial",
    );
    env.import_material(&meta.key_id, &[7; 32], None).unwrap();
}

#[test]
fn only_aliyun_kms_and_external_are_material_sources() {
    let env = Env::new();
    let e = expect_err(
        enable_with(&env, "alias/d", None, Some(Origin::ExternalKeyStore)),
        "InvalidParameter",
    );
    assert!(e.to_string().contains("Origin"), "{e}");
    not_enabled(&env);
    assert!(key_ids(&env).is_empty() && aliases(&env).is_empty());
    // Explicit Aliyun_KMS is the default.
    let meta = enable_with(&env, "alias/d", None, Some(Origin::AliyunKms))
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.origin, Origin::AliyunKms);
    // On the wire, the origin is checked by name.
    let bad: Result<EnableDefaultKeyRequest, _> = kms_core::api::decode_request(
        serde_json::json!({"AliasName": "alias/x", "Origin": "SOMEWHERE"}),
    );
    expect_param_err(bad, "InvalidParameter", "Origin");
}

#[test]
fn one_default_key_per_engine() {
    let env = Env::new();
    let first = enable(&env, "alias/first").unwrap().key_metadata.unwrap();
    let keys = key_ids(&env);
    let all_aliases = aliases(&env);
    for (alias, origin) in [
        ("alias/second", None),
        ("alias/first", None),
        ("alias/third", Some(Origin::External)),
    ] {
        let e = expect_err(
            enable_with(&env, alias, None, origin),
            "Rejected.ResourceExist",
        );
        assert_eq!(e.http_status(), 409);
    }
    assert_eq!(key_ids(&env), keys);
    assert_eq!(aliases(&env), all_aliases);
    assert_eq!(
        describe_default(&env).key_metadata.unwrap().key_id,
        first.key_id
    );
    // Also while it is Disabled or pending deletion: it still exists.
    env.disable(&first.key_id);
    expect_err(enable(&env, "alias/second"), "Rejected.ResourceExist");
    env.schedule_deletion(&first.key_id, 7).unwrap();
    expect_err(enable(&env, "alias/second"), "Rejected.ResourceExist");
    let d = describe_default(&env);
    assert_eq!(d.status, "Enabled");
    assert_eq!(d.key_metadata.unwrap().key_state, KeyState::PendingDeletion);
    // Deleting its alias does not free the slot either.
    env.kms
        .delete_alias(
            &env.me,
            DeleteAliasRequest {
                alias_name: "alias/first".into(),
            },
        )
        .unwrap();
    expect_err(enable(&env, "alias/second"), "Rejected.ResourceExist");
}

#[test]
fn once_purged_the_default_key_can_be_enabled_again() {
    // Purged by maintenance.
    let env = Env::new();
    let first = enable(&env, "alias/default").unwrap().key_metadata.unwrap();
    env.schedule_deletion(&first.key_id, 7).unwrap();
    env.clock.advance_days(8);
    env.kms.run_maintenance(env.kms.now()).unwrap();
    not_enabled(&env);
    let second = enable(&env, "alias/default").unwrap().key_metadata.unwrap();
    assert_ne!(second.key_id, first.key_id);
    assert_eq!(
        describe_default(&env).key_metadata.unwrap().key_id,
        second.key_id
    );
    assert_eq!(env.describe("alias/default").key_id, second.key_id);
    expect_err(enable(&env, "alias/other"), "Rejected.ResourceExist");

    // Past its DeleteDate before maintenance ran: already gone, alias included.
    let env = Env::new();
    let first = enable(&env, "alias/default").unwrap().key_metadata.unwrap();
    env.schedule_deletion(&first.key_id, 7).unwrap();
    env.clock.advance_days(8);
    not_enabled(&env);
    let second = enable(&env, "alias/default").unwrap().key_metadata.unwrap();
    assert_ne!(second.key_id, first.key_id);
    assert_eq!(env.describe("alias/default").key_id, second.key_id);
    assert_eq!(
        aliases(&env),
        vec![("alias/default".to_owned(), second.key_id.clone())]
    );
    // The old key stays gone after maintenance; the new one stays.
    env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(key_ids(&env), vec![second.key_id.clone()]);
    assert_eq!(
        describe_default(&env).key_metadata.unwrap().key_id,
        second.key_id
    );

    // With another alias too.
    let env = Env::new();
    let first = enable(&env, "alias/a").unwrap().key_metadata.unwrap();
    env.schedule_deletion(&first.key_id, 7).unwrap();
    env.clock.advance_days(8);
    let second = enable(&env, "alias/b").unwrap().key_metadata.unwrap();
    assert_ne!(second.key_id, first.key_id);
}

// ---- the default key of new secrets -------------------------------------------------------

#[test]
fn secrets_without_an_encryption_key_use_the_default_key_once_enabled() {
    let env = Env::new();
    new_secret(&env, "before", None).unwrap();
    let service = secret_key(&env, "before");
    assert_eq!(env.describe("alias/acs/secretsmanager").key_id, service);
    // The service key is not the default key.
    not_enabled(&env);

    let default = enable(&env, "alias/default").unwrap().key_metadata.unwrap();
    new_secret(&env, "after", None).unwrap();
    assert_eq!(secret_key(&env, "after"), default.key_id);
    // Existing secrets keep their key; a named key wins over the default.
    assert_eq!(secret_key(&env, "before"), service);
    let named = env.create(CreateKeyRequest::default()).unwrap().key_id;
    new_secret(&env, "named", Some(&named)).unwrap();
    assert_eq!(secret_key(&env, "named"), named);
    for s in ["before", "after", "named"] {
        assert_eq!(secret_value(&env, s).unwrap(), "s3cr3t");
    }
    // The secret's value really is under the default key: disabling it makes it unreadable.
    env.disable(&default.key_id);
    expect_err(secret_value(&env, "after"), "Rejected.Disabled");
    assert_eq!(secret_value(&env, "before").unwrap(), "s3cr3t");
    // And a new secret naming no key gets the default key's error, not another key.
    expect_err(
        new_secret(&env, "while-disabled", None),
        "Rejected.Disabled",
    );

    // Once the default key is purged, new secrets go back to the service key.
    env.kms
        .enable_key(
            &env.me,
            EnableKeyRequest {
                key_id: default.key_id.clone(),
            },
        )
        .unwrap();
    env.schedule_deletion(&default.key_id, 7).unwrap();
    env.clock.advance_days(8);
    new_secret(&env, "later", None).unwrap();
    assert_eq!(secret_key(&env, "later"), service);
}

#[test]
fn an_external_default_key_pending_import_refuses_new_secrets() {
    let env = Env::new();
    let meta = enable_with(&env, "alias/d", None, Some(Origin::External))
        .unwrap()
        .key_metadata
        .unwrap();
    expect_err(new_secret(&env, "s", None), "Rejected.PendingImport");
    env.import_material(&meta.key_id, &[3; 32], None).unwrap();
    new_secret(&env, "s", None).unwrap();
    assert_eq!(secret_key(&env, "s"), meta.key_id);
    assert_eq!(secret_value(&env, "s").unwrap(), "s3cr3t");
}

// ---- authorization and failures -------------------------------------------------------------

#[test]
fn another_account_may_neither_see_nor_enable_it() {
    let env = Env::new();
    let outsider = Caller::account_root("9999");
    expect_err(
        env.kms
            .describe_default_key(&outsider, NoParamsRequest::default()),
        "Forbidden.NoPermission",
    );
    expect_err(
        env.kms.enable_default_key(
            &outsider,
            EnableDefaultKeyRequest {
                alias_name: "alias/d".into(),
                ..Default::default()
            },
        ),
        "Forbidden.NoPermission",
    );
    not_enabled(&env);
    assert!(key_ids(&env).is_empty());
}

#[test]
fn a_failed_commit_leaves_neither_key_alias_nor_marker() {
    let env = Env::new();
    env.storage.fail_commits.store(true, Ordering::SeqCst);
    let e = expect_err(
        enable_with(&env, "alias/default", Some("d"), None),
        "InternalFailure",
    );
    assert_eq!(e.http_status(), 500);
    env.storage.fail_commits.store(false, Ordering::SeqCst);

    not_enabled(&env);
    assert!(key_ids(&env).is_empty());
    assert!(aliases(&env).is_empty());
    assert!(env.storage.current(MARKER).is_none(), "no marker");
    assert!(env.storage.current_under(b"k/").is_empty(), "no key record");
    assert!(
        env.storage.current_under(b"a/").is_empty(),
        "no alias record"
    );
    expect_err(
        env.kms.describe_key(
            &env.me,
            DescribeKeyRequest {
                key_id: "alias/default".into(),
            },
        ),
        "Forbidden.AliasNotFound",
    );
    // A restarted engine sees the same nothing.
    let again = env.reopen(None);
    assert_eq!(
        again
            .describe_default_key(&env.me, NoParamsRequest::default())
            .unwrap()
            .status,
        "NotEnabled"
    );

    // Nothing was cached wrongly: the same call now succeeds, once.
    let meta = enable_with(&env, "alias/default", Some("d"), None)
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(key_ids(&env), vec![meta.key_id.clone()]);
    assert_eq!(
        aliases(&env),
        vec![("alias/default".to_owned(), meta.key_id.clone())]
    );
    assert!(env.storage.current(MARKER).is_some());
    expect_err(enable(&env, "alias/x"), "Rejected.ResourceExist");

    // A failure re-enabling after a purge leaves the old marker's replacement unwritten too.
    env.schedule_deletion(&meta.key_id, 7).unwrap();
    env.clock.advance_days(8);
    env.kms.run_maintenance(env.kms.now()).unwrap();
    let marker = env.storage.current(MARKER);
    env.storage.fail_commits.store(true, Ordering::SeqCst);
    expect_err(enable(&env, "alias/again"), "InternalFailure");
    env.storage.fail_commits.store(false, Ordering::SeqCst);
    assert_eq!(env.storage.current(MARKER), marker);
    not_enabled(&env);
    assert!(key_ids(&env).is_empty());
    let again = enable(&env, "alias/again").unwrap().key_metadata.unwrap();
    assert_eq!(
        describe_default(&env).key_metadata.unwrap().key_id,
        again.key_id
    );
}
