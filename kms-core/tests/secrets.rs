#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! The Secrets Manager, driven by the manual clock: CreateSecret and its validation, reading by
//! stage and version, PutSecretValue and the stage moves it makes, UpdateSecretVersionStage,
//! version listing and the 10-version limit, DescribeSecret/UpdateSecret/ListSecrets, deletion
//! with a recovery window, restore and purge, the secret's CMK (rotated, disabled, pending
//! deletion, purged), sealed storage, rotation handlers (RotateSecret, rotation policy and
//! maintenance), GetRandomPassword, tags, authorization, secret policies and wire shapes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use kms_core::api::KeySpec;
use kms_core::api::*;
use kms_core::{
    Caller, Kms, KmsError, ManualClock, RootKey, SecretRotationHandler, Storage, UnixTime,
};
use kms_storage::MemoryStorage;
use serde_json::json;

const CURRENT: &str = "ACSCurrent";
const PREVIOUS: &str = "ACSPrevious";
const WEEK: i64 = 7 * DAY;
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/// A rotation handler for tests: the next value is `<current>-<label><n>` (n counts calls),
/// or an error while `fail` is set. Remembers what it was asked.
#[derive(Clone)]
struct Rotator {
    label: &'static str,
    fail: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Rotator {
    fn new(label: &'static str) -> Self {
        Rotator {
            label,
            fail: Arc::new(AtomicBool::new(false)),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl SecretRotationHandler for Rotator {
    fn rotate(&self, secret_name: &str, current: &SecretData) -> Result<SecretData, KmsError> {
        let mut seen = self.seen.lock().unwrap();
        seen.push((secret_name.to_owned(), current.expose().to_owned()));
        if self.fail.load(Ordering::SeqCst) {
            return Err(KmsError::invalid(
                "Rotation",
                "the database refused the new password",
            ));
        }
        Ok(SecretData::new(format!(
            "{}-{}{}",
            current.expose(),
            self.label,
            seen.len()
        )))
    }
}

/// An engine like [`Env::new`], with rotation handlers registered per SecretType.
fn env_with(handlers: &[(&str, &Rotator)]) -> Env {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let clock = Arc::new(ManualClock::new(START));
    let root_key = RootKey::generate().unwrap();
    let mut builder = Kms::builder()
        .shared_storage(storage.clone())
        .clock(clock.clone())
        .root_key(root_key.clone())
        .account_id(ACCOUNT)
        .region(REGION);
    for (secret_type, handler) in handlers {
        builder = builder.secret_rotation_handler(*secret_type, (*handler).clone());
    }
    Env {
        kms: builder.build().unwrap(),
        clock,
        storage,
        root_key,
        me: Caller::account_root(ACCOUNT),
    }
}

fn create_req(name: &str, data: &str) -> CreateSecretRequest {
    CreateSecretRequest {
        secret_name: name.into(),
        secret_data: data.into(),
        version_id: "v1".into(),
        ..Default::default()
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A version as ListSecretVersionIds shows it: id, stages, CreateTime.
type Listed = (String, Vec<String>, UnixTime);

/// The secrets operations, unwrapped where the test only needs the happy path.
trait SecretOps {
    fn new_secret(&self, name: &str, data: &str) -> CreateSecretResponse;
    fn try_new_secret(&self, req: CreateSecretRequest) -> Result<CreateSecretResponse, KmsError>;
    fn value(&self, name: &str) -> GetSecretValueResponse;
    fn try_value(
        &self,
        name: &str,
        version: Option<&str>,
        stage: Option<&str>,
    ) -> Result<GetSecretValueResponse, KmsError>;
    fn data_of(&self, name: &str, version: &str) -> String;
    fn put(
        &self,
        name: &str,
        version: &str,
        data: &str,
        stages: &[&str],
    ) -> Result<PutSecretValueResponse, KmsError>;
    fn stage(
        &self,
        name: &str,
        stage: &str,
        remove_from: Option<&str>,
        move_to: Option<&str>,
    ) -> Result<SecretNameResponse, KmsError>;
    fn listed(&self, name: &str, include_deprecated: bool) -> Vec<Listed>;
    fn ids(&self, name: &str, include_deprecated: bool) -> Vec<String>;
    fn stage_map(&self, name: &str) -> BTreeMap<String, String>;
    fn meta(&self, name: &str) -> DescribeSecretResponse;
    fn try_meta(&self, name: &str) -> Result<DescribeSecretResponse, KmsError>;
    fn snapshot(&self, name: &str) -> serde_json::Value;
    fn delete_secret(
        &self,
        name: &str,
        days: Option<i64>,
        force: Option<bool>,
    ) -> Result<DeleteSecretResponse, KmsError>;
    fn restore(&self, name: &str) -> Result<SecretNameResponse, KmsError>;
    fn rotate_secret(&self, name: &str, version: &str) -> Result<RotateSecretResponse, KmsError>;
    fn secret_rotation(
        &self,
        name: &str,
        enable: Option<bool>,
        interval: Option<&str>,
    ) -> Result<SecretNameResponse, KmsError>;
    fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, KmsError>;
    fn secret_names(&self, req: ListSecretsRequest) -> Vec<String>;
    fn maintain(&self) -> MaintenanceReport;
    fn password(&self, req: GetRandomPasswordRequest) -> Result<String, KmsError>;
    fn tag_secret(&self, name: &str, tags: &[(&str, &str)]) -> Result<EmptyResponse, KmsError>;
    fn untag_secret(&self, name: &str, keys: &[&str]) -> Result<EmptyResponse, KmsError>;
    fn secret_tags(&self, name: &str) -> Vec<(String, String)>;
    fn stored_values(&self) -> Vec<Vec<u8>>;
    fn stored_keys(&self, prefix: &[u8]) -> Vec<Vec<u8>>;
}

impl SecretOps for Env {
    fn new_secret(&self, name: &str, data: &str) -> CreateSecretResponse {
        self.try_new_secret(create_req(name, data)).unwrap()
    }

    fn try_new_secret(&self, req: CreateSecretRequest) -> Result<CreateSecretResponse, KmsError> {
        self.kms.create_secret(&self.me, req)
    }

    fn value(&self, name: &str) -> GetSecretValueResponse {
        self.try_value(name, None, None).unwrap()
    }

    fn try_value(
        &self,
        name: &str,
        version: Option<&str>,
        stage: Option<&str>,
    ) -> Result<GetSecretValueResponse, KmsError> {
        self.kms.get_secret_value(
            &self.me,
            GetSecretValueRequest {
                secret_name: name.into(),
                version_id: version.map(str::to_owned),
                version_stage: stage.map(str::to_owned),
                ..Default::default()
            },
        )
    }

    fn data_of(&self, name: &str, version: &str) -> String {
        self.try_value(name, Some(version), None)
            .unwrap()
            .secret_data
            .expose()
            .to_owned()
    }

    fn put(
        &self,
        name: &str,
        version: &str,
        data: &str,
        stages: &[&str],
    ) -> Result<PutSecretValueResponse, KmsError> {
        self.kms.put_secret_value(
            &self.me,
            PutSecretValueRequest {
                secret_name: name.into(),
                version_id: version.into(),
                secret_data: data.into(),
                version_stages: strs(stages),
                ..Default::default()
            },
        )
    }

    fn stage(
        &self,
        name: &str,
        stage: &str,
        remove_from: Option<&str>,
        move_to: Option<&str>,
    ) -> Result<SecretNameResponse, KmsError> {
        self.kms.update_secret_version_stage(
            &self.me,
            UpdateSecretVersionStageRequest {
                secret_name: name.into(),
                version_stage: stage.into(),
                remove_from_version: remove_from.map(str::to_owned),
                move_to_version: move_to.map(str::to_owned),
            },
        )
    }

    fn listed(&self, name: &str, include_deprecated: bool) -> Vec<Listed> {
        self.kms
            .list_secret_version_ids(
                &self.me,
                ListSecretVersionIdsRequest {
                    secret_name: name.into(),
                    include_deprecated: Some(include_deprecated),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .version_ids
            .version_id
            .into_iter()
            .map(|e| (e.version_id, e.version_stages.version_stage, e.create_time))
            .collect()
    }

    fn ids(&self, name: &str, include_deprecated: bool) -> Vec<String> {
        self.listed(name, include_deprecated)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect()
    }

    fn stage_map(&self, name: &str) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for (id, stages, _) in self.listed(name, true) {
            for s in stages {
                assert!(
                    map.insert(s.clone(), id.clone()).is_none(),
                    "stage {s} on two versions"
                );
            }
        }
        map
    }

    fn meta(&self, name: &str) -> DescribeSecretResponse {
        self.try_meta(name).unwrap()
    }

    fn try_meta(&self, name: &str) -> Result<DescribeSecretResponse, KmsError> {
        self.kms.describe_secret(
            &self.me,
            DescribeSecretRequest {
                secret_name: name.into(),
                fetch_tags: Some(true),
            },
        )
    }

    /// Everything observable about a secret without reading values (RequestId left out).
    fn snapshot(&self, name: &str) -> serde_json::Value {
        let mut meta = serde_json::to_value(self.meta(name)).unwrap();
        meta.as_object_mut().unwrap().remove("RequestId");
        json!({ "meta": meta, "versions": format!("{:?}", self.listed(name, true)) })
    }

    fn delete_secret(
        &self,
        name: &str,
        days: Option<i64>,
        force: Option<bool>,
    ) -> Result<DeleteSecretResponse, KmsError> {
        self.kms.delete_secret(
            &self.me,
            DeleteSecretRequest {
                secret_name: name.into(),
                recovery_window_in_days: days,
                force_delete_without_recovery: force,
            },
        )
    }

    fn restore(&self, name: &str) -> Result<SecretNameResponse, KmsError> {
        self.kms.restore_secret(
            &self.me,
            SecretNameRequest {
                secret_name: name.into(),
            },
        )
    }

    fn rotate_secret(&self, name: &str, version: &str) -> Result<RotateSecretResponse, KmsError> {
        self.kms.rotate_secret(
            &self.me,
            RotateSecretRequest {
                secret_name: name.into(),
                version_id: version.into(),
            },
        )
    }

    fn secret_rotation(
        &self,
        name: &str,
        enable: Option<bool>,
        interval: Option<&str>,
    ) -> Result<SecretNameResponse, KmsError> {
        self.kms.update_secret_rotation_policy(
            &self.me,
            UpdateSecretRotationPolicyRequest {
                secret_name: name.into(),
                enable_automatic_rotation: enable,
                rotation_interval: interval.map(str::to_owned),
            },
        )
    }

    fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, KmsError> {
        self.kms.list_secrets(&self.me, req)
    }

    fn secret_names(&self, req: ListSecretsRequest) -> Vec<String> {
        self.list_secrets(req)
            .unwrap()
            .secret_list
            .secret
            .into_iter()
            .map(|s| s.secret_name)
            .collect()
    }

    fn maintain(&self) -> MaintenanceReport {
        self.kms.run_maintenance(self.now()).unwrap()
    }

    fn password(&self, req: GetRandomPasswordRequest) -> Result<String, KmsError> {
        self.kms
            .get_random_password(&self.me, req)
            .map(|r| r.random_password.expose().to_owned())
    }

    fn tag_secret(&self, name: &str, tags: &[(&str, &str)]) -> Result<EmptyResponse, KmsError> {
        self.kms.tag_resource(
            &self.me,
            TagResourceRequest {
                secret_name: name.into(),
                tags: tag_list(tags),
                ..Default::default()
            },
        )
    }

    fn untag_secret(&self, name: &str, keys: &[&str]) -> Result<EmptyResponse, KmsError> {
        self.kms.untag_resource(
            &self.me,
            UntagResourceRequest {
                secret_name: name.into(),
                tag_keys: strs(keys),
                ..Default::default()
            },
        )
    }

    fn secret_tags(&self, name: &str) -> Vec<(String, String)> {
        self.meta(name)
            .tags
            .unwrap()
            .tag
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect()
    }

    fn stored_values(&self) -> Vec<Vec<u8>> {
        self.storage
            .scan(b"", None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.value)
            .collect()
    }

    fn stored_keys(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.storage
            .scan(prefix, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

fn stages(v: &GetSecretValueResponse) -> Vec<&str> {
    v.version_stages
        .version_stage
        .iter()
        .map(String::as_str)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CreateSecret
// ---------------------------------------------------------------------------------------------

#[test]
fn create_secret_answers_with_the_arn_and_the_first_version_is_current() {
    let env = Env::new();
    let created = env.new_secret("db/prod", "s3cr3t");
    assert!(!created.request_id.is_empty());
    assert_eq!(created.arn, "acs:kms:cn-hangzhou:1234:secret/db/prod");
    assert_eq!(created.secret_name, "db/prod");
    assert_eq!(created.version_id, "v1");
    assert_eq!(created.secret_type, "Generic");
    assert_eq!(created.automatic_rotation, "Disabled");
    assert_eq!(created.rotation_interval, None);
    assert_eq!(created.next_rotation_date, None);

    let v = env.value("db/prod");
    assert_eq!(v.secret_name, "db/prod");
    assert_eq!(v.secret_data.expose(), "s3cr3t");
    assert_eq!(v.secret_data_type, "text");
    assert_eq!(v.version_id, "v1");
    assert_eq!(stages(&v), [CURRENT]);
    assert_eq!(v.create_time, START);
    assert_eq!(v.secret_type, "Generic");

    let m = env.meta("db/prod");
    assert_eq!(m.arn, created.arn);
    assert_eq!(m.create_time, START);
    assert_eq!(m.secret_type, "Generic");
    assert_eq!(m.planned_delete_time, None);
}

#[test]
fn secret_names_are_1_to_192_characters_of_the_allowed_set() {
    let env = Env::new();
    let longest = "n".repeat(192);
    for good in [
        "a",
        "A-Za-z0-9_/+=.@-",
        "user@example.com",
        "a/b/c",
        "k=v+w",
        longest.as_str(),
    ] {
        env.new_secret(good, "x");
        assert_eq!(env.value(good).secret_data.expose(), "x", "{good}");
    }
    expect_param_err(
        env.try_new_secret(create_req("", "x")),
        "MissingParameter",
        "SecretName",
    );
    let too_long = "n".repeat(193);
    let mut bad: Vec<String> = vec![too_long];
    for c in [
        " ", "!", "#", "$", "%", "&", "*", ":", ";", ",", "?", "\\", "'", "\"", "~", "(", "ä",
        "名", "\n", "\t",
    ] {
        bad.push(format!("db{c}prod"));
    }
    for name in &bad {
        expect_param_err(
            env.try_new_secret(create_req(name, "x")),
            "InvalidParameter",
            "SecretName",
        );
    }
    let listed = env.secret_names(ListSecretsRequest {
        page_size: Some(100),
        ..Default::default()
    });
    assert_eq!(listed.len(), 6, "only the good names exist: {listed:?}");
}

#[test]
fn secret_data_is_at_most_30720_bytes() {
    let env = Env::new();
    let max = "x".repeat(30720);
    env.new_secret("max", &max);
    assert_eq!(env.value("max").secret_data.expose(), max);

    let e = expect_param_err(
        env.try_new_secret(create_req("over", &"x".repeat(30721))),
        "InvalidParameter",
        "SecretData",
    );
    assert_eq!(e.http_status(), 400);
    // Bytes, not characters: 15361 two-byte characters are 30722 bytes.
    expect_param_err(
        env.try_new_secret(create_req("over", &"é".repeat(15361))),
        "InvalidParameter",
        "SecretData",
    );
    env.new_secret("multibyte", &"é".repeat(15360));
    expect_param_err(
        env.try_new_secret(create_req("empty", "")),
        "MissingParameter",
        "SecretData",
    );
    expect_err(env.try_meta("over"), "Forbidden.ResourceNotFound");

    // PutSecretValue has the same limit.
    env.put("max", "v2", &max, &[]).unwrap();
    expect_param_err(
        env.put("max", "v3", &"y".repeat(30721), &[]),
        "InvalidParameter",
        "SecretData",
    );
    expect_param_err(
        env.put("max", "v3", "", &[]),
        "MissingParameter",
        "SecretData",
    );
    assert_eq!(env.ids("max", true), ["v2", "v1"]);
}

#[test]
fn binary_secrets_hold_base64_text_and_keep_their_type_per_version() {
    let env = Env::new();
    env.try_new_secret(CreateSecretRequest {
        secret_data_type: Some("binary".into()),
        ..create_req("cert", "AAECAwQF/w==")
    })
    .unwrap();
    let v = env.value("cert");
    assert_eq!(v.secret_data.expose(), "AAECAwQF/w==");
    assert_eq!(v.secret_data_type, "binary");

    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            secret_data_type: Some("binary".into()),
            ..create_req("bad", "not base64!")
        }),
        "InvalidParameter",
        "SecretData",
    );
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            secret_data_type: Some("blob".into()),
            ..create_req("bad", "x")
        }),
        "InvalidParameter",
        "SecretDataType",
    );
    expect_err(env.try_meta("bad"), "Forbidden.ResourceNotFound");

    // A text version after a binary one: each version keeps its own type.
    env.kms
        .put_secret_value(
            &env.me,
            PutSecretValueRequest {
                secret_name: "cert".into(),
                version_id: "v2".into(),
                secret_data: "plain text".into(),
                secret_data_type: Some("text".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.value("cert").secret_data_type, "text");
    let old = env.try_value("cert", Some("v1"), None).unwrap();
    assert_eq!(old.secret_data_type, "binary");
    assert_eq!(old.secret_data.expose(), "AAECAwQF/w==");
    expect_param_err(
        env.kms.put_secret_value(
            &env.me,
            PutSecretValueRequest {
                secret_name: "cert".into(),
                version_id: "v3".into(),
                secret_data: "%%%".into(),
                secret_data_type: Some("binary".into()),
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "SecretData",
    );
}

#[test]
fn a_duplicate_name_is_resource_exist_also_while_pending_deletion() {
    let env = Env::new();
    env.new_secret("db", "first");
    let e = expect_err(
        env.try_new_secret(create_req("db", "second")),
        "Rejected.ResourceExist",
    );
    assert_eq!(e.http_status(), 409);
    assert_eq!(env.value("db").secret_data.expose(), "first");

    env.delete_secret("db", Some(7), None).unwrap();
    expect_err(
        env.try_new_secret(create_req("db", "second")),
        "Rejected.ResourceExist",
    );
    env.clock.advance(WEEK - 1);
    expect_err(
        env.try_new_secret(create_req("db", "second")),
        "Rejected.ResourceExist",
    );
    // The first secret is still there, restorable, with its value.
    env.restore("db").unwrap();
    assert_eq!(env.value("db").secret_data.expose(), "first");
}

#[test]
fn the_default_encryption_key_is_the_secretsmanager_service_key() {
    let env = Env::new();
    env.new_secret("a", "x");
    env.new_secret("b", "y");
    let service = env.describe("alias/acs/secretsmanager");
    assert_eq!(env.meta("a").encryption_key_id, service.key_id);
    assert_eq!(env.meta("b").encryption_key_id, service.key_id);
    assert_eq!(env.value("a").secret_data.expose(), "x");
    // An empty EncryptionKeyId (as a wire client sends) also means the default key.
    env.try_new_secret(CreateSecretRequest {
        encryption_key_id: Some(String::new()),
        ..create_req("c", "z")
    })
    .unwrap();
    assert_eq!(env.meta("c").encryption_key_id, service.key_id);
}

#[test]
fn encryption_key_id_takes_a_key_id_arn_or_alias_of_a_symmetric_key() {
    let env = Env::new();
    let key = env.create_key();
    env.create_alias("alias/secrets", &key.key_id).unwrap();
    for (name, reference) in [
        ("by-id", key.key_id.as_str()),
        ("by-arn", key.arn.as_str()),
        ("by-alias", "alias/secrets"),
    ] {
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some(reference.to_owned()),
            ..create_req(name, name)
        })
        .unwrap();
        assert_eq!(env.meta(name).encryption_key_id, key.key_id, "{name}");
        assert_eq!(env.value(name).secret_data.expose(), name);
    }
    for spec in [KeySpec::Aes128, KeySpec::Aes192] {
        let k = env.create_key_spec(spec).key_id;
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some(k.clone()),
            ..create_req(&format!("aes-{}", &k[..8]), "v")
        })
        .unwrap();
    }
}

#[test]
fn an_asymmetric_or_unknown_encryption_key_is_refused() {
    let env = Env::new();
    for spec in [KeySpec::Rsa2048, KeySpec::EcP256] {
        let key = env.create_key_spec(spec).key_id;
        let e = expect_err(
            env.try_new_secret(CreateSecretRequest {
                encryption_key_id: Some(key),
                ..create_req("db", "x")
            }),
            "Rejected.UnsupportedOperation",
        );
        assert_eq!(e.http_status(), 400);
    }
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some("1234abcd-12ab-44cd-96ef-1234567890ab".into()),
            ..create_req("db", "x")
        }),
        "Forbidden.KeyNotFound",
    );
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some("alias/none".into()),
            ..create_req("db", "x")
        }),
        "Forbidden.AliasNotFound",
    );
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
}

