#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
//! Crash safety on RedbStorage: a worker process performs a stream of lifecycle mutations and
//! is killed with SIGKILL at a random point; the store, reopened, must hold every acknowledged
//! mutation, nothing half-applied, and decrypt every acknowledged ciphertext.
//!
//! The worker is this test binary run again (`crash_worker`, selected with `--exact` and told
//! where the store is by an environment variable). Before each operation it prints an
//! *intent* line and, once the engine returned `Ok` (RedbStorage commits with
//! `Durability::Immediate`, so `Ok` means on disk), an *ack* line with the results (key and
//! version ids, ciphertexts). The parent reads the lines, kills the worker after a random number
//! of acks (or, sometimes, while it opens the store), and replays the acks on a model.
//!
//! The store must then equal the model exactly, or the model plus the one operation that was
//! in flight (the last intent without an ack), applied whole: SIGKILL can land after a commit
//! and before its ack, never inside a commit. Independently of the model, every alias must be
//! listed by the key it names and the other way round, and every key's primary version must
//! exist. Then all keys are enabled and every acknowledged ciphertext must decrypt to its
//! plaintext. The same store is reused across iterations, so each worker also recovers a
//! store killed before.
//!
//! `KMS_CRASH_ITERATIONS` (default 20) sets the number of kills, `KMS_CRASH_SEED` replays a
//! run (the seed is printed; the kill points depend on timing, so a replay is close, not
//! exact).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kms_core::api::KeyState;
use kms_core::api::*;
use kms_core::{Caller, Kms, ManualClock, UnixTime};
use kms_storage::{root_key_file, RedbStorage};
use serde_json::{json, Value};

const WORKER_DIR_ENV: &str = "KMS_CRASH_WORKER_DIR";
const WORKER_SEED_ENV: &str = "KMS_CRASH_WORKER_SEED";
const ITERATIONS_ENV: &str = "KMS_CRASH_ITERATIONS";
const SEED_ENV: &str = "KMS_CRASH_SEED";
/// Marks the worker's protocol lines among the test harness's own output.
const LINE_PREFIX: &str = "CRASH-LOG ";
const DB: &str = "kms.redb";
const ACCOUNT: &str = "1234";
const START: UnixTime = UnixTime(1_800_000_000);
/// Alias names the worker draws from (`alias/crash-<n>`), well under 50 per key.
const ALIAS_NAMES: u64 = 24;
const TAG_KEYS: [&str; 4] = ["team", "env", "owner", "cost"];
/// Most acknowledged operations before a kill.
const MAX_ACKS: u64 = 40;
/// How long the parent waits for a line before it declares the worker hung.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// xorshift64*: a seeded, reproducible operation stream.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn open(dir: &Path) -> Kms {
    let root_key = root_key_file::load_or_create(dir).unwrap();
    let storage = RedbStorage::open(dir.join(DB)).unwrap();
    Kms::builder()
        .storage(storage)
        .root_key(root_key)
        .clock(ManualClock::new(START))
        .account_id(ACCOUNT)
        .build()
        .unwrap()
}

fn me() -> Caller {
    Caller::account_root(ACCOUNT)
}

fn key(id: &str) -> KeyIdRequest {
    KeyIdRequest {
        key_id: id.to_owned(),
    }
}

fn all_key_ids(kms: &Kms) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1.. {
        let r = kms
            .list_keys(
                &me(),
                ListKeysRequest {
                    page_number: Some(page),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap();
        let n = r.keys.key.len();
        ids.extend(r.keys.key.into_iter().map(|k| k.key_id));
        if n < 100 {
            break;
        }
    }
    ids
}

fn all_aliases(kms: &Kms) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for page in 1.. {
        let r = kms
            .list_aliases(
                &me(),
                ListAliasesRequest {
                    page_number: Some(page),
                    page_size: Some(100),
                },
            )
            .unwrap();
        let n = r.aliases.alias.len();
        out.extend(
            r.aliases
                .alias
                .into_iter()
                .map(|a| (a.alias_name, a.key_id)),
        );
        if n < 100 {
            break;
        }
    }
    out
}

