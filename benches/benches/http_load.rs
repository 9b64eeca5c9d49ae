#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! HTTP load: `kms serve` beside a minimal hyper endpoint, driven the same way in one run.
//!
//! The generator pre-signs `KMS_LOAD_REQUESTS` Encrypt requests (default 40,000; V1
//! `HMAC-SHA1` form bodies, each with its own nonce, as the official RPC SDKs send them),
//! then drives each server with `KMS_LOAD_CONNECTIONS` keep-alive connections (default 8), one
//! request in flight per connection. Each server runs in a child process (this executable,
//! re-run in a server role; for KMS that role is the `kms` command line itself, `kms serve`
//! with its defaults and its `info` request log), so its CPU time is read from
//! `/proc/<pid>/stat` apart from the generator's. The ceiling is a hyper HTTP/1.1 server that reads the body and answers a fixed
//! JSON reply of the same size: what serving a request costs before any KMS work.
//!
//! Run with `cargo bench -p kms-benches --bench http_load`. It prints requests/s and server
//! CPU microseconds per request for both, and their ratios. `KMS_LOAD_LOG_LEVEL=warn` runs
//! `kms serve --log-level warn` (no request log line).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kms_server::signature::{percent_encode, v1_sign, v1_string_to_sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLE: &str = "KMS_LOAD_ROLE";
const DATA: &str = "KMS_LOAD_DATA";
const AK: &str = "ak-load";
const SK: &str = "sk-load-secret";
const ACCOUNT: &str = "1234567890";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("kms") => return serve_kms(),
        Ok("ceiling") => return serve_ceiling(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let requests = env_or("KMS_LOAD_REQUESTS", if quick { 200 } else { 20_000 });
    let connections = env_or("KMS_LOAD_CONNECTIONS", 8);
    let rounds = env_or("KMS_LOAD_ROUNDS", if quick { 1 } else { 5 });
    let dir = tempfile::tempdir().unwrap();

    let kms = ChildServer::start("kms", dir.path());
    let ceiling = ChildServer::start("ceiling", dir.path());
    let key_id = create_key(kms.addr);
    let warm = presign(&key_id, connections * 50);
    drive(kms.addr, &warm, connections);
    drive(ceiling.addr, &warm, connections);
    // Rounds alternate between the two servers, so that a slower stretch of the machine
    // weighs on both; the median round of each is reported.
    let mut kms_runs = Vec::new();
    let mut ceiling_runs = Vec::new();
    for _ in 0..rounds {
        let bodies = presign(&key_id, requests);
        kms_runs.push(measure(&kms, &bodies, connections));
        ceiling_runs.push(measure(&ceiling, &bodies, connections));
    }
    let (kms_run, ceiling_run) = (median(kms_runs), median(ceiling_runs));

    println!(
        "http_load: {requests} Encrypt requests (1 KiB plaintext) per round, {connections} \
         connections, median of {rounds} rounds"
    );
    for (name, r) in [("kms serve", &kms_run), ("hyper ceiling", &ceiling_run)] {
        println!(
            "  {name:14} {:>9.0} requests/s  {:>6.1} µs server CPU per request",
            r.per_second, r.cpu_us
        );
    }
    println!(
        "  ratio          {:.2}x of the ceiling's requests/s, {:.1}x its CPU per request",
        kms_run.per_second / ceiling_run.per_second,
        kms_run.cpu_us / ceiling_run.cpu_us
    );
}

/// The round with the median throughput.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(runs.len() / 2)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- the servers -------------------------------------------------------------------------

/// The server role: `kms serve` itself (the binary's entry point, its default `info` request
/// log on stderr), on the address in `KMS_LOAD_LISTEN`; killed by the parent.
fn serve_kms() {
    use clap::Parser;
    let dir = std::path::PathBuf::from(std::env::var(DATA).unwrap());
    let config = dir.join("kms.toml");
    std::fs::write(
        &config,
        format!(
            "account_id = \"{ACCOUNT}\"\nnonce_cache_capacity = 1000000\n\
             [[access_keys]]\nid = \"{AK}\"\nsecret = \"{SK}\"\n"
        ),
    )
    .unwrap();
    let listen = std::env::var("KMS_LOAD_LISTEN").unwrap();
    let data = dir.join("data");
    let mut args = vec![
        "kms".to_owned(),
        "--config".into(),
        config.to_str().unwrap().into(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
    ];
    // KMS_LOAD_LOG_LEVEL=warn measures the server without its per-request log line.
    if let Ok(level) = std::env::var("KMS_LOAD_LOG_LEVEL") {
        args.extend(["--log-level".into(), level]);
    }
    args.extend(["serve".into(), "--listen".into(), listen]);
    let cli = kms_server::cli::Cli::parse_from(args);
    std::process::exit(
        if kms_server::cli::run(cli) == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        },
    );
}

