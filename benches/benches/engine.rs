#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Criterion benchmarks of the engine, each path beside the raw primitive it wraps, so the
//! overhead reads as a ratio (`engine` / `raw` in the same group).
//!
//! Run with `cargo bench -p kms-benches`; one group with `cargo bench -p kms-benches --
//! encrypt_1k`. The group and function names are stable so results compare across runs.
//! `scale` measures stores of `KMS_BENCH_KEYS` keys (default `1000,100000,1000000`); with
//! `KMS_BENCH_STORE_DIR` the populated stores are kept there and reused by later runs.

use std::cell::{Cell, OnceCell, RefCell};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyUsage};
use kms_core::{
    Batch, Caller, CryptoProvider, Entry, Kms, Op, Precondition, RootKey, Storage, StorageError,
};
use kms_storage::{MemoryStorage, RedbStorage};
use p256::pkcs8::DecodePrivateKey;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use signature::hazmat::PrehashSigner;
use zeroize::Zeroizing;

const ACCOUNT: &str = "1234";
const PLAINTEXT_LEN: usize = 1024;

fn caller() -> Caller {
    Caller::account_root(ACCOUNT)
}

fn context() -> EncryptionContext {
    [("tenant".to_owned(), "acme".to_owned())].into()
}

fn engine_on(storage: impl Storage + 'static) -> Kms {
    engine_with(storage, CryptoProvider::default())
}

fn engine_with(storage: impl Storage + 'static, provider: CryptoProvider) -> Kms {
    Kms::builder()
        .crypto_provider(provider)
        .storage(storage)
        .root_key(RootKey::generate().unwrap())
        .account_id(ACCOUNT)
        .build()
        .unwrap()
}

fn create_key(kms: &Kms, spec: KeySpec, usage: KeyUsage) -> KeyMetadata {
    kms.create_key(
        &caller(),
        CreateKeyRequest {
            key_spec: Some(spec),
            key_usage: Some(usage),
            ..Default::default()
        },
    )
    .unwrap()
    .key_metadata
}

fn aes_key(kms: &Kms) -> String {
    create_key(kms, KeySpec::Aes256, KeyUsage::EncryptDecrypt).key_id
}

/// Kms::encrypt of `plaintext` under `key_id` with the benchmark's EncryptionContext; the
/// request is built in the loop, as a caller must.
fn engine_encrypt(kms: &Kms, me: &Caller, key_id: &str, plaintext: &[u8]) -> EncryptResponse {
    kms.encrypt(
        me,
        EncryptRequest {
            key_id: key_id.to_owned(),
            plaintext: plaintext.to_vec().into(),
            encryption_context: context(),
            ..Default::default()
        },
    )
    .unwrap()
}

/// The raw primitive beside the engine: an AES-256-GCM key as ring holds it.
fn raw_aes_key(rng: &SystemRandom) -> LessSafeKey {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill(&mut *bytes).unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &*bytes).unwrap())
}

/// ring AES-256-GCM seal of `plaintext` with a fresh random nonce: `nonce | ct | tag`.
fn raw_seal(key: &LessSafeKey, rng: &SystemRandom, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).unwrap();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut out[NONCE_LEN..],
        )
        .unwrap();
    out.extend_from_slice(tag.as_ref());
    out
}

/// ring AES-256-GCM open of `nonce | ct | tag`, as bare as the primitive allows: the plaintext
/// is a plain `Vec` (the engine's is zeroized on drop; that cost is part of its overhead).
fn raw_open(key: &LessSafeKey, sealed: &[u8]) -> Vec<u8> {
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let mut buf = body.to_vec();
    let len = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::empty(),
            &mut buf[..],
        )
        .unwrap()
        .len();
    buf.truncate(len);
    buf
}

// ---- engine beside raw -------------------------------------------------------------------

