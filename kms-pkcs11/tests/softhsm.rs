//! The PKCS#11 key provider and root key against a real token (SoftHSM2): every HSM spec
//! through the engine, cross-checked with openssl; the objects sensitive and never
//! extractable (as `pkcs11-tool` lists them); purge destroying them; BYOK unwrapped inside
//! the token; the keyring sealed by the token's root key and moved to and from a root key
//! file; a token that goes away answering ServiceUnavailable and being used again when back.
//!
//! Needs SoftHSM2 (`softhsm2-util`, its module at `/usr/lib/softhsm/libsofthsm2.so` or
//! `KMS_PKCS11_MODULE`), `pkcs11-tool` (opensc) and `openssl`: the tests make their own token
//! in a temporary directory (`SOFTHSM2_CONF`) and fail, never pass, without them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

#[path = "../../kms-core/tests/support_asym/mod.rs"]
mod support_asym;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, ProtectionLevel};
use kms_core::{rewrap_keyring, Kms, KmsError, RootKey, RootSeal, Storage};
use kms_pkcs11::{Pkcs11Config, Pkcs11Provider, Pkcs11RootKey, Token};
use kms_storage::MemoryStorage;
use support_asym::*;

const LABEL: &str = "kms-test";
const PIN: &str = "5678";

struct Fixture {
    dir: tempfile::TempDir,
    module: String,
    token: Arc<Token>,
}

fn module() -> String {
    let module =
        std::env::var("KMS_PKCS11_MODULE").unwrap_or("/usr/lib/softhsm/libsofthsm2.so".into());
    assert!(
        Path::new(&module).exists(),
        "the SoftHSM2 PKCS#11 module {module} is required by these tests (apt-get install \
         softhsm2 opensc, or set KMS_PKCS11_MODULE)"
    );
    module
}

/// One token per test process: a PKCS#11 module is initialized once per process.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let module = module();
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Read by the module when it is initialized, below; set before any thread uses it.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", LABEL])
            .args(["--so-pin", "1234", "--pin", PIN])
            .output()
            .expect("softhsm2-util is required (apt-get install softhsm2)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = Arc::new(Token::open(Pkcs11Config::new(&module, LABEL, PIN)).unwrap());
        Fixture { dir, module, token }
    })
}

/// Held by each test for its whole run: `pkcs11-tool`, a second process on the token's
/// files, must not run while another test uses the token (SoftHSM's file store does not
/// bear two processes writing and reading at once). Concurrency inside the process is
/// `many_threads_make_and_use_keys_at_once`'s.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn provider() -> Arc<Pkcs11Provider> {
    Arc::new(Pkcs11Provider::on(fixture().token.clone()))
}

fn env() -> Env {
    Env::with_provider(provider())
}

