//! Asymmetric keys (docs/operations.md, docs/states.md): CreateKey usage rules,
//! AsymmetricSign/Verify/Encrypt/Decrypt, GetPublicKey, versions, state rules, ExportDataKey /
//! GenerateAndExportDataKey, ReEncrypt from an asymmetric source, and cross-checks against the
//! openssl CLI and the RustCrypto crates as independent implementations.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support_asym;

use std::sync::OnceLock;

use base64::Engine;
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, ProtectionLevel};
use kms_core::{PublicKey, SigningAlgorithm};
use support_asym::*;

const PSS: &str = "RSA_PSS_SHA_256";
const PKCS1: &str = "RSA_PKCS1_SHA_256";
const ECDSA: &str = "ECDSA_SHA_256";
const OAEP1: &str = "RSAES_OAEP_SHA_1";
const OAEP256: &str = "RSAES_OAEP_SHA_256";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---- CreateKey -------------------------------------------------------------------------------

#[test]
fn create_key_applies_the_key_usage_rules_of_each_spec() {
    let env = Env::new();
    // RSA: ENCRYPT/DECRYPT by default, SIGN/VERIFY on request.
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072] {
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_spec, spec);
        assert_eq!(m.key_usage, KeyUsage::EncryptDecrypt, "{spec} default");
        assert_eq!(m.key_state, KeyState::Enabled);
        assert!(m.primary_key_version.is_some());
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_usage, KeyUsage::SignVerify, "{spec} SIGN/VERIFY");
    }
    // EC: SIGN/VERIFY by default (and explicitly); ENCRYPT/DECRYPT refused naming KeyUsage.
    for spec in [KeySpec::EcP256, KeySpec::EcP256K] {
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_usage, KeyUsage::SignVerify, "{spec} default");
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_usage, KeyUsage::SignVerify);
        expect_param_err(
            env.create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: Some(KeyUsage::EncryptDecrypt),
                ..Default::default()
            }),
            "InvalidParameter",
            "KeyUsage",
        );
    }
    // AES: SIGN/VERIFY refused naming KeyUsage.
    for spec in [KeySpec::Aes256, KeySpec::Aes192, KeySpec::Aes128] {
        expect_param_err(
            env.create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            }),
            "InvalidParameter",
            "KeyUsage",
        );
    }
    // Nothing was created by the refused requests: 2 per RSA spec + 2 per EC spec.
    let listed = env
        .kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                page_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(listed.total_count, 8);
}

#[test]
fn create_key_decodes_asymmetric_specs_and_usages_from_wire_names() {
    let req: CreateKeyRequest = serde_json::from_value(serde_json::json!({
        "KeySpec": "EC_P256K",
        "KeyUsage": "SIGN/VERIFY",
    }))
    .unwrap();
    let env = Env::new();
    let m = env.create(req).unwrap();
    assert_eq!(m.key_spec, KeySpec::EcP256K);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["KeySpec"], "EC_P256K");
    assert_eq!(json["KeyUsage"], "SIGN/VERIFY");
    assert_eq!(json["Origin"], "Aliyun_KMS");
    assert_eq!(json["ProtectionLevel"], "SOFTWARE");
}

#[test]
fn automatic_rotation_is_refused_for_asymmetric_keys() {
    let env = Env::new();
    for (spec, usage) in [
        (KeySpec::Rsa2048, KeyUsage::EncryptDecrypt),
        (KeySpec::EcP256, KeyUsage::SignVerify),
    ] {
        expect_err(
            env.create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: Some(usage),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("30d".into()),
                ..Default::default()
            }),
            "Rejected.UnsupportedOperation",
        );
        let (key, _) = env.key(spec, Some(usage));
        for enable in [true, false] {
            expect_err(
                env.kms.update_rotation_policy(
                    &env.me,
                    UpdateRotationPolicyRequest {
                        key_id: key.clone(),
                        enable_automatic_rotation: Some(enable),
                        rotation_interval: Some("604800s".into()),
                    },
                ),
                "Rejected.UnsupportedOperation",
            );
        }
        assert_eq!(
            env.describe(&key).automatic_rotation,
            kms_core::api::AutomaticRotation::Disabled
        );
    }
}

/// The one RSA_4096 key of the suite: its OAEP plaintext limits and a round trip.
#[test]
fn rsa_4096_oaep_plaintext_limits_are_446_and_470_bytes() {
    let env = Env::new();
    let (key, v) = env.key(KeySpec::Rsa4096, None);
    let pem = env.public_key_pem(&key, &v).unwrap();
    let public = PublicKey::from_spki_der("PublicKey", &pem_to_der(&pem)).unwrap();
    assert_eq!(public.modulus_len(), 512);
    for (alg, limit) in [(OAEP256, 446), (OAEP1, 470)] {
        let msg = random_bytes(limit);
        let ct = env.asym_encrypt(&key, &v, alg, &msg).unwrap();
        assert_eq!(ct.len(), 512);
        assert_eq!(env.asym_decrypt(&key, &v, alg, &ct).unwrap(), msg);
        expect_param_err(
            env.asym_encrypt(&key, &v, alg, &random_bytes(limit + 1)),
            "InvalidParameter",
            "Plaintext",
        );
    }
}

// ---- Sign / Verify ---------------------------------------------------------------------------

#[test]
fn every_signing_algorithm_signs_and_verifies_on_its_key_types() {
    let env = Env::new();
    let cases = [
        (KeySpec::Rsa2048, PSS, 256),
        (KeySpec::Rsa2048, PKCS1, 256),
        (KeySpec::Rsa3072, PSS, 384),
        (KeySpec::Rsa3072, PKCS1, 384),
        (KeySpec::EcP256, ECDSA, 0),
        (KeySpec::EcP256K, ECDSA, 0),
    ];
    for (spec, alg, sig_len) in cases {
        let (key, v) = env.key(spec, Some(KeyUsage::SignVerify));
        let digest = sha256(format!("message for {spec} {alg}").as_bytes());
        let sig = env.sign(&key, &v, alg, &digest).unwrap();
        if sig_len > 0 {
            assert_eq!(sig.len(), sig_len, "{spec} {alg}");
        } else {
            // ECDSA: an ASN.1 DER SEQUENCE of two INTEGERs, at most 72 bytes.
            assert_eq!(sig[0], 0x30, "{spec}: DER SEQUENCE");
            assert_eq!(usize::from(sig[1]) + 2, sig.len(), "{spec}: DER length");
            assert!(sig.len() <= 72);
        }
        assert!(env.verify(&key, &v, alg, &digest, &sig).unwrap(), "{spec}");
        // Another digest, or a flipped bit, is Value false, not an error.
        assert!(!env.verify(&key, &v, alg, &sha256(b"other"), &sig).unwrap());
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(!env.verify(&key, &v, alg, &digest, &bad).unwrap());
        // The response names the key and version.
        let r = env
            .kms
            .asymmetric_sign(
                &env.me,
                AsymmetricSignRequest {
                    key_id: key.clone(),
                    key_version_id: v.clone(),
                    algorithm: alg.into(),
                    digest: digest.clone(),
                },
            )
            .unwrap();
        assert_eq!((r.key_id, r.key_version_id), (key.clone(), v.clone()));
    }
}

#[test]
fn rsa_pss_signatures_are_randomized_and_pkcs1_signatures_deterministic() {
    let env = Env::new();
    let (key, v) = env.key(KeySpec::Rsa2048, Some(KeyUsage::SignVerify));
    let d = sha256(b"m");
    assert_ne!(
        env.sign(&key, &v, PSS, &d).unwrap(),
        env.sign(&key, &v, PSS, &d).unwrap()
    );
    assert_eq!(
        env.sign(&key, &v, PKCS1, &d).unwrap(),
        env.sign(&key, &v, PKCS1, &d).unwrap()
    );
}

