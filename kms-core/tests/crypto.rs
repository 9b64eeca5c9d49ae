#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Envelope encryption through the public API: Encrypt/Decrypt for every AES spec, plaintext
//! bounds, EncryptionContext binding, hostile blobs, GenerateDataKey*, ReEncrypt, DryRun, the
//! forms of KeyId, and the Alibaba wire forms of requests and responses.

mod common;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use kms_core::api::decode_request;
use kms_core::api::KeySpec;
use kms_core::api::*;
use kms_core::{Caller, KmsError};

const SPECS: [KeySpec; 3] = [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256];

fn c() -> EncryptionContext {
    ctx(&[("tenant", "acme"), ("table", "orders")])
}

/// Opens a blob with two implementations outside the engine, given the key material: the
/// `aes-gcm` crate and, for AES-128/256, ring. Each provider is thus checked against at least
/// one implementation it does not use (AWS-LC against both; RustCrypto, whose AES-GCM is
/// `aes-gcm`, against ring). `None` unless every implementation that has the key size agrees.
fn independent_open(material: &[u8], blob: &[u8], context: &EncryptionContext) -> Option<Vec<u8>> {
    type Aes192Gcm = aes_gcm::AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;
    let parsed = kms_core::internal::blob::decode(blob).ok()?;
    let aad = kms_core::internal::blob::associated_data(parsed.header, context);
    let payload = Payload {
        msg: parsed.ciphertext_and_tag,
        aad: &aad,
    };
    let nonce = aes_gcm::Nonce::from_slice(&parsed.iv);
    let by_aes_gcm = match material.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(material)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        24 => Aes192Gcm::new_from_slice(material)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        32 => aes_gcm::Aes256Gcm::new_from_slice(material)
            .ok()?
            .decrypt(nonce, payload)
            .ok(),
        _ => None,
    }?;
    let ring_alg = match material.len() {
        16 => &ring::aead::AES_128_GCM,
        32 => &ring::aead::AES_256_GCM,
        _ => return Some(by_aes_gcm),
    };
    let key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(ring_alg, material).ok()?);
    let mut buf = parsed.ciphertext_and_tag.to_vec();
    let by_ring = key
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(parsed.iv),
            ring::aead::Aad::from(&aad[..]),
            &mut buf,
        )
        .ok()?
        .to_vec();
    (by_ring == by_aes_gcm).then_some(by_aes_gcm)
}

#[test]
fn encrypt_then_decrypt_round_trips_for_every_aes_spec() {
    let rng = RecordingRandom::default();
    let env = Env::with_rng(rng.clone());
    for spec in SPECS {
        let drawn_before = rng.drawn().len();
        let m = env.create_key_spec(spec);
        assert_eq!(m.key_spec, spec);
        let material: Vec<Vec<u8>> = rng.drawn()[drawn_before..].to_vec();
        for plaintext in [
            b"a".to_vec(),
            b"hello world".to_vec(),
            (0..=255u8).collect::<Vec<u8>>(),
            vec![0u8; 6144],
        ] {
            let r = env.encrypt(&m.key_id, &plaintext, &c());
            assert_eq!(r.key_id, m.key_id);
            assert_eq!(Some(&r.key_version_id), m.primary_key_version.as_ref());
            assert!(!contains(&r.ciphertext_blob, &plaintext) || plaintext.len() == 1);
            let back = env.decrypt(&r.ciphertext_blob, &c());
            assert_eq!(&back.plaintext[..], &plaintext[..], "{spec}");
            assert_eq!(back.key_id, m.key_id);
            assert_eq!(back.key_version_id, r.key_version_id);
            // Exactly one buffer the engine drew while creating the key opens the blob: the
            // key material, of the spec's length.
            let openers: Vec<&Vec<u8>> = material
                .iter()
                .filter(|k| {
                    independent_open(k, &r.ciphertext_blob, &c()).as_deref() == Some(&plaintext[..])
                })
                .collect();
            assert_eq!(openers.len(), 1, "{spec}");
            let want_len = match spec {
                KeySpec::Aes128 => 16,
                KeySpec::Aes192 => 24,
                _ => 32,
            };
            assert_eq!(openers[0].len(), want_len, "{spec}");
            assert!(independent_open(openers[0], &r.ciphertext_blob, &ctx(&[])).is_none());
        }
    }
}