/// One engine per crypto provider this build has, named by the provider.
fn engines() -> Vec<(&'static str, Kms)> {
    CryptoProvider::available()
        .into_iter()
        .map(|p| (p.name(), engine_with(MemoryStorage::new(), p)))
        .collect()
}

fn encrypt_1k(c: &mut Criterion) {
    let me = caller();
    let plaintext = vec![0x5a; PLAINTEXT_LEN];
    let rng = SystemRandom::new();
    let raw_key = raw_aes_key(&rng);

    let mut g = c.benchmark_group("encrypt_1k");
    for (name, kms) in engines() {
        let key_id = aes_key(&kms);
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| engine_encrypt(&kms, &me, &key_id, black_box(&plaintext)))
        });
    }
    g.bench_function("raw", |b| {
        b.iter(|| raw_seal(&raw_key, &rng, black_box(&plaintext)))
    });
    g.finish();
}

fn decrypt_1k(c: &mut Criterion) {
    let me = caller();
    let plaintext = vec![0x5a; PLAINTEXT_LEN];
    let rng = SystemRandom::new();
    let raw_key = raw_aes_key(&rng);
    let sealed = raw_seal(&raw_key, &rng, &plaintext);

    let mut g = c.benchmark_group("decrypt_1k");
    for (name, kms) in engines() {
        let key_id = aes_key(&kms);
        let blob = engine_encrypt(&kms, &me, &key_id, &plaintext).ciphertext_blob;
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| {
                let out = kms
                    .decrypt(
                        &me,
                        DecryptRequest {
                            ciphertext_blob: black_box(&blob).clone(),
                            encryption_context: context(),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                assert_eq!(out.plaintext.len(), PLAINTEXT_LEN);
                out
            })
        });
    }
    g.bench_function("raw", |b| {
        b.iter(|| {
            let out = raw_open(&raw_key, black_box(&sealed));
            assert_eq!(out.len(), PLAINTEXT_LEN);
            out
        })
    });
    g.finish();
}

fn generate_data_key(c: &mut Criterion) {
    let kms = engine_on(MemoryStorage::new());
    let me = caller();
    let key_id = aes_key(&kms);
    let rng = SystemRandom::new();
    let raw_key = raw_aes_key(&rng);

    let mut g = c.benchmark_group("generate_data_key");
    g.bench_function("engine", |b| {
        b.iter(|| {
            kms.generate_data_key(
                &me,
                GenerateDataKeyRequest {
                    key_id: key_id.clone(),
                    encryption_context: context(),
                    ..Default::default()
                },
            )
            .unwrap()
        })
    });
    g.bench_function("raw", |b| {
        b.iter(|| {
            let mut data_key = Zeroizing::new([0u8; 32]);
            rng.fill(&mut *data_key).unwrap();
            (raw_seal(&raw_key, &rng, &*data_key), data_key)
        })
    });
    g.finish();
}

fn engine_sign(kms: &Kms, me: &Caller, key: &KeyMetadata, algorithm: &str) -> Vec<u8> {
    kms.asymmetric_sign(
        me,
        AsymmetricSignRequest {
            key_id: key.key_id.clone(),
            key_version_id: key.primary_key_version.clone().unwrap(),
            algorithm: algorithm.into(),
            digest: black_box([0x42u8; 32]).to_vec(),
        },
    )
    .unwrap()
    .value
}

fn sign_p256(c: &mut Criterion) {
    let me = caller();
    let digest = [0x42u8; 32];
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let raw_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let p256_key = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();

    let mut g = c.benchmark_group("sign_p256");
    for (name, kms) in engines() {
        let key = create_key(&kms, KeySpec::EcP256, KeyUsage::SignVerify);
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| engine_sign(&kms, &me, &key, "ECDSA_SHA_256"))
        });
    }
    // ring signs a message, not a prehash: the 32-byte digest is the message here, so raw
    // also hashes it once (SHA-256 of 32 bytes, well under a microsecond).
    g.bench_function("raw", |b| {
        b.iter(|| raw_key.sign(&rng, black_box(&digest)).unwrap())
    });
    // The primitive the pure-Rust provider wraps: RustCrypto p256 (precomputed tables)
    // signing the digest as a prehash, DER-encoded as AsymmetricSign returns it.
    g.bench_function("p256_prehash", |b| {
        b.iter(|| {
            let sig: p256::ecdsa::Signature = p256_key.sign_prehash(black_box(&digest)).unwrap();
            sig.to_der()
        })
    });
    g.finish();
}