#[test]
fn a_signing_algorithm_of_another_key_type_is_unsupported_operation() {
    let env = Env::new();
    let d = sha256(b"m");
    let (rsa, rv) = env.key(KeySpec::Rsa2048, Some(KeyUsage::SignVerify));
    let (ec, ev) = env.key(KeySpec::EcP256, None);
    let (k1, kv) = env.key(KeySpec::EcP256K, None);
    let rsa_sig = env.sign(&rsa, &rv, PKCS1, &d).unwrap();
    let ec_sig = env.sign(&ec, &ev, ECDSA, &d).unwrap();
    expect_err(
        env.sign(&rsa, &rv, ECDSA, &d),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        env.verify(&rsa, &rv, ECDSA, &d, &rsa_sig),
        "Rejected.UnsupportedOperation",
    );
    for (key, v) in [(&ec, &ev), (&k1, &kv)] {
        for alg in [PSS, PKCS1] {
            expect_err(env.sign(key, v, alg, &d), "Rejected.UnsupportedOperation");
            expect_err(
                env.verify(key, v, alg, &d, &ec_sig),
                "Rejected.UnsupportedOperation",
            );
        }
    }
    // An algorithm that is not one of the three is InvalidParameter naming Algorithm;
    // RSAES names are not signing algorithms; an absent one is MissingParameter.
    for bad in ["RSA_PSS_SHA_512", "ecdsa_sha_256", OAEP256] {
        expect_param_err(env.sign(&ec, &ev, bad, &d), "InvalidParameter", "Algorithm");
        expect_param_err(
            env.verify(&ec, &ev, bad, &d, &ec_sig),
            "InvalidParameter",
            "Algorithm",
        );
    }
    expect_param_err(env.sign(&ec, &ev, "", &d), "MissingParameter", "Algorithm");
}

#[test]
fn a_digest_that_is_not_32_bytes_is_invalid_parameter_naming_digest() {
    let env = Env::new();
    for (spec, alg) in [
        (KeySpec::Rsa2048, PSS),
        (KeySpec::Rsa2048, PKCS1),
        (KeySpec::EcP256, ECDSA),
        (KeySpec::EcP256K, ECDSA),
    ] {
        let (key, v) = env.key(spec, Some(KeyUsage::SignVerify));
        let sig = env.sign(&key, &v, alg, &sha256(b"m")).unwrap();
        for len in [1, 20, 31, 33, 48, 64] {
            let digest = vec![0x5a; len];
            expect_param_err(
                env.sign(&key, &v, alg, &digest),
                "InvalidParameter",
                "Digest",
            );
            expect_param_err(
                env.verify(&key, &v, alg, &digest, &sig),
                "InvalidParameter",
                "Digest",
            );
        }
        // An empty digest names Digest too (missing or invalid).
        let e = env.sign(&key, &v, alg, &[]).unwrap_err();
        assert!(
            matches!(e.code(), "MissingParameter" | "InvalidParameter"),
            "{e}"
        );
        assert!(e.to_string().contains("Digest"), "{e}");
    }
}

#[test]
fn a_bad_signature_is_value_false_not_an_error() {
    let env = Env::new();
    for (spec, alg) in [
        (KeySpec::Rsa2048, PSS),
        (KeySpec::Rsa2048, PKCS1),
        (KeySpec::EcP256, ECDSA),
        (KeySpec::EcP256K, ECDSA),
    ] {
        let (key, v) = env.key(spec, Some(KeyUsage::SignVerify));
        let d = sha256(b"m");
        let sig = env.sign(&key, &v, alg, &d).unwrap();
        let bads: Vec<Vec<u8>> = vec![
            sig[..sig.len() - 1].to_vec(),
            [sig.clone(), vec![0]].concat(),
            vec![0u8; sig.len()],
            vec![0xffu8; sig.len()],
            vec![0x30, 0x00],
            vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            b"garbage".to_vec(),
            random_bytes(512),
        ];
        for bad in &bads {
            let r = env
                .kms
                .asymmetric_verify(
                    &env.me,
                    AsymmetricVerifyRequest {
                        key_id: key.clone(),
                        key_version_id: v.clone(),
                        algorithm: alg.into(),
                        digest: d.clone(),
                        value: bad.clone(),
                    },
                )
                .unwrap();
            assert!(!r.value, "{spec} {alg} accepted {bad:02x?}");
            assert_eq!(r.key_version_id, v);
        }
        // A signature of another key of the same spec is false as well.
        let (other, ov) = env.key(spec, Some(KeyUsage::SignVerify));
        let other_sig = env.sign(&other, &ov, alg, &d).unwrap();
        assert!(!env.verify(&key, &v, alg, &d, &other_sig).unwrap());
    }
}

#[test]
fn key_version_id_is_required_and_must_name_a_version_of_that_key() {
    let env = Env::new();
    let d = sha256(b"m");
    let (sk, sv) = env.key(KeySpec::EcP256, None);
    let (ek, ev) = env.key(KeySpec::Rsa2048, None);
    let sig = env.sign(&sk, &sv, ECDSA, &d).unwrap();
    let ct = env.asym_encrypt(&ek, &ev, OAEP256, b"x").unwrap();

    expect_param_err(
        env.sign(&sk, "", ECDSA, &d),
        "MissingParameter",
        "KeyVersionId",
    );
    expect_param_err(
        env.verify(&sk, "", ECDSA, &d, &sig),
        "MissingParameter",
        "KeyVersionId",
    );
    expect_param_err(
        env.asym_encrypt(&ek, "", OAEP256, b"x"),
        "MissingParameter",
        "KeyVersionId",
    );
    expect_param_err(
        env.asym_decrypt(&ek, "", OAEP256, &ct),
        "MissingParameter",
        "KeyVersionId",
    );
    expect_param_err(
        env.public_key_pem(&sk, ""),
        "MissingParameter",
        "KeyVersionId",
    );

    // Unknown, malformed, or another key's version.
    for bad in [NO_SUCH_VERSION, "not-a-uuid", ev.as_str()] {
        expect_err(
            env.sign(&sk, bad, ECDSA, &d),
            "Forbidden.KeyVersionNotFound",
        );
        expect_err(
            env.verify(&sk, bad, ECDSA, &d, &sig),
            "Forbidden.KeyVersionNotFound",
        );
        expect_err(env.public_key_pem(&sk, bad), "Forbidden.KeyVersionNotFound");
    }
    for bad in [NO_SUCH_VERSION, sv.as_str()] {
        expect_err(
            env.asym_encrypt(&ek, bad, OAEP256, b"x"),
            "Forbidden.KeyVersionNotFound",
        );
        expect_err(
            env.asym_decrypt(&ek, bad, OAEP256, &ct),
            "Forbidden.KeyVersionNotFound",
        );
    }
    // An unknown key is KeyNotFound.
    expect_err(
        env.sign(NO_SUCH_VERSION, &sv, ECDSA, &d),
        "Forbidden.KeyNotFound",
    );
    // The version id is accepted in upper case too (UUIDs are case-insensitive).
    assert!(env
        .verify(&sk, &sv.to_ascii_uppercase(), ECDSA, &d, &sig)
        .unwrap());
}

#[test]
fn asymmetric_operations_accept_an_alias_or_arn_as_key_id() {
    let env = Env::new();
    let (key, v) = env.key(KeySpec::EcP256, None);
    env.kms
        .create_alias(
            &env.me,
            CreateAliasRequest {
                alias_name: "alias/signer".into(),
                key_id: key.clone(),
            },
        )
        .unwrap();
    let d = sha256(b"m");
    let sig = env.sign("alias/signer", &v, ECDSA, &d).unwrap();
    let arn = env.describe(&key).arn;
    assert!(env.verify(&arn, &v, ECDSA, &d, &sig).unwrap());
}

// ---- Encrypt / Decrypt -----------------------------------------------------------------------

