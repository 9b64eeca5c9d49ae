//! ProtectionLevel HSM (docs/states.md): keys whose material lives in a pluggable key provider.
//! Without a provider HSM keys are refused; with one, every spec works through it, the
//! material never reaches storage, private operations go through the provider, purging and
//! DeleteKeyMaterial destroy the provider's handles, and BYOK imports into the provider.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod support_asym;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};
use kms_core::KmsError;
use kms_core::{AeadAlgorithm, NONCE_LEN};
use kms_core::{EncryptionAlgorithm, PublicKey, SigningAlgorithm};
use kms_core::{InMemoryHsm, KeyProvider};
use support_asym::*;
use zeroize::Zeroizing;

const ECDSA: &str = "ECDSA_SHA_256";
const PSS: &str = "RSA_PSS_SHA_256";
const OAEP256: &str = "RSAES_OAEP_SHA_256";

/// A provider that delegates to an `InMemoryHsm`, counts every call by method, and can be
/// told to fail (as an unreachable module would, with InternalFailure).
struct CountingProvider {
    inner: Arc<InMemoryHsm>,
    calls: Mutex<HashMap<&'static str, usize>>,
    labels: Mutex<Vec<String>>,
    fail: AtomicBool,
}

impl CountingProvider {
    fn new(inner: Arc<InMemoryHsm>) -> Self {
        CountingProvider {
            inner,
            calls: Mutex::new(HashMap::new()),
            labels: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
        }
    }

    fn count(&self, method: &'static str) -> usize {
        self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
    }

    fn counts(&self) -> HashMap<&'static str, usize> {
        self.calls.lock().unwrap().clone()
    }

    fn hit(&self, method: &'static str) -> Result<(), KmsError> {
        *self.calls.lock().unwrap().entry(method).or_default() += 1;
        if self.fail.load(Ordering::SeqCst) {
            return Err(KmsError::internal("the HSM is unreachable"));
        }
        Ok(())
    }
}

impl KeyProvider for CountingProvider {
    fn generate(&self, spec: KeySpec, label: &str) -> Result<Vec<u8>, KmsError> {
        self.hit("generate")?;
        self.labels.lock().unwrap().push(label.to_owned());
        self.inner.generate(spec, label)
    }

    fn import(&self, spec: KeySpec, material: &[u8], label: &str) -> Result<Vec<u8>, KmsError> {
        self.hit("import")?;
        self.labels.lock().unwrap().push(label.to_owned());
        self.inner.import(spec, material, label)
    }

    fn aead_seal(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), KmsError> {
        self.hit("aead_seal")?;
        self.inner.aead_seal(handle, alg, nonce, aad, buf, start)
    }

    fn aead_open(
        &self,
        handle: &[u8],
        alg: AeadAlgorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.hit("aead_open")?;
        self.inner
            .aead_open(handle, alg, nonce, aad, ciphertext_and_tag)
    }

    fn sign(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: SigningAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.hit("sign")?;
        self.inner.sign(handle, spec, alg, digest)
    }

    fn decrypt(
        &self,
        handle: &[u8],
        spec: KeySpec,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        self.hit("decrypt")?;
        self.inner.decrypt(handle, spec, alg, ciphertext)
    }

    fn public_key(&self, handle: &[u8], spec: KeySpec) -> Result<PublicKey, KmsError> {
        self.hit("public_key")?;
        self.inner.public_key(handle, spec)
    }

    fn destroy(&self, handle: &[u8]) -> Result<(), KmsError> {
        self.hit("destroy")?;
        self.inner.destroy(handle)
    }
}

fn counting_env() -> (Env, Arc<CountingProvider>, Arc<InMemoryHsm>) {
    let hsm = Arc::new(InMemoryHsm::new());
    let provider = Arc::new(CountingProvider::new(hsm.clone()));
    let env = Env::with_provider(provider.clone());
    (env, provider, hsm)
}

fn hsm_key(env: &Env, spec: KeySpec, usage: Option<KeyUsage>) -> (String, String) {
    env.key_at(spec, usage, ProtectionLevel::Hsm)
}

