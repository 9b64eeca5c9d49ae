//! Several engines on one PostgreSQL database beside one engine on redb, in one run.
//!
//! - `create_key` and `encrypt_1k`: calls per second through one engine and through two (two
//!   threads, each on its own engine and connection pool, as two servers would be), on
//!   PostgreSQL and on redb (one engine: redb is one process's store).
//! - `strict`: an Encrypt on PostgreSQL with and without strict revalidation, beside the
//!   primitive strict mode adds: one `get` of the key's record.
//!
//! The database is a throw-away cluster this run starts (or `KMS_TEST_POSTGRES_URL`'s server).
//! `cargo bench -p kms-benches --bench shared`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../kms-storage/tests/support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use kms_core::api::*;
use kms_core::{Caller, Kms, RootKey, Storage};
use kms_storage::{PostgresStorage, RedbStorage};

const ROOT: [u8; 32] = [3; 32];

fn me() -> Caller {
    Caller::account_root("1")
}

fn engine(storage: Arc<dyn Storage>, strict: bool) -> Kms {
    Kms::builder()
        .shared_storage(storage)
        .root_key(RootKey::from_bytes(&ROOT).unwrap())
        .account_id("1")
        .strict_revalidation(strict)
        .build()
        .unwrap()
}

fn create(kms: &Kms) -> String {
    kms.create_key(&me(), CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id
}

fn encrypt(kms: &Kms, key: &str) {
    kms.encrypt(
        &me(),
        EncryptRequest {
            key_id: key.to_owned(),
            plaintext: vec![7u8; 1024].into(),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Runs `iters` calls of `op` split over the engines, one thread each; the wall time.
fn spread(engines: &[Arc<Kms>], keys: &[String], iters: u64, op: fn(&Kms, &str)) -> Duration {
    let per = iters.div_ceil(engines.len() as u64);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (kms, key) in engines.iter().zip(keys) {
            scope.spawn(move || {
                for _ in 0..per {
                    op(kms, key);
                }
            });
        }
    });
    started.elapsed()
}

fn throughput(c: &mut Criterion) {
    let db = pg::TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let redb: Arc<dyn Storage> = Arc::new(RedbStorage::open(dir.path().join("kms.redb")).unwrap());
    let pg_engine = || {
        let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(db.url()).unwrap());
        Arc::new(engine(storage, false))
    };
    let setups: Vec<(&str, Vec<Arc<Kms>>)> = vec![
        ("redb_1_engine", vec![Arc::new(engine(redb, false))]),
        ("postgres_1_engine", vec![pg_engine()]),
        ("postgres_2_engines", vec![pg_engine(), pg_engine()]),
    ];
    let mut g = c.benchmark_group("shared_store");
    g.throughput(Throughput::Elements(1));
    for (name, engines) in &setups {
        let keys: Vec<String> = engines.iter().map(|e| create(e)).collect();
        g.bench_function(BenchmarkId::new("create_key", name), |b| {
            b.iter_custom(|iters| {
                spread(engines, &keys, iters, |kms, _| {
                    create(kms);
                })
            })
        });
        g.bench_function(BenchmarkId::new("encrypt_1k", name), |b| {
            b.iter_custom(|iters| spread(engines, &keys, iters, encrypt))
        });
    }
    g.finish();
}

fn strict(c: &mut Criterion) {
    let db = pg::TestDatabase::create();
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(db.url()).unwrap());
    let relaxed = engine(storage.clone(), false);
    let strict = engine(storage.clone(), true);
    let key = create(&relaxed);
    let record = kms_core::internal::schema::key(&key);
    let mut g = c.benchmark_group("strict");
    g.bench_function("encrypt_1k_cached", |b| b.iter(|| encrypt(&relaxed, &key)));
    g.bench_function("encrypt_1k_strict", |b| b.iter(|| encrypt(&strict, &key)));
    g.bench_function("raw_get_of_the_key_record", |b| {
        b.iter(|| storage.get(&record).unwrap().unwrap())
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = throughput, strict
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