/// The ceiling role: hyper reading each body and answering a fixed reply; killed by the
/// parent.
fn serve_ceiling() {
    use hyper::service::service_fn;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listen = std::env::var("KMS_LOAD_LISTEN").unwrap();
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let reply: &'static [u8] = Box::leak(ceiling_reply().into_boxed_slice());
        let accept = async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| async move {
                            use http_body_util::BodyExt;
                            let _ = req.into_body().collect().await?.to_bytes();
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json;charset=utf-8")
                                    .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                        reply,
                                    )))
                                    .unwrap(),
                            )
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        };
        accept.await;
    });
}

/// A reply the size of an Encrypt answer for 1 KiB.
fn ceiling_reply() -> Vec<u8> {
    let blob = base64::engine::general_purpose::STANDARD.encode([0u8; 1024 + 120]);
    format!(
        "{{\"CiphertextBlob\":\"{blob}\",\"KeyId\":\"{id}\",\"KeyVersionId\":\"{id}\",\
         \"RequestId\":\"{id}\"}}",
        id = "00000000-0000-4000-8000-000000000000"
    )
    .into_bytes()
}

struct ChildServer {
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn start(role: &str, dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .env(DATA, dir)
            .env("KMS_LOAD_LISTEN", &listen)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = listen.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the {role} server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        ChildServer { child, addr }
    }

    /// User plus system CPU time of the server process so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesized command name; utime and stime are the 14th and 15th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
    }
}

fn clock_ticks_per_second() -> f64 {
    // getconf CLK_TCK; 100 on every Linux this runs on, read rather than assumed.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // Its store is a temporary directory: nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- requests ----------------------------------------------------------------------------

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    kms_core::UnixTime(now as i64).to_string()
}

/// A V1-signed POST with `params` in a form body, as one HTTP/1.1 request.
fn signed_request(addr: SocketAddr, params: &[(&str, String)], nonce: usize) -> Vec<u8> {
    let ts = timestamp();
    let nonce = format!("load-{}-{nonce}", std::process::id());
    let mut all: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend([
        ("Format", "JSON"),
        ("Version", "2016-01-20"),
        ("AccessKeyId", AK),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", ts.as_str()),
        ("SignatureNonce", nonce.as_str()),
    ]);
    let signature = v1_sign(SK, &v1_string_to_sign("POST", all.iter().copied()));
    let mut body = all
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    body.push_str("&Signature=");
    body.push_str(&percent_encode(&signature));
    let mut out = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn presign(key_id: &str, n: usize) -> Arc<Vec<Vec<u8>>> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let plaintext = "p".repeat(1024);
    let context = "{\"tenant\":\"acme\"}".to_owned();
    Arc::new(
        (0..n)
            .map(|_| {
                let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                signed_request(
                    addr,
                    &[
                        ("Action", "Encrypt".into()),
                        ("KeyId", key_id.to_owned()),
                        ("Plaintext", plaintext.clone()),
                        ("EncryptionContext", context.clone()),
                    ],
                    i,
                )
            })
            .collect(),
    )
}

fn create_key(addr: SocketAddr) -> String {
    let request = signed_request(addr, &[("Action", "CreateKey".into())], usize::MAX);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        exchange(&mut stream, &request).await
    });
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
}

/// Writes one request and reads its response; returns the body (200 expected).
async fn exchange(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end])
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 200"),
            "{head}\n{}",
            String::from_utf8_lossy(&buf)
        );
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        while buf.len() < end + 4 + len {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        return buf[end + 4..end + 4 + len].to_vec();
    }
}

/// Sends every request over `connections` keep-alive connections; returns the wall time.
fn drive(addr: SocketAddr, requests: &Arc<Vec<Vec<u8>>>, connections: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let requests = requests.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(request) = requests.get(i) else {
                            break;
                        };
                        exchange(&mut stream, request).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

struct Run {
    per_second: f64,
    cpu_us: f64,
}

fn measure(server: &ChildServer, requests: &Arc<Vec<Vec<u8>>>, connections: usize) -> Run {
    let cpu_before = server.cpu();
    let wall = drive(server.addr, requests, connections);
    let cpu = server.cpu() - cpu_before;
    let n = requests.len() as f64;
    Run {
        per_second: n / wall.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / n,
    }
}