#[test]
fn create_secret_with_an_unusable_cmk_fails_with_the_cmks_error_and_creates_nothing() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.disable(&key).unwrap();
    let e = expect_err(
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some(key.clone()),
            ..create_req("db", "x")
        }),
        "Rejected.Disabled",
    );
    assert_eq!(e.http_status(), 409);
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
    assert!(env.stored_keys(b"w/").is_empty());
    env.enable(&key).unwrap();
    env.schedule_deletion(&key, 7).unwrap();
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            encryption_key_id: Some(key),
            ..create_req("db", "x")
        }),
        "Rejected.PendingDeletion",
    );
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
}

#[test]
fn create_secret_takes_a_description_tags_and_checks_them() {
    let env = Env::new();
    env.try_new_secret(CreateSecretRequest {
        description: Some("the billing database".into()),
        tags: tag_list(&[("env", "prod"), ("team", "billing")]),
        ..create_req("db", "x")
    })
    .unwrap();
    let m = env.meta("db");
    assert_eq!(m.description, "the billing database");
    assert_eq!(
        env.secret_tags("db"),
        [
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "billing".to_owned())
        ]
    );
    // Without FetchTags, no tags in the answer.
    let plain = env
        .kms
        .describe_secret(
            &env.me,
            DescribeSecretRequest {
                secret_name: "db".into(),
                fetch_tags: None,
            },
        )
        .unwrap();
    assert_eq!(plain.tags, None);

    let many: Vec<(String, String)> = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            tags: tag_list(&many),
            ..create_req("tagged", "x")
        }),
        "Rejected.LimitExceeded",
    );
    env.try_new_secret(CreateSecretRequest {
        tags: tag_list(&many[..20]),
        ..create_req("twenty", "x")
    })
    .unwrap();
    for bad in [("aliyun-x", "v"), ("acs:x", "v"), ("k#", "v"), ("k", "")] {
        expect_err(
            env.try_new_secret(CreateSecretRequest {
                tags: tag_list(&[bad]),
                ..create_req("tagged", "x")
            }),
            "InvalidParameter",
        );
    }
    expect_err(env.try_meta("tagged"), "Forbidden.ResourceNotFound");
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            description: Some("d".repeat(8193)),
            ..create_req("described", "x")
        }),
        "InvalidParameter",
        "Description",
    );
}

#[test]
fn create_secret_needs_a_valid_version_id() {
    let env = Env::new();
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            version_id: String::new(),
            ..create_req("db", "x")
        }),
        "MissingParameter",
        "VersionId",
    );
    for bad in ["v 1", "v/1", &"v".repeat(65)] {
        expect_param_err(
            env.try_new_secret(CreateSecretRequest {
                version_id: bad.to_owned(),
                ..create_req("db", "x")
            }),
            "InvalidParameter",
            "VersionId",
        );
    }
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
}

// ---------------------------------------------------------------------------------------------
// GetSecretValue
// ---------------------------------------------------------------------------------------------

#[test]
fn get_secret_value_by_stage_and_by_version_id() {
    let env = Env::new();
    env.new_secret("db", "one");
    env.clock.advance(3600);
    env.put("db", "v2", "two", &[]).unwrap();

    let cur = env.value("db");
    assert_eq!(cur.version_id, "v2");
    assert_eq!(cur.secret_data.expose(), "two");
    assert_eq!(stages(&cur), [CURRENT]);
    assert_eq!(cur.create_time, START.plus_secs(3600));
    let by_stage = env.try_value("db", None, Some(CURRENT)).unwrap();
    assert_eq!(by_stage.version_id, "v2");

    let prev = env.try_value("db", None, Some(PREVIOUS)).unwrap();
    assert_eq!(prev.version_id, "v1");
    assert_eq!(prev.secret_data.expose(), "one");
    assert_eq!(stages(&prev), [PREVIOUS]);
    assert_eq!(prev.create_time, START);

    let by_id = env.try_value("db", Some("v1"), None).unwrap();
    assert_eq!(by_id.secret_data.expose(), "one");
    assert_eq!(stages(&by_id), [PREVIOUS]);
    // VersionId and a stage it carries agree; a stage it does not carry is refused.
    env.try_value("db", Some("v1"), Some(PREVIOUS)).unwrap();
    expect_param_err(
        env.try_value("db", Some("v1"), Some(CURRENT)),
        "InvalidParameter",
        "VersionStage",
    );
    expect_param_err(
        env.try_value("db", Some("v9"), None),
        "InvalidParameter",
        "VersionId",
    );
    expect_param_err(
        env.try_value("db", None, Some("Beta")),
        "InvalidParameter",
        "VersionStage",
    );
    // Empty strings (as wire clients send) mean "not given".
    assert_eq!(
        env.try_value("db", Some(""), Some("")).unwrap().version_id,
        "v2"
    );
    let e = expect_err(
        env.try_value("nope", None, None),
        "Forbidden.ResourceNotFound",
    );
    assert_eq!(e.http_status(), 404);
    expect_param_err(
        env.try_value("", None, None),
        "MissingParameter",
        "SecretName",
    );
}

