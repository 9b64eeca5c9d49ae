//! Shared setup for the asymmetric, BYOK, HSM and Wycheproof tests: an engine on a recording
//! `MemoryStorage` with a `ManualClock` (account "1234", region "cn-hangzhou"), an optional
//! key provider, an RNG the RustCrypto crates accept, PEM helpers, and a thin wrapper around
//! the `openssl` command line used as an independent implementation.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code
)]

use std::fmt::Debug;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};
use kms_core::{Batch, Caller, Entry, Kms, KmsError, ManualClock, RootKey, Storage};
use kms_core::{InMemoryHsm, KeyProvider};
use kms_core::{OsRandom, RandomSource};
use kms_core::{StorageError, UnixTime};
use kms_storage::MemoryStorage;

/// The account that owns every key.
pub const ACCOUNT: &str = "1234";
/// Where the manual clock starts: 2027-01-15T08:00:00Z.
pub const START: UnixTime = UnixTime(1_800_000_000);
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// A storage wrapper that forwards to a `MemoryStorage` and remembers every value committed,
/// so tests can look at exactly what reached storage; commits can be made to fail.
#[derive(Default)]
pub struct RecordingStorage {
    pub inner: MemoryStorage,
    pub written: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    pub fail_commits: AtomicBool,
}

impl RecordingStorage {
    /// Every value ever put, with its record key.
    pub fn writes(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.written.lock().unwrap().clone()
    }

    /// The current value of a record.
    pub fn current(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key).unwrap().map(|e| e.value)
    }

    /// Every current record whose key starts with `prefix`.
    pub fn current_under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.inner
            .scan(prefix, None, 10_000)
            .unwrap()
            .into_iter()
            .map(|(k, e)| (k, e.value))
            .collect()
    }
}

impl Storage for RecordingStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected commit failure".into()));
        }
        let puts: Vec<(Vec<u8>, Vec<u8>)> = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                kms_core::Op::Put { key, value, .. } => Some((key.clone(), value.clone())),
                kms_core::Op::Delete { .. } => None,
            })
            .collect();
        self.inner.commit(batch)?;
        self.written.lock().unwrap().extend(puts);
        Ok(())
    }
}

/// An engine with its clock, storage and (optional) key provider.
pub struct Env {
    pub kms: Kms,
    pub clock: Arc<ManualClock>,
    pub storage: Arc<RecordingStorage>,
    pub root_key: RootKey,
    pub hsm: Option<Arc<InMemoryHsm>>,
    pub me: Caller,
}

fn builder(
    storage: Arc<RecordingStorage>,
    clock: Arc<ManualClock>,
    root_key: RootKey,
) -> kms_core::KmsBuilder {
    Kms::builder()
        .shared_storage(storage)
        .root_key(root_key)
        .account_id(ACCOUNT)
        .region("cn-hangzhou")
        .clock(clock)
}

impl Env {
    /// An engine without a key provider.
    pub fn new() -> Self {
        let storage = Arc::new(RecordingStorage::default());
        let clock = Arc::new(ManualClock::new(START));
        let root_key = RootKey::generate().unwrap();
        let kms = builder(storage.clone(), clock.clone(), root_key.clone())
            .build()
            .unwrap();
        Env {
            kms,
            clock,
            storage,
            root_key,
            hsm: None,
            me: Caller::account_root(ACCOUNT),
        }
    }

    /// An engine whose key provider is an `InMemoryHsm` the test can inspect.
    pub fn with_hsm() -> Self {
        let hsm = Arc::new(InMemoryHsm::new());
        let mut env = Self::with_provider(hsm.clone());
        env.hsm = Some(hsm);
        env
    }

    /// An engine with the given key provider.
    pub fn with_provider(provider: Arc<dyn KeyProvider>) -> Self {
        let storage = Arc::new(RecordingStorage::default());
        let clock = Arc::new(ManualClock::new(START));
        let root_key = RootKey::generate().unwrap();
        let kms = builder(storage.clone(), clock.clone(), root_key.clone())
            .shared_key_provider(provider)
            .build()
            .unwrap();
        Env {
            kms,
            clock,
            storage,
            root_key,
            hsm: None,
            me: Caller::account_root(ACCOUNT),
        }
    }

    /// A second engine on the same storage, clock and root key, with another provider (or
    /// none): what a restart with a different (or empty) HSM looks like.
    pub fn reopen(&self, provider: Option<Arc<dyn KeyProvider>>) -> Kms {
        let mut b = builder(
            self.storage.clone(),
            self.clock.clone(),
            self.root_key.clone(),
        );
        if let Some(p) = provider {
            b = b.shared_key_provider(p);
        }
        b.build().unwrap()
    }

    pub fn create(&self, req: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        self.kms.create_key(&self.me, req).map(|r| r.key_metadata)
    }

