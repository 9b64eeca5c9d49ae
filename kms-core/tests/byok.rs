//! Bring your own key (docs/operations.md, docs/states.md): EXTERNAL keys, GetParametersForImport,
//! ImportKeyMaterial with every wrapping algorithm (the rsa crate and the openssl CLI wrap),
//! token rules, material rules, expiry, DeleteKeyMaterial and the state table rows for BYOK.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support_asym;

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};
use support_asym::*;

const OAEP256: &str = "RSAES_OAEP_SHA_256";
const OAEP1: &str = "RSAES_OAEP_SHA_1";
const PKCS1: &str = "RSAES_PKCS1_V1_5";

fn params(
    env: &Env,
    key: &str,
    alg: &str,
    spec: &str,
) -> Result<GetParametersForImportResponse, kms_core::KmsError> {
    env.kms.get_parameters_for_import(
        &env.me,
        GetParametersForImportRequest {
            key_id: key.into(),
            wrapping_algorithm: alg.into(),
            wrapping_key_spec: spec.into(),
        },
    )
}

fn round_trip(env: &Env, key: &str) {
    let blob = env.encrypt(key, b"byok data").unwrap();
    assert_eq!(env.decrypt(&blob).unwrap(), b"byok data");
}

fn delete_material(env: &Env, key: &str) -> Result<EmptyResponse, kms_core::KmsError> {
    env.kms
        .delete_key_material(&env.me, DeleteKeyMaterialRequest { key_id: key.into() })
}

// ---- CreateKey -------------------------------------------------------------------------------

#[test]
fn an_external_key_is_created_pending_import_without_material() {
    let env = Env::new();
    for spec in [KeySpec::Aes256, KeySpec::Aes192, KeySpec::Aes128] {
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                origin: Some(Origin::External),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_state, KeyState::PendingImport);
        assert_eq!(m.origin, Origin::External);
        assert_eq!(m.key_usage, KeyUsage::EncryptDecrypt);
        assert_eq!(m.material_expire_time, None);
        let d = env.describe(&m.key_id);
        assert_eq!(d.origin, Origin::External);
        assert_eq!(d.key_state, KeyState::PendingImport);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["Origin"], "EXTERNAL");
        assert_eq!(json["KeyState"], "PendingImport");
        // No material: every crypto operation is Rejected.PendingImport.
        expect_err(env.encrypt(&m.key_id, b"x"), "Rejected.PendingImport");
        expect_err(
            env.kms.generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: m.key_id.clone(),
                    ..Default::default()
                },
            ),
            "Rejected.PendingImport",
        );
        // Enable/Disable are refused from PendingImport.
        expect_err(
            env.kms.enable_key(
                &env.me,
                EnableKeyRequest {
                    key_id: m.key_id.clone(),
                },
            ),
            "Rejected.StateModifiedFailed",
        );
        expect_err(
            env.kms.disable_key(
                &env.me,
                DisableKeyRequest {
                    key_id: m.key_id.clone(),
                },
            ),
            "Rejected.StateModifiedFailed",
        );
    }
    let pending = env
        .kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                filters: vec![Filter {
                    key: "KeyState".into(),
                    values: vec!["PendingImport".into()],
                }],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(pending.total_count, 3);
}

#[test]
fn asymmetric_external_keys_are_refused_naming_origin() {
    let env = Env::new();
    for spec in [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EcP256,
        KeySpec::EcP256K,
    ] {
        expect_param_err(
            env.create(CreateKeyRequest {
                key_spec: Some(spec),
                origin: Some(Origin::External),
                ..Default::default()
            }),
            "InvalidParameter",
            "Origin",
        );
    }
    // Automatic rotation of an EXTERNAL key is refused at creation.
    expect_err(
        env.create(CreateKeyRequest {
            origin: Some(Origin::External),
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("30d".into()),
            ..Default::default()
        }),
        "Rejected.UnsupportedOperation",
    );
    let all = env
        .kms
        .list_keys(&env.me, ListKeysRequest::default())
        .unwrap();
    assert_eq!(all.total_count, 0, "refused requests create nothing");
}