// ---------------------------------------------------------------------------------------------
// PutSecretValue
// ---------------------------------------------------------------------------------------------

#[test]
fn put_secret_value_moves_current_and_previous() {
    let env = Env::new();
    env.new_secret("db", "one");
    let r = env.put("db", "v2", "two", &[]).unwrap();
    assert_eq!(r.secret_name, "db");
    assert_eq!(r.version_id, "v2");
    assert_eq!(r.version_stages.version_stage, [CURRENT]);
    let r = env.put("db", "v3", "three", &[CURRENT]).unwrap();
    assert_eq!(r.version_stages.version_stage, [CURRENT]);

    assert_eq!(
        env.stage_map("db"),
        BTreeMap::from([
            (CURRENT.into(), "v3".into()),
            (PREVIOUS.into(), "v2".into())
        ])
    );
    // v1 lost its stages: deprecated, listed only with IncludeDeprecated, still readable.
    assert_eq!(env.ids("db", false), ["v3", "v2"]);
    assert_eq!(env.ids("db", true), ["v3", "v2", "v1"]);
    assert_eq!(env.data_of("db", "v1"), "one");
    assert!(env
        .try_value("db", Some("v1"), None)
        .unwrap()
        .version_stages
        .version_stage
        .is_empty());
}

#[test]
fn put_secret_value_with_custom_stages() {
    let env = Env::new();
    env.new_secret("db", "one");
    let r = env.put("db", "v2", "two", &["Beta"]).unwrap();
    assert_eq!(r.version_stages.version_stage, ["Beta"]);
    // ACSCurrent did not move.
    assert_eq!(env.value("db").version_id, "v1");
    assert_eq!(
        env.try_value("db", None, Some("Beta")).unwrap().version_id,
        "v2"
    );
    expect_err(
        env.try_value("db", None, Some(PREVIOUS)),
        "InvalidParameter",
    );

    // Beta moves to the newest version that asks for it.
    env.put("db", "v3", "three", &["Beta"]).unwrap();
    assert_eq!(env.stage_map("db")["Beta"], "v3");
    assert_eq!(env.ids("db", false), ["v3", "v1"]);

    // Several stages at once, ACSCurrent among them.
    let r = env
        .put("db", "v4", "four", &["Gamma", CURRENT, "Beta", "Gamma"])
        .unwrap();
    assert_eq!(r.version_stages.version_stage, [CURRENT, "Beta", "Gamma"]);
    assert_eq!(
        env.stage_map("db"),
        BTreeMap::from([
            (CURRENT.into(), "v4".into()),
            (PREVIOUS.into(), "v1".into()),
            ("Beta".into(), "v4".into()),
            ("Gamma".into(), "v4".into()),
        ])
    );
    for bad in ["", "a b", "x/y"] {
        expect_param_err(
            env.put("db", "v5", "five", &[bad]),
            if bad.is_empty() {
                "MissingParameter"
            } else {
                "InvalidParameter"
            },
            "VersionStages",
        );
    }
    assert_eq!(env.ids("db", true), ["v4", "v3", "v2", "v1"]);
}

#[test]
fn put_secret_value_is_idempotent_for_the_same_version_and_data_and_conflicts_otherwise() {
    let env = Env::new();
    env.new_secret("db", "one");
    env.put("db", "v2", "two", &[]).unwrap();
    let before = env.snapshot("db");
    env.clock.advance(60);
    let again = env.put("db", "v2", "two", &[]).unwrap();
    assert_eq!(again.version_id, "v2");
    assert_eq!(again.version_stages.version_stage, [CURRENT]);
    assert_eq!(env.snapshot("db"), before, "the retry changed nothing");
    // The same id and data for a version that is not current: still a no-op, no stage move.
    let old = env.put("db", "v1", "one", &[]).unwrap();
    assert_eq!(old.version_stages.version_stage, [PREVIOUS]);
    assert_eq!(env.snapshot("db"), before);

    for (version, data) in [("v2", "other"), ("v1", "two"), ("v2", "two ")] {
        let e = expect_err(env.put("db", version, data, &[]), "Rejected.ResourceExist");
        assert_eq!(e.http_status(), 409);
    }
    assert_eq!(env.snapshot("db"), before);
    assert_eq!(env.data_of("db", "v2"), "two");
    assert_eq!(env.data_of("db", "v1"), "one");
}

#[test]
fn at_most_ten_versions_are_kept_the_oldest_unstaged_going_first() {
    let env = Env::new();
    env.new_secret("db", "data0");
    // v1 keeps a custom stage, so it outlives older and newer unstaged versions.
    for i in 1..=11 {
        env.clock.advance(1);
        let stages: &[&str] = if i == 1 { &[CURRENT, "Keep"] } else { &[] };
        env.put("db", &format!("v{}", i + 1), &format!("data{i}"), stages)
            .unwrap();
    }
    // Versions v1 (created) .. v12. At v11, v1 was the oldest unstaged version (v2 keeps
    // "Keep"); at v12, v3 was.
    let kept = env.ids("db", true);
    let expected: Vec<String> = (4..=12).rev().chain([2]).map(|i| format!("v{i}")).collect();
    assert_eq!(kept, expected);
    assert_eq!(env.stage_map("db")["Keep"], "v2");
    for gone in ["v1", "v3"] {
        expect_param_err(
            env.try_value("db", Some(gone), None),
            "InvalidParameter",
            "VersionId",
        );
    }
    for v in &kept {
        let n: u32 = v[1..].parse().unwrap();
        assert_eq!(env.data_of("db", v), format!("data{}", n - 1));
    }
    // The dropped versions' values are deleted from storage too.
    assert_eq!(env.stored_keys(b"w/db/").len(), 10);
}

#[test]
fn a_secret_whose_ten_versions_all_carry_stages_refuses_another_with_limit_exceeded() {
    let env = Env::new();
    env.new_secret("db", "v1");
    for i in 2..=10 {
        env.put(
            "db",
            &format!("v{i}"),
            &format!("d{i}"),
            &[&format!("S{i}")],
        )
        .unwrap();
    }
    assert_eq!(env.ids("db", false).len(), 10);
    let before = env.snapshot("db");
    let e = expect_err(
        env.put("db", "v11", "d11", &["S11"]),
        "Rejected.LimitExceeded",
    );
    assert_eq!(e.http_status(), 400);
    // Moving ACSCurrent to the new version leaves ACSPrevious on v1: still every version staged.
    expect_err(env.put("db", "v11", "d11", &[]), "Rejected.LimitExceeded");
    assert_eq!(env.snapshot("db"), before, "a refused put changes nothing");
    assert!(!env
        .stored_keys(b"w/db/")
        .iter()
        .any(|k| k.ends_with(b"/v11")));

    // Freeing one version makes room: that version goes.
    env.stage("db", "S5", Some("v5"), None).unwrap();
    env.put("db", "v11", "d11", &["S11"]).unwrap();
    assert_eq!(env.ids("db", true).len(), 10);
    assert!(!env.ids("db", true).contains(&"v5".to_owned()));
    assert_eq!(env.data_of("db", "v11"), "d11");
}

// ---------------------------------------------------------------------------------------------
// UpdateSecretVersionStage
// ---------------------------------------------------------------------------------------------

#[test]
fn update_secret_version_stage_moves_current_and_previous_follows() {
    let env = Env::new();
    env.new_secret("db", "one");
    env.put("db", "v2", "two", &[]).unwrap();
    env.put("db", "v3", "three", &[]).unwrap();
    // Roll back: ACSCurrent to v2, ACSPrevious to the old current v3.
    let r = env.stage("db", CURRENT, Some("v3"), Some("v2")).unwrap();
    assert_eq!(r.secret_name, "db");
    assert_eq!(
        env.stage_map("db"),
        BTreeMap::from([
            (CURRENT.into(), "v2".into()),
            (PREVIOUS.into(), "v3".into())
        ])
    );
    assert_eq!(env.value("db").secret_data.expose(), "two");
    // ACSPrevious moves on its own too.
    env.stage("db", PREVIOUS, Some("v3"), Some("v1")).unwrap();
    assert_eq!(env.stage_map("db")[PREVIOUS], "v1");
    assert_eq!(env.ids("db", false), ["v2", "v1"]);
}

#[test]
fn update_secret_version_stage_moves_and_removes_custom_stages() {
    let env = Env::new();
    env.new_secret("db", "one");
    env.put("db", "v2", "two", &[]).unwrap();
    // A stage no version carries: attach it.
    env.stage("db", "Beta", None, Some("v1")).unwrap();
    assert_eq!(env.stage_map("db")["Beta"], "v1");
    // Moving a stage that is on a version needs RemoveFromVersion, and it must be right.
    let before = env.snapshot("db");
    expect_param_err(
        env.stage("db", "Beta", None, Some("v2")),
        "MissingParameter",
        "RemoveFromVersion",
    );
    expect_param_err(
        env.stage("db", "Beta", Some("v2"), Some("v2")),
        "InvalidParameter",
        "RemoveFromVersion",
    );
    expect_param_err(
        env.stage("db", "Beta", Some("v1"), Some("v9")),
        "InvalidParameter",
        "MoveToVersion",
    );
    expect_param_err(
        env.stage("db", "Beta", None, None),
        "MissingParameter",
        "MoveToVersion",
    );
    expect_param_err(
        env.stage("db", "", None, Some("v1")),
        "MissingParameter",
        "VersionStage",
    );
    expect_param_err(
        env.stage("db", "Be ta", None, Some("v1")),
        "InvalidParameter",
        "VersionStage",
    );
    assert_eq!(env.snapshot("db"), before, "refused calls change nothing");

    env.stage("db", "Beta", Some("v1"), Some("v2")).unwrap();
    let map = env.stage_map("db");
    assert_eq!(map["Beta"], "v2");
    // A stage sits on one version at a time.
    let carrying: Vec<String> = env
        .listed("db", true)
        .into_iter()
        .filter(|(_, s, _)| s.contains(&"Beta".to_owned()))
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(carrying, ["v2"]);
    // Removed.
    env.stage("db", "Beta", Some("v2"), None).unwrap();
    assert!(!env.stage_map("db").contains_key("Beta"));
    expect_param_err(
        env.stage("db", "Beta", Some("v2"), None),
        "InvalidParameter",
        "RemoveFromVersion",
    );
    expect_err(
        env.stage("nope", "Beta", None, Some("v1")),
        "Forbidden.ResourceNotFound",
    );
}

#[test]
fn current_and_previous_can_only_be_moved_never_removed() {
    let env = Env::new();
    env.new_secret("db", "one");
    env.put("db", "v2", "two", &[]).unwrap();
    let before = env.snapshot("db");
    for (stage, on) in [(CURRENT, "v2"), (PREVIOUS, "v1")] {
        expect_param_err(
            env.stage("db", stage, Some(on), None),
            "InvalidParameter",
            "VersionStage",
        );
    }
    assert_eq!(env.snapshot("db"), before);
    assert_eq!(env.value("db").version_id, "v2");
}

// ---------------------------------------------------------------------------------------------
// ListSecretVersionIds
// ---------------------------------------------------------------------------------------------

