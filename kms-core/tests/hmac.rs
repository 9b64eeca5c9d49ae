//! HMAC keys: KeySpec HMAC_SHA256 with KeyUsage GENERATE/VERIFY_MAC, GenerateMac and
//! VerifyMac, checked against the RFC 4231 test vectors through imported material, with
//! versions and rotation like AES keys.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support_asym;

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyUsage, Origin, ProtectionLevel};
use support_asym::*;

fn unhex(s: &str) -> Vec<u8> {
    if s == "REPEAT_AA_131" {
        return vec![0xaa; 131];
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mac(env: &Env, key: &str, message: &[u8]) -> Result<GenerateMacResponse, kms_core::KmsError> {
    env.kms.generate_mac(
        &env.me,
        GenerateMacRequest {
            key_id: key.into(),
            message: message.to_vec(),
            ..Default::default()
        },
    )
}

fn verify(env: &Env, key: &str, message: &[u8], m: &[u8]) -> VerifyMacResponse {
    env.kms
        .verify_mac(
            &env.me,
            VerifyMacRequest {
                key_id: key.into(),
                message: message.to_vec(),
                mac: m.to_vec(),
                ..Default::default()
            },
        )
        .unwrap()
}

/// RFC 4231 section 4: (key, data, HMAC-SHA-256) for test cases 1-4, 6 and 7 (case 5 is a
/// truncated output). Cases 6 and 7 use 131 bytes of 0xaa as the key.
const RFC_4231: &[(&str, &str, &str)] = &[
    (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        "REPEAT_AA_131",
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        "REPEAT_AA_131",
        "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
];

#[test]
fn generate_mac_matches_rfc_4231_through_imported_material() {
    let env = Env::new();
    for (i, (key, data, want)) in RFC_4231.iter().enumerate() {
        let id = env.external_key(KeySpec::HmacSha256, ProtectionLevel::Software);
        env.import_material(&id, &unhex(key), None).unwrap();
        let got = mac(&env, &id, &unhex(data)).unwrap();
        assert_eq!(got.mac, unhex(want), "RFC 4231 vector {i}");
        let v = verify(&env, &id, &unhex(data), &unhex(want));
        assert!(v.value, "vector {i}");
        assert_eq!(
            v.key_version_id.as_deref(),
            Some(got.key_version_id.as_str())
        );
    }
}

#[test]
fn hmac_keys_default_to_generate_verify_mac_and_refuse_other_usages() {
    let env = Env::new();
    let m = env
        .create(CreateKeyRequest {
            key_spec: Some(KeySpec::HmacSha256),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(m.key_usage, KeyUsage::GenerateVerifyMac);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["KeySpec"], "HMAC_SHA256");
    assert_eq!(json["KeyUsage"], "GENERATE/VERIFY_MAC");
    for usage in [KeyUsage::EncryptDecrypt, KeyUsage::SignVerify] {
        expect_param_err(
            env.create(CreateKeyRequest {
                key_spec: Some(KeySpec::HmacSha256),
                key_usage: Some(usage),
                ..Default::default()
            }),
            "InvalidParameter",
            "KeyUsage",
        );
    }
    expect_param_err(
        env.create(CreateKeyRequest {
            key_spec: Some(KeySpec::Aes256),
            key_usage: Some(KeyUsage::GenerateVerifyMac),
            ..Default::default()
        }),
        "InvalidParameter",
        "KeyUsage",
    );
    // An HMAC key does not encrypt, and an AES key does not make MACs.
    expect_err(
        env.encrypt(&m.key_id, b"x"),
        "Rejected.UnsupportedOperation",
    );
    let aes = env.key(KeySpec::Aes256, None).0;
    expect_err(mac(&env, &aes, b"x"), "Rejected.UnsupportedOperation");
}

#[test]
fn verify_mac_is_false_for_a_wrong_mac_or_message_not_an_error() {
    let env = Env::new();
    let (key, _) = env.key(KeySpec::HmacSha256, None);
    let good = mac(&env, &key, b"message").unwrap().mac;
    assert_eq!(good.len(), 32);
    assert!(verify(&env, &key, b"message", &good).value);
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(!verify(&env, &key, b"message", &bad).value);
    assert!(!verify(&env, &key, b"other", &good).value);
    assert!(!verify(&env, &key, b"message", &good[..16]).value);
}

#[test]
fn macs_from_before_a_rotation_still_verify_and_new_macs_use_the_new_version() {
    let env = Env::new();
    let m = env
        .create(CreateKeyRequest {
            key_spec: Some(KeySpec::HmacSha256),
            enable_automatic_rotation: Some(true),
            rotation_interval: Some("7d".into()),
            ..Default::default()
        })
        .unwrap();
    let old = mac(&env, &m.key_id, b"data").unwrap();
    env.clock.advance(8 * 86_400);
    let report = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(report.rotated_keys, vec![m.key_id.clone()]);
    let new = mac(&env, &m.key_id, b"data").unwrap();
    assert_ne!(new.key_version_id, old.key_version_id);
    assert_ne!(new.mac, old.mac);
    let v = verify(&env, &m.key_id, b"data", &old.mac);
    assert!(v.value);
    assert_eq!(v.key_version_id, Some(old.key_version_id.clone()));
    // Checked against a named version, only that version counts.
    let pinned = env
        .kms
        .verify_mac(
            &env.me,
            VerifyMacRequest {
                key_id: m.key_id.clone(),
                message: b"data".to_vec(),
                mac: old.mac.clone(),
                key_version_id: Some(new.key_version_id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!pinned.value);
    let v2 = env.new_version(&m.key_id).unwrap();
    assert_eq!(mac(&env, &m.key_id, b"data").unwrap().key_version_id, v2);
}

#[test]
fn mac_operations_follow_the_state_table_and_message_limits() {
    let env = Env::new();
    let (key, _) = env.key(KeySpec::HmacSha256, None);
    expect_param_err(mac(&env, &key, b""), "MissingParameter", "Message");
    mac(&env, &key, &[7; 4096]).unwrap();
    expect_param_err(mac(&env, &key, &[7; 4097]), "InvalidParameter", "Message");
    env.disable(&key);
    expect_err(mac(&env, &key, b"x"), "Rejected.Disabled");
    let imported = env.external_key(KeySpec::HmacSha256, ProtectionLevel::Software);
    expect_err(mac(&env, &imported, b"x"), "Rejected.PendingImport");
    expect_err(
        env.import_material(&imported, &[], None),
        "InvalidKeyMaterial",
    );
    // Longer than HMAC import takes (190 bytes), wrapped with PKCS#1 v1.5 which carries it.
    let p = env
        .params_for_import(&imported, "RSAES_PKCS1_V1_5")
        .unwrap();
    let wrapped = wrap(&p.public_key, "RSAES_PKCS1_V1_5", &[1; 191]);
    expect_err(
        env.import(&imported, &wrapped, &p.import_token, None),
        "InvalidKeyMaterial",
    );
}

#[test]
fn hmac_keys_work_in_an_hsm_provider() {
    let env = Env::with_hsm();
    let (key, _) = env.key_at(KeySpec::HmacSha256, None, ProtectionLevel::Hsm);
    let m = mac(&env, &key, b"in the module").unwrap();
    assert!(verify(&env, &key, b"in the module", &m.mac).value);
    let d = env.describe(&key);
    assert_eq!(d.protection_level, ProtectionLevel::Hsm);
    assert_eq!(d.origin, Origin::AliyunKms);
}

#[test]
fn mac_requests_decode_from_wire_strings() {
    let req: GenerateMacRequest = kms_core::api::decode_request(serde_json::json!({
        "KeyId": "alias/mac", "Message": "aGVsbG8="
    }))
    .unwrap();
    assert_eq!(req.message, b"hello");
    let resp = GenerateMacResponse {
        request_id: "r".into(),
        key_id: "k".into(),
        key_version_id: "v".into(),
        algorithm: "HMAC_SHA_256".into(),
        mac: vec![1, 2, 3],
    };
    let wire = serde_json::to_value(resp).unwrap();
    assert_eq!(wire["Mac"], "AQID");
    assert_eq!(wire["Algorithm"], "HMAC_SHA_256");
    // The official SDK's VerifyMacResponseBody reads Value and Algorithm.
    let resp = VerifyMacResponse {
        request_id: "r".into(),
        key_id: "k".into(),
        key_version_id: None,
        algorithm: "HMAC_SHA_256".into(),
        value: true,
    };
    let wire = serde_json::to_value(resp).unwrap();
    assert_eq!(wire["Value"], true);
    assert_eq!(wire["Algorithm"], "HMAC_SHA_256");
    assert!(wire.get("MacValid").is_none());
    let req: VerifyMacRequest = kms_core::api::decode_request(serde_json::json!({
        "KeyId": "k", "Message": "aGVsbG8=", "Mac": "AQID",
        "Algorithm": "HMAC_SHA_256", "DryRun": "false"
    }))
    .unwrap();
    assert_eq!(req.algorithm.as_deref(), Some("HMAC_SHA_256"));
    assert_eq!(req.dry_run, Some(false));
}

#[test]
fn mac_algorithm_and_dry_run_are_checked() {
    let env = Env::new();
    let (key, _) = env.key(KeySpec::HmacSha256, None);
    let gen = |alg: Option<&str>, dry: Option<bool>| {
        env.kms.generate_mac(
            &env.me,
            GenerateMacRequest {
                key_id: key.clone(),
                message: b"m".to_vec(),
                algorithm: alg.map(str::to_owned),
                dry_run: dry,
            },
        )
    };
    let m = gen(Some("HMAC_SHA_256"), None).unwrap();
    assert_eq!(m.algorithm, "HMAC_SHA_256");
    assert_eq!(gen(None, None).unwrap().mac, m.mac);
    for other in ["HMAC_SHA_512", "HMAC_SM3", "hmac_sha_256", "SHA256"] {
        expect_param_err(gen(Some(other), None), "InvalidParameter", "Algorithm");
    }
    expect_err(gen(None, Some(true)), "DryRunOperationError");
    let verify = |alg: Option<&str>, dry: Option<bool>| {
        env.kms.verify_mac(
            &env.me,
            VerifyMacRequest {
                key_id: key.clone(),
                message: b"m".to_vec(),
                mac: m.mac.clone(),
                algorithm: alg.map(str::to_owned),
                dry_run: dry,
                ..Default::default()
            },
        )
    };
    let v = verify(Some("HMAC_SHA_256"), None).unwrap();
    assert!(v.value);
    assert_eq!(v.algorithm, "HMAC_SHA_256");
    expect_param_err(
        verify(Some("HMAC_SHA_384"), None),
        "InvalidParameter",
        "Algorithm",
    );
    expect_err(verify(None, Some(true)), "DryRunOperationError");
    env.disable(&key);
    expect_err(verify(None, Some(true)), "ValidationError");
}