// ---- GetParametersForImport ------------------------------------------------------------------

#[test]
fn get_parameters_for_import_needs_an_external_key() {
    let env = Env::new();
    let (aes, _) = env.key(KeySpec::Aes256, None);
    let (rsa, _) = env.key(KeySpec::Rsa2048, None);
    for key in [&aes, &rsa] {
        expect_err(params(&env, key, OAEP256, "RSA_2048"), "Unsupported.Origin");
        expect_err(delete_material(&env, key), "Unsupported.Origin");
        expect_err(
            env.import(key, &[1; 256], &"ab".repeat(32), None),
            "Unsupported.Origin",
        );
    }
    // The generated key still works.
    round_trip(&env, &aes);
    expect_err(
        params(&env, NO_SUCH_VERSION, OAEP256, "RSA_2048"),
        "Forbidden.KeyNotFound",
    );
}

#[test]
fn wrapping_key_spec_must_be_rsa_2048_and_the_algorithm_one_of_three() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    for spec in ["RSA_3072", "RSA_4096", "EC_P256", "rsa_2048"] {
        expect_param_err(
            params(&env, &key, OAEP256, spec),
            "InvalidParameter",
            "WrappingKeySpec",
        );
    }
    expect_param_err(
        params(&env, &key, OAEP256, ""),
        "MissingParameter",
        "WrappingKeySpec",
    );
    for alg in ["RSAES_OAEP_SHA_512", "RSA_PSS_SHA_256", "oaep"] {
        expect_param_err(
            params(&env, &key, alg, "RSA_2048"),
            "InvalidParameter",
            "WrappingAlgorithm",
        );
    }
    expect_param_err(
        params(&env, &key, "", "RSA_2048"),
        "MissingParameter",
        "WrappingAlgorithm",
    );
    assert!(
        env.storage.current_under(b"t/").is_empty(),
        "no token was stored"
    );
}

#[test]
fn an_import_token_expires_after_24_hours_and_comes_with_an_rsa_2048_spki() {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    assert_eq!(p.key_id, key);
    assert_eq!(p.token_expire_time, START.plus_secs(DAY));
    let public = rsa::RsaPublicKey::from_public_key_der(&p.public_key).unwrap();
    assert_eq!(public.size(), 256);
    assert!(!p.import_token.is_empty());
    // The wire shape: Base64 DER and an ISO 8601 time.
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["TokenExpireTime"], "2027-01-16T08:00:00Z");
    assert_eq!(json["KeyId"], key.as_str());
    assert!(json["PublicKey"].as_str().unwrap().starts_with("MII"));
    // Each call gives a fresh token and wrapping key.
    let q = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    assert_ne!(p.import_token, q.import_token);
    assert_ne!(p.public_key, q.public_key);
}

#[test]
fn get_parameters_for_import_works_in_every_state() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    params(&env, &key, OAEP256, "RSA_2048").unwrap(); // PendingImport
    let material = random_bytes(32);
    env.import_material(&key, &material, None).unwrap();
    params(&env, &key, OAEP256, "RSA_2048").unwrap(); // Enabled
    env.disable(&key);
    params(&env, &key, OAEP256, "RSA_2048").unwrap(); // Disabled
    env.schedule_deletion(&key, 7).unwrap();
    params(&env, &key, OAEP256, "RSA_2048").unwrap(); // PendingDeletion
                                                      // Four unused tokens are stored (the one import_material made was used up).
    assert_eq!(env.storage.current_under(b"t/").len(), 4);
}

// ---- ImportKeyMaterial: success --------------------------------------------------------------

