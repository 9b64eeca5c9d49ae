//! External keys through `HttpExternalKeyStore` against a loopback external key proxy that
//! speaks the protocol of `kms_server::xks` (AES-256-GCM under in-memory keys), and that can be
//! switched to fail: down, slow, answering garbage, or answering protocol errors.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine as _;
use kms_core::api::*;
use kms_core::api::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};
use kms_core::{Batch, Caller, Entry, Kms, KmsError, RootKey, Storage, StorageError};
use kms_server::xks::HttpExternalKeyStore;
use kms_storage::MemoryStorage;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

const TOKEN: &str = "xks-bearer-token-1234";
const ACCT: &str = "1234";
/// The client's per-call timeout; the slow proxy sleeps much longer.
const TIMEOUT: Duration = Duration::from_millis(400);
const SLOW: Duration = Duration::from_millis(2500);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

// ---- the loopback proxy ------------------------------------------------------------------

/// How a malformed 200 answer is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Garbage {
    NotJson,
    EmptyObject,
    BadFields,
    ShortIv,
    ShortTag,
    LongCiphertext,
    WrongPlaintextLength,
    HtmlError,
}

/// What the proxy does with the next calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Sleeps far longer than the client's timeout, then answers normally.
    Slow,
    /// 200 with a malformed body (or a non-JSON error page).
    Garbage(Garbage),
    /// A protocol error: `{"errorName": name}` with this HTTP status.
    Error(&'static str, u16),
}

struct ProxyKey {
    material: [u8; 32],
    spec: &'static str,
    usage: Vec<&'static str>,
    status: &'static str,
}

/// One call the proxy received.
#[derive(Clone, Debug)]
struct Seen {
    key: String,
    op: String,
    authorization: Option<String>,
    body: Value,
}

impl Seen {
    fn aad(&self) -> Vec<u8> {
        unb64(self.body["additionalAuthenticatedData"].as_str().unwrap())
    }
}

#[derive(Default)]
struct ProxyState {
    keys: Mutex<HashMap<String, ProxyKey>>,
    mode: Mutex<Option<Mode>>,
    seen: Mutex<Vec<Seen>>,
}

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// An external key proxy on 127.0.0.1 that can be stopped and restarted on the same port.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    running: Option<Running>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn answer(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        // No pooled connections: a stopped proxy is really unreachable.
        .header("connection", "close")
        .body(axum::body::Body::from(body))
        .unwrap()
}

fn error_answer(status: u16, name: &str) -> Response {
    answer(
        status,
        json!({"errorName": name, "errorMessage": format!("the proxy says {name}")}).to_string(),
    )
}

async fn handle(
    State(state): State<Arc<ProxyState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/kms/xks/v1/keys/") else {
        return error_answer(404, "NotFound");
    };
    let Some((raw_key, op)) = rest.rsplit_once('/') else {
        return error_answer(404, "NotFound");
    };
    let key = percent_decode(raw_key);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_answer(400, "ValidationException");
    };
    state.seen.lock().unwrap().push(Seen {
        key: key.clone(),
        op: op.to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    let mode = state.mode.lock().unwrap().unwrap_or(Mode::Normal);
    match mode {
        Mode::Slow => tokio::time::sleep(SLOW).await,
        Mode::Error(name, status) => return error_answer(status, name),
        Mode::Garbage(Garbage::NotJson) => return answer(200, "<html>ok</html>".into()),
        Mode::Garbage(Garbage::HtmlError) => return answer(502, "<html>bad gateway</html>".into()),
        Mode::Garbage(Garbage::EmptyObject) => return answer(200, "{}".into()),
        _ => {}
    }
    let (status, mut out) = normal(&state, &key, op, &body);
    if status == 200 {
        if let Mode::Garbage(g) = mode {
            mangle(g, &mut out);
        }
    }
    answer(status, out.to_string())
}

/// What a correct proxy answers.
fn normal(state: &ProxyState, key: &str, op: &str, body: &Value) -> (u16, Value) {
    let keys = state.keys.lock().unwrap();
    let Some(k) = keys.get(key) else {
        return (
            404,
            json!({"errorName": "KeyNotFoundException", "errorMessage": key}),
        );
    };
    let field = |name: &str| unb64(body[name].as_str().unwrap_or_default());
    match op {
        "metadata" => (
            200,
            json!({"keySpec": k.spec, "keyUsage": k.usage, "keyStatus": k.status}),
        ),
        "encrypt" | "decrypt" if k.status != "ENABLED" => (
            400,
            json!({"errorName": "InvalidStateException", "errorMessage": "disabled"}),
        ),
        "encrypt" => {
            let sealing = aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_256_GCM, &k.material).unwrap(),
            );
            let mut iv = [0u8; 12];
            SystemRandom::new().fill(&mut iv).unwrap();
            let mut data = field("plaintext");
            let tag = sealing
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(iv),
                    aead::Aad::from(field("additionalAuthenticatedData")),
                    &mut data,
                )
                .unwrap();
            (
                200,
                json!({
                    "ciphertext": b64(&data),
                    "initializationVector": b64(&iv),
                    "authenticationTag": b64(tag.as_ref()),
                }),
            )
        }
        "decrypt" => {
            let opening = aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_256_GCM, &k.material).unwrap(),
            );
            let Ok(iv) = <[u8; 12]>::try_from(field("initializationVector")) else {
                return (400, json!({"errorName": "InvalidCiphertextException"}));
            };
            let mut data = field("ciphertext");
            data.extend_from_slice(&field("authenticationTag"));
            match opening.open_in_place(
                aead::Nonce::assume_unique_for_key(iv),
                aead::Aad::from(field("additionalAuthenticatedData")),
                &mut data,
            ) {
                Ok(plain) => (200, json!({"plaintext": b64(plain)})),
                Err(_) => (
                    400,
                    json!({"errorName": "InvalidCiphertextException", "errorMessage": "tag"}),
                ),
            }
        }
        _ => (404, json!({"errorName": "UnsupportedOperationException"})),
    }
}