    /// Creates a key of `spec` (usage defaulted unless given) and returns (KeyId, version).
    pub fn key(&self, spec: KeySpec, usage: Option<KeyUsage>) -> (String, String) {
        self.key_at(spec, usage, ProtectionLevel::Software)
    }

    pub fn key_at(
        &self,
        spec: KeySpec,
        usage: Option<KeyUsage>,
        level: ProtectionLevel,
    ) -> (String, String) {
        let m = self
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                key_usage: usage,
                protection_level: Some(level),
                ..Default::default()
            })
            .unwrap();
        (m.key_id, m.primary_key_version.unwrap())
    }

    /// An EXTERNAL key (PendingImport).
    pub fn external_key(&self, spec: KeySpec, level: ProtectionLevel) -> String {
        let m = self
            .create(CreateKeyRequest {
                key_spec: Some(spec),
                origin: Some(Origin::External),
                protection_level: Some(level),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(m.key_state, KeyState::PendingImport);
        m.key_id
    }

    pub fn describe(&self, key_id: &str) -> KeyMetadata {
        self.kms
            .describe_key(
                &self.me,
                DescribeKeyRequest {
                    key_id: key_id.into(),
                },
            )
            .unwrap()
            .key_metadata
    }

    pub fn state(&self, key_id: &str) -> KeyState {
        self.describe(key_id).key_state
    }

    pub fn sign(
        &self,
        key_id: &str,
        version: &str,
        alg: &str,
        digest: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.kms
            .asymmetric_sign(
                &self.me,
                AsymmetricSignRequest {
                    key_id: key_id.into(),
                    key_version_id: version.into(),
                    algorithm: alg.into(),
                    digest: digest.to_vec(),
                },
            )
            .map(|r| r.value)
    }

    pub fn verify(
        &self,
        key_id: &str,
        version: &str,
        alg: &str,
        digest: &[u8],
        sig: &[u8],
    ) -> Result<bool, KmsError> {
        self.kms
            .asymmetric_verify(
                &self.me,
                AsymmetricVerifyRequest {
                    key_id: key_id.into(),
                    key_version_id: version.into(),
                    algorithm: alg.into(),
                    digest: digest.to_vec(),
                    value: sig.to_vec(),
                },
            )
            .map(|r| r.value)
    }

    pub fn asym_encrypt(
        &self,
        key_id: &str,
        version: &str,
        alg: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.kms
            .asymmetric_encrypt(
                &self.me,
                AsymmetricEncryptRequest {
                    key_id: key_id.into(),
                    key_version_id: version.into(),
                    algorithm: alg.into(),
                    plaintext: plaintext.to_vec().into(),
                },
            )
            .map(|r| r.ciphertext_blob)
    }

    pub fn asym_decrypt(
        &self,
        key_id: &str,
        version: &str,
        alg: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.kms
            .asymmetric_decrypt(
                &self.me,
                AsymmetricDecryptRequest {
                    key_id: key_id.into(),
                    key_version_id: version.into(),
                    algorithm: alg.into(),
                    ciphertext_blob: ciphertext.to_vec(),
                },
            )
            .map(|r| r.plaintext.to_vec())
    }

    pub fn public_key_pem(&self, key_id: &str, version: &str) -> Result<String, KmsError> {
        self.kms
            .get_public_key(
                &self.me,
                GetPublicKeyRequest {
                    key_id: key_id.into(),
                    key_version_id: version.into(),
                },
            )
            .map(|r| r.public_key)
    }

    pub fn encrypt(&self, key_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.kms
            .encrypt(
                &self.me,
                EncryptRequest {
                    key_id: key_id.into(),
                    plaintext: plaintext.to_vec().into(),
                    ..Default::default()
                },
            )
            .map(|r| r.ciphertext_blob)
    }

    pub fn decrypt(&self, blob: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.kms
            .decrypt(
                &self.me,
                DecryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    ..Default::default()
                },
            )
            .map(|r| r.plaintext.to_vec())
    }

    pub fn disable(&self, key_id: &str) {
        self.kms
            .disable_key(
                &self.me,
                DisableKeyRequest {
                    key_id: key_id.into(),
                },
            )
            .unwrap();
    }

    pub fn schedule_deletion(&self, key_id: &str, days: i64) -> Result<(), KmsError> {
        self.kms
            .schedule_key_deletion(
                &self.me,
                ScheduleKeyDeletionRequest {
                    key_id: key_id.into(),
                    pending_window_in_days: Some(days),
                },
            )
            .map(|_| ())
    }

    pub fn new_version(&self, key_id: &str) -> Result<String, KmsError> {
        self.kms
            .create_key_version(
                &self.me,
                CreateKeyVersionRequest {
                    key_id: key_id.into(),
                },
            )
            .map(|r| r.key_version.key_version_id)
    }

    pub fn params_for_import(
        &self,
        key_id: &str,
        alg: &str,
    ) -> Result<GetParametersForImportResponse, KmsError> {
        self.kms.get_parameters_for_import(
            &self.me,
            GetParametersForImportRequest {
                key_id: key_id.into(),
                wrapping_algorithm: alg.into(),
                wrapping_key_spec: "RSA_2048".into(),
            },
        )
    }

    pub fn import(
        &self,
        key_id: &str,
        wrapped: &[u8],
        token: &str,
        expire_unix: Option<i64>,
    ) -> Result<(), KmsError> {
        self.kms
            .import_key_material(
                &self.me,
                ImportKeyMaterialRequest {
                    key_id: key_id.into(),
                    encrypted_key_material: wrapped.to_vec(),
                    import_token: token.into(),
                    key_material_expire_unix: expire_unix,
                },
            )
            .map(|_| ())
    }

    /// GetParametersForImport (OAEP-SHA-256) + wrap with the rsa crate + ImportKeyMaterial.
    pub fn import_material(
        &self,
        key_id: &str,
        material: &[u8],
        expire_unix: Option<i64>,
    ) -> Result<(), KmsError> {
        let p = self
            .params_for_import(key_id, "RSAES_OAEP_SHA_256")
            .unwrap();
        let wrapped = wrap(&p.public_key, "RSAES_OAEP_SHA_256", material);
        self.import(key_id, &wrapped, &p.import_token, expire_unix)
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// Asserts that `r` failed with `code`; returns the error for further checks.
#[track_caller]
pub fn expect_err<T: Debug>(r: Result<T, KmsError>, code: &str) -> KmsError {
    match r {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}

/// Asserts that `r` failed with `InvalidParameter` or `MissingParameter` naming `param`.
#[track_caller]
pub fn expect_param_err<T: Debug>(r: Result<T, KmsError>, code: &str, param: &str) -> KmsError {
    let e = expect_err(r, code);
    assert!(
        e.to_string().contains(param),
        "the message should name {param}: {e}"
    );
    e
}

/// SHA-256 of `msg`.
pub fn sha256(msg: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(msg).to_vec()
}

/// Random bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRandom.fill(&mut v).unwrap();
    v
}

/// An RNG the RustCrypto crates accept, drawing from the OS.
pub struct TestRng;

impl rand_core::TryRng for TestRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        OsRandom.fill(dst).expect("the OS random source failed");
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

/// An RSA-2048 key pair made by the rsa crate, shared by the tests of one binary.
pub fn rsa_2048() -> &'static rsa::RsaPrivateKey {
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut TestRng, 2048).unwrap())
}