#[test]
fn oaep_plaintext_limits_are_exact_for_rsa_2048_and_3072() {
    let env = Env::new();
    for (spec, modulus, limits) in [
        (KeySpec::Rsa2048, 256, [(OAEP256, 190), (OAEP1, 214)]),
        (KeySpec::Rsa3072, 384, [(OAEP256, 318), (OAEP1, 342)]),
    ] {
        let (key, v) = env.key(spec, None);
        for (alg, limit) in limits {
            for len in [1, limit - 1, limit] {
                let msg = random_bytes(len);
                let ct = env.asym_encrypt(&key, &v, alg, &msg).unwrap();
                assert_eq!(ct.len(), modulus, "{spec} {alg}");
                assert_eq!(
                    env.asym_decrypt(&key, &v, alg, &ct).unwrap(),
                    msg,
                    "{spec} {alg} {len}"
                );
            }
            for len in [limit + 1, limit + 2, modulus, 6144] {
                expect_param_err(
                    env.asym_encrypt(&key, &v, alg, &random_bytes(len)),
                    "InvalidParameter",
                    "Plaintext",
                );
            }
        }
        expect_param_err(
            env.asym_encrypt(&key, &v, OAEP256, b""),
            "MissingParameter",
            "Plaintext",
        );
    }
}

#[test]
fn oaep_encryption_is_randomized() {
    let env = Env::new();
    let (key, v) = env.key(KeySpec::Rsa2048, None);
    let a = env.asym_encrypt(&key, &v, OAEP256, b"same").unwrap();
    let b = env.asym_encrypt(&key, &v, OAEP256, b"same").unwrap();
    assert_ne!(a, b);
    assert_eq!(env.asym_decrypt(&key, &v, OAEP256, &a).unwrap(), b"same");
    assert_eq!(env.asym_decrypt(&key, &v, OAEP256, &b).unwrap(), b"same");
}

#[test]
fn garbage_ciphertext_is_invalid_ciphertext() {
    let env = Env::new();
    let (key, v) = env.key(KeySpec::Rsa2048, None);
    let good = env.asym_encrypt(&key, &v, OAEP256, b"secret").unwrap();
    let mut flipped = good.clone();
    flipped[100] ^= 0x80;
    let cases: Vec<Vec<u8>> = vec![
        random_bytes(256),
        vec![0u8; 256],
        vec![0xffu8; 256], // larger than the modulus
        good[1..].to_vec(),
        [good.clone(), vec![0]].concat(),
        random_bytes(1),
        random_bytes(512),
        flipped,
    ];
    for ct in &cases {
        for alg in [OAEP256, OAEP1] {
            expect_err(env.asym_decrypt(&key, &v, alg, ct), "InvalidCiphertext");
        }
    }
    // The right ciphertext with the other OAEP hash does not decrypt either.
    expect_err(
        env.asym_decrypt(&key, &v, OAEP1, &good),
        "InvalidCiphertext",
    );
    // Decrypt under another key of the same spec fails the same way.
    let (other, ov) = env.key(KeySpec::Rsa2048, None);
    expect_err(
        env.asym_decrypt(&other, &ov, OAEP256, &good),
        "InvalidCiphertext",
    );
    expect_param_err(
        env.asym_decrypt(&key, &v, OAEP256, &[]),
        "MissingParameter",
        "CiphertextBlob",
    );
    // The key is still fine afterwards.
    assert_eq!(
        env.asym_decrypt(&key, &v, OAEP256, &good).unwrap(),
        b"secret"
    );
}

#[test]
fn asymmetric_encryption_needs_an_rsa_encrypt_decrypt_key_and_an_oaep_algorithm() {
    let env = Env::new();
    let (rsa_sign, rsv) = env.key(KeySpec::Rsa2048, Some(KeyUsage::SignVerify));
    let (ec, ev) = env.key(KeySpec::EcP256, None);
    let (k1, kv) = env.key(KeySpec::EcP256K, None);
    let (rsa_enc, rev) = env.key(KeySpec::Rsa2048, None);
    let ct = env.asym_encrypt(&rsa_enc, &rev, OAEP256, b"x").unwrap();
    for (key, v) in [(&rsa_sign, &rsv), (&ec, &ev), (&k1, &kv)] {
        expect_err(
            env.asym_encrypt(key, v, OAEP256, b"x"),
            "Rejected.UnsupportedOperation",
        );
        expect_err(
            env.asym_decrypt(key, v, OAEP256, &ct),
            "Rejected.UnsupportedOperation",
        );
    }
    // An ENCRYPT/DECRYPT RSA key does not sign.
    for alg in [PSS, PKCS1] {
        expect_err(
            env.sign(&rsa_enc, &rev, alg, &sha256(b"m")),
            "Rejected.UnsupportedOperation",
        );
        expect_err(
            env.verify(&rsa_enc, &rev, alg, &sha256(b"m"), &[0; 256]),
            "Rejected.UnsupportedOperation",
        );
    }
    // PKCS#1 v1.5 encryption is for wrapping imported material only; signing names are not
    // encryption algorithms.
    for bad in ["RSAES_PKCS1_V1_5", PSS, "RSAES_OAEP_SHA_512"] {
        expect_param_err(
            env.asym_encrypt(&rsa_enc, &rev, bad, b"x"),
            "InvalidParameter",
            "Algorithm",
        );
        expect_param_err(
            env.asym_decrypt(&rsa_enc, &rev, bad, &ct),
            "InvalidParameter",
            "Algorithm",
        );
    }
    expect_param_err(
        env.asym_encrypt(&rsa_enc, &rev, "", b"x"),
        "MissingParameter",
        "Algorithm",
    );
}

#[test]
fn symmetric_and_asymmetric_operations_do_not_cross_key_types() {
    let env = Env::new();
    let (rsa, rv) = env.key(KeySpec::Rsa2048, None);
    let (ec, _) = env.key(KeySpec::EcP256, None);
    for key in [&rsa, &ec] {
        expect_err(env.encrypt(key, b"x"), "Rejected.UnsupportedOperation");
        expect_err(
            env.kms.generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: key.clone(),
                    ..Default::default()
                },
            ),
            "Rejected.UnsupportedOperation",
        );
    }
    // Asymmetric operations on an AES key.
    let (aes, av) = env.key(KeySpec::Aes256, None);
    expect_err(
        env.public_key_pem(&aes, &av),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        env.sign(&aes, &av, ECDSA, &sha256(b"m")),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        env.asym_encrypt(&aes, &av, OAEP256, b"x"),
        "Rejected.UnsupportedOperation",
    );
    // A symmetric blob is not decrypted by AsymmetricDecrypt, and an RSA ciphertext is not a
    // symmetric blob.
    let blob = env.encrypt(&aes, b"x").unwrap();
    expect_err(
        env.asym_decrypt(&rsa, &rv, OAEP256, &blob),
        "InvalidCiphertext",
    );
    let rsa_ct = env.asym_encrypt(&rsa, &rv, OAEP256, b"x").unwrap();
    expect_err(env.decrypt(&rsa_ct), "InvalidCiphertext");
}

// ---- GetPublicKey ----------------------------------------------------------------------------

#[test]
fn get_public_key_returns_a_pem_spki_of_the_key() {
    use k256::pkcs8::DecodePublicKey as _;
    let env = Env::new();
    for spec in ASYM_SPECS {
        let usage = if spec == KeySpec::Rsa3072 {
            Some(KeyUsage::SignVerify)
        } else {
            None
        };
        let (key, v) = env.key(spec, usage);
        let r = env
            .kms
            .get_public_key(
                &env.me,
                GetPublicKeyRequest {
                    key_id: key.clone(),
                    key_version_id: v.clone(),
                },
            )
            .unwrap();
        assert_eq!((r.key_id.as_str(), r.key_version_id.as_str()), (&*key, &*v));
        assert!(r.public_key.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(r.public_key.ends_with("-----END PUBLIC KEY-----\n"));
        let der = pem_to_der(&r.public_key);
        match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                use rsa::traits::PublicKeyParts;
                let k = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
                let bits = if spec == KeySpec::Rsa2048 { 2048 } else { 3072 };
                assert_eq!(k.n_bytes().len() * 8, bits);
                assert_eq!(k.n_bytes()[0] & 0x80, 0x80, "a full-size modulus");
                assert_eq!(k.e_bytes().as_ref(), &[1, 0, 1], "e = 65537");
            }
            KeySpec::EcP256 => {
                p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
                assert!(k256::ecdsa::VerifyingKey::from_public_key_der(&der).is_err());
            }
            _ => {
                k256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
                assert!(p256::ecdsa::VerifyingKey::from_public_key_der(&der).is_err());
            }
        }
        // Stable across calls.
        assert_eq!(env.public_key_pem(&key, &v).unwrap(), r.public_key);
    }
}

