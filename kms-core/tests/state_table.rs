#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! The state table of docs/states.md: every cell of the table for Encrypt/Decrypt/
//! GenerateDataKey*/ReEncrypt, CreateKeyVersion/UpdateRotationPolicy, the reads, the metadata
//! updates, Enable/Disable, Schedule/CancelKeyDeletion, CreateAlias, UpdateAlias and
//! SetDeletionProtection(true), in every state (Enabled, Disabled, PendingDeletion, and
//! PendingImport through an EXTERNAL key), through the public `Kms` API. Each cell runs on a fresh
//! engine; a refused operation must leave the key, its aliases, tags and versions exactly as they
//! were, and a successful one must have its effect.

mod common;

use common::*;
use kms_core::api::*;
use kms_core::api::{DeletionProtection, KeyState, Origin};
use kms_core::KmsError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Enabled,
    Disabled,
    PendingDeletion,
    /// An EXTERNAL key whose material was never imported.
    PendingImport,
}

const STATES: [Start; 4] = [
    Start::Enabled,
    Start::Disabled,
    Start::PendingDeletion,
    Start::PendingImport,
];

/// A key put in a state, with an alias, a tag and a ciphertext made while it was Enabled (none
/// for PendingImport, which never had material), and a second, Enabled key (`other`) with its
/// own alias and ciphertext.
struct Fixture {
    env: Env,
    key: String,
    version: String,
    blob: Vec<u8>,
    other: String,
    other_blob: Vec<u8>,
}

const SUBJECT_ALIAS: &str = "alias/subject";
const OTHER_ALIAS: &str = "alias/other";

fn context() -> EncryptionContext {
    ctx(&[("purpose", "state-table")])
}

fn fixture(start: Start) -> Fixture {
    let env = Env::new();
    let meta = env.create_key_with(CreateKeyRequest {
        origin: (start == Start::PendingImport).then_some(Origin::External),
        ..Default::default()
    });
    let key = meta.key_id.clone();
    env.create_alias(SUBJECT_ALIAS, &key).unwrap();
    env.tag(&key, &[("team", "core")]).unwrap();
    let blob = match start {
        Start::PendingImport => Vec::new(),
        _ => env.encrypt(&key, b"secret", &context()).ciphertext_blob,
    };
    let other = env.create_key().key_id;
    env.create_alias(OTHER_ALIAS, &other).unwrap();
    let other_blob = env.encrypt(&other, b"other", &context()).ciphertext_blob;
    match start {
        Start::Enabled | Start::PendingImport => {}
        Start::Disabled => {
            env.disable(&key).unwrap();
        }
        Start::PendingDeletion => {
            env.schedule_deletion(&key, 7).unwrap();
        }
    }
    let want = match start {
        Start::Enabled => KeyState::Enabled,
        Start::Disabled => KeyState::Disabled,
        Start::PendingDeletion => KeyState::PendingDeletion,
        Start::PendingImport => KeyState::PendingImport,
    };
    assert_eq!(env.state(&key), want);
    Fixture {
        env,
        key,
        version: meta.primary_key_version.unwrap(),
        blob,
        other,
        other_blob,
    }
}

type Op = fn(&Fixture) -> Result<(), KmsError>;

