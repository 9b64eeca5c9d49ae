//! Shared fixtures of the fuzz targets and of the seed generator (`examples/make_seeds.rs`).
//!
//! Every engine here is deterministic: a fixed root key, a fixed clock and a seeded random
//! source, so the key ids, version ids and sealing keys are the same in every run. That is what
//! lets the committed seed corpus (ciphertext blobs, record plaintexts) name keys that exist in
//! the engine the target builds, so the fuzzer starts deep inside the decrypt and decode paths
//! instead of at "unknown key".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use kms_core::api::*;
use kms_core::RandomSource;
use kms_core::api::KeySpec;
use kms_core::internal::schema;
use kms_core::{Batch, Caller, Kms, KmsError, ManualClock, RootKey, Storage, UnixTime};
use kms_storage::MemoryStorage;

/// The account that owns every key.
pub const ACCOUNT: &str = "1234";
/// The engines' clock: 2027-01-15T08:00:00Z.
pub const NOW: UnixTime = UnixTime(1_800_000_000);
/// The fixed root key.
pub const ROOT_KEY: [u8; 32] = [0x42; 32];
/// The record key of the sealing keyring.
pub const KEYRING_KEY: &[u8] = kms_core::internal::schema::KEYRING;
/// The alias the record template creates.
pub const ALIAS: &str = "alias/fuzz";

/// A deterministic random source (splitmix64). Never use outside tests and fuzzing.
#[derive(Debug)]
pub struct DetRandom(Mutex<u64>);

impl DetRandom {
    pub fn new(seed: u64) -> Self {
        DetRandom(Mutex::new(seed))
    }
}

impl RandomSource for DetRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        let mut state = self.0.lock().map_err(|_| KmsError::internal("poisoned"))?;
        for chunk in buf.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// The account's root principal.
pub fn caller() -> Caller {
    Caller::account_root(ACCOUNT)
}

/// An engine on `storage` with the fixed root key and clock and a random source seeded `seed`.
pub fn build_engine(storage: Arc<dyn Storage>, seed: u64) -> Result<Kms, KmsError> {
    Kms::builder()
        .shared_storage(storage)
        .root_key(RootKey::from_bytes(&ROOT_KEY)?)
        .clock(ManualClock::new(NOW))
        .random_source(DetRandom::new(seed))
        .account_id(ACCOUNT)
        .build()
}

fn create(kms: &Kms, spec: KeySpec) -> String {
    kms.create_key(
        &caller(),
        CreateKeyRequest {
            key_spec: Some(spec),
            ..Default::default()
        },
    )
    .expect("CreateKey")
    .key_metadata
    .key_id
}

fn key_id(id: &str) -> KeyIdRequest {
    KeyIdRequest {
        key_id: id.to_owned(),
    }
}

// ---- blob_decrypt ---------------------------------------------------------------------------

/// The engine Decrypt is fuzzed against.
pub struct DecryptFixture {
    pub kms: Kms,
    pub caller: Caller,
    /// AES-256 with two versions (the second primary), aliased `alias/fuzz`.
    pub aes256: String,
    pub aes128: String,
    pub aes192: String,
    /// AES-256, Disabled.
    pub disabled: String,
    /// EC_P256 (SIGN/VERIFY): a blob naming it must be refused.
    pub ec: String,
}

/// Builds the Decrypt fixture (deterministic: the same ids on every call).
pub fn decrypt_fixture() -> DecryptFixture {
    let kms = build_engine(Arc::new(MemoryStorage::new()), 1).expect("engine");
    let me = caller();
    let aes256 = create(&kms, KeySpec::Aes256);
    let aes128 = create(&kms, KeySpec::Aes128);
    let aes192 = create(&kms, KeySpec::Aes192);
    let disabled = create(&kms, KeySpec::Aes256);
    let ec = create(&kms, KeySpec::EcP256);
    kms.create_key_version(&me, key_id(&aes256))
        .expect("CreateKeyVersion");
    kms.create_alias(
        &me,
        AliasRequest {
            alias_name: ALIAS.into(),
            key_id: aes256.clone(),
        },
    )
    .expect("CreateAlias");
    kms.disable_key(&me, key_id(&disabled)).expect("DisableKey");
    DecryptFixture {
        kms,
        caller: me,
        aes256,
        aes128,
        aes192,
        disabled,
        ec,
    }
}

// ---- record_decode --------------------------------------------------------------------------