#[test]
fn list_secret_version_ids_is_newest_first_and_pages_with_a_default_of_20() {
    let env = Env::new();
    env.new_secret("db", "d1");
    for i in 2..=10 {
        env.clock.advance(60);
        env.put("db", &format!("v{i}"), &format!("d{i}"), &[])
            .unwrap();
    }
    let all = env.listed("db", true);
    let ids: Vec<&str> = all.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["v10", "v9", "v8", "v7", "v6", "v5", "v4", "v3", "v2", "v1"]
    );
    for w in all.windows(2) {
        assert!(w[0].2 > w[1].2, "newest first by CreateTime");
    }
    assert_eq!(all[0].1, [CURRENT]);
    assert_eq!(all[1].1, [PREVIOUS]);
    assert_eq!(all[9].2, START);

    let list = |include: Option<bool>, number: Option<i64>, size: Option<i64>| {
        env.kms.list_secret_version_ids(
            &env.me,
            ListSecretVersionIdsRequest {
                secret_name: "db".into(),
                include_deprecated: include,
                page_number: number,
                page_size: size,
            },
        )
    };
    let default = list(None, None, None).unwrap();
    assert_eq!(default.page_number, 1);
    assert_eq!(default.page_size, 20);
    assert_eq!(
        default.total_count, 2,
        "without IncludeDeprecated, staged only"
    );
    assert_eq!(default.secret_name, "db");
    let with = list(Some(true), None, None).unwrap();
    assert_eq!(with.page_size, 20);
    assert_eq!(with.total_count, 10);
    assert_eq!(with.version_ids.version_id.len(), 10);

    let mut paged = Vec::new();
    for page in 1..=4 {
        let r = list(Some(true), Some(page), Some(3)).unwrap();
        assert_eq!(r.total_count, 10);
        assert_eq!(r.page_number, page);
        assert_eq!(r.page_size, 3);
        assert_eq!(r.version_ids.version_id.len(), if page < 4 { 3 } else { 1 });
        paged.extend(r.version_ids.version_id.into_iter().map(|e| e.version_id));
    }
    assert_eq!(paged, ids);
    assert!(list(Some(true), Some(5), Some(3))
        .unwrap()
        .version_ids
        .version_id
        .is_empty());
    expect_param_err(list(None, Some(0), None), "InvalidParameter", "PageNumber");
    expect_param_err(list(None, None, Some(0)), "InvalidParameter", "PageSize");
    expect_param_err(list(None, None, Some(101)), "InvalidParameter", "PageSize");
    list(None, None, Some(100)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// DescribeSecret, UpdateSecret, ListSecrets
// ---------------------------------------------------------------------------------------------

#[test]
fn describe_secret_and_update_secret() {
    let env = Env::new();
    let key = env.create_key().key_id;
    env.try_new_secret(CreateSecretRequest {
        encryption_key_id: Some(key.clone()),
        description: Some("before".into()),
        tags: tag_list(&[("env", "prod")]),
        ..create_req("db", "x")
    })
    .unwrap();
    let m = env.meta("db");
    assert_eq!(m.secret_name, "db");
    assert_eq!(m.arn, "acs:kms:cn-hangzhou:1234:secret/db");
    assert_eq!(m.encryption_key_id, key);
    assert_eq!(m.description, "before");
    assert_eq!(m.create_time, START);
    assert_eq!(m.update_time, START);
    assert_eq!(m.automatic_rotation, "Disabled");
    assert_eq!(m.rotation_interval, None);
    assert_eq!(m.last_rotation_date, None);
    assert_eq!(m.next_rotation_date, None);
    assert_eq!(m.planned_delete_time, None);
    assert_eq!(m.tags.unwrap().tag, tag_list(&[("env", "prod")]));

    env.clock.advance(100);
    let r = env
        .kms
        .update_secret(
            &env.me,
            UpdateSecretRequest {
                secret_name: "db".into(),
                description: Some("after".into()),
            },
        )
        .unwrap();
    assert_eq!(r.secret_name, "db");
    let m = env.meta("db");
    assert_eq!(m.description, "after");
    assert_eq!(m.create_time, START);
    assert_eq!(m.update_time, START.plus_secs(100));
    expect_param_err(
        env.kms.update_secret(
            &env.me,
            UpdateSecretRequest {
                secret_name: "db".into(),
                description: Some("d".repeat(8193)),
            },
        ),
        "InvalidParameter",
        "Description",
    );
    expect_err(
        env.kms.update_secret(
            &env.me,
            UpdateSecretRequest {
                secret_name: "nope".into(),
                description: Some("x".into()),
            },
        ),
        "Forbidden.ResourceNotFound",
    );
    assert_eq!(env.meta("db").description, "after");
    expect_err(env.try_meta("nope"), "Forbidden.ResourceNotFound");
}

fn filters(pairs: &[(&str, &[&str])]) -> Vec<Filter> {
    pairs
        .iter()
        .map(|(k, vs)| Filter {
            key: (*k).to_owned(),
            values: strs(vs),
        })
        .collect()
}

#[test]
fn list_secrets_pages_in_creation_order_with_a_default_of_10() {
    let env = Env::new();
    for i in 0..12 {
        env.new_secret(&format!("s{i:02}"), "x");
    }
    let first = env.list_secrets(ListSecretsRequest::default()).unwrap();
    assert_eq!(first.page_number, 1);
    assert_eq!(first.page_size, 10);
    assert_eq!(first.total_count, 12);
    let names: Vec<String> = first
        .secret_list
        .secret
        .iter()
        .map(|s| s.secret_name.clone())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("s{i:02}")).collect();
    assert_eq!(names, expected);
    assert!(first.secret_list.secret.iter().all(|s| s.tags.is_none()
        && s.secret_type == "Generic"
        && s.create_time == START
        && s.planned_delete_time.is_none()));
    let second = env.secret_names(ListSecretsRequest {
        page_number: Some(2),
        ..Default::default()
    });
    assert_eq!(second, ["s10", "s11"]);
    let mut paged = Vec::new();
    for page in 1..=3 {
        paged.extend(env.secret_names(ListSecretsRequest {
            page_number: Some(page),
            page_size: Some(5),
            ..Default::default()
        }));
    }
    assert_eq!(paged.len(), 12);
    expect_param_err(
        env.list_secrets(ListSecretsRequest {
            page_size: Some(101),
            ..Default::default()
        }),
        "InvalidParameter",
        "PageSize",
    );
    expect_param_err(
        env.list_secrets(ListSecretsRequest {
            page_number: Some(0),
            ..Default::default()
        }),
        "InvalidParameter",
        "PageNumber",
    );
}