// ---- the worker -------------------------------------------------------------------------------

fn emit(line: Value) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{LINE_PREFIX}{line}").unwrap();
    out.flush().unwrap();
}

/// Runs `op` between an intent line and an ack line. `op` returns the ack's extra fields.
fn step(intent: Value, op: impl FnOnce() -> Value) {
    let mut ack = intent.clone();
    emit(json!({"t": "intent", "op": intent}));
    for (k, v) in op().as_object().unwrap() {
        ack[k] = v.clone();
    }
    emit(json!({"t": "ack", "op": ack}));
}

/// The child process: mutates the store until it is killed. Does nothing unless started by
/// the crash test (the environment variable names the store).
#[test]
#[ignore = "the worker process of sigkill_during_lifecycle_mutations_loses_no_acknowledged_write"]
fn crash_worker() {
    let Some(dir) = std::env::var_os(WORKER_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(WORKER_SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let kms = open(Path::new(&dir));
    let me = me();
    // What the store holds now (the parent enabled every key after its last check).
    let mut keys: Vec<(String, KeyState)> = all_key_ids(&kms)
        .into_iter()
        .map(|id| {
            let state = kms
                .describe_key(&me, key(&id))
                .unwrap()
                .key_metadata
                .key_state;
            (id, state)
        })
        .collect();
    let mut aliases = all_aliases(&kms);
    emit(json!({"t": "ready"}));
    for n in 0u64.. {
        let enabled: Vec<String> = keys
            .iter()
            .filter(|(_, s)| *s == KeyState::Enabled)
            .map(|(id, _)| id.clone())
            .collect();
        let choice = if keys.is_empty() { 0 } else { rng.below(10) };
        match choice {
            0 => step(json!({"op": "CreateKey"}), || {
                let meta = kms
                    .create_key(
                        &me,
                        CreateKeyRequest {
                            description: Some(format!("crash test key {n}")),
                            ..Default::default()
                        },
                    )
                    .unwrap()
                    .key_metadata;
                keys.push((meta.key_id.clone(), KeyState::Enabled));
                json!({"key": meta.key_id, "version": meta.primary_key_version.unwrap()})
            }),
            1 | 2 => {
                let alias = format!("alias/crash-{}", rng.below(ALIAS_NAMES));
                let target = rng.pick(&keys).0.clone();
                let current = aliases.get(&alias).cloned();
                if current.as_deref() == Some(&target) {
                    continue;
                }
                let op = if current.is_some() {
                    "UpdateAlias"
                } else {
                    "CreateAlias"
                };
                step(json!({"op": op, "alias": alias, "key": target}), || {
                    let req = AliasRequest {
                        alias_name: alias.clone(),
                        key_id: target.clone(),
                    };
                    if current.is_some() {
                        kms.update_alias(&me, req).unwrap();
                    } else {
                        kms.create_alias(&me, req).unwrap();
                    }
                    aliases.insert(alias.clone(), target.clone());
                    json!({})
                });
            }
            3 => {
                let target = rng.pick(&keys).0.clone();
                let tag_key = *rng.pick(&TAG_KEYS);
                let tag_value = format!("v{n}");
                let intent = json!({"op": "TagResource", "key": target,
                                    "tag_key": tag_key, "tag_value": tag_value});
                step(intent, || {
                    kms.tag_resource(
                        &me,
                        TagResourceRequest {
                            key_id: target.clone(),
                            tags: vec![Tag {
                                tag_key: tag_key.into(),
                                tag_value: tag_value.clone(),
                            }],
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    json!({})
                });
            }
            4 | 5 => {
                let i = rng.below(keys.len() as u64) as usize;
                let (target, state) = keys[i].clone();
                let (op, next) = if state == KeyState::Enabled {
                    ("DisableKey", KeyState::Disabled)
                } else {
                    ("EnableKey", KeyState::Enabled)
                };
                step(json!({"op": op, "key": target}), || {
                    if next == KeyState::Disabled {
                        kms.disable_key(&me, key(&target)).unwrap();
                    } else {
                        kms.enable_key(&me, key(&target)).unwrap();
                    }
                    keys[i].1 = next;
                    json!({})
                });
            }
            6 if !enabled.is_empty() => {
                let target = rng.pick(&enabled).clone();
                step(json!({"op": "CreateKeyVersion", "key": target}), || {
                    let v = kms.create_key_version(&me, key(&target)).unwrap();
                    json!({"version": v.key_version.key_version_id})
                });
            }
            _ if !enabled.is_empty() => {
                let target = rng.pick(&enabled).clone();
                let plaintext = format!("secret {n} {:x}", rng.next());
                step(json!({"op": "Encrypt", "key": target}), || {
                    let r = kms
                        .encrypt(
                            &me,
                            EncryptRequest {
                                key_id: target.clone(),
                                plaintext: plaintext.as_bytes().to_vec().into(),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                    json!({"ciphertext": B64.encode(&r.ciphertext_blob), "plaintext": plaintext})
                });
            }
            _ => {}
        }
    }
}

// ---- the model ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyModel {
    state: KeyState,
    /// Version ids, oldest first; the last is the primary.
    versions: Vec<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    keys: BTreeMap<String, KeyModel>,
    aliases: BTreeMap<String, String>,
    /// (key id, ciphertext Base64, plaintext)
    ciphertexts: Vec<(String, String, String)>,
}

/// One key as observed, or as the model expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyView {
    state: KeyState,
    primary: String,
    versions: BTreeSet<String>,
    tags: BTreeMap<String, String>,
    aliases: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    keys: BTreeMap<String, KeyView>,
    aliases: BTreeMap<String, String>,
}

fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
        .to_owned()
}

impl Model {
    /// Applies an acknowledged operation.
    fn apply(&mut self, op: &Value) {
        let k = || text(op, "key");
        match op["op"].as_str().unwrap() {
            "CreateKey" => {
                let prev = self.keys.insert(
                    k(),
                    KeyModel {
                        state: KeyState::Enabled,
                        versions: vec![text(op, "version")],
                        tags: BTreeMap::new(),
                    },
                );
                assert!(prev.is_none(), "a key id was handed out twice: {op}");
            }
            "CreateAlias" | "UpdateAlias" => {
                self.aliases.insert(text(op, "alias"), k());
            }
            "TagResource" => {
                self.key(&k())
                    .tags
                    .insert(text(op, "tag_key"), text(op, "tag_value"));
            }
            "DisableKey" => self.key(&k()).state = KeyState::Disabled,
            "EnableKey" => self.key(&k()).state = KeyState::Enabled,
            "CreateKeyVersion" => self.key(&k()).versions.push(text(op, "version")),
            "Encrypt" => {
                self.ciphertexts
                    .push((k(), text(op, "ciphertext"), text(op, "plaintext")))
            }
            other => panic!("unknown operation {other}"),
        }
    }

    fn key(&mut self, id: &str) -> &mut KeyModel {
        self.keys
            .get_mut(id)
            .unwrap_or_else(|| panic!("the worker acknowledged an operation on unknown key {id}"))
    }

    /// The model after the in-flight operation `intent`, its unknown results (new ids) taken
    /// from `observed`; `None` when it cannot have changed anything visible.
    fn after(&self, intent: &Value, observed: &View) -> Option<Model> {
        let mut ack = intent.clone();
        match intent["op"].as_str().unwrap() {
            "Encrypt" => return None,
            "CreateKey" => {
                let mut new = observed
                    .keys
                    .iter()
                    .filter(|(id, _)| !self.keys.contains_key(*id));
                let (id, view) = new.next()?;
                ack["key"] = json!(id);
                ack["version"] = json!(view.primary);
            }
            "CreateKeyVersion" => {
                let view = observed.keys.get(&text(intent, "key"))?;
                ack["version"] = json!(view.primary);
            }
            _ => {}
        }
        let mut next = self.clone();
        next.apply(&ack);
        Some(next)
    }

    fn view(&self) -> View {
        View {
            keys: self
                .keys
                .iter()
                .map(|(id, k)| {
                    let view = KeyView {
                        state: k.state,
                        primary: k.versions.last().unwrap().clone(),
                        versions: k.versions.iter().cloned().collect(),
                        tags: k.tags.clone(),
                        aliases: self
                            .aliases
                            .iter()
                            .filter(|(_, target)| *target == id)
                            .map(|(a, _)| a.clone())
                            .collect(),
                    };
                    (id.clone(), view)
                })
                .collect(),
            aliases: self.aliases.clone(),
        }
    }
}

/// Reads everything the model covers back from the engine, checking on the way that nothing
/// is half-applied: each alias is listed by the key it names and the other way round, and
/// each key's primary version record exists.
fn observe(kms: &Kms) -> View {
    let me = me();
    let aliases = all_aliases(kms);
    let mut keys = BTreeMap::new();
    for id in all_key_ids(kms) {
        let meta = kms.describe_key(&me, key(&id)).unwrap().key_metadata;
        let primary = meta
            .primary_key_version
            .unwrap_or_else(|| panic!("key {id} has no primary version"));
        let versions: BTreeSet<String> = kms
            .list_key_versions(
                &me,
                ListKeyVersionsRequest {
                    key_id: id.clone(),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .key_versions
            .key_version
            .into_iter()
            .map(|v| v.key_version_id)
            .collect();
        assert!(
            versions.contains(&primary),
            "key {id}: primary version {primary} is not among its versions {versions:?}"
        );
        kms.describe_key_version(
            &me,
            DescribeKeyVersionRequest {
                key_id: id.clone(),
                key_version_id: primary.clone(),
            },
        )
        .unwrap_or_else(|e| panic!("key {id}: primary version record {primary}: {e}"));
        let tags = kms
            .list_resource_tags(&me, key(&id))
            .unwrap()
            .tags
            .tag
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        let key_aliases: BTreeSet<String> = kms
            .list_aliases_by_key_id(
                &me,
                ListAliasesByKeyIdRequest {
                    key_id: id.clone(),
                    page_size: Some(100),
                    ..Default::default()
                },
            )
            .unwrap()
            .aliases
            .alias
            .into_iter()
            .map(|a| a.alias_name)
            .collect();
        for a in &key_aliases {
            assert_eq!(
                aliases.get(a),
                Some(&id),
                "key {id} lists alias {a}, whose record names another key"
            );
        }
        keys.insert(
            id,
            KeyView {
                state: meta.key_state,
                primary,
                versions,
                tags,
                aliases: key_aliases,
            },
        );
    }
    for (alias, target) in &aliases {
        let listed = keys.get(target).map(|k| k.aliases.contains(alias));
        assert_eq!(
            listed,
            Some(true),
            "alias {alias} names key {target}, which does not list it"
        );
    }
    View { keys, aliases }
}

/// What one worker run reported before it died.
#[derive(Debug, Default)]
struct Run {
    acks: Vec<Value>,
    /// The last intent without an ack.
    in_flight: Option<Value>,
}

impl Run {
    fn record(&mut self, line: &Value) {
        match line["t"].as_str() {
            Some("intent") => self.in_flight = Some(line["op"].clone()),
            Some("ack") => {
                self.in_flight = None;
                self.acks.push(line["op"].clone());
            }
            _ => {}
        }
    }
}

/// Starts a worker on `dir` and kills it after `kill_after` acks (0: while it starts).
fn run_worker(dir: &Path, seed: u64, kill_after: usize, delay_us: u64) -> Run {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_worker", "--ignored", "--nocapture"])
        .env(WORKER_DIR_ENV, dir)
        .env(WORKER_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // A line cut short by the kill does not parse and was not acknowledged.
            if let Some(v) = line
                .strip_prefix(LINE_PREFIX)
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
            {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut run = Run::default();
    let mut hung = false;
    while run.acks.len() < kill_after {
        match rx.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => run.record(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                hung = true;
                break;
            }
            // The worker exited on its own: it failed (its panic is on stderr).
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    std::thread::sleep(Duration::from_micros(delay_us));
    let _ = child.kill(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    reader.join().unwrap();
    // Lines the worker wrote before it died were acknowledged too.
    for line in rx.try_iter() {
        run.record(&line);
    }
    assert!(!hung, "the worker printed nothing for {LINE_TIMEOUT:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the worker ended with {status} before it was killed (after {} acks)",
            run.acks.len()
        );
    }
    assert!(run.acks.len() >= kill_after);
    run
}

#[test]
fn sigkill_during_lifecycle_mutations_loses_no_acknowledged_write() {
    let iterations: u32 = std::env::var(ITERATIONS_ENV)
        .ok()
        .map_or(20, |v| v.parse().unwrap());
    let seed: u64 = std::env::var(SEED_ENV).ok().map_or_else(
        || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |v| v.parse().unwrap(),
    );
    println!("crash test: {iterations} iterations, {SEED_ENV}={seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut in_flight_applied = 0;
    let mut total_acks = 0;
    for iteration in 0..iterations {
        // One kill in eight lands while the worker opens the store (recovery, keyring write).
        let kill_after = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(MAX_ACKS) as usize
        };
        let delay_us = rng.below(if kill_after == 0 { 20_000 } else { 2_000 });
        let run = run_worker(dir.path(), rng.next(), kill_after, delay_us);
        total_acks += run.acks.len();
        for op in &run.acks {
            model.apply(op);
        }

        let kms = open(dir.path());
        let observed = observe(&kms);
        let expected = model.view();
        if observed != expected {
            let intent = run.in_flight.as_ref().unwrap_or_else(|| {
                panic!(
                    "iteration {iteration} (seed {seed}): the store differs from the \
                     acknowledged operations and nothing was in flight\n\
                     expected {expected:#?}\nobserved {observed:#?}"
                )
            });
            let after = model.after(intent, &observed);
            assert_eq!(
                after.as_ref().map(Model::view).as_ref(),
                Some(&observed),
                "iteration {iteration} (seed {seed}): the store is neither the acknowledged \
                 state nor that state plus the in-flight {intent}\nexpected {expected:#?}"
            );
            model = after.unwrap();
            in_flight_applied += 1;
        }

        // Every acknowledged ciphertext decrypts, under whichever version made it.
        for (id, k) in &mut model.keys {
            if k.state == KeyState::Disabled {
                kms.enable_key(&me(), key(id)).unwrap();
                k.state = KeyState::Enabled;
            }
        }
        for (id, blob, plaintext) in &model.ciphertexts {
            let r = kms
                .decrypt(
                    &me(),
                    DecryptRequest {
                        ciphertext_blob: B64.decode(blob).unwrap(),
                        ..Default::default()
                    },
                )
                .unwrap_or_else(|e| {
                    panic!("iteration {iteration} (seed {seed}): a ciphertext of {id}: {e}")
                });
            assert_eq!(&r.key_id, id);
            assert_eq!(&r.plaintext[..], plaintext.as_bytes());
        }
        drop(kms);
    }
    println!(
        "crash test: {iterations} kills, {total_acks} acknowledged operations, {} keys, \
         {} aliases, {} ciphertexts; the in-flight operation had landed {in_flight_applied} times",
        model.keys.len(),
        model.aliases.len(),
        model.ciphertexts.len()
    );
    assert!(total_acks > 0);
}
