//! The list and due-date indexes: they always agree with the records (whatever sequence of
//! writes made them), a store without them is indexed at open, and lists and maintenance
//! read O(page) and O(due) records, not the whole store.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState};
use kms_core::{Batch, Entry, ManualClock, Storage, StorageError};
use kms_storage::MemoryStorage;

fn filter(key: &str, values: &[&str]) -> Filter {
    Filter {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

/// Every key ListKeys shows with `filters`, read page by page (`size` a page); checks that
/// every page reports the same TotalCount and that no key shows twice.
fn listed_keys(env: &Env, filters: &[Filter], size: i64) -> Vec<String> {
    let mut all = Vec::new();
    let mut total = None;
    for n in 1.. {
        let page = env
            .kms
            .list_keys(
                &env.me,
                ListKeysRequest {
                    page_number: Some(n),
                    page_size: Some(size),
                    filters: filters.to_vec(),
                },
            )
            .unwrap();
        assert_eq!(*total.get_or_insert(page.total_count), page.total_count);
        if page.keys.key.is_empty() {
            break;
        }
        all.extend(page.keys.key.into_iter().map(|k| k.key_id));
    }
    assert_eq!(
        total.unwrap(),
        all.len() as i64,
        "TotalCount and the pages agree"
    );
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no key shows twice");
    all
}

fn listed_aliases(env: &Env, size: i64) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for n in 1.. {
        let page = env
            .kms
            .list_aliases(
                &env.me,
                ListAliasesRequest {
                    page_number: Some(n),
                    page_size: Some(size),
                },
            )
            .unwrap();
        if page.aliases.alias.is_empty() {
            assert_eq!(page.total_count, all.len() as i64);
            break;
        }
        for a in page.aliases.alias {
            assert!(all.insert(a.alias_name, a.key_id).is_none());
        }
    }
    all
}

fn listed_secrets(env: &Env, size: i64) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for n in 1.. {
        let page = env
            .kms
            .list_secrets(
                &env.me,
                ListSecretsRequest {
                    page_number: Some(n),
                    page_size: Some(size),
                    ..Default::default()
                },
            )
            .unwrap();
        if page.secret_list.secret.is_empty() {
            assert_eq!(page.total_count, all.len() as i64);
            break;
        }
        for s in page.secret_list.secret {
            assert!(all.insert(s.secret_name));
        }
    }
    all
}

/// The creation dates ListKeyVersions shows for a key, in its order (one page of 100).
fn version_dates(env: &Env, key: &str) -> Vec<kms_core::UnixTime> {
    env.kms
        .list_key_versions(
            &env.me,
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
        .map(|v| v.creation_date)
        .collect()
}

/// What DescribeKey, ListAliasesByKeyId and DescribeSecret say, asked one by one: the truth
/// the lists must match.
struct Truth {
    keys: BTreeMap<String, KeyMetadata>,
    aliases: BTreeMap<String, String>,
    secrets: BTreeSet<String>,
}

fn truth(env: &Env, keys: &[String], secrets: &[String]) -> Truth {
    let mut t = Truth {
        keys: BTreeMap::new(),
        aliases: BTreeMap::new(),
        secrets: BTreeSet::new(),
    };
    for k in keys {
        if let Ok(m) = env.try_describe(k) {
            for a in env.aliases_of(k) {
                t.aliases.insert(a, k.clone());
            }
            t.keys.insert(k.clone(), m);
        }
    }
    for s in secrets {
        let found = env.kms.describe_secret(
            &env.me,
            DescribeSecretRequest {
                secret_name: s.clone(),
                fetch_tags: None,
            },
        );
        if found.is_ok() {
            t.secrets.insert(s.clone());
        }
    }
    t
}

fn check_lists_match(env: &Env, t: &Truth, step: usize) {
    let sorted = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let all: BTreeSet<String> = t.keys.keys().cloned().collect();
    assert_eq!(
        sorted(listed_keys(env, &[], 7)),
        all,
        "step {step}: ListKeys"
    );
    let pending: BTreeSet<String> = t
        .keys
        .iter()
        .filter(|(_, m)| matches!(m.key_state, KeyState::Disabled | KeyState::PendingDeletion))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        sorted(listed_keys(
            env,
            &[filter("KeyState", &["Disabled", "PendingDeletion"])],
            3
        )),
        pending,
        "step {step}: ListKeys filtered on KeyState (OR within a filter)"
    );
    let enabled_aes128: BTreeSet<String> = t
        .keys
        .iter()
        .filter(|(_, m)| m.key_state == KeyState::Enabled && m.key_spec == KeySpec::Aes128)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        sorted(listed_keys(
            env,
            &[
                filter("KeyState", &["Enabled"]),
                filter("KeySpec", &["Aliyun_AES_128"])
            ],
            4
        )),
        enabled_aes128,
        "step {step}: ListKeys filtered on KeyState and KeySpec (AND across filters)"
    );
    assert_eq!(
        listed_aliases(env, 5),
        t.aliases,
        "step {step}: ListAliases"
    );
    assert_eq!(
        listed_secrets(env, 4),
        t.secrets,
        "step {step}: ListSecrets"
    );
}