#[test]
fn list_secrets_filters_on_name_description_tag_key_and_tag_value() {
    let env = Env::new();
    for (name, desc, tags) in [
        (
            "app/db",
            "billing database",
            vec![("env", "prod"), ("team", "billing")],
        ),
        ("app/cache", "session cache", vec![("env", "dev")]),
        ("web/api-key", "public api key", vec![("owner", "prod")]),
        ("plain", "", vec![]),
    ] {
        env.try_new_secret(CreateSecretRequest {
            description: Some(desc.into()),
            tags: tag_list(&tags),
            ..create_req(name, "x")
        })
        .unwrap();
    }
    let names = |f: &[(&str, &[&str])]| {
        env.secret_names(ListSecretsRequest {
            filters: filters(f),
            ..Default::default()
        })
    };
    // In creation order, filtered or not.
    assert_eq!(names(&[("SecretName", &["app/"])]), ["app/db", "app/cache"]);
    assert_eq!(
        names(&[("SecretName", &["db", "api"])]),
        ["app/db", "web/api-key"],
        "OR across values"
    );
    assert_eq!(names(&[("Description", &["cache"])]), ["app/cache"]);
    assert_eq!(names(&[("TagKey", &["env"])]), ["app/db", "app/cache"]);
    assert_eq!(
        names(&[("TagKey", &["en"])]),
        Vec::<String>::new(),
        "tag keys match exactly"
    );
    assert_eq!(names(&[("TagValue", &["prod"])]), ["app/db", "web/api-key"]);
    assert_eq!(
        names(&[("TagKey", &["env"]), ("TagValue", &["prod"])]),
        ["app/db"],
        "AND across filters"
    );
    assert_eq!(
        names(&[("SecretName", &["app"]), ("Description", &["nothing"])]),
        Vec::<String>::new()
    );
    let counted = env
        .list_secrets(ListSecretsRequest {
            filters: filters(&[("SecretName", &["app"])]),
            page_size: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(counted.total_count, 2);
    assert_eq!(counted.secret_list.secret.len(), 1);

    let tagged = env
        .list_secrets(ListSecretsRequest {
            filters: filters(&[("SecretName", &["app/db"])]),
            fetch_tags: Some(true),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        tagged.secret_list.secret[0].tags.as_ref().unwrap().tag,
        tag_list(&[("env", "prod"), ("team", "billing")])
    );

    for bad in [("KeyState", &["Enabled"][..]), ("secretname", &["x"][..])] {
        expect_param_err(
            env.list_secrets(ListSecretsRequest {
                filters: filters(&[bad]),
                ..Default::default()
            }),
            "InvalidParameter",
            "Filters",
        );
    }
    expect_param_err(
        env.list_secrets(ListSecretsRequest {
            filters: filters(&[("SecretName", &[])]),
            ..Default::default()
        }),
        "InvalidParameter",
        "Filters",
    );
}

// ---------------------------------------------------------------------------------------------
// DeleteSecret, RestoreSecret, purge
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_secret_schedules_deletion_after_a_recovery_window_of_7_to_30_days() {
    let env = Env::new();
    for days in [None, Some(7), Some(8), Some(30)] {
        let name = format!("s{}", days.unwrap_or(0));
        env.new_secret(&name, "x");
        let r = env.delete_secret(&name, days, None).unwrap();
        assert_eq!(r.secret_name, name);
        let expected = env.now().plus_secs(days.unwrap_or(30) * DAY);
        assert_eq!(r.planned_delete_time, expected);
        assert_eq!(env.meta(&name).planned_delete_time, Some(expected));
    }
    env.new_secret("db", "x");
    for bad in [6, 31, 0, -1, 366] {
        let e = expect_param_err(
            env.delete_secret("db", Some(bad), None),
            "InvalidParameter",
            "RecoveryWindowInDays",
        );
        assert_eq!(e.http_status(), 400);
    }
    for days in [7, 30] {
        expect_param_err(
            env.delete_secret("db", Some(days), Some(true)),
            "InvalidParameter",
            "RecoveryWindowInDays",
        );
    }
    // ForceDeleteWithoutRecovery=false with a window is a normal deletion.
    let before = env.meta("db");
    assert_eq!(before.planned_delete_time, None);
    env.value("db");
    env.delete_secret("db", Some(10), Some(false)).unwrap();
    assert_eq!(
        env.meta("db").planned_delete_time,
        Some(env.now().plus_secs(10 * DAY))
    );
    expect_err(
        env.delete_secret("nope", None, None),
        "Forbidden.ResourceNotFound",
    );
}

#[test]
fn a_secret_in_its_recovery_window_is_unreadable_but_described_and_listed() {
    let env = Env::new();
    env.try_new_secret(CreateSecretRequest {
        tags: tag_list(&[("env", "prod")]),
        ..create_req("db", "x")
    })
    .unwrap();
    env.put("db", "v2", "y", &[]).unwrap();
    env.clock.advance(10);
    let planned = env
        .delete_secret("db", Some(7), None)
        .unwrap()
        .planned_delete_time;
    let before = env.snapshot("db");

    let code = "Rejected.ResourceInDeleteWindow";
    let e = expect_err(env.try_value("db", None, None), code);
    assert_eq!(e.http_status(), 409);
    expect_err(env.try_value("db", Some("v1"), None), code);
    expect_err(env.put("db", "v3", "z", &[]), code);
    expect_err(env.put("db", "v2", "y", &[]), code);
    expect_err(env.stage("db", "Beta", None, Some("v1")), code);
    expect_err(
        env.kms.update_secret(
            &env.me,
            UpdateSecretRequest {
                secret_name: "db".into(),
                description: Some("x".into()),
            },
        ),
        code,
    );
    expect_err(env.tag_secret("db", &[("k", "v")]), code);
    expect_err(env.untag_secret("db", &["env"]), code);
    expect_err(env.delete_secret("db", Some(7), None), code);
    expect_err(
        env.try_new_secret(create_req("db", "new")),
        "Rejected.ResourceExist",
    );
    assert_eq!(env.snapshot("db"), before, "nothing changed in the window");

    let m = env.meta("db");
    assert_eq!(m.planned_delete_time, Some(planned));
    let listed = env
        .list_secrets(ListSecretsRequest::default())
        .unwrap()
        .secret_list
        .secret;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].planned_delete_time, Some(planned));
    assert_eq!(env.ids("db", true), ["v2", "v1"]);
    let wire = serde_json::to_value(&m).unwrap();
    assert_eq!(wire["PlannedDeleteTime"], planned.to_string());
}

#[test]
fn restore_secret_inside_the_window_brings_it_back() {
    let env = Env::new();
    env.new_secret("db", "x");
    env.put("db", "v2", "y", &[]).unwrap();
    let e = expect_err(env.restore("db"), "Rejected.ResourceInUse");
    assert_eq!(e.http_status(), 409);
    env.delete_secret("db", Some(7), None).unwrap();
    env.clock.advance(WEEK - 1);
    let r = env.restore("db").unwrap();
    assert_eq!(r.secret_name, "db");
    assert_eq!(env.meta("db").planned_delete_time, None);
    assert_eq!(env.value("db").secret_data.expose(), "y");
    assert_eq!(env.data_of("db", "v1"), "x");
    env.put("db", "v3", "z", &[]).unwrap();
    expect_err(env.restore("db"), "Rejected.ResourceInUse");
    // Long after the old window, maintenance leaves it alone.
    env.clock.advance_days(60);
    assert!(env.maintain().purged_secrets.is_empty());
    assert_eq!(env.value("db").secret_data.expose(), "z");
    expect_err(env.restore("nope"), "Forbidden.ResourceNotFound");
}

#[test]
fn after_the_window_the_secret_is_gone_before_maintenance_and_purged_by_it() {
    let env = Env::new();
    env.new_secret("db", "x");
    env.put("db", "v2", "y", &[]).unwrap();
    env.new_secret("other", "keep");
    let planned = env
        .delete_secret("db", None, None)
        .unwrap()
        .planned_delete_time;
    assert_eq!(planned, START.plus_secs(30 * DAY));

    env.clock.set(planned.plus_secs(-1));
    expect_err(
        env.try_value("db", None, None),
        "Rejected.ResourceInDeleteWindow",
    );
    assert!(env.maintain().purged_secrets.is_empty());
    env.meta("db");

    env.clock.set(planned);
    let gone = "Forbidden.ResourceNotFound";
    expect_err(env.try_value("db", None, None), gone);
    expect_err(env.try_meta("db"), gone);
    expect_err(env.restore("db"), gone);
    expect_err(env.put("db", "v3", "z", &[]), gone);
    expect_err(env.delete_secret("db", None, Some(true)), gone);
    expect_err(env.tag_secret("db", &[("k", "v")]), gone);
    expect_err(
        env.kms.list_secret_version_ids(
            &env.me,
            ListSecretVersionIdsRequest {
                secret_name: "db".into(),
                ..Default::default()
            },
        ),
        gone,
    );
    assert_eq!(
        env.secret_names(ListSecretsRequest::default()),
        ["other"],
        "a secret past its window is not listed"
    );
    // Its records are still in storage until maintenance.
    assert_eq!(env.stored_keys(b"w/db/").len(), 2);

    let report = env.maintain();
    assert_eq!(report.purged_secrets, ["db"]);
    assert!(env.stored_keys(b"s/db").is_empty());
    assert!(env.stored_keys(b"w/db/").is_empty());
    assert!(env.maintain().purged_secrets.is_empty(), "purged once");
    assert_eq!(env.value("other").secret_data.expose(), "keep");

    // The name is free again: a new secret, with nothing of the old one.
    env.new_secret("db", "fresh");
    assert_eq!(env.value("db").secret_data.expose(), "fresh");
    assert_eq!(env.ids("db", true), ["v1"]);
    assert_eq!(env.meta("db").planned_delete_time, None);
}

#[test]
fn a_name_past_its_window_can_be_reused_before_maintenance_even_with_the_same_version_ids() {
    let env = Env::new();
    env.try_new_secret(CreateSecretRequest {
        tags: tag_list(&[("old", "yes")]),
        description: Some("old".into()),
        ..create_req("db", "old-1")
    })
    .unwrap();
    env.put("db", "v2", "old-2", &[]).unwrap();
    env.delete_secret("db", Some(7), None).unwrap();
    env.clock.advance(WEEK);

    env.new_secret("db", "new-1");
    assert_eq!(env.value("db").secret_data.expose(), "new-1");
    assert_eq!(env.ids("db", true), ["v1"]);
    let m = env.meta("db");
    assert_eq!(m.description, "");
    assert_eq!(m.tags.unwrap().tag, vec![]);
    assert_eq!(m.planned_delete_time, None);
    // The old v2 is gone with its secret: v2 is a fresh id that takes any data.
    env.put("db", "v2", "new-2", &[]).unwrap();
    assert_eq!(env.data_of("db", "v2"), "new-2");
    // Maintenance has nothing to purge and leaves the new secret alone.
    assert!(env.maintain().purged_secrets.is_empty());
    assert_eq!(env.value("db").secret_data.expose(), "new-2");
    assert_eq!(env.stored_keys(b"w/db/").len(), 2);
}

#[test]
fn force_delete_without_recovery_deletes_at_once() {
    let env = Env::new();
    env.new_secret("db", "x");
    env.put("db", "v2", "y", &[]).unwrap();
    let r = env.delete_secret("db", None, Some(true)).unwrap();
    assert_eq!(r.secret_name, "db");
    assert_eq!(r.planned_delete_time, START);
    expect_err(
        env.try_value("db", None, None),
        "Forbidden.ResourceNotFound",
    );
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
    expect_err(env.restore("db"), "Forbidden.ResourceNotFound");
    assert!(env.stored_keys(b"s/db").is_empty());
    assert!(env.stored_keys(b"w/db/").is_empty());
    assert!(env.maintain().purged_secrets.is_empty());
    env.new_secret("db", "again");
    assert_eq!(env.value("db").secret_data.expose(), "again");

    // A secret pending deletion can be force-deleted too.
    env.delete_secret("db", Some(30), None).unwrap();
    env.delete_secret("db", None, Some(true)).unwrap();
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
    env.new_secret("db", "third");
    assert_eq!(env.value("db").secret_data.expose(), "third");
}

// ---------------------------------------------------------------------------------------------
// The secret's CMK
// ---------------------------------------------------------------------------------------------

fn secret_under(env: &Env, name: &str, key: &str, data: &str) {
    env.try_new_secret(CreateSecretRequest {
        encryption_key_id: Some(key.to_owned()),
        ..create_req(name, data)
    })
    .unwrap();
}

#[test]
fn a_secret_stays_readable_across_rotations_of_its_cmk() {
    let env = Env::new();
    let key = env.create_key().key_id;
    secret_under(&env, "db", &key, "one");
    env.create_key_version(&key).unwrap();
    env.put("db", "v2", "two", &[]).unwrap();
    assert_eq!(env.data_of("db", "v1"), "one");
    assert_eq!(env.data_of("db", "v2"), "two");

    env.set_rotation(&key, true, Some("7d")).unwrap();
    env.clock.advance(WEEK);
    let report = env.maintain();
    assert_eq!(report.rotated_keys, std::slice::from_ref(&key));
    assert_eq!(env.versions(&key).len(), 3);
    env.put("db", "v3", "three", &[]).unwrap();
    env.create_key_version(&key).unwrap();
    env.put("db", "v4", "four", &[]).unwrap();
    for (v, d) in [
        ("v1", "one"),
        ("v2", "two"),
        ("v3", "three"),
        ("v4", "four"),
    ] {
        assert_eq!(env.data_of("db", v), d);
    }
    // And after a restart.
    let reopened = env.reopen();
    let v = reopened
        .get_secret_value(
            &env.me,
            GetSecretValueRequest {
                secret_name: "db".into(),
                version_id: Some("v1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v.secret_data.expose(), "one");
}

#[test]
fn a_disabled_cmk_makes_its_secrets_unreadable_until_it_is_enabled() {
    let env = Env::new();
    let key = env.create_key().key_id;
    secret_under(&env, "db", &key, "one");
    env.put("db", "v2", "two", &[]).unwrap();
    env.disable(&key).unwrap();
    let before = env.snapshot("db");

    let e = expect_err(env.try_value("db", None, None), "Rejected.Disabled");
    assert_eq!(e.http_status(), 409);
    expect_err(env.try_value("db", Some("v1"), None), "Rejected.Disabled");
    expect_err(env.put("db", "v3", "three", &[]), "Rejected.Disabled");
    assert_eq!(
        env.snapshot("db"),
        before,
        "the refused put left nothing behind"
    );
    assert!(!env
        .stored_keys(b"w/db/")
        .iter()
        .any(|k| k.ends_with(b"/v3")));
    // Metadata is still there.
    assert_eq!(env.meta("db").encryption_key_id, key);
    assert_eq!(env.ids("db", false), ["v2", "v1"]);
    // Other secrets are not affected.
    env.new_secret("other", "fine");
    assert_eq!(env.value("other").secret_data.expose(), "fine");

    env.enable(&key).unwrap();
    assert_eq!(env.value("db").secret_data.expose(), "two");
    assert_eq!(env.data_of("db", "v1"), "one");
    env.put("db", "v3", "three", &[]).unwrap();
    assert_eq!(env.value("db").secret_data.expose(), "three");
}

#[test]
fn a_cmk_pending_deletion_makes_its_secrets_unreadable() {
    let env = Env::new();
    let key = env.create_key().key_id;
    secret_under(&env, "db", &key, "one");
    env.schedule_deletion(&key, 7).unwrap();
    expect_err(env.try_value("db", None, None), "Rejected.PendingDeletion");
    expect_err(env.put("db", "v2", "two", &[]), "Rejected.PendingDeletion");
    env.cancel_deletion(&key).unwrap();
    assert_eq!(env.value("db").secret_data.expose(), "one");
    env.put("db", "v2", "two", &[]).unwrap();
}

#[test]
fn a_purged_cmk_leaves_its_secrets_unreadable_for_good() {
    let env = Env::new();
    let key = env.create_key().key_id;
    secret_under(&env, "db", &key, "one");
    env.schedule_deletion(&key, 7).unwrap();
    env.clock.advance(WEEK);
    // Past the DeleteDate, before maintenance.
    expect_err(env.try_value("db", None, None), "Forbidden.KeyNotFound");
    expect_err(env.put("db", "v2", "two", &[]), "Forbidden.KeyNotFound");
    let report = env.maintain();
    assert_eq!(report.purged_keys, [key]);
    expect_err(env.try_value("db", None, None), "Forbidden.KeyNotFound");
    expect_err(env.put("db", "v2", "two", &[]), "Forbidden.KeyNotFound");
    // The secret's metadata is still there, and it can be deleted.
    assert_eq!(env.ids("db", true), ["v1"]);
    env.delete_secret("db", None, Some(true)).unwrap();
}

#[test]
fn values_and_metadata_are_not_in_storage_in_plain() {
    let env = Env::new();
    let text = "Pa55w0rd-in-the-clear-7f3a9c";
    let name = "payments/stripe-live-key-b41d";
    let description = "descr-unique-5e1b0d";
    let binary = "c2VjcmV0LWJpbmFyeS1ieXRlcy04YzJl"; // "secret-binary-bytes-8c2e"
    env.try_new_secret(CreateSecretRequest {
        description: Some(description.into()),
        tags: tag_list(&[("tagkey-9a7c", "tagvalue-3d2f")]),
        ..create_req(name, text)
    })
    .unwrap();
    env.put(name, "v2", &format!("{text}-2"), &["Stage-unique-c0de"])
        .unwrap();
    env.try_new_secret(CreateSecretRequest {
        secret_data_type: Some("binary".into()),
        ..create_req("bin", binary)
    })
    .unwrap();
    env.kms
        .set_secret_policy(
            &env.me,
            SetSecretPolicyRequest {
                secret_name: name.into(),
                policy_name: "default".into(),
                policy: r#"{"Version":"1","Statement":[],"Marker":"policy-marker-77aa"}"#.into(),
                bypass_policy_lockout_safety_check: None,
            },
        )
        .unwrap();
    assert_eq!(env.value(name).secret_data.expose(), text);

    let values = env.stored_values();
    assert!(values.len() >= 4);
    for needle in [
        text.as_bytes(),
        name.as_bytes(),
        b"stripe-live-key",
        description.as_bytes(),
        b"tagkey-9a7c",
        b"tagvalue-3d2f",
        b"Stage-unique-c0de",
        b"policy-marker-77aa",
        binary.as_bytes(),
        b"secret-binary-bytes-8c2e",
    ] {
        for v in &values {
            assert!(
                !contains(v, needle),
                "{:?} is stored in plain",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation handlers: RotateSecret, UpdateSecretRotationPolicy, automatic rotation
// ---------------------------------------------------------------------------------------------

#[test]
fn without_a_handler_rotation_and_other_secret_types_are_unsupported() {
    let env = Env::new();
    env.new_secret("db", "x");
    let before = env.snapshot("db");
    let e = expect_err(
        env.rotate_secret("db", "v2"),
        "Rejected.UnsupportedOperation",
    );
    assert_eq!(e.http_status(), 400);
    expect_err(
        env.secret_rotation("db", Some(true), Some("7d")),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        env.secret_rotation("db", Some(false), None),
        "Rejected.UnsupportedOperation",
    );
    assert_eq!(env.snapshot("db"), before);
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("7d".into()),
            ..create_req("auto", "x")
        }),
        "Rejected.UnsupportedOperation",
    );
    for t in ["Rds", "RAMCredentials", "ECS", "generic"] {
        expect_err(
            env.try_new_secret(CreateSecretRequest {
                secret_type: Some(t.into()),
                ..create_req("typed", "x")
            }),
            "Rejected.UnsupportedOperation",
        );
    }
    expect_err(env.try_meta("auto"), "Forbidden.ResourceNotFound");
    expect_err(env.try_meta("typed"), "Forbidden.ResourceNotFound");
    // Explicitly Generic is fine, and EnableAutomaticRotation=false needs no handler.
    env.try_new_secret(CreateSecretRequest {
        secret_type: Some("Generic".into()),
        enable_automatic_rotation: Some(false),
        ..create_req("generic", "x")
    })
    .unwrap();
    assert_eq!(env.meta("generic").automatic_rotation, "Disabled");
}

#[test]
fn rotate_secret_stores_the_handlers_value_as_the_new_current_version() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    env.new_secret("db", "pw");
    env.clock.advance(3600);
    let r = env.rotate_secret("db", "r1").unwrap();
    assert_eq!(r.arn, "acs:kms:cn-hangzhou:1234:secret/db");
    assert_eq!(r.version_id, "r1");
    assert_eq!(generic.calls(), [("db".to_owned(), "pw".to_owned())]);
    let v = env.value("db");
    assert_eq!(v.version_id, "r1");
    assert_eq!(v.secret_data.expose(), "pw-g1");
    assert_eq!(v.secret_data_type, "text");
    assert_eq!(v.create_time, START.plus_secs(3600));
    assert_eq!(env.stage_map("db")[PREVIOUS], "v1");
    let m = env.meta("db");
    assert_eq!(m.last_rotation_date, Some(START.plus_secs(3600)));
    assert_eq!(m.next_rotation_date, None, "no automatic rotation");

    // The next rotation starts from the new current value.
    env.rotate_secret("db", "r2").unwrap();
    assert_eq!(env.value("db").secret_data.expose(), "pw-g1-g2");
    // An existing VersionId is refused and changes nothing.
    let before = env.snapshot("db");
    expect_err(env.rotate_secret("db", "r1"), "Rejected.ResourceExist");
    expect_param_err(env.rotate_secret("db", ""), "MissingParameter", "VersionId");
    assert_eq!(env.snapshot("db"), before);
    expect_err(env.rotate_secret("nope", "x"), "Forbidden.ResourceNotFound");
    env.delete_secret("db", Some(7), None).unwrap();
    expect_err(
        env.rotate_secret("db", "r3"),
        "Rejected.ResourceInDeleteWindow",
    );
    expect_err(
        env.secret_rotation("db", Some(true), Some("7d")),
        "Rejected.ResourceInDeleteWindow",
    );
}

#[test]
fn a_custom_secret_type_is_accepted_with_its_handler_and_rotates_through_it() {
    let generic = Rotator::new("g");
    let rds = Rotator::new("rds");
    let env = env_with(&[("Generic", &generic), ("Rds", &rds)]);
    let created = env
        .try_new_secret(CreateSecretRequest {
            secret_type: Some("Rds".into()),
            ..create_req("mysql", "root")
        })
        .unwrap();
    assert_eq!(created.secret_type, "Rds");
    assert_eq!(env.meta("mysql").secret_type, "Rds");
    assert_eq!(env.value("mysql").secret_type, "Rds");
    expect_err(
        env.try_new_secret(CreateSecretRequest {
            secret_type: Some("Redis".into()),
            ..create_req("redis", "x")
        }),
        "Rejected.UnsupportedOperation",
    );
    env.rotate_secret("mysql", "r1").unwrap();
    assert_eq!(env.value("mysql").secret_data.expose(), "root-rds1");
    assert!(generic.calls().is_empty());
    assert_eq!(rds.calls().len(), 1);
    let listed = env
        .list_secrets(ListSecretsRequest::default())
        .unwrap()
        .secret_list
        .secret;
    assert_eq!(listed[0].secret_type, "Rds");
}

#[test]
fn a_custom_type_without_generic_handler_leaves_generic_secrets_unrotatable() {
    let rds = Rotator::new("rds");
    let env = env_with(&[("Rds", &rds)]);
    env.new_secret("plain", "x");
    expect_err(
        env.rotate_secret("plain", "r1"),
        "Rejected.UnsupportedOperation",
    );
    env.try_new_secret(CreateSecretRequest {
        secret_type: Some("Rds".into()),
        enable_automatic_rotation: Some(true),
        rotation_interval: Some("7d".into()),
        ..create_req("mysql", "root")
    })
    .unwrap();
    env.clock.advance(WEEK);
    let report = env.maintain();
    assert_eq!(report.rotated_secrets, ["mysql"]);
    assert_eq!(env.value("mysql").secret_data.expose(), "root-rds1");
    assert_eq!(env.ids("plain", true), ["v1"]);
}

#[test]
fn update_secret_rotation_policy_takes_intervals_of_7_to_365_days() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    env.new_secret("db", "x");
    for bad in ["6d", "366d", "604799s", "31536001s", "7", "abc", "-7d"] {
        expect_param_err(
            env.secret_rotation("db", Some(true), Some(bad)),
            "InvalidParameter",
            "RotationInterval",
        );
    }
    expect_param_err(
        env.secret_rotation("db", Some(true), None),
        "MissingParameter",
        "RotationInterval",
    );
    expect_param_err(
        env.secret_rotation("db", None, Some("7d")),
        "MissingParameter",
        "EnableAutomaticRotation",
    );
    assert_eq!(env.meta("db").automatic_rotation, "Disabled");

    env.clock.advance(DAY);
    let r = env.secret_rotation("db", Some(true), Some("7d")).unwrap();
    assert_eq!(r.secret_name, "db");
    let m = env.meta("db");
    assert_eq!(m.automatic_rotation, "Enabled");
    assert_eq!(m.rotation_interval.as_deref(), Some("604800s"));
    assert_eq!(m.next_rotation_date, Some(START.plus_secs(WEEK)));
    for (form, secs) in [("168h", WEEK), ("365d", 365 * DAY), ("2592000s", 30 * DAY)] {
        env.secret_rotation("db", Some(true), Some(form)).unwrap();
        let m = env.meta("db");
        assert_eq!(m.rotation_interval, Some(format!("{secs}s")), "{form}");
        assert_eq!(m.next_rotation_date, Some(START.plus_secs(secs)), "{form}");
    }
    // Re-enabling without an interval keeps the current one.
    env.secret_rotation("db", Some(true), None).unwrap();
    assert_eq!(
        env.meta("db").rotation_interval.as_deref(),
        Some("2592000s")
    );
    env.secret_rotation("db", Some(false), None).unwrap();
    let m = env.meta("db");
    assert_eq!(m.automatic_rotation, "Disabled");
    assert_eq!(m.rotation_interval, None);
    assert_eq!(m.next_rotation_date, None);
    // Nothing rotates while it is off.
    env.clock.advance_days(400);
    assert!(env.maintain().rotated_secrets.is_empty());
    assert_eq!(env.ids("db", true), ["v1"]);
    expect_err(
        env.secret_rotation("nope", Some(true), Some("7d")),
        "Forbidden.ResourceNotFound",
    );
}

#[test]
fn create_secret_can_turn_on_automatic_rotation() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    let r = env
        .try_new_secret(CreateSecretRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("30d".into()),
            ..create_req("db", "x")
        })
        .unwrap();
    assert_eq!(r.automatic_rotation, "Enabled");
    assert_eq!(r.rotation_interval.as_deref(), Some("2592000s"));
    assert_eq!(r.next_rotation_date, Some(START.plus_secs(30 * DAY)));
    let m = env.meta("db");
    assert_eq!(m.automatic_rotation, "Enabled");
    assert_eq!(m.next_rotation_date, Some(START.plus_secs(30 * DAY)));
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            enable_automatic_rotation: Some(true),
            ..create_req("no-interval", "x")
        }),
        "MissingParameter",
        "RotationInterval",
    );
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("6d".into()),
            ..create_req("short", "x")
        }),
        "InvalidParameter",
        "RotationInterval",
    );
    expect_err(env.try_meta("no-interval"), "Forbidden.ResourceNotFound");
    expect_err(env.try_meta("short"), "Forbidden.ResourceNotFound");
}

