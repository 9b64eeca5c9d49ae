#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! The engine on `RedbStorage` with a root key file: everything survives a restart, and the
//! database file never holds key material, data keys, plaintext or the root key in plain.

mod common;

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use kms_core::api::*;
use kms_core::api::{AutomaticRotation, DeletionProtection, KeySpec, KeyState};
use kms_core::RandomSource;
use kms_core::{Caller, Kms, ManualClock, RootKey, Storage};
use kms_storage::{root_key_file, RedbStorage};

const DB: &str = "kms.redb";

/// An Env on the redb file in `dir`, with the root key from `dir/root.key`.
fn open(dir: &Path, clock: &Arc<ManualClock>, rng: Option<RecordingRandom>) -> Env {
    let root_key = root_key_file::load_or_create(dir).unwrap();
    let storage: Arc<dyn Storage> = Arc::new(RedbStorage::open(dir.join(DB)).unwrap());
    let mut builder = Kms::builder()
        .shared_storage(storage.clone())
        .clock(clock.clone())
        .root_key(root_key.clone())
        .account_id(ACCOUNT)
        .region(REGION);
    if let Some(rng) = rng {
        builder = builder.random_source(rng);
    }
    Env {
        kms: builder.build().unwrap(),
        clock: clock.clone(),
        storage,
        root_key,
        me: Caller::account_root(ACCOUNT),
    }
}

/// What the account looks like, for comparison across restarts.
type View = (
    Vec<KeyMetadata>,
    Vec<AliasEntry>,
    Vec<Vec<(String, String)>>,
    Vec<Vec<String>>,
);

fn view(env: &Env, keys: &[String]) -> View {
    (
        keys.iter().map(|k| env.describe(k)).collect(),
        env.all_aliases(),
        keys.iter().map(|k| env.tags(k)).collect(),
        keys.iter().map(|k| env.versions(k)).collect(),
    )
}

struct Sealed {
    blob: Vec<u8>,
    plaintext: Vec<u8>,
    context: EncryptionContext,
    key_id: String,
    version: String,
}