// ---- Versions --------------------------------------------------------------------------------

#[test]
fn create_key_version_makes_a_new_primary_and_old_versions_keep_signing_and_verifying() {
    let env = Env::new();
    for (spec, alg) in [
        (KeySpec::Rsa2048, PSS),
        (KeySpec::EcP256, ECDSA),
        (KeySpec::EcP256K, ECDSA),
    ] {
        let (key, v1) = env.key(spec, Some(KeyUsage::SignVerify));
        let d = sha256(b"before rotation");
        let sig1 = env.sign(&key, &v1, alg, &d).unwrap();
        env.clock.advance(60);
        let v2 = env.new_version(&key).unwrap();
        assert_ne!(v1, v2);
        let m = env.describe(&key);
        assert_eq!(m.primary_key_version.as_deref(), Some(v2.as_str()));
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
        let ids: Vec<_> = versions
            .key_versions
            .key_version
            .iter()
            .map(|k| k.key_version_id.clone())
            .collect();
        assert_eq!(ids, vec![v1.clone(), v2.clone()]);

        // New version: its own key.
        assert_ne!(
            env.public_key_pem(&key, &v1).unwrap(),
            env.public_key_pem(&key, &v2).unwrap()
        );
        let sig2 = env.sign(&key, &v2, alg, &d).unwrap();
        assert!(env.verify(&key, &v2, alg, &d, &sig2).unwrap());
        assert!(!env.verify(&key, &v2, alg, &d, &sig1).unwrap());
        assert!(!env.verify(&key, &v1, alg, &d, &sig2).unwrap());
        // Old version: still signs and verifies by explicit KeyVersionId.
        assert!(env.verify(&key, &v1, alg, &d, &sig1).unwrap());
        let sig1b = env.sign(&key, &v1, alg, &sha256(b"after")).unwrap();
        assert!(env
            .verify(&key, &v1, alg, &sha256(b"after"), &sig1b)
            .unwrap());
    }
}

#[test]
fn old_rsa_versions_keep_decrypting_after_create_key_version() {
    let env = Env::new();
    let (key, v1) = env.key(KeySpec::Rsa2048, None);
    let ct1 = env.asym_encrypt(&key, &v1, OAEP1, b"old data").unwrap();
    let v2 = env.new_version(&key).unwrap();
    let v3 = env.new_version(&key).unwrap();
    assert_eq!(
        env.describe(&key).primary_key_version.as_deref(),
        Some(v3.as_str())
    );
    assert_eq!(
        env.asym_decrypt(&key, &v1, OAEP1, &ct1).unwrap(),
        b"old data"
    );
    expect_err(
        env.asym_decrypt(&key, &v2, OAEP1, &ct1),
        "InvalidCiphertext",
    );
    let ct2 = env.asym_encrypt(&key, &v2, OAEP256, b"v2 data").unwrap();
    assert_eq!(
        env.asym_decrypt(&key, &v2, OAEP256, &ct2).unwrap(),
        b"v2 data"
    );
    // A fresh engine on the same storage loads the old versions from their sealed records.
    let again = env.reopen(None);
    let r = again
        .asymmetric_decrypt(
            &env.me,
            AsymmetricDecryptRequest {
                key_id: key.clone(),
                key_version_id: v1.clone(),
                algorithm: OAEP1.into(),
                ciphertext_blob: ct1,
            },
        )
        .unwrap();
    assert_eq!(&r.plaintext[..], b"old data");
}

// ---- State rules -----------------------------------------------------------------------------

#[test]
fn a_disabled_asymmetric_key_rejects_every_asymmetric_operation() {
    let env = Env::new();
    let (sk, sv) = env.key(KeySpec::EcP256, None);
    let (ek, ev) = env.key(KeySpec::Rsa2048, None);
    let d = sha256(b"m");
    let sig = env.sign(&sk, &sv, ECDSA, &d).unwrap();
    let ct = env.asym_encrypt(&ek, &ev, OAEP256, b"x").unwrap();
    env.disable(&sk);
    env.disable(&ek);
    expect_err(env.sign(&sk, &sv, ECDSA, &d), "Rejected.Disabled");
    expect_err(env.verify(&sk, &sv, ECDSA, &d, &sig), "Rejected.Disabled");
    expect_err(env.public_key_pem(&sk, &sv), "Rejected.Disabled");
    expect_err(
        env.asym_encrypt(&ek, &ev, OAEP256, b"x"),
        "Rejected.Disabled",
    );
    expect_err(
        env.asym_decrypt(&ek, &ev, OAEP256, &ct),
        "Rejected.Disabled",
    );
    expect_err(env.public_key_pem(&ek, &ev), "Rejected.Disabled");
    expect_err(env.new_version(&ek), "Rejected.Disabled");

    // Enabled again: everything works, with the same keys.
    for k in [&sk, &ek] {
        env.kms
            .enable_key(&env.me, EnableKeyRequest { key_id: k.clone() })
            .unwrap();
    }
    assert!(env.verify(&sk, &sv, ECDSA, &d, &sig).unwrap());
    assert_eq!(env.asym_decrypt(&ek, &ev, OAEP256, &ct).unwrap(), b"x");
}

#[test]
fn a_pending_deletion_asymmetric_key_rejects_every_asymmetric_operation() {
    let env = Env::new();
    let (sk, sv) = env.key(KeySpec::EcP256K, None);
    let (ek, ev) = env.key(KeySpec::Rsa2048, None);
    let d = sha256(b"m");
    let sig = env.sign(&sk, &sv, ECDSA, &d).unwrap();
    let ct = env.asym_encrypt(&ek, &ev, OAEP256, b"x").unwrap();
    env.schedule_deletion(&sk, 7).unwrap();
    env.schedule_deletion(&ek, 7).unwrap();
    expect_err(env.sign(&sk, &sv, ECDSA, &d), "Rejected.PendingDeletion");
    expect_err(
        env.verify(&sk, &sv, ECDSA, &d, &sig),
        "Rejected.PendingDeletion",
    );
    expect_err(env.public_key_pem(&sk, &sv), "Rejected.PendingDeletion");
    expect_err(
        env.asym_decrypt(&ek, &ev, OAEP256, &ct),
        "Rejected.PendingDeletion",
    );
    // Past the DeleteDate the key is gone, even before maintenance.
    env.clock.advance_days(7);
    expect_err(env.sign(&sk, &sv, ECDSA, &d), "Forbidden.KeyNotFound");
    expect_err(
        env.asym_decrypt(&ek, &ev, OAEP256, &ct),
        "Forbidden.KeyNotFound",
    );
    let report = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(report.purged_keys.len(), 2);
    assert!(env.storage.current_under(b"v/").is_empty());
}

// ---- openssl cross-checks --------------------------------------------------------------------

/// Writes the engine's PEM, a digest and a signature, and asks `openssl pkeyutl -verify`.
fn openssl_verifies(pem: &str, digest: &[u8], sig: &[u8], extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), pem).unwrap();
    std::fs::write(dir.path().join("digest.bin"), digest).unwrap();
    std::fs::write(dir.path().join("sig.bin"), sig).unwrap();
    let mut args = vec![
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-in",
        "digest.bin",
        "-sigfile",
        "sig.bin",
        "-pkeyopt",
        "digest:sha256",
    ];
    args.extend_from_slice(extra);
    try_openssl(dir.path(), &args)
}