fn pick<'a>(rng: &mut SplitMix, v: &'a [String]) -> Option<&'a String> {
    if v.is_empty() {
        None
    } else {
        Some(&v[(rng.next_u64() % v.len() as u64) as usize])
    }
}

#[test]
fn lists_agree_with_the_records_after_any_sequence_of_writes() {
    let env = Env::new();
    let mut rng = SplitMix(0x1dea);
    let mut secrets: Vec<String> = Vec::new();
    let create_secret = |name: &str| {
        env.kms
            .create_secret(
                &env.me,
                CreateSecretRequest {
                    secret_name: name.into(),
                    secret_data: SecretData::new("v"),
                    version_id: "v1".into(),
                    ..Default::default()
                },
            )
            .unwrap();
    };
    // The first secret makes the service key that protects secrets: a key of its own
    // sequence (CreatorType Service).
    create_secret("secret-first");
    secrets.push("secret-first".into());
    let mut keys = listed_keys(&env, &[filter("CreatorType", &["Service"])], 10);
    assert_eq!(keys.len(), 1);
    let mut alias_n = 0;
    for step in 0..400 {
        let key = pick(&mut rng, &keys).cloned();
        // Refusals (a state rule, an alias on a pending key) are part of the mix: a refused
        // write must leave the indexes as they were.
        match rng.next_u64() % 16 {
            0..=2 => {
                let spec = [KeySpec::Aes256, KeySpec::Aes128, KeySpec::HmacSha256]
                    [(rng.next_u64() % 3) as usize];
                keys.push(env.create_key_spec(spec).key_id);
            }
            3 => drop(key.map(|k| env.disable(&k))),
            4 => drop(key.map(|k| env.enable(&k))),
            5 => drop(key.map(|k| env.schedule_deletion(&k, 7))),
            6 => drop(key.map(|k| env.cancel_deletion(&k))),
            7 | 8 => {
                if let Some(k) = key {
                    alias_n += 1;
                    let _ = env.create_alias(&format!("alias/a{alias_n}"), &k);
                }
            }
            9 => {
                let names: Vec<String> = env
                    .all_aliases()
                    .into_iter()
                    .map(|a| a.alias_name)
                    .collect();
                if let Some(a) = pick(&mut rng, &names) {
                    let _ = env.delete_alias(a);
                }
            }
            10 => {
                let names: Vec<String> = env
                    .all_aliases()
                    .into_iter()
                    .map(|a| a.alias_name)
                    .collect();
                if let (Some(a), Some(k)) = (pick(&mut rng, &names), key) {
                    let _ = env.update_alias(a, &k);
                }
            }
            11 => {
                let name = format!("secret-{step}");
                create_secret(&name);
                secrets.push(name);
            }
            12 => {
                if let Some(s) = pick(&mut rng, &secrets) {
                    let force = rng.next_u64().is_multiple_of(2);
                    let _ = env.kms.delete_secret(
                        &env.me,
                        DeleteSecretRequest {
                            secret_name: s.clone(),
                            recovery_window_in_days: (!force).then_some(7),
                            force_delete_without_recovery: force.then_some(true),
                        },
                    );
                }
            }
            13 => drop(key.map(|k| env.create_key_version(&k))),
            14 => {
                // Past some DeleteDates: those keys are gone from every list at once, before
                // maintenance removes them.
                env.clock.advance_days(4);
            }
            _ => {
                env.kms.run_maintenance(env.now()).unwrap();
            }
        }
        if step % 25 == 24 {
            let t = truth(&env, &keys, &secrets);
            check_lists_match(&env, &t, step);
        }
    }
    let t = truth(&env, &keys, &secrets);
    assert!(
        t.keys.len() > 10 && t.aliases.len() > 3,
        "the mix exercised the lists"
    );
    check_lists_match(&env, &t, 400);
    // Every index record opens, and a rebuild from the records yields the same lists.
    assert!(env.kms.fsck().unwrap().1.is_empty());
    env.kms.rebuild_indexes().unwrap();
    check_lists_match(&env, &t, 401);
    // Versions: every key's ListKeyVersions pages agree with one big page, oldest first.
    for k in t.keys.keys() {
        let one = env.versions(k);
        let mut paged = Vec::new();
        for n in 1..=one.len() as i64 {
            let p = env
                .kms
                .list_key_versions(
                    &env.me,
                    ListKeyVersionsRequest {
                        key_id: k.clone(),
                        page_number: Some(n),
                        page_size: Some(1),
                    },
                )
                .unwrap();
            assert_eq!(p.total_count, one.len() as i64);
            paged.extend(
                p.key_versions
                    .key_version
                    .into_iter()
                    .map(|v| v.key_version_id),
            );
        }
        assert_eq!(paged, one);
        let dates = version_dates(&env, k);
        assert!(
            dates.windows(2).all(|w| w[0] <= w[1]),
            "oldest first: {dates:?}"
        );
    }
}