#[test]
fn keys_aliases_tags_versions_and_ciphertexts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let mut sealed: Vec<Sealed> = Vec::new();
    let (keys, before, root_bytes, doomed_date) = {
        let env = open(dir.path(), &clock, None);
        let k128 = env.create_key_spec(KeySpec::Aes128).key_id;
        let k192 = env.create_key_spec(KeySpec::Aes192).key_id;
        let k256 = env
            .create_key_with(CreateKeyRequest {
                description: Some("rotating".into()),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("7d".into()),
                ..Default::default()
            })
            .key_id;
        let disabled = env.create_key().key_id;
        let doomed = env.create_key().key_id;
        let protected = env.create_key().key_id;
        env.create_alias("alias/k128", &k128).unwrap();
        env.create_alias("alias/apps/k256", &k256).unwrap();
        env.create_alias("alias/doomed", &doomed).unwrap();
        env.tag(&k128, &[("team", "core"), ("env", "prod")])
            .unwrap();
        env.tag(&k256, &[("owner", "ops")]).unwrap();
        env.kms
            .set_deletion_protection(
                &env.me,
                SetDeletionProtectionRequest {
                    key_id: protected.clone(),
                    enable_deletion_protection: Some(true),
                    deletion_protection_description: Some("keep".into()),
                    ..Default::default()
                },
            )
            .unwrap();

        let mut seal = |env: &Env, key: &str, i: usize| {
            let plaintext = format!("persistent message {i} for {key}").into_bytes();
            let context = ctx(&[("n", &i.to_string())]);
            let r = env.encrypt(key, &plaintext, &context);
            sealed.push(Sealed {
                blob: r.ciphertext_blob,
                plaintext,
                context,
                key_id: r.key_id,
                version: r.key_version_id,
            });
        };
        let all = [&k128, &k192, &k256, &disabled, &doomed, &protected];
        for (i, k) in all.iter().enumerate() {
            seal(&env, k, i);
        }
        // Rotations: automatic for k256, manual for k128; then more ciphertexts.
        env.clock.advance_days(8);
        let report = env.kms.run_maintenance(env.now()).unwrap();
        assert_eq!(report.rotated_keys, vec![k256.clone()]);
        env.create_key_version(&k128).unwrap();
        env.create_key_version(&k128).unwrap();
        for (i, k) in [&k128, &k256].iter().enumerate() {
            seal(&env, k, 100 + i);
        }
        // A data key, kept by its Base64 text.
        let gdk = env
            .kms
            .generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: "alias/k128".into(),
                    encryption_context: ctx(&[("purpose", "dek")]),
                    ..Default::default()
                },
            )
            .unwrap();
        sealed.push(Sealed {
            blob: gdk.ciphertext_blob.clone(),
            plaintext: B64.encode(&*gdk.plaintext).into_bytes(),
            context: ctx(&[("purpose", "dek")]),
            key_id: gdk.key_id.clone(),
            version: gdk.key_version_id.clone(),
        });
        env.disable(&disabled).unwrap();
        env.schedule_deletion(&doomed, 30).unwrap();
        let doomed_date = env.describe(&doomed).delete_date.unwrap();

        let keys: Vec<String> = [k128, k192, k256, disabled, doomed, protected].into();
        let before = view(&env, &keys);
        assert_eq!(before.3[0].len(), 3, "k128 has three versions");
        assert_eq!(before.3[2].len(), 2, "k256 rotated once");
        (keys, before, *env.root_key.expose_secret(), doomed_date)
    };
    // The engine and its store are dropped: the file is closed.

    let env = open(dir.path(), &clock, None);
    assert_eq!(
        *env.root_key.expose_secret(),
        root_bytes,
        "the same root key file"
    );
    assert_eq!(view(&env, &keys), before, "metadata survives");
    let (k128, k256, disabled, doomed, protected) =
        (&keys[0], &keys[2], &keys[3], &keys[4], &keys[5]);
    let m = env.describe(k256);
    assert_eq!(m.automatic_rotation, AutomaticRotation::Enabled);
    assert_eq!(m.rotation_interval.as_deref(), Some("604800s"));
    assert_eq!(env.state(disabled), KeyState::Disabled);
    assert_eq!(env.state(doomed), KeyState::PendingDeletion);
    let p = env.describe(protected);
    assert_eq!(p.deletion_protection, DeletionProtection::Enabled);
    assert_eq!(p.deletion_protection_description.as_deref(), Some("keep"));
    expect_err(
        env.schedule_deletion(protected, 7),
        "Rejected.DeletionProtection",
    );
    assert_eq!(env.describe("alias/apps/k256").key_id, *k256);
    assert_eq!(env.tags(k128).len(), 2);

    // Every old ciphertext decrypts, once its key is usable again.
    for s in sealed.iter().filter(|s| s.key_id == *disabled) {
        expect_err(env.try_decrypt(&s.blob, &s.context), "Rejected.Disabled");
    }
    for s in sealed.iter().filter(|s| s.key_id == *doomed) {
        expect_err(
            env.try_decrypt(&s.blob, &s.context),
            "Rejected.PendingDeletion",
        );
    }
    env.enable(disabled).unwrap();
    for s in sealed.iter().filter(|s| s.key_id != *doomed) {
        let r = env.decrypt(&s.blob, &s.context);
        assert_eq!(&r.plaintext[..], &s.plaintext[..]);
        assert_eq!(r.key_version_id, s.version);
        assert_eq!(r.key_id, s.key_id);
    }
    // Time-driven work resumes after the restart: rotation and purge.
    env.clock.set(doomed_date);
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.purged_keys, vec![doomed.clone()]);
    assert_eq!(report.rotated_keys, vec![k256.clone()]);
    let doomed_blobs: Vec<&Sealed> = sealed.iter().filter(|s| s.key_id == *doomed).collect();
    drop(env);

    let env = open(dir.path(), &clock, None);
    expect_err(env.try_describe(doomed), "Forbidden.KeyNotFound");
    expect_err(env.try_describe("alias/doomed"), "Forbidden.AliasNotFound");
    for s in doomed_blobs {
        expect_err(
            env.try_decrypt(&s.blob, &s.context),
            "Forbidden.KeyNotFound",
        );
    }
    assert_eq!(env.versions(k256).len(), 3);
    assert_eq!(env.all_keys().len(), 5);
    let s = &sealed[0];
    assert_eq!(
        &env.decrypt(&s.blob, &s.context).plaintext[..],
        &s.plaintext[..]
    );
}

