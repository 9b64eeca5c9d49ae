//! The conformance suite for [`Storage`] implementations.
//!
//! [`run`] checks a backend against the contract documented in [`kms_core::Storage`]: point
//! reads, ordered prefix scans and paging, preconditions, all-or-nothing batches, repeated keys
//! in one batch, concurrent conflicting commits, and binary keys. It panics with a message
//! naming the broken rule at the first failure, so call it from a test:
//!
//! ```
//! kms_storage::conformance::run(&kms_storage::MemoryStorage::new());
//! ```
//!
//! Every key it writes starts with `conformance/`. It expects a fresh store, or at least one
//! with no key under that prefix, and it cannot run twice on the same store.

use std::thread;

use kms_core::{Batch, Entry, Precondition, Storage, StorageError};

/// Threads in the concurrent read-modify-write check.
const THREADS: usize = 8;
/// Successful increments each thread makes.
const INCREMENTS_PER_THREAD: u64 = 25;
/// Records in the paging check.
const PAGING_RECORDS: usize = 250;

/// Runs every check against `storage`, panicking at the first violation of the contract.
///
/// Expects no key starting with `conformance/` to exist beforehand (a fresh store).
pub fn run(storage: &dyn Storage) {
    get_of_absent_key_is_none(storage);
    put_then_get_returns_value(storage);
    revisions_increase_with_every_put(storage);
    scan_returns_ascending_byte_order(storage);
    scan_respects_prefix_boundaries(storage);
    scan_pages_with_after_and_limit(storage);
    precondition_absent(storage);
    precondition_revision(storage);
    failing_batch_applies_nothing(storage);
    deletes_remove_records(storage);
    same_key_twice_in_one_batch(storage);
    empty_batch_is_ok(storage);
    binary_keys(storage);
    concurrent_conflicting_commits(storage);
}

// --- helpers -----------------------------------------------------------------------------

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = b"conformance/".to_vec();
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

fn get(storage: &dyn Storage, key: &[u8]) -> Option<Entry> {
    storage
        .get(key)
        .unwrap_or_else(|e| panic_backend("get", key, &e))
}