/// An RSA-2048 key as ring holds it (generated by aws-lc-rs: ring cannot generate RSA keys).
fn raw_rsa_pkcs8() -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    let key =
        aws_lc_rs::rsa::PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = key.as_der().unwrap();
    der.as_ref().to_vec()
}

/// ring's RSA-PSS-SHA256 signature of a 32-byte digest as the message (ring signs no prehash).
fn ring_pss_sign(key: &ring::rsa::KeyPair, rng: &SystemRandom) -> Vec<u8> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PSS_SHA256,
        rng,
        black_box(&[0x42; 32]),
        &mut sig,
    )
    .unwrap();
    sig
}

fn sign_rsa2048(c: &mut Criterion) {
    let me = caller();
    let rng = SystemRandom::new();
    let pkcs8 = raw_rsa_pkcs8();
    let raw_key = ring::rsa::KeyPair::from_pkcs8(&pkcs8).unwrap();

    let mut g = c.benchmark_group("sign_rsa2048");
    g.sample_size(20);
    for (name, kms) in engines() {
        let key = create_key(&kms, KeySpec::Rsa2048, KeyUsage::SignVerify);
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| engine_sign(&kms, &me, &key, "RSA_PSS_SHA_256"))
        });
    }
    g.bench_function("raw", |b| b.iter(|| ring_pss_sign(&raw_key, &rng)));
    g.finish();
}

fn decrypt_rsa2048(c: &mut Criterion) {
    use aws_lc_rs::rsa::{
        OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
        OAEP_SHA256_MGF1SHA256,
    };
    let me = caller();
    let rng = SystemRandom::new();
    let pkcs8 = raw_rsa_pkcs8();
    let ring_key = ring::rsa::KeyPair::from_pkcs8(&pkcs8).unwrap();
    let private = PrivateDecryptingKey::from_pkcs8(&pkcs8).unwrap();
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let raw_key = OaepPrivateDecryptingKey::new(private).unwrap();
    let mut raw_ct = vec![0u8; 256];
    public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7; 32], &mut raw_ct, None)
        .unwrap();

    let mut g = c.benchmark_group("decrypt_rsa2048");
    g.sample_size(20);
    for (name, kms) in engines() {
        let key = create_key(&kms, KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
        let version = key.primary_key_version.clone().unwrap();
        let blob = kms
            .asymmetric_encrypt(
                &me,
                AsymmetricEncryptRequest {
                    key_id: key.key_id.clone(),
                    key_version_id: version.clone(),
                    algorithm: "RSAES_OAEP_SHA_256".into(),
                    plaintext: vec![7; 32].into(),
                },
            )
            .unwrap()
            .ciphertext_blob;
        g.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| {
                kms.asymmetric_decrypt(
                    &me,
                    AsymmetricDecryptRequest {
                        key_id: key.key_id.clone(),
                        key_version_id: version.clone(),
                        algorithm: "RSAES_OAEP_SHA_256".into(),
                        ciphertext_blob: black_box(&blob).clone(),
                    },
                )
                .unwrap()
            })
        });
    }
    // ring has no RSA decryption: raw is the fastest primitive, aws-lc-rs's OAEP decrypt.
    g.bench_function("raw", |b| {
        b.iter(|| {
            let mut out = [0u8; 256];
            let n = raw_key
                .decrypt(&OAEP_SHA256_MGF1SHA256, black_box(&raw_ct), &mut out, None)
                .unwrap()
                .len();
            assert_eq!(n, 32);
        })
    });
    // The goal's yardstick: ring's RSA-PSS signature with the same key.
    g.bench_function("ring_pss_sign", |b| {
        b.iter(|| ring_pss_sign(&ring_key, &rng))
    });
    g.finish();
}