#[test]
fn engine_signatures_verify_with_openssl() {
    let env = Env::new();
    let pss = [
        "-pkeyopt",
        "rsa_padding_mode:pss",
        "-pkeyopt",
        "rsa_pss_saltlen:32",
    ];
    let cases: [(KeySpec, &str, &[&str]); 6] = [
        (KeySpec::EcP256, ECDSA, &[]),
        (KeySpec::EcP256K, ECDSA, &[]),
        (KeySpec::Rsa2048, PKCS1, &[]),
        (KeySpec::Rsa2048, PSS, &pss),
        (KeySpec::Rsa3072, PKCS1, &[]),
        (KeySpec::Rsa3072, PSS, &pss),
    ];
    for (spec, alg, extra) in cases {
        let (key, v) = env.key(spec, Some(KeyUsage::SignVerify));
        let pem = env.public_key_pem(&key, &v).unwrap();
        for i in 0..3 {
            let digest = sha256(format!("openssl {spec} {alg} {i}").as_bytes());
            let sig = env.sign(&key, &v, alg, &digest).unwrap();
            let (ok, out) = openssl_verifies(&pem, &digest, &sig, extra);
            assert!(
                ok,
                "openssl rejected the engine's {spec} {alg} signature: {out}"
            );
            assert!(out.contains("Signature Verified Successfully"), "{out}");
            // openssl really checks: another digest fails.
            let (ok, _) = openssl_verifies(&pem, &sha256(b"other"), &sig, extra);
            assert!(
                !ok,
                "openssl accepted a {spec} {alg} signature of another digest"
            );
        }
    }
}

#[test]
fn openssl_oaep_ciphertexts_decrypt_with_asymmetric_decrypt() {
    let env = Env::new();
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072] {
        let (key, v) = env.key(spec, None);
        let pem = env.public_key_pem(&key, &v).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pub.pem"), &pem).unwrap();
        for (alg, md, limit) in [
            (
                OAEP256,
                "sha256",
                if spec == KeySpec::Rsa2048 { 190 } else { 318 },
            ),
            (
                OAEP1,
                "sha1",
                if spec == KeySpec::Rsa2048 { 214 } else { 342 },
            ),
        ] {
            for len in [1, 32, limit] {
                let msg = random_bytes(len);
                std::fs::write(dir.path().join("msg.bin"), &msg).unwrap();
                let oaep_md = format!("rsa_oaep_md:{md}");
                let mgf1_md = format!("rsa_mgf1_md:{md}");
                run_openssl(
                    dir.path(),
                    &[
                        "pkeyutl",
                        "-encrypt",
                        "-pubin",
                        "-inkey",
                        "pub.pem",
                        "-in",
                        "msg.bin",
                        "-out",
                        "ct.bin",
                        "-pkeyopt",
                        "rsa_padding_mode:oaep",
                        "-pkeyopt",
                        &oaep_md,
                        "-pkeyopt",
                        &mgf1_md,
                    ],
                );
                let ct = std::fs::read(dir.path().join("ct.bin")).unwrap();
                assert_eq!(
                    env.asym_decrypt(&key, &v, alg, &ct).unwrap(),
                    msg,
                    "{spec} {alg} {len}"
                );
                // The other hash does not decrypt it.
                let other = if alg == OAEP256 { OAEP1 } else { OAEP256 };
                expect_err(env.asym_decrypt(&key, &v, other, &ct), "InvalidCiphertext");
            }
        }
    }
}

#[test]
fn engine_oaep_ciphertexts_decrypt_with_the_rsa_crate_private_key_round_trip_via_openssl_pem() {
    // The other direction: the engine's public key (PEM from GetPublicKey, read by openssl)
    // matches what openssl derives as the modulus; and ciphertexts from AsymmetricEncrypt are
    // the modulus length.
    let env = Env::new();
    let (key, v) = env.key(KeySpec::Rsa2048, None);
    let pem = env.public_key_pem(&key, &v).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pub.pem"), &pem).unwrap();
    let out = run_openssl(
        dir.path(),
        &["rsa", "-pubin", "-in", "pub.pem", "-noout", "-modulus"],
    );
    let text = String::from_utf8(out).unwrap();
    let hex_modulus = text.trim().strip_prefix("Modulus=").unwrap().to_lowercase();
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let k = rsa::RsaPublicKey::from_public_key_der(&pem_to_der(&pem)).unwrap();
    let n: String = k.n_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex_modulus, n);
}

/// Makes a key with `openssl genpkey`, signs digests with `openssl pkeyutl -sign`, and checks
/// the signatures with the engine's verify code (`kms_core::PublicKey`).
#[test]
fn openssl_signatures_verify_with_the_engine_public_key_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&str, &[&str], SigningAlgorithm, &[&str]); 5] = [
        (
            "EC P-256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            SigningAlgorithm::EcdsaSha256,
            &[],
        ),
        (
            "EC secp256k1",
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:secp256k1",
            ],
            SigningAlgorithm::EcdsaSha256,
            &[],
        ),
        (
            "RSA PKCS1",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            SigningAlgorithm::RsaPkcs1Sha256,
            &[],
        ),
        (
            "RSA PSS salt 32",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            SigningAlgorithm::RsaPssSha256,
            &[
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "rsa_pss_saltlen:32",
            ],
        ),
        (
            // docs/operations.md: verify accepts any salt length.
            "RSA PSS salt max",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            SigningAlgorithm::RsaPssSha256,
            &[
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "rsa_pss_saltlen:max",
            ],
        ),
    ];
    let mut high_s_seen = 0;
    for (name, genargs, alg, signargs) in cases {
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genargs);
        args.extend_from_slice(&["-out", "key.pem"]);
        run_openssl(d, &args);
        run_openssl(
            d,
            &[
                "pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
            ],
        );
        let spki = std::fs::read(d.join("pub.der")).unwrap();
        let public = PublicKey::from_spki_der("PublicKey", &spki).unwrap();
        // secp256k1: openssl makes high-S signatures about half the time; sign enough to
        // meet some.
        let rounds = if name == "EC secp256k1" { 24 } else { 3 };
        for i in 0..rounds {
            let digest = sha256(format!("{name} {i}").as_bytes());
            std::fs::write(d.join("digest.bin"), &digest).unwrap();
            let mut args = vec![
                "pkeyutl",
                "-sign",
                "-inkey",
                "key.pem",
                "-in",
                "digest.bin",
                "-out",
                "sig.bin",
                "-pkeyopt",
                "digest:sha256",
            ];
            args.extend_from_slice(signargs);
            run_openssl(d, &args);
            let sig = std::fs::read(d.join("sig.bin")).unwrap();
            if name == "EC secp256k1" {
                let parsed = k256::ecdsa::Signature::from_der(&sig).unwrap();
                if parsed.normalize_s() != parsed {
                    high_s_seen += 1;
                }
            }
            assert!(
                public.verify(alg, &digest, &sig).unwrap(),
                "{name}: the engine rejected openssl's signature #{i}"
            );
            assert!(!public.verify(alg, &sha256(b"other"), &sig).unwrap());
        }
    }
    assert!(high_s_seen > 0, "no high-S secp256k1 signature in 24 tries");
}

// ---- RustCrypto cross-checks -----------------------------------------------------------------