/// A store holding one key (two versions, a tag, an alias) and the sealing key of its records.
pub struct RecordTemplate {
    /// Every record of the store, sealed, in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The keyring's current term and its sealing key.
    pub term: u32,
    pub term_key: Vec<u8>,
    pub key_id: String,
    /// The primary version.
    pub version_id: String,
    /// The first version.
    pub old_version_id: String,
}

/// Builds the record template (deterministic).
pub fn record_template() -> RecordTemplate {
    let storage = Arc::new(MemoryStorage::new());
    let kms = build_engine(storage.clone(), 2).expect("engine");
    let me = caller();
    let key_id = create(&kms, KeySpec::Aes256);
    let old_version_id = kms
        .describe_key(&me, self::key_id(&key_id))
        .expect("DescribeKey")
        .key_metadata
        .primary_key_version
        .expect("a primary version");
    let version_id = kms
        .create_key_version(&me, self::key_id(&key_id))
        .expect("CreateKeyVersion")
        .key_version
        .key_version_id;
    kms.create_alias(
        &me,
        AliasRequest {
            alias_name: ALIAS.into(),
            key_id: key_id.clone(),
        },
    )
    .expect("CreateAlias");
    kms.tag_resource(
        &me,
        TagResourceRequest {
            key_id: key_id.clone(),
            tags: vec![Tag {
                tag_key: "team".into(),
                tag_value: "fuzz".into(),
            }],
            ..Default::default()
        },
    )
    .expect("TagResource");
    let entries: Vec<(Vec<u8>, Vec<u8>)> = storage
        .scan(b"", None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|(k, e)| (k, e.value))
        .collect();
    let keyring = entries
        .iter()
        .find(|(k, _)| k == KEYRING_KEY)
        .map(|(_, v)| v.clone())
        .expect("a keyring");
    let (term, term_key) = current_term_key(&keyring).expect("the keyring opens");
    RecordTemplate {
        entries,
        term,
        term_key,
        key_id,
        version_id,
        old_version_id,
    }
}

impl RecordTemplate {
    /// A fresh store with the template's records.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.store(None)
    }

    /// A fresh store with the template's records and `value` stored under `record_key`.
    pub fn storage_with(&self, record_key: &[u8], value: Vec<u8>) -> Arc<dyn Storage> {
        self.store(Some((record_key, value)))
    }

    fn store(&self, replace: Option<(&[u8], Vec<u8>)>) -> Arc<dyn Storage> {
        let storage = MemoryStorage::new();
        let mut batch = Batch::new();
        for (k, v) in &self.entries {
            if replace.as_ref().is_none_or(|(rk, _)| k != rk) {
                batch.put(k.clone(), v.clone());
            }
        }
        if let Some((rk, value)) = replace {
            batch.put(rk.to_vec(), value);
        }
        storage.commit(batch).expect("commit to memory");
        Arc::new(storage)
    }

    /// The stored (sealed) value of a record.
    pub fn sealed(&self, record_key: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == record_key)
            .map(|(_, v)| v.as_slice())
    }

    /// Seals `plaintext` under the current term, as the engine stores it at `record_key`.
    pub fn seal(&self, record_key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(&self.term_key, self.term, record_key, plaintext)
    }

    /// Opens a value the engine stored at `record_key`.
    pub fn open(&self, record_key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.term_key, record_key, sealed)
    }
}

/// The record kinds `record_decode` can replace, chosen by the input's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `k/<key id>`.
    Key,
    /// `v/<key id>/<primary version id>`.
    Version,
    /// `a/alias/fuzz`.
    Alias,
    /// `m/keyring`, sealed under the root key.
    Keyring,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Key,
        RecordKind::Version,
        RecordKind::Alias,
        RecordKind::Keyring,
    ];

    /// Selector bit: the payload is a plaintext record to seal (else stored as is).
    pub const SEAL: u8 = 4;

    pub fn from_selector(selector: u8) -> Self {
        Self::ALL[usize::from(selector % 4)]
    }

    pub fn selector(self, sealed: bool) -> u8 {
        let kind = Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8;
        kind | if sealed { Self::SEAL } else { 0 }
    }

    pub fn record_key(self, t: &RecordTemplate) -> Vec<u8> {
        match self {
            RecordKind::Key => schema::key(&t.key_id),
            RecordKind::Version => schema::version(&t.key_id, &t.version_id),
            RecordKind::Alias => schema::alias(ALIAS),
            RecordKind::Keyring => KEYRING_KEY.to_vec(),
        }
    }

    /// Seals `plaintext` for this record as the engine would.
    pub fn seal(self, t: &RecordTemplate, plaintext: &[u8]) -> Vec<u8> {
        match self {
            RecordKind::Keyring => seal(&ROOT_KEY, 0, KEYRING_KEY, plaintext),
            _ => t.seal(&self.record_key(t), plaintext),
        }
    }

    /// Opens this record's stored value in the template.
    pub fn open(self, t: &RecordTemplate) -> Option<Vec<u8>> {
        let rk = self.record_key(t);
        let sealed = t.sealed(&rk)?;
        match self {
            RecordKind::Keyring => open(&ROOT_KEY, KEYRING_KEY, sealed),
            _ => t.open(&rk, sealed),
        }
    }
}