fn list_by_protection(env: &Env, level: &str) -> Vec<String> {
    let mut ids: Vec<String> = env
        .kms
        .list_keys(
            &env.me,
            ListKeysRequest {
                page_size: Some(100),
                filters: vec![Filter {
                    key: "ProtectionLevel".into(),
                    values: vec![level.into()],
                }],
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

// ---- No provider -----------------------------------------------------------------------------

#[test]
fn hsm_keys_are_refused_without_a_key_provider() {
    let env = Env::new();
    for (spec, origin) in [
        (KeySpec::Aes256, Origin::AliyunKms),
        (KeySpec::Aes128, Origin::External),
        (KeySpec::Rsa2048, Origin::AliyunKms),
        (KeySpec::EcP256, Origin::AliyunKms),
    ] {
        let e = expect_err(
            env.create(CreateKeyRequest {
                key_spec: Some(spec),
                origin: Some(origin),
                protection_level: Some(ProtectionLevel::Hsm),
                ..Default::default()
            }),
            "Rejected.UnsupportedOperation",
        );
        assert!(e.to_string().contains("key provider"), "{e}");
    }
    let all = env
        .kms
        .list_keys(&env.me, ListKeysRequest::default())
        .unwrap();
    assert_eq!(all.total_count, 0, "nothing was created");
    // SOFTWARE keys are unaffected.
    let (k, _) = env.key(KeySpec::Aes256, None);
    assert_eq!(env.decrypt(&env.encrypt(&k, b"x").unwrap()).unwrap(), b"x");
}

#[test]
fn an_hsm_key_made_with_a_provider_is_unusable_by_an_engine_without_one() {
    let env = Env::with_hsm();
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let (ec, ev) = hsm_key(&env, KeySpec::EcP256, None);
    let blob = env.encrypt(&aes, b"x").unwrap();
    let bare = env.reopen(None);
    let e = bare
        .decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: blob,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "Rejected.UnsupportedOperation", "{e}");
    assert!(e.to_string().contains("key provider"), "{e}");
    let e = bare
        .asymmetric_sign(
            &env.me,
            AsymmetricSignRequest {
                key_id: ec,
                key_version_id: ev,
                algorithm: ECDSA.into(),
                digest: sha256(b"m"),
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "Rejected.UnsupportedOperation", "{e}");
}

// ---- Every spec works through the provider ---------------------------------------------------

#[test]
fn hsm_aes_keys_encrypt_decrypt_generate_data_keys_and_rotate() {
    let env = Env::with_hsm();
    let hsm = env.hsm.clone().unwrap();
    for spec in [KeySpec::Aes256, KeySpec::Aes192, KeySpec::Aes128] {
        let m = env
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                protection_level: Some(ProtectionLevel::Hsm),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("7d".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.protection_level, ProtectionLevel::Hsm);
        let key = m.key_id;
        let d = env.describe(&key);
        assert_eq!(d.protection_level, ProtectionLevel::Hsm);
        assert_eq!(serde_json::to_value(&d).unwrap()["ProtectionLevel"], "HSM");

        let ctx: EncryptionContext = [("k".to_string(), "v".to_string())].into();
        let blob1 = env
            .kms
            .encrypt(
                &env.me,
                EncryptRequest {
                    key_id: key.clone(),
                    plaintext: b"hsm data".to_vec().into(),
                    encryption_context: ctx.clone(),
                    ..Default::default()
                },
            )
            .unwrap()
            .ciphertext_blob;
        let open = |blob: &[u8], ctx: &EncryptionContext| {
            env.kms.decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    encryption_context: ctx.clone(),
                    ..Default::default()
                },
            )
        };
        assert_eq!(&open(&blob1, &ctx).unwrap().plaintext[..], b"hsm data");
        expect_err(open(&blob1, &Default::default()), "InvalidCiphertext");
        let mut tampered = blob1.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        expect_err(open(&tampered, &ctx), "InvalidCiphertext");

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
        let text = env.decrypt(&dk.ciphertext_blob).unwrap();
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap(),
            dk.plaintext.to_vec()
        );

        // Manual rotation: a new HSM version becomes primary; old blobs decrypt.
        let v2 = env.new_version(&key).unwrap();
        let blob2 = env.encrypt(&key, b"after rotation").unwrap();
        let r = env
            .kms
            .decrypt(
                &env.me,
                DecryptRequest {
                    ciphertext_blob: blob2,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.key_version_id, v2);
        assert_eq!(&open(&blob1, &ctx).unwrap().plaintext[..], b"hsm data");

        // ReEncrypt between two HSM keys.
        let (other, _) = hsm_key(&env, spec, None);
        let moved = env
            .kms
            .re_encrypt(
                &env.me,
                ReEncryptRequest {
                    ciphertext_blob: blob1.clone(),
                    source_encryption_context: ctx.clone(),
                    destination_key_id: other.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(moved.key_id, other);
        assert_eq!(env.decrypt(&moved.ciphertext_blob).unwrap(), b"hsm data");
    }
    // Automatic rotation through the provider: 3 keys x 7 days.
    let before = hsm.len();
    env.clock.advance_days(7);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.rotated_keys.len(), 3);
    assert_eq!(hsm.len(), before + 3);
}

#[test]
fn hsm_ec_keys_sign_and_verify() {
    use p256::pkcs8::DecodePublicKey;
    use signature::hazmat::PrehashVerifier;
    let env = Env::with_hsm();
    for spec in [KeySpec::EcP256, KeySpec::EcP256K] {
        let (key, v) = hsm_key(&env, spec, None);
        let d = sha256(b"signed in the HSM");
        let sig = env.sign(&key, &v, ECDSA, &d).unwrap();
        assert!(env.verify(&key, &v, ECDSA, &d, &sig).unwrap());
        assert!(!env.verify(&key, &v, ECDSA, &sha256(b"x"), &sig).unwrap());
        expect_err(env.sign(&key, &v, PSS, &d), "Rejected.UnsupportedOperation");
        // The public key from GetPublicKey verifies the signature in another crate.
        let der = pem_to_der(&env.public_key_pem(&key, &v).unwrap());
        if spec == KeySpec::EcP256 {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
            vk.verify_prehash(&d, &p256::ecdsa::Signature::from_der(&sig).unwrap())
                .unwrap();
        } else {
            let vk = k256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
            vk.verify_prehash(&d, &k256::ecdsa::Signature::from_der(&sig).unwrap())
                .unwrap();
        }
        // A new version signs with a new key; the old one keeps verifying.
        let v2 = env.new_version(&key).unwrap();
        let sig2 = env.sign(&key, &v2, ECDSA, &d).unwrap();
        assert!(env.verify(&key, &v2, ECDSA, &d, &sig2).unwrap());
        assert!(!env.verify(&key, &v2, ECDSA, &d, &sig).unwrap());
        assert!(env.verify(&key, &v, ECDSA, &d, &sig).unwrap());
    }
}

#[test]
fn hsm_rsa_keys_decrypt_and_sign() {
    use rsa::pkcs8::DecodePublicKey;
    let env = Env::with_hsm();
    let (key, v) = hsm_key(&env, KeySpec::Rsa2048, None);
    for alg in [OAEP256, "RSAES_OAEP_SHA_1"] {
        let ct = env.asym_encrypt(&key, &v, alg, b"to the hsm").unwrap();
        assert_eq!(env.asym_decrypt(&key, &v, alg, &ct).unwrap(), b"to the hsm");
        expect_err(
            env.asym_decrypt(&key, &v, alg, &random_bytes(256)),
            "InvalidCiphertext",
        );
    }
    // Encrypted outside with the rsa crate from GetPublicKey's PEM.
    let public =
        rsa::RsaPublicKey::from_public_key_der(&pem_to_der(&env.public_key_pem(&key, &v).unwrap()))
            .unwrap();
    let ct = public
        .encrypt(&mut TestRng, rsa::Oaep::<sha2::Sha256>::new(), b"outside")
        .unwrap();
    assert_eq!(
        env.asym_decrypt(&key, &v, OAEP256, &ct).unwrap(),
        b"outside"
    );
    expect_param_err(
        env.asym_encrypt(&key, &v, OAEP256, &[0; 191]),
        "InvalidParameter",
        "Plaintext",
    );
    // ReEncrypt from the HSM RSA key to an HSM AES key.
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let r = env
        .kms
        .re_encrypt(
            &env.me,
            ReEncryptRequest {
                ciphertext_blob: ct,
                destination_key_id: aes,
                source_key_id: Some(key.clone()),
                source_key_version_id: Some(v.clone()),
                source_encryption_algorithm: Some(OAEP256.into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(env.decrypt(&r.ciphertext_blob).unwrap(), b"outside");

    // RSA SIGN/VERIFY in the HSM.
    let (sk, sv) = hsm_key(&env, KeySpec::Rsa2048, Some(KeyUsage::SignVerify));
    let d = sha256(b"m");
    for alg in [PSS, "RSA_PKCS1_SHA_256"] {
        let sig = env.sign(&sk, &sv, alg, &d).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(env.verify(&sk, &sv, alg, &d, &sig).unwrap());
    }
}

#[test]
fn list_keys_filters_by_protection_level() {
    let env = Env::with_hsm();
    let mut hsm_ids = vec![
        hsm_key(&env, KeySpec::Aes256, None).0,
        hsm_key(&env, KeySpec::EcP256K, None).0,
        env.external_key(KeySpec::Aes128, ProtectionLevel::Hsm),
    ];
    hsm_ids.sort();
    let mut soft_ids = vec![
        env.key(KeySpec::Aes256, None).0,
        env.key(KeySpec::EcP256, None).0,
    ];
    soft_ids.sort();
    assert_eq!(list_by_protection(&env, "HSM"), hsm_ids);
    assert_eq!(list_by_protection(&env, "SOFTWARE"), soft_ids);
    for id in &hsm_ids {
        assert_eq!(env.describe(id).protection_level, ProtectionLevel::Hsm);
    }
    expect_param_err(
        env.kms.list_keys(
            &env.me,
            ListKeysRequest {
                filters: vec![Filter {
                    key: "ProtectionLevel".into(),
                    values: vec!["hsm".into()],
                }],
                ..Default::default()
            },
        ),
        "InvalidParameter",
        "Filters",
    );
}

// ---- Material never reaches storage ----------------------------------------------------------

#[test]
fn hsm_material_never_reaches_storage() {
    let hsm = Arc::new(InMemoryHsm::new());
    let env = Env::with_provider(hsm.clone());
    let (soft_rsa, srv) = env.key(KeySpec::Rsa2048, None);
    let (hsm_rsa, hrv) = hsm_key(&env, KeySpec::Rsa2048, None);
    let (soft_aes, _) = env.key(KeySpec::Aes256, None);
    let (hsm_aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let (hsm_ec, hev) = hsm_key(&env, KeySpec::EcP256, None);
    let byok = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let material = random_bytes(32);
    env.import_material(&byok, &material, None).unwrap();
    assert_eq!(hsm.len(), 4, "one slot per HSM version");

    // What storage holds for a version: a SOFTWARE RSA-2048 version carries its PKCS#8 key
    // (over 1000 bytes, sealed); an HSM version only the provider's short handle.
    let version_len = |key: &str, v: &str| {
        env.storage
            .current(format!("v/{key}/{v}").as_bytes())
            .unwrap()
            .len()
    };
    let soft_len = version_len(&soft_rsa, &srv);
    let hsm_len = version_len(&hsm_rsa, &hrv);
    assert!(
        soft_len > 1000,
        "SOFTWARE RSA version record is {soft_len} bytes"
    );
    assert!(
        hsm_len < 400,
        "HSM RSA version record is {hsm_len} bytes: the private key must not be in it"
    );
    assert!(version_len(&hsm_ec, &hev) < 400);

    // Nothing ever written contains the imported material, in any encoding.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&material);
    let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
    for (k, v) in env.storage.writes() {
        for needle in [&material[..], b64.as_bytes(), hex.as_bytes()] {
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "record {} contains the material",
                String::from_utf8_lossy(&k)
            );
        }
    }

    let aes_blob = env.encrypt(&hsm_aes, b"a").unwrap();
    let byok_blob = env.encrypt(&byok, b"b").unwrap();
    let soft_blob = env.encrypt(&soft_aes, b"c").unwrap();
    let ct = env.asym_encrypt(&hsm_rsa, &hrv, OAEP256, b"d").unwrap();

    // The same storage and root key with an empty HSM: SOFTWARE keys work, HSM keys cannot,
    // because their material was only ever in the provider.
    let empty: Arc<dyn KeyProvider> = Arc::new(InMemoryHsm::new());
    let other = env.reopen(Some(empty));
    let dec = |kms: &kms_core::Kms, blob: &[u8]| {
        kms.decrypt(
            &env.me,
            DecryptRequest {
                ciphertext_blob: blob.to_vec(),
                ..Default::default()
            },
        )
    };
    assert_eq!(&dec(&other, &soft_blob).unwrap().plaintext[..], b"c");
    expect_err(dec(&other, &aes_blob), "InternalFailure");
    expect_err(dec(&other, &byok_blob), "InternalFailure");
    expect_err(
        other.asymmetric_decrypt(
            &env.me,
            AsymmetricDecryptRequest {
                key_id: hsm_rsa.clone(),
                key_version_id: hrv.clone(),
                algorithm: OAEP256.into(),
                ciphertext_blob: ct.clone(),
            },
        ),
        "InternalFailure",
    );
    // The engine with the original provider, restarted, still works: the handle is stored.
    let same = env.reopen(Some(hsm.clone()));
    assert_eq!(&dec(&same, &aes_blob).unwrap().plaintext[..], b"a");
    assert_eq!(&dec(&same, &byok_blob).unwrap().plaintext[..], b"b");
    let r = same
        .asymmetric_decrypt(
            &env.me,
            AsymmetricDecryptRequest {
                key_id: hsm_rsa,
                key_version_id: hrv,
                algorithm: OAEP256.into(),
                ciphertext_blob: ct,
            },
        )
        .unwrap();
    assert_eq!(&r.plaintext[..], b"d");
}

// ---- Private operations go through the provider ----------------------------------------------

#[test]
fn private_key_operations_of_hsm_keys_go_through_the_provider() {
    let (env, provider, hsm) = counting_env();
    let (ec, ev) = hsm_key(&env, KeySpec::EcP256, None);
    let (rsa, rv) = hsm_key(&env, KeySpec::Rsa2048, None);
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    assert_eq!(provider.count("generate"), 3);
    assert_eq!(hsm.len(), 3);
    // The provider is told which key version each material is for (its object labels).
    assert_eq!(
        *provider.labels.lock().unwrap(),
        [
            format!("{ec}/{ev}"),
            format!("{rsa}/{rv}"),
            format!("{aes}/{}", env.describe(&aes).primary_key_version.unwrap()),
        ]
    );

    let d = sha256(b"m");
    for i in 1..=3 {
        let sig = env.sign(&ec, &ev, ECDSA, &d).unwrap();
        assert_eq!(
            provider.count("sign"),
            i,
            "every signature is made by the provider"
        );
        assert!(env.verify(&ec, &ev, ECDSA, &d, &sig).unwrap());
    }
    // Verification needs only the public key (asked once, then cached), never a signature.
    assert_eq!(provider.count("sign"), 3);
    assert!(provider.count("public_key") >= 1);

    let ct = env.asym_encrypt(&rsa, &rv, OAEP256, b"x").unwrap();
    assert_eq!(
        provider.count("decrypt"),
        0,
        "encryption is a public-key operation"
    );
    env.asym_decrypt(&rsa, &rv, OAEP256, &ct).unwrap();
    env.asym_decrypt(&rsa, &rv, OAEP256, &ct).unwrap();
    assert_eq!(provider.count("decrypt"), 2);

    let blob = env.encrypt(&aes, b"y").unwrap();
    assert_eq!(provider.count("aead_seal"), 1);
    env.decrypt(&blob).unwrap();
    assert_eq!(provider.count("aead_open"), 1);

    // SOFTWARE keys never touch the provider.
    let before = provider.counts();
    let (sk, sv) = env.key(KeySpec::EcP256, None);
    let (saes, _) = env.key(KeySpec::Aes256, None);
    let sig = env.sign(&sk, &sv, ECDSA, &d).unwrap();
    assert!(env.verify(&sk, &sv, ECDSA, &d, &sig).unwrap());
    env.decrypt(&env.encrypt(&saes, b"z").unwrap()).unwrap();
    assert_eq!(provider.counts(), before);
}

#[test]
fn a_failing_provider_changes_nothing() {
    let (env, provider, hsm) = counting_env();
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let blob = env.encrypt(&aes, b"x").unwrap();
    provider.fail.store(true, Ordering::SeqCst);
    expect_err(
        env.create(CreateKeyRequest {
            protection_level: Some(ProtectionLevel::Hsm),
            ..Default::default()
        }),
        "InternalFailure",
    );
    expect_err(env.new_version(&aes), "InternalFailure");
    expect_err(env.decrypt(&blob), "InternalFailure");
    let byok = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let material = random_bytes(32);
    let p = env.params_for_import(&byok, OAEP256).unwrap();
    let wrapped = wrap(&p.public_key, OAEP256, &material);
    expect_err(
        env.import(&byok, &wrapped, &p.import_token, None),
        "InternalFailure",
    );
    assert_eq!(env.state(&byok), KeyState::PendingImport);
    // Nothing half-made: one HSM key with one version, the token still usable.
    assert_eq!(list_by_protection(&env, "HSM").len(), 2);
    let versions = env
        .kms
        .list_key_versions(
            &env.me,
            ListKeyVersionsRequest {
                key_id: aes.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(versions.total_count, 1);
    provider.fail.store(false, Ordering::SeqCst);
    env.import(&byok, &wrapped, &p.import_token, None).unwrap();
    assert_eq!(env.state(&byok), KeyState::Enabled);
    assert_eq!(env.decrypt(&blob).unwrap(), b"x");
    assert_eq!(hsm.len(), 2);
}

// ---- Purge and BYOK destroy handles ----------------------------------------------------------

#[test]
fn purging_hsm_keys_destroys_their_provider_handles() {
    let (env, provider, hsm) = counting_env();
    let (doomed, _) = hsm_key(&env, KeySpec::Aes256, None);
    env.new_version(&doomed).unwrap();
    env.new_version(&doomed).unwrap();
    let (doomed_ec, _) = hsm_key(&env, KeySpec::EcP256K, None);
    let (kept, kv) = hsm_key(&env, KeySpec::EcP256, None);
    assert_eq!(hsm.len(), 5);

    env.schedule_deletion(&doomed, 7).unwrap();
    env.schedule_deletion(&doomed_ec, 8).unwrap();
    env.clock.advance_days(7);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.purged_keys, vec![doomed.clone()]);
    assert_eq!(
        hsm.len(),
        2,
        "the three versions of the purged key are destroyed"
    );
    assert_eq!(provider.count("destroy"), 3);

    env.clock.advance_days(1);
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.purged_keys, vec![doomed_ec]);
    assert_eq!(hsm.len(), 1);
    // The remaining key is untouched.
    let d = sha256(b"m");
    let sig = env.sign(&kept, &kv, ECDSA, &d).unwrap();
    assert!(env.verify(&kept, &kv, ECDSA, &d, &sig).unwrap());
}

#[test]
fn byok_into_an_hsm_imports_through_the_provider() {
    let (env, provider, hsm) = counting_env();
    let key = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let m = env.describe(&key);
    assert_eq!(
        (m.origin, m.protection_level, m.key_state),
        (
            Origin::External,
            ProtectionLevel::Hsm,
            KeyState::PendingImport
        )
    );
    assert_eq!(hsm.len(), 0);
    assert_eq!(provider.count("generate"), 0);

    let material = random_bytes(32);
    env.import_material(&key, &material, Some(START.secs() + 3600))
        .unwrap();
    assert_eq!(provider.count("import"), 1);
    assert_eq!(hsm.len(), 1);
    let blob = env.encrypt(&key, b"byok in hsm").unwrap();
    assert_eq!(provider.count("aead_seal"), 1);
    assert_eq!(env.decrypt(&blob).unwrap(), b"byok in hsm");

    // Re-import of the same material replaces the handle; the old one is destroyed.
    env.import_material(&key, &material, None).unwrap();
    assert_eq!(provider.count("import"), 2);
    assert_eq!(hsm.len(), 1);
    assert_eq!(env.decrypt(&blob).unwrap(), b"byok in hsm");
    expect_err(
        env.import_material(&key, &random_bytes(32), None),
        "InvalidKeyMaterial",
    );
    assert_eq!(
        provider.count("import"),
        2,
        "checked before the provider is asked"
    );

    // DeleteKeyMaterial destroys the handle.
    env.kms
        .delete_key_material(
            &env.me,
            DeleteKeyMaterialRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    assert_eq!(hsm.len(), 0);
    assert_eq!(env.state(&key), KeyState::PendingImport);
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    env.import_material(&key, &material, Some(START.secs() + 3600))
        .unwrap();
    assert_eq!(hsm.len(), 1);
    assert_eq!(env.decrypt(&blob).unwrap(), b"byok in hsm");

    // Expired material: maintenance destroys the handle too.
    env.clock.advance(3600);
    expect_err(env.decrypt(&blob), "Rejected.PendingImport");
    let r = env.kms.run_maintenance(env.kms.now()).unwrap();
    assert_eq!(r.expired_material_keys, vec![key.clone()]);
    assert_eq!(hsm.len(), 0);

    // AES-128 and AES-192 EXTERNAL HSM keys take 16 and 24 bytes.
    for (spec, len) in [(KeySpec::Aes128, 16), (KeySpec::Aes192, 24)] {
        let k = env.external_key(spec, ProtectionLevel::Hsm);
        expect_err(
            env.import_material(&k, &random_bytes(32), None),
            "InvalidKeyMaterial",
        );
        env.import_material(&k, &random_bytes(len), None).unwrap();
        assert_eq!(env.decrypt(&env.encrypt(&k, b"q").unwrap()).unwrap(), b"q");
    }
    assert_eq!(hsm.len(), 2);
}

#[test]
fn disabled_hsm_keys_follow_the_state_table() {
    let env = Env::with_hsm();
    let (ec, ev) = hsm_key(&env, KeySpec::EcP256, None);
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let blob = env.encrypt(&aes, b"x").unwrap();
    env.disable(&ec);
    env.disable(&aes);
    expect_err(
        env.sign(&ec, &ev, ECDSA, &sha256(b"m")),
        "Rejected.Disabled",
    );
    expect_err(env.public_key_pem(&ec, &ev), "Rejected.Disabled");
    expect_err(env.decrypt(&blob), "Rejected.Disabled");
    expect_err(env.new_version(&aes), "Rejected.Disabled");
    assert_eq!(env.hsm.as_ref().unwrap().len(), 2);
}

#[test]
fn a_failed_commit_leaves_no_material_behind_in_the_provider() {
    let (env, provider, hsm) = counting_env();
    let (aes, _) = hsm_key(&env, KeySpec::Aes256, None);
    let byok = env.external_key(KeySpec::Aes256, ProtectionLevel::Hsm);
    let p = env.params_for_import(&byok, OAEP256).unwrap();
    let wrapped = wrap(&p.public_key, OAEP256, &random_bytes(32));
    assert_eq!(hsm.len(), 1);

    env.storage.fail_commits.store(true, Ordering::SeqCst);
    expect_err(
        env.create(CreateKeyRequest {
            key_spec: Some(KeySpec::EcP256),
            protection_level: Some(ProtectionLevel::Hsm),
            ..Default::default()
        }),
        "InternalFailure",
    );
    expect_err(env.new_version(&aes), "InternalFailure");
    expect_err(
        env.import(&byok, &wrapped, &p.import_token, None),
        "InternalFailure",
    );
    env.storage.fail_commits.store(false, Ordering::SeqCst);

    // The provider made or imported material for each attempt, and the engine destroyed it
    // again when nothing referring to it could be stored.
    assert_eq!(provider.count("generate"), 3);
    assert_eq!(provider.count("import"), 1);
    assert_eq!(hsm.len(), 1, "no orphaned material in the provider");
    assert_eq!(list_by_protection(&env, "HSM").len(), 2);
    env.import(&byok, &wrapped, &p.import_token, None).unwrap();
    assert_eq!(hsm.len(), 2);
}