fn mangle(g: Garbage, out: &mut Value) {
    let obj = out.as_object_mut().unwrap();
    match g {
        Garbage::BadFields => {
            // Byte fields that are not Base64; a metadata list that is not a list.
            for (name, v) in obj.iter_mut() {
                if name == "keyUsage" {
                    *v = json!("ENCRYPT,DECRYPT");
                } else if name != "keySpec" && name != "keyStatus" {
                    *v = json!("***not base64***");
                }
            }
        }
        Garbage::ShortIv => {
            if obj.contains_key("initializationVector") {
                obj.insert("initializationVector".into(), json!(b64(&[1; 8])));
            }
        }
        Garbage::ShortTag => {
            if obj.contains_key("authenticationTag") {
                obj.insert("authenticationTag".into(), json!(b64(&[1; 12])));
            }
        }
        Garbage::LongCiphertext => {
            if let Some(c) = obj.get("ciphertext").and_then(Value::as_str) {
                let mut bytes = unb64(c);
                bytes.push(0);
                obj.insert("ciphertext".into(), json!(b64(&bytes)));
            }
        }
        Garbage::WrongPlaintextLength => {
            if let Some(p) = obj.get("plaintext").and_then(Value::as_str) {
                let mut bytes = unb64(p);
                bytes.extend_from_slice(b"-extra");
                obj.insert("plaintext".into(), json!(b64(&bytes)));
            }
        }
        Garbage::NotJson | Garbage::EmptyObject | Garbage::HtmlError => {}
    }
}

fn serve_proxy(addr: SocketAddr, state: Arc<ProxyState>) -> (SocketAddr, Running) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().fallback(handle).with_state(state);
            tokio::select! {
                r = axum::serve(listener, app) => r.unwrap(),
                _ = stop_rx => {}
            }
        });
        // Drops every connection and every sleeping handler.
        rt.shutdown_background();
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (
        addr,
        Running {
            stop: Some(stop_tx),
            thread: Some(thread),
        },
    )
}