fn aad(term: u32, record_key: &[u8]) -> Vec<u8> {
    let mut aad = term.to_be_bytes().to_vec();
    aad.extend_from_slice(record_key);
    aad
}

fn aes256(key: &[u8]) -> ring::aead::LessSafeKey {
    ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key).expect("a 256-bit key"),
    )
}

/// `term u32 BE | nonce | AES-256-GCM(plaintext) | tag`, associated data `term | record key`:
/// the engine's sealed-record format. The nonce is fixed (fine for fuzzing, never for real).
pub fn seal(key: &[u8], term: u32, record_key: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = [7u8; 12];
    let mut body = plaintext.to_vec();
    aes256(key)
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(aad(term, record_key)),
            &mut body,
        )
        .expect("seal");
    let mut out = term.to_be_bytes().to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out
}

/// Opens a sealed record (the inverse of [`seal`], for any nonce).
pub fn open(key: &[u8], record_key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 16 + 16 {
        return None;
    }
    let term = u32::from_be_bytes(sealed[..4].try_into().ok()?);
    let nonce: [u8; 12] = sealed[4..16].try_into().ok()?;
    let mut body = sealed[16..].to_vec();
    let len = aes256(key)
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(aad(term, record_key)),
            &mut body,
        )
        .ok()?
        .len();
    body.truncate(len);
    Some(body)
}

/// The current term and its sealing key, from a stored keyring.
pub fn current_term_key(sealed_keyring: &[u8]) -> Option<(u32, Vec<u8>)> {
    let plain = open(&ROOT_KEY, KEYRING_KEY, sealed_keyring)?;
    let doc: serde_json::Value = serde_json::from_slice(plain.get(1..)?).ok()?;
    let term = u32::try_from(doc.get("current_term")?.as_u64()?).ok()?;
    let terms: BTreeMap<String, String> = serde_json::from_value(doc.get("terms")?.clone()).ok()?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(terms.get(&term.to_string())?)
        .ok()?;
    Some((term, key))
}

// ---- server_request -------------------------------------------------------------------------

/// The server-side fixture: one access key, and the input format of `server_request`.
pub mod server {
    use kms_server::auth::Authenticator;
    use kms_server::config::{AccessKeys, Credential};

    /// The fixture's AccessKeyId.
    pub const ACCESS_KEY_ID: &str = "LTAIfuzz";
    /// Its AccessKeySecret.
    pub const SECRET: &str = "fuzz-secret";

    /// An authenticator that knows [`ACCESS_KEY_ID`] (acting as the account root), with an
    /// empty nonce cache.
    pub fn authenticator() -> Authenticator {
        let mut keys = AccessKeys::new();
        keys.insert(ACCESS_KEY_ID, Credential::new(SECRET, super::caller()))
            .expect("one key");
        Authenticator::new(keys, 16)
    }

    /// A decoded `server_request` input.
    #[derive(Debug, Default)]
    pub struct RequestParts<'a> {
        pub method: String,
        pub path: String,
        pub query: &'a [u8],
        pub headers: Vec<(String, String)>,
        pub body: &'a [u8],
    }

    /// Splits `method \0 path \0 query \0 headers \0 body` (missing parts are empty).
    pub fn split_request(data: &[u8]) -> RequestParts<'_> {
        let mut it = data.splitn(5, |&b| b == 0);
        let mut next = || it.next().unwrap_or_default();
        let method = String::from_utf8_lossy(next()).into_owned();
        let path = String::from_utf8_lossy(next()).into_owned();
        let query = next();
        let headers = String::from_utf8_lossy(next())
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        let body = next();
        RequestParts {
            method,
            path,
            query,
            headers,
            body,
        }
    }

    /// Joins parts into a `server_request` input.
    pub fn join_request(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Vec<u8> {
        let headers: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        [method, path, query, &headers.join("\n"), body]
            .join("\0")
            .into_bytes()
    }
}