/// The keys `scan` returns, escaped for readable assertion messages.
fn scan(storage: &dyn Storage, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Vec<String> {
    let keys: Vec<Vec<u8>> = scan_raw(storage, prefix, after, limit)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    shown(&keys)
}

fn scan_raw(
    storage: &dyn Storage,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Entry)> {
    storage
        .scan(prefix, after, limit)
        .unwrap_or_else(|e| panic_backend("scan", prefix, &e))
}

/// Keys as escaped ASCII: readable in assertion messages and distinct for distinct keys.
fn shown(keys: &[Vec<u8>]) -> Vec<String> {
    keys.iter().map(|k| k.escape_ascii().to_string()).collect()
}

fn commit_ok(storage: &dyn Storage, batch: Batch, what: &str) {
    let result = storage.commit(batch);
    assert!(result.is_ok(), "{what}: commit failed: {result:?}");
}

fn commit_conflict(storage: &dyn Storage, batch: Batch, bad_key: &[u8], what: &str) {
    let result = storage.commit(batch);
    let expected = String::from_utf8_lossy(bad_key).into_owned();
    assert!(
        matches!(&result, Err(StorageError::Conflict { key }) if *key == expected),
        "{what}: expected Conflict on {expected:?}, got {result:?}"
    );
}

fn put(storage: &dyn Storage, key: &[u8], value: &[u8]) -> Entry {
    let mut batch = Batch::new();
    batch.put(key, value.to_vec());
    commit_ok(storage, batch, "unconditional put");
    get(storage, key).expect("a key must be readable after its put")
}

// The suite reports a failure by panicking, like `assert!`.
#[allow(clippy::panic)]
fn panic_backend<T>(op: &str, key: &[u8], e: &StorageError) -> T {
    panic!("{op} {:?} failed: {e}", String::from_utf8_lossy(key))
}

/// Every record under `prefix`, keys escaped.
fn snapshot(storage: &dyn Storage, prefix: &[u8]) -> Vec<(String, Entry)> {
    scan_raw(storage, prefix, None, 1000)
        .into_iter()
        .map(|(key, entry)| (key.escape_ascii().to_string(), entry))
        .collect()
}

fn strs(keys: &[&[u8]]) -> Vec<String> {
    keys.iter().map(|k| k.escape_ascii().to_string()).collect()
}

// --- checks ------------------------------------------------------------------------------

fn get_of_absent_key_is_none(storage: &dyn Storage) {
    let missing = key(&[b"get/missing"]);
    assert_eq!(get(storage, &missing), None, "get of an absent key");
    assert!(
        scan(storage, &key(&[b"get/"]), None, 10).is_empty(),
        "scan of an empty prefix range"
    );
}

fn put_then_get_returns_value(storage: &dyn Storage) {
    let k = key(&[b"put/k"]);
    let entry = put(storage, &k, b"value one");
    assert_eq!(entry.value, b"value one", "get returns the put value");
    assert!(entry.revision >= 1, "revisions start at 1, got 0");

    let empty = key(&[b"put/empty"]);
    let entry = put(storage, &empty, b"");
    assert!(entry.value.is_empty(), "an empty value round-trips");

    let scanned = storage
        .scan(&k, None, 1)
        .unwrap_or_else(|e| panic_backend("scan", &k, &e));
    assert_eq!(
        scanned,
        vec![(
            k.clone(),
            get(storage, &k).expect("the key was written above")
        )],
        "scan returns the same entry as get"
    );
}

fn revisions_increase_with_every_put(storage: &dyn Storage) {
    let k = key(&[b"rev/k"]);
    let other = key(&[b"rev/other"]);
    let first = put(storage, &k, b"1").revision;
    let second = put(storage, &k, b"2").revision;
    put(storage, &other, b"x");
    let third = put(storage, &k, b"3").revision;
    assert!(
        first < second && second < third,
        "revisions of one key strictly increase: {first}, {second}, {third}"
    );

    let mut batch = Batch::new();
    batch.delete(k.clone());
    commit_ok(storage, batch, "delete before re-create");
    let recreated = put(storage, &k, b"4").revision;
    assert!(
        recreated > third,
        "a re-created key gets a greater revision than before its delete ({recreated} <= {third})"
    );
}

fn scan_returns_ascending_byte_order(storage: &dyn Storage) {
    let prefix = key(&[b"order/"]);
    let suffixes: [&[u8]; 8] = [b"b", b"a", b"B", b"ab", b"\x80", b"\x7f", b"a\x00", b"aa"];
    let mut batch = Batch::new();
    for suffix in suffixes {
        batch.put(key(&[b"order/", suffix]), suffix.to_vec());
    }
    commit_ok(storage, batch, "order setup");

    let expected: Vec<Vec<u8>> = [
        &b"B"[..],
        b"a",
        b"a\x00",
        b"aa",
        b"ab",
        b"b",
        b"\x7f",
        b"\x80",
    ]
    .iter()
    .map(|s| key(&[b"order/", s]))
    .collect();
    let scanned = scan_raw(storage, &prefix, None, 100);
    let keys: Vec<Vec<u8>> = scanned.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        shown(&keys),
        shown(&expected),
        "scan is in ascending unsigned byte order"
    );
    for (k, entry) in &scanned {
        assert_eq!(
            Some(&entry.value[..]),
            k.strip_prefix(&prefix[..]),
            "scan pairs each key with its own value"
        );
    }
}