/// `pkcs11-tool --list-objects` of the test token: one block per object.
fn list_objects() -> Vec<String> {
    let f = fixture();
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", f.dir.path().join("softhsm2.conf"))
        .args([
            "--module",
            &f.module,
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            PIN,
        ])
        .arg("--list-objects")
        .output()
        .expect("pkcs11-tool is required (apt-get install opensc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('\t') && !line.is_empty() {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
}

fn objects_labelled(label: &str) -> Vec<String> {
    list_objects()
        .into_iter()
        .filter(|b| b.contains(&format!("label:      {label}\n")))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---- Every spec in the token -------------------------------------------------------------

#[test]
fn aes_keys_encrypt_decrypt_and_rotate_inside_the_token() {
    let _serial = serial();
    let env = env();
    for spec in [KeySpec::Aes256, KeySpec::Aes192, KeySpec::Aes128] {
        let (key, v1) = env.key_at(spec, None, ProtectionLevel::Hsm);
        assert_eq!(env.describe(&key).protection_level, ProtectionLevel::Hsm);
        let blob1 = env.encrypt(&key, b"under v1").unwrap();
        let v2 = env.new_version(&key).unwrap();
        assert_ne!(v1, v2);
        let blob2 = env.encrypt(&key, b"under v2").unwrap();
        assert_eq!(env.decrypt(&blob1).unwrap(), b"under v1", "{spec}");
        assert_eq!(env.decrypt(&blob2).unwrap(), b"under v2", "{spec}");
        // A changed byte fails authentication inside the token.
        let mut bad = blob2.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        expect_err(env.decrypt(&bad), "InvalidCiphertext");
        // Both versions are objects of the token, labelled with their ids.
        assert_eq!(objects_labelled(&format!("{key}/{v1}")).len(), 1);
        assert_eq!(objects_labelled(&format!("{key}/{v2}")).len(), 1);
        // Data keys are sealed by the token too.
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
        let opened = env
            .kms
            .decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: dk.ciphertext_blob.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        // Decrypt of a data key's blob answers the key in Base64, as Alibaba does.
        use base64::Engine;
        assert_eq!(
            &*opened.plaintext,
            base64::engine::general_purpose::STANDARD
                .encode(&*dk.plaintext)
                .as_bytes()
        );
    }
}

#[test]
fn ecdsa_signatures_made_in_the_token_verify_with_openssl() {
    let _serial = serial();
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    for spec in [KeySpec::EcP256, KeySpec::EcP256K] {
        let (key, v) = env.key_at(spec, None, ProtectionLevel::Hsm);
        let msg = format!("signed by the token with {spec}");
        let sig = env
            .sign(&key, &v, "ECDSA_SHA_256", &sha256(msg.as_bytes()))
            .unwrap();
        assert!(env
            .verify(&key, &v, "ECDSA_SHA_256", &sha256(msg.as_bytes()), &sig)
            .unwrap());
        let pem = env.public_key_pem(&key, &v).unwrap();
        write(dir.path(), "pub.pem", pem.as_bytes());
        write(dir.path(), "msg", msg.as_bytes());
        write(dir.path(), "sig", &sig);
        let (ok, out) = try_openssl(
            dir.path(),
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
                "msg",
            ],
        );
        assert!(ok, "openssl rejects the token's {spec} signature: {out}");
        if spec == KeySpec::EcP256K {
            // Low-S, as the engine's software keys sign.
            let s = k256::ecdsa::Signature::from_der(&sig).unwrap();
            assert!(s.normalize_s() == s);
        }
    }
}

#[test]
fn rsa_signatures_and_decryption_in_the_token_cross_check_with_openssl() {
    let _serial = serial();
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
        let (key, v) = env.key_at(spec, Some(KeyUsage::SignVerify), ProtectionLevel::Hsm);
        let pem = env.public_key_pem(&key, &v).unwrap();
        write(dir.path(), "pub.pem", pem.as_bytes());
        let msg = format!("signed by the token with {spec}");
        write(dir.path(), "msg", msg.as_bytes());
        for (alg, opts) in [
            (
                "RSA_PSS_SHA_256",
                &[
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:32",
                ][..],
            ),
            ("RSA_PKCS1_SHA_256", &[][..]),
        ] {
            let sig = env.sign(&key, &v, alg, &sha256(msg.as_bytes())).unwrap();
            write(dir.path(), "sig", &sig);
            let mut args = vec!["dgst", "-sha256"];
            args.extend_from_slice(opts);
            args.extend_from_slice(&["-verify", "pub.pem", "-signature", "sig", "msg"]);
            let (ok, out) = try_openssl(dir.path(), &args);
            assert!(
                ok,
                "openssl rejects the token's {spec} {alg} signature: {out}"
            );
            assert!(env
                .verify(&key, &v, alg, &sha256(msg.as_bytes()), &sig)
                .unwrap());
        }
    }
    let (key, v) = env.key_at(
        KeySpec::Rsa2048,
        Some(KeyUsage::EncryptDecrypt),
        ProtectionLevel::Hsm,
    );
    write(
        dir.path(),
        "pub.pem",
        env.public_key_pem(&key, &v).unwrap().as_bytes(),
    );
    write(dir.path(), "secret", b"decrypted by the token");
    for (alg, md) in [
        ("RSAES_OAEP_SHA_256", "sha256"),
        ("RSAES_OAEP_SHA_1", "sha1"),
    ] {
        let ct = run_openssl(
            dir.path(),
            &[
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-inkey",
                "pub.pem",
                "-in",
                "secret",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &format!("rsa_oaep_md:{md}"),
                "-pkeyopt",
                &format!("rsa_mgf1_md:{md}"),
            ],
        );
        assert_eq!(
            env.asym_decrypt(&key, &v, alg, &ct).unwrap(),
            b"decrypted by the token",
            "{alg}"
        );
        expect_err(
            env.asym_decrypt(&key, &v, alg, &ct[1..]),
            "InvalidCiphertext",
        );
    }
}

