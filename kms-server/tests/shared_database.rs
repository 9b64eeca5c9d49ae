//! Two `kms serve` instances on one PostgreSQL database: what one creates the other uses at
//! once, what one changes the other honours within the coherence bound, maintenance runs on
//! one instance at a time, and an instance with another root key is refused at start.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../kms-storage/tests/support/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::*;
use kms_server::config::DatabaseUrl;
use pg::TestDatabase;

const COHERENCE: Duration = Duration::from_millis(100);
/// The bound a change made on one instance is honoured within on the other.
const BOUND: Duration = Duration::from_secs(1);

fn instance(db: &TestDatabase, root_key: &std::path::Path) -> TestServer {
    let url = db.url().to_owned();
    let root_key = root_key.to_owned();
    TestServer::start_with(move |settings, _| {
        settings.engine.storage = Some(DatabaseUrl(url));
        settings.engine.root_key_file = Some(root_key);
        settings.engine.cache_coherence = COHERENCE;
    })
}

fn root_key_file(dir: &std::path::Path, byte: u8) -> std::path::PathBuf {
    let path = dir.join(format!("root-{byte}.key"));
    std::fs::write(&path, [byte; 32]).unwrap();
    path
}

fn encrypt(server: &TestServer, key: &str) -> HttpResponse {
    V3Request::new("Encrypt", &[("KeyId", key), ("Plaintext", "aGVsbG8=")]).send(server)
}

/// The error code of a refused call, `OK` for a success.
fn code(r: &HttpResponse) -> String {
    if r.status == 200 {
        "OK".into()
    } else {
        r.error_code()
    }
}

/// Polls `check` until it holds or `within` passes; returns how long it took.
fn within(within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "not honoured within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn two_instances_on_one_database_serve_one_set_of_keys() {
    let db = TestDatabase::create();
    let keys = tempfile::tempdir().unwrap();
    let root = root_key_file(keys.path(), 1);
    let a = instance(&db, &root);
    let b = instance(&db, &root);

    // Created on A, usable on B at once (B has never seen it: read through).
    let key = call_ok(&a, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let sealed = encrypt(&b, &key);
    assert_eq!(
        sealed.status,
        200,
        "{}",
        String::from_utf8_lossy(&sealed.body)
    );
    let blob = sealed.json()["CiphertextBlob"].as_str().unwrap().to_owned();
    let opened = call_ok(&a, "Decrypt", &[("CiphertextBlob", &blob)]);
    assert_eq!(opened["Plaintext"], "aGVsbG8=");

    // Rotated on A: B's new ciphertexts (under whichever version B uses) decrypt on A, and A's
    // under the new version decrypt on B.
    call_ok(&a, "CreateKeyVersion", &[("KeyId", &key)]);
    let from_a = call_ok(&a, "Encrypt", &[("KeyId", &key), ("Plaintext", "aGk=")]);
    let on_b = call_ok(
        &b,
        "Decrypt",
        &[("CiphertextBlob", from_a["CiphertextBlob"].as_str().unwrap())],
    );
    assert_eq!(on_b["Plaintext"], "aGk=");
    assert_eq!(on_b["KeyVersionId"], from_a["KeyVersionId"]);

    // Disabled on A: refused on B within the bound.
    call_ok(&a, "DisableKey", &[("KeyId", &key)]);
    let took = within(BOUND, || code(&encrypt(&b, &key)) == "Rejected.Disabled");
    eprintln!("DisableKey on A honoured on B after {took:?}");
    call_ok(&a, "EnableKey", &[("KeyId", &key)]);
    within(BOUND, || encrypt(&b, &key).status == 200);

    // An alias moved on A: B follows it within the bound.
    let other = call_ok(&a, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    call_ok(
        &a,
        "CreateAlias",
        &[("AliasName", "alias/app"), ("KeyId", &key)],
    );
    assert_eq!(encrypt(&b, "alias/app").json()["KeyId"], key.as_str());
    call_ok(
        &a,
        "UpdateAlias",
        &[("AliasName", "alias/app"), ("KeyId", &other)],
    );
    within(BOUND, || {
        encrypt(&b, "alias/app").json()["KeyId"] == other.as_str()
    });

    // A policy set on A that denies the owner's Encrypt is enforced on B within the bound.
    let deny = r#"{"Version":"1","Statement":[
        {"Effect":"Allow","Principal":{"RAM":["acs:ram::1234567890:*"]},"Action":["kms:*"],"Resource":["*"]},
        {"Effect":"Deny","Principal":{"RAM":["acs:ram::1234567890:*"]},"Action":["kms:Encrypt"],"Resource":["*"]}]}"#;
    call_ok(
        &a,
        "SetKeyPolicy",
        &[
            ("KeyId", &other),
            ("PolicyName", "default"),
            ("Policy", deny),
        ],
    );
    within(BOUND, || {
        code(&encrypt(&b, &other)) == "Forbidden.NoPermission"
    });

    // ScheduleKeyDeletion on A: refused on B within the bound.
    call_ok(
        &a,
        "ScheduleKeyDeletion",
        &[("KeyId", &key), ("PendingWindowInDays", "7")],
    );
    within(BOUND, || {
        code(&encrypt(&b, &key)) == "Rejected.PendingDeletion"
    });
}

#[test]
fn an_instance_with_another_root_key_is_refused_at_start() {
    let db = TestDatabase::create();
    let keys = tempfile::tempdir().unwrap();
    let a = instance(&db, &root_key_file(keys.path(), 1));
    call_ok(&a, "CreateKey", &[]);
    let wrong = root_key_file(keys.path(), 2);
    let settings = kms_server::config::EngineSettings {
        data_dir: keys.path().join("other"),
        root_key_file: Some(wrong),
        storage: Some(DatabaseUrl(db.url().to_owned())),
        ..Default::default()
    };
    let refused = kms_server::open_engine(&settings).unwrap_err().to_string();
    assert!(
        refused.contains("root key") || refused.contains("keyring"),
        "{refused}"
    );
    // Without a root key file, a shared database is refused too.
    let settings = kms_server::config::EngineSettings {
        data_dir: keys.path().join("other2"),
        storage: Some(DatabaseUrl(db.url().to_owned())),
        ..Default::default()
    };
    let refused = kms_server::open_engine(&settings).unwrap_err().to_string();
    assert!(refused.contains("--root-key-file"), "{refused}");
}