impl Proxy {
    fn start() -> Self {
        let state = Arc::new(ProxyState::default());
        let (addr, running) = serve_proxy("127.0.0.1:0".parse().unwrap(), state.clone());
        Proxy {
            addr,
            state,
            running: Some(running),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/kms/xks/v1", self.addr)
    }

    fn add_key(&self, id: &str) {
        self.add_key_with(id, "AES_256", &["ENCRYPT", "DECRYPT"], "ENABLED");
    }

    fn add_key_with(
        &self,
        id: &str,
        spec: &'static str,
        usage: &[&'static str],
        status: &'static str,
    ) {
        let mut material = [0u8; 32];
        SystemRandom::new().fill(&mut material).unwrap();
        self.state.keys.lock().unwrap().insert(
            id.to_owned(),
            ProxyKey {
                material,
                spec,
                usage: usage.to_vec(),
                status,
            },
        );
    }

    fn set_status(&self, id: &str, status: &'static str) {
        self.state.keys.lock().unwrap().get_mut(id).unwrap().status = status;
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = Some(mode);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn clear_seen(&self) {
        self.state.seen.lock().unwrap().clear();
    }

    /// Stops listening and drops every connection.
    fn down(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.stop();
        }
    }

    /// Listens again on the same port.
    fn up(&mut self) {
        assert!(self.running.is_none());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port was ours a moment ago; a bind may briefly fail while it is released.
            let attempt = std::panic::catch_unwind({
                let state = self.state.clone();
                let addr = self.addr;
                move || serve_proxy(addr, state)
            });
            match attempt {
                Ok((addr, running)) => {
                    assert_eq!(addr, self.addr);
                    self.running = Some(running);
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

// ---- an engine on a storage that counts commits --------------------------------------------

#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    commits: AtomicUsize,
    puts: Mutex<Vec<Vec<u8>>>,
}

impl Storage for CountingStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>, StorageError> {
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, batch: Batch) -> Result<(), StorageError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        let mut puts = self.puts.lock().unwrap();
        for op in &batch.ops {
            if let kms_core::Op::Put { key, value, .. } = op {
                puts.push(key.clone());
                puts.push(value.clone());
            }
        }
        drop(puts);
        self.inner.commit(batch)
    }
}

struct Fx {
    proxy: Proxy,
    kms: Kms,
    storage: Arc<CountingStorage>,
    root_key: RootKey,
    me: Caller,
}

fn engine_on(storage: Arc<CountingStorage>, root_key: RootKey, url: Option<String>) -> Kms {
    let mut b = Kms::builder()
        .shared_storage(storage)
        .root_key(root_key)
        .account_id(ACCT)
        .region("cn-hangzhou");
    if let Some(url) = url {
        b = b.external_key_store(HttpExternalKeyStore::new(
            url,
            Some(TOKEN.to_owned()),
            TIMEOUT,
        ));
    }
    b.build().unwrap()
}

fn fx() -> Fx {
    let proxy = Proxy::start();
    proxy.add_key("xk-1");
    proxy.add_key("xk-2");
    let storage = Arc::new(CountingStorage::default());
    let root_key = RootKey::generate().unwrap();
    let kms = engine_on(storage.clone(), root_key.clone(), Some(proxy.url()));
    Fx {
        proxy,
        kms,
        storage,
        root_key,
        me: Caller::account_root(ACCT),
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[track_caller]
fn expect_err<T: std::fmt::Debug>(r: Result<T, KmsError>, code: &str) -> KmsError {
    match r {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "unexpected error: {e}");
            e
        }
    }
}

impl Fx {
    fn create(&self, external: &str) -> Result<KeyMetadata, KmsError> {
        self.kms
            .create_key(
                &self.me,
                CreateKeyRequest {
                    external_key_id: Some(external.into()),
                    ..Default::default()
                },
            )
            .map(|r| r.key_metadata)
    }

    fn external_key(&self, external: &str) -> String {
        self.create(external).unwrap().key_id
    }

    fn describe(&self, key: &str) -> KeyMetadata {
        self.kms
            .describe_key(&self.me, KeyIdRequest { key_id: key.into() })
            .unwrap()
            .key_metadata
    }

    fn encrypt(
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

    fn decrypt(&self, blob: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, KmsError> {
        self.kms
            .decrypt(
                &self.me,
                DecryptRequest {
                    ciphertext_blob: blob.to_vec(),
                    encryption_context: context.clone(),
                    ..Default::default()
                },
            )
            .map(|r| r.plaintext.to_vec())
    }

    fn data_key(&self, key: &str) -> Result<GenerateDataKeyResponse, KmsError> {
        self.kms.generate_data_key(
            &self.me,
            GenerateDataKeyRequest {
                key_id: key.into(),
                ..Default::default()
            },
        )
    }

    fn re_encrypt(&self, blob: &[u8], dest: &str) -> Result<ReEncryptResponse, KmsError> {
        self.re_encrypt_from(blob, &ctx(&[]), dest)
    }

    fn re_encrypt_from(
        &self,
        blob: &[u8],
        source_context: &EncryptionContext,
        dest: &str,
    ) -> Result<ReEncryptResponse, KmsError> {
        self.kms.re_encrypt(
            &self.me,
            ReEncryptRequest {
                ciphertext_blob: blob.to_vec(),
                source_encryption_context: source_context.clone(),
                destination_key_id: dest.into(),
                ..Default::default()
            },
        )
    }

    fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .kms
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
            .collect();
        ids.sort();
        ids
    }

    /// Everything observable about a key: metadata, aliases, tags, versions.
    fn snapshot(&self, key: &str) -> (KeyMetadata, Vec<AliasEntry>, Vec<ResourceTag>, usize) {
        let aliases = self
            .kms
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
            .alias;
        let tags = self
            .kms
            .list_resource_tags(&self.me, KeyIdRequest { key_id: key.into() })
            .unwrap()
            .tags
            .tag;
        let versions = self
            .kms
            .list_key_versions(
                &self.me,
                ListKeyVersionsRequest {
                    key_id: key.into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .total_count;
        (
            self.describe(key),
            aliases,
            tags,
            usize::try_from(versions).unwrap(),
        )
    }

    /// An external key with an alias and a tag.
    fn decorated_key(&self, external: &str, alias: &str) -> String {
        let key = self.external_key(external);
        self.kms
            .create_alias(
                &self.me,
                AliasRequest {
                    alias_name: alias.into(),
                    key_id: key.clone(),
                },
            )
            .unwrap();
        self.kms
            .tag_resource(
                &self.me,
                TagResourceRequest {
                    key_id: key.clone(),
                    tags: vec![Tag {
                        tag_key: "team".into(),
                        tag_value: "vault".into(),
                    }],
                    ..Default::default()
                },
            )
            .unwrap();
        key
    }

    fn commits(&self) -> usize {
        self.storage.commits.load(Ordering::SeqCst)
    }

    fn stored_anywhere(&self, needle: &[u8]) -> bool {
        let mut all: Vec<Vec<u8>> = self.storage.puts.lock().unwrap().clone();
        for (k, e) in self.storage.inner.scan(b"", None, 100_000).unwrap() {
            all.push(k);
            all.push(e.value);
        }
        all.iter()
            .any(|v| v.windows(needle.len()).any(|w| w == needle))
    }
}

// ---- CreateKey --------------------------------------------------------------------------

#[test]
fn create_key_needs_a_key_the_proxy_knows() {
    let f = fx();
    let before = f.key_ids();
    let e = expect_err(f.create("no-such-key"), "Rejected.ExternalKeyUnusable");
    assert!(e.to_string().contains("no-such-key"), "{e}");
    assert_eq!(e.http_status(), 409);
    assert_eq!(f.key_ids(), before, "a refused CreateKey leaves no key");

    // Known to the proxy but not an enabled AES_256 ENCRYPT/DECRYPT key: refused too.
    f.proxy.add_key_with(
        "xk-disabled",
        "AES_256",
        &["ENCRYPT", "DECRYPT"],
        "DISABLED",
    );
    f.proxy
        .add_key_with("xk-hmac", "HMAC_256", &["GENERATE_MAC"], "ENABLED");
    f.proxy
        .add_key_with("xk-enc-only", "AES_256", &["ENCRYPT"], "ENABLED");
    for id in ["xk-disabled", "xk-hmac", "xk-enc-only"] {
        expect_err(f.create(id), "Rejected.ExternalKeyUnusable");
    }
    assert_eq!(f.key_ids(), before);

    f.proxy.clear_seen();
    let meta = f.create("xk-1").unwrap();
    assert_eq!(meta.origin, Origin::ExternalKeyStore);
    assert_eq!(meta.origin.to_string(), "EXTERNAL_KEY_STORE");
    assert_eq!(meta.key_spec, KeySpec::Aes256);
    assert_eq!(meta.key_usage, KeyUsage::EncryptDecrypt);
    assert_eq!(meta.key_state, KeyState::Enabled);
    assert_eq!(meta.protection_level, ProtectionLevel::Software);
    assert_eq!(meta.external_key_id.as_deref(), Some("xk-1"));
    let described = f.describe(&meta.key_id);
    assert_eq!(described.external_key_id.as_deref(), Some("xk-1"));
    assert_eq!(described.origin, Origin::ExternalKeyStore);
    // On the wire too.
    let wire = serde_json::to_value(&described).unwrap();
    assert_eq!(wire["ExternalKeyId"], "xk-1");
    assert_eq!(wire["Origin"], "EXTERNAL_KEY_STORE");
    // An ordinary key has no ExternalKeyId.
    let plain = f
        .kms
        .create_key(&f.me, CreateKeyRequest::default())
        .unwrap();
    assert_eq!(plain.key_metadata.external_key_id, None);
    assert!(serde_json::to_value(&plain.key_metadata).unwrap()["ExternalKeyId"].is_null());

    // The engine asked the proxy about exactly that key, with the bearer token.
    let seen = f.proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].op, "metadata");
    assert_eq!(seen[0].key, "xk-1");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(seen[0].body["requestMetadata"]["kmsOperation"], "CheckKey");

    // Ids with ':' and '/' reach the proxy intact.
    f.proxy.add_key("arn:hsm:vault/key-7.a_b-c");
    let odd = f.create("arn:hsm:vault/key-7.a_b-c").unwrap();
    let sealed = f.encrypt(&odd.key_id, b"odd", &ctx(&[])).unwrap();
    assert_eq!(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(),
        b"odd"
    );
    assert!(f
        .proxy
        .seen()
        .iter()
        .all(|s| s.key == "xk-1" || s.key == "arn:hsm:vault/key-7.a_b-c"));
}

#[test]
fn create_key_refuses_other_specs_usages_levels_and_origins() {
    let f = fx();
    let before = f.key_ids();
    let ext = || Some("xk-1".to_owned());
    let cases: Vec<(CreateKeyRequest, &str, &str)> = vec![
        (
            CreateKeyRequest {
                external_key_id: ext(),
                key_spec: Some(KeySpec::Aes128),
                ..Default::default()
            },
            "InvalidParameter",
            "KeySpec",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                key_spec: Some(KeySpec::Rsa2048),
                ..Default::default()
            },
            "InvalidParameter",
            "KeySpec",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                key_spec: Some(KeySpec::HmacSha256),
                ..Default::default()
            },
            "InvalidParameter",
            "KeySpec",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            },
            "InvalidParameter",
            "KeyUsage",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                key_usage: Some(KeyUsage::GenerateVerifyMac),
                ..Default::default()
            },
            "InvalidParameter",
            "KeyUsage",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                protection_level: Some(ProtectionLevel::Hsm),
                ..Default::default()
            },
            "InvalidParameter",
            "ProtectionLevel",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                origin: Some(Origin::External),
                ..Default::default()
            },
            "InvalidParameter",
            "Origin",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                origin: Some(Origin::AliyunKms),
                ..Default::default()
            },
            "InvalidParameter",
            "Origin",
        ),
        (
            CreateKeyRequest {
                origin: Some(Origin::ExternalKeyStore),
                ..Default::default()
            },
            "MissingParameter",
            "ExternalKeyId",
        ),
        (
            CreateKeyRequest {
                external_key_id: Some("bad id with spaces".into()),
                ..Default::default()
            },
            "InvalidParameter",
            "ExternalKeyId",
        ),
        (
            CreateKeyRequest {
                external_key_id: Some("x".repeat(129)),
                ..Default::default()
            },
            "InvalidParameter",
            "ExternalKeyId",
        ),
        (
            CreateKeyRequest {
                external_key_id: ext(),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("30d".into()),
                ..Default::default()
            },
            "Rejected.UnsupportedOperation",
            "",
        ),
    ];
    for (req, code, param) in cases {
        let e = expect_err(f.kms.create_key(&f.me, req.clone()), code);
        assert!(e.to_string().contains(param), "{req:?}: {e}");
    }
    assert_eq!(f.key_ids(), before);
    // Explicitly naming what the defaults give is fine.
    let meta = f
        .kms
        .create_key(
            &f.me,
            CreateKeyRequest {
                external_key_id: ext(),
                key_spec: Some(KeySpec::Aes256),
                key_usage: Some(KeyUsage::EncryptDecrypt),
                origin: Some(Origin::ExternalKeyStore),
                protection_level: Some(ProtectionLevel::Software),
                description: Some("explicit".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .key_metadata;
    assert_eq!(meta.origin, Origin::ExternalKeyStore);
    assert_eq!(meta.description, "explicit");
}

#[test]
fn several_engine_keys_may_name_one_external_key() {
    let f = fx();
    let a = f.external_key("xk-1");
    let b = f.external_key("xk-1");
    let c = f.external_key("xk-2");
    assert_ne!(a, b);
    for (key, ext) in [(&a, "xk-1"), (&b, "xk-1"), (&c, "xk-2")] {
        assert_eq!(f.describe(key).external_key_id.as_deref(), Some(ext));
        let sealed = f.encrypt(key, b"shared", &ctx(&[])).unwrap();
        assert_eq!(&sealed.key_id, key);
        assert_eq!(
            f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(),
            b"shared"
        );
    }
}

// ---- cryptography -------------------------------------------------------------------------

#[test]
fn encrypt_decrypt_data_keys_and_re_encrypt_go_through_the_proxy() {
    let f = fx();
    let key = f.external_key("xk-1");
    let other = f.external_key("xk-2");
    let local = f
        .kms
        .create_key(&f.me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let context = ctx(&[("tenant", "acme"), ("purpose", "xks")]);
    let commits = f.commits();
    f.proxy.clear_seen();

    let plaintext = b"plaintext-that-must-never-be-stored-7f3a";
    let sealed = f.encrypt(&key, plaintext, &context).unwrap();
    assert_eq!(sealed.key_id, key);
    assert_eq!(
        sealed.key_version_id,
        f.describe(&key).primary_key_version.unwrap()
    );
    assert_eq!(
        f.decrypt(&sealed.ciphertext_blob, &context).unwrap(),
        plaintext
    );
    // Through the alias too.
    f.kms
        .create_alias(
            &f.me,
            AliasRequest {
                alias_name: "alias/ext".into(),
                key_id: key.clone(),
            },
        )
        .unwrap();
    let via_alias = f.encrypt("alias/ext", plaintext, &context).unwrap();
    assert_eq!(
        f.decrypt(&via_alias.ciphertext_blob, &context).unwrap(),
        plaintext
    );
    let commits = commits + 1; // the alias

    // The context is bound: another context, none, or an extra pair fail.
    for wrong in [
        ctx(&[("tenant", "evil"), ("purpose", "xks")]),
        ctx(&[]),
        ctx(&[("tenant", "acme")]),
        ctx(&[("tenant", "acme"), ("purpose", "xks"), ("x", "y")]),
    ] {
        expect_err(
            f.decrypt(&sealed.ciphertext_blob, &wrong),
            "InvalidCiphertext",
        );
    }
    // A flipped ciphertext byte fails authentication at the proxy.
    let mut flipped = sealed.ciphertext_blob.clone();
    let last = flipped.len() - 20;
    flipped[last] ^= 1;
    expect_err(f.decrypt(&flipped, &context), "InvalidCiphertext");

    // The proxy saw the engine's associated data: it names the blob's key and version, and
    // carries the context.
    let seen = f.proxy.seen();
    let enc: Vec<&Seen> = seen.iter().filter(|s| s.op == "encrypt").collect();
    assert!(!enc.is_empty());
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
        assert_eq!(s.key, "xk-1");
        assert_eq!(s.body["encryptionAlgorithm"], "AES_GCM");
        let aad = s.aad();
        let has = |needle: &[u8]| aad.windows(needle.len()).any(|w| w == needle);
        assert!(has(key.as_bytes()), "the AAD names the key id");
        assert!(
            has(sealed.key_version_id.as_bytes()),
            "the AAD names the version"
        );
    }
    let first = enc[0].aad();
    assert!(
        first.windows(4).any(|w| w == b"acme"),
        "the AAD carries the context"
    );
    assert_eq!(
        unb64(enc[0].body["plaintext"].as_str().unwrap()),
        plaintext,
        "the proxy encrypts the plaintext itself"
    );
    // Decrypt sends the same AAD as the encryption it undoes.
    let dec = seen.iter().find(|s| s.op == "decrypt").unwrap();
    assert_eq!(dec.aad(), first);
    assert_eq!(dec.body["requestMetadata"]["kmsOperation"], "Decrypt");
    assert_eq!(enc[0].body["requestMetadata"]["kmsOperation"], "Encrypt");

    // GenerateDataKey: the blob decrypts to the Base64 text of the data key.
    let dk = f.data_key(&key).unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(dk.key_id, key);
    assert_eq!(
        f.decrypt(&dk.ciphertext_blob, &ctx(&[])).unwrap(),
        b64(&dk.plaintext).as_bytes()
    );
    let without = f
        .kms
        .generate_data_key_without_plaintext(
            &f.me,
            GenerateDataKeyRequest {
                key_id: key.clone(),
                number_of_bytes: Some(16),
                encryption_context: context.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    let text = f.decrypt(&without.ciphertext_blob, &context).unwrap();
    assert_eq!(unb64(std::str::from_utf8(&text).unwrap()).len(), 16);

    // ReEncrypt: external → other external key, → a local key, and local → external.
    let moved = f.re_encrypt(&sealed.ciphertext_blob, &other);
    let e = expect_err(moved, "InvalidCiphertext"); // the source context is required
    drop(e);
    let moved = f
        .kms
        .re_encrypt(
            &f.me,
            ReEncryptRequest {
                ciphertext_blob: sealed.ciphertext_blob.clone(),
                source_encryption_context: context.clone(),
                destination_key_id: other.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(moved.key_id, other);
    assert_eq!(
        f.decrypt(&moved.ciphertext_blob, &ctx(&[])).unwrap(),
        plaintext
    );
    let to_local = f.re_encrypt(&moved.ciphertext_blob, &local).unwrap();
    assert_eq!(to_local.key_id, local);
    assert_eq!(
        f.decrypt(&to_local.ciphertext_blob, &ctx(&[])).unwrap(),
        plaintext
    );
    let back = f.re_encrypt(&to_local.ciphertext_blob, &key).unwrap();
    assert_eq!(back.key_id, key);
    assert_eq!(
        f.decrypt(&back.ciphertext_blob, &ctx(&[])).unwrap(),
        plaintext
    );

    // None of that wrote anything, and no plaintext or data key ever reached storage.
    assert_eq!(f.commits(), commits, "crypto operations write nothing");
    assert!(!f.stored_anywhere(plaintext));
    assert!(!f.stored_anywhere(&dk.plaintext));
    assert!(!f.stored_anywhere(b64(&dk.plaintext).as_bytes()));
}

#[test]
fn the_engine_holds_no_material_of_an_external_key() {
    let mut f = fx();
    let key = f.external_key("xk-1");
    let sealed = f
        .encrypt(&key, b"only the proxy can open this", &ctx(&[]))
        .unwrap();
    // A restarted engine without its cache still needs the proxy; without it nothing opens.
    let restarted = engine_on(f.storage.clone(), f.root_key.clone(), Some(f.proxy.url()));
    let opened = restarted
        .decrypt(
            &f.me,
            DecryptRequest {
                ciphertext_blob: sealed.ciphertext_blob.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(&opened.plaintext[..], b"only the proxy can open this");
    f.proxy.down();
    let e = expect_err(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])),
        "Rejected.Unavailable",
    );
    assert_eq!(e.http_status(), 503);
    // The proxy's key is gone for good: the data is unrecoverable, and the engine says so.
    f.proxy.up();
    f.proxy.state.keys.lock().unwrap().remove("xk-1");
    expect_err(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])),
        "Rejected.ExternalKeyUnusable",
    );
    expect_err(
        f.encrypt(&key, b"x", &ctx(&[])),
        "Rejected.ExternalKeyUnusable",
    );
    assert_eq!(f.describe(&key).key_state, KeyState::Enabled);
}

/// Replaces every occurrence of `from` in `blob` by `to` (same length).
fn replace(blob: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = blob.to_vec();
    let pos = out
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap();
    out[pos..pos + to.len()].copy_from_slice(to.as_bytes());
    out
}

#[test]
fn a_blob_of_one_engine_key_does_not_open_through_another_naming_the_same_external_key() {
    let f = fx();
    let a = f.external_key("xk-1");
    let b = f.external_key("xk-1");
    let sealed = f.encrypt(&a, b"belongs to a", &ctx(&[])).unwrap();
    let va = sealed.key_version_id.clone();
    let vb = f.describe(&b).primary_key_version.unwrap();

    // Only the key id swapped: b has no such version.
    let swapped = replace(&sealed.ciphertext_blob, &a, &b);
    expect_err(f.decrypt(&swapped, &ctx(&[])), "InvalidCiphertext");
    // Key id and version id swapped: the blob parses as b's, the proxy holds the same
    // external key, but the associated data names b, so GCM authentication fails.
    f.proxy.clear_seen();
    let both = replace(&swapped, &va, &vb);
    expect_err(f.decrypt(&both, &ctx(&[])), "InvalidCiphertext");
    let seen = f.proxy.seen();
    assert_eq!(seen.len(), 1, "the proxy was asked and refused: {seen:?}");
    assert_eq!(seen[0].op, "decrypt");
    // The untouched blob still opens.
    assert_eq!(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(),
        b"belongs to a"
    );
    // A blob of a local key relabelled as an external key's does not open either.
    let local = f
        .kms
        .create_key(&f.me, CreateKeyRequest::default())
        .unwrap()
        .key_metadata;
    let local_blob = f.encrypt(&local.key_id, b"local", &ctx(&[])).unwrap();
    let relabelled = replace(
        &replace(&local_blob.ciphertext_blob, &local.key_id, &a),
        &local_blob.key_version_id,
        &va,
    );
    expect_err(f.decrypt(&relabelled, &ctx(&[])), "InvalidCiphertext");
}

// ---- failure modes ---------------------------------------------------------------------

/// Runs every proxy-using call against a failing proxy, checks the error and that nothing
/// changed, then `recover`s and checks the same calls work.
fn fails_then_recovers(
    f: &mut Fx,
    fail: impl FnOnce(&mut Fx),
    recover: impl FnOnce(&mut Fx),
    code: &str,
    status: u16,
) {
    let key = f.decorated_key("xk-1", &format!("alias/fail-{}", f.key_ids().len()));
    let context = ctx(&[("k", "v")]);
    let sealed = f.encrypt(&key, b"made before", &context).unwrap();
    let snapshot = f.snapshot(&key);
    let keys = f.key_ids();
    let commits = f.commits();

    fail(f);
    let started = Instant::now();
    let errors = [
        f.encrypt(&key, b"while failing", &context).map(|_| ()),
        f.decrypt(&sealed.ciphertext_blob, &context).map(|_| ()),
        f.data_key(&key).map(|_| ()),
        f.re_encrypt_from(&sealed.ciphertext_blob, &context, &key)
            .map(|_| ()),
        f.create("xk-1").map(|_| ()),
    ];
    for (i, r) in errors.into_iter().enumerate() {
        let e = expect_err(r, code);
        assert_eq!(e.http_status(), status, "call {i}: {e}");
        assert!(!e.to_string().contains(TOKEN), "the token leaks: {e}");
    }
    // Each call gives up after about the timeout, not SLOW.
    assert!(started.elapsed() < SLOW * 3, "took {:?}", started.elapsed());
    assert_eq!(f.snapshot(&key), snapshot, "the key's state is unchanged");
    assert_eq!(f.key_ids(), keys, "no key was created");
    assert_eq!(f.commits(), commits, "nothing was written");
    // Calls that do not need the proxy still work meanwhile.
    f.kms
        .update_key_description(
            &f.me,
            UpdateKeyDescriptionRequest {
                key_id: key.clone(),
                description: "changed while the proxy failed".into(),
            },
        )
        .unwrap();

    recover(f);
    assert_eq!(
        f.decrypt(&sealed.ciphertext_blob, &context).unwrap(),
        b"made before"
    );
    let again = f.encrypt(&key, b"after recovery", &context).unwrap();
    assert_eq!(
        f.decrypt(&again.ciphertext_blob, &context).unwrap(),
        b"after recovery"
    );
    let dk = f.data_key(&key).unwrap();
    assert_eq!(
        f.decrypt(&dk.ciphertext_blob, &ctx(&[])).unwrap(),
        b64(&dk.plaintext).as_bytes()
    );
    let moved = f
        .kms
        .re_encrypt(
            &f.me,
            ReEncryptRequest {
                ciphertext_blob: sealed.ciphertext_blob.clone(),
                source_encryption_context: context.clone(),
                destination_key_id: key.clone(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        f.decrypt(&moved.ciphertext_blob, &ctx(&[])).unwrap(),
        b"made before"
    );
    f.create("xk-1").unwrap();
    let after = f.snapshot(&key);
    assert_eq!(after.0.key_state, KeyState::Enabled);
    assert_eq!(after.1, snapshot.1);
    assert_eq!(after.2, snapshot.2);
}

#[test]
fn proxy_down_is_unavailable_and_changes_nothing() {
    let mut f = fx();
    fails_then_recovers(
        &mut f,
        |f| f.proxy.down(),
        |f| f.proxy.up(),
        "Rejected.Unavailable",
        503,
    );
}

#[test]
fn a_port_nothing_listens_on_is_unavailable() {
    let f = fx();
    // A port that was just free: bind, note, release.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kms = engine_on(
        f.storage.clone(),
        f.root_key.clone(),
        Some(format!("http://{dead}/kms/xks/v1")),
    );
    let e = expect_err(
        kms.create_key(
            &f.me,
            CreateKeyRequest {
                external_key_id: Some("xk-1".into()),
                ..Default::default()
            },
        ),
        "Rejected.Unavailable",
    );
    assert_eq!(e.http_status(), 503);
    // A malformed URL is no better.
    let kms = engine_on(
        f.storage.clone(),
        f.root_key.clone(),
        Some("not a url".into()),
    );
    expect_err(
        kms.create_key(
            &f.me,
            CreateKeyRequest {
                external_key_id: Some("xk-1".into()),
                ..Default::default()
            },
        ),
        "Rejected.Unavailable",
    );
}

#[test]
fn a_slow_proxy_times_out_as_unavailable_and_changes_nothing() {
    let mut f = fx();
    fails_then_recovers(
        &mut f,
        |f| f.proxy.set_mode(Mode::Slow),
        |f| f.proxy.set_mode(Mode::Normal),
        "Rejected.Unavailable",
        503,
    );
    // One timed-out call took about the client's timeout.
    f.proxy.set_mode(Mode::Slow);
    let key = f.external_key_or_panic();
    let started = Instant::now();
    expect_err(f.encrypt(&key, b"x", &ctx(&[])), "Rejected.Unavailable");
    let took = started.elapsed();
    assert!(took >= TIMEOUT && took < SLOW, "took {took:?}");
}

impl Fx {
    /// Some external key made earlier (the proxy may be failing now).
    fn external_key_or_panic(&self) -> String {
        self.key_ids()
            .into_iter()
            .find(|k| self.describe(k).external_key_id.is_some())
            .unwrap()
    }
}

#[test]
fn garbage_answers_are_unavailable_and_change_nothing() {
    for g in [
        Garbage::NotJson,
        Garbage::EmptyObject,
        Garbage::BadFields,
        Garbage::HtmlError,
    ] {
        let mut f = fx();
        fails_then_recovers(
            &mut f,
            move |f| f.proxy.set_mode(Mode::Garbage(g)),
            |f| f.proxy.set_mode(Mode::Normal),
            "Rejected.Unavailable",
            503,
        );
    }
}

#[test]
fn wrong_field_sizes_are_unavailable() {
    let f = fx();
    let key = f.external_key("xk-1");
    let sealed = f.encrypt(&key, b"sizes", &ctx(&[])).unwrap();
    for g in [Garbage::ShortIv, Garbage::ShortTag, Garbage::LongCiphertext] {
        f.proxy.set_mode(Mode::Garbage(g));
        let e = expect_err(f.encrypt(&key, b"sizes", &ctx(&[])), "Rejected.Unavailable");
        assert_eq!(e.http_status(), 503, "{g:?}");
        expect_err(f.data_key(&key), "Rejected.Unavailable");
    }
    // A decrypt answer whose plaintext cannot be the ciphertext's is not passed on.
    f.proxy
        .set_mode(Mode::Garbage(Garbage::WrongPlaintextLength));
    expect_err(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])),
        "Rejected.Unavailable",
    );
    f.proxy.set_mode(Mode::Normal);
    assert_eq!(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(),
        b"sizes"
    );
}