#[test]
fn hmac_keys_compute_their_macs_inside_the_token() {
    let _serial = serial();
    let env = env();
    let m = env
        .create(CreateKeyRequest {
            key_spec: Some(KeySpec::HmacSha256),
            key_usage: Some(KeyUsage::GenerateVerifyMac),
            protection_level: Some(ProtectionLevel::Hsm),
            ..Default::default()
        })
        .unwrap();
    let mac = |msg: &[u8]| {
        env.kms
            .generate_mac(
                &env.me,
                GenerateMacRequest {
                    key_id: m.key_id.clone(),
                    message: msg.to_vec(),
                    ..Default::default()
                },
            )
            .unwrap()
            .mac
    };
    let a = mac(b"message");
    assert_eq!(a.len(), 32);
    assert_eq!(a, mac(b"message"), "HMAC is deterministic");
    assert_ne!(a, mac(b"other message"));
    let valid = env
        .kms
        .verify_mac(
            &env.me,
            VerifyMacRequest {
                key_id: m.key_id.clone(),
                message: b"message".to_vec(),
                mac: a,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(valid.value);
}

// ---- The token's objects ------------------------------------------------------------------

#[test]
fn key_material_objects_are_sensitive_and_never_extractable() {
    let _serial = serial();
    let env = env();
    let (aes, av) = env.key_at(KeySpec::Aes256, None, ProtectionLevel::Hsm);
    let (ec, ev) = env.key_at(KeySpec::EcP256, None, ProtectionLevel::Hsm);
    let (rsa, rv) = env.key_at(KeySpec::Rsa2048, None, ProtectionLevel::Hsm);
    for label in [
        format!("{aes}/{av}"),
        format!("{ec}/{ev}"),
        format!("{rsa}/{rv}"),
    ] {
        let objects = objects_labelled(&label);
        let secret: Vec<&String> = objects
            .iter()
            .filter(|b| b.starts_with("Secret Key Object") || b.starts_with("Private Key Object"))
            .collect();
        assert_eq!(secret.len(), 1, "{label}: {objects:?}");
        let block = secret[0];
        assert!(
            block.contains("sensitive, always sensitive, never extractable, local"),
            "{block}"
        );
    }
    // The engine stores only a handle: the material version records hold `p11:` handles.
    let stored = env.storage.current_under(b"v/");
    assert!(!stored.is_empty());
}

#[test]
fn purging_a_key_destroys_its_token_objects() {
    let _serial = serial();
    let env = env();
    let (doomed, v1) = env.key_at(KeySpec::Aes256, None, ProtectionLevel::Hsm);
    let v2 = env.new_version(&doomed).unwrap();
    let (doomed_ec, ev) = env.key_at(KeySpec::EcP256K, None, ProtectionLevel::Hsm);
    let (kept, kv) = env.key_at(KeySpec::EcP256, None, ProtectionLevel::Hsm);
    assert_eq!(
        objects_labelled(&format!("{doomed_ec}/{ev}")).len(),
        2,
        "a key pair"
    );
    env.schedule_deletion(&doomed, 7).unwrap();
    env.schedule_deletion(&doomed_ec, 7).unwrap();
    env.clock.advance_days(7);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.purged_keys.len(), 2);
    for label in [
        format!("{doomed}/{v1}"),
        format!("{doomed}/{v2}"),
        format!("{doomed_ec}/{ev}"),
    ] {
        assert!(objects_labelled(&label).is_empty(), "{label} is destroyed");
    }
    assert_eq!(objects_labelled(&format!("{kept}/{kv}")).len(), 2);
    let d = sha256(b"m");
    let sig = env.sign(&kept, &kv, "ECDSA_SHA_256", &d).unwrap();
    assert!(env.verify(&kept, &kv, "ECDSA_SHA_256", &d, &sig).unwrap());
}

// ---- BYOK ----------------------------------------------------------------------------------

/// GetParametersForImport + ImportKeyMaterial of `material` into the HSM key `key` with
/// `alg`, checking the wrapping key and the imported object in the token.
fn import_into_token(env: &Env, key: &str, alg: &str, material: &[u8]) {
    let p = env.params_for_import(key, alg).unwrap();
    // The wrapping key is a token object that cannot leave it.
    let wrapping = objects_labelled(&format!("{key}/import"));
    assert_eq!(
        wrapping.len(),
        1,
        "only the private half is kept: {wrapping:?}"
    );
    assert!(wrapping[0].contains("never extractable"), "{}", wrapping[0]);
    // Wrong bytes are refused and change nothing.
    expect_err(
        env.import(key, &random_bytes(256), &p.import_token, None),
        "InvalidKeyMaterial",
    );
    let wrapped = wrap(&p.public_key, alg, material);
    env.import(key, &wrapped, &p.import_token, None).unwrap();
    assert!(
        objects_labelled(&format!("{key}/import")).is_empty(),
        "the spent token's wrapping key is destroyed"
    );
    let v = env.describe(key).primary_key_version.unwrap();
    let imported = objects_labelled(&format!("{key}/{v}"));
    assert_eq!(imported.len(), 1);
    assert!(
        imported[0].contains("Access:     sensitive"),
        "{}",
        imported[0]
    );
    assert!(
        !imported[0].contains("local"),
        "unwrapped, not generated in the token"
    );
}

#[test]
fn imported_material_is_unwrapped_inside_the_token() {
    let _serial = serial();
    let env = env();
    for (spec, alg) in [
        (KeySpec::Aes256, "RSAES_OAEP_SHA_1"),
        (KeySpec::Aes128, "RSAES_PKCS1_V1_5"),
        (KeySpec::Aes192, "RSAES_OAEP_SHA_1"),
    ] {
        let key = env.external_key(spec, ProtectionLevel::Hsm);
        let material = random_bytes(spec.symmetric_key_len().unwrap());
        import_into_token(&env, &key, alg, &material);
        // The material works; the token's check value tells the same material from other
        // material: after DeleteKeyMaterial only the same material imports again, and the
        // blob sealed before still opens.
        let blob = env.encrypt(&key, b"imported").unwrap();
        assert_eq!(env.decrypt(&blob).unwrap(), b"imported");
        env.kms
            .delete_key_material(
                &env.me,
                DeleteKeyMaterialRequest {
                    key_id: key.clone(),
                },
            )
            .unwrap();
        let p = env.params_for_import(&key, alg).unwrap();
        let other = wrap(&p.public_key, alg, &random_bytes(material.len()));
        expect_err(
            env.import(&key, &other, &p.import_token, None),
            "InvalidKeyMaterial",
        );
        let again = wrap(&p.public_key, alg, &material);
        env.import(&key, &again, &p.import_token, None).unwrap();
        assert_eq!(env.decrypt(&blob).unwrap(), b"imported", "{spec} {alg}");
    }
}

#[test]
fn oaep_sha256_wrapping_is_unwrapped_in_the_token_or_refused_before_anything_is_sent() {
    let _serial = serial();
    // SoftHSM 2.6's CKM_RSA_PKCS_OAEP has SHA-1 only: the token cannot unwrap
    // RSAES_OAEP_SHA_256, and the material must not be unwrapped outside it, so
    // GetParametersForImport refuses it and leaves nothing in the token. A token that can
    // is used as for the other algorithms.
    let env = env();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    match env.params_for_import(&key, "RSAES_OAEP_SHA_256") {
        Ok(_) => import_into_token(&env, &key, "RSAES_OAEP_SHA_256", &random_bytes(32)),
        Err(e) => {
            assert_eq!(e.code(), "Rejected.UnsupportedOperation", "{e}");
            assert!(e.to_string().contains("RSAES_OAEP_SHA_1"), "{e}");
            assert!(objects_labelled(&format!("{key}/import")).is_empty());
        }
    }
    // Software keys are not affected.
    let soft = env.external_key(KeySpec::Aes256, ProtectionLevel::Software);
    env.import_material(&soft, &random_bytes(32), None).unwrap();
}

#[test]
fn an_expired_import_token_takes_its_wrapping_key_out_of_the_token() {
    let _serial = serial();
    let env = env();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let p = env.params_for_import(&key, "RSAES_OAEP_SHA_1").unwrap();
    assert_eq!(objects_labelled(&format!("{key}/import")).len(), 1);
    env.clock.advance_days(2);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.expired_import_tokens, 1);
    assert!(objects_labelled(&format!("{key}/import")).is_empty());
    let wrapped = wrap(&p.public_key, "RSAES_OAEP_SHA_1", &random_bytes(32));
    expect_err(
        env.import(&key, &wrapped, &p.import_token, None),
        "InvalidImportToken",
    );
}