#[test]
fn material_wrapped_with_each_wrapping_algorithm_imports_and_enables_the_key() {
    let env = Env::new();
    for alg in [OAEP256, OAEP1, PKCS1] {
        let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
        let p = params(&env, &key, alg, "RSA_2048").unwrap();
        let material = random_bytes(32);
        let wrapped = wrap(&p.public_key, alg, &material);
        env.import(&key, &wrapped, &p.import_token, None).unwrap();
        let m = env.describe(&key);
        assert_eq!(m.key_state, KeyState::Enabled, "{alg}");
        assert_eq!(m.material_expire_time, None);
        round_trip(&env, &key);
        // GenerateDataKey works too.
        let dk = env
            .kms
            .generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: key.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(dk.plaintext.len(), 32);
    }
}

#[test]
fn imported_material_is_persisted_and_decrypts_after_a_restart() {
    let env = Env::new();
    let material = random_bytes(32);
    let a = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    env.import_material(&a, &material, None).unwrap();
    let blob = env.encrypt(&a, b"payload").unwrap();
    // Reopen the engine on the same store: the material was persisted (sealed).
    let again = env.reopen(None);
    let r = again
        .decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: blob,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(&r.plaintext[..], b"payload");
}

#[test]
fn material_wrapped_by_the_openssl_cli_imports() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wrap.der"), &p.public_key).unwrap();
    let material = random_bytes(32);
    std::fs::write(dir.path().join("material.bin"), &material).unwrap();
    run_openssl(
        dir.path(),
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            "wrap.der",
            "-in",
            "material.bin",
            "-out",
            "wrapped.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    let wrapped = std::fs::read(dir.path().join("wrapped.bin")).unwrap();
    assert_eq!(wrapped.len(), 256);
    env.import(&key, &wrapped, &p.import_token, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    round_trip(&env, &key);
    // The material is the bytes openssl wrapped: re-importing them (wrapped by the rsa
    // crate this time) is accepted as the same material.
    env.import_material(&key, &material, None).unwrap();
    // ... and other bytes are not.
    expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
}

#[test]
fn aes_128_and_aes_192_external_keys_take_16_and_24_bytes() {
    let env = Env::new();
    for (spec, len) in [
        (KeySpec::Aes128, 16),
        (KeySpec::Aes192, 24),
        (KeySpec::Aes256, 32),
    ] {
        let key = env.external_key(spec, ProtectionLevel::Software);
        for wrong in [len - 8, len - 1, len + 1, len + 8] {
            expect_err(
                env.import_material(&key, &random_bytes(wrong), None),
                "InvalidKeyMaterial",
            );
            assert_eq!(env.state(&key), KeyState::PendingImport);
        }
        env.import_material(&key, &random_bytes(len), None).unwrap();
        assert_eq!(env.state(&key), KeyState::Enabled, "{spec}");
        round_trip(&env, &key);
    }
}

// ---- ImportKeyMaterial: token rules ----------------------------------------------------------

#[test]
fn an_import_token_can_be_used_only_once() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    let material = random_bytes(32);
    let wrapped = wrap(&p.public_key, OAEP256, &material);
    env.import(&key, &wrapped, &p.import_token, None).unwrap();
    // Same token again, even with the same material: refused.
    expect_err(
        env.import(&key, &wrapped, &p.import_token, None),
        "InvalidImportToken",
    );
    assert!(
        env.storage.current_under(b"t/").is_empty(),
        "the used token is gone"
    );
}

#[test]
fn an_import_token_of_another_key_is_invalid_and_stays_usable_for_its_key() {
    let env = Env::new();
    let a = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let b = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let pa = params(&env, &a, OAEP256, "RSA_2048").unwrap();
    let material = random_bytes(32);
    let wrapped = wrap(&pa.public_key, OAEP256, &material);
    expect_err(
        env.import(&b, &wrapped, &pa.import_token, None),
        "InvalidImportToken",
    );
    assert_eq!(env.state(&b), KeyState::PendingImport);
    env.import(&a, &wrapped, &pa.import_token, None).unwrap();
    assert_eq!(env.state(&a), KeyState::Enabled);
}

