//! Shared setup for the kms-core integration tests: an engine on `MemoryStorage` with a
//! `ManualClock`, account "1234" in "cn-hangzhou", and helpers that unwrap the happy paths so
//! the tests read as the rules they prove.
//!
//! With `KMS_TEST_STORAGE=postgres` the engines run on `PostgresStorage` instead, each on a
//! fresh database of `KMS_TEST_POSTGRES_URL`'s server: the same suites, proving the engine's
//! rules hold on the shared backend.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code
)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState};
use kms_core::{Caller, Kms, KmsError, ManualClock, RootKey, Storage, UnixTime};
use kms_core::{OsRandom, RandomSource};
use kms_storage::MemoryStorage;

#[path = "../../../kms-storage/tests/support/pg.rs"]
mod pg;

/// An empty store of the kind `KMS_TEST_STORAGE` names (`memory`, the default, or
/// `postgres`).
pub fn fresh_storage() -> Arc<dyn Storage> {
    match std::env::var("KMS_TEST_STORAGE").as_deref() {
        Ok("postgres") => {
            // One server for every engine of the run (not a cluster per engine).
            assert!(
                std::env::var("KMS_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()),
                "KMS_TEST_STORAGE=postgres needs KMS_TEST_POSTGRES_URL"
            );
            let db = pg::TestDatabase::create();
            let storage = kms_storage::PostgresStorage::connect(db.url()).unwrap();
            // The database outlives the test (its server, or cluster, is thrown away after
            // the run).
            std::mem::forget(db);
            Arc::new(storage)
        }
        Ok("memory") | Err(_) => Arc::new(MemoryStorage::new()),
        Ok(other) => panic!("KMS_TEST_STORAGE={other:?} is not memory or postgres"),
    }
}

/// The account that owns every key in these tests.
pub const ACCOUNT: &str = "1234";
/// The engine's region.
pub const REGION: &str = "cn-hangzhou";
/// Where the manual clock starts: 2027-01-15T08:00:00Z.
pub const START: UnixTime = UnixTime(1_800_000_000);
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// An engine over an inspectable store, with the clock and root key kept for reopening.
pub struct Env {
    pub kms: Kms,
    pub clock: Arc<ManualClock>,
    pub storage: Arc<dyn Storage>,
    pub root_key: RootKey,
    pub me: Caller,
}

/// Builds an engine on `storage` with the test account, region and `clock`.
pub fn build(storage: Arc<dyn Storage>, clock: Arc<ManualClock>, root_key: RootKey) -> Kms {
    try_build(storage, clock, root_key).unwrap()
}

/// As [`build`], returning the builder's error.
pub fn try_build(
    storage: Arc<dyn Storage>,
    clock: Arc<ManualClock>,
    root_key: RootKey,
) -> Result<Kms, KmsError> {
    Kms::builder()
        .shared_storage(storage)
        .clock(clock)
        .root_key(root_key)
        .account_id(ACCOUNT)
        .region(REGION)
        .build()
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh engine on an empty store ([`fresh_storage`]), the clock at [`START`].
    pub fn new() -> Self {
        let storage = fresh_storage();
        let clock = Arc::new(ManualClock::new(START));
        let root_key = RootKey::generate().unwrap();
        let kms = build(storage.clone(), clock.clone(), root_key.clone());
        Env {
            kms,
            clock,
            storage,
            root_key,
            me: Caller::account_root(ACCOUNT),
        }
    }

    /// As [`Env::new`], with the engine drawing its randomness from `rng`.
    pub fn with_rng(rng: impl RandomSource + 'static) -> Self {
        let storage = fresh_storage();
        let clock = Arc::new(ManualClock::new(START));
        let root_key = RootKey::generate().unwrap();
        let kms = Kms::builder()
            .shared_storage(storage.clone())
            .clock(clock.clone())
            .root_key(root_key.clone())
            .random_source(rng)
            .account_id(ACCOUNT)
            .region(REGION)
            .build()
            .unwrap();
        Env {
            kms,
            clock,
            storage,
            root_key,
            me: Caller::account_root(ACCOUNT),
        }
    }

    /// A second engine over the same store, clock and root key, with empty caches: what a
    /// restarted process sees.
    pub fn reopen(&self) -> Kms {
        build(
            self.storage.clone(),
            self.clock.clone(),
            self.root_key.clone(),
        )
    }

    pub fn now(&self) -> UnixTime {
        self.kms.now()
    }

    pub fn create_key(&self) -> KeyMetadata {
        self.create_key_with(CreateKeyRequest::default())
    }

    pub fn create_key_spec(&self, spec: KeySpec) -> KeyMetadata {
        self.create_key_with(CreateKeyRequest {
            key_spec: Some(spec),
            ..Default::default()
        })
    }

    pub fn create_key_with(&self, req: CreateKeyRequest) -> KeyMetadata {
        self.kms.create_key(&self.me, req).unwrap().key_metadata
    }

    pub fn describe(&self, key: &str) -> KeyMetadata {
        self.try_describe(key).unwrap()
    }

    pub fn try_describe(&self, key: &str) -> Result<KeyMetadata, KmsError> {
        self.kms
            .describe_key(&self.me, key_req(key))
            .map(|r| r.key_metadata)
    }

    pub fn state(&self, key: &str) -> KeyState {
        self.describe(key).key_state
    }

    pub fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> EncryptResponse {
        self.try_encrypt(key, plaintext, context).unwrap()
    }

    pub fn try_encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptResponse, KmsError> {
        self.kms.encrypt(
            &self.me,
            EncryptRequest {
                key_id: key.into(),
                plaintext: plaintext.to_vec().into(),
                encryption_context: context.clone(),
                ..Default::default()
            },
        )
    }

    pub fn decrypt(&self, blob: &[u8], context: &EncryptionContext) -> DecryptResponse {
        self.try_decrypt(blob, context).unwrap()
    }

    pub fn try_decrypt(
        &self,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DecryptResponse, KmsError> {
        self.kms.decrypt(
            &self.me,
            DecryptRequest {
                ciphertext_blob: blob.to_vec(),
                encryption_context: context.clone(),
                ..Default::default()
            },
        )
    }

    pub fn enable(&self, key: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.enable_key(&self.me, key_req(key))
    }

    pub fn disable(&self, key: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.disable_key(&self.me, key_req(key))
    }

    pub fn schedule_deletion(&self, key: &str, days: i64) -> Result<EmptyResponse, KmsError> {
        self.kms.schedule_key_deletion(
            &self.me,
            ScheduleKeyDeletionRequest {
                key_id: key.into(),
                pending_window_in_days: Some(days),
            },
        )
    }

    pub fn cancel_deletion(&self, key: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.cancel_key_deletion(&self.me, key_req(key))
    }

    pub fn create_alias(&self, alias: &str, key: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.create_alias(
            &self.me,
            AliasRequest {
                alias_name: alias.into(),
                key_id: key.into(),
            },
        )
    }

    pub fn update_alias(&self, alias: &str, key: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.update_alias(
            &self.me,
            AliasRequest {
                alias_name: alias.into(),
                key_id: key.into(),
            },
        )
    }

    pub fn delete_alias(&self, alias: &str) -> Result<EmptyResponse, KmsError> {
        self.kms.delete_alias(
            &self.me,
            DeleteAliasRequest {
                alias_name: alias.into(),
            },
        )
    }

    /// Every alias of the account (one page of 100).
    pub fn all_aliases(&self) -> Vec<AliasEntry> {
        self.kms
            .list_aliases(
                &self.me,
                ListAliasesRequest {
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .aliases
            .alias
    }

    /// The alias names of one key (one page of 100).
    pub fn aliases_of(&self, key: &str) -> Vec<String> {
        self.kms
            .list_aliases_by_key_id(
                &self.me,
                ListAliasesByKeyIdRequest {
                    key_id: key.into(),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .aliases
            .alias
            .into_iter()
            .map(|a| a.alias_name)
            .collect()
    }

    /// Every key id of the account (one page of 100).
    pub fn all_keys(&self) -> Vec<String> {
        self.kms
            .list_keys(
                &self.me,
                ListKeysRequest {
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .keys
            .key
            .into_iter()
            .map(|k| k.key_id)
            .collect()
    }

    /// Every version id of a key, oldest first (one page of 100).
    pub fn versions(&self, key: &str) -> Vec<String> {
        self.kms
            .list_key_versions(
                &self.me,
                ListKeyVersionsRequest {
                    key_id: key.into(),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .key_versions
            .key_version
            .into_iter()
            .map(|v| v.key_version_id)
            .collect()
    }

    pub fn tag(&self, key: &str, tags: &[(&str, &str)]) -> Result<EmptyResponse, KmsError> {
        self.kms.tag_resource(
            &self.me,
            TagResourceRequest {
                key_id: key.into(),
                tags: tag_list(tags),
                ..Default::default()
            },
        )
    }

    /// The tags of a key as (key, value) pairs, in the order ListResourceTags gives.
    pub fn tags(&self, key: &str) -> Vec<(String, String)> {
        self.kms
            .list_resource_tags(&self.me, key_req(key))
            .unwrap()
            .tags
            .tag
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect()
    }

    pub fn create_key_version(&self, key: &str) -> Result<KeyVersionResponse, KmsError> {
        self.kms.create_key_version(&self.me, key_req(key))
    }

    pub fn set_rotation(
        &self,
        key: &str,
        enable: bool,
        interval: Option<&str>,
    ) -> Result<EmptyResponse, KmsError> {
        self.kms.update_rotation_policy(
            &self.me,
            UpdateRotationPolicyRequest {
                key_id: key.into(),
                enable_automatic_rotation: Some(enable),
                rotation_interval: interval.map(str::to_owned),
            },
        )
    }

    pub fn set_protection(&self, key: &str, enable: bool) -> Result<EmptyResponse, KmsError> {
        self.kms.set_deletion_protection(
            &self.me,
            SetDeletionProtectionRequest {
                key_id: key.into(),
                enable_deletion_protection: Some(enable),
                ..Default::default()
            },
        )
    }
}

/// A request naming only a key.
pub fn key_req(key: &str) -> KeyIdRequest {
    KeyIdRequest { key_id: key.into() }
}

/// An EncryptionContext from pairs.
pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Tags from pairs.
pub fn tag_list(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag {
            tag_key: (*k).to_owned(),
            tag_value: (*v).to_owned(),
        })
        .collect()
}

/// "OK" for success, else the error's wire code: lets a table compare outcomes.
pub fn outcome<T>(r: Result<T, KmsError>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

/// The error of `r`, asserting that it carries `code`.
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

/// Asserts that `r` failed with `code` and that the message names `param`.
#[track_caller]
pub fn expect_param_err<T: Debug>(r: Result<T, KmsError>, code: &str, param: &str) -> KmsError {
    let e = expect_err(r, code);
    assert!(
        e.to_string().contains(param),
        "the message {e:?} should name {param}"
    );
    e
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A small deterministic generator (SplitMix64) for test inputs.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64().to_le_bytes()[0]).collect()
    }
}

/// The OS random source, keeping a copy of every buffer it hands out, so a test can know the
/// key material and data keys the engine drew.
#[derive(Clone, Default)]
pub struct RecordingRandom {
    pub drawn: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RecordingRandom {
    /// The buffers drawn so far, in order.
    pub fn drawn(&self) -> Vec<Vec<u8>> {
        self.drawn.lock().unwrap().clone()
    }
}

impl RandomSource for RecordingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), KmsError> {
        OsRandom.fill(buf)?;
        self.drawn.lock().unwrap().push(buf.to_vec());
        Ok(())
    }
}