#[test]
fn lists_come_in_creation_order_and_a_removal_moves_the_newest_into_its_place() {
    let env = Env::new();
    let ids: Vec<String> = (0..5).map(|_| env.create_key().key_id).collect();
    assert_eq!(listed_keys(&env, &[], 2), ids);
    for (i, id) in ids.iter().enumerate() {
        env.create_alias(&format!("alias/k{i}"), id).unwrap();
    }
    env.delete_alias("alias/k1").unwrap();
    let names: Vec<String> = env
        .all_aliases()
        .into_iter()
        .map(|a| a.alias_name)
        .collect();
    assert_eq!(names, ["alias/k0", "alias/k4", "alias/k2", "alias/k3"]);
    // A key whose state changes moves to the sequence of its new state.
    env.disable(&ids[0]).unwrap();
    let listed = listed_keys(&env, &[], 10);
    assert_eq!(listed.len(), 5);
    assert_eq!(
        listed_keys(&env, &[filter("KeyState", &["Disabled"])], 10),
        [ids[0].clone()]
    );
}

#[test]
fn keys_past_their_delete_date_leave_every_list_before_maintenance_removes_them() {
    let env = Env::new();
    let stay = env.create_key().key_id;
    let go = env.create_key().key_id;
    env.create_alias("alias/stay", &stay).unwrap();
    env.create_alias("alias/go", &go).unwrap();
    env.schedule_deletion(&go, 7).unwrap();
    assert_eq!(
        listed_keys(&env, &[], 10).len(),
        2,
        "pending is still listed"
    );
    env.clock.advance_days(8);
    assert_eq!(listed_keys(&env, &[], 10), std::slice::from_ref(&stay));
    assert_eq!(
        listed_keys(&env, &[filter("KeyState", &["PendingDeletion"])], 10),
        Vec::<String>::new()
    );
    assert_eq!(
        listed_aliases(&env, 10),
        BTreeMap::from([("alias/stay".to_string(), stay.clone())])
    );
    let report = env.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.purged_keys, [go]);
    assert_eq!(listed_keys(&env, &[], 10), [stay]);
}