#[test]
fn a_malformed_or_unknown_import_token_is_invalid() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    let wrapped = wrap(&p.public_key, OAEP256, &random_bytes(32));
    let tok = &p.import_token;
    let unknown = match tok.strip_prefix('0') {
        Some(rest) => format!("1{rest}"),
        None => format!("0{}", &tok[1..]),
    };
    for bad in [
        "x".to_string(),
        "not a token".to_string(),
        tok[..tok.len() - 1].to_string(),
        format!("{tok}0"),
        "g".repeat(tok.len()),
        "../".repeat(30),
        "\u{e9}".repeat(64),
        unknown,
    ] {
        expect_err(env.import(&key, &wrapped, &bad, None), "InvalidImportToken");
    }
    expect_param_err(
        env.import(&key, &wrapped, "", None),
        "MissingParameter",
        "ImportToken",
    );
    expect_param_err(
        env.import(&key, &[], tok, None),
        "MissingParameter",
        "EncryptedKeyMaterial",
    );
    // None of that consumed the real token (given here in upper case: hex is case-free).
    env.import(&key, &wrapped, &tok.to_ascii_uppercase(), None)
        .unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
}

#[test]
fn an_import_token_past_24_hours_is_expired() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let early = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    env.clock.advance(DAY / 2);
    let late = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    env.clock.advance(DAY / 2);
    // 24 h after the first token: expired; the second one is still good.
    let wrapped = wrap(&early.public_key, OAEP256, &random_bytes(32));
    expect_err(
        env.import(&key, &wrapped, &early.import_token, None),
        "ExpiredImportToken",
    );
    assert_eq!(env.state(&key), KeyState::PendingImport);
    env.clock.advance(DAY / 2 - 1);
    let material = random_bytes(32);
    env.import(
        &key,
        &wrap(&late.public_key, OAEP256, &material),
        &late.import_token,
        None,
    )
    .unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
}

#[test]
fn run_maintenance_removes_expired_import_tokens() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p1 = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    let _p2 = params(&env, &key, OAEP1, "RSA_2048").unwrap();
    let used = params(&env, &key, PKCS1, "RSA_2048").unwrap();
    let material = random_bytes(32);
    env.import(
        &key,
        &wrap(&used.public_key, PKCS1, &material),
        &used.import_token,
        None,
    )
    .unwrap();
    env.clock.advance(DAY - 10);
    let fresh = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    assert_eq!(env.storage.current_under(b"t/").len(), 3);
    // Nothing is due yet.
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.expired_import_tokens, 0);
    env.clock.advance(10);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.expired_import_tokens, 2);
    assert_eq!(env.storage.current_under(b"t/").len(), 1);
    expect_err(
        env.import(&key, &[1; 256], &p1.import_token, None),
        "InvalidImportToken",
    );
    // The fresh token survived and works (same material as before).
    env.import(
        &key,
        &wrap(&fresh.public_key, OAEP256, &material),
        &fresh.import_token,
        None,
    )
    .unwrap();
    assert!(env.storage.current_under(b"t/").is_empty());
}

// ---- ImportKeyMaterial: material rules -------------------------------------------------------

#[test]
fn material_of_the_wrong_length_is_invalid_and_leaves_key_and_token_as_they_were() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    for len in [16, 33, 31, 1, 64] {
        let e = expect_err(
            env.import(
                &key,
                &wrap(&p.public_key, OAEP256, &random_bytes(len)),
                &p.import_token,
                None,
            ),
            "InvalidKeyMaterial",
        );
        assert!(e.to_string().contains("32"), "{e}");
        let m = env.describe(&key);
        assert_eq!(m.key_state, KeyState::PendingImport);
        expect_err(env.encrypt(&key, b"x"), "Rejected.PendingImport");
    }
    // The token is still usable for a correct import.
    let material = random_bytes(32);
    env.import(
        &key,
        &wrap(&p.public_key, OAEP256, &material),
        &p.import_token,
        None,
    )
    .unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    round_trip(&env, &key);
}