#[test]
fn encrypting_twice_gives_different_blobs() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let a = env.encrypt(&key, b"same", &c()).ciphertext_blob;
    let b = env.encrypt(&key, b"same", &c()).ciphertext_blob;
    assert_ne!(a, b);
    assert_eq!(
        env.decrypt(&a, &c()).plaintext,
        env.decrypt(&b, &c()).plaintext
    );
}

#[test]
fn plaintext_of_6144_bytes_is_accepted_and_6145_rejected() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let max = vec![b'p'; 6144];
    let r = env.encrypt(&key, &max, &c());
    assert_eq!(
        &env.decrypt(&r.ciphertext_blob, &c()).plaintext[..],
        &max[..]
    );
    let e = expect_param_err(
        env.try_encrypt(&key, &[b'p'; 6145], &c()),
        "InvalidParameter",
        "Plaintext",
    );
    assert_eq!(e.http_status(), 400);
    // The limit is in bytes, not characters.
    let multibyte = "é".repeat(3073); // 6146 bytes
    expect_param_err(
        env.try_encrypt(&key, multibyte.as_bytes(), &c()),
        "InvalidParameter",
        "Plaintext",
    );
}

#[test]
fn empty_plaintext_is_missing_parameter() {
    let env = Env::new();
    let key = env.create_key().key_id;
    expect_param_err(
        env.try_encrypt(&key, b"", &c()),
        "MissingParameter",
        "Plaintext",
    );
    expect_param_err(env.try_encrypt("", b"x", &c()), "MissingParameter", "KeyId");
}

#[test]
fn decrypt_with_other_context_fails() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"bound", &c()).ciphertext_blob;
    for (why, other) in [
        ("none", ctx(&[])),
        ("missing pair", ctx(&[("tenant", "acme")])),
        (
            "extra pair",
            ctx(&[("tenant", "acme"), ("table", "orders"), ("x", "y")]),
        ),
        (
            "other value",
            ctx(&[("tenant", "acme"), ("table", "ORDERS")]),
        ),
        ("other key", ctx(&[("tenant", "acme"), ("Table", "orders")])),
        ("swapped", ctx(&[("tenant", "orders"), ("table", "acme")])),
        (
            "concatenation",
            ctx(&[("tenantacme", ""), ("table", "orders")]),
        ),
    ] {
        let e = expect_err(env.try_decrypt(&blob, &other), "InvalidCiphertext");
        assert_eq!(e.http_status(), 400, "{why}");
    }
    // And a blob made without context does not open with one.
    let plain = env.encrypt(&key, b"free", &ctx(&[])).ciphertext_blob;
    expect_err(env.try_decrypt(&plain, &c()), "InvalidCiphertext");
    assert_eq!(&env.decrypt(&plain, &ctx(&[])).plaintext[..], b"free");
    assert_eq!(&env.decrypt(&blob, &c()).plaintext[..], b"bound");
}

#[test]
fn encryption_context_is_order_free() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let enc: EncryptRequest = decode_request(serde_json::json!({
        "KeyId": key,
        "Plaintext": "ordered",
        "EncryptionContext": r#"{"b":"2","a":"1","c":"3"}"#
    }))
    .unwrap();
    let blob = env.kms.encrypt(&env.me, enc).unwrap().ciphertext_blob;
    for text in [
        r#"{"a":"1","b":"2","c":"3"}"#,
        r#"{"c":"3","b":"2","a":"1"}"#,
        r#"{ "b" : "2", "c":"3", "a":"1" }"#,
    ] {
        let dec: DecryptRequest = decode_request(serde_json::json!({
            "CiphertextBlob": B64.encode(&blob),
            "EncryptionContext": text,
        }))
        .unwrap();
        assert_eq!(
            &env.kms.decrypt(&env.me, dec).unwrap().plaintext[..],
            b"ordered"
        );
    }
}

#[test]
fn encryption_context_is_validated() {
    let env = Env::new();
    let key = env.create_key().key_id;
    expect_param_err(
        env.try_encrypt(&key, b"x", &ctx(&[("", "v")])),
        "InvalidParameter",
        "EncryptionContext",
    );
    let big = ctx(&[("k", &"v".repeat(8200))]);
    expect_param_err(
        env.try_encrypt(&key, b"x", &big),
        "InvalidParameter",
        "EncryptionContext",
    );
    let fits = ctx(&[("k", &"v".repeat(8000)), ("ключ", "значение")]);
    let blob = env.encrypt(&key, b"x", &fits).ciphertext_blob;
    assert_eq!(&env.decrypt(&blob, &fits).plaintext[..], b"x");
}

