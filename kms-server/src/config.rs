//! Configuration: the TOML file, the environment's access key, and the resolved [`Settings`].
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! # instance_listen = "127.0.0.1:8443"   # the KMS 3.0 instance gateway (client keys; TLS as above)
//! data_dir = "./kms-data"
//! # root_key_file = "/etc/kms/root.key"   # default: <data_dir>/root.key, created on first start
//! region = "cn-hangzhou"
//! account_id = "1234567890"
//! maintenance_interval_secs = 60
//! max_body_bytes = 65536
//!
//! [[access_keys]]          # the account owner
//! id = "LTAI-owner"
//! secret = "..."
//!
//! [[access_keys]]          # a RAM user of the account, with its RAM identity policy
//! id = "LTAI-alice"
//! secret = "..."
//! user = "alice"
//! policy = '''{"Version": "1", "Statement": [{"Effect": "Allow",
//!     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": ["acs:kms:*:*:key/*"]}]}'''
//!
//! # TLS (PEM files); without them the server listens only on loopback unless
//! # insecure_http = true. `kms dev-cert --out DIR` writes a development set.
//! tls_cert = "/etc/kms/cert.pem"
//! tls_key = "/etc/kms/key.pem"
//! # tls_client_ca = "/etc/kms/clients-ca.pem"   # require client certificates (mTLS)
//!
//! audit_log = "/var/log/kms/audit.jsonl"     # one hash-chained JSON line per request
//! audit_fail_closed = false                   # true: refuse requests that cannot be audited
//! audit_sync = false                          # true: fdatasync each line before answering
//! nonce_cache_capacity = 1000000              # per access key, within the 15-minute window
//!
//! max_connections = 4096          # more are closed as soon as they are accepted
//! header_read_timeout_secs = 10   # a request's headers, from their first byte
//! body_read_timeout_secs = 30     # a request's body
//! idle_timeout_secs = 60          # a keep-alive connection between requests
//! max_header_bytes = 69632        # request line (with a query of up to 60 KiB) and headers
//!
//! metrics = false                             # true: Prometheus text at GET /metrics
//! key_cache_capacity = 100000                 # decoded keys kept in memory (LRU beyond)
//! store_cache_mb = 128                        # the store's own page cache
//!
//! # Several servers on one database instead of data_dir's embedded store (every instance with
//! # the same root_key_file, which is then required):
//! # storage = "postgres://kms@db.example.com:5432/kms"
//! # cache_coherence_ms = 200      # how often the change log is followed (a change made on
//! #                               # another instance is honoured here within this, plus a poll)
//! # strict_revalidation = false   # true: every crypto call rereads the key's revision
//!
//! [rate_limits]            # optional: requests per second per access key, by class
//! symmetric = 1000         # Encrypt, Decrypt, data keys, MACs (Alibaba's per-account quota)
//! asymmetric = 200         # AsymmetricSign/Verify/Encrypt/Decrypt, certificate keys
//! management = 50          # everything else
//!
//! [external_key_store]     # optional: the proxy external keys use (see `crate::xks`)
//! url = "https://xks.example.com/kms/xks/v1"
//! token = "..."            # optional bearer token
//! timeout_ms = 2000
//! ```
//!
//! Command-line flags win over the file, the file over the defaults. The environment's
//! `KMS_ACCESS_KEY_ID` / `KMS_ACCESS_KEY_SECRET` add one more access key for the account owner.
//!
//! An access key acts as the account owner (no `user` or `role`), a RAM user, or a RAM role,
//! of the configured account or of another (`account_id`). RAM users and roles are allowed only
//! what their identity `policy` allows (and what key and secret policies grant them by name);
//! without one they can do nothing. Access keys of the same principal must carry the same
//! policy, since the policy belongs to the principal.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kms_core::Caller;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./kms-data";
/// Default region.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// Default account id.
pub const DEFAULT_ACCOUNT_ID: &str = "1234567890";
/// Default seconds between maintenance passes.
pub const DEFAULT_MAINTENANCE_SECS: u64 = 60;
/// Environment variable holding the owner's AccessKeyId.
pub const ENV_ACCESS_KEY_ID: &str = "KMS_ACCESS_KEY_ID";
/// Environment variable holding the owner's AccessKeySecret.
pub const ENV_ACCESS_KEY_SECRET: &str = "KMS_ACCESS_KEY_SECRET";
/// Name of the store file inside the data directory.
pub const STORE_FILE: &str = "kms.redb";