#[test]
fn garbage_encrypted_key_material_is_invalid_key_material() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &key, OAEP256, "RSA_2048").unwrap();
    let material = random_bytes(32);
    let other_key = rsa_spki(rsa_2048());
    let cases: Vec<Vec<u8>> = vec![
        random_bytes(256),
        vec![0; 256],
        vec![0xff; 256],
        random_bytes(255),
        random_bytes(257),
        random_bytes(7),
        // Material wrapped with another public key.
        wrap(&other_key, OAEP256, &material),
        // Wrapped with the right key but another algorithm than the token's.
        wrap(&p.public_key, OAEP1, &material),
        wrap(&p.public_key, PKCS1, &material),
        // The material itself, unwrapped.
        material.clone(),
    ];
    for bad in &cases {
        expect_err(
            env.import(&key, bad, &p.import_token, None),
            "InvalidKeyMaterial",
        );
    }
    assert_eq!(env.state(&key), KeyState::PendingImport);
    env.import(
        &key,
        &wrap(&p.public_key, OAEP256, &material),
        &p.import_token,
        None,
    )
    .unwrap();
    round_trip(&env, &key);
}

#[test]
fn only_the_same_material_can_be_imported_again() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    env.import_material(&key, &material, None).unwrap();
    let blob = env.encrypt(&key, b"kept").unwrap();
    // Other material into an Enabled key: refused, nothing changes.
    let e = expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
    assert!(e.to_string().contains(&key), "{e}");
    assert_eq!(env.decrypt(&blob).unwrap(), b"kept");
    // The same material again: accepted, the key stays Enabled and keeps decrypting.
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    assert_eq!(env.decrypt(&blob).unwrap(), b"kept");
    // A Disabled key takes the same material too and stays Disabled.
    env.disable(&key);
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Disabled);
    expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
}

#[test]
fn key_material_expire_unix_must_be_in_the_future_or_zero() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    for past in [START.secs(), START.secs() - 1, 1, -5] {
        expect_param_err(
            env.import_material(&key, &material, Some(past)),
            "InvalidParameter",
            "KeyMaterialExpireUnix",
        );
        assert_eq!(env.state(&key), KeyState::PendingImport);
    }
    // 0 means "never".
    env.import_material(&key, &material, Some(0)).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.material_expire_time, None);
    env.clock.advance_days(3650);
    round_trip(&env, &key);
}

/// KeyMaterialExpireUnix is stored and shown as an ISO 8601 time, whose year has four
/// digits: a later time must be refused up front, not stored as a record that can no longer
/// be read (which would break the key and every maintenance pass).
#[test]
fn key_material_expire_unix_past_the_year_9999_is_invalid_parameter() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    for t in [i64::MAX, 253_402_300_800, 10_000_000_000_000] {
        expect_param_err(
            env.import_material(&key, &material, Some(t)),
            "InvalidParameter",
            "KeyMaterialExpireUnix",
        );
        assert_eq!(env.state(&key), KeyState::PendingImport);
    }
    // The last second of 9999 is accepted, persisted and readable after a restart.
    env.import_material(&key, &material, Some(253_402_300_799))
        .unwrap();
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::Enabled);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["MaterialExpireTime"], "9999-12-31T23:59:59Z");
    let again = env.reopen(None);
    let m = again
        .describe_key(
            &env.me,
            DescribeKeyRequest {
                key_id: key.clone(),
            },
        )
        .unwrap()
        .key_metadata;
    assert_eq!(m.key_state, KeyState::Enabled);
    env.clock.advance_days(365 * 100);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert!(r.expired_material_keys.is_empty());
    round_trip(&env, &key);
}

