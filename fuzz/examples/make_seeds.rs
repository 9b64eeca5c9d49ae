//! Writes the generated part of the seed corpus into `fuzz/corpus/<target>/seed-*`:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The fixtures are deterministic (fixed root key, clock and random source), so the blobs and
//! records written here name keys that exist in the engines the targets build, and running
//! this again rewrites the same bytes. The certificates in `corpus/pem_der/openssl-*` are not
//! generated here but by the openssl CLI (fuzz/README.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use kms_core::api::*;
use kms_fuzz::server::{join_request, ACCESS_KEY_ID, SECRET};
use kms_fuzz::{decrypt_fixture, record_template, RecordKind, ALIAS};
use kms_policy::PolicyBuilder;
use kms_server::signature;

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create the corpus directory");
    dir
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let path = corpus(target).join(format!("seed-{name}"));
    fs::write(&path, bytes).expect("write a seed");
    println!("{}", path.display());
}

fn blob_seeds() {
    let f = decrypt_fixture();
    let encrypt = |key: &str, plaintext: &str, context: EncryptionContext| {
        f.kms
            .encrypt(
                &f.caller,
                EncryptRequest {
                    key_id: key.into(),
                    plaintext: plaintext.as_bytes().to_vec().into(),
                    encryption_context: context,
                    ..Default::default()
                },
            )
            .expect("Encrypt")
            .ciphertext_blob
    };
    let ctx: EncryptionContext = [("purpose".to_owned(), "fuzz".to_owned())].into();
    write(
        "blob_decrypt",
        "aes256",
        encrypt(&f.aes256, "hello", Default::default()),
    );
    write(
        "blob_decrypt",
        "aes256-context",
        encrypt(ALIAS, "with a context", ctx),
    );
    write(
        "blob_decrypt",
        "aes128",
        encrypt(&f.aes128, "a", Default::default()),
    );
    write(
        "blob_decrypt",
        "aes192",
        encrypt(&f.aes192, "aes-192 via aes-gcm", Default::default()),
    );
    let data_key = f
        .kms
        .generate_data_key(
            &f.caller,
            GenerateDataKeyRequest {
                key_id: f.aes256.clone(),
                ..Default::default()
            },
        )
        .expect("GenerateDataKey");
    write("blob_decrypt", "data-key", data_key.ciphertext_blob);
    // Blobs naming a disabled key and an asymmetric key: headers only, made by hand.
    for (name, key, alg) in [("disabled", &f.disabled, 3u8), ("ec-key", &f.ec, 3)] {
        let mut b = kms_core::internal::blob::encode_header(
            key,
            "00000000-0000-4000-8000-000000000001",
            kms_core::AeadAlgorithm::from_code(alg).expect("an algorithm"),
            &[0; 12],
            16,
        )
        .expect("a header");
        b.extend_from_slice(&[0; 16]);
        write("blob_decrypt", name, b);
    }
    write("blob_decrypt", "magic-only", b"KB\x01");
}

fn record_seeds() {
    let t = record_template();
    for kind in RecordKind::ALL {
        let name = format!("{kind:?}").to_ascii_lowercase();
        let plain = kind.open(&t).expect("the template's record opens");
        // Sealed mode: the plaintext (schema byte + JSON), sealed by the target.
        let mut sealed_mode = vec![kind.selector(true)];
        sealed_mode.extend_from_slice(&plain);
        write("record_decode", &format!("{name}-plaintext"), sealed_mode);
        // Raw mode: the stored bytes as the engine wrote them.
        let mut raw_mode = vec![kind.selector(false)];
        raw_mode.extend_from_slice(t.sealed(&kind.record_key(&t)).expect("stored"));
        write("record_decode", &format!("{name}-stored"), raw_mode);
    }
    // The first version's record, as a plaintext for the primary version's slot.
    let old = kms_core::internal::schema::version(&t.key_id, &t.old_version_id);
    let plain = t
        .open(&old, t.sealed(&old).expect("stored"))
        .expect("opens");
    let mut seed = vec![RecordKind::Version.selector(true)];
    seed.extend_from_slice(&plain);
    write("record_decode", "other-version-plaintext", seed);
}