#[test]
fn maintenance_rotates_a_secret_when_its_next_rotation_date_passes_and_not_before() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    env.new_secret("db", "pw");
    env.new_secret("still", "s");
    env.secret_rotation("db", Some(true), Some("7d")).unwrap();
    let due = env.meta("db").next_rotation_date.unwrap();
    assert_eq!(due, START.plus_secs(WEEK));

    env.clock.set(due.plus_secs(-1));
    let report = env.maintain();
    assert!(report.rotated_secrets.is_empty());
    assert!(report.failed_secret_rotations.is_empty());
    assert!(generic.calls().is_empty());
    assert_eq!(env.ids("db", true), ["v1"]);

    env.clock.set(due);
    let report = env.maintain();
    assert_eq!(report.rotated_secrets, ["db"]);
    let v = env.value("db");
    assert_eq!(v.secret_data.expose(), "pw-g1");
    assert_ne!(v.version_id, "v1");
    assert_eq!(v.create_time, due);
    assert_eq!(env.stage_map("db")[PREVIOUS], "v1");
    let m = env.meta("db");
    assert_eq!(m.last_rotation_date, Some(due));
    assert_eq!(m.next_rotation_date, Some(due.plus_secs(WEEK)));
    assert_eq!(
        env.ids("still", true),
        ["v1"],
        "secrets without rotation stay"
    );

    // Once per interval.
    env.clock.advance(WEEK - 1);
    assert!(env.maintain().rotated_secrets.is_empty());
    env.clock.advance(1);
    assert_eq!(env.maintain().rotated_secrets, ["db"]);
    assert_eq!(env.value("db").secret_data.expose(), "pw-g1-g2");
    assert_eq!(env.ids("db", true).len(), 3);

    // A secret pending deletion does not rotate.
    env.delete_secret("db", Some(7), None).unwrap();
    env.clock.advance(WEEK - 1);
    let report = env.maintain();
    assert!(report.rotated_secrets.is_empty());
    assert!(report.failed_secret_rotations.is_empty());
    assert_eq!(generic.calls().len(), 2);
}

#[test]
fn a_failing_handler_leaves_the_secret_unchanged() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    env.new_secret("db", "pw");
    env.secret_rotation("db", Some(true), Some("7d")).unwrap();
    generic.set_failing(true);
    let before = env.snapshot("db");

    let e = expect_param_err(
        env.rotate_secret("db", "r1"),
        "InvalidParameter",
        "Rotation",
    );
    assert!(e.to_string().contains("refused"));
    assert_eq!(env.snapshot("db"), before);
    assert!(!env
        .stored_keys(b"w/db/")
        .iter()
        .any(|k| k.ends_with(b"/r1")));

    env.clock.advance(WEEK);
    let report = env.maintain();
    assert!(report.rotated_secrets.is_empty());
    assert_eq!(
        report.failed_secret_rotations,
        [("db".to_owned(), "InvalidParameter")]
    );
    assert_eq!(
        env.snapshot("db"),
        before,
        "a failed rotation changes nothing"
    );
    assert_eq!(env.value("db").secret_data.expose(), "pw");
    assert_eq!(env.stored_keys(b"w/db/").len(), 1);

    // Retried on the next pass once the handler works again.
    generic.set_failing(false);
    let report = env.maintain();
    assert_eq!(report.rotated_secrets, ["db"]);
    assert!(report.failed_secret_rotations.is_empty());
    assert_eq!(env.value("db").secret_data.expose(), "pw-g3");
}

#[test]
fn a_handler_value_that_breaks_the_data_rules_is_not_stored() {
    #[derive(Clone)]
    struct Oversized;
    impl SecretRotationHandler for Oversized {
        fn rotate(&self, _: &str, _: &SecretData) -> Result<SecretData, KmsError> {
            Ok(SecretData::new("x".repeat(30721)))
        }
    }
    let mut env = Env::new();
    env.kms = Kms::builder()
        .shared_storage(env.storage.clone())
        .clock(env.clock.clone())
        .root_key(env.root_key.clone())
        .account_id(ACCOUNT)
        .region(REGION)
        .secret_rotation_handler("Generic", Oversized)
        .build()
        .unwrap();
    env.new_secret("db", "pw");
    let before = env.snapshot("db");
    expect_param_err(
        env.rotate_secret("db", "r1"),
        "InvalidParameter",
        "SecretData",
    );
    assert_eq!(env.snapshot("db"), before);
}

#[test]
fn automatic_rotation_of_a_secret_whose_cmk_is_disabled_fails_and_is_retried() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    let key = env.create_key().key_id;
    secret_under(&env, "db", &key, "pw");
    env.secret_rotation("db", Some(true), Some("7d")).unwrap();
    env.disable(&key).unwrap();
    expect_err(env.rotate_secret("db", "r1"), "Rejected.Disabled");
    env.clock.advance(WEEK);
    let report = env.maintain();
    assert_eq!(
        report.failed_secret_rotations,
        [("db".to_owned(), "Rejected.Disabled")]
    );
    assert_eq!(env.ids("db", true), ["v1"]);
    env.enable(&key).unwrap();
    assert_eq!(env.maintain().rotated_secrets, ["db"]);
    assert_eq!(env.value("db").secret_data.expose(), "pw-g1");
}

// ---------------------------------------------------------------------------------------------
// GetRandomPassword
// ---------------------------------------------------------------------------------------------

fn classes_of(p: &str) -> [bool; 4] {
    [
        p.chars().any(|c| LOWER.contains(c)),
        p.chars().any(|c| UPPER.contains(c)),
        p.chars().any(|c| DIGITS.contains(c)),
        p.chars().any(|c| PUNCTUATION.contains(c)),
    ]
}