// ---- concurrency -------------------------------------------------------------------------

/// Runs `iters` calls of `op` split over `threads` scoped threads; the wall time of all.
fn spread(iters: u64, threads: u64, op: impl Fn() + Sync) -> Duration {
    let op = &op;
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..threads {
            let share = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..share {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn encrypt_1k_threads(c: &mut Criterion) {
    let kms = Arc::new(engine_on(MemoryStorage::new()));
    let key_id = aes_key(&kms);
    let plaintext = vec![0x5a; PLAINTEXT_LEN];
    let rng = SystemRandom::new();
    let raw_key = raw_aes_key(&rng);

    let mut g = c.benchmark_group("encrypt_1k_threads");
    g.throughput(Throughput::Elements(1));
    for threads in [1u64, 2] {
        g.bench_with_input(BenchmarkId::new("engine", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                let shared = Arc::clone(&kms);
                let me = caller();
                spread(iters, t, || {
                    black_box(engine_encrypt(&shared, &me, &key_id, &plaintext));
                })
            })
        });
        // What the machine allows: the raw primitive on the same number of threads.
        g.bench_with_input(BenchmarkId::new("raw", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                spread(iters, t, || {
                    black_box(raw_seal(&raw_key, &rng, &plaintext));
                })
            })
        });
    }
    g.finish();
}

// ---- lifecycle ---------------------------------------------------------------------------

/// Times `op` alone; `undo` (untimed) restores the state the next `op` needs.
fn timed_alternating(iters: u64, mut op: impl FnMut(), mut undo: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        op();
        total += start.elapsed();
        undo();
    }
    total
}

fn lifecycle(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let stores: [(&str, Kms); 2] = [
        (
            "redb",
            engine_on(RedbStorage::open(dir.path().join("lifecycle.redb")).unwrap()),
        ),
        ("memory", engine_on(MemoryStorage::new())),
    ];
    let me = caller();

    let mut g = c.benchmark_group("lifecycle");
    // A durable commit is milliseconds: flat sampling keeps the run short.
    g.sampling_mode(SamplingMode::Flat);
    for (name, kms) in &stores {
        g.bench_function(BenchmarkId::new("create_key", name), |b| {
            b.iter(|| kms.create_key(&me, CreateKeyRequest::default()).unwrap())
        });
        let key_id = aes_key(kms);
        let req = || KeyIdRequest {
            key_id: key_id.clone(),
        };
        let disable = || {
            kms.disable_key(&me, req()).unwrap();
        };
        let enable = || {
            kms.enable_key(&me, req()).unwrap();
        };
        g.bench_function(BenchmarkId::new("disable", name), |b| {
            b.iter_custom(|iters| timed_alternating(iters, disable, enable))
        });
        g.bench_function(BenchmarkId::new("enable", name), |b| {
            b.iter_custom(|iters| {
                disable();
                let t = timed_alternating(iters, enable, disable);
                enable();
                t
            })
        });
    }
    g.finish();
}

// ---- scale -------------------------------------------------------------------------------

/// Keys the hot Encrypt loop cycles through, spread evenly over the store.
const SAMPLE: usize = 1024;
/// The key cache of the populating engine (it touches each key once).
const POPULATE_CACHE: usize = 10_000;
/// ListKeys page size in the list measurements (the largest Alibaba allows).
const LIST_PAGE: i64 = 100;

