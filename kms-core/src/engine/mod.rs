//! The engine: [`Kms`], its builder, and the I/O around the pure lifecycle rules.
//!
//! Record keys and their layout are owned by [`crate::schema`].
//!
//! Decoded key records live in an in-memory cache, filled on first use, so the crypto hot path
//! reads no storage. Mutations are serialized by one lock, re-read the record from storage,
//! apply a pure function of [`crate::keys::rules`], and commit with a revision precondition;
//! the cache is updated only after the commit succeeded.

pub(crate) mod cache;
mod coherence;
pub(crate) mod index;
mod maintenance;
pub(crate) mod mutate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::applications::ops::Instances;
use crate::crypto::backend::CryptoProvider;
use crate::crypto::external::ExternalKeyStore;
use crate::crypto::hsm::KeyProvider;
use crate::crypto::root_key::{RootKey, RootSeal};
use crate::crypto::seal::Sealer;
use crate::crypto::RandomSource;
use crate::error::KmsError;
use crate::ids::KeyRef;
use crate::keys::model::{AliasRecord, KeyRecord, VersionRecord};
use crate::keys::rules;
use crate::policy::{AccessRequest, Action, Authorizer, Caller, Decision, SameAccountOnly};
use crate::schema;
use crate::schema::ArnScope;
use crate::secrets::ops::SecretRotationHandler;
use crate::storage::{Entry, Storage};
use crate::time::{Clock, SystemClock, UnixTime};

pub(crate) const SCHEMA_V1: u8 = 1;
/// Most attempts of a commit (or a mutation) that meets another writer's change.
pub(crate) const COMMIT_ATTEMPTS: u32 = 16;

/// Why a commit did not apply.
#[derive(Debug)]
pub(crate) enum CommitFailure {
    /// A precondition failed on this record (lossy UTF-8): another writer changed it.
    Conflict(String),
    /// Anything else.
    Error(KmsError),
}

impl CommitFailure {
    /// The error a caller sees: a conflict is `InternalFailure` naming the record.
    pub(crate) fn into_error(self) -> KmsError {
        match self {
            CommitFailure::Conflict(key) => KmsError::internal(format!(
                "record {key} was changed by another writer; nothing was applied, try again"
            )),
            CommitFailure::Error(e) => e,
        }
    }
}

pub(crate) const SCAN_PAGE: usize = 512;

pub(crate) use crate::keys::protection::CachedVersion;

/// A key's loaded versions by id (foldhash, like the key cache: looked up on every call).
pub(crate) type VersionMap = HashMap<String, Arc<CachedVersion>, foldhash::fast::RandomState>;

/// A key as the hot path sees it: the decoded record and the versions loaded so far.
pub(crate) struct CachedKey {
    pub(crate) record: KeyRecord,
    pub(crate) arn: String,
    pub(crate) versions: RwLock<VersionMap>,
    /// The stored record's revision when it was read from storage; `None` for the record of
    /// this engine's own commit (whose revision the store did not report).
    pub(crate) revision: Option<u64>,
}

impl CachedKey {
    pub(crate) fn new(
        record: KeyRecord,
        arn: String,
        versions: VersionMap,
        revision: Option<u64>,
    ) -> Self {
        CachedKey {
            record,
            arn,
            versions: RwLock::new(versions),
            revision,
        }
    }

    pub(crate) fn versions_snapshot(&self) -> VersionMap {
        self.versions.read().map(|v| v.clone()).unwrap_or_default()
    }
}

/// A provider's random source, as the engine holds one.
struct ProviderRandom(&'static dyn RandomSource);

impl RandomSource for ProviderRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        self.0.fill(buf)
    }
}

/// Builds a [`Kms`].
///
/// Only the storage and the root key are required. Defaults: [`SameAccountOnly`]
/// authorization, [`SystemClock`], the default [`CryptoProvider`] and its random source,
/// region `cn-hangzhou`, account `1`.
#[must_use]
pub struct KmsBuilder {
    storage: Option<Arc<dyn Storage>>,
    authorizer: Arc<dyn Authorizer>,
    clock: Arc<dyn Clock>,
    rng: Option<Arc<dyn RandomSource>>,
    crypto: CryptoProvider,
    key_provider: Option<Arc<dyn KeyProvider>>,
    external_store: Option<Arc<dyn ExternalKeyStore>>,
    rotation_handlers: HashMap<String, Arc<dyn SecretRotationHandler>>,
    root_key: Option<RootSeal>,
    region: String,
    account_id: String,
    key_cache_capacity: usize,
    strict: bool,
    default_instance: Option<String>,
    instances: Vec<String>,
    instance_ca_pem: String,
}

impl Default for KmsBuilder {
    fn default() -> Self {
        KmsBuilder {
            storage: None,
            authorizer: Arc::new(SameAccountOnly),
            clock: Arc::new(SystemClock),
            rng: None,
            crypto: CryptoProvider::default(),
            key_provider: None,
            external_store: None,
            rotation_handlers: HashMap::new(),
            root_key: None,
            region: "cn-hangzhou".into(),
            account_id: "1".into(),
            key_cache_capacity: cache::DEFAULT_KEY_CACHE_CAPACITY,
            strict: false,
            default_instance: None,
            instances: Vec::new(),
            instance_ca_pem: String::new(),
        }
    }
}