#[test]
fn random_password_length_is_8_to_128_with_a_default_of_32() {
    let env = Env::new();
    let all: String = [LOWER, UPPER, DIGITS, PUNCTUATION].concat();
    let p = env.password(GetRandomPasswordRequest::default()).unwrap();
    assert_eq!(p.len(), 32);
    assert!(p.chars().all(|c| all.contains(c)), "{p}");
    for len in [8, 9, 64, 127, 128] {
        let p = env
            .password(GetRandomPasswordRequest {
                password_length: Some(len),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.len() as i64, len);
    }
    for bad in [7, 129, 0, -1, 1000] {
        let e = expect_param_err(
            env.password(GetRandomPasswordRequest {
                password_length: Some(bad),
                ..Default::default()
            }),
            "InvalidParameter",
            "PasswordLength",
        );
        assert_eq!(e.http_status(), 400);
    }
    // Two passwords are not the same.
    let a = env.password(GetRandomPasswordRequest::default()).unwrap();
    let b = env.password(GetRandomPasswordRequest::default()).unwrap();
    assert_ne!(a, b);
}

#[test]
fn random_password_exclusions_are_honoured() {
    let env = Env::new();
    let gen = |req: GetRandomPasswordRequest| {
        (0..50)
            .map(|_| {
                env.password(GetRandomPasswordRequest {
                    password_length: Some(64),
                    ..req.clone()
                })
                .unwrap()
            })
            .collect::<String>()
    };
    let no_lower = gen(GetRandomPasswordRequest {
        exclude_lowercase: Some(true),
        ..Default::default()
    });
    assert_eq!(classes_of(&no_lower), [false, true, true, true]);
    let no_upper = gen(GetRandomPasswordRequest {
        exclude_uppercase: Some(true),
        ..Default::default()
    });
    assert_eq!(classes_of(&no_upper), [true, false, true, true]);
    let no_digits = gen(GetRandomPasswordRequest {
        exclude_numbers: Some(true),
        ..Default::default()
    });
    assert_eq!(classes_of(&no_digits), [true, true, false, true]);
    let no_punct = gen(GetRandomPasswordRequest {
        exclude_punctuation: Some(true),
        ..Default::default()
    });
    assert_eq!(classes_of(&no_punct), [true, true, true, false]);
    assert!(no_punct.chars().all(|c| c.is_ascii_alphanumeric()));
    let digits_only = gen(GetRandomPasswordRequest {
        exclude_lowercase: Some(true),
        exclude_uppercase: Some(true),
        exclude_punctuation: Some(true),
        exclude_characters: Some("13579".into()),
        ..Default::default()
    });
    assert!(
        digits_only.chars().all(|c| "02468".contains(c)),
        "{digits_only}"
    );
    for c in "02468".chars() {
        assert!(digits_only.contains(c));
    }
    let excluded = "aeiouAEIOU0\\\"'`";
    let chars = gen(GetRandomPasswordRequest {
        exclude_characters: Some(excluded.into()),
        ..Default::default()
    });
    assert!(!chars.chars().any(|c| excluded.contains(c)));
    assert_eq!(classes_of(&chars), [true; 4]);

    for req in [
        GetRandomPasswordRequest {
            exclude_lowercase: Some(true),
            exclude_uppercase: Some(true),
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            ..Default::default()
        },
        GetRandomPasswordRequest {
            exclude_lowercase: Some(true),
            exclude_uppercase: Some(true),
            exclude_punctuation: Some(true),
            exclude_characters: Some(DIGITS.into()),
            ..Default::default()
        },
        GetRandomPasswordRequest {
            exclude_characters: Some([LOWER, UPPER, DIGITS, PUNCTUATION].concat()),
            ..Default::default()
        },
    ] {
        expect_err(env.password(req), "InvalidParameter");
    }
}

#[test]
fn require_each_included_type_puts_every_class_in_every_password() {
    let env = Env::new();
    let mut first_classes = BTreeSet::new();
    for _ in 0..400 {
        let p = env
            .password(GetRandomPasswordRequest {
                password_length: Some(8),
                require_each_included_type: Some(true),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(classes_of(&p), [true; 4], "{p}");
        let first = &p[..1];
        first_classes.insert(classes_of(first));
    }
    assert_eq!(
        first_classes.len(),
        4,
        "the required characters are shuffled, not always first"
    );
    // The default is to require each type.
    for _ in 0..200 {
        let p = env
            .password(GetRandomPasswordRequest {
                password_length: Some(8),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(classes_of(&p), [true; 4], "{p}");
    }
    // Only the included classes are required.
    for _ in 0..200 {
        let p = env
            .password(GetRandomPasswordRequest {
                password_length: Some(8),
                exclude_numbers: Some(true),
                exclude_characters: Some(LOWER.into()),
                require_each_included_type: Some(true),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(classes_of(&p), [false, true, false, true], "{p}");
    }
    // Without the requirement, short passwords of a big class often miss a small one.
    let missing = (0..200)
        .filter(|_| {
            let p = env
                .password(GetRandomPasswordRequest {
                    password_length: Some(8),
                    require_each_included_type: Some(false),
                    ..Default::default()
                })
                .unwrap();
            classes_of(&p) != [true; 4]
        })
        .count();
    assert!(missing > 0);
}

#[test]
fn random_passwords_are_uniform_over_the_allowed_characters() {
    let env = Env::new();
    let excluded = "abcXYZ019~";
    let allowed: Vec<char> = [LOWER, UPPER, DIGITS, PUNCTUATION]
        .concat()
        .chars()
        .filter(|c| !excluded.contains(*c))
        .collect();
    let mut counts: BTreeMap<char, u32> = BTreeMap::new();
    let passwords = 1000;
    for _ in 0..passwords {
        let p = env
            .password(GetRandomPasswordRequest {
                password_length: Some(128),
                exclude_characters: Some(excluded.into()),
                require_each_included_type: Some(false),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.len(), 128);
        for c in p.chars() {
            *counts.entry(c).or_default() += 1;
        }
    }
    for c in excluded.chars() {
        assert!(!counts.contains_key(&c), "excluded {c:?} appeared");
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<char>>(),
        {
            let mut a = allowed.clone();
            a.sort_unstable();
            a
        },
        "every allowed character appears, and nothing else"
    );
    // Expected ~1506 per character (stddev ~39): a 25% band is > 9 standard deviations wide,
    // yet a modulo bias or a lopsided class choice (e.g. picking a class first, then a
    // character: digits would be ~4x as frequent as letters) falls far outside it.
    let expected = f64::from(passwords * 128) / allowed.len() as f64;
    for (c, n) in &counts {
        let ratio = f64::from(*n) / expected;
        assert!(
            (0.75..1.25).contains(&ratio),
            "{c:?} appeared {n} times, expected about {expected:.0}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------------------------

#[test]
fn tag_resource_and_untag_resource_work_on_secrets() {
    let env = Env::new();
    env.new_secret("db", "x");
    env.clock.advance(5);
    env.tag_secret("db", &[("env", "prod"), ("team", "a")])
        .unwrap();
    assert_eq!(env.meta("db").update_time, START.plus_secs(5));
    env.tag_secret("db", &[("team", "b")]).unwrap();
    assert_eq!(
        env.secret_tags("db"),
        [
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "b".to_owned())
        ]
    );
    env.untag_secret("db", &["team", "absent"]).unwrap();
    assert_eq!(
        env.secret_tags("db"),
        [("env".to_owned(), "prod".to_owned())]
    );
    assert_eq!(
        env.secret_names(ListSecretsRequest {
            filters: filters(&[("TagKey", &["env"])]),
            ..Default::default()
        }),
        ["db"]
    );

    // 20 tags at most.
    let names: Vec<String> = (0..19).map(|i| format!("k{i:02}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|k| (k.as_str(), "v")).collect();
    env.tag_secret("db", &pairs).unwrap();
    assert_eq!(env.secret_tags("db").len(), 20);
    env.tag_secret("db", &[("env", "dev")]).unwrap();
    let e = expect_err(
        env.tag_secret("db", &[("one-more", "v")]),
        "Rejected.LimitExceeded",
    );
    assert_eq!(e.http_status(), 400);
    assert_eq!(env.secret_tags("db").len(), 20);

    // Tag rules.
    env.untag_secret("db", &names.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    let long = "k".repeat(129);
    for bad in [
        ("aliyun-x", "v"),
        ("acs:x", "v"),
        ("k#", "v"),
        ("", "v"),
        ("k", ""),
        (long.as_str(), "v"),
        ("k", long.as_str()),
    ] {
        expect_err(env.tag_secret("db", &[bad]), "InvalidParameter");
    }
    env.tag_secret("db", &[("a/b\\c_d-e.f+g=h:i@j", "v:1@2")])
        .unwrap();
    assert_eq!(env.secret_tags("db").len(), 2);
    expect_param_err(env.tag_secret("db", &[]), "MissingParameter", "Tags");
    expect_param_err(env.untag_secret("db", &[]), "MissingParameter", "TagKeys");
    expect_err(
        env.tag_secret("nope", &[("k", "v")]),
        "Forbidden.ResourceNotFound",
    );
    expect_err(
        env.untag_secret("nope", &["k"]),
        "Forbidden.ResourceNotFound",
    );
    // A key and a secret at once is ambiguous.
    let key = env.create_key().key_id;
    expect_err(
        env.kms.tag_resource(
            &env.me,
            TagResourceRequest {
                key_id: key.clone(),
                secret_name: "db".into(),
                tags: tag_list(&[("k", "v")]),
                ..Default::default()
            },
        ),
        "InvalidParameter",
    );
    // Tagging a secret does not touch any key.
    assert!(env.tags(&key).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Authorization and secret policies
// ---------------------------------------------------------------------------------------------

#[test]
fn same_account_only_refuses_another_accounts_caller() {
    let env = Env::new();
    env.new_secret("db", "x");
    let other = Caller::account_root("5678");
    let k = &env.kms;
    let name = || "db".to_owned();
    let denied = "Forbidden.NoPermission";
    let results: Vec<(&str, &'static str)> = vec![
        (
            "CreateSecret",
            outcome(k.create_secret(&other, create_req("theirs", "x"))),
        ),
        (
            "GetSecretValue",
            outcome(k.get_secret_value(
                &other,
                GetSecretValueRequest {
                    secret_name: name(),
                    ..Default::default()
                },
            )),
        ),
        (
            "PutSecretValue",
            outcome(k.put_secret_value(
                &other,
                PutSecretValueRequest {
                    secret_name: name(),
                    version_id: "v2".into(),
                    secret_data: "stolen".into(),
                    ..Default::default()
                },
            )),
        ),
        (
            "UpdateSecretVersionStage",
            outcome(k.update_secret_version_stage(
                &other,
                UpdateSecretVersionStageRequest {
                    secret_name: name(),
                    version_stage: "Beta".into(),
                    move_to_version: Some("v1".into()),
                    ..Default::default()
                },
            )),
        ),
        (
            "ListSecretVersionIds",
            outcome(k.list_secret_version_ids(
                &other,
                ListSecretVersionIdsRequest {
                    secret_name: name(),
                    ..Default::default()
                },
            )),
        ),
        (
            "DescribeSecret",
            outcome(k.describe_secret(
                &other,
                DescribeSecretRequest {
                    secret_name: name(),
                    ..Default::default()
                },
            )),
        ),
        (
            "UpdateSecret",
            outcome(k.update_secret(
                &other,
                UpdateSecretRequest {
                    secret_name: name(),
                    description: Some("x".into()),
                },
            )),
        ),
        (
            "ListSecrets",
            outcome(k.list_secrets(&other, ListSecretsRequest::default())),
        ),
        (
            "DeleteSecret",
            outcome(k.delete_secret(
                &other,
                DeleteSecretRequest {
                    secret_name: name(),
                    force_delete_without_recovery: Some(true),
                    ..Default::default()
                },
            )),
        ),
        (
            "RotateSecret",
            outcome(k.rotate_secret(
                &other,
                RotateSecretRequest {
                    secret_name: name(),
                    version_id: "r1".into(),
                },
            )),
        ),
        (
            "GetRandomPassword",
            outcome(k.get_random_password(&other, GetRandomPasswordRequest::default())),
        ),
        (
            "TagResource",
            outcome(k.tag_resource(
                &other,
                TagResourceRequest {
                    secret_name: name(),
                    tags: tag_list(&[("k", "v")]),
                    ..Default::default()
                },
            )),
        ),
        (
            "GetSecretPolicy",
            outcome(k.get_secret_policy(
                &other,
                GetSecretPolicyRequest {
                    secret_name: name(),
                    policy_name: "default".into(),
                },
            )),
        ),
        (
            "SetSecretPolicy",
            outcome(k.set_secret_policy(
                &other,
                SetSecretPolicyRequest {
                    secret_name: name(),
                    policy_name: "default".into(),
                    policy: "{}".into(),
                    bypass_policy_lockout_safety_check: None,
                },
            )),
        ),
    ];
    for (op, got) in &results {
        assert_eq!(*got, denied, "{op}");
    }
    let e = expect_err(
        k.get_secret_value(
            &other,
            GetSecretValueRequest {
                secret_name: name(),
                ..Default::default()
            },
        ),
        denied,
    );
    assert_eq!(e.http_status(), 403);
    // A delete window does not let another account in either.
    env.delete_secret("db", Some(7), None).unwrap();
    expect_err(
        k.restore_secret(
            &other,
            SecretNameRequest {
                secret_name: name(),
            },
        ),
        denied,
    );
    env.restore("db").unwrap();

    // Nothing changed; the owner's RAM users are let in.
    assert_eq!(env.value("db").secret_data.expose(), "x");
    assert_eq!(env.ids("db", true), ["v1"]);
    assert_eq!(env.meta("db").description, "");
    expect_err(env.try_meta("theirs"), "Forbidden.ResourceNotFound");
    let alice = Caller::ram_user(ACCOUNT, "alice");
    let v = k
        .get_secret_value(
            &alice,
            GetSecretValueRequest {
                secret_name: name(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v.secret_data.expose(), "x");
}

#[test]
fn secret_policies_are_stored_and_returned() {
    let env = Env::new();
    env.new_secret("db", "x");
    let get = |name: &str, policy_name: &str| {
        env.kms.get_secret_policy(
            &env.me,
            GetSecretPolicyRequest {
                secret_name: name.into(),
                policy_name: policy_name.into(),
            },
        )
    };
    let set = |policy_name: &str, policy: &str| {
        env.kms.set_secret_policy(
            &env.me,
            SetSecretPolicyRequest {
                secret_name: "db".into(),
                policy_name: policy_name.into(),
                policy: policy.into(),
                bypass_policy_lockout_safety_check: None,
            },
        )
    };
    let default = get("db", "default").unwrap().policy;
    let doc: serde_json::Value = serde_json::from_str(&default).unwrap();
    assert!(default.contains("acs:ram::1234:*"), "{default}");
    assert!(doc["Statement"].is_array());

    let policy = r#"{"Version":"1","Statement":[{"Effect":"Allow","Principal":{"RAM":["acs:ram::1234:role/app"]},"Action":["kms:GetSecretValue"],"Resource":["*"]}]}"#;
    set("default", policy).unwrap();
    assert_eq!(get("db", "default").unwrap().policy, policy);
    // Survives a restart.
    let reopened = env.reopen();
    assert_eq!(
        reopened
            .get_secret_policy(
                &env.me,
                GetSecretPolicyRequest {
                    secret_name: "db".into(),
                    policy_name: "default".into(),
                },
            )
            .unwrap()
            .policy,
        policy
    );

    expect_param_err(set("other", "{}"), "InvalidParameter", "PolicyName");
    expect_param_err(set("", "{}"), "MissingParameter", "PolicyName");
    expect_param_err(get("db", "other"), "InvalidParameter", "PolicyName");
    expect_param_err(set("default", ""), "MissingParameter", "Policy");
    expect_param_err(set("default", "not json"), "InvalidParameter", "Policy");
    expect_param_err(set("default", "[1,2]"), "InvalidParameter", "Policy");
    assert_eq!(get("db", "default").unwrap().policy, policy);
    expect_err(get("nope", "default"), "Forbidden.ResourceNotFound");

    // A secret can be created with its policy.
    env.try_new_secret(CreateSecretRequest {
        policy: Some(policy.into()),
        ..create_req("with-policy", "x")
    })
    .unwrap();
    assert_eq!(get("with-policy", "default").unwrap().policy, policy);
    expect_param_err(
        env.try_new_secret(CreateSecretRequest {
            policy: Some("nope".into()),
            ..create_req("bad-policy", "x")
        }),
        "InvalidParameter",
        "Policy",
    );
}

// ---------------------------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn responses_have_alibabas_wire_shapes() {
    let env = Env::new();
    env.try_new_secret(CreateSecretRequest {
        tags: tag_list(&[("env", "prod")]),
        ..create_req("db", "s3cr3t")
    })
    .unwrap();
    env.put("db", "v2", "next", &[CURRENT, "Beta"]).unwrap();

    let v = serde_json::to_value(env.try_value("db", None, None).unwrap()).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "CreateTime",
            "RequestId",
            "SecretData",
            "SecretDataType",
            "SecretName",
            "SecretType",
            "VersionId",
            "VersionStages"
        ]
    );
    assert_eq!(v["SecretName"], "db");
    assert_eq!(v["SecretData"], "next");
    assert_eq!(v["SecretDataType"], "text");
    assert_eq!(v["VersionId"], "v2");
    assert_eq!(
        v["VersionStages"],
        json!({"VersionStage": [CURRENT, "Beta"]})
    );
    assert_eq!(v["CreateTime"], START.to_string());
    assert_eq!(v["CreateTime"], "2027-01-15T08:00:00Z");
    assert_eq!(v["SecretType"], "Generic");

    let created = serde_json::to_value(env.new_secret("other", "x")).unwrap();
    assert_eq!(created["Arn"], "acs:kms:cn-hangzhou:1234:secret/other");
    assert_eq!(created["AutomaticRotation"], "Disabled");
    assert!(created.get("RotationInterval").is_none());

    let put = serde_json::to_value(env.put("db", "v3", "third", &[]).unwrap()).unwrap();
    assert_eq!(put["VersionStages"], json!({"VersionStage": [CURRENT]}));
    assert_eq!(put["SecretName"], "db");

    let listed = serde_json::to_value(
        env.kms
            .list_secret_version_ids(
                &env.me,
                ListSecretVersionIdsRequest {
                    secret_name: "db".into(),
                    include_deprecated: Some(true),
                    ..Default::default()
                },
            )
            .unwrap(),
    )
    .unwrap();
    let first = &listed["VersionIds"]["VersionId"][0];
    assert_eq!(first["VersionId"], "v3");
    assert_eq!(first["VersionStages"], json!({"VersionStage": [CURRENT]}));
    assert_eq!(first["CreateTime"], START.to_string());
    assert_eq!(listed["TotalCount"], 3);
    assert_eq!(listed["PageSize"], 20);

    let described = serde_json::to_value(env.meta("db")).unwrap();
    assert_eq!(
        described["Tags"],
        json!({"Tag": [{"TagKey": "env", "TagValue": "prod"}]})
    );
    assert!(described.get("PlannedDeleteTime").is_none());
    assert_eq!(described["AutomaticRotation"], "Disabled");

    let secrets = serde_json::to_value(
        env.list_secrets(ListSecretsRequest {
            fetch_tags: Some(true),
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(secrets["SecretList"]["Secret"][0]["SecretName"], "db");
    assert_eq!(
        secrets["SecretList"]["Secret"][0]["Tags"]["Tag"][0]["TagKey"],
        "env"
    );
    assert_eq!(secrets["TotalCount"], 2);

    let deleted = serde_json::to_value(env.delete_secret("other", Some(7), None).unwrap()).unwrap();
    assert_eq!(
        deleted["PlannedDeleteTime"],
        START.plus_secs(WEEK).to_string()
    );

    let pw = serde_json::to_value(
        env.kms
            .get_random_password(&env.me, GetRandomPasswordRequest::default())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pw["RandomPassword"].as_str().unwrap().len(), 32);
    // A secret value never shows in Debug output.
    let debug = format!("{:?}", env.value("db"));
    assert!(!debug.contains("third"), "{debug}");
}

#[test]
fn requests_decode_from_alibaba_style_strings() {
    use kms_core::api::decode_request;
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);

    let create: CreateSecretRequest = decode_request(json!({
        "SecretName": "db",
        "SecretData": "s3cr3t",
        "SecretDataType": "text",
        "VersionId": "v1",
        "Description": "from the wire",
        "Tags": "[{\"TagKey\":\"env\",\"TagValue\":\"prod\"}]",
        "EnableAutomaticRotation": "true",
        "RotationInterval": "604800s",
    }))
    .unwrap();
    assert_eq!(create.enable_automatic_rotation, Some(true));
    assert_eq!(create.tags, tag_list(&[("env", "prod")]));
    env.try_new_secret(create).unwrap();
    let m = env.meta("db");
    assert_eq!(m.automatic_rotation, "Enabled");
    assert_eq!(m.rotation_interval.as_deref(), Some("604800s"));
    assert_eq!(m.description, "from the wire");

    let put: PutSecretValueRequest = decode_request(json!({
        "SecretName": "db",
        "VersionId": "v2",
        "SecretData": "next",
        "VersionStages": "[\"ACSCurrent\",\"Beta\"]",
    }))
    .unwrap();
    assert_eq!(put.version_stages, [CURRENT, "Beta"]);
    env.kms.put_secret_value(&env.me, put).unwrap();
    assert_eq!(env.stage_map("db")["Beta"], "v2");

    let get: GetSecretValueRequest = decode_request(json!({
        "SecretName": "db", "VersionStage": "ACSPrevious"
    }))
    .unwrap();
    assert_eq!(
        env.kms.get_secret_value(&env.me, get).unwrap().version_id,
        "v1"
    );

    let stage: UpdateSecretVersionStageRequest = decode_request(json!({
        "SecretName": "db", "VersionStage": "Beta", "RemoveFromVersion": "v2", "MoveToVersion": "v1"
    }))
    .unwrap();
    env.kms.update_secret_version_stage(&env.me, stage).unwrap();
    assert_eq!(env.stage_map("db")["Beta"], "v1");

    let list: ListSecretVersionIdsRequest = decode_request(json!({
        "SecretName": "db", "IncludeDeprecated": "true", "PageNumber": "1", "PageSize": "1"
    }))
    .unwrap();
    let r = env.kms.list_secret_version_ids(&env.me, list).unwrap();
    assert_eq!(r.total_count, 2);
    assert_eq!(r.version_ids.version_id.len(), 1);

    let secrets: ListSecretsRequest = decode_request(json!({
        "FetchTags": "true",
        "Filters": "[{\"Key\":\"TagKey\",\"Values\":[\"env\"]}]",
        "PageSize": "5",
    }))
    .unwrap();
    let r = env.kms.list_secrets(&env.me, secrets).unwrap();
    assert_eq!(r.page_size, 5);
    assert_eq!(r.secret_list.secret[0].secret_name, "db");
    assert!(r.secret_list.secret[0].tags.is_some());

    let describe: DescribeSecretRequest =
        decode_request(json!({"SecretName": "db", "FetchTags": "false"})).unwrap();
    assert_eq!(
        env.kms.describe_secret(&env.me, describe).unwrap().tags,
        None
    );

    let policy: UpdateSecretRotationPolicyRequest = decode_request(json!({
        "SecretName": "db", "EnableAutomaticRotation": "false"
    }))
    .unwrap();
    env.kms
        .update_secret_rotation_policy(&env.me, policy)
        .unwrap();
    assert_eq!(env.meta("db").automatic_rotation, "Disabled");

    let tag: TagResourceRequest = decode_request(json!({
        "SecretName": "db", "Tags": "[{\"TagKey\":\"team\",\"TagValue\":\"a\"}]"
    }))
    .unwrap();
    env.kms.tag_resource(&env.me, tag).unwrap();
    let untag: UntagResourceRequest =
        decode_request(json!({"SecretName": "db", "TagKeys": "[\"env\"]"})).unwrap();
    env.kms.untag_resource(&env.me, untag).unwrap();
    assert_eq!(env.secret_tags("db"), [("team".to_owned(), "a".to_owned())]);

    let pw: GetRandomPasswordRequest = decode_request(json!({
        "PasswordLength": "16",
        "ExcludeNumbers": "true",
        "ExcludePunctuation": "true",
        "RequireEachIncludedType": "false",
        "ExcludeCharacters": "abc",
    }))
    .unwrap();
    let p = env.password(pw).unwrap();
    assert_eq!(p.len(), 16);
    assert!(p
        .chars()
        .all(|c| c.is_ascii_alphabetic() && !"abc".contains(c)));
    expect_param_err(
        decode_request::<GetRandomPasswordRequest>(json!({"PasswordLength": "sixteen"})),
        "InvalidParameter",
        "PasswordLength",
    );

    let delete: DeleteSecretRequest = decode_request(json!({
        "SecretName": "db", "RecoveryWindowInDays": "7", "ForceDeleteWithoutRecovery": "false"
    }))
    .unwrap();
    let r = env.kms.delete_secret(&env.me, delete).unwrap();
    assert_eq!(r.planned_delete_time, START.plus_secs(WEEK));
    let restore: SecretNameRequest = decode_request(json!({"SecretName": "db"})).unwrap();
    env.kms.restore_secret(&env.me, restore).unwrap();
    let force: DeleteSecretRequest = decode_request(json!({
        "SecretName": "db", "ForceDeleteWithoutRecovery": "true"
    }))
    .unwrap();
    env.kms.delete_secret(&env.me, force).unwrap();
    expect_err(env.try_meta("db"), "Forbidden.ResourceNotFound");
}

#[test]
fn maintenance_works_at_the_time_it_is_given_and_rotates_once_per_due_date() {
    let generic = Rotator::new("g");
    let env = env_with(&[("Generic", &generic)]);
    let key = env.create_key().key_id;
    env.set_rotation(&key, true, Some("7d")).unwrap();
    env.new_secret("db", "pw");
    env.secret_rotation("db", Some(true), Some("7d")).unwrap();
    env.new_secret("gone", "x");
    env.delete_secret("gone", Some(7), None).unwrap();

    // The host passes a time of its own; the clock stays at START.
    let at = START.plus_secs(WEEK);
    let report = env.kms.run_maintenance(at).unwrap();
    assert_eq!(report.rotated_keys, std::slice::from_ref(&key));
    assert_eq!(report.rotated_secrets, ["db"]);
    assert_eq!(report.purged_secrets, ["gone"]);
    let m = env.meta("db");
    assert_eq!(
        m.last_rotation_date,
        Some(at),
        "as for keys: the rotation happened at `at`"
    );
    assert_eq!(m.next_rotation_date, Some(at.plus_secs(WEEK)));
    assert_eq!(env.describe(&key).last_rotation_date, Some(at));

    // Nothing is due any more at that time.
    let again = env.kms.run_maintenance(at).unwrap();
    assert!(again.rotated_keys.is_empty());
    assert!(
        again.rotated_secrets.is_empty(),
        "rotated twice for one due date"
    );
    assert_eq!(generic.calls().len(), 1);
    assert_eq!(env.ids("db", true).len(), 2);
}