/// Set (to a directory) in the child process that populates a store; see [`populate`].
const POPULATE_DIR: &str = "KMS_BENCH_POPULATE_DIR";
/// Set (to a directory) in the child process that touches every key of a store; see
/// [`touch_all`].
const TOUCH_DIR: &str = "KMS_BENCH_TOUCH_DIR";
/// The number of keys the child creates.
const POPULATE_KEYS: &str = "KMS_BENCH_POPULATE_KEYS";
/// Where populated stores are kept between runs (default: a temporary directory each run).
const STORE_DIR: &str = "KMS_BENCH_STORE_DIR";
/// The store sizes (comma-separated; default `1000,100000,1000000`).
const KEY_COUNTS: &str = "KMS_BENCH_KEYS";
const STORE_FILE: &str = "scale.redb";
const SAMPLE_FILE: &str = "sample.txt";

/// A redb store holding `n` keys, made through the public API.
struct Populated {
    /// Removed at the end of the run unless [`STORE_DIR`] keeps the stores.
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    root: RootKey,
    sample: Vec<String>,
}

impl Populated {
    fn path(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }
}

fn child(var: &str, dir: &Path, n: usize) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(var, dir)
        .env(POPULATE_KEYS, n.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "{var} for {n} keys failed: {status}");
}

/// A store of `n` keys, populated by a child process (this binary run again with
/// [`POPULATE_DIR`] set), so that the memory populating used is not left under the engine
/// being measured, as it would not be in a process that opens an existing store.
fn populate(n: usize) -> Populated {
    let (temp, dir) = match std::env::var_os(STORE_DIR) {
        Some(base) => (None, Path::new(&base).join(n.to_string())),
        None => {
            let t = tempfile::Builder::new()
                .prefix("kms-bench-scale")
                .tempdir()
                .unwrap();
            let d = t.path().to_path_buf();
            (Some(t), d)
        }
    };
    if !dir.join(SAMPLE_FILE).exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        child(POPULATE_DIR, &dir, n);
    }
    let root =
        kms_storage::root_key_file::load(&dir.join(kms_storage::root_key_file::FILE_NAME)).unwrap();
    let sample = std::fs::read_to_string(dir.join(SAMPLE_FILE))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    Populated {
        _temp: temp,
        dir,
        root,
        sample,
    }
}

/// A write-back layer for populating a store: commits land in memory, with their
/// preconditions checked against what reads see (so the engine's rules hold as on the store
/// itself), and reach the RedbStorage as one transaction per [`POPULATE_FLUSH_EVERY`] commits.
/// Only durability is deferred, which a store that can be made again does not need; one
/// write transaction per 20,000 CreateKeys is what makes a 10M-key store take minutes, not
/// hours.
struct WriteBack {
    base: RedbStorage,
    state: std::sync::Mutex<WriteBackState>,
}

#[derive(Default)]
struct WriteBackState {
    pending: std::collections::BTreeMap<Vec<u8>, Option<Entry>>,
    commits: usize,
    revision: u64,
}

/// Commits per write transaction of [`WriteBack`].
const POPULATE_FLUSH_EVERY: usize = 20_000;

impl WriteBack {
    fn new(base: RedbStorage) -> Self {
        WriteBack {
            base,
            state: std::sync::Mutex::new(WriteBackState {
                // Above any revision the base hands out while populating: pending revisions
                // are only compared with themselves.
                revision: 1 << 48,
                ..WriteBackState::default()
            }),
        }
    }

    fn view(&self, state: &WriteBackState, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        match state.pending.get(key) {
            Some(pending) => Ok(pending.clone()),
            None => self.base.get(key),
        }
    }

    fn flush(&self, state: &mut WriteBackState) -> Result<(), StorageError> {
        let mut batch = Batch::new();
        for (key, entry) in std::mem::take(&mut state.pending) {
            match entry {
                Some(e) => batch.put(key, e.value),
                None => batch.delete(key),
            };
        }
        state.commits = 0;
        self.base.commit(batch)
    }