#[test]
fn imported_material_of_the_wrong_length_is_refused_and_destroyed() {
    let _serial = serial();
    let env = env();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let p = env.params_for_import(&key, "RSAES_OAEP_SHA_1").unwrap();
    let wrapped = wrap(&p.public_key, "RSAES_OAEP_SHA_1", &random_bytes(16));
    let e = expect_err(
        env.import(&key, &wrapped, &p.import_token, None),
        "InvalidKeyMaterial",
    );
    assert!(e.to_string().contains("32 bytes"), "{e}");
    let v = env.describe(&key).primary_key_version.unwrap();
    assert!(objects_labelled(&format!("{key}/{v}")).is_empty());
    assert_eq!(env.describe(&key).key_state, KeyState::PendingImport);
}

// ---- The root key in the token -----------------------------------------------------------

fn engine(storage: &Arc<MemoryStorage>, root: RootSeal) -> Result<Kms, KmsError> {
    Kms::builder()
        .shared_storage(storage.clone())
        .root_seal(root)
        .account_id(ACCOUNT)
        .region("cn-hangzhou")
        .build()
}

#[test]
fn a_root_key_in_the_token_seals_the_keyring_and_moves_to_and_from_a_file() {
    let _serial = serial();
    let token = fixture().token.clone();
    let in_token = RootSeal::Provider(Arc::new(
        Pkcs11RootKey::open(token.clone(), "kms-root-test", true).unwrap(),
    ));
    assert_eq!(
        list_objects()
            .iter()
            .filter(|b| b.contains("label:      kms-root-test\n")
                && b.contains("never extractable"))
            .count(),
        1
    );
    let storage = Arc::new(MemoryStorage::default());
    let me = kms_core::Caller::account_root(ACCOUNT);
    let kms = engine(&storage, in_token.clone()).unwrap();
    let key = kms
        .create_key(&me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let blob = kms
        .encrypt(
            &me,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"sealed under the token's root".to_vec().into(),
                ..Default::default()
            },
        )
        .unwrap()
        .ciphertext_blob;
    drop(kms);
    let decrypts = |kms: &Kms| {
        kms.decrypt(
            &me,
            DecryptRequest {
                ciphertext_blob: blob.clone(),
                ..Default::default()
            },
        )
        .map(|r| r.plaintext.to_vec())
    };
    // A restart with the token serves the same keys.
    let kms = engine(&storage, in_token.clone()).unwrap();
    assert_eq!(decrypts(&kms).unwrap(), b"sealed under the token's root");
    drop(kms);

    // The store alone (any root key file) opens nothing.
    let copy = Arc::new(MemoryStorage::default());
    let mut batch = kms_core::Batch::new();
    for (k, e) in storage.scan(b"", None, 100_000).unwrap() {
        batch.put(k, e.value);
    }
    copy.commit(batch).unwrap();
    let e = engine(&copy, RootSeal::Key(RootKey::generate().unwrap())).unwrap_err();
    assert!(e.to_string().contains("does not open"), "{e}");
    // A root key without the same label in the token is refused as absent.
    let e = Pkcs11RootKey::open(token.clone(), "kms-root-absent", false).unwrap_err();
    assert!(e.to_string().contains("no root key"), "{e}");

    // Moved to a root key file: then that file opens it and the token no longer does.
    let file_key = RootSeal::Key(RootKey::generate().unwrap());
    rewrap_keyring(&*storage, &in_token, &file_key).unwrap();
    assert!(engine(&storage, in_token.clone()).is_err());
    let kms = engine(&storage, file_key.clone()).unwrap();
    assert_eq!(decrypts(&kms).unwrap(), b"sealed under the token's root");
    drop(kms);
    // A move from the wrong root writes nothing.
    assert!(rewrap_keyring(&*storage, &in_token, &file_key).is_err());
    // And back into the token.
    rewrap_keyring(&*storage, &file_key, &in_token).unwrap();
    assert!(engine(&storage, file_key).is_err());
    let kms = engine(&storage, in_token).unwrap();
    assert_eq!(decrypts(&kms).unwrap(), b"sealed under the token's root");
}

#[test]
fn many_threads_make_and_use_keys_at_once() {
    let _serial = serial();
    let env = Arc::new(env());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let env = env.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let (key, _) = env.key_at(KeySpec::Aes256, None, ProtectionLevel::Hsm);
                    let msg = format!("thread {t} message {i}");
                    let blob = env.encrypt(&key, msg.as_bytes()).unwrap();
                    assert_eq!(env.decrypt(&blob).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