/// True when the (altered) blob parses and names a key that is not `key`: such a blob is
/// indistinguishable from one of a purged key, which Decrypt reports as Forbidden.KeyNotFound.
fn names_another_key(blob: &[u8], key: &str) -> bool {
    kms_core::internal::blob::decode(blob).is_ok_and(|b| b.key_id != key)
}

#[test]
fn decrypt_of_a_tampered_blob_fails_at_every_byte() {
    let env = Env::new();
    for spec in SPECS {
        let key = env.create_key_spec(spec).key_id;
        let blob = env.encrypt(&key, b"do not touch", &c()).ciphertext_blob;
        for i in 0..blob.len() {
            for mask in [0x01u8, 0x20, 0x80, 0xFF] {
                let mut bad = blob.clone();
                bad[i] ^= mask;
                match env.try_decrypt(&bad, &c()) {
                    Err(e) if e.code() == "InvalidCiphertext" => {}
                    Err(e)
                        if e.code() == "Forbidden.KeyNotFound" && names_another_key(&bad, &key) => {
                    }
                    other => panic!("{spec}: byte {i} ^ {mask:#04x}: {other:?}"),
                }
            }
        }
        assert_eq!(&env.decrypt(&blob, &c()).plaintext[..], b"do not touch");
    }
}

#[test]
fn decrypt_of_a_truncated_or_extended_blob_fails() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"cut me", &c()).ciphertext_blob;
    expect_param_err(
        env.try_decrypt(&blob[..0], &c()),
        "MissingParameter",
        "CiphertextBlob",
    );
    for n in 1..blob.len() {
        expect_err(env.try_decrypt(&blob[..n], &c()), "InvalidCiphertext");
    }
    for extra in [&[0u8][..], b"tail", &[0u8; 16]] {
        let mut longer = blob.clone();
        longer.extend_from_slice(extra);
        expect_err(env.try_decrypt(&longer, &c()), "InvalidCiphertext");
    }
}

#[test]
fn decrypt_of_random_garbage_is_invalid_ciphertext() {
    let env = Env::new();
    let m = env.create_key();
    let mut rng = SplitMix(7);
    for round in 0..300 {
        let len = 1 + (rng.next_u64() % 300) as usize;
        let mut garbage = rng.bytes(len);
        if round % 3 == 0 && garbage.len() > 3 {
            // Start like a blob, so that parsing goes further.
            garbage[..3].copy_from_slice(b"KB\x01");
        }
        expect_err(env.try_decrypt(&garbage, &c()), "InvalidCiphertext");
    }
    // A well-formed header naming the real key and version, with a random body.
    let version = m.primary_key_version.unwrap();
    for body_len in [0usize, 15, 16, 17, 64] {
        let mut forged = kms_core::internal::blob::encode_header(
            &m.key_id,
            &version,
            kms_core::AeadAlgorithm::Aes256Gcm,
            &[7; 12],
            body_len,
        )
        .unwrap();
        forged.extend(rng.bytes(body_len));
        expect_err(env.try_decrypt(&forged, &c()), "InvalidCiphertext");
    }
}

#[test]
fn a_blob_edited_to_name_another_existing_key_fails() {
    let env = Env::new();
    let a = env.create_key();
    let b = env.create_key();
    let blob = env.encrypt(&a.key_id, b"for a only", &c()).ciphertext_blob;
    let swap = |bytes: &[u8], from: &str, to: &str| -> Vec<u8> {
        let pos = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .unwrap();
        let mut out = bytes.to_vec();
        out[pos..pos + to.len()].copy_from_slice(to.as_bytes());
        out
    };
    // Only the key id: B has no such version.
    let renamed = swap(&blob, &a.key_id, &b.key_id);
    expect_err(env.try_decrypt(&renamed, &c()), "InvalidCiphertext");
    // Key id and version id of B: authentication under B's material fails.
    let both = swap(
        &renamed,
        a.primary_key_version.as_deref().unwrap(),
        b.primary_key_version.as_deref().unwrap(),
    );
    assert_eq!(
        kms_core::internal::blob::decode(&both).unwrap().key_id,
        b.key_id
    );
    expect_err(env.try_decrypt(&both, &c()), "InvalidCiphertext");
    // An algorithm byte that does not match the key.
    let parsed = kms_core::internal::blob::decode(&blob).unwrap();
    let mut wrong_alg = blob.clone();
    let alg_pos = parsed.header.len() - 12 - 1;
    wrong_alg[alg_pos] = kms_core::AeadAlgorithm::Aes128Gcm.code();
    expect_err(env.try_decrypt(&wrong_alg, &c()), "InvalidCiphertext");
}