#[test]
fn engine_signatures_verify_with_the_rustcrypto_crates() {
    use rsa::pkcs8::DecodePublicKey;
    use signature::hazmat::PrehashVerifier;
    let env = Env::new();
    let d = sha256(b"cross-check");

    let (key, v) = env.key(KeySpec::EcP256, None);
    let der = pem_to_der(&env.public_key_pem(&key, &v).unwrap());
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    for _ in 0..4 {
        let sig = env.sign(&key, &v, ECDSA, &d).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        vk.verify_prehash(&d, &sig).unwrap();
    }

    let (key, v) = env.key(KeySpec::EcP256K, None);
    let der = pem_to_der(&env.public_key_pem(&key, &v).unwrap());
    let vk = k256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    for _ in 0..4 {
        let sig = env.sign(&key, &v, ECDSA, &d).unwrap();
        let sig = k256::ecdsa::Signature::from_der(&sig).unwrap();
        // The engine makes low-S signatures (which strict verifiers such as k256 require).
        assert_eq!(sig.normalize_s(), sig);
        vk.verify_prehash(&d, &sig).unwrap();
    }

    let (key, v) = env.key(KeySpec::Rsa2048, Some(KeyUsage::SignVerify));
    let der = pem_to_der(&env.public_key_pem(&key, &v).unwrap());
    let pk = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
    let sig = env.sign(&key, &v, PKCS1, &d).unwrap();
    pk.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d, &sig)
        .unwrap();
    let sig = env.sign(&key, &v, PSS, &d).unwrap();
    // docs/operations.md: MGF1-SHA-256 and a 32-byte salt exactly.
    pk.verify(rsa::Pss::<sha2::Sha256>::new_with_salt(32), &d, &sig)
        .unwrap();
    assert!(pk
        .verify(rsa::Pss::<sha2::Sha256>::new_with_salt(20), &d, &sig)
        .is_err());
}

#[test]
fn rustcrypto_signatures_verify_with_the_engine_public_key_code() {
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::EncodePublicKey;
    use signature::hazmat::PrehashSigner;

    let d = sha256(b"signed outside");
    let sk = p256::ecdsa::SigningKey::generate_from_rng(&mut TestRng);
    let spki = sk.verifying_key().to_public_key_der().unwrap();
    let public = PublicKey::from_spki_der("PublicKey", spki.as_bytes()).unwrap();
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&d).unwrap();
    let der = sig.to_der();
    assert!(public
        .verify(SigningAlgorithm::EcdsaSha256, &d, der.as_bytes())
        .unwrap());
    // P-256 ECDSA accepts both S forms.
    let (r, s) = sig.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert!(public
        .verify(
            SigningAlgorithm::EcdsaSha256,
            &d,
            flipped.to_der().as_bytes()
        )
        .unwrap());
    // A fixed-size (P1363) signature is not DER: false, not an error.
    assert!(!public
        .verify(SigningAlgorithm::EcdsaSha256, &d, &sig.to_bytes())
        .unwrap());

    let sk = k256::ecdsa::SigningKey::generate_from_rng(&mut TestRng);
    let spki = sk.verifying_key().to_public_key_der().unwrap();
    let public = PublicKey::from_spki_der("PublicKey", spki.as_bytes()).unwrap();
    let sig: k256::ecdsa::Signature = sk.sign_prehash(&d).unwrap();
    assert!(public
        .verify(SigningAlgorithm::EcdsaSha256, &d, sig.to_der().as_bytes())
        .unwrap());
    // The same signature with S replaced by n - S is an equally valid ECDSA signature
    // (plain ECDSA, as openssl and Alibaba KMS verify; only Bitcoin forbids high S).
    let (r, s) = sig.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert_ne!(high.normalize_s(), high, "constructed a high-S signature");
    assert!(
        public
            .verify(SigningAlgorithm::EcdsaSha256, &d, high.to_der().as_bytes())
            .unwrap(),
        "a valid high-S secp256k1 signature must verify"
    );
    assert!(!public
        .verify(
            SigningAlgorithm::EcdsaSha256,
            &sha256(b"x"),
            high.to_der().as_bytes()
        )
        .unwrap());

    // RSA: the rsa crate signs, the engine verifies.
    let key = rsa_2048();
    let public = PublicKey::from_spki_der("PublicKey", &rsa_spki(key)).unwrap();
    let sig = key
        .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &d)
        .unwrap();
    assert!(public
        .verify(SigningAlgorithm::RsaPkcs1Sha256, &d, &sig)
        .unwrap());
    assert!(!public
        .verify(SigningAlgorithm::RsaPssSha256, &d, &sig)
        .unwrap());
    for salt in [0, 20, 32, 64] {
        let sig = key
            .sign_with_rng(
                &mut TestRng,
                rsa::Pss::<sha2::Sha256>::new_with_salt(salt),
                &d,
            )
            .unwrap();
        assert!(
            public
                .verify(SigningAlgorithm::RsaPssSha256, &d, &sig)
                .unwrap(),
            "PSS salt {salt}"
        );
    }
}

// ---- ExportDataKey / GenerateAndExportDataKey ------------------------------------------------

fn rsa_decrypt(key: &rsa::RsaPrivateKey, alg: &str, ct: &[u8]) -> Vec<u8> {
    match alg {
        OAEP256 => key.decrypt(rsa::Oaep::<sha2::Sha256>::new(), ct).unwrap(),
        OAEP1 => key.decrypt(rsa::Oaep::<sha1::Sha1>::new(), ct).unwrap(),
        other => panic!("{other}"),
    }
}

#[test]
fn export_data_key_wraps_the_data_key_under_the_callers_rsa_public_key() {
    let env = Env::new();
    let (cmk, _) = env.key(KeySpec::Aes256, None);
    let private = rsa_2048();
    let spki = rsa_spki(private);
    let context: EncryptionContext = [("purpose".to_string(), "export".to_string())].into();
    for (alg, len) in [(OAEP256, Some(32)), (OAEP1, Some(16)), (OAEP256, Some(190))] {
        let dk = env
            .kms
            .generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: cmk.clone(),
                    number_of_bytes: len,
                    encryption_context: context.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        let r = env
            .kms
            .export_data_key(
                &env.me,
                ExportDataKeyRequest {
                    ciphertext_blob: dk.ciphertext_blob.clone(),
                    public_key_blob: spki.clone(),
                    wrapping_key_spec: "RSA_2048".into(),
                    wrapping_algorithm: alg.into(),
                    encryption_context: context.clone(),
                },
            )
            .unwrap();
        assert_eq!(r.key_id, dk.key_id);
        assert_eq!(r.key_version_id, dk.key_version_id);
        assert_eq!(r.exported_data_key.len(), 256);
        assert_eq!(
            rsa_decrypt(private, alg, &r.exported_data_key),
            dk.plaintext.to_vec()
        );
        // The context must match, as for Decrypt.
        expect_err(
            env.kms.export_data_key(
                &env.me,
                ExportDataKeyRequest {
                    ciphertext_blob: dk.ciphertext_blob.clone(),
                    public_key_blob: spki.clone(),
                    wrapping_key_spec: "RSA_2048".into(),
                    wrapping_algorithm: alg.into(),
                    encryption_context: Default::default(),
                },
            ),
            "InvalidCiphertext",
        );
    }
    // A blob from GenerateDataKeyWithoutPlaintext exports too.
    let blob = env
        .kms
        .generate_data_key_without_plaintext(
            &env.me,
            GenerateDataKeyWithoutPlaintextRequest {
                key_id: cmk.clone(),
                ..Default::default()
            },
        )
        .unwrap()
        .ciphertext_blob;
    let r = env
        .kms
        .export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: blob.clone(),
                public_key_blob: spki.clone(),
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        )
        .unwrap();
    let exported = rsa_decrypt(private, OAEP256, &r.exported_data_key);
    let text = env.decrypt(&blob).unwrap();
    assert_eq!(b64(&exported).as_bytes(), &text[..]);
}