/// A configuration problem, with what to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The configuration file's contents. Every field is optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Address of the instance gateway (the KMS 3.0 instance API), if served.
    pub instance_listen: Option<String>,
    /// Data directory (the store and, by default, the root key).
    pub data_dir: Option<PathBuf>,
    /// Root key file (32 raw bytes) instead of `<data_dir>/root.key`.
    pub root_key_file: Option<PathBuf>,
    /// Region in ARNs.
    pub region: Option<String>,
    /// The account that owns the keys.
    pub account_id: Option<String>,
    /// Seconds between maintenance passes.
    pub maintenance_interval_secs: Option<u64>,
    /// Limit on the request body and the query string, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Bound on the nonces remembered for replay refusal, per access key.
    pub nonce_cache_capacity: Option<usize>,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to: requires mTLS.
    pub tls_client_ca: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: Option<bool>,
    /// The audit trail file.
    pub audit_log: Option<PathBuf>,
    /// Refuse requests whose audit line cannot be written.
    pub audit_fail_closed: Option<bool>,
    /// Sync each audit line to disk before answering.
    pub audit_sync: Option<bool>,
    /// Most connections served at once; more are closed as soon as they are accepted.
    pub max_connections: Option<usize>,
    /// Seconds a request's headers may take, from their first byte.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request's body may take.
    pub body_read_timeout_secs: Option<u64>,
    /// Seconds a keep-alive connection may stay idle between requests.
    pub idle_timeout_secs: Option<u64>,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: Option<usize>,
    /// Access keys and the principals they act as.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyEntry>,
    /// The external key proxy, for external keys.
    pub external_key_store: Option<ExternalKeyStoreConfig>,
    /// Request quotas per access key, by action class.
    pub rate_limits: Option<crate::ratelimit::RateLimits>,
    /// Serve Prometheus metrics at `GET /metrics`.
    pub metrics: Option<bool>,
    /// Most decoded keys kept in memory.
    pub key_cache_capacity: Option<usize>,
    /// MiB of the store's page cache.
    pub store_cache_mb: Option<usize>,
    /// A shared database (`postgres://...`) instead of the embedded store in `data_dir`.
    pub storage: Option<String>,
    /// Milliseconds between reads of a shared database's change log (default 200).
    pub cache_coherence_ms: Option<u64>,
    /// Reread a key's revision from the shared database on every cryptographic call.
    pub strict_revalidation: Option<bool>,
}

/// The `[external_key_store]` section: where the external key proxy is.
#[derive(Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalKeyStoreConfig {
    /// Base URL of the proxy API, e.g. `https://xks.example.com/kms/xks/v1`.
    pub url: String,
    /// Bearer token sent with every call.
    pub token: Option<String>,
    /// Per-call timeout in milliseconds (default 2000).
    pub timeout_ms: Option<u64>,
}

impl fmt::Debug for ExternalKeyStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalKeyStoreConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "..redacted.."))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileConfig")
            .field("listen", &self.listen)
            .field("instance_listen", &self.instance_listen)
            .field("data_dir", &self.data_dir)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("access_keys", &self.access_keys.len())
            .finish_non_exhaustive()
    }
}

/// One `[[access_keys]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyEntry {
    /// The AccessKeyId.
    pub id: String,
    /// The AccessKeySecret (moved into a zeroizing buffer when resolved).
    pub secret: String,
    /// The account it belongs to (default: the configured account).
    pub account_id: Option<String>,
    /// A RAM user name: the key acts as that user instead of the account owner.
    pub user: Option<String>,
    /// A RAM role name: the key acts as that role.
    pub role: Option<String>,
    /// The RAM identity policy (a policy document without Principal) of the user or role.
    pub policy: Option<String>,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    ///
    /// Errors: the file cannot be read, or is not valid TOML of this shape.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses configuration text.
    ///
    /// Errors: not valid TOML of this shape (the message never repeats secret values).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError(format!("invalid configuration: {}", e.message())))
    }
}

/// The secret of an access key and the principal it acts as.
pub struct Credential {
    secret: Zeroizing<String>,
    caller: Caller,
}