#[test]
fn a_store_written_without_indexes_is_indexed_when_the_engine_opens() {
    let env = Env::new();
    let mut keys = Vec::new();
    for i in 0..30 {
        let k = env.create_key().key_id;
        if i % 3 == 0 {
            env.disable(&k).unwrap();
            env.create_alias(&format!("alias/x{i}"), &k).unwrap();
        }
        keys.push(k);
    }
    env.schedule_deletion(&keys[1], 7).unwrap();
    let before = truth(&env, &keys, &[]);
    // Remove every index record and the format marker, as an older engine left the store.
    let mut batch = Batch::new();
    let mut removed = 0;
    for (k, _) in env.storage.scan(b"i/", None, usize::MAX).unwrap() {
        batch.delete(k);
        removed += 1;
    }
    batch.delete(b"m/index".to_vec());
    env.storage.commit(batch).unwrap();
    assert!(removed > 60, "{removed}");
    let reopened = Env {
        kms: env.reopen(),
        clock: env.clock.clone(),
        storage: env.storage.clone(),
        root_key: env.root_key.clone(),
        me: env.me.clone(),
    };
    check_lists_match(&reopened, &before, 0);
    // Maintenance found the due purge through the rebuilt due-date index.
    env.clock.advance_days(8);
    let report = reopened.kms.run_maintenance(env.now()).unwrap();
    assert_eq!(report.purged_keys, [keys[1].clone()]);
}

/// A store that counts the records it hands out.
struct Counting {
    inner: MemoryStorage,
    read: AtomicUsize,
}

impl Counting {
    fn take(&self) -> usize {
        self.read.swap(0, Ordering::Relaxed)
    }
}

impl Storage for Counting {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.read.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        let page = self.inner.scan(prefix, after, limit)?;
        // An empty answer still costs a seek.
        self.read.fetch_add(page.len().max(1), Ordering::Relaxed);
        Ok(page)
    }
    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        self.inner.commit(batch)
    }
}