#[test]
fn generate_and_export_data_key_returns_the_same_key_under_the_cmk_and_the_public_key() {
    let env = Env::new();
    let (cmk, cv) = env.key(KeySpec::Aes128, None);
    let private = rsa_2048();
    for (alg, spec, n) in [
        (OAEP256, None, None),
        (OAEP1, Some("AES_128"), None),
        (OAEP256, None, Some(64)),
    ] {
        let r = env
            .kms
            .generate_and_export_data_key(
                &env.me,
                GenerateAndExportDataKeyRequest {
                    key_id: cmk.clone(),
                    key_spec: spec.map(str::to_string),
                    number_of_bytes: n,
                    public_key_blob: rsa_spki(private),
                    wrapping_key_spec: "RSA_2048".into(),
                    wrapping_algorithm: alg.into(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            (r.key_id.as_str(), r.key_version_id.as_str()),
            (&*cmk, &*cv)
        );
        let exported = rsa_decrypt(private, alg, &r.exported_data_key);
        let want = n.map(|n| n as usize).unwrap_or(match spec {
            Some("AES_128") => 16,
            _ => 32,
        });
        assert_eq!(exported.len(), want);
        // Decrypt of the CMK blob gives the Base64 text of the same data key.
        assert_eq!(
            env.decrypt(&r.ciphertext_blob).unwrap(),
            b64(&exported).as_bytes()
        );
    }
}

#[test]
fn export_data_key_to_an_engine_rsa_3072_key_decrypts_with_asymmetric_decrypt() {
    let env = Env::new();
    let (cmk, _) = env.key(KeySpec::Aes256, None);
    let (rsa, rv) = env.key(KeySpec::Rsa3072, None);
    let spki = pem_to_der(&env.public_key_pem(&rsa, &rv).unwrap());
    let dk = env
        .kms
        .generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: cmk.clone(),
                number_of_bytes: Some(318),
                ..Default::default()
            },
        )
        .unwrap();
    let r = env
        .kms
        .export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: dk.ciphertext_blob,
                public_key_blob: spki.clone(),
                wrapping_key_spec: "RSA_3072".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.exported_data_key.len(), 384);
    assert_eq!(
        env.asym_decrypt(&rsa, &rv, OAEP256, &r.exported_data_key)
            .unwrap(),
        dk.plaintext.to_vec()
    );
    // WrappingKeySpec RSA_2048 does not fit a 3072-bit key.
    expect_err(
        env.kms.generate_and_export_data_key(
            &env.me,
            GenerateAndExportDataKeyRequest {
                key_id: cmk,
                public_key_blob: spki,
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP1.into(),
                ..Default::default()
            },
        ),
        "InvalidParameter",
    );
}

#[test]
fn export_wrapping_key_spec_and_algorithm_must_fit_the_public_key() {
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::EncodePublicKey;
    let env = Env::new();
    let (cmk, _) = env.key(KeySpec::Aes256, None);
    let dk = env
        .kms
        .generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: cmk.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let spki = rsa_spki(rsa_2048());
    let ec_spki = p256::ecdsa::SigningKey::generate_from_rng(&mut TestRng)
        .verifying_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let export = |blob: &[u8], spec: &str, alg: &str| {
        env.kms.export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: dk.ciphertext_blob.clone(),
                public_key_blob: blob.to_vec(),
                wrapping_key_spec: spec.into(),
                wrapping_algorithm: alg.into(),
                ..Default::default()
            },
        )
    };
    let gen_export = |blob: &[u8], spec: &str, alg: &str| {
        env.kms.generate_and_export_data_key(
            &env.me,
            GenerateAndExportDataKeyRequest {
                key_id: cmk.clone(),
                public_key_blob: blob.to_vec(),
                wrapping_key_spec: spec.into(),
                wrapping_algorithm: alg.into(),
                ..Default::default()
            },
        )
    };
    // WrappingKeySpec mismatching the public key.
    for spec in ["RSA_3072", "RSA_4096"] {
        let e = export(&spki, spec, OAEP256).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter", "{e}");
        let e = gen_export(&spki, spec, OAEP256).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter", "{e}");
    }
    // An EC public key is not an RSA wrapping key.
    expect_err(export(&ec_spki, "RSA_2048", OAEP256), "InvalidParameter");
    expect_err(
        gen_export(&ec_spki, "RSA_2048", OAEP256),
        "InvalidParameter",
    );
    // Bad and missing names.
    expect_param_err(
        export(&spki, "RSA_1024", OAEP256),
        "InvalidParameter",
        "WrappingKeySpec",
    );
    expect_param_err(
        export(&spki, "EC_P256", OAEP256),
        "InvalidParameter",
        "WrappingKeySpec",
    );
    expect_param_err(
        export(&spki, "", OAEP256),
        "MissingParameter",
        "WrappingKeySpec",
    );
    expect_param_err(
        export(&spki, "RSA_2048", ""),
        "MissingParameter",
        "WrappingAlgorithm",
    );
    expect_param_err(
        export(&[], "RSA_2048", OAEP256),
        "MissingParameter",
        "PublicKeyBlob",
    );
    // PKCS#1 v1.5 is refused for exports.
    expect_param_err(
        export(&spki, "RSA_2048", "RSAES_PKCS1_V1_5"),
        "InvalidParameter",
        "WrappingAlgorithm",
    );
    expect_param_err(
        gen_export(&spki, "RSA_2048", "RSAES_PKCS1_V1_5"),
        "InvalidParameter",
        "WrappingAlgorithm",
    );
    expect_param_err(
        export(&spki, "RSA_2048", PSS),
        "InvalidParameter",
        "WrappingAlgorithm",
    );
}

#[test]
fn export_data_key_of_a_blob_that_is_not_a_data_key_is_invalid_parameter() {
    let env = Env::new();
    let (cmk, _) = env.key(KeySpec::Aes256, None);
    let spki = rsa_spki(rsa_2048());
    for plaintext in [
        &b"hello world!"[..],
        b"not base64 at all",
        &[b'A'; 2000][..],
    ] {
        let blob = env.encrypt(&cmk, plaintext).unwrap();
        expect_param_err(
            env.kms.export_data_key(
                &env.me,
                ExportDataKeyRequest {
                    ciphertext_blob: blob,
                    public_key_blob: spki.clone(),
                    wrapping_key_spec: "RSA_2048".into(),
                    wrapping_algorithm: OAEP256.into(),
                    ..Default::default()
                },
            ),
            "InvalidParameter",
            "CiphertextBlob",
        );
    }
    // A data key longer than the OAEP limit of the wrapping key is refused, not truncated.
    let dk = env
        .kms
        .generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: cmk.clone(),
                number_of_bytes: Some(191),
                ..Default::default()
            },
        )
        .unwrap();
    expect_err(
        env.kms.export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: dk.ciphertext_blob,
                public_key_blob: spki.clone(),
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        ),
        "InvalidParameter",
    );
    // Garbage blobs are InvalidCiphertext.
    expect_err(
        env.kms.export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: random_bytes(80),
                public_key_blob: spki,
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        ),
        "InvalidCiphertext",
    );
}