#[test]
fn decrypt_of_a_blob_from_another_engine_fails() {
    let here = Env::new();
    let there = Env::new();
    here.create_key();
    let foreign_key = there.create_key().key_id;
    let blob = there
        .encrypt(&foreign_key, b"elsewhere", &c())
        .ciphertext_blob;
    // The key it names does not exist here.
    let e = here.try_decrypt(&blob, &c()).unwrap_err();
    assert!(
        matches!(e.code(), "InvalidCiphertext" | "Forbidden.KeyNotFound"),
        "{e:?}"
    );
}

#[test]
fn generate_data_key_returns_32_bytes_by_default_and_16_for_aes_128() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let gen = |spec: Option<&str>, n: Option<i64>| {
        env.kms.generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: key.clone(),
                key_spec: spec.map(str::to_owned),
                number_of_bytes: n,
                encryption_context: c(),
                ..Default::default()
            },
        )
    };
    assert_eq!(gen(None, None).unwrap().plaintext.len(), 32);
    assert_eq!(gen(Some("AES_256"), None).unwrap().plaintext.len(), 32);
    assert_eq!(gen(Some("AES_128"), None).unwrap().plaintext.len(), 16);
    for n in [1, 2, 17, 64, 1024] {
        assert_eq!(gen(None, Some(n)).unwrap().plaintext.len() as i64, n);
    }
    // NumberOfBytes overrides KeySpec.
    assert_eq!(gen(Some("AES_128"), Some(64)).unwrap().plaintext.len(), 64);
    for n in [i64::MIN, -1, 0, 1025, i64::MAX] {
        expect_param_err(gen(None, Some(n)), "InvalidParameter", "NumberOfBytes");
    }
    for spec in ["AES_512", "aes_256", "Aliyun_AES_256"] {
        expect_param_err(gen(Some(spec), None), "InvalidParameter", "KeySpec");
    }
    // Fresh keys every time.
    let a = gen(None, None).unwrap();
    let b = gen(None, None).unwrap();
    assert_ne!(a.plaintext, b.plaintext);
    assert_ne!(a.ciphertext_blob, b.ciphertext_blob);
}

#[test]
fn decrypt_of_a_data_key_blob_returns_the_base64_text_of_the_data_key() {
    let env = Env::new();
    let key = env.create_key().key_id;
    for n in [None, Some(1), Some(16), Some(1024)] {
        let r = env
            .kms
            .generate_data_key(
                &env.me,
                GenerateDataKeyRequest {
                    key_id: key.clone(),
                    number_of_bytes: n,
                    encryption_context: c(),
                    ..Default::default()
                },
            )
            .unwrap();
        let opened = env.decrypt(&r.ciphertext_blob, &c());
        assert_eq!(
            opened.plaintext.as_slice(),
            B64.encode(&*r.plaintext).as_bytes()
        );
        assert_eq!(opened.key_version_id, r.key_version_id);
        // On the wire the two Plaintext strings are the same.
        let gdk_json = serde_json::to_value(&r).unwrap();
        let dec_json = serde_json::to_value(&opened).unwrap();
        assert_eq!(gdk_json["Plaintext"], dec_json["Plaintext"]);
        expect_err(
            env.try_decrypt(&r.ciphertext_blob, &ctx(&[])),
            "InvalidCiphertext",
        );
    }
}