#[test]
fn proxy_errors_map_to_engine_errors_and_change_nothing() {
    let mut f = fx();
    // The external key was disabled or deleted at the proxy: unusable, 409.
    for name in [
        "KeyNotFoundException",
        "InvalidStateException",
        "InvalidKeyUsageException",
    ] {
        fails_then_recovers(
            &mut f,
            move |f| f.proxy.set_mode(Mode::Error(name, 400)),
            |f| f.proxy.set_mode(Mode::Normal),
            "Rejected.ExternalKeyUnusable",
            409,
        );
    }
    // Any other error name, or a server error: unavailable.
    for (name, status) in [("InternalException", 500), ("ThrottlingException", 429)] {
        fails_then_recovers(
            &mut f,
            move |f| f.proxy.set_mode(Mode::Error(name, status)),
            |f| f.proxy.set_mode(Mode::Normal),
            "Rejected.Unavailable",
            503,
        );
    }
    // The proxy's own state: a disabled external key, then enabled again.
    let key = f.external_key("xk-2");
    f.proxy.set_status("xk-2", "DISABLED");
    expect_err(
        f.encrypt(&key, b"x", &ctx(&[])),
        "Rejected.ExternalKeyUnusable",
    );
    assert_eq!(f.describe(&key).key_state, KeyState::Enabled);
    f.proxy.set_status("xk-2", "ENABLED");
    f.encrypt(&key, b"x", &ctx(&[])).unwrap();

    // InvalidCiphertextException is InvalidCiphertext.
    let sealed = f.encrypt(&key, b"x", &ctx(&[])).unwrap();
    f.proxy
        .set_mode(Mode::Error("InvalidCiphertextException", 400));
    let e = expect_err(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])),
        "InvalidCiphertext",
    );
    assert_eq!(e.http_status(), 400);
    f.proxy.set_mode(Mode::Normal);
    assert_eq!(f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(), b"x");
}