#[test]
fn export_data_key_follows_the_state_of_the_cmk() {
    let env = Env::new();
    let (cmk, _) = env.key(KeySpec::Aes256, None);
    let dk = env
        .kms
        .generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: cmk.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    env.disable(&cmk);
    let spki = rsa_spki(rsa_2048());
    expect_err(
        env.kms.export_data_key(
            &env.me,
            ExportDataKeyRequest {
                ciphertext_blob: dk.ciphertext_blob,
                public_key_blob: spki.clone(),
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        ),
        "Rejected.Disabled",
    );
    expect_err(
        env.kms.generate_and_export_data_key(
            &env.me,
            GenerateAndExportDataKeyRequest {
                key_id: cmk,
                public_key_blob: spki,
                wrapping_key_spec: "RSA_2048".into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            },
        ),
        "Rejected.Disabled",
    );
}

// ---- ReEncrypt from an asymmetric source -----------------------------------------------------

#[test]
fn re_encrypt_from_an_asymmetric_source_to_a_symmetric_key() {
    let env = Env::new();
    let (rsa, rv) = env.key(KeySpec::Rsa2048, None);
    let (aes, _) = env.key(KeySpec::Aes256, None);
    let dest_ctx: EncryptionContext = [("to".to_string(), "aes".to_string())].into();
    for alg in [OAEP256, OAEP1] {
        let ct = env
            .asym_encrypt(&rsa, &rv, alg, b"moved to a symmetric key")
            .unwrap();
        let r = env
            .kms
            .re_encrypt(
                &env.me,
                ReEncryptRequest {
                    ciphertext_blob: ct.clone(),
                    destination_key_id: aes.clone(),
                    destination_encryption_context: dest_ctx.clone(),
                    source_key_id: Some(rsa.clone()),
                    source_key_version_id: Some(rv.clone()),
                    source_encryption_algorithm: Some(alg.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.key_id, aes);
        let plain = env
            .kms
            .decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: r.ciphertext_blob,
                    encryption_context: dest_ctx.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(&plain.plaintext[..], b"moved to a symmetric key");

        // The wrong algorithm fails as a bad ciphertext.
        let other = if alg == OAEP256 { OAEP1 } else { OAEP256 };
        expect_err(
            env.kms.re_encrypt(
                &env.me,
                ReEncryptRequest {
                    ciphertext_blob: ct.clone(),
                    destination_key_id: aes.clone(),
                    source_key_id: Some(rsa.clone()),
                    source_key_version_id: Some(rv.clone()),
                    source_encryption_algorithm: Some(other.into()),
                    ..Default::default()
                },
            ),
            "InvalidCiphertext",
        );
    }
    let ct = env.asym_encrypt(&rsa, &rv, OAEP256, b"x").unwrap();
    let base = ReEncryptRequest {
        ciphertext_blob: ct,
        destination_key_id: aes.clone(),
        source_key_id: Some(rsa.clone()),
        source_key_version_id: Some(rv.clone()),
        source_encryption_algorithm: Some(OAEP256.into()),
        ..Default::default()
    };
    // Each of the three source parameters is required once one is given.
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                source_key_version_id: None,
                ..base.clone()
            },
        ),
        "MissingParameter",
        "SourceKeyVersionId",
    );
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                source_key_id: None,
                ..base.clone()
            },
        ),
        "MissingParameter",
        "SourceKeyId",
    );
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                source_encryption_algorithm: None,
                ..base.clone()
            },
        ),
        "MissingParameter",
        "SourceEncryptionAlgorithm",
    );
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                source_encryption_algorithm: Some("RSAES_PKCS1_V1_5".into()),
                ..base.clone()
            },
        ),
        "InvalidParameter",
        "SourceEncryptionAlgorithm",
    );
    // An asymmetric destination is refused.
    let (rsa2, _) = env.key(KeySpec::Rsa2048, None);
    expect_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                destination_key_id: rsa2,
                ..base.clone()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    // A Disabled source key is refused by state.
    env.disable(&rsa);
    expect_err(env.kms.re_encrypt(&env.me, base), "Rejected.Disabled");
}

// ---- Malformed input never panics ------------------------------------------------------------

struct Fixture {
    env: Env,
    cmk_blob: Vec<u8>,
    keys: Vec<(String, String, &'static str)>,
    rsa_enc: (String, String),
    good_spki: Vec<u8>,
    good_pem: String,
}

// `Env` holds a `Kms`, which is `Sync`; one fixture serves every proptest case.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let env = Env::new();
        let (cmk, _) = env.key(KeySpec::Aes256, None);
        let cmk_blob = env
            .kms
            .generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: cmk,
                    ..Default::default()
                },
            )
            .unwrap()
            .ciphertext_blob;
        let mut keys = Vec::new();
        for (spec, alg) in [
            (KeySpec::Rsa2048, PSS),
            (KeySpec::Rsa2048, PKCS1),
            (KeySpec::EcP256, ECDSA),
            (KeySpec::EcP256K, ECDSA),
        ] {
            let (k, v) = env.key(spec, Some(KeyUsage::SignVerify));
            keys.push((k, v, alg));
        }
        let rsa_enc = env.key(KeySpec::Rsa2048, None);
        let good_pem = env.public_key_pem(&rsa_enc.0, &rsa_enc.1).unwrap();
        let good_spki = pem_to_der(&good_pem);
        Fixture {
            env,
            cmk_blob,
            keys,
            rsa_enc,
            good_spki,
            good_pem,
        }
    })
}

fn mutate(base: &[u8], seed: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    if out.is_empty() {
        return seed.to_vec();
    }
    match seed.first().copied().unwrap_or(0) % 4 {
        0 => {
            let cut = usize::from(seed.get(1).copied().unwrap_or(0)) % out.len();
            out.truncate(cut);
        }
        1 => {
            for (i, b) in seed.iter().enumerate().skip(1) {
                let at = (usize::from(*b) * 7 + i * 13) % out.len();
                out[at] ^= b | 1;
            }
        }
        2 => out.extend_from_slice(seed),
        _ => {
            let at = usize::from(seed.get(1).copied().unwrap_or(0)) % out.len();
            out.splice(at..at, seed.iter().copied());
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..Default::default()
    })]

    #[test]
    fn malformed_public_key_blobs_signatures_and_ciphertexts_never_panic(
        seed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        pick in 0usize..8,
    ) {
        let f = fixture();
        let env = &f.env;
        // PublicKeyBlob: random bytes, mutated DER, PEM text instead of DER, mutated PEM.
        let blob = match pick % 4 {
            0 => seed.clone(),
            1 => mutate(&f.good_spki, &seed),
            2 => f.good_pem.clone().into_bytes(),
            _ => mutate(f.good_pem.as_bytes(), &seed),
        };
        for spec in ["RSA_2048", "RSA_3072"] {
            let r = env.kms.export_data_key(&env.me, ExportDataKeyRequest {
                ciphertext_blob: f.cmk_blob.clone(),
                public_key_blob: blob.clone(),
                wrapping_key_spec: spec.into(),
                wrapping_algorithm: OAEP256.into(),
                ..Default::default()
            });
            match r {
                // A mutation that still parses as the same 2048-bit key may succeed.
                Ok(_) => proptest::prop_assert_eq!(spec, "RSA_2048"),
                Err(e) => proptest::prop_assert!(
                    matches!(e.code(), "InvalidParameter" | "MissingParameter"),
                    "{}", e
                ),
            }
        }

        // Value of AsymmetricVerify: false or (for an empty one) a parameter error.
        let (k, v, alg) = &f.keys[pick % f.keys.len()];
        let digest = sha256(&seed);
        match env.verify(k, v, alg, &digest, &seed) {
            Ok(ok) => proptest::prop_assert!(!ok),
            Err(e) => proptest::prop_assert!(
                seed.is_empty() && e.code() == "MissingParameter",
                "{}", e
            ),
        }
        let sig = env.sign(k, v, alg, &digest).unwrap();
        let bad = mutate(&sig, &seed);
        if bad != sig {
            proptest::prop_assert_eq!(env.verify(k, v, alg, &digest, &bad).ok(), Some(false));
        }

        // CiphertextBlob of AsymmetricDecrypt.
        let (ek, ev) = &f.rsa_enc;
        for alg in [OAEP256, OAEP1] {
            match env.asym_decrypt(ek, ev, alg, &seed) {
                Ok(_) => proptest::prop_assert!(false, "random bytes decrypted"),
                Err(e) => proptest::prop_assert!(
                    matches!(e.code(), "InvalidCiphertext" | "MissingParameter"),
                    "{}", e
                ),
            }
        }
        let good = env.asym_encrypt(ek, ev, OAEP256, b"p").unwrap();
        let bad = mutate(&good, &seed);
        if bad != good {
            // A mutation may truncate to nothing, which is a missing parameter.
            let want = if bad.is_empty() { "MissingParameter" } else { "InvalidCiphertext" };
            proptest::prop_assert_eq!(
                env.asym_decrypt(ek, ev, OAEP256, &bad).unwrap_err().code(),
                want
            );
        }
    }
}

#[test]
fn the_engine_is_usable_with_protection_level_software_named_explicitly() {
    let env = Env::new();
    let (key, v) = env.key_at(KeySpec::EcP256, None, ProtectionLevel::Software);
    assert_eq!(
        env.describe(&key).protection_level,
        ProtectionLevel::Software
    );
    let d = sha256(b"m");
    let sig = env.sign(&key, &v, ECDSA, &d).unwrap();
    assert!(env.verify(&key, &v, ECDSA, &d, &sig).unwrap());
}
