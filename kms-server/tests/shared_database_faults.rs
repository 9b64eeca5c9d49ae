//! Faults with two `kms serve` processes on one PostgreSQL database: one killed with SIGKILL
//! under a mixed write load loses nothing it acknowledged, the database restarted under load
//! is used again by both without a restart, and maintenance runs on one instance at a time.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;
#[path = "../../kms-storage/tests/support/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use pg::TestDatabase;

/// A `kms serve` process on the shared database.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is reaped by `Instance`'s Drop.
#[allow(clippy::zombie_processes)]
fn instance(db: &TestDatabase, dir: &Path, name: &str, extra: &[&str]) -> Instance {
    let root_key = dir.join("root.key");
    if !root_key.exists() {
        std::fs::write(&root_key, [9u8; 32]).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms"))
        .arg("--data-dir")
        .arg(dir.join(name))
        .arg("--root-key-file")
        .arg(&root_key)
        .args(["--storage", db.url(), "--account-id", ACCOUNT])
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
        .args(extra)
        .env("KMS_ACCESS_KEY_ID", AK)
        .env("KMS_ACCESS_KEY_SECRET", SK)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "listening" {
            let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return Instance { child, addr };
        }
    }
}

fn call(addr: SocketAddr, action: &str, query: &[(&str, &str)]) -> HttpResponse {
    let req = V3Request::new(action, query);
    let headers = req.signed_headers(&addr.to_string());
    send(addr, &req.method, &req.target(), &headers, &req.body)
}

/// A call that may meet a dead server: `None` when it cannot connect, the answer is cut, or
/// it is not a success.
fn try_call(addr: SocketAddr, action: &str, query: &[(&str, &str)]) -> Option<HttpResponse> {
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let req = V3Request::new(action, query);
    let headers = req.signed_headers(&addr.to_string());
    let host = addr.to_string();
    let raw = exchange(
        stream,
        &host,
        &req.method,
        &req.target(),
        &headers,
        &req.body,
    )
    .ok()?;
    // An answer cut short by a kill has no complete head: not acknowledged.
    let complete = raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.trim_ascii_end().ends_with(b"}");
    if !complete {
        return None;
    }
    Some(parse_response(&raw)).filter(|r| r.status == 200)
}

/// One acknowledged write: a key and a ciphertext of `plaintext` under it.
struct Acked {
    key_id: String,
    blob: String,
    plaintext: String,
}

#[test]
fn a_server_killed_under_a_mixed_write_load_loses_nothing_it_acknowledged() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let mut a = instance(&db, dir.path(), "a", &[]);
    let b = instance(&db, dir.path(), "b", &[]);
    let (a_addr, b_addr) = (a.addr, b.addr);
    let acked = Mutex::new(Vec::<Acked>::new());
    let stop = AtomicBool::new(false);

    std::thread::scope(|scope| {
        for client in 0..4 {
            let (acked, stop) = (&acked, &stop);
            scope.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Alternate between the instances; after the kill, A refuses at once.
                    let addr = if (n + client).is_multiple_of(2) {
                        a_addr
                    } else {
                        b_addr
                    };
                    let Some(created) = try_call(addr, "CreateKey", &[]) else {
                        continue;
                    };
                    let key_id = created.json()["KeyMetadata"]["KeyId"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    let plaintext = base64_of(&format!("client {client} write {n}"));
                    let sealed = try_call(
                        addr,
                        "Encrypt",
                        &[("KeyId", &key_id), ("Plaintext", &plaintext)],
                    );
                    if let Some(r) = sealed {
                        let blob = r.json()["CiphertextBlob"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push(Acked {
                            key_id,
                            blob,
                            plaintext,
                        });
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        // SIGKILL: no shutdown, no flush; whatever A acknowledged must already be in the
        // database.
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 20, "the load made {} writes", acked.len());
    for w in &acked {
        let described = call(b_addr, "DescribeKey", &[("KeyId", &w.key_id)]);
        assert_eq!(described.status, 200, "key {} is gone", w.key_id);
        let opened = call(b_addr, "Decrypt", &[("CiphertextBlob", &w.blob)]);
        assert_eq!(
            opened.status,
            200,
            "{}",
            String::from_utf8_lossy(&opened.body)
        );
        assert_eq!(opened.json()["Plaintext"], w.plaintext.as_str());
    }
    eprintln!(
        "{} acknowledged writes checked through the other server",
        acked.len()
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn both_servers_use_the_database_again_after_it_restarts_under_load() {
    let mut db = TestDatabase::create();
    if std::env::var("KMS_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        return; // a shared server is not restarted under other tests
    }
    let dir = tempfile::tempdir().unwrap();
    let a = instance(&db, dir.path(), "a", &[]);
    let b = instance(&db, dir.path(), "b", &[]);
    let key = call(a.addr, "CreateKey", &[]).json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A load on both servers throughout the restart.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, addrs, key) = (stop.clone(), [a.addr, b.addr], key.clone());
        std::thread::spawn(move || {
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for addr in addrs {
                    answered += u64::from(try_call(addr, "CreateKey", &[]).is_some());
                    let _ = try_call(addr, "Encrypt", &[("KeyId", &key), ("Plaintext", "aGk=")]);
                }
            }
            answered
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    db.stop_server();
    // Writes fail while the database is down (and, past the coherence bound, so do reads of
    // what was cached).
    let down = call(a.addr, "CreateKey", &[]);
    assert_eq!(down.status, 503, "{}", String::from_utf8_lossy(&down.body));
    assert_eq!(down.error_code(), "ServiceUnavailable");
    std::thread::sleep(Duration::from_millis(1500));
    let stale = call(b.addr, "Encrypt", &[("KeyId", &key), ("Plaintext", "aGk=")]);
    assert_eq!(
        stale.status,
        503,
        "{}",
        String::from_utf8_lossy(&stale.body)
    );
    db.start_server();
    let deadline = Instant::now() + Duration::from_secs(20);
    for server in [&a, &b] {
        loop {
            let r = call(server.addr, "CreateKey", &[]);
            if r.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "not back: {}", r.error_code());
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = call(
            server.addr,
            "Encrypt",
            &[("KeyId", &key), ("Plaintext", "aGk=")],
        );
        assert_eq!(r.status, 200);
    }
    stop.store(true, Ordering::Relaxed);
    let answered = load.join().unwrap();
    assert!(answered > 0);
}

fn maintenance_runs(addr: SocketAddr) -> u64 {
    let r = send(
        addr,
        "GET",
        "/metrics",
        &[("Host".into(), addr.to_string())],
        b"",
    );
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find(|l| l.contains("maintenance_runs") && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}

#[test]
fn maintenance_runs_on_one_instance_at_a_time_and_moves_when_it_dies() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--maintenance-interval", "1", "--metrics"];
    let mut a = instance(&db, dir.path(), "a", &args);
    let b = instance(&db, dir.path(), "b", &args);
    std::thread::sleep(Duration::from_millis(3500));
    let (on_a, on_b) = (maintenance_runs(a.addr), maintenance_runs(b.addr));
    assert!(
        (on_a > 0) != (on_b > 0),
        "exactly one instance maintains: {on_a} on A, {on_b} on B"
    );
    if on_a > 0 {
        // The holder dies: the other takes the lease once it expires (10 s at the least).
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while maintenance_runs(b.addr) == 0 {
            assert!(Instant::now() < deadline, "B never took over maintenance");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