impl Credential {
    /// A credential.
    pub fn new(secret: impl Into<String>, caller: Caller) -> Self {
        Credential {
            secret: Zeroizing::new(secret.into()),
            caller,
        }
    }

    /// The AccessKeySecret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The principal.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("secret", &"..redacted..")
            .field("caller", &self.caller)
            .finish()
    }
}

/// AccessKeyId → credential.
#[derive(Debug, Default)]
pub struct AccessKeys(HashMap<String, Credential>);

impl AccessKeys {
    /// No access keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an access key.
    ///
    /// Errors: an empty id or secret, or an id already present.
    pub fn insert(&mut self, id: &str, credential: Credential) -> Result<(), ConfigError> {
        if id.is_empty() || credential.secret().is_empty() {
            return Err(ConfigError(
                "an access key needs a non-empty id and secret".into(),
            ));
        }
        if self.0.contains_key(id) {
            return Err(ConfigError(format!(
                "the access key {id} is configured twice"
            )));
        }
        self.0.insert(id.to_owned(), credential);
        Ok(())
    }

    /// The credential of an AccessKeyId.
    pub fn get(&self, id: &str) -> Option<&Credential> {
        self.0.get(id)
    }

    /// Number of access keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The configured AccessKeyIds.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Where the engine keeps its data and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Root key file, when not `<data_dir>/root.key`.
    pub root_key_file: Option<PathBuf>,
    /// Region in ARNs.
    pub region: String,
    /// The account that owns the keys.
    pub account_id: String,
    /// The external key proxy, when external keys are used.
    pub external_key_store: Option<ExternalKeyStoreConfig>,
    /// Most decoded keys kept in memory (the engine's default when `None`).
    pub key_cache_capacity: Option<usize>,
    /// MiB of the store's page cache (the store's default when `None`).
    pub store_cache_mb: Option<usize>,
    /// A shared database URL (`postgres://...`); `None`: the embedded store in `data_dir`.
    pub storage: Option<DatabaseUrl>,
    /// How often a shared database's change log is followed.
    pub cache_coherence: Duration,
    /// Reread a key's revision on every cryptographic call.
    pub strict_revalidation: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            root_key_file: None,
            region: DEFAULT_REGION.into(),
            account_id: DEFAULT_ACCOUNT_ID.into(),
            external_key_store: None,
            key_cache_capacity: None,
            store_cache_mb: None,
            storage: None,
            cache_coherence: DEFAULT_CACHE_COHERENCE,
            strict_revalidation: false,
        }
    }
}

/// A database URL, whose password `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return "(a key=value connection string)".to_owned();
        };
        // The authority runs to the last '@' (a password may hold '/'), the query from '?'.
        let (body, query) = match url[scheme_end..].find('?') {
            Some(q) => (
                &url[scheme_end..scheme_end + q],
                Some(&url[scheme_end + q + 1..]),
            ),
            None => (&url[scheme_end..], None),
        };
        let body = match body.rfind('@') {
            Some(at) => match body[..at].find(':') {
                Some(colon) => format!("{}:***{}", &body[..colon], &body[at..]),
                None => body.to_owned(),
            },
            None => body.to_owned(),
        };
        let query = query.map(|q| {
            q.split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        match query {
            Some(q) => format!("{}{body}?{q}", &url[..scheme_end]),
            None => format!("{}{body}", &url[..scheme_end]),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// How often a shared database's change log is followed by default.
pub const DEFAULT_CACHE_COHERENCE: Duration = Duration::from_millis(200);

/// Everything `kms serve` needs, resolved.
#[derive(Debug)]
pub struct Settings {
    /// The engine's data and identity.
    pub engine: EngineSettings,
    /// Listen address.
    pub listen: SocketAddr,
    /// Time between maintenance passes.
    pub maintenance_interval: Duration,
    /// Limit on the body and on the query string, in bytes.
    pub max_body_bytes: usize,
    /// Bound on remembered nonces, per access key.
    pub nonce_cache_capacity: usize,
    /// Access keys.
    pub access_keys: AccessKeys,
    /// RAM identity policies: (principal ARN, policy document).
    pub identity_policies: Vec<(String, String)>,
    /// TLS, when served over HTTPS.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The audit trail.
    pub audit: Option<AuditSettings>,
    /// Replay refusal survives restarts through files in the data directory (the default);
    /// off, nonces are kept in memory only.
    pub persist_replay_state: bool,
    /// Connection limits and timeouts.
    pub connections: ConnectionLimits,
    /// Request quotas per access key (none by default).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Serve Prometheus metrics at `GET /metrics` (unauthenticated, like `/health`).
    pub metrics: bool,
    /// The instance gateway's address, if it is served.
    pub instance_listen: Option<SocketAddr>,
}

/// What one client may hold of the server's connections and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a request's headers may take, from their first byte.
    pub header_read_timeout: Duration,
    /// How long a request's body may take.
    pub body_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle between requests (or before its first).
    pub idle_timeout: Duration,
    /// Largest request head, in bytes (at least 8192).
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    /// 4096 connections; headers within 10 s, a body within 30 s; 60 s idle; 68 KiB of head
    /// (a 60 KiB query string, which V1 clients use for every parameter, and 8 KiB of headers).
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: crate::server::MAX_QUERY_BYTES + 8 * 1024,
        }
    }
}