/// The records one ListKeys page, one deep ListKeys page and one maintenance pass with
/// nothing due read, at `n` keys.
fn reads_at(n: usize) -> (usize, usize, usize, usize) {
    let counting = Arc::new(Counting {
        inner: MemoryStorage::new(),
        read: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(START));
    let kms = build(
        counting.clone(),
        clock,
        kms_core::RootKey::generate().unwrap(),
    );
    let me = kms_core::Caller::account_root(ACCOUNT);
    for i in 0..n {
        let k = kms.create_key(&me, CreateKeyRequest::default()).unwrap();
        let id = k.key_metadata.key_id;
        if i % 2 == 0 {
            kms.disable_key(&me, KeyIdRequest { key_id: id.clone() })
                .unwrap();
        }
        if i % 5 == 0 {
            kms.create_alias(
                &me,
                CreateAliasRequest {
                    alias_name: format!("alias/n{i}"),
                    key_id: id,
                },
            )
            .unwrap();
        }
    }
    let page = |number: i64| {
        counting.take();
        let p = kms
            .list_keys(
                &me,
                ListKeysRequest {
                    page_number: Some(number),
                    page_size: Some(10),
                    filters: vec![filter("KeyState", &["Enabled", "Disabled"])],
                },
            )
            .unwrap();
        assert_eq!(p.keys.key.len(), 10);
        assert_eq!(p.total_count, n as i64);
        counting.take()
    };
    let first = page(1);
    let deep = page((n / 10) as i64);
    counting.take();
    let aliases = kms
        .list_aliases(
            &me,
            ListAliasesRequest {
                page_number: Some((n / 50) as i64),
                page_size: Some(10),
            },
        )
        .unwrap();
    assert_eq!(aliases.aliases.alias.len(), 10);
    let alias_page = counting.take();
    let report = kms.run_maintenance(kms.now()).unwrap();
    assert!(report.purged_keys.is_empty() && report.rotated_keys.is_empty());
    (first, deep, alias_page, counting.take())
}

#[test]
fn list_pages_and_an_idle_maintenance_pass_read_the_same_records_at_any_store_size() {
    let small = reads_at(100);
    let large = reads_at(2_000);
    assert_eq!(
        small, large,
        "(page 1, deep page, alias page, maintenance) reads"
    );
    // A page of 10 reads its 10 entries and a few counts, never the store.
    assert!(large.0 <= 20 && large.1 <= 20, "{large:?}");
    assert!(large.3 <= 3, "{large:?}");
}

#[test]
fn an_index_record_that_fails_to_open_is_skipped_reported_and_rebuilt() {
    let env = Env::new();
    let ids: Vec<String> = (0..4).map(|_| env.create_key().key_id).collect();
    let (key, mut entry) = env
        .storage
        .scan(b"i/e/K,", None, 1)
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let mid = entry.value.len() / 2;
    entry.value[mid] ^= 0x04;
    let mut batch = Batch::new();
    batch.put(key.clone(), entry.value);
    env.storage.commit(batch).unwrap();

    // The list answers with the entries that open.
    let page = env
        .kms
        .list_keys(&env.me, ListKeysRequest::default())
        .unwrap();
    assert_eq!(page.keys.key.len(), 3);
    let corrupt = env.kms.fsck().unwrap().1;
    assert_eq!(corrupt.len(), 1);
    assert_eq!(corrupt[0].key, key);
    // Rebuilt from the records, the index is whole again.
    assert!(env.kms.rebuild_indexes().unwrap() >= 8);
    assert!(env.kms.fsck().unwrap().1.is_empty());
    let mut listed = listed_keys(&env, &[], 10);
    listed.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn concurrent_creates_all_land_in_the_index() {
    let env = Arc::new(Env::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let env = env.clone();
            std::thread::spawn(move || (0..40).map(|_| env.create_key().key_id).collect::<Vec<_>>())
        })
        .collect();
    let mut created: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    created.sort();
    let mut listed = listed_keys(&env, &[], 100);
    listed.sort();
    assert_eq!(listed, created);
}

#[test]
fn a_rebuild_keeps_versions_oldest_first_and_a_quarantined_index_record_forces_one() {
    let env = Env::new();
    let key = env.create_key().key_id;
    for _ in 0..6 {
        env.clock.advance(60);
        env.create_key_version(&key).unwrap();
    }
    let before = env.versions(&key);
    assert_eq!(before.len(), 7);
    env.kms.rebuild_indexes().unwrap();
    assert_eq!(
        env.versions(&key),
        before,
        "oldest first after a rebuild too"
    );
    let dates = version_dates(&env, &key);
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "{dates:?}");

    // An index record moved aside leaves the indexes incomplete: the marker goes with it, so
    // the next open rebuilds them even if no rebuild followed.
    let (count_key, mut entry) = env
        .storage
        .scan(b"i/c/V,", None, 1)
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    entry.value[8] ^= 1;
    let mut batch = Batch::new();
    batch.put(count_key.clone(), entry.value);
    env.storage.commit(batch).unwrap();
    env.kms.quarantine(&count_key, |_| Ok(())).unwrap();
    assert!(env.storage.get(b"m/index").unwrap().is_none());
    let reopened = env.reopen();
    assert!(env.storage.get(b"m/index").unwrap().is_some());
    let listed = reopened
        .list_key_versions(
            &env.me,
            ListKeyVersionsRequest {
                key_id: key,
                page_size: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(listed.total_count, 7);
    let ids: Vec<String> = listed
        .key_versions
        .key_version
        .into_iter()
        .map(|v| v.key_version_id)
        .collect();
    assert_eq!(ids, before);
}