fn policy_seeds() {
    write(
        "policy_parse",
        "root-only",
        PolicyBuilder::new("1234").build(),
    );
    write(
        "policy_parse",
        "roles",
        PolicyBuilder::new("1234")
            .administrator("acs:ram::1234:user/alice")
            .user("acs:ram::1234:role/app")
            .cross_account_user("acs:ram::5678:user/partner")
            .build(),
    );
    let deny = serde_json::json!({
        "Version": "1",
        "Statement": [
            {"Sid": "deny", "Effect": "Deny", "Principal": {"RAM": ["acs:ram::1234:*"]},
             "Action": ["kms:Decrypt", "kms:Generate*"], "Resource": ["*"],
             "Condition": {"StringEquals": {"kms:tag/team": "fuzz"}}},
            {"Effect": "Allow", "Principal": {"RAM": "*"}, "Action": "kms:*", "Resource": "*"}
        ]
    });
    write("policy_parse", "deny-condition", deny.to_string());
}

fn pem_seeds() {
    let f = decrypt_fixture();
    let pem = f
        .kms
        .get_public_key(
            &f.caller,
            GetPublicKeyRequest {
                key_id: f.ec.clone(),
                key_version_id: f
                    .kms
                    .describe_key(
                        &f.caller,
                        KeyIdRequest {
                            key_id: f.ec.clone(),
                        },
                    )
                    .expect("DescribeKey")
                    .key_metadata
                    .primary_key_version
                    .expect("a version"),
            },
        )
        .expect("GetPublicKey")
        .public_key;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM body");
    write("pem_der", "spki-p256.der", der);
    write("pem_der", "spki-p256.pem", pem);
    write(
        "pem_der",
        "subject",
        "CN=example.com,OU=IT,O=Acme\\, Inc.,C=CN,L=Hangzhou",
    );
}

fn request_seeds() {
    let seeds = [
        (
            "encrypt",
            serde_json::json!({"KeyId": "alias/fuzz", "Plaintext": "hello",
                               "EncryptionContext": "{\"purpose\":\"fuzz\"}", "DryRun": "false"}),
        ),
        (
            "create-key",
            serde_json::json!({"KeySpec": "Aliyun_AES_256", "KeyUsage": "ENCRYPT/DECRYPT",
                               "EnableAutomaticRotation": "true", "RotationInterval": "30d",
                               "Tags": "[{\"TagKey\":\"a\",\"TagValue\":\"b\"}]"}),
        ),
        (
            "list-keys",
            serde_json::json!({"PageNumber": "2", "PageSize": 10,
                               "Filters": "[{\"Key\":\"KeyState\",\"Values\":[\"Enabled\"]}]"}),
        ),
        (
            "decrypt",
            serde_json::json!({"CiphertextBlob": "S0IBJDEyMzQ=", "EncryptionContext": {"a": "b"}}),
        ),
        (
            "secret",
            serde_json::json!({"SecretName": "db", "SecretData": "pw", "VersionId": "v1",
                               "SecretDataType": "text", "VersionStages": "[\"ACSCurrent\"]"}),
        ),
    ];
    for (name, value) in seeds {
        write("request_decode", name, value.to_string());
    }
}