/// One row of the table: the operation and the outcome in Enabled, Disabled, PendingDeletion
/// and PendingImport. `NA` marks a cell the state cannot reach (no ciphertext of a key that
/// never had material exists); `A|B` accepts either code where two documented rules meet.
struct Row {
    name: &'static str,
    op: Op,
    want: [&'static str; 4],
}

const OK: &str = "OK";
const NA: &str = "-";
const DISABLED: &str = "Rejected.Disabled";
const PENDING: &str = "Rejected.PendingDeletion";
const IMPORT: &str = "Rejected.PendingImport";
const SMF: &str = "Rejected.StateModifiedFailed";
/// The PendingImport column alone would give Rejected.PendingImport for CreateKeyVersion and
/// UpdateRotationPolicy on a PendingImport key, while their origin rule (docs/operations.md)
/// gives Rejected.UnsupportedOperation for both on any EXTERNAL key (and a PendingImport key is
/// always EXTERNAL); docs/states.md's table gives the latter.
const IMPORT_OR_UNSUPPORTED: &str = "Rejected.PendingImport|Rejected.UnsupportedOperation";

fn gdk_req(f: &Fixture) -> GenerateDataKeyRequest {
    GenerateDataKeyRequest {
        key_id: f.key.clone(),
        encryption_context: context(),
        ..Default::default()
    }
}

fn rows() -> Vec<Row> {
    vec![
        // Encrypt, Decrypt, GenerateDataKey*, ReEncrypt: usable only when Enabled.
        Row {
            name: "Encrypt",
            op: |f| {
                let r = f.env.try_encrypt(&f.key, b"x", &context())?;
                assert_eq!(r.key_id, f.key);
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT],
        },
        Row {
            name: "Decrypt",
            op: |f| {
                let r = f.env.try_decrypt(&f.blob, &context())?;
                assert_eq!(&r.plaintext[..], b"secret");
                Ok(())
            },
            want: [OK, DISABLED, PENDING, NA],
        },
        Row {
            name: "GenerateDataKey",
            op: |f| {
                let r = f.env.kms.generate_data_key(&f.env.me, gdk_req(f))?;
                assert_eq!(r.plaintext.len(), 32);
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT],
        },
        Row {
            name: "GenerateDataKeyWithoutPlaintext",
            op: |f| {
                let r = f
                    .env
                    .kms
                    .generate_data_key_without_plaintext(&f.env.me, gdk_req(f))?;
                assert_eq!(r.key_id, f.key);
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT],
        },
        Row {
            name: "ReEncrypt (key as source)",
            op: |f| {
                let r = f.env.kms.re_encrypt(
                    &f.env.me,
                    ReEncryptRequest {
                        ciphertext_blob: f.blob.clone(),
                        source_encryption_context: context(),
                        destination_key_id: f.other.clone(),
                        ..Default::default()
                    },
                )?;
                let back = f.env.decrypt(&r.ciphertext_blob, &ctx(&[]));
                assert_eq!(&back.plaintext[..], b"secret");
                assert_eq!(back.key_id, f.other);
                Ok(())
            },
            want: [OK, DISABLED, PENDING, NA],
        },
        Row {
            name: "ReEncrypt (key as destination)",
            op: |f| {
                let r = f.env.kms.re_encrypt(
                    &f.env.me,
                    ReEncryptRequest {
                        ciphertext_blob: f.other_blob.clone(),
                        source_encryption_context: context(),
                        destination_key_id: f.key.clone(),
                        ..Default::default()
                    },
                )?;
                assert_eq!(r.key_id, f.key);
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT],
        },
        // CreateKeyVersion, UpdateRotationPolicy.
        Row {
            name: "CreateKeyVersion",
            op: |f| {
                let v = f.env.create_key_version(&f.key)?.key_version;
                assert_eq!(
                    f.env.describe(&f.key).primary_key_version.as_deref(),
                    Some(v.key_version_id.as_str())
                );
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT_OR_UNSUPPORTED],
        },
        Row {
            name: "UpdateRotationPolicy (on)",
            op: |f| {
                f.env.set_rotation(&f.key, true, Some("30d"))?;
                assert_eq!(
                    f.env.describe(&f.key).rotation_interval.as_deref(),
                    Some("2592000s")
                );
                Ok(())
            },
            want: [OK, DISABLED, PENDING, IMPORT_OR_UNSUPPORTED],
        },
        Row {
            name: "UpdateRotationPolicy (off)",
            op: |f| f.env.set_rotation(&f.key, false, None).map(drop),
            want: [OK, DISABLED, PENDING, IMPORT_OR_UNSUPPORTED],
        },
        // Reads and DeleteAlias work in every state.
        Row {
            name: "DescribeKey",
            op: |f| {
                let m = f.env.try_describe(&f.key)?;
                assert_eq!(m.key_id, f.key);
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "ListKeys",
            op: |f| {
                let r = f.env.kms.list_keys(&f.env.me, ListKeysRequest::default())?;
                assert!(r.keys.key.iter().any(|k| k.key_id == f.key));
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "DescribeKeyVersion",
            op: |f| {
                let r = f.env.kms.describe_key_version(
                    &f.env.me,
                    DescribeKeyVersionRequest {
                        key_id: f.key.clone(),
                        key_version_id: f.version.clone(),
                    },
                )?;
                assert_eq!(r.key_version.key_version_id, f.version);
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "ListKeyVersions",
            op: |f| {
                let r = f.env.kms.list_key_versions(
                    &f.env.me,
                    ListKeyVersionsRequest {
                        key_id: f.key.clone(),
                        ..Default::default()
                    },
                )?;
                assert_eq!(r.total_count, 1);
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "ListAliases",
            op: |f| {
                let r = f
                    .env
                    .kms
                    .list_aliases(&f.env.me, ListAliasesRequest::default())?;
                assert!(r
                    .aliases
                    .alias
                    .iter()
                    .any(|a| a.alias_name == SUBJECT_ALIAS && a.key_id == f.key));
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "ListAliasesByKeyId",
            op: |f| {
                let r = f.env.kms.list_aliases_by_key_id(
                    &f.env.me,
                    ListAliasesByKeyIdRequest {
                        key_id: f.key.clone(),
                        ..Default::default()
                    },
                )?;
                assert_eq!(r.aliases.alias.len(), 1);
                assert_eq!(r.aliases.alias[0].alias_name, SUBJECT_ALIAS);
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "ListResourceTags",
            op: |f| {
                let r = f.env.kms.list_resource_tags(&f.env.me, key_req(&f.key))?;
                assert_eq!(r.tags.tag.len(), 1);
                assert_eq!(r.tags.tag[0].tag_key, "team");
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        Row {
            name: "DeleteAlias",
            op: |f| {
                f.env.delete_alias(SUBJECT_ALIAS)?;
                assert!(f.env.aliases_of(&f.key).is_empty());
                Ok(())
            },
            want: [OK, OK, OK, OK],
        },
        // UpdateKeyDescription, TagResource, UntagResource.
        Row {
            name: "UpdateKeyDescription",
            op: |f| {
                f.env.kms.update_key_description(
                    &f.env.me,
                    UpdateKeyDescriptionRequest {
                        key_id: f.key.clone(),
                        description: "new".into(),
                    },
                )?;
                assert_eq!(f.env.describe(&f.key).description, "new");
                Ok(())
            },
            want: [OK, OK, PENDING, OK],
        },
        Row {
            name: "TagResource",
            op: |f| {
                f.env.tag(&f.key, &[("env", "prod")])?;
                assert_eq!(f.env.tags(&f.key).len(), 2);
                Ok(())
            },
            want: [OK, OK, PENDING, OK],
        },
        Row {
            name: "UntagResource",
            op: |f| {
                f.env.kms.untag_resource(
                    &f.env.me,
                    UntagResourceRequest {
                        key_id: f.key.clone(),
                        tag_keys: vec!["team".into()],
                        ..Default::default()
                    },
                )?;
                assert!(f.env.tags(&f.key).is_empty());
                Ok(())
            },
            want: [OK, OK, PENDING, OK],
        },
        // EnableKey, DisableKey.
        Row {
            name: "EnableKey",
            op: |f| {
                f.env.enable(&f.key)?;
                assert_eq!(f.env.state(&f.key), KeyState::Enabled);
                Ok(())
            },
            want: [OK, OK, SMF, SMF],
        },
        Row {
            name: "DisableKey",
            op: |f| {
                f.env.disable(&f.key)?;
                assert_eq!(f.env.state(&f.key), KeyState::Disabled);
                Ok(())
            },
            want: [OK, OK, SMF, SMF],
        },
        // ScheduleKeyDeletion, CancelKeyDeletion.
        Row {
            name: "ScheduleKeyDeletion",
            op: |f| {
                f.env.schedule_deletion(&f.key, 30)?;
                let m = f.env.describe(&f.key);
                assert_eq!(m.key_state, KeyState::PendingDeletion);
                assert_eq!(m.delete_date, Some(f.env.now().plus_secs(30 * DAY)));
                Ok(())
            },
            want: [OK, OK, SMF, OK],
        },
        Row {
            name: "CancelKeyDeletion",
            op: |f| {
                f.env.cancel_deletion(&f.key)?;
                let m = f.env.describe(&f.key);
                assert_eq!(m.key_state, KeyState::Enabled);
                assert_eq!(m.delete_date, None);
                Ok(())
            },
            want: [SMF, SMF, OK, SMF],
        },
        // CreateAlias; UpdateAlias with this key as the new target.
        Row {
            name: "CreateAlias",
            op: |f| {
                f.env.create_alias("alias/second", &f.key)?;
                assert_eq!(f.env.aliases_of(&f.key), ["alias/second", SUBJECT_ALIAS]);
                Ok(())
            },
            want: [OK, OK, SMF, OK],
        },
        Row {
            name: "UpdateAlias (key as new target)",
            op: |f| {
                f.env.update_alias(OTHER_ALIAS, &f.key)?;
                assert_eq!(f.env.aliases_of(&f.key), [OTHER_ALIAS, SUBJECT_ALIAS]);
                assert!(f.env.aliases_of(&f.other).is_empty());
                Ok(())
            },
            want: [OK, OK, PENDING, OK],
        },
        // SetDeletionProtection(true).
        Row {
            name: "SetDeletionProtection(true)",
            op: |f| {
                f.env.set_protection(&f.key, true)?;
                assert_eq!(
                    f.env.describe(&f.key).deletion_protection,
                    DeletionProtection::Enabled
                );
                Ok(())
            },
            want: [OK, OK, SMF, OK],
        },
    ]
}

/// Metadata, aliases, tags and versions of the key.
type Snapshot = (KeyMetadata, Vec<String>, Vec<(String, String)>, Vec<String>);

/// Everything a refused operation must leave untouched.
fn snapshot(f: &Fixture) -> Snapshot {
    (
        f.env.describe(&f.key),
        f.env.aliases_of(&f.key),
        f.env.tags(&f.key),
        f.env.versions(&f.key),
    )
}

#[test]
fn every_cell_of_the_state_table_holds() {
    let mut failures = Vec::new();
    for row in rows() {
        for (i, start) in STATES.iter().enumerate() {
            let want = row.want[i];
            if want == NA {
                continue;
            }
            let f = fixture(*start);
            let before = snapshot(&f);
            let result = (row.op)(&f);
            let got = match &result {
                Ok(()) => OK,
                Err(e) => e.code(),
            };
            if !want.split('|').any(|w| w == got) {
                failures.push(format!(
                    "{} on a {:?} key: want {}, got {} ({:?})",
                    row.name, start, want, got, result
                ));
                continue;
            }
            if let Err(e) = result {
                let status = if got == "Rejected.UnsupportedOperation" {
                    400
                } else {
                    409
                };
                assert_eq!(e.http_status(), status, "{} on {start:?}: {e}", row.name);
                assert!(
                    e.to_string().contains(&f.key),
                    "{} on {start:?}: the message {e} names the key",
                    row.name
                );
                assert_eq!(
                    snapshot(&f),
                    before,
                    "{} on a {start:?} key was refused but changed the key",
                    row.name
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "state table violations:\n{}",
        failures.join("\n")
    );
}

#[test]
fn state_rules_apply_when_the_key_is_named_by_alias_or_arn() {
    let f = fixture(Start::Disabled);
    let arn = f.env.describe(&f.key).arn;
    for name in [SUBJECT_ALIAS.to_string(), arn, f.key.to_uppercase()] {
        expect_err(f.env.try_encrypt(&name, b"x", &context()), DISABLED);
        expect_err(f.env.create_key_version(&name), DISABLED);
        assert_eq!(f.env.try_describe(&name).unwrap().key_id, f.key);
    }
    let f = fixture(Start::PendingDeletion);
    expect_err(f.env.try_encrypt(SUBJECT_ALIAS, b"x", &context()), PENDING);
    expect_err(f.env.enable(SUBJECT_ALIAS), SMF);
}

#[test]
fn other_keys_are_unaffected_by_a_keys_state() {
    for start in STATES {
        let f = fixture(start);
        let r = f.env.decrypt(&f.other_blob, &context());
        assert_eq!(&r.plaintext[..], b"other");
        assert_eq!(f.env.state(&f.other), KeyState::Enabled);
    }
}

#[test]
fn list_keys_shows_keys_in_every_state_with_their_state() {
    let f = fixture(Start::Enabled);
    let disabled = f.env.create_key().key_id;
    f.env.disable(&disabled).unwrap();
    let pending = f.env.create_key().key_id;
    f.env.schedule_deletion(&pending, 7).unwrap();
    let all = f.env.all_keys();
    for k in [&f.key, &f.other, &disabled, &pending] {
        assert!(all.contains(k), "{k} is listed");
    }
    assert_eq!(f.env.state(&disabled), KeyState::Disabled);
    assert_eq!(f.env.state(&pending), KeyState::PendingDeletion);
}

#[test]
fn create_key_with_external_origin_starts_pending_import_without_material() {
    let env = Env::new();
    // Through the wire decoder, as a server would receive it.
    let req: CreateKeyRequest =
        kms_core::api::decode_request(serde_json::json!({"Origin": "EXTERNAL"})).unwrap();
    let m = env.kms.create_key(&env.me, req).unwrap().key_metadata;
    assert_eq!(m.origin, Origin::External);
    assert_eq!(m.key_state, KeyState::PendingImport);
    assert_eq!(env.describe(&m.key_id), m);
    let e = expect_err(env.try_encrypt(&m.key_id, b"x", &context()), IMPORT);
    assert_eq!(e.http_status(), 409);
    // Automatic rotation is for keys whose material the engine makes.
    expect_err(
        env.kms.create_key(
            &env.me,
            CreateKeyRequest {
                origin: Some(Origin::External),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("7d".into()),
                ..Default::default()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    assert_eq!(env.all_keys(), vec![m.key_id]);
}

#[test]
fn cancel_deletion_of_a_key_without_material_returns_it_to_pending_import() {
    let f = fixture(Start::PendingImport);
    f.env.schedule_deletion(&f.key, 7).unwrap();
    assert_eq!(f.env.state(&f.key), KeyState::PendingDeletion);
    f.env.cancel_deletion(&f.key).unwrap();
    let m = f.env.describe(&f.key);
    assert_eq!(
        m.key_state,
        KeyState::PendingImport,
        "no material, so not Enabled"
    );
    assert_eq!(m.delete_date, None);
    expect_err(f.env.try_encrypt(&f.key, b"x", &context()), IMPORT);
}

#[test]
fn disable_then_enable_restores_usability() {
    let f = fixture(Start::Disabled);
    expect_err(f.env.try_decrypt(&f.blob, &context()), DISABLED);
    f.env.enable(&f.key).unwrap();
    assert_eq!(&f.env.decrypt(&f.blob, &context()).plaintext[..], b"secret");
}

#[test]
fn cancel_deletion_of_a_disabled_key_returns_it_to_enabled() {
    let f = fixture(Start::Disabled);
    f.env.schedule_deletion(&f.key, 7).unwrap();
    f.env.cancel_deletion(&f.key).unwrap();
    assert_eq!(f.env.state(&f.key), KeyState::Enabled);
    assert_eq!(&f.env.decrypt(&f.blob, &context()).plaintext[..], b"secret");
}