    fn finish(&self) {
        let mut state = self.state.lock().unwrap();
        self.flush(&mut state).unwrap();
    }
}

impl Storage for WriteBack {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        let state = self.state.lock().unwrap();
        self.view(&state, key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        let state = self.state.lock().unwrap();
        let in_range = |k: &[u8]| k.starts_with(prefix) && after.is_none_or(|a| k > a);
        let pending: Vec<(&Vec<u8>, &Option<Entry>)> =
            state.pending.iter().filter(|(k, _)| in_range(k)).collect();
        let want = limit.saturating_add(pending.len());
        let base = self.base.scan(prefix, after, want)?;
        // When the base filled its limit, keys past its last one may be missing: stop there.
        let bound = (base.len() >= want)
            .then(|| base.last().map(|(k, _)| k.clone()))
            .flatten();
        let mut merged: std::collections::BTreeMap<Vec<u8>, Entry> = base.into_iter().collect();
        for (k, e) in pending {
            match e {
                Some(e) => merged.insert(k.clone(), e.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged
            .into_iter()
            .filter(|(k, _)| bound.as_ref().is_none_or(|b| k <= b))
            .take(limit)
            .collect())
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        let mut state = self.state.lock().unwrap();
        for op in &batch.ops {
            if let Some(p) = op.precondition() {
                let current = self.view(&state, op.key())?.map(|e| e.revision);
                let holds = match p {
                    Precondition::Absent => current.is_none(),
                    Precondition::Revision(r) => current == Some(r),
                };
                if !holds {
                    return Err(StorageError::Conflict {
                        key: String::from_utf8_lossy(op.key()).into_owned(),
                    });
                }
            }
        }
        for op in batch.ops {
            state.revision += 1;
            let revision = state.revision;
            match op {
                Op::Put { key, value, .. } => {
                    state.pending.insert(key, Some(Entry { value, revision }));
                }
                Op::Delete { key, .. } => {
                    state.pending.insert(key, None);
                }
            }
        }
        state.commits += 1;
        if state.commits >= POPULATE_FLUSH_EVERY {
            self.flush(&mut state)?;
        }
        Ok(())
    }
}

/// The child's side of [`populate`]: creates `n` keys through the engine (every key with its
/// version, sequence and due-date index records) on the RedbStorage behind a [`WriteBack`].
fn populate_into(dir: &Path, n: usize) {
    let started = Instant::now();
    let root = kms_storage::root_key_file::load_or_create(dir).unwrap();
    let redb = RedbStorage::open(dir.join(STORE_FILE)).unwrap();
    let redb = Arc::new(WriteBack::new(redb));
    let kms = Kms::builder()
        .shared_storage(redb.clone())
        .root_key(root)
        .account_id(ACCOUNT)
        .key_cache_capacity(POPULATE_CACHE)
        .build()
        .unwrap();
    let me = caller();
    let stride = (n / SAMPLE).max(1);
    let mut sample = Vec::with_capacity(SAMPLE);
    for created in 0..n {
        let id = kms
            .create_key(&me, CreateKeyRequest::default())
            .unwrap()
            .key_metadata
            .key_id;
        if created % stride == 0 && sample.len() < SAMPLE {
            sample.push(id);
        }
        if created % 1_000_000 == 999_999 {
            eprintln!("scale: {} keys in {:.0?}", created + 1, started.elapsed());
        }
    }
    drop(kms);
    redb.finish();
    std::fs::write(dir.join(SAMPLE_FILE), sample.join("\n")).unwrap();
    eprintln!("scale: populated {n} keys in {:.1?}", started.elapsed());
}

/// The resident memory of this process, from /proc/self/status: (VmRSS, VmHWM) in MiB.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The child that measures memory: opens the store with the server's defaults (a key cache
/// of 100,000 keys, a 128 MiB store cache), lists every key through ListKeys pages and
/// encrypts once under each, then reports its resident memory.
fn touch_all(dir: &Path, n: usize) {
    let started = Instant::now();
    let root =
        kms_storage::root_key_file::load(&dir.join(kms_storage::root_key_file::FILE_NAME)).unwrap();
    let kms = open_engine(&dir.join(STORE_FILE), &root);
    let me = caller();
    let plaintext = vec![0x5a; PLAINTEXT_LEN];
    let mut touched = 0;
    for page in 1.. {
        let keys = kms
            .list_keys(
                &me,
                ListKeysRequest {
                    page_number: Some(page),
                    page_size: Some(LIST_PAGE),
                    ..Default::default()
                },
            )
            .unwrap()
            .keys
            .key;
        if keys.is_empty() {
            break;
        }
        for k in keys {
            black_box(engine_encrypt(&kms, &me, &k.key_id, &plaintext));
            touched += 1;
        }
    }
    assert_eq!(touched, n);
    let (rss, peak) = rss_mib();
    let cached = kms.cache_stats().keys;
    eprintln!(
        "scale/rss/{n}: {rss} MiB resident ({peak} MiB peak) after touching {touched} keys \
         in {:.0?}; {cached} keys cached",
        started.elapsed()
    );
}

fn open_engine(path: &Path, root: &RootKey) -> Kms {
    open_shared(path, root).0
}

/// The engine and its store, shared so that the raw store can be measured beside it.
fn open_shared(path: &Path, root: &RootKey) -> (Kms, Arc<RedbStorage>) {
    let storage = Arc::new(RedbStorage::open(path).unwrap());
    let kms = Kms::builder()
        .shared_storage(storage.clone())
        .root_key(root.clone())
        .account_id(ACCOUNT)
        .build()
        .unwrap();
    (kms, storage)
}

/// The store sizes measured ([`KEY_COUNTS`]); 1M keys take about N minutes to populate.
fn key_counts() -> Vec<usize> {
    match std::env::var(KEY_COUNTS) {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("KMS_BENCH_KEYS: comma-separated counts")
            })
            .collect(),
        Err(_) => vec![1_000, 100_000, 1_000_000],
    }
}