fn scan_respects_prefix_boundaries(storage: &dyn Storage) {
    let all: [&[u8]; 9] = [
        b"p/", b"p/a", b"p/a.", b"p/a/", b"p/a/x", b"p/a/y/z", b"p/a0", b"p/b/", b"p/b/x",
    ];
    let mut batch = Batch::new();
    for suffix in all {
        batch.put(key(&[suffix]), b"v".to_vec());
    }
    commit_ok(storage, batch, "prefix setup");

    let in_a = strs(&[&key(&[b"p/a/"]), &key(&[b"p/a/x"]), &key(&[b"p/a/y/z"])]);
    let prefix = key(&[b"p/a/"]);
    assert_eq!(
        scan(storage, &prefix, None, 100),
        in_a,
        "prefix p/a/ excludes p/a, p/a., p/a0 and p/b/"
    );
    assert_eq!(
        scan(storage, &prefix, Some(&key(&[b"p/"])), 100),
        in_a,
        "an `after` before the prefix range does not widen the scan"
    );
    assert_eq!(
        scan(storage, &prefix, Some(&key(&[b"p/a/x"])), 100),
        in_a.get(2..).map(<[_]>::to_vec).unwrap_or_default(),
        "scan starts strictly after `after`"
    );
    assert_eq!(
        scan(storage, &prefix, Some(&key(&[b"p/a/w"])), 100),
        in_a.get(1..).map(<[_]>::to_vec).unwrap_or_default(),
        "an `after` that is not a stored key still resumes in order"
    );
    assert!(
        scan(storage, &prefix, Some(&key(&[b"p/b"])), 100).is_empty(),
        "an `after` past the prefix range returns nothing"
    );
    assert_eq!(
        scan(storage, &key(&[b"p/b/"]), None, 100),
        strs(&[&key(&[b"p/b/"]), &key(&[b"p/b/x"])]),
        "prefix p/b/ includes the key equal to the prefix"
    );
    assert_eq!(
        scan(storage, &key(&[b"p/a"]), None, 100).len(),
        6,
        "prefix p/a matches p/a, p/a., p/a/, p/a/x, p/a/y/z, p/a0"
    );
}

fn scan_pages_with_after_and_limit(storage: &dyn Storage) {
    let prefix = key(&[b"page/"]);
    let mut expected: Vec<Vec<u8>> = (0..PAGING_RECORDS)
        .map(|i| key(&[b"page/", format!("{i:04}").as_bytes()]))
        .collect();
    // Insert in a scrambled order (37 is coprime with 250), plus neighbours outside the prefix.
    let mut batch = Batch::new();
    for i in 0..PAGING_RECORDS {
        let j = (i * 37) % PAGING_RECORDS;
        batch.put(key(&[b"page/", format!("{j:04}").as_bytes()]), vec![0; 3]);
    }
    batch.put(key(&[b"page"]), vec![1]);
    batch.put(key(&[b"page0"]), vec![1]);
    batch.put(key(&[b"pagf/0000"]), vec![1]);
    commit_ok(storage, batch, "paging setup");
    expected.sort();

    for limit in [1, 7, 100, PAGING_RECORDS, PAGING_RECORDS + 1] {
        let mut seen = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        let mut pages = 0;
        loop {
            let page: Vec<Vec<u8>> = scan_raw(storage, &prefix, after.as_deref(), limit)
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            assert!(page.len() <= limit, "a page holds at most `limit` records");
            pages += 1;
            assert!(pages <= PAGING_RECORDS + 2, "paging does not terminate");
            let Some(last) = page.last().cloned() else {
                break;
            };
            let full = page.len() == limit;
            seen.extend(page);
            after = Some(last);
            if !full {
                break;
            }
        }
        assert_eq!(
            shown(&seen),
            shown(&expected),
            "paging with limit {limit} yields every record once, in order"
        );
    }
    assert!(
        scan(storage, &prefix, None, 0).is_empty(),
        "limit 0 returns nothing"
    );
}