#[test]
fn expired_material_makes_the_key_pending_import_until_the_same_material_is_imported() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    let expire = START.secs() + 3600;
    env.import_material(&key, &material, Some(expire)).unwrap();
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::Enabled);
    assert_eq!(m.material_expire_time, Some(kms_core::UnixTime(expire)));
    let blob = env.encrypt(&key, b"before expiry").unwrap();

    // A second before: still usable; maintenance has nothing to do.
    env.clock.advance(3599);
    round_trip(&env, &key);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert!(r.expired_material_keys.is_empty());

    // Past the expiry, before maintenance: unusable and shown as PendingImport.
    env.clock.advance(1);
    expect_err(env.encrypt(&key, b"x"), "Rejected.PendingImport");
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    assert_eq!(env.state(&key), KeyState::PendingImport);
    // A fresh engine (cold cache) sees the same.
    let again = env.reopen(None);
    assert_eq!(
        again
            .describe_key(
                &env.me,
                DescribeKeyRequest {
                    key_id: key.clone()
                }
            )
            .unwrap()
            .key_metadata
            .key_state,
        KeyState::PendingImport
    );

    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.expired_material_keys, vec![key.clone()]);
    assert_eq!(env.state(&key), KeyState::PendingImport);
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert!(r.expired_material_keys.is_empty(), "reported once");

    // Other material is refused; the same material makes it usable again.
    expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    assert_eq!(env.decrypt(&blob).unwrap(), b"before expiry");
}

#[test]
fn reimport_after_expiry_but_before_maintenance_restores_the_key() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes128, ProtectionLevel::Software);
    let material = random_bytes(16);
    env.import_material(&key, &material, Some(START.secs() + 60))
        .unwrap();
    let blob = env.encrypt(&key, b"v").unwrap();
    env.clock.advance(61);
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    env.import_material(&key, &material, Some(START.secs() + 3600))
        .unwrap();
    assert_eq!(env.decrypt(&blob).unwrap(), b"v");
    // Maintenance now must not take the fresh material away.
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert!(r.expired_material_keys.is_empty());
    assert_eq!(env.decrypt(&blob).unwrap(), b"v");
}

// ---- DeleteKeyMaterial -----------------------------------------------------------------------

#[test]
fn delete_key_material_makes_ciphertexts_unusable_until_reimport() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    env.import_material(&key, &material, None).unwrap();
    let blob = env.encrypt(&key, b"precious").unwrap();
    delete_material(&env, &key).unwrap();
    assert_eq!(env.state(&key), KeyState::PendingImport);
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    expect_err(env.encrypt(&key, b"x"), "Rejected.PendingImport");
    // Idempotent on a key without material.
    delete_material(&env, &key).unwrap();
    assert_eq!(env.state(&key), KeyState::PendingImport);
    // Other material is refused even now; the same material restores the key.
    expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    assert_eq!(env.decrypt(&blob).unwrap(), b"precious");
}

#[test]
fn delete_key_material_keeps_a_pending_deletion_key_pending_deletion() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let material = random_bytes(32);
    env.import_material(&key, &material, None).unwrap();
    env.schedule_deletion(&key, 10).unwrap();
    let before = env.describe(&key);
    assert_eq!(before.key_state, KeyState::PendingDeletion);
    delete_material(&env, &key).unwrap();
    let after = env.describe(&key);
    assert_eq!(after.key_state, KeyState::PendingDeletion);
    assert_eq!(after.delete_date, before.delete_date);
    // CancelKeyDeletion of a key without material: back to PendingImport, not Enabled.
    env.kms
        .cancel_key_deletion(
            &env.me,
            CancelKeyDeletionRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    let m = env.describe(&key);
    assert_eq!(m.key_state, KeyState::PendingImport);
    assert_eq!(m.delete_date, None);
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
}