#[test]
fn a_redb_store_does_not_open_under_another_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let key = {
        let env = open(dir.path(), &clock, None);
        env.create_key().key_id
    };
    let storage = RedbStorage::open(dir.path().join(DB)).unwrap();
    let e = Kms::builder()
        .storage(storage)
        .root_key(RootKey::generate().unwrap())
        .account_id(ACCOUNT)
        .build()
        .unwrap_err();
    assert_eq!(e.code(), "InternalFailure");
    let env = open(dir.path(), &clock, None);
    assert_eq!(env.describe(&key).key_id, key);
}

#[test]
fn the_database_file_holds_no_key_material_data_key_plaintext_or_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let rng = RecordingRandom::default();
    let mut messages = Vec::new();
    let mut data_keys = Vec::new();
    let mut key_ids = Vec::new();
    let root = {
        let env = open(dir.path(), &clock, Some(rng.clone()));
        for spec in [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256] {
            let key = env.create_key_spec(spec).key_id;
            env.create_key_version(&key).unwrap();
            env.create_alias(&format!("alias/{spec}"), &key).unwrap();
            env.tag(&key, &[("spec", spec.as_str())]).unwrap();
            for i in 0..3 {
                let msg = format!("PLAINTEXT-MESSAGE-{spec}-{i}").into_bytes();
                env.encrypt(&key, &msg, &ctx(&[("i", &i.to_string())]));
                messages.push(msg);
            }
            for n in [None, Some(16), Some(24), Some(64)] {
                let r = env
                    .kms
                    .generate_data_key(
                        &env.me,
                        GenerateDataKeyRequest {
                            key_id: key.clone(),
                            number_of_bytes: n,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                data_keys.push(r.plaintext.to_vec());
            }
            key_ids.push(key);
        }
        *env.root_key.expose_secret()
    };
    let file = std::fs::read(dir.path().join(DB)).unwrap();

    // Positive control: the search finds what is stored in plain (record keys).
    for key in &key_ids {
        assert!(
            contains(&file, format!("k/{key}").as_bytes()),
            "record key of {key}"
        );
    }

    let secrets: Vec<Vec<u8>> = rng
        .drawn()
        .into_iter()
        .filter(|b| matches!(b.len(), 16 | 24 | 32))
        .chain(data_keys.iter().cloned())
        .collect();
    // 3 keys x 2 versions of material, 12 data keys, 16-byte ids, the sealing key.
    assert!(
        secrets.len() >= 6 + 12,
        "{} secrets recorded",
        secrets.len()
    );
    for secret in &secrets {
        assert!(
            !contains(&file, secret),
            "raw secret of {} bytes in the file",
            secret.len()
        );
        let b64 = B64.encode(secret);
        assert!(
            !contains(&file, b64.as_bytes()),
            "Base64 secret in the file"
        );
        let b64_unpadded = b64.trim_end_matches('=');
        assert!(
            !contains(&file, b64_unpadded.as_bytes()),
            "unpadded Base64 secret in the file"
        );
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!contains(&file, hex.as_bytes()), "hex secret in the file");
    }
    for msg in &messages {
        assert!(!contains(&file, msg), "{}", String::from_utf8_lossy(msg));
    }
    assert!(!contains(&file, b"PLAINTEXT-MESSAGE"));
    assert!(
        !contains(&file, &root),
        "the root key is not in the database"
    );
    assert!(!contains(&file, B64.encode(root).as_bytes()));
    // The root key lives in its own file, next to the database.
    let key_file = std::fs::read(dir.path().join(root_key_file::FILE_NAME)).unwrap();
    assert_eq!(key_file, root);
}

#[test]
fn a_recording_random_source_still_gives_fresh_bytes() {
    // Guards the test above: recording must not make the engine's randomness repeat.
    let rng = RecordingRandom::default();
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    rng.fill(&mut a).unwrap();
    rng.fill(&mut b).unwrap();
    assert_ne!(a, b);
    assert_eq!(rng.drawn(), vec![a.to_vec(), b.to_vec()]);
}