fn precondition_absent(storage: &dyn Storage) {
    let k = key(&[b"absent/k"]);
    let mut batch = Batch::new();
    batch.put_if(k.clone(), b"first".to_vec(), Precondition::Absent);
    commit_ok(storage, batch, "put if Absent on an absent key");
    let before = get(storage, &k);

    let mut batch = Batch::new();
    batch.put_if(k.clone(), b"second".to_vec(), Precondition::Absent);
    commit_conflict(storage, batch, &k, "put if Absent on a present key");
    assert_eq!(
        get(storage, &k),
        before,
        "a conflicting put changes nothing"
    );

    let mut batch = Batch::new();
    batch.delete_if(k.clone(), Precondition::Absent);
    commit_conflict(storage, batch, &k, "delete if Absent on a present key");
    assert_eq!(
        get(storage, &k),
        before,
        "a conflicting delete changes nothing"
    );

    let missing = key(&[b"absent/missing"]);
    let mut batch = Batch::new();
    batch.delete_if(missing.clone(), Precondition::Absent);
    commit_ok(storage, batch, "delete if Absent on an absent key");
    assert_eq!(get(storage, &missing), None);
}

fn precondition_revision(storage: &dyn Storage) {
    let k = key(&[b"revision/k"]);
    let old = put(storage, &k, b"v1");

    let mut batch = Batch::new();
    batch.put_if(
        k.clone(),
        b"v2".to_vec(),
        Precondition::Revision(old.revision),
    );
    commit_ok(storage, batch, "put if Revision(current)");
    let current = get(storage, &k).expect("the key was written above");
    assert_eq!(current.value, b"v2");
    assert!(current.revision > old.revision);

    let mut batch = Batch::new();
    batch.put_if(
        k.clone(),
        b"v3".to_vec(),
        Precondition::Revision(old.revision),
    );
    commit_conflict(storage, batch, &k, "put if Revision(stale)");
    let mut batch = Batch::new();
    batch.delete_if(k.clone(), Precondition::Revision(old.revision));
    commit_conflict(storage, batch, &k, "delete if Revision(stale)");
    assert_eq!(
        get(storage, &k).as_ref(),
        Some(&current),
        "conflicts change nothing"
    );

    let missing = key(&[b"revision/missing"]);
    for revision in [0, 1, current.revision] {
        let mut batch = Batch::new();
        batch.put_if(
            missing.clone(),
            b"v".to_vec(),
            Precondition::Revision(revision),
        );
        commit_conflict(
            storage,
            batch,
            &missing,
            "put if Revision(n) on an absent key",
        );
        let mut batch = Batch::new();
        batch.delete_if(missing.clone(), Precondition::Revision(revision));
        commit_conflict(
            storage,
            batch,
            &missing,
            "delete if Revision(n) on an absent key",
        );
    }
    assert_eq!(get(storage, &missing), None);

    let mut batch = Batch::new();
    batch.delete_if(k.clone(), Precondition::Revision(current.revision));
    commit_ok(storage, batch, "delete if Revision(current)");
    assert_eq!(get(storage, &k), None, "a guarded delete removes the key");
}

fn failing_batch_applies_nothing(storage: &dyn Storage) {
    let a = key(&[b"atomic/a"]);
    let b = key(&[b"atomic/b"]);
    let c = key(&[b"atomic/c"]);
    let d = key(&[b"atomic/d"]);
    let e = key(&[b"atomic/e"]);
    put(storage, &a, b"a");
    put(storage, &b, b"b");
    let prefix = key(&[b"atomic/"]);
    let before = snapshot(storage, &prefix);

    // The bad precondition sits in the middle, after puts and deletes that would succeed.
    let mut batch = Batch::new();
    batch
        .put(c.clone(), b"c".to_vec())
        .put(a.clone(), b"a2".to_vec())
        .delete(b.clone())
        .put_if(d.clone(), b"d".to_vec(), Precondition::Revision(u64::MAX))
        .put_if(e.clone(), b"e".to_vec(), Precondition::Absent)
        .delete(a.clone());
    commit_conflict(storage, batch, &d, "batch with one bad precondition");
    let after = snapshot(storage, &prefix);
    assert_eq!(after, before, "a failing batch applies none of its writes");

    // The same with the bad precondition first and last.
    let mut batch = Batch::new();
    batch
        .put_if(a.clone(), b"a3".to_vec(), Precondition::Absent)
        .put(c.clone(), b"c".to_vec());
    commit_conflict(storage, batch, &a, "batch failing on its first op");
    let mut batch = Batch::new();
    batch
        .put(c.clone(), b"c".to_vec())
        .delete(b.clone())
        .delete_if(e.clone(), Precondition::Revision(1));
    commit_conflict(storage, batch, &e, "batch failing on its last op");
    let after = snapshot(storage, &prefix);
    assert_eq!(after, before, "a failing batch applies none of its writes");
}

