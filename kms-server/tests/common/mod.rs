//! Test support: an in-process server on 127.0.0.1:0, a raw HTTP/1.1 client, and V3/V1
//! signers written here independently of the crate's `signature` module.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    missing_docs
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use kms_core::{Caller, UnixTime};
use kms_server::config::{AccessKeys, Credential, EngineSettings, Settings};
use kms_server::Server;
use ring::{digest, hmac};

pub const AK: &str = "ak-test";
pub const SK: &str = "sk-test-secret";
pub const ACCOUNT: &str = "1234567890";
pub const MAX_BODY: usize = 64 * 1024;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The instance gateway's address, when the settings asked for one.
    pub instance_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_, _| {})
    }

    /// Starts a server whose settings `configure` adjusts (given the temporary directory).
    pub fn start_with(configure: impl FnOnce(&mut Settings, &std::path::Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = AccessKeys::new();
        keys.insert(AK, Credential::new(SK, Caller::account_root(ACCOUNT)))
            .unwrap();
        keys.insert(
            "ak-alice",
            Credential::new("sk-alice", Caller::ram_user("999", "alice")),
        )
        .unwrap();
        let mut settings = Settings {
            engine: EngineSettings {
                data_dir: dir.path().join("data"),
                account_id: ACCOUNT.into(),
                ..EngineSettings::default()
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            maintenance_interval: Duration::from_secs(3600),
            max_body_bytes: MAX_BODY,
            nonce_cache_capacity: 10_000,
            access_keys: keys,
            ..Settings::default()
        };
        configure(&mut settings, dir.path());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(settings).await.unwrap();
                addr_tx
                    .send((
                        server.local_addr().unwrap(),
                        server.instance_addr().unwrap(),
                    ))
                    .unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let (addr, instance_addr) = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestServer {
            addr,
            instance_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            dir,
        }
    }

    /// Stops the server gracefully and waits for it (the store is closed afterwards).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- raw HTTP ----------------------------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error response, after checking Alibaba's error shape.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let obj = v.as_object().unwrap();
        for field in ["RequestId", "HostId", "Code", "Message"] {
            assert!(obj.contains_key(field), "error body lacks {field}: {v}");
        }
        assert_eq!(obj.len(), 4, "{v}");
        v["Code"].as_str().unwrap().to_owned()
    }
}

/// Sends one request (`target` is the path and query) and reads the whole response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    send_on(stream, &addr.to_string(), method, target, headers, body)
}