#[test]
fn generate_data_key_without_plaintext_returns_only_the_wrapped_key() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let r = env
        .kms
        .generate_data_key_without_plaintext(
            &env.me,
            GenerateDataKeyRequest {
                key_id: key.clone(),
                key_spec: Some("AES_128".into()),
                encryption_context: c(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.key_id, key);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("Plaintext").is_none(), "{json}");
    let text = env.decrypt(&r.ciphertext_blob, &c()).plaintext;
    let data_key = B64.decode(&*text).unwrap();
    assert_eq!(data_key.len(), 16);
}

#[test]
fn re_encrypt_moves_a_ciphertext_to_another_key_and_context() {
    let env = Env::new();
    let src = env.create_key().key_id;
    let dst = env.create_key_spec(KeySpec::Aes128).key_id;
    env.create_alias("alias/dst", &dst).unwrap();
    let blob = env.encrypt(&src, b"moving", &c()).ciphertext_blob;
    let new_ctx = ctx(&[("stage", "archive")]);
    for dest_name in [dst.clone(), "alias/dst".into()] {
        let r = env
            .kms
            .re_encrypt(
                &env.me,
                ReEncryptRequest {
                    ciphertext_blob: blob.clone(),
                    source_encryption_context: c(),
                    destination_key_id: dest_name,
                    destination_encryption_context: new_ctx.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.key_id, dst);
        assert_eq!(
            Some(r.key_version_id.clone()),
            env.describe(&dst).primary_key_version
        );
        let opened = env.decrypt(&r.ciphertext_blob, &new_ctx);
        assert_eq!(&opened.plaintext[..], b"moving");
        assert_eq!(opened.key_id, dst);
        expect_err(
            env.try_decrypt(&r.ciphertext_blob, &c()),
            "InvalidCiphertext",
        );
    }
    // The source context must match.
    expect_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                ciphertext_blob: blob.clone(),
                source_encryption_context: ctx(&[]),
                destination_key_id: dst.clone(),
                ..Default::default()
            },
        ),
        "InvalidCiphertext",
    );
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                ciphertext_blob: blob.clone(),
                source_encryption_context: c(),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "DestinationKeyId",
    );
    expect_param_err(
        env.kms.re_encrypt(
            &env.me,
            ReEncryptRequest {
                source_encryption_context: c(),
                destination_key_id: dst.clone(),
                ..Default::default()
            },
        ),
        "MissingParameter",
        "CiphertextBlob",
    );
}