#[test]
fn import_key_material_into_a_pending_deletion_key_is_state_modified_failed() {
    let env = Env::new();
    // Never imported.
    let fresh = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let p = params(&env, &fresh, OAEP256, "RSA_2048").unwrap();
    env.schedule_deletion(&fresh, 7).unwrap();
    let material = random_bytes(32);
    expect_err(
        env.import(
            &fresh,
            &wrap(&p.public_key, OAEP256, &material),
            &p.import_token,
            None,
        ),
        "Rejected.StateModifiedFailed",
    );
    assert_eq!(env.state(&fresh), KeyState::PendingDeletion);
    // CancelKeyDeletion of an EXTERNAL key that never had material → PendingImport, and the
    // token that was refused still works.
    env.kms
        .cancel_key_deletion(
            &env.me,
            CancelKeyDeletionRequest {
                key_id: fresh.clone(),
            },
        )
        .unwrap();
    assert_eq!(env.state(&fresh), KeyState::PendingImport);
    env.import(
        &fresh,
        &wrap(&p.public_key, OAEP256, &material),
        &p.import_token,
        None,
    )
    .unwrap();
    assert_eq!(env.state(&fresh), KeyState::Enabled);

    // With material: the same material is refused while PendingDeletion too.
    env.schedule_deletion(&fresh, 7).unwrap();
    expect_err(
        env.import_material(&fresh, &material, None),
        "Rejected.StateModifiedFailed",
    );
    // CancelKeyDeletion of a key with material → Enabled.
    env.kms
        .cancel_key_deletion(
            &env.me,
            CancelKeyDeletionRequest {
                key_id: fresh.clone(),
            },
        )
        .unwrap();
    assert_eq!(env.state(&fresh), KeyState::Enabled);
    round_trip(&env, &fresh);
}

#[test]
fn an_external_key_past_its_delete_date_is_gone_with_its_material() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    env.import_material(&key, &random_bytes(32), None).unwrap();
    env.schedule_deletion(&key, 7).unwrap();
    env.clock.advance_days(7);
    expect_err(
        params(&env, &key, OAEP256, "RSA_2048"),
        "Forbidden.KeyNotFound",
    );
    expect_err(delete_material(&env, &key), "Forbidden.KeyNotFound");
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.purged_keys, vec![key.clone()]);
    assert!(env.storage.current_under(b"v/").is_empty());
}

// ---- Versions and rotation -------------------------------------------------------------------

/// docs/operations.md: CreateKeyVersion is for keys with Origin Aliyun_KMS,
/// UpdateRotationPolicy for symmetric Aliyun_KMS keys ("else Rejected.UnsupportedOperation");
/// the PendingImport rule alone would give Rejected.PendingImport for a PendingImport key. Every
/// PendingImport key is EXTERNAL, so both rules apply; the engine checks the origin first and
/// answers Rejected.UnsupportedOperation in every state, which this test pins down.
#[test]
fn create_key_version_and_update_rotation_policy_are_unsupported_on_external_keys() {
    let env = Env::new();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    let check = |key: &str| {
        let e = env.new_version(key).unwrap_err();
        assert!(
            matches!(
                e.code(),
                "Rejected.UnsupportedOperation" | "Rejected.PendingImport"
            ),
            "{e}"
        );
        e.code()
    };
    let rotation = |key: &str| {
        env.kms.update_rotation_policy(
            &env.me,
            UpdateRotationPolicyRequest {
                key_id: key.into(),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("30d".into()),
            },
        )
    };
    // PendingImport: either code could fit; docs/states.md and the engine give
    // UnsupportedOperation.
    assert_eq!(check(&key), "Rejected.UnsupportedOperation");
    expect_err(rotation(&key), "Rejected.UnsupportedOperation");
    // Enabled: only UnsupportedOperation fits.
    env.import_material(&key, &random_bytes(32), None).unwrap();
    expect_err(env.new_version(&key), "Rejected.UnsupportedOperation");
    expect_err(rotation(&key), "Rejected.UnsupportedOperation");
    let versions = env
        .kms
        .list_key_versions(
            &env.me,
            ListKeyVersionsRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(versions.total_count, 1);
}