impl KmsBuilder {
    /// The default KMS instance's id (`kst-...`): keys and secrets created without
    /// `DKMSInstanceId` belong to it. Without one, an id derived from the account and region
    /// (the same at every start).
    pub fn default_kms_instance(mut self, id: impl Into<String>) -> Self {
        self.default_instance = Some(id.into());
        self
    }

    /// One more KMS instance (keys name it in `DKMSInstanceId`).
    pub fn kms_instance(mut self, id: impl Into<String>) -> Self {
        self.instances.push(id.into());
        self
    }

    /// The CA certificate chain (PEM) the instance gateway's TLS certificate chains to, as
    /// GetKmsInstance reports it (`CaCertificateChainPem`) for applications to trust.
    pub fn kms_instance_ca(mut self, pem: impl Into<String>) -> Self {
        self.instance_ca_pem = pem.into();
        self
    }

    /// Most decoded keys kept in memory (default 100,000); the least recently used are
    /// evicted (and their material zeroized once no call uses them) and loaded again from the
    /// store when next needed.
    pub fn key_cache_capacity(mut self, keys: usize) -> Self {
        self.key_cache_capacity = keys.max(1);
        self
    }

    /// The store the engine keeps its records in.
    pub fn storage(mut self, storage: impl Storage + 'static) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// The store, already shared.
    pub fn shared_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The authorizer consulted on every call.
    pub fn authorizer(mut self, authorizer: impl Authorizer + 'static) -> Self {
        self.authorizer = Arc::new(authorizer);
        self
    }

    /// The source of time.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The source of randomness (key material, nonces, ids). Default: the crypto provider's.
    pub fn random_source(mut self, rng: impl RandomSource + 'static) -> Self {
        self.rng = Some(Arc::new(rng));
        self
    }

    /// The crypto provider the engine's primitives come from (default:
    /// [`CryptoProvider::default`], the fastest one this build has).
    pub fn crypto_provider(mut self, provider: CryptoProvider) -> Self {
        self.crypto = provider;
        self
    }

    /// The key provider (HSM) that holds the material of `ProtectionLevel: HSM` keys. Without
    /// one, such keys are refused.
    pub fn key_provider(mut self, provider: impl KeyProvider + 'static) -> Self {
        self.key_provider = Some(Arc::new(provider));
        self
    }

    /// The key provider, already shared.
    pub fn shared_key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// The external key store (a proxy to an external key manager) that external keys
    /// (CreateKey with ExternalKeyId) use. Without one, external keys are refused.
    pub fn external_key_store(mut self, store: impl ExternalKeyStore + 'static) -> Self {
        self.external_store = Some(Arc::new(store));
        self
    }

    /// The external key store, already shared.
    pub fn shared_external_key_store(mut self, store: Arc<dyn ExternalKeyStore>) -> Self {
        self.external_store = Some(store);
        self
    }

    /// The rotation handler of a SecretType: RotateSecret and automatic rotation of secrets
    /// of that type call it for the next value. Registering one for a type other than
    /// `Generic` also lets CreateSecret accept that type.
    pub fn secret_rotation_handler(
        mut self,
        secret_type: impl Into<String>,
        handler: impl SecretRotationHandler + 'static,
    ) -> Self {
        self.rotation_handlers
            .insert(secret_type.into(), Arc::new(handler));
        self
    }

    /// Strict mode (default off): every cryptographic call reads the key's record revision
    /// (and the alias it names) from storage and reloads the key when another engine changed
    /// it, so a change made through another engine on the same store is honoured at once
    /// instead of at the next [`Kms::follow_changes`]. Costs one storage read per call.
    pub fn strict_revalidation(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The root key that seals every stored record.
    pub fn root_key(mut self, root_key: RootKey) -> Self {
        self.root_key = Some(RootSeal::Key(root_key));
        self
    }

    /// What seals the keyring, when the root key is held by a module
    /// ([`RootSeal::Provider`], an HSM) rather than given as bytes; replaces
    /// [`KmsBuilder::root_key`].
    pub fn root_seal(mut self, root: RootSeal) -> Self {
        self.root_key = Some(root);
        self
    }

    /// The region in ARNs and DescribeRegions.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The account that owns the keys.
    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// Opens the engine on its store (creating the keyring on first use).
    ///
    /// Errors: `MissingParameter` without storage or root key; `InternalFailure` when the
    /// store's keyring does not open under this root key, or storage fails.
    pub fn build(self) -> Result<Kms, KmsError> {
        let storage = self.storage.ok_or_else(|| KmsError::missing("storage"))?;
        let root_key = self.root_key.ok_or_else(|| KmsError::missing("root_key"))?;
        if self.region.is_empty() || self.region.contains(':') {
            return Err(KmsError::invalid(
                "region",
                "must be non-empty and contain no ':'",
            ));
        }
        if self.account_id.is_empty() || self.account_id.contains(':') {
            return Err(KmsError::invalid(
                "account_id",
                "must be non-empty and contain no ':'",
            ));
        }
        let default_instance = self
            .default_instance
            .unwrap_or_else(|| Instances::default_id(&self.account_id, &self.region));
        let mut all = vec![default_instance.clone()];
        for id in self.instances {
            if !all.contains(&id) {
                all.push(id);
            }
        }
        for id in &all {
            if id.is_empty() || id.len() > 128 || id.contains(['/', ':']) {
                return Err(KmsError::invalid(
                    "kms_instance",
                    format!("{id:?} must have 1 to 128 characters and no '/' or ':'"),
                ));
            }
        }
        let kms_started = self.clock.now();
        let crypto = self.crypto;
        let rng = self
            .rng
            .unwrap_or_else(|| Arc::new(ProviderRandom(crypto.random())));
        let sealer = Sealer::load(crypto, root_key, storage.clone(), rng.clone())?;
        let mut prefix = [0u8; 8];
        rng.fill(&mut prefix)?;
        let prefix = u64::from_be_bytes(prefix);
        let kms = Kms {
            storage,
            sealer,
            authorizer: self.authorizer,
            clock: self.clock,
            rng,
            crypto,
            key_provider: self.key_provider,
            external_store: self.external_store,
            rotation_handlers: self.rotation_handlers,
            scope: ArnScope {
                region: self.region,
                account_id: self.account_id,
            },
            keys: RwLock::new(cache::KeyCache::new(self.key_cache_capacity)),
            aliases: RwLock::new(HashMap::new()),
            write_lock: Mutex::new(()),
            associations: Mutex::new(Default::default()),
            request_prefix: prefix,
            request_counter: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            corrupt: Mutex::new(std::collections::BTreeMap::new()),
            change_cursor: Mutex::new(None),
            alias_epoch: AtomicU64::new(0),
            strict: self.strict,
            removals: AtomicU64::new(0),
            instances: Instances {
                default: default_instance,
                all,
                ca_pem: self.instance_ca_pem,
                started: kms_started,
            },
        };
        // Changes from here on are the ones to follow; the caches are empty until now.
        kms.follow_changes()?;
        kms.ensure_indexes()?;
        Ok(kms)
    }
}

/// The key management engine. `Send + Sync`; share it behind an `Arc`.
///
/// One method per API operation, each taking the [`Caller`] and the operation's request
/// struct; docs/operations.md gives the rules each enforces.
pub struct Kms {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) sealer: Sealer,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Arc<dyn RandomSource>,
    pub(crate) crypto: CryptoProvider,
    pub(crate) key_provider: Option<Arc<dyn KeyProvider>>,
    pub(crate) external_store: Option<Arc<dyn ExternalKeyStore>>,
    pub(crate) rotation_handlers: HashMap<String, Arc<dyn SecretRotationHandler>>,
    pub(crate) scope: ArnScope,
    pub(crate) keys: RwLock<cache::KeyCache>,
    pub(crate) aliases: RwLock<HashMap<String, String>>,
    pub(crate) write_lock: Mutex<()>,
    pub(crate) associations: Mutex<crate::policy::ops::PendingAssociations>,
    pub(crate) request_prefix: u64,
    pub(crate) request_counter: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    /// Records that failed to open (record key → why), seen by reads and scans.
    pub(crate) corrupt: Mutex<std::collections::BTreeMap<Vec<u8>, String>>,
    /// Where this engine is in the store's change log ([`Kms::follow_changes`]).
    pub(crate) change_cursor: Mutex<Option<u64>>,
    /// Bumped whenever an alias leaves the cache or a commit rewrites one: a resolver that read
    /// the alias record before caches it only if this did not move.
    pub(crate) alias_epoch: AtomicU64,
    /// Revalidate a key against storage on every cryptographic call.
    pub(crate) strict: bool,
    /// Bumped by every removal from the key or alias cache (an eviction of what another
    /// engine changed among them): a commit's own cache update, made after the commit, is
    /// dropped instead when this moved since the commit began.
    pub(crate) removals: AtomicU64,
    /// The KMS instances this engine serves.
    pub(crate) instances: Instances,
}

thread_local! {
    /// `Kms::removals` when this thread's last commit began.
    static COMMIT_BEGAN_AT: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
}

/// Most corrupt records remembered (each is reported once; `kms fsck` finds them all).
const MAX_CORRUPT_REMEMBERED: usize = 10_000;

/// A record that fails to open: its seal does not verify or its content does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord {
    /// The record's storage key.
    pub key: Vec<u8>,
    /// Why it does not open (no content of the record).
    pub reason: String,
}