#[test]
fn re_encrypt_to_the_same_key_after_rotation_uses_the_new_primary() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let old = env.encrypt(&key, b"old", &c());
    let new_version = env
        .create_key_version(&key)
        .unwrap()
        .key_version
        .key_version_id;
    let r = env
        .kms
        .re_encrypt(
            &env.me,
            ReEncryptRequest {
                ciphertext_blob: old.ciphertext_blob,
                source_encryption_context: c(),
                destination_key_id: key.clone(),
                destination_encryption_context: c(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.key_version_id, new_version);
    assert_ne!(r.key_version_id, old.key_version_id);
    assert_eq!(
        env.decrypt(&r.ciphertext_blob, &c()).key_version_id,
        new_version
    );
}

#[test]
fn dry_run_reports_dry_run_operation_error_when_the_call_would_succeed() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"x", &c()).ciphertext_blob;
    let enc = EncryptRequest {
        key_id: key.clone(),
        plaintext: b"x".to_vec().into(),
        encryption_context: c(),
        dry_run: Some(true),
    };
    let e = expect_err(
        env.kms.encrypt(&env.me, enc.clone()),
        "DryRunOperationError",
    );
    assert_eq!(e.http_status(), 412);
    let dec = DecryptRequest {
        ciphertext_blob: blob.clone(),
        encryption_context: c(),
        dry_run: Some(true),
    };
    expect_err(
        env.kms.decrypt(&env.me, dec.clone()),
        "DryRunOperationError",
    );
    let gdk = GenerateDataKeyRequest {
        key_id: key.clone(),
        dry_run: Some(true),
        ..Default::default()
    };
    expect_err(
        env.kms.generate_data_key(&env.me, gdk.clone()),
        "DryRunOperationError",
    );
    expect_err(
        env.kms
            .generate_data_key_without_plaintext(&env.me, gdk.clone()),
        "DryRunOperationError",
    );
    let re = ReEncryptRequest {
        ciphertext_blob: blob.clone(),
        source_encryption_context: c(),
        destination_key_id: key.clone(),
        dry_run: Some(true),
        ..Default::default()
    };
    expect_err(env.kms.re_encrypt(&env.me, re), "DryRunOperationError");
    // DryRun=false (or absent, or "false" on the wire) performs the call.
    env.kms
        .encrypt(
            &env.me,
            EncryptRequest {
                dry_run: Some(false),
                ..enc.clone()
            },
        )
        .unwrap();
    let from_wire: EncryptRequest = decode_request(serde_json::json!({
        "KeyId": key, "Plaintext": "x", "DryRun": "true"
    }))
    .unwrap();
    assert_eq!(from_wire.dry_run, Some(true));
    expect_err(env.kms.encrypt(&env.me, from_wire), "DryRunOperationError");

    // ValidationError when the call would fail: a Disabled key, bad input.
    env.disable(&key).unwrap();
    for e in [
        env.kms.encrypt(&env.me, enc.clone()).unwrap_err(),
        env.kms.decrypt(&env.me, dec.clone()).unwrap_err(),
        env.kms.generate_data_key(&env.me, gdk.clone()).unwrap_err(),
    ] {
        assert_eq!(e.code(), "ValidationError", "{e}");
        assert!(e.to_string().contains("Rejected.Disabled"), "{e}");
    }
    env.enable(&key).unwrap();
    let e = expect_err(
        env.kms.encrypt(
            &env.me,
            EncryptRequest {
                plaintext: Vec::new().into(),
                ..enc.clone()
            },
        ),
        "ValidationError",
    );
    assert!(e.to_string().contains("Plaintext"), "{e}");
    expect_err(
        env.kms.decrypt(
            &env.me,
            DecryptRequest {
                encryption_context: ctx(&[]),
                ..dec.clone()
            },
        ),
        "ValidationError",
    );
    expect_err(
        env.kms.generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                number_of_bytes: Some(0),
                ..gdk.clone()
            },
        ),
        "ValidationError",
    );
    // AccessDeniedError when the caller may not make the call.
    let stranger = Caller::account_root("9999");
    expect_err(env.kms.encrypt(&stranger, enc), "AccessDeniedError");
}

#[test]
fn callers_of_another_account_are_denied() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"mine", &c()).ciphertext_blob;
    let stranger = Caller::account_root("9999");
    let e = expect_err(
        env.kms.encrypt(
            &stranger,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"x".to_vec().into(),
                ..Default::default()
            },
        ),
        "Forbidden.NoPermission",
    );
    assert_eq!(e.http_status(), 403);
    expect_err(
        env.kms.decrypt(
            &stranger,
            DecryptRequest {
                ciphertext_blob: blob,
                encryption_context: c(),
                ..Default::default()
            },
        ),
        "Forbidden.NoPermission",
    );
    expect_err(
        env.kms.describe_key(&stranger, key_req(&key)),
        "Forbidden.NoPermission",
    );
}

#[test]
fn encrypt_accepts_key_id_arn_alias_and_alias_arn() {
    let env = Env::new();
    let m = env.create_key();
    env.create_alias("alias/payments/prod", &m.key_id).unwrap();
    let names = [
        m.key_id.clone(),
        m.key_id.to_uppercase(),
        m.arn.clone(),
        format!("acs:kms:{REGION}:{ACCOUNT}:key/{}", m.key_id.to_uppercase()),
        "alias/payments/prod".into(),
        format!("acs:kms:{REGION}:{ACCOUNT}:alias/payments/prod"),
    ];
    for name in names {
        let r = env.encrypt(&name, b"any name", &c());
        assert_eq!(r.key_id, m.key_id, "{name}");
        assert_eq!(
            &env.decrypt(&r.ciphertext_blob, &c()).plaintext[..],
            b"any name"
        );
    }
    for (name, code) in [
        (
            format!("acs:kms:us-west-1:{ACCOUNT}:key/{}", m.key_id),
            "Forbidden.KeyNotFound",
        ),
        (
            format!("acs:kms:{REGION}:9999:key/{}", m.key_id),
            "Forbidden.KeyNotFound",
        ),
        ("alias/payments/test".to_string(), "Forbidden.AliasNotFound"),
        (
            format!("acs:kms:{REGION}:{ACCOUNT}:alias/nope"),
            "Forbidden.AliasNotFound",
        ),
        (
            "00000000-0000-4000-8000-000000000000".into(),
            "Forbidden.KeyNotFound",
        ),
    ] {
        expect_err(env.try_encrypt(&name, b"x", &c()), code);
    }
}