fn deletes_remove_records(storage: &dyn Storage) {
    let k = key(&[b"delete/k"]);
    let keep = key(&[b"delete/keep"]);
    put(storage, &k, b"v");
    put(storage, &keep, b"v");
    let mut batch = Batch::new();
    batch.delete(k.clone());
    commit_ok(storage, batch, "delete of a present key");
    assert_eq!(get(storage, &k), None, "a deleted key is absent");
    assert_eq!(
        scan(storage, &key(&[b"delete/"]), None, 100),
        strs(&[&keep]),
        "a deleted key is not scanned"
    );

    let mut batch = Batch::new();
    batch.delete(k.clone());
    commit_ok(storage, batch, "delete of an absent key is a no-op");
    assert_eq!(get(storage, &k), None);
    assert!(get(storage, &keep).is_some(), "delete touches only its key");
}

fn same_key_twice_in_one_batch(storage: &dyn Storage) {
    let k = key(&[b"twice/put-put"]);
    let mut batch = Batch::new();
    batch
        .put(k.clone(), b"first".to_vec())
        .put(k.clone(), b"second".to_vec());
    commit_ok(storage, batch, "put, put");
    let entry = get(storage, &k).expect("the key was written above");
    assert_eq!(entry.value, b"second", "the last write wins");
    let later = put(storage, &k, b"third");
    assert!(later.revision > entry.revision);

    let k = key(&[b"twice/put-delete"]);
    let mut batch = Batch::new();
    batch.put(k.clone(), b"v".to_vec()).delete(k.clone());
    commit_ok(storage, batch, "put, delete");
    assert_eq!(
        get(storage, &k),
        None,
        "put then delete leaves the key absent"
    );

    let k = key(&[b"twice/delete-put"]);
    let old = put(storage, &k, b"old");
    let mut batch = Batch::new();
    batch.delete(k.clone()).put(k.clone(), b"new".to_vec());
    commit_ok(storage, batch, "delete, put");
    let entry = get(storage, &k).expect("the key was written above");
    assert_eq!(entry.value, b"new", "delete then put leaves the new value");
    assert!(entry.revision > old.revision);

    // Preconditions are checked against the state before the batch, not after earlier ops.
    let k = key(&[b"twice/absent-absent"]);
    let mut batch = Batch::new();
    batch
        .put_if(k.clone(), b"first".to_vec(), Precondition::Absent)
        .put_if(k.clone(), b"second".to_vec(), Precondition::Absent);
    commit_ok(storage, batch, "two puts if Absent of one absent key");
    let entry = get(storage, &k).expect("the key was written above");
    assert_eq!(entry.value, b"second");

    let mut batch = Batch::new();
    batch
        .delete_if(k.clone(), Precondition::Revision(entry.revision))
        .put_if(
            k.clone(),
            b"third".to_vec(),
            Precondition::Revision(entry.revision),
        );
    commit_ok(
        storage,
        batch,
        "delete, put, both if Revision(before the batch)",
    );
    let entry = get(storage, &k).expect("the key was written above");
    assert_eq!(entry.value, b"third");
}

fn empty_batch_is_ok(storage: &dyn Storage) {
    let k = key(&[b"empty/k"]);
    let before = put(storage, &k, b"v");
    commit_ok(storage, Batch::new(), "empty batch");
    assert_eq!(
        get(storage, &k),
        Some(before.clone()),
        "an empty batch changes nothing"
    );
    let after = put(storage, &k, b"w");
    assert!(after.revision > before.revision);
}