fn list_keys(kms: &Kms, me: &Caller, page: i64, filters: &[Filter]) -> ListKeysResponse {
    let r = kms
        .list_keys(
            me,
            ListKeysRequest {
                page_number: Some(page),
                page_size: Some(LIST_PAGE),
                filters: filters.to_vec(),
            },
        )
        .unwrap();
    assert_eq!(r.keys.key.len(), LIST_PAGE.min(r.total_count) as usize);
    r
}

fn scale(c: &mut Criterion) {
    let me = caller();
    let plaintext = vec![0x5a; PLAINTEXT_LEN];
    let filtered = [
        Filter {
            key: "KeyState".into(),
            values: vec!["Enabled".into()],
        },
        Filter {
            key: "KeySpec".into(),
            values: vec!["Aliyun_AES_256".into()],
        },
    ];
    let mut g = c.benchmark_group("scale");
    for n in key_counts() {
        // Populated lazily, so a filter that skips this group skips the populating too.
        let cell: OnceCell<Populated> = OnceCell::new();
        let store = || cell.get_or_init(|| populate(n));
        let engine: RefCell<Option<(Kms, Arc<RedbStorage>)>> = RefCell::new(None);
        let shared = || {
            let s = store();
            std::cell::RefMut::map(engine.borrow_mut(), |e| {
                e.get_or_insert_with(|| {
                    let (kms, storage) = open_shared(&s.path(), &s.root);
                    for id in &s.sample {
                        engine_encrypt(&kms, &me, id, &plaintext);
                    }
                    (kms, storage)
                })
            })
        };
        let kms = || std::cell::RefMut::map(shared(), |(kms, _)| kms);
        let next = Cell::new(0usize);
        let last_page = (n as i64 + LIST_PAGE - 1) / LIST_PAGE;

        // Encrypt on the durable store, cycling through SAMPLE keys already in the cache.
        g.bench_with_input(BenchmarkId::new("encrypt", n), &n, |b, _| {
            let s = store();
            let kms = kms();
            b.iter(|| {
                let i = next.get();
                next.set((i + 1) % s.sample.len());
                engine_encrypt(&kms, &me, &s.sample[i], &plaintext)
            })
        });
        // ListKeys: the first page, the last page, and the last page of a filter on two
        // indexed values (every key matches it here), each a page of 100.
        g.bench_with_input(BenchmarkId::new("list_keys_first_page", n), &n, |b, _| {
            let kms = kms();
            b.iter(|| list_keys(&kms, &me, 1, &[]))
        });
        // The primitive a page is made of: one scan of 100 sealed records of the store.
        g.bench_with_input(BenchmarkId::new("raw_scan_100", n), &n, |b, _| {
            let shared = shared();
            let storage = &shared.1;
            b.iter(|| {
                let page = storage
                    .scan(kms_core::internal::schema::KEY, None, LIST_PAGE as usize)
                    .unwrap();
                assert_eq!(page.len(), LIST_PAGE.min(n as i64) as usize);
                page
            })
        });
        g.bench_with_input(BenchmarkId::new("list_keys_last_page", n), &n, |b, _| {
            let kms = kms();
            b.iter(|| list_keys(&kms, &me, last_page, &[]))
        });
        g.bench_with_input(
            BenchmarkId::new("list_keys_last_page_filtered", n),
            &n,
            |b, _| {
                let kms = kms();
                b.iter(|| list_keys(&kms, &me, last_page, &filtered))
            },
        );
        // A maintenance pass with nothing due (no rotation, no deletion, no expiry).
        g.bench_with_input(BenchmarkId::new("maintenance_idle", n), &n, |b, _| {
            let kms = kms();
            let now = kms.now();
            b.iter(|| {
                let report = kms.run_maintenance(now).unwrap();
                assert!(report.purged_keys.is_empty() && report.rotated_keys.is_empty());
                report
            })
        });
        // The file is locked while an engine holds it open.
        drop(engine.take());

        // RedbStorage::open + Kms::build (which reserves a block of seals: one durable
        // write) + the first Encrypt (which loads its key from storage).
        g.sampling_mode(SamplingMode::Flat);
        g.bench_with_input(BenchmarkId::new("open", n), &n, |b, _| {
            let s = store();
            let path = s.path();
            let key_id = &s.sample[s.sample.len() / 2];
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let kms = open_engine(&path, &s.root);
                    black_box(engine_encrypt(&kms, &me, key_id, &plaintext));
                    total += start.elapsed();
                    drop(kms);
                }
                total
            })
        });
        g.sampling_mode(SamplingMode::Auto);
        // Memory after every key was used once, in a process of its own (printed, not timed;
        // skipped when a filter leaves out every scale measurement, as the store is then
        // not populated).
        if let Some(s) = cell.get() {
            child(TOUCH_DIR, &s.dir, n);
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encrypt_1k, decrypt_1k, generate_data_key, sign_p256, sign_rsa2048,
        decrypt_rsa2048, encrypt_1k_threads, lifecycle, scale
}

fn main() {
    if let Some(dir) = std::env::var_os(POPULATE_DIR) {
        let n = std::env::var(POPULATE_KEYS).unwrap().parse().unwrap();
        populate_into(Path::new(&dir), n);
        return;
    }
    if let Some(dir) = std::env::var_os(TOUCH_DIR) {
        let n = std::env::var(POPULATE_KEYS).unwrap().parse().unwrap();
        touch_all(Path::new(&dir), n);
        return;
    }
    // What criterion_main! expands to.
    benches();
    Criterion::default().configure_from_args().final_summary();
}