/// The DER SubjectPublicKeyInfo of an rsa crate key.
pub fn rsa_spki(key: &rsa::RsaPrivateKey) -> Vec<u8> {
    use rsa::pkcs8::EncodePublicKey;
    key.to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// Wraps `material` for ImportKeyMaterial with the rsa crate, by WrappingAlgorithm name.
pub fn wrap(spki_der: &[u8], alg: &str, material: &[u8]) -> Vec<u8> {
    use rsa::pkcs8::DecodePublicKey;
    let public = rsa::RsaPublicKey::from_public_key_der(spki_der).unwrap();
    match alg {
        "RSAES_OAEP_SHA_256" => public
            .encrypt(&mut TestRng, rsa::Oaep::<sha2::Sha256>::new(), material)
            .unwrap(),
        "RSAES_OAEP_SHA_1" => public
            .encrypt(&mut TestRng, rsa::Oaep::<sha1::Sha1>::new(), material)
            .unwrap(),
        "RSAES_PKCS1_V1_5" => public
            .encrypt(&mut TestRng, rsa::Pkcs1v15Encrypt, material)
            .unwrap(),
        other => panic!("unknown wrapping algorithm {other}"),
    }
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM, checking the armour strictly.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let mut lines = pem.lines();
    assert_eq!(lines.next(), Some("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == "-----END PUBLIC KEY-----" {
            ended = true;
            break;
        }
        assert!(line.len() <= 64, "PEM lines are at most 64 characters");
        body.push_str(line);
    }
    assert!(ended, "no END line: {pem}");
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// The `openssl` command line. A test that needs it fails (never passes silently) when it is
/// not installed.
pub fn openssl() -> Command {
    let found = Command::new("sh")
        .args(["-c", "command -v openssl"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the `openssl` command line tool is required by this cross-check test but was not \
         found on PATH; install it (e.g. `apt-get install openssl`)"
    );
    Command::new("openssl")
}

/// Runs `openssl args...` in `dir`, asserting success; returns stdout.
#[track_caller]
pub fn run_openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = openssl().current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `openssl args...` in `dir`; returns whether it succeeded (for verification, where a
/// failure is an answer) and its combined output.
pub fn try_openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = openssl().current_dir(dir).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A KeyId that names nothing.
pub const NO_SUCH_VERSION: &str = "00000000-0000-4000-8000-000000000000";

/// All asymmetric key specs except RSA_4096 (kept to one key in the suite).
pub const ASYM_SPECS: [KeySpec; 4] = [
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::EcP256,
    KeySpec::EcP256K,
];