#[test]
fn state_checks_come_before_the_proxy() {
    let f = fx();
    let key = f.external_key("xk-1");
    let sealed = f.encrypt(&key, b"x", &ctx(&[])).unwrap();
    f.kms
        .disable_key(
            &f.me,
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    f.proxy.clear_seen();
    expect_err(f.encrypt(&key, b"x", &ctx(&[])), "Rejected.Disabled");
    expect_err(
        f.decrypt(&sealed.ciphertext_blob, &ctx(&[])),
        "Rejected.Disabled",
    );
    expect_err(f.data_key(&key), "Rejected.Disabled");
    assert!(
        f.proxy.seen().is_empty(),
        "a Disabled key never reaches the proxy"
    );
    f.kms
        .enable_key(
            &f.me,
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    f.kms
        .schedule_key_deletion(
            &f.me,
            ScheduleKeyDeletionRequest {
                key_id: key.clone(),
                pending_window_in_days: Some(7),
            },
        )
        .unwrap();
    expect_err(f.encrypt(&key, b"x", &ctx(&[])), "Rejected.PendingDeletion");
    assert!(f.proxy.seen().is_empty());
    // Cancelled: back to Enabled and usable (the state table's rule for every key).
    f.kms
        .cancel_key_deletion(
            &f.me,
            KeyIdRequest {
                key_id: key.clone(),
            },
        )
        .unwrap();
    assert_eq!(f.describe(&key).key_state, KeyState::Enabled);
    assert_eq!(f.decrypt(&sealed.ciphertext_blob, &ctx(&[])).unwrap(), b"x");
    // DryRun performs the checks, including the proxy call, and reports.
    let e = f
        .kms
        .encrypt(
            &f.me,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"x".to_vec().into(),
                dry_run: Some(true),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "DryRunOperationError");
}

// ---- what external keys do not do ----------------------------------------------------------

#[test]
fn versions_rotation_and_import_are_refused() {
    let f = fx();
    let key = f.decorated_key("xk-1", "alias/ext-only");
    let before = f.snapshot(&key);
    f.proxy.clear_seen();
    expect_err(
        f.kms.create_key_version(
            &f.me,
            CreateKeyVersionRequest {
                key_id: key.clone(),
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        f.kms.update_rotation_policy(
            &f.me,
            UpdateRotationPolicyRequest {
                key_id: key.clone(),
                enable_automatic_rotation: Some(true),
                rotation_interval: Some("30d".into()),
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        f.kms.get_parameters_for_import(
            &f.me,
            GetParametersForImportRequest {
                key_id: key.clone(),
                wrapping_algorithm: "RSAES_OAEP_SHA_256".into(),
                wrapping_key_spec: "RSA_2048".into(),
            },
        ),
        "Unsupported.Origin",
    );
    expect_err(
        f.kms.delete_key_material(
            &f.me,
            KeyIdRequest {
                key_id: key.clone(),
            },
        ),
        "Unsupported.Origin",
    );
    expect_err(
        f.kms.import_key_material(
            &f.me,
            ImportKeyMaterialRequest {
                key_id: key.clone(),
                encrypted_key_material: vec![1; 256],
                import_token: "token".into(),
                key_material_expire_unix: None,
            },
        ),
        "Unsupported.Origin",
    );
    assert_eq!(f.snapshot(&key), before);
    assert!(f.proxy.seen().is_empty());
    // Background maintenance leaves it alone too.
    f.kms
        .run_maintenance(f.kms.now().plus_secs(400 * 86_400))
        .unwrap();
    assert_eq!(f.snapshot(&key), before);
}

#[test]
fn without_an_external_key_store_external_keys_are_unsupported() {
    let storage = Arc::new(CountingStorage::default());
    let root_key = RootKey::generate().unwrap();
    let kms = engine_on(storage.clone(), root_key.clone(), None);
    let me = Caller::account_root(ACCT);
    let e = expect_err(
        kms.create_key(
            &me,
            CreateKeyRequest {
                external_key_id: Some("xk-1".into()),
                ..Default::default()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    assert!(e.to_string().contains("external key store"), "{e}");
    assert_eq!(
        kms.list_keys(&me, ListKeysRequest::default())
            .unwrap()
            .total_count,
        0
    );

    // Keys made while a store was configured: without it, their data is unsupported, not
    // an internal failure, and their metadata is still there.
    let proxy = Proxy::start();
    proxy.add_key("xk-1");
    let with = engine_on(storage.clone(), root_key.clone(), Some(proxy.url()));
    let key = with
        .create_key(
            &me,
            CreateKeyRequest {
                external_key_id: Some("xk-1".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .key_metadata
        .key_id;
    let sealed = with
        .encrypt(
            &me,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"x".to_vec().into(),
                ..Default::default()
            },
        )
        .unwrap();
    let without = engine_on(storage, root_key, None);
    expect_err(
        without.encrypt(
            &me,
            EncryptRequest {
                key_id: key.clone(),
                plaintext: b"x".to_vec().into(),
                ..Default::default()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    expect_err(
        without.decrypt(
            &me,
            DecryptRequest {
                ciphertext_blob: sealed.ciphertext_blob,
                ..Default::default()
            },
        ),
        "Rejected.UnsupportedOperation",
    );
    let meta = without
        .describe_key(&me, KeyIdRequest { key_id: key })
        .unwrap()
        .key_metadata;
    assert_eq!(meta.external_key_id.as_deref(), Some("xk-1"));
}

#[test]
fn the_client_redacts_its_token() {
    let store = HttpExternalKeyStore::new("http://127.0.0.1:1/x", Some(TOKEN.into()), TIMEOUT);
    let debug = format!("{store:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("127.0.0.1:1"), "{debug}");
}

// ---- end to end through `kms serve` ----------------------------------------------------------

struct Served {
    child: std::process::Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(clippy::zombie_processes)] // reaped by Served's Drop
fn serve(data_dir: &Path, config: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json", "--config"])
        .arg(config)
        .env_remove("KMS_ACCESS_KEY_ID")
        .env_remove("KMS_ACCESS_KEY_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["fields"]["message"] == "listening" {
            let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return Served { child, addr, log };
        }
    }
}

fn v3(addr: SocketAddr, action: &str, query: &[(&str, &str)]) -> common::HttpResponse {
    let req = common::V3Request::new(action, query);
    let headers = req.signed_headers(&addr.to_string());
    common::send(addr, &req.method, &req.target(), &headers, &req.body)
}

fn v3_ok(addr: SocketAddr, action: &str, query: &[(&str, &str)]) -> Value {
    let r = v3(addr, action, query);
    assert_eq!(
        r.status,
        200,
        "{action}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[test]
fn kms_serve_uses_the_configured_external_key_store() {
    let mut proxy = Proxy::start();
    proxy.add_key("serve-key");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kms.toml");
    std::fs::write(
        &config,
        format!(
            "account_id = \"{}\"\n\
             [[access_keys]]\nid = \"{}\"\nsecret = \"{}\"\n\
             [external_key_store]\nurl = \"{}\"\ntoken = \"{TOKEN}\"\ntimeout_ms = 500\n",
            common::ACCOUNT,
            common::AK,
            common::SK,
            proxy.url()
        ),
    )
    .unwrap();
    let served = serve(&dir.path().join("data"), &config);
    let addr = served.addr;

    let r = v3(addr, "CreateKey", &[("ExternalKeyId", "unknown-key")]);
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "Rejected.ExternalKeyUnusable");

    let meta = v3_ok(addr, "CreateKey", &[("ExternalKeyId", "serve-key")])["KeyMetadata"].clone();
    assert_eq!(meta["Origin"], "EXTERNAL_KEY_STORE");
    assert_eq!(meta["KeySpec"], "Aliyun_AES_256");
    assert_eq!(meta["KeyUsage"], "ENCRYPT/DECRYPT");
    assert_eq!(meta["ExternalKeyId"], "serve-key");
    let id = meta["KeyId"].as_str().unwrap().to_owned();
    let described = v3_ok(addr, "DescribeKey", &[("KeyId", &id)]);
    assert_eq!(described["KeyMetadata"]["ExternalKeyId"], "serve-key");

    let context = r#"{"app":"serve"}"#;
    let sealed = v3_ok(
        addr,
        "Encrypt",
        &[
            ("KeyId", &id),
            ("Plaintext", "through kms serve"),
            ("EncryptionContext", context),
        ],
    );
    let blob = sealed["CiphertextBlob"].as_str().unwrap().to_owned();
    let opened = v3_ok(
        addr,
        "Decrypt",
        &[("CiphertextBlob", &blob), ("EncryptionContext", context)],
    );
    assert_eq!(opened["Plaintext"], "through kms serve");
    assert_eq!(opened["KeyId"], id.as_str());
    let r = v3(addr, "Decrypt", &[("CiphertextBlob", &blob)]);
    assert_eq!(r.error_code(), "InvalidCiphertext");
    assert!(proxy
        .seen()
        .iter()
        .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));

    // The proxy goes down: 503 Rejected.Unavailable; it comes back: the same calls work.
    proxy.down();
    let r = v3(
        addr,
        "Decrypt",
        &[("CiphertextBlob", &blob), ("EncryptionContext", context)],
    );
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "Rejected.Unavailable");
    let r = v3(addr, "GenerateDataKey", &[("KeyId", &id)]);
    assert_eq!(r.status, 503);
    let described = v3_ok(addr, "DescribeKey", &[("KeyId", &id)]);
    assert_eq!(described["KeyMetadata"]["KeyState"], "Enabled");
    proxy.up();
    let opened = v3_ok(
        addr,
        "Decrypt",
        &[("CiphertextBlob", &blob), ("EncryptionContext", context)],
    );
    assert_eq!(opened["Plaintext"], "through kms serve");
    let dk = v3_ok(addr, "GenerateDataKey", &[("KeyId", &id)]);
    let again = v3_ok(
        addr,
        "Decrypt",
        &[("CiphertextBlob", dk["CiphertextBlob"].as_str().unwrap())],
    );
    assert_eq!(again["Plaintext"], dk["Plaintext"]);

    // The request log names the calls and never the token or plaintext.
    let log = served.log.lock().unwrap().join("\n");
    assert!(log.contains("\"Encrypt\""), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("through kms serve"),
        "{log}"
    );
}

#[test]
fn secrets_under_an_external_key_need_the_proxy_and_change_nothing_without_it() {
    let mut f = fx();
    let key = f.external_key("xk-1");
    let create = |f: &Fx, name: &str| {
        f.kms.create_secret(
            &f.me,
            CreateSecretRequest {
                secret_name: name.into(),
                secret_data: "secret-under-xks".into(),
                version_id: "v1".into(),
                encryption_key_id: Some(key.clone()),
                ..Default::default()
            },
        )
    };
    let get = |f: &Fx, name: &str| {
        f.kms
            .get_secret_value(
                &f.me,
                GetSecretValueRequest {
                    secret_name: name.into(),
                    ..Default::default()
                },
            )
            .map(|r| r.secret_data.expose().to_owned())
    };
    let versions = |f: &Fx, name: &str| {
        f.kms
            .list_secret_version_ids(
                &f.me,
                ListSecretVersionIdsRequest {
                    secret_name: name.into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .total_count
    };
    create(&f, "db").unwrap();
    assert_eq!(get(&f, "db").unwrap(), "secret-under-xks");
    assert!(!f.stored_anywhere(b"secret-under-xks"));

    f.proxy.down();
    expect_err(get(&f, "db"), "Rejected.Unavailable");
    expect_err(create(&f, "other"), "Rejected.Unavailable");
    expect_err(
        f.kms.put_secret_value(
            &f.me,
            PutSecretValueRequest {
                secret_name: "db".into(),
                version_id: "v2".into(),
                secret_data: "new".into(),
                ..Default::default()
            },
        ),
        "Rejected.Unavailable",
    );
    expect_err(
        f.kms.describe_secret(
            &f.me,
            DescribeSecretRequest {
                secret_name: "other".into(),
                ..Default::default()
            },
        ),
        "Forbidden.ResourceNotFound",
    );
    assert_eq!(versions(&f, "db"), 1);

    f.proxy.up();
    assert_eq!(get(&f, "db").unwrap(), "secret-under-xks");
    create(&f, "other").unwrap();
    assert_eq!(get(&f, "other").unwrap(), "secret-under-xks");
}