impl CorruptRecord {
    /// Whether the record is one of the indexes (derived data, rebuilt from the records).
    pub fn is_index(&self) -> bool {
        self.key.starts_with(schema::INDEX)
    }
}

/// What the key cache holds and how often it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Keys held.
    pub keys: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read storage.
    pub misses: u64,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("region", &self.scope.region)
            .field("account_id", &self.scope.account_id)
            .finish_non_exhaustive()
    }
}

fn poisoned() -> KmsError {
    KmsError::internal("an engine lock was poisoned by a panicking thread")
}

impl Kms {
    /// Starts building an engine.
    pub fn builder() -> KmsBuilder {
        KmsBuilder::default()
    }

    /// The region and account ARNs are made for.
    pub fn scope(&self) -> &ArnScope {
        &self.scope
    }

    /// The engine's current time.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The key cache's size and hit counts since the engine was built.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            keys: self.keys.read().map(|k| k.len()).unwrap_or(0),
            hits: self.cache_hits.load(Ordering::Relaxed),
            misses: self.cache_misses.load(Ordering::Relaxed),
        }
    }

    /// Reads one record from storage: whether the store answers (for health checks).
    ///
    /// Errors: the storage error, as `KmsError`.
    pub fn check_storage(&self) -> Result<(), KmsError> {
        self.storage.get(schema::HEALTH_PROBE)?;
        Ok(())
    }

    /// A fresh RequestId: unique, not secret (a counter under the engine's random prefix), so
    /// it costs no random draw. The engine gives one to every response; a server uses it for
    /// the answers it makes itself (protocol errors).
    pub fn request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        crate::ids::format_uuid_v4(self.request_prefix, n)
    }

    pub(crate) fn write_guard(&self) -> Result<MutexGuard<'_, ()>, KmsError> {
        self.write_lock.lock().map_err(|_| poisoned())
    }

    // ---- record codec -------------------------------------------------------------------

    pub(crate) fn encode<T: Serialize>(
        &self,
        record_key: &[u8],
        value: &T,
    ) -> Result<Vec<u8>, KmsError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(256));
        plain.push(SCHEMA_V1);
        serde_json::to_writer(&mut *plain, value)
            .map_err(|e| KmsError::internal(format!("encoding a record failed: {e}")))?;
        self.sealer.seal(record_key, &plain)
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        record_key: &[u8],
        sealed: &[u8],
    ) -> Result<T, KmsError> {
        let plain = self.sealer.open(record_key, sealed)?;
        let (&schema, json) = plain.split_first().ok_or_else(|| KmsError::RecordCorrupt {
            reason: format!("record {} is empty", String::from_utf8_lossy(record_key)),
        })?;
        if schema != SCHEMA_V1 {
            return Err(KmsError::internal(format!(
                "record {} has unknown schema version {schema}",
                String::from_utf8_lossy(record_key)
            )));
        }
        serde_json::from_slice(json).map_err(|e| KmsError::RecordCorrupt {
            reason: format!(
                "record {} is malformed: {e}",
                String::from_utf8_lossy(record_key)
            ),
        })
    }

    /// Adds a sealed put of `value` under `record_key` to `batch`.
    pub(crate) fn stage_put<T: Serialize>(
        &self,
        batch: &mut crate::storage::Batch,
        record_key: Vec<u8>,
        value: &T,
        precondition: crate::storage::Precondition,
    ) -> Result<(), KmsError> {
        let sealed = self.encode(&record_key, value)?;
        batch.put_if(record_key, sealed, precondition);
        Ok(())
    }

    pub(crate) fn read<T: DeserializeOwned>(
        &self,
        record_key: &[u8],
    ) -> Result<Option<(T, Entry)>, KmsError> {
        match self.storage.get(record_key)? {
            None => Ok(None),
            Some(entry) => {
                let value = self.read_entry(record_key, &entry.value)?;
                Ok(Some((value, entry)))
            }
        }
    }

    /// Decodes a record read by a scan, remembering it when it does not open.
    pub(crate) fn read_entry<T: DeserializeOwned>(
        &self,
        record_key: &[u8],
        sealed: &[u8],
    ) -> Result<T, KmsError> {
        self.decode(record_key, sealed)
            .inspect_err(|e| self.note_corrupt(record_key, e))
    }

    /// Remembers a record that failed to open (only a record that is itself bad: a storage
    /// fault is no corruption).
    fn note_corrupt(&self, record_key: &[u8], e: &KmsError) {
        if !matches!(e, KmsError::RecordCorrupt { .. }) {
            return;
        }
        if let Ok(mut c) = self.corrupt.lock() {
            if c.len() < MAX_CORRUPT_REMEMBERED || c.contains_key(record_key) {
                c.insert(record_key.to_vec(), e.to_string());
            }
        }
    }

    /// The records that failed to open since the engine started (at most 10,000), in key
    /// order. Lists skip them and maintenance goes on without them; `fsck` looks at every
    /// record.
    pub fn corrupt_records(&self) -> Vec<CorruptRecord> {
        self.corrupt
            .lock()
            .map(|c| {
                c.iter()
                    .map(|(key, reason)| CorruptRecord {
                        key: key.clone(),
                        reason: reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Host API: opens every record of the store and returns those that fail, with the
    /// number checked. Reads the whole store: for `kms fsck`, not for a request path.
    ///
    /// Errors: the storage failing.
    pub fn fsck(&self) -> Result<(usize, Vec<CorruptRecord>), KmsError> {
        let mut checked = 0;
        let mut bad = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.storage.scan(b"", after.as_deref(), SCAN_PAGE)?;
            let len = page.len();
            for (k, entry) in page {
                after = Some(k.clone());
                // The keyring is sealed under the root key itself; the engine would not have
                // opened without it.
                if k == schema::KEYRING {
                    continue;
                }
                checked += 1;
                match self.check_record(&k, &entry.value) {
                    Ok(()) => {}
                    Err(e @ KmsError::RecordCorrupt { .. }) => {
                        self.note_corrupt(&k, &e);
                        bad.push(CorruptRecord {
                            key: k,
                            reason: e.to_string(),
                        });
                    }
                    // Not corruption (a newer schema, the store failing): the caller's to see.
                    Err(e) => return Err(e),
                }
            }
            if len < SCAN_PAGE {
                return Ok((checked, bad));
            }
        }
    }

    /// Decodes a record as the type its key prefix holds (what every read of it does).
    fn check_record(&self, k: &[u8], v: &[u8]) -> Result<(), KmsError> {
        use serde_json::Value;
        match schema::kind_of(k) {
            Some(schema::KEY) => self.decode::<KeyRecord>(k, v).map(drop),
            Some(schema::VERSION) => self.decode::<VersionRecord>(k, v).map(drop),
            Some(schema::ALIAS) => self.decode::<AliasRecord>(k, v).map(drop),
            Some(schema::SECRET) => self
                .decode::<crate::secrets::rules::SecretRecord>(k, v)
                .map(drop),
            Some(schema::SECRET_VALUE) => self
                .decode::<crate::secrets::ops::SecretValueRecord>(k, v)
                .map(drop),
            Some(schema::IMPORT_TOKEN) => self
                .decode::<crate::keys::byok::ImportToken>(k, v)
                .map(drop),
            Some(schema::ASSOCIATION) => self.decode::<crate::api::KeyAssociation>(k, v).map(drop),
            Some(schema::CERTIFICATE) => self
                .decode::<crate::certificates::ops::CertificateRecord>(k, v)
                .map(drop),
            Some(schema::NETWORK_RULE) => self
                .decode::<crate::applications::model::NetworkRuleRecord>(k, v)
                .map(drop),
            Some(schema::AAP_POLICY) => self
                .decode::<crate::applications::model::PolicyRecord>(k, v)
                .map(drop),
            Some(schema::ACCESS_POINT) => self
                .decode::<crate::applications::model::AccessPointRecord>(k, v)
                .map(drop),
            Some(schema::CLIENT_KEY) => self
                .decode::<crate::applications::model::ClientKeyRecord>(k, v)
                .map(drop),
            Some(schema::INDEX) => self.check_index_record(k, v),
            _ if k == schema::DEFAULT_KEY_MARKER => self
                .decode::<crate::keys::default_key::DefaultKeyMarker>(k, v)
                .map(drop),
            _ => self.decode::<Value>(k, v).map(drop),
        }
    }

    /// Host API: removes one record that fails to open from the store, after `keep` has kept
    /// its raw (still sealed) bytes aside (`kms fsck --quarantine`): if `keep` fails, the
    /// record stays. Refuses a record that opens.
    ///
    /// Errors: `InvalidParameter` for a record that is fine or absent; `keep`'s error; storage
    /// errors.
    pub fn quarantine(
        &self,
        record_key: &[u8],
        keep: impl FnOnce(&[u8]) -> Result<(), KmsError>,
    ) -> Result<(), KmsError> {
        let _guard = self.write_guard()?;
        let entry = self
            .storage
            .get(record_key)?
            .ok_or_else(|| KmsError::invalid("Record", "there is no such record"))?;
        if record_key == schema::KEYRING {
            return Err(KmsError::invalid(
                "Record",
                "the keyring is never quarantined",
            ));
        }
        match self.check_record(record_key, &entry.value) {
            Err(KmsError::RecordCorrupt { .. }) => {}
            Ok(()) => {
                return Err(KmsError::invalid(
                    "Record",
                    "the record opens; only records that fail to open are quarantined",
                ))
            }
            Err(e) => return Err(e),
        }
        keep(&entry.value)?;
        let mut batch = crate::storage::Batch::new();
        batch.delete_if(
            record_key.to_vec(),
            crate::storage::Precondition::Revision(entry.revision),
        );
        if record_key.starts_with(schema::INDEX) {
            // The indexes are incomplete without it: the next open rebuilds them (unless
            // `rebuild_indexes` does first).
            batch.delete(schema::INDEX_MARKER.to_vec());
        }
        self.commit(batch)?;
        if let Ok(mut c) = self.corrupt.lock() {
            c.remove(record_key);
        }
        Ok(())
    }

    /// Every record under `prefix`, decoded, in key order.
    pub(crate) fn scan_all<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T, u64)>, KmsError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.storage.scan(prefix, after.as_deref(), SCAN_PAGE)?;
            let len = page.len();
            for (k, entry) in page {
                after = Some(k.clone());
                // A record that fails to open is remembered and skipped: one bad record must
                // not take down every list and every maintenance pass around it. Any other
                // failure (the store, a lock) is the caller's to see.
                match self.decode(&k, &entry.value) {
                    Ok(v) => out.push((k, v, entry.revision)),
                    Err(e @ KmsError::RecordCorrupt { .. }) => self.note_corrupt(&k, &e),
                    Err(e) => return Err(e),
                }
            }
            if len < SCAN_PAGE {
                return Ok(out);
            }
        }
    }

    // ---- key cache and resolution -------------------------------------------------------

    /// Replaces the cached record of a key after a successful commit, keeping loaded versions.
    pub(crate) fn cache_put(
        &self,
        record: KeyRecord,
        new_versions: Vec<VersionRecord>,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let mut keys = self.keys.write().map_err(|_| poisoned())?;
        if !self.own_commit_is_current() {
            let arn = self.scope.key_arn(&record.key_id);
            self.removals.fetch_add(1, Ordering::AcqRel);
            keys.remove(&record.key_id);
            let versions = new_versions
                .into_iter()
                .map(|v| (v.version_id.clone(), Arc::new(CachedVersion::new(v))))
                .collect();
            return Ok(Arc::new(CachedKey::new(record, arn, versions, None)));
        }
        let mut versions = keys
            .peek(&record.key_id)
            .map(|c| c.versions_snapshot())
            .unwrap_or_default();
        for v in new_versions {
            versions.insert(v.version_id.clone(), Arc::new(CachedVersion::new(v)));
        }
        let arn = self.scope.key_arn(&record.key_id);
        let cached = Arc::new(CachedKey::new(record, arn, versions, None));
        keys.insert(cached.clone(), true);
        Ok(cached)
    }

    pub(crate) fn cache_remove(&self, key_id: &str) -> Result<(), KmsError> {
        let mut keys = self.keys.write().map_err(|_| poisoned())?;
        self.removals.fetch_add(1, Ordering::AcqRel);
        keys.remove(key_id);
        Ok(())
    }

    /// Whether a cache update for this thread's last commit may go in: no removal happened
    /// since the commit began (a removal may have been the eviction of a newer change another
    /// engine made to the same record, which this update would overwrite).
    fn own_commit_is_current(&self) -> bool {
        COMMIT_BEGAN_AT.with(|c| c.get()) == self.removals.load(Ordering::Acquire)
    }

    pub(crate) fn alias_cache_remove(&self, alias: &str) -> Result<(), KmsError> {
        let mut aliases = self.aliases.write().map_err(|_| poisoned())?;
        self.alias_epoch.fetch_add(1, Ordering::AcqRel);
        self.removals.fetch_add(1, Ordering::AcqRel);
        aliases.remove(alias);
        Ok(())
    }

    /// Caches an alias a commit of this engine wrote.
    pub(crate) fn alias_cache_put(&self, alias: &str, key_id: &str) -> Result<(), KmsError> {
        let mut aliases = self.aliases.write().map_err(|_| poisoned())?;
        self.alias_epoch.fetch_add(1, Ordering::AcqRel);
        if self.own_commit_is_current() {
            aliases.insert(alias.to_owned(), key_id.to_owned());
        } else {
            self.removals.fetch_add(1, Ordering::AcqRel);
            aliases.remove(alias);
        }
        Ok(())
    }

    /// The cached key, loading it (and its primary version) from storage on a miss.
    ///
    /// Errors: `Forbidden.KeyNotFound` when there is no such key.
    pub(crate) fn load_key(&self, key_id: &str) -> Result<Arc<CachedKey>, KmsError> {
        let epoch = {
            let keys = self.keys.read().map_err(|_| poisoned())?;
            if let Some(k) = keys.get(key_id) {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(k);
            }
            keys.epoch()
        };
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let (record, entry) = self
            .read::<KeyRecord>(&schema::key(key_id))?
            .ok_or_else(|| KmsError::KeyNotFound {
                key_id: key_id.to_owned(),
            })?;
        let mut versions = Vec::new();
        if let Some(primary) = &record.primary_version_id {
            if let Some((v, _)) = self.read::<VersionRecord>(&schema::version(key_id, primary))? {
                versions.push(v);
            }
        }
        // Another thread may have committed a newer record meanwhile: the write lock holder
        // updates the cache after its commit, so never overwrite an entry that appeared, and
        // insert nothing when the cache changed since the read (the entry a commit wrote may
        // have been evicted since).
        let mut keys = self.keys.write().map_err(|_| poisoned())?;
        if let Some(k) = keys.get(key_id) {
            return Ok(k);
        }
        let arn = self.scope.key_arn(key_id);
        let versions = versions
            .into_iter()
            .map(|v| (v.version_id.clone(), Arc::new(CachedVersion::new(v))))
            .collect();
        let cached = Arc::new(CachedKey::new(record, arn, versions, Some(entry.revision)));
        if keys.epoch() == epoch {
            keys.insert(cached.clone(), false);
        }
        Ok(cached)
    }

    /// A version of a cached key, loading it on a miss.
    ///
    /// Errors: `Forbidden.KeyVersionNotFound`.
    pub(crate) fn load_version(
        &self,
        key: &CachedKey,
        version_id: &str,
    ) -> Result<Arc<CachedVersion>, KmsError> {
        if let Some(v) = key.versions.read().map_err(|_| poisoned())?.get(version_id) {
            return Ok(v.clone());
        }
        let not_found = || KmsError::KeyVersionNotFound {
            key_id: key.record.key_id.clone(),
            version_id: version_id.to_owned(),
        };
        if !crate::ids::is_uuid(version_id) {
            return Err(not_found());
        }
        let (v, _) = self
            .read::<VersionRecord>(&schema::version(&key.record.key_id, version_id))?
            .ok_or_else(not_found)?;
        let v = Arc::new(CachedVersion::new(v));
        key.versions
            .write()
            .map_err(|_| poisoned())?
            .insert(version_id.to_owned(), v.clone());
        Ok(v)
    }

    /// The key id an alias names.
    ///
    /// Errors: `Forbidden.AliasNotFound`.
    pub(crate) fn resolve_alias(&self, alias: &str) -> Result<String, KmsError> {
        if !self.strict {
            if let Some(id) = self.aliases.read().map_err(|_| poisoned())?.get(alias) {
                return Ok(id.clone());
            }
        }
        let epoch = self.alias_epoch.load(Ordering::Acquire);
        let (rec, _) = self
            .read::<AliasRecord>(&schema::alias(alias))?
            .ok_or_else(|| KmsError::AliasNotFound {
                alias: alias.to_owned(),
            })?;
        // Cached only if no commit or eviction touched the aliases since the read.
        let mut aliases = self.aliases.write().map_err(|_| poisoned())?;
        if self.alias_epoch.load(Ordering::Acquire) == epoch {
            aliases.insert(alias.to_owned(), rec.key_id.clone());
        }
        Ok(rec.key_id)
    }

    /// The key id a `KeyId` parameter names (id, ARN, alias or alias ARN).
    pub(crate) fn resolve_key_id(
        &self,
        param: &'static str,
        input: &str,
    ) -> Result<String, KmsError> {
        match self.scope.parse_key_ref(param, input)? {
            KeyRef::Id(id) => Ok(id),
            KeyRef::Alias(alias) => self.resolve_alias(&alias),
        }
    }

    /// The live key a `KeyId` parameter names: a key past its DeleteDate is not found.
    pub(crate) fn live_key(
        &self,
        param: &'static str,
        input: &str,
        now: UnixTime,
    ) -> Result<Arc<CachedKey>, KmsError> {
        // A bare lower-case UUID, the common case, names the key as it is: no parsing, no
        // copy.
        let key = if crate::ids::is_uuid(input) {
            self.load_key(input)?
        } else {
            self.load_key(&self.resolve_key_id(param, input)?)?
        };
        if rules::is_purged(&key.record, now) {
            return Err(KmsError::KeyNotFound {
                key_id: input.to_owned(),
            });
        }
        Ok(key)
    }

    /// The live key a read-only operation names by its `KeyId` (`input`), once the caller may
    /// do `action` on it. Works in every state.
    ///
    /// Errors: `Forbidden.KeyNotFound`/`Forbidden.AliasNotFound`, `Forbidden.NoPermission`.
    pub(crate) fn readable_key(
        &self,
        caller: &Caller,
        action: Action,
        input: &str,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let key = self.live_key("KeyId", input, self.clock.now())?;
        self.authorize(caller, action, Some(&key))?;
        Ok(key)
    }

    // ---- authorization ------------------------------------------------------------------

    /// Asks the authorizer about a cached key, or about the account when `key` is `None`.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        key: Option<&CachedKey>,
    ) -> Result<(), KmsError> {
        match key {
            Some(k) => self.authorize_key(caller, action, &k.arn, &k.record),
            None => self.authorize_account(caller, action, None),
        }
    }

    /// Asks the authorizer about an account-level action (CreateKey, ListKeys...);
    /// `instance_id` is the KMS instance a key is being created in.
    pub(crate) fn authorize_account(
        &self,
        caller: &Caller,
        action: Action,
        instance_id: Option<&str>,
    ) -> Result<(), KmsError> {
        let resource = self.scope.collection_arn(action);
        self.decide(&AccessRequest {
            caller,
            action,
            resource: &resource,
            resource_account: &self.scope.account_id,
            policy: None,
            creator: None,
            instance_id,
        })
    }

    /// The lockout safety check: refuses a policy document after which the account owner
    /// (`acs:ram::<account>:root`) could no longer call `action` (SetKeyPolicy or
    /// SetSecretPolicy) on the resource, unless the caller bypasses the check.
    ///
    /// The check asks the configured authorizer itself, so it holds for any authorizer.
    pub(crate) fn check_policy_lockout(
        &self,
        policy: &str,
        action: Action,
        resource: &str,
        creator: Option<&str>,
        instance_id: Option<&str>,
        bypass: Option<bool>,
    ) -> Result<(), KmsError> {
        if bypass == Some(true) {
            return Ok(());
        }
        let owner = Caller::account_root(self.scope.account_id.clone());
        let decision = self.authorizer.authorize(&AccessRequest {
            caller: &owner,
            action,
            resource,
            resource_account: &self.scope.account_id,
            policy: Some(policy),
            creator,
            instance_id,
        });
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(KmsError::invalid(
                "Policy",
                format!(
                    "after this policy the account owner ({}) could no longer call {action} \
                     on {resource}; fix the policy, or pass BypassPolicyLockoutSafetyCheck=true \
                     to store it anyway",
                    owner.arn()
                ),
            )),
        }
    }

    /// Asks the authorizer about a key record (as read for a mutation).
    pub(crate) fn authorize_record(
        &self,
        caller: &Caller,
        action: Action,
        record: &KeyRecord,
    ) -> Result<(), KmsError> {
        let arn = self.scope.key_arn(&record.key_id);
        self.authorize_key(caller, action, &arn, record)
    }

    fn authorize_key(
        &self,
        caller: &Caller,
        action: Action,
        arn: &str,
        record: &KeyRecord,
    ) -> Result<(), KmsError> {
        self.decide(&AccessRequest {
            caller,
            action,
            resource: arn,
            resource_account: &self.scope.account_id,
            policy: record.policy.as_deref(),
            creator: Some(&record.creator),
            instance_id: record.dkms_instance_id.as_deref(),
        })
    }

    pub(crate) fn decide(&self, request: &AccessRequest<'_>) -> Result<(), KmsError> {
        if let crate::policy::Principal::AccessPoint(who) = &request.caller.principal {
            return self.authorize_access_point(request, who);
        }
        match self.authorizer.authorize(request) {
            Decision::Allow => Ok(()),
            Decision::Deny => Err(KmsError::NoPermission {
                action: request.action.as_str().to_owned(),
                principal: request.caller.arn(),
                resource: request.resource.to_owned(),
            }),
        }
    }

    // ---- mutations ------------------------------------------------------------------------

    /// Loads a key for a mutation: the latest durable record and its revision.
    ///
    /// Must be called with the write lock held.
    pub(crate) fn load_for_update(
        &self,
        key_id: &str,
        input: &str,
        now: UnixTime,
    ) -> Result<(KeyRecord, u64), KmsError> {
        let (record, entry) = self
            .read::<KeyRecord>(&schema::key(key_id))?
            .ok_or_else(|| KmsError::KeyNotFound {
                key_id: input.to_owned(),
            })?;
        if rules::is_purged(&record, now) {
            return Err(KmsError::KeyNotFound {
                key_id: input.to_owned(),
            });
        }
        // Expired imported material counts as gone for every rule; maintenance clears the
        // version's material.
        Ok((rules::effective(&record, now).into_owned(), entry.revision))
    }

    /// Changes a key record by `apply` (a pure rule of [`crate::keys::rules`]) after the
    /// authorization for `action` and the service-key check, through [`Kms::mutate`]; returns
    /// the key as cached afterwards.
    pub(crate) fn mutate_key(
        &self,
        caller: &Caller,
        action: Action,
        param: &'static str,
        input: &str,
        apply: impl Fn(&KeyRecord, UnixTime) -> Result<KeyRecord, KmsError>,
    ) -> Result<Arc<CachedKey>, KmsError> {
        let key_id = self.resolve_key_id(param, input)?;
        self.mutate(
            |now| {
                let (record, revision) = self.load_for_update(&key_id, input, now)?;
                self.authorize_record(caller, action, &record)?;
                rules::check_not_service_key(&record)?;
                Ok((record, revision))
            },
            apply,
            |next| self.cache_put(next, Vec::new()),
        )
    }

    /// Commits a batch together with the index writes it needs; a precondition failure on a
    /// record of the batch means another writer changed it.
    pub(crate) fn commit(&self, batch: crate::storage::Batch) -> Result<(), KmsError> {
        self.commit_with_indexes(batch)
            .map_err(CommitFailure::into_error)
    }

    /// [`Kms::commit`], telling a conflict on one of the batch's own records apart. A conflict
    /// on an index record (another engine on the same store updated the same list meanwhile)
    /// is not the caller's: the index writes are derived again and the commit retried.
    pub(crate) fn commit_with_indexes(
        &self,
        batch: crate::storage::Batch,
    ) -> Result<(), CommitFailure> {
        let mut backoff = std::time::Duration::from_millis(1);
        for attempt in 1.. {
            let mut full = batch.clone();
            full.ops
                .extend(self.index_ops(&batch.ops).map_err(CommitFailure::Error)?);
            match self.commit_once(full) {
                Err(CommitFailure::Conflict(key))
                    if key.as_bytes().starts_with(schema::INDEX) && attempt < COMMIT_ATTEMPTS =>
                {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Commits a batch as it is (no index writes added).
    fn commit_raw(&self, batch: crate::storage::Batch) -> Result<(), KmsError> {
        self.commit_once(batch).map_err(CommitFailure::into_error)
    }

    fn commit_once(&self, batch: crate::storage::Batch) -> Result<(), CommitFailure> {
        let began = self.removals.load(Ordering::Acquire);
        COMMIT_BEGAN_AT.with(|c| c.set(began));
        let touched: Vec<Vec<u8>> = batch.ops.iter().map(|op| op.key().to_vec()).collect();
        match self.storage.commit(batch) {
            Ok(()) => {
                // Rewritten or deleted: whatever failed to open there is gone.
                if let Ok(mut c) = self.corrupt.lock() {
                    if !c.is_empty() {
                        for k in &touched {
                            c.remove(k);
                        }
                    }
                }
                Ok(())
            }
            Err(crate::storage::StorageError::Conflict { key }) => {
                Err(CommitFailure::Conflict(key))
            }
            Err(other) => {
                // An I/O error can strike after the batch reached the disk: the outcome is
                // unknown, so nothing cached about these records is trusted any longer.
                self.forget_records(touched.iter().map(Vec::as_slice));
                Err(CommitFailure::Error(other.into()))
            }
        }
    }
}