/// Where the audit trail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The file (JSON lines, appended).
    pub path: PathBuf,
    /// Refuse requests whose line cannot be written.
    pub fail_closed: bool,
    /// Sync each line to disk (fdatasync) before the request is answered.
    pub sync: bool,
}

impl Default for Settings {
    /// Loopback on port 8080, plain HTTP, the default data directory, no access keys.
    fn default() -> Self {
        Settings {
            engine: EngineSettings::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            maintenance_interval: Duration::from_secs(DEFAULT_MAINTENANCE_SECS),
            max_body_bytes: crate::request::DEFAULT_MAX_BYTES,
            nonce_cache_capacity: crate::auth::DEFAULT_NONCE_CAPACITY,
            access_keys: AccessKeys::new(),
            identity_policies: Vec::new(),
            tls: None,
            audit: None,
            persist_replay_state: true,
            connections: ConnectionLimits::default(),
            rate_limits: crate::ratelimit::RateLimits::default(),
            metrics: false,
            instance_listen: None,
        }
    }
}

/// Overrides from the command line (each wins over the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--root-key-file`.
    pub root_key_file: Option<PathBuf>,
    /// `--storage`.
    pub storage: Option<DatabaseUrl>,
    /// `--region`.
    pub region: Option<String>,
    /// `--account-id`.
    pub account_id: Option<String>,
    /// `--maintenance-interval`.
    pub maintenance_interval_secs: Option<u64>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-client-ca`.
    pub tls_client_ca: Option<PathBuf>,
    /// `--insecure-http`.
    pub insecure_http: bool,
    /// `--audit-log`.
    pub audit_log: Option<PathBuf>,
    /// `--metrics`.
    pub metrics: bool,
    /// `--instance-listen`.
    pub instance_listen: Option<String>,
}

impl EngineSettings {
    /// Resolves the engine settings from flags, file and defaults.
    pub fn resolve(file: &FileConfig, overrides: &Overrides) -> Self {
        let d = EngineSettings::default();
        EngineSettings {
            data_dir: overrides
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or(d.data_dir),
            root_key_file: overrides
                .root_key_file
                .clone()
                .or_else(|| file.root_key_file.clone()),
            region: overrides
                .region
                .clone()
                .or_else(|| file.region.clone())
                .unwrap_or(d.region),
            account_id: overrides
                .account_id
                .clone()
                .or_else(|| file.account_id.clone())
                .unwrap_or(d.account_id),
            external_key_store: file.external_key_store.clone(),
            key_cache_capacity: file.key_cache_capacity,
            store_cache_mb: file.store_cache_mb,
            storage: overrides
                .storage
                .clone()
                .or_else(|| file.storage.clone().map(DatabaseUrl))
                .filter(|s| !s.0.is_empty()),
            cache_coherence: file
                .cache_coherence_ms
                .map(Duration::from_millis)
                .unwrap_or(d.cache_coherence),
            strict_revalidation: file.strict_revalidation.unwrap_or(false),
        }
    }
}

impl Settings {
    /// Resolves the server settings.
    ///
    /// `env` is the owner's access key from the environment (id, secret), if set.
    ///
    /// Errors: a malformed listen address, a zero maintenance interval, an access key entry
    /// naming both a user and a role, duplicate or empty access keys, or no access key at all.
    pub fn resolve(
        file: FileConfig,
        overrides: &Overrides,
        env: Option<(String, Zeroizing<String>)>,
    ) -> Result<Self, ConfigError> {
        let engine = EngineSettings::resolve(&file, overrides);
        let listen_text = overrides
            .listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError(format!(
                "the listen address {listen_text:?} is not an IP:port address"
            ))
        })?;
        let instance_listen = overrides
            .instance_listen
            .clone()
            .or_else(|| file.instance_listen.clone())
            .map(|text| {
                text.parse::<SocketAddr>().map_err(|_| {
                    ConfigError(format!(
                        "the instance gateway address {text:?} is not an IP:port address"
                    ))
                })
            })
            .transpose()?;
        let secs = overrides
            .maintenance_interval_secs
            .or(file.maintenance_interval_secs)
            .unwrap_or(DEFAULT_MAINTENANCE_SECS);
        if secs == 0 {
            return Err(ConfigError(
                "the maintenance interval must be at least 1 second".into(),
            ));
        }
        let tls_cert = overrides.tls_cert.clone().or_else(|| file.tls_cert.clone());
        let tls_key = overrides.tls_key.clone().or_else(|| file.tls_key.clone());
        let client_ca = overrides
            .tls_client_ca
            .clone()
            .or_else(|| file.tls_client_ca.clone());
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) if client_ca.is_none() => None,
            (None, None) => {
                return Err(ConfigError(
                    "tls_client_ca needs tls_cert and tls_key: client certificates are \
                     checked over TLS only"
                        .into(),
                ))
            }
            _ => {
                return Err(ConfigError(
                    "give both tls_cert and tls_key (PEM files), or neither".into(),
                ))
            }
        };
        let insecure_http = overrides.insecure_http || file.insecure_http == Some(true);
        if let Some(addr) = instance_listen.filter(|a| tls.is_none() && !a.ip().is_loopback()) {
            if !insecure_http {
                return Err(ConfigError(format!(
                    "refusing to serve the instance gateway in plain HTTP on {addr}, a \
                     non-loopback address; give --tls-cert and --tls-key, or --insecure-http"
                )));
            }
        }
        if tls.is_none() && !listen.ip().is_loopback() && !insecure_http {
            return Err(ConfigError(format!(
                "refusing to serve plain HTTP on {listen}, a non-loopback address: plaintexts, \
                 data keys and secrets would cross the network in clear. Give --tls-cert and \
                 --tls-key (kms dev-cert writes a development pair), or --insecure-http to \
                 accept that"
            )));
        }
        let audit = overrides
            .audit_log
            .clone()
            .or_else(|| file.audit_log.clone())
            .map(|path| AuditSettings {
                path,
                fail_closed: file.audit_fail_closed == Some(true),
                sync: file.audit_sync == Some(true),
            });
        if audit.is_none() && file.audit_fail_closed == Some(true) {
            return Err(ConfigError(
                "audit_fail_closed needs audit_log: the file the trail is written to".into(),
            ));
        }
        let d = ConnectionLimits::default();
        let timeout = |v: Option<u64>, default: Duration, name: &str| match v {
            Some(0) => Err(ConfigError(format!("{name} must be at least 1 second"))),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(default),
        };
        let connections = ConnectionLimits {
            max_connections: match file.max_connections {
                Some(0) => return Err(ConfigError("max_connections must be at least 1".into())),
                Some(n) => n,
                None => d.max_connections,
            },
            header_read_timeout: timeout(
                file.header_read_timeout_secs,
                d.header_read_timeout,
                "header_read_timeout_secs",
            )?,
            body_read_timeout: timeout(
                file.body_read_timeout_secs,
                d.body_read_timeout,
                "body_read_timeout_secs",
            )?,
            idle_timeout: timeout(file.idle_timeout_secs, d.idle_timeout, "idle_timeout_secs")?,
            max_header_bytes: file
                .max_header_bytes
                .unwrap_or(d.max_header_bytes)
                .max(8192),
        };
        let rate_limits = file.rate_limits.unwrap_or_default();
        rate_limits.validate().map_err(ConfigError)?;
        let mut access_keys = AccessKeys::new();
        let mut identity_policies: Vec<(String, String)> = Vec::new();
        let mut policy_of: HashMap<String, (String, Option<String>)> = HashMap::new();
        for entry in file.access_keys {
            let account = entry
                .account_id
                .clone()
                .unwrap_or_else(|| engine.account_id.clone());
            let caller = match (&entry.user, &entry.role) {
                (None, None) => Caller::account_root(account),
                (Some(user), None) => Caller::ram_user(account, user.clone()),
                (None, Some(role)) => Caller::ram_role(account, role.clone()),
                (Some(_), Some(_)) => {
                    return Err(ConfigError(format!(
                        "the access key {} names both a user and a role; give one",
                        entry.id
                    )))
                }
            };
            if let Some(doc) = &entry.policy {
                if caller.principal == kms_core::Principal::Root {
                    return Err(ConfigError(format!(
                        "the access key {} acts as the account owner, who needs no policy: \
                         give it a user or role, or drop the policy",
                        entry.id
                    )));
                }
                kms_policy::PolicyDocument::parse_identity(doc).map_err(|e| {
                    ConfigError(format!("the policy of the access key {}: {e}", entry.id))
                })?;
            }
            let arn = caller.arn();
            match policy_of.get(&arn) {
                Some((other, policy)) if *policy != entry.policy => {
                    return Err(ConfigError(format!(
                        "the access keys {other} and {} act as {arn} with different policies; \
                         a policy belongs to the principal, so give both the same one",
                        entry.id
                    )))
                }
                Some(_) => {}
                None => {
                    if let Some(doc) = &entry.policy {
                        identity_policies.push((arn.clone(), doc.clone()));
                    }
                    policy_of.insert(arn, (entry.id.clone(), entry.policy.clone()));
                }
            }
            access_keys.insert(
                &entry.id,
                Credential {
                    secret: Zeroizing::new(entry.secret),
                    caller,
                },
            )?;
        }
        if let Some((id, secret)) = env {
            access_keys.insert(
                &id,
                Credential {
                    secret,
                    caller: Caller::account_root(engine.account_id.clone()),
                },
            )?;
        }
        if access_keys.is_empty() {
            return Err(ConfigError(format!(
                "no access key is configured: set {ENV_ACCESS_KEY_ID} and \
                 {ENV_ACCESS_KEY_SECRET}, or give --config with [[access_keys]]"
            )));
        }
        Ok(Settings {
            engine,
            listen,
            maintenance_interval: Duration::from_secs(secs),
            max_body_bytes: file
                .max_body_bytes
                .unwrap_or(crate::request::DEFAULT_MAX_BYTES)
                .max(1024),
            nonce_cache_capacity: file
                .nonce_cache_capacity
                .unwrap_or(crate::auth::DEFAULT_NONCE_CAPACITY)
                .max(1),
            access_keys,
            identity_policies,
            tls,
            audit,
            persist_replay_state: true,
            connections,
            rate_limits,
            metrics: overrides.metrics || file.metrics == Some(true),
            instance_listen,
        })
    }
}

/// The owner's access key from the environment.
///
/// Errors: only one of the two variables is set.
pub fn env_access_key() -> Result<Option<(String, Zeroizing<String>)>, ConfigError> {
    let id = std::env::var(ENV_ACCESS_KEY_ID).ok();
    let secret = std::env::var(ENV_ACCESS_KEY_SECRET)
        .ok()
        .map(Zeroizing::new);
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        _ => Err(ConfigError(format!(
            "set both {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}, or neither"
        ))),
    }
}

#[cfg(test)]
mod database_url_tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_password_never_shows_in_debug() {
        let url = DatabaseUrl("postgres://kms:s3cret@db:5432/kms?sslmode=disable".into());
        assert_eq!(
            url.redacted(),
            "postgres://kms:***@db:5432/kms?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain = DatabaseUrl("postgres://kms@db/kms".into());
        assert_eq!(plain.redacted(), "postgres://kms@db/kms");
        let kv = DatabaseUrl("host=db password=s3cret".into());
        assert!(!kv.redacted().contains("s3cret"));
        let query = DatabaseUrl("postgres://db/kms?user=kms&password=s3cret".into());
        assert_eq!(query.redacted(), "postgres://db/kms?user=kms&password=***");
        let slash = DatabaseUrl("postgres://kms:s3/cr@t@db/kms".into());
        assert_eq!(slash.redacted(), "postgres://kms:***@db/kms");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn file_maps_access_keys_to_principals() {
        let file = FileConfig::parse(
            r#"
            region = "cn-shanghai"
            account_id = "42"
            [[access_keys]]
            id = "owner"
            secret = "s1"
            [[access_keys]]
            id = "alice"
            secret = "s2"
            user = "alice"
            [[access_keys]]
            id = "ops"
            secret = "s3"
            role = "ops"
            account_id = "43"
            "#,
        )
        .unwrap();
        let s = Settings::resolve(file, &Overrides::default(), None).unwrap();
        assert_eq!(s.engine.region, "cn-shanghai");
        assert_eq!(
            s.access_keys.get("owner").unwrap().caller(),
            &Caller::account_root("42")
        );
        assert_eq!(
            s.access_keys.get("alice").unwrap().caller(),
            &Caller::ram_user("42", "alice")
        );
        assert_eq!(
            s.access_keys.get("ops").unwrap().caller(),
            &Caller::ram_role("43", "ops")
        );
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn flags_win_and_env_adds_the_owner() {
        let file = FileConfig::parse("listen = \"127.0.0.1:1\"\naccount_id = \"7\"").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let s =
            Settings::resolve(file, &o, Some(("ak".into(), Zeroizing::new("sk".into())))).unwrap();
        assert_eq!(s.listen.port(), 2);
        assert_eq!(
            s.access_keys.get("ak").unwrap().caller(),
            &Caller::account_root("7")
        );
    }

    #[test]
    fn refuses_bad_configurations() {
        let none = Settings::resolve(FileConfig::default(), &Overrides::default(), None);
        assert!(none.unwrap_err().0.contains(ENV_ACCESS_KEY_ID));
        assert!(FileConfig::parse("lisen = 1").is_err());
        let both =
            FileConfig::parse("[[access_keys]]\nid=\"a\"\nsecret=\"b\"\nuser=\"u\"\nrole=\"r\"")
                .unwrap();
        assert!(Settings::resolve(both, &Overrides::default(), None).is_err());
        let dup = FileConfig::parse(
            "[[access_keys]]\nid=\"a\"\nsecret=\"b\"\n[[access_keys]]\nid=\"a\"\nsecret=\"c\"",
        )
        .unwrap();
        assert!(Settings::resolve(dup, &Overrides::default(), None).is_err());
    }

    #[test]
    fn identity_policies_belong_to_ram_principals_and_must_parse() {
        let allow = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}"#;
        let other =
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        let resolve = |text: String| {
            Settings::resolve(
                FileConfig::parse(&text).unwrap(),
                &Overrides::default(),
                None,
            )
        };
        let entry = |id: &str, who: &str, policy: &str| {
            format!(
                "[[access_keys]]\nid = \"{id}\"\nsecret = \"s\"\n{who}policy = '''{policy}'''\n"
            )
        };
        // A RAM user's policy is attached to the user's ARN.
        let s = resolve(entry("a", "user = \"alice\"\n", allow)).unwrap();
        assert_eq!(s.identity_policies.len(), 1);
        assert_eq!(s.identity_policies[0].0, "acs:ram::1234567890:user/alice");
        // Two keys of one user: the same policy is fine (attached once), different ones are not.
        let same =
            entry("a", "user = \"alice\"\n", allow) + &entry("b", "user = \"alice\"\n", allow);
        assert_eq!(resolve(same).unwrap().identity_policies.len(), 1);
        let differ =
            entry("a", "user = \"alice\"\n", allow) + &entry("b", "user = \"alice\"\n", other);
        assert!(resolve(differ)
            .unwrap_err()
            .0
            .contains("different policies"));
        // The owner needs none; a malformed one names its access key.
        assert!(resolve(entry("root", "", allow))
            .unwrap_err()
            .0
            .contains("owner"));
        let e = resolve(entry("bad", "role = \"r\"\n", "{}")).unwrap_err();
        assert!(e.0.contains("bad") && e.0.contains("Policy"), "{}", e.0);
        // A statement with a Principal is a resource policy, not an identity policy.
        let with_principal = r#"{"Version":"1","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
        assert!(resolve(entry("p", "user = \"u\"\n", with_principal)).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::new("topsecret", Caller::account_root("1"));
        assert!(!format!("{c:?}").contains("topsecret"));
        let f = FileConfig::parse("[[access_keys]]\nid=\"a\"\nsecret=\"topsecret\"").unwrap();
        assert!(!format!("{f:?}").contains("topsecret"));
    }
}