#[test]
fn encrypt_request_decodes_from_alibaba_string_parameters() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let req: EncryptRequest = decode_request(serde_json::json!({
        "KeyId": key,
        "Plaintext": "aGVsbG8=",
        "EncryptionContext": r#"{"tenant":"acme","table":"orders"}"#,
    }))
    .unwrap();
    assert_eq!(req.encryption_context, c());
    // Plaintext is opaque text: its UTF-8 bytes are encrypted, not its Base64 decoding.
    assert_eq!(&req.plaintext[..], b"aGVsbG8=");
    let r = env.kms.encrypt(&env.me, req).unwrap();
    let back = env.decrypt(&r.ciphertext_blob, &c());
    assert_eq!(
        serde_json::to_value(&back).unwrap()["Plaintext"],
        "aGVsbG8="
    );
    // The native JSON form decodes the same.
    let native: EncryptRequest = decode_request(serde_json::json!({
        "KeyId": key, "Plaintext": "aGVsbG8=",
        "EncryptionContext": {"table": "orders", "tenant": "acme"},
    }))
    .unwrap();
    assert_eq!(native.encryption_context, c());
}

#[test]
fn malformed_encryption_context_text_is_invalid_parameter_naming_it() {
    for bad in [
        serde_json::json!("{not json"),
        serde_json::json!("[1,2]"),
        serde_json::json!(r#"{"a":1}"#),
        serde_json::json!({"a": {"b": "c"}}),
        serde_json::json!(42),
    ] {
        let e = decode_request::<EncryptRequest>(serde_json::json!({
            "KeyId": "alias/x", "Plaintext": "p", "EncryptionContext": bad,
        }));
        expect_param_err(e, "InvalidParameter", "EncryptionContext");
        let e = decode_request::<DecryptRequest>(serde_json::json!({
            "CiphertextBlob": "AAAA", "EncryptionContext": bad,
        }));
        expect_param_err(e, "InvalidParameter", "EncryptionContext");
    }
    expect_param_err(
        decode_request::<DecryptRequest>(serde_json::json!({"CiphertextBlob": "not base64!"})),
        "InvalidParameter",
        "CiphertextBlob",
    );
    expect_param_err(
        decode_request::<GenerateDataKeyRequest>(
            serde_json::json!({"KeyId": "k", "NumberOfBytes": "many"}),
        ),
        "InvalidParameter",
        "NumberOfBytes",
    );
    expect_param_err(
        decode_request::<EncryptRequest>(serde_json::json!({"KeyId": "k", "DryRun": "maybe"})),
        "InvalidParameter",
        "DryRun",
    );
}

#[test]
fn responses_serialize_to_pascal_case_with_base64_ciphertext_blob() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let r = env.encrypt(&key, b"wire", &c());
    let json = serde_json::to_value(&r).unwrap();
    let obj = json.as_object().unwrap();
    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["CiphertextBlob", "KeyId", "KeyVersionId", "RequestId"]
    );
    assert_eq!(json["KeyId"], key);
    assert!(kms_core::internal::ids::is_uuid(
        json["RequestId"].as_str().unwrap()
    ));
    let text = json["CiphertextBlob"].as_str().unwrap();
    assert_eq!(B64.decode(text).unwrap(), r.ciphertext_blob);

    // The wire blob decrypts when sent back as a string parameter.
    let dec: DecryptRequest = decode_request(serde_json::json!({
        "CiphertextBlob": text,
        "EncryptionContext": serde_json::to_string(&c()).unwrap(),
    }))
    .unwrap();
    let opened = env.kms.decrypt(&env.me, dec).unwrap();
    let json = serde_json::to_value(&opened).unwrap();
    assert_eq!(json["Plaintext"], "wire");
    assert_eq!(json["KeyId"], key);
    assert_eq!(json["KeyVersionId"], r.key_version_id);
    assert!(json["RequestId"].is_string());

    // Every response has its own RequestId.
    let again = env.encrypt(&key, b"wire", &c());
    assert_ne!(again.request_id, r.request_id);

    let gdk = env
        .kms
        .generate_data_key(
            &env.me,
            GenerateDataKeyRequest {
                key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let json = serde_json::to_value(&gdk).unwrap();
    assert_eq!(
        B64.decode(json["Plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        B64.decode(json["CiphertextBlob"].as_str().unwrap())
            .unwrap(),
        gdk.ciphertext_blob
    );
}

#[test]
fn binary_plaintext_cannot_travel_as_a_wire_string_but_round_trips_in_rust() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let bytes = [0xFFu8, 0xFE, 0x00, 0x80];
    let r = env.encrypt(&key, &bytes, &c());
    let opened = env.decrypt(&r.ciphertext_blob, &c());
    assert_eq!(&opened.plaintext[..], &bytes);
    let e: Result<serde_json::Value, _> = serde_json::to_value(&opened);
    assert!(
        e.is_err(),
        "non-UTF-8 plaintext does not serialize as a string"
    );
}

#[test]
fn decrypt_errors_never_echo_the_plaintext_or_context_values() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env
        .encrypt(
            &key,
            b"TOPSECRET-PLAINTEXT",
            &ctx(&[("k", "SECRET-CONTEXT-VALUE")]),
        )
        .ciphertext_blob;
    let e: KmsError = env
        .try_decrypt(&blob, &ctx(&[("k", "SECRET-CONTEXT-VALUE-2")]))
        .unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains("TOPSECRET"), "{msg}");
    assert!(!msg.contains("SECRET-CONTEXT"), "{msg}");
}