fn binary_keys(storage: &dyn Storage) {
    let suffixes: [&[u8]; 9] = [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\x7f",
        b"\x80",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
    ];
    let mut batch = Batch::new();
    for (i, suffix) in suffixes.iter().enumerate() {
        batch.put(
            key(&[b"bin/", suffix]),
            vec![u8::try_from(i).unwrap_or(0), 0x00, 0xff],
        );
    }
    batch.put(key(&[b"bin0"]), vec![0xff]);
    commit_ok(storage, batch, "binary keys setup");

    for (i, suffix) in suffixes.iter().enumerate() {
        let k = key(&[b"bin/", suffix]);
        let entry = get(storage, &k);
        assert_eq!(
            entry.map(|e| e.value),
            Some(vec![u8::try_from(i).unwrap_or(0), 0x00, 0xff]),
            "binary key {k:?} round-trips with a binary value"
        );
    }
    let all: Vec<Vec<u8>> = suffixes.iter().map(|s| key(&[b"bin/", s])).collect();
    let all = shown(&all);
    assert_eq!(
        scan(storage, &key(&[b"bin/"]), None, 100),
        all,
        "binary keys scan in unsigned byte order"
    );
    assert_eq!(
        scan(storage, &key(&[b"bin/\xff"]), None, 100),
        strs(&[
            &key(&[b"bin/\xff"]),
            &key(&[b"bin/\xff\x00"]),
            &key(&[b"bin/\xff\xff"]),
        ]),
        "a prefix ending in 0xff"
    );
    assert_eq!(
        scan(storage, &key(&[b"bin/\x00"]), None, 100),
        strs(&[
            &key(&[b"bin/\x00"]),
            &key(&[b"bin/\x00\x00"]),
            &key(&[b"bin/\x00\xff"]),
        ]),
        "a prefix ending in 0x00"
    );
    assert_eq!(
        scan(storage, &key(&[b"bin/"]), Some(&key(&[b"bin/\xff"])), 100),
        strs(&[&key(&[b"bin/\xff\x00"]), &key(&[b"bin/\xff\xff"])]),
        "paging past a 0xff key"
    );

    let bad = key(&[b"bin/\xff\xff"]);
    let mut batch = Batch::new();
    batch.put_if(bad.clone(), Vec::new(), Precondition::Absent);
    commit_conflict(storage, batch, &bad, "conflict on a non-UTF-8 key");
}

fn concurrent_conflicting_commits(storage: &dyn Storage) {
    let counter = key(&[b"concurrent/counter"]);
    let successes: u64 = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| scope.spawn(|| increment_many(storage, &counter)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a concurrent commit thread panicked"))
            .sum()
    });
    let expected = u64::try_from(THREADS).unwrap_or(0) * INCREMENTS_PER_THREAD;
    assert_eq!(successes, expected, "every thread made all its increments");
    let entry = get(storage, &counter).expect("the key was written above");
    assert_eq!(
        decode_counter(&entry.value),
        successes,
        "the counter equals the number of successful commits (no lost update)"
    );
}

fn increment_many(storage: &dyn Storage, counter: &[u8]) -> u64 {
    let mut done = 0;
    while done < INCREMENTS_PER_THREAD {
        let current = get(storage, counter);
        let (value, precondition) = match &current {
            Some(entry) => (
                decode_counter(&entry.value),
                Precondition::Revision(entry.revision),
            ),
            None => (0, Precondition::Absent),
        };
        let mut batch = Batch::new();
        batch.put_if(counter, (value + 1).to_be_bytes().to_vec(), precondition);
        match storage.commit(batch) {
            Ok(()) => done += 1,
            Err(StorageError::Conflict { .. }) => thread::yield_now(),
            Err(e) => panic_backend("commit", counter, &e),
        }
    }
    done
}

fn decode_counter(value: &[u8]) -> u64 {
    let bytes: Option<[u8; 8]> = value.try_into().ok();
    assert!(bytes.is_some(), "counter value is 8 bytes");
    bytes.map_or(0, u64::from_be_bytes)
}