/// Sends one request on an open stream (TCP or TLS) and reads the whole response.
pub fn send_on<S: Read + Write>(
    stream: S,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> HttpResponse {
    parse_response(&exchange(stream, host, method, target, headers, body).unwrap())
}

/// Writes one request on an open stream and returns the raw bytes read back until the peer
/// closes (possibly cut short); errors only when the request head cannot be written.
pub fn exchange<S: Read + Write>(
    mut stream: S,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    let mut has_host = false;
    for (n, v) in headers {
        has_host |= n.eq_ignore_ascii_case("host");
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !has_host {
        head.push_str(&format!("host: {host}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a large body; ignore a reset while writing.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    Ok(raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---- encoding, time, nonces --------------------------------------------------------------

/// RFC 3986 encoding, written separately from the crate's.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn query_string(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn now_iso() -> String {
    iso_at(0)
}

/// The time `offset` seconds from now, in the wire form.
pub fn iso_at(offset: i64) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    UnixTime(secs + offset).to_string()
}

pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}-{n}-{}", std::process::id())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

// ---- V3 signer ---------------------------------------------------------------------------

/// A V3 request under construction.
#[derive(Clone, Debug)]
pub struct V3Request {
    pub method: String,
    pub action: String,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub extra_headers: Vec<(String, String)>,
    pub date: String,
    pub nonce: String,
    pub access_key_id: String,
    pub secret: String,
    /// Headers left out of SignedHeaders (they are still sent).
    pub unsigned: Vec<String>,
    /// Replace the x-acs-content-sha256 value (after signing with it).
    pub content_sha256: Option<String>,
}

impl V3Request {
    pub fn new(action: &str, query: &[(&str, &str)]) -> Self {
        V3Request {
            method: "POST".into(),
            action: action.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            extra_headers: Vec::new(),
            date: now_iso(),
            nonce: nonce(),
            access_key_id: AK.into(),
            secret: SK.into(),
            unsigned: Vec::new(),
            content_sha256: None,
        }
    }

    pub fn form(mut self, params: &[(&str, &str)]) -> Self {
        self.body = query_string(params).into_bytes();
        self.extra_headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        self
    }

    /// The headers, with Authorization, for sending to `host`.
    pub fn signed_headers(&self, host: &str) -> Vec<(String, String)> {
        let payload_hash = self
            .content_sha256
            .clone()
            .unwrap_or_else(|| sha256_hex(&self.body));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host.into()),
            ("x-acs-action".into(), self.action.clone()),
            ("x-acs-version".into(), "2016-01-20".into()),
            ("x-acs-date".into(), self.date.clone()),
            ("x-acs-signature-nonce".into(), self.nonce.clone()),
            ("x-acs-content-sha256".into(), payload_hash.clone()),
        ];
        headers.extend(self.extra_headers.iter().cloned());
        let mut signed: Vec<&(String, String)> = headers
            .iter()
            .filter(|(n, _)| !self.unsigned.contains(n))
            .collect();
        signed.sort();
        let canonical_headers: String = signed
            .iter()
            .map(|(n, v)| format!("{n}:{}\n", v.trim()))
            .collect();
        let signed_names = signed
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let mut q: Vec<(String, String)> =
            self.query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
        q.sort();
        let canonical_query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let canonical = format!(
            "{}\n/\n{canonical_query}\n{canonical_headers}\n{signed_names}\n{payload_hash}",
            self.method
        );
        let sts = format!("ACS3-HMAC-SHA256\n{}", sha256_hex(canonical.as_bytes()));
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.as_bytes());
        let signature = hex(hmac::sign(&key, sts.as_bytes()).as_ref());
        headers.push((
            "authorization".into(),
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed_names},Signature={signature}",
                self.access_key_id
            ),
        ));
        headers
    }

    pub fn target(&self) -> String {
        let q: Vec<(&str, &str)> = self
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if q.is_empty() {
            "/".into()
        } else {
            format!("/?{}", query_string(&q))
        }
    }

    pub fn send(&self, server: &TestServer) -> HttpResponse {
        let headers = self.signed_headers(&server.host());
        send(
            server.addr,
            &self.method,
            &self.target(),
            &headers,
            &self.body,
        )
    }
}

/// Sends a V3-signed call with query parameters; panics unless it answers 200.
pub fn call_ok(server: &TestServer, action: &str, query: &[(&str, &str)]) -> serde_json::Value {
    let r = V3Request::new(action, query).send(server);
    assert_eq!(
        r.status,
        200,
        "{action}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

// ---- V1 signer ---------------------------------------------------------------------------

/// V1 parameters for `action`, signed with `secret`; `tweak` may change them before signing.
pub fn v1_params(
    method: &str,
    action: &str,
    params: &[(&str, &str)],
    access_key_id: &str,
    secret: &str,
    timestamp: &str,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in [
        ("Action", action),
        ("Version", "2016-01-20"),
        ("Format", "JSON"),
        ("AccessKeyId", access_key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", timestamp),
    ] {
        all.push((k.into(), v.into()));
    }
    let mut sorted = all.clone();
    sorted.sort();
    let canonical = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let sts = format!("{method}&{}&{}", enc("/"), enc(&canonical));
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        format!("{secret}&").as_bytes(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, sts.as_bytes()));
    all.push(("Signature".into(), sig));
    all
}

pub fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, s)| (k.as_str(), s.as_str())).collect()
}