fn server_seeds() {
    let key_id = record_template().key_id;
    let timestamp = "2027-01-15T08:00:00Z"; // kms_fuzz::NOW
    let h = |n: &str, v: &str| (n.to_owned(), v.to_owned());

    // V1: HMAC-SHA1 over every parameter, sent in the query string.
    let mut params = vec![
        ("AccessKeyId", ACCESS_KEY_ID.to_owned()),
        ("Action", "Encrypt".to_owned()),
        ("Format", "JSON".to_owned()),
        ("KeyId", "alias/fuzz".to_owned()),
        ("Plaintext", "hello world".to_owned()),
        ("SignatureMethod", signature::V1_METHOD.to_owned()),
        ("SignatureNonce", "nonce-v1".to_owned()),
        ("SignatureVersion", signature::V1_VERSION.to_owned()),
        ("Timestamp", timestamp.to_owned()),
        ("Version", "2016-01-20".to_owned()),
    ];
    let to_sign = signature::v1_string_to_sign("GET", params.iter().map(|(n, v)| (*n, v.as_str())));
    params.push(("Signature", signature::v1_sign(SECRET, &to_sign)));
    let query = params
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={}",
                signature::percent_encode(n),
                signature::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    write(
        "server_request",
        "v1-encrypt",
        join_request("GET", "/", &query, &[], ""),
    );

    // V3: ACS3-HMAC-SHA256 over the signed headers, the query and the form body.
    let v3 = |name: &str, action: &str, query: &str, body: &str| {
        let mut headers = vec![
            h("host", "127.0.0.1"),
            h("x-acs-action", action),
            h("x-acs-version", "2016-01-20"),
            h("x-acs-date", timestamp),
            h("x-acs-signature-nonce", &format!("nonce-{name}")),
            h(
                "x-acs-content-sha256",
                &signature::sha256_hex(body.as_bytes()),
            ),
            h("content-type", "application/x-www-form-urlencoded"),
        ];
        let signed: Vec<String> = headers
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n != "content-type")
            .collect();
        let query_params = kms_server::request::parse_form("QueryString", query.as_bytes())
            .expect("a seed's query parses");
        let canonical = signature::v3_canonical_request(
            "POST",
            "/",
            query_params.iter(),
            &headers,
            &signed,
            &signature::sha256_hex(body.as_bytes()),
        );
        let sig = signature::v3_sign(SECRET, &signature::v3_string_to_sign(&canonical));
        headers.push(h(
            "authorization",
            &format!(
                "{} Credential={ACCESS_KEY_ID},SignedHeaders={},Signature={sig}",
                signature::V3_ALGORITHM,
                signed.join(";")
            ),
        ));
        write(
            "server_request",
            name,
            join_request("POST", "/", query, &headers, body),
        );
    };
    v3(
        "v3-describe-key",
        "DescribeKey",
        &format!("KeyId={key_id}"),
        "",
    );
    v3(
        "v3-tag-resource",
        "TagResource",
        "",
        &format!(
            "KeyId={key_id}&Tags=%5B%7B%22TagKey%22%3A%22a%22%2C%22TagValue%22%3A%22b%22%7D%5D"
        ),
    );
    v3(
        "v3-list-aliases",
        "ListAliases",
        "PageSize=5&PageNumber=1",
        "",
    );
    v3(
        "v3-create-secret",
        "CreateSecret",
        "SecretName=db",
        "SecretData=p%40ss+word&VersionId=v1&EncryptionKeyId=alias%2Ffuzz",
    );
}

/// Checks the seeds reach where they are meant to, against fresh fixtures (which also proves
/// the fixtures deterministic).
fn check_seeds() {
    let read = |target: &str, name: &str| fs::read(corpus(target).join(format!("seed-{name}")));
    let f = decrypt_fixture();
    for name in ["aes256", "aes256-context", "aes128", "aes192", "data-key"] {
        let context: EncryptionContext = if name == "aes256-context" {
            [("purpose".to_owned(), "fuzz".to_owned())].into()
        } else {
            Default::default()
        };
        f.kms
            .decrypt(
                &f.caller,
                DecryptRequest {
                    ciphertext_blob: read("blob_decrypt", name).expect("seed"),
                    encryption_context: context,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("blob seed {name} does not decrypt: {e}"));
    }
    let t = record_template();
    for kind in RecordKind::ALL {
        let name = format!("{kind:?}").to_ascii_lowercase();
        for mode in ["plaintext", "stored"] {
            let seed = read("record_decode", &format!("{name}-{mode}")).expect("seed");
            let (&selector, payload) = seed.split_first().expect("a selector");
            let value = if selector & RecordKind::SEAL != 0 {
                kind.seal(&t, payload)
            } else {
                payload.to_vec()
            };
            let kms = kms_fuzz::build_engine(t.storage_with(&kind.record_key(&t), value), 3)
                .expect("the engine opens the seed's store");
            kms.describe_key(
                &kms_fuzz::caller(),
                KeyIdRequest {
                    key_id: ALIAS.into(),
                },
            )
            .unwrap_or_else(|e| panic!("record seed {name}-{mode}: {e}"));
        }
    }
    for name in [
        "v1-encrypt",
        "v3-describe-key",
        "v3-tag-resource",
        "v3-list-aliases",
        "v3-create-secret",
    ] {
        let seed = read("server_request", name).expect("seed");
        let parts = kms_fuzz::server::split_request(&seed);
        let query = kms_server::request::parse_form("QueryString", parts.query).expect("query");
        let body = kms_server::request::parse_form("Body", parts.body).expect("body");
        let params = kms_server::request::merge(&query, body).expect("merge");
        let signed = kms_server::auth::SignedRequest {
            method: &parts.method,
            path: &parts.path,
            headers: &parts.headers,
            query: &query,
            params: &params,
            body: parts.body,
        };
        kms_fuzz::server::authenticator()
            .authenticate(&signed, kms_fuzz::NOW)
            .unwrap_or_else(|e| panic!("server seed {name} is not authentic: {e:?}"));
    }
    println!("every seed reaches its target's deep path");
}

fn main() {
    blob_seeds();
    record_seeds();
    policy_seeds();
    pem_seeds();
    request_seeds();
    server_seeds();
    check_seeds();
}