// ---- buffers: sealed and opened in place ---------------------------------------------------

/// Encrypt of `plaintext` handed over as it is (its capacity included).
fn encrypt_buffer(env: &Env, key: &str, plaintext: Vec<u8>) -> EncryptResponse {
    env.kms
        .encrypt(
            &env.me,
            EncryptRequest {
                key_id: key.to_owned(),
                plaintext: plaintext.into(),
                encryption_context: c(),
                ..Default::default()
            },
        )
        .unwrap()
}

/// Encrypt seals in the request's own buffer when it has room for the blob's header and tag
/// (no copy of the plaintext is made), and the result still opens, through the engine and
/// through an independent AES-GCM.
#[test]
fn encrypt_seals_in_the_plaintext_buffer_when_it_has_room() {
    let rng = RecordingRandom::default();
    let env = Env::with_rng(rng.clone());
    let before = rng.drawn().len();
    let key = env.create_key().key_id;
    let drawn: Vec<Vec<u8>> = rng.drawn()[before..].to_vec();
    let mut roomy = Vec::with_capacity(1024 + 256);
    roomy.extend_from_slice(&[0x61; 1024]);
    let buffer = roomy.as_ptr();
    let sealed = encrypt_buffer(&env, &key, roomy);
    assert_eq!(sealed.ciphertext_blob.as_ptr(), buffer, "sealed in place");
    assert!(
        drawn
            .iter()
            .any(|m| independent_open(m, &sealed.ciphertext_blob, &c()) == Some(vec![0x61; 1024])),
        "the in-place blob opens with the key's material"
    );
    // A buffer without that room is copied into a new one (and wiped), with the same result.
    let tight = vec![0x62; 1024];
    let buffer = tight.as_ptr();
    let copied = encrypt_buffer(&env, &key, tight);
    assert_ne!(copied.ciphertext_blob.as_ptr(), buffer);
    assert_eq!(
        &env.decrypt(&copied.ciphertext_blob, &c()).plaintext[..],
        &[0x62; 1024][..]
    );
}

/// Decrypt opens a software key's blob in the blob's own buffer, which becomes the plaintext;
/// a blob that fails authentication is refused as before.
#[test]
fn decrypt_opens_in_the_blob_buffer() {
    let env = Env::new();
    let key = env.create_key().key_id;
    let blob = env.encrypt(&key, b"in place", &c()).ciphertext_blob;
    let own = blob.clone();
    let own_buffer = own.as_ptr();
    let opened = env
        .kms
        .decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: own,
                encryption_context: c(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(opened.plaintext.as_ptr(), own_buffer, "opened in place");
    assert_eq!(&opened.plaintext[..], b"in place");
    let mut altered = blob;
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let e = env.try_decrypt(&altered, &c()).unwrap_err();
    assert_eq!(e.code(), "InvalidCiphertext");
}
