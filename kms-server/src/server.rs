//! The HTTP service: one handler for Alibaba's RPC protocol over HTTP/1.1 or HTTPS (rustls),
//! background maintenance, the audit trail and graceful shutdown.
//!
//! The accept loop hands each connection to its own task: the TLS handshake (bounded by
//! [`TLS_HANDSHAKE_TIMEOUT`]) and hyper's HTTP/1.1 connection run there, so a slow client
//! never holds up the listener. At most `max_connections` are served at once (more are closed
//! when accepted), and a watchdog per connection closes it when a request's headers take
//! longer than the header timeout from their first byte or when it stays idle past the idle
//! timeout; a body must arrive within the body timeout. On SIGHUP the certificate files are
//! read again; new connections get them, open ones keep theirs.
//!
//! A request goes through: method and path check, size limits, query and form decoding
//! ([`crate::request`]), Action and Version, authentication ([`crate::auth`]), and then the
//! engine call ([`crate::dispatch`]) on the blocking pool, since redb commits fsync and RSA key
//! generation takes a while. The engine's storage commit is durable before the engine returns,
//! so an answered request survives a crash.
//!
//! Every request is logged as one line with its action, status, error code, latency, request id
//! and access key id; never parameter values, plaintext, key material or secrets. With an audit
//! trail ([`crate::audit`]) each request and each maintenance action also gets one hash-chained
//! JSON line with the non-secret parameters.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use kms_core::Principal;
use kms_core::{Caller, Kms, KmsError, StorageError};
use kms_policy::PolicyAuthorizer;
use kms_storage::{root_key_file, RedbStorage};
use tokio::sync::watch;

use crate::audit::{self, AuditEvent, AuditLog, EventType, IdentityType, UserIdentity};
use crate::auth::{Authenticator, Identity, SignedRequest};
use crate::config::{
    AuditSettings, ConfigError, ConnectionLimits, EngineSettings, Settings, STORE_FILE,
};
use crate::dispatch::{self, Reply};
use crate::replay::{PreviousStop, ReplayGuard};
use crate::request::{self, Params};
use crate::response::{new_request_id, ApiError, API_VERSION};
use crate::tls::ReloadableTls;

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a graceful shutdown waits for open connections before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long a connection told to close (idle, too slow, shutting down) may take to finish
/// what it is writing before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why the server or a CLI command could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine refused to open (wrong root key, bad region...).
    #[error("{}: {}", .0.code(), .0)]
    Engine(#[from] KmsError),
    /// The store could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The TLS files could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The audit trail could not be opened.
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The replay protection state could not be read or written.
    #[error("replay protection: {0}")]
    Replay(#[from] crate::replay::ReplayError),
    /// A socket or file problem.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Opens the engine on `<data_dir>/kms.redb`, with the root key from `--root-key-file` or
/// `<data_dir>/root.key` (created, mode 0600, on first use), authorizing calls by key policies
/// ([`kms_policy::PolicyAuthorizer`] without identity policies: the account owner has full
/// control of resources without a policy of their own; RAM users and roles only what policies
/// grant them by name). The data directory is made 0700 and the store and key files 0600,
/// whatever the umask.
///
/// Blocking (file I/O); call it from a blocking context.
///
/// Errors: the data directory, key file or store cannot be opened (the store is locked while
/// another process has it open), or the root key does not open the store's keyring.
pub fn open_engine(settings: &EngineSettings) -> Result<Kms, ServerError> {
    open_engine_with(settings, Arc::new(PolicyAuthorizer::new()))
}

/// [`open_engine`] with a given authorizer (carrying the configured identity policies).
///
/// Errors: as [`open_engine`].
pub fn open_engine_with(
    settings: &EngineSettings,
    authorizer: Arc<PolicyAuthorizer>,
) -> Result<Kms, ServerError> {
    let (storage, root_key): (Arc<dyn kms_core::Storage>, _) = match &settings.storage {
        Some(url) => open_shared_store(settings, url)?,
        None => open_embedded_store(settings)?,
    };
    let mut builder = Kms::builder()
        .shared_storage(storage)
        .authorizer(authorizer)
        .root_key(root_key)
        .region(settings.region.clone())
        .account_id(settings.account_id.clone());
    if let Some(capacity) = settings.key_cache_capacity {
        builder = builder.key_cache_capacity(capacity);
    }
    builder = builder.strict_revalidation(settings.strict_revalidation);
    if let Some(xks) = &settings.external_key_store {
        builder = builder.external_key_store(crate::xks::HttpExternalKeyStore::new(
            xks.url.clone(),
            xks.token.clone(),
            xks.timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(crate::xks::DEFAULT_TIMEOUT),
        ));
    }
    Ok(builder.build()?)
}

/// The embedded store in the data directory, and its root key (created beside it on first
/// start unless a root key file is given).
fn open_embedded_store(
    settings: &EngineSettings,
) -> Result<(Arc<dyn kms_core::Storage>, kms_core::RootKey), ServerError> {
    if check_data_dir(settings)? == DataDir::New {
        tracing::info!(data_dir = %settings.data_dir.display(), "creating a new data directory");
    }
    let root_key = match &settings.root_key_file {
        Some(path) => {
            create_private_dir(&settings.data_dir)?;
            root_key_file::load(path)?
        }
        None => root_key_file::load_or_create(&settings.data_dir)?,
    };
    // The directory first: while it is 0700 nobody else reaches the files inside, even in
    // the moment before the store's own mode is set.
    restrict_mode(&settings.data_dir, 0o700)?;
    match &settings.root_key_file {
        None => restrict_mode(&settings.data_dir.join(root_key_file::FILE_NAME), 0o600)?,
        Some(path) => warn_if_exposed(path, "the root key file"),
    }
    let store = settings.data_dir.join(STORE_FILE);
    let mut options = kms_storage::RedbOptions::default();
    if let Some(mb) = settings.store_cache_mb {
        options.cache_bytes = mb.saturating_mul(1 << 20);
    }
    let storage = RedbStorage::open_with(&store, options)?;
    restrict_mode(&store, 0o600)?;
    mark_initialized(&settings.data_dir)?;
    Ok((Arc::new(storage), root_key))
}

/// A database shared with other servers, and the root key they all seal with: it must be a
/// given file (never one made here: an instance with a root key of its own could not open what
/// the others wrote, and is refused before it writes anything).
fn open_shared_store(
    settings: &EngineSettings,
    url: &crate::config::DatabaseUrl,
) -> Result<(Arc<dyn kms_core::Storage>, kms_core::RootKey), ServerError> {
    let Some(path) = &settings.root_key_file else {
        return Err(ServerError::Io {
            context: format!(
                "use the shared storage {}: every instance must seal with the same root key; \
                 give it with --root-key-file (config: root_key_file)",
                url.redacted()
            ),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no root key file given"),
        });
    };
    let root_key = root_key_file::load(path)?;
    warn_if_exposed(path, "the root key file");
    // The data directory still holds this instance's own state (the replay cache).
    create_private_dir(&settings.data_dir)?;
    restrict_mode(&settings.data_dir, 0o700)?;
    let storage = kms_storage::PostgresStorage::connect(&url.0)?;
    tracing::info!(database = %storage.target(), "using a shared database");
    Ok((Arc::new(storage), root_key))
}

/// What a data directory holds before the engine opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// Nothing of a store yet: this start creates the root key and the store.
    New,
    /// A store and its root key.
    Existing,
}

/// Refuses to open a data directory that lost part of itself, so that a lost store is never
/// silently replaced by an empty one and a lost root key never by a new one:
///
/// - a store (`kms.redb`) whose root key (`root.key`, or `--root-key-file`) is missing;
/// - an empty (0-byte) or missing store in a directory that held one (the
///   [`INITIALIZED_MARKER`] written once store and root key both existed, or replay state).
///
/// A directory that never held a store is new (the first start, or `kms init`, creates it),
/// also when a first start was cut short after writing the root key, or the root key was
/// provisioned ahead of it.
///
/// Errors: `ServerError::Io` naming the file and what to do.
pub fn check_data_dir(settings: &EngineSettings) -> Result<DataDir, ServerError> {
    let dir = &settings.data_dir;
    let store = dir.join(STORE_FILE);
    let key = settings
        .root_key_file
        .clone()
        .unwrap_or_else(|| dir.join(root_key_file::FILE_NAME));
    let refuse = |path: &Path, what: String| ServerError::Io {
        context: format!("refusing to open {}", path.display()),
        source: std::io::Error::other(what),
    };
    let store_len = match std::fs::metadata(&store) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ServerError::Io {
                context: format!("read {}", store.display()),
                source,
            })
        }
    };
    let key_exists = key.exists();
    // A directory held a store once its store and root key both existed (the marker), or once
    // a server ran on it (replay state). A root key alone is a first start cut short, or one
    // provisioned ahead of it.
    let held_a_store =
        dir.join(INITIALIZED_MARKER).exists() || dir.join(crate::replay::STATE_FILE).exists();
    match store_len {
        Some(0) if !held_a_store => Ok(DataDir::New),
        Some(0) => Err(refuse(
            &store,
            "the store is empty (0 bytes): it was truncated; restore it from a backup (an \
             empty store would answer every key as not found)"
                .into(),
        )),
        Some(_) if !key_exists => Err(refuse(
            &store,
            format!(
                "its root key {} is missing: restore it from a backup (a new root key cannot \
                 open this store, so none is created)",
                key.display()
            ),
        )),
        Some(_) => Ok(DataDir::Existing),
        None if held_a_store => Err(refuse(
            &store,
            format!(
                "the store is missing from {}, which held one (its root key or replay state \
                 is there): restore kms.redb from a backup, or move the directory aside to \
                 start afresh",
                dir.display()
            ),
        )),
        None => Ok(DataDir::New),
    }
}

/// Written into a data directory once its root key and store both exist: from then on, a
/// missing or empty store there is a loss, not a first start.
pub const INITIALIZED_MARKER: &str = "kms.initialized";

fn mark_initialized(dir: &Path) -> Result<(), ServerError> {
    let path = dir.join(INITIALIZED_MARKER);
    if path.exists() {
        return Ok(());
    }
    crate::replay::write_atomically(&path, b"").map_err(|source| ServerError::Io {
        context: format!("write {}", path.display()),
        source,
    })
}

/// Sets a file's or directory's mode to `mode` when it grants more (group or other bits).
fn restrict_mode(path: &Path, mode: u32) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| ServerError::Io {
            context: format!("read the mode of {}", path.display()),
            source,
        })?;
        let current = meta.permissions().mode() & 0o777;
        if current & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(
                |source| ServerError::Io {
                    context: format!("set mode {mode:o} on {}", path.display()),
                    source,
                },
            )?;
            tracing::warn!(
                path = %path.display(),
                was = format!("{current:o}"),
                now = format!("{mode:o}"),
                "tightened permissions"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Warns when a secret file the operator placed (an explicit root key, a TLS key) can be read
/// by other users; it is theirs to fix, so it is not changed.
pub(crate) fn warn_if_exposed(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "{what} can be read by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| ServerError::Io {
        context: format!("create directory {}", dir.display()),
        source,
    })
}

/// Limit on the query string. hyper itself answers a bare `414` for a request target over
/// 65534 bytes; below that this server answers its own JSON `RequestTooLarge`.
pub const MAX_QUERY_BYTES: usize = 60 * 1024;

/// The audit trail as the server uses it.
pub(crate) struct Audit {
    log: AuditLog,
    fail_closed: bool,
    /// The last line could not be written: in fail-closed mode, refuse before acting.
    failing: AtomicBool,
}

impl Audit {
    /// Writes one line; its eventId, or `Err` (logged) when it could not be written.
    pub(crate) fn record(&self, event: &AuditEvent, now: kms_core::UnixTime) -> Result<String, ()> {
        match self.log.record(event, now) {
            Ok(id) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::warn!(path = %self.log.path().display(), "audit trail writable again");
                }
                Ok(id)
            }
            Err(e) => {
                self.failing.store(true, Ordering::Release);
                tracing::error!(error = %e, event = %event.event_name, "audit line not written");
                Err(())
            }
        }
    }
}

/// What every request handler shares.
pub(crate) struct AppState {
    pub(crate) kms: Arc<Kms>,
    auth: Authenticator,
    max_bytes: usize,
    pub(crate) body_read_timeout: Duration,
    max_header_bytes: usize,
    pub(crate) audit: Option<Arc<Audit>>,
    rate_limiter: Option<crate::ratelimit::RateLimiter>,
    pub(crate) metrics: crate::metrics::Metrics,
    serve_metrics: bool,
    /// Symmetric cryptography runs on the async worker (no external key store and no shared
    /// database configured: nothing it does waits on the network).
    inline_crypto: bool,
    /// The store is a database other instances share: follow its change log, and run
    /// maintenance only while holding its lease.
    shared_store: Option<SharedStore>,
    maintenance: std::sync::Mutex<MaintenanceStatus>,
}

/// This instance's part in a database shared with other instances.
#[derive(Debug, Clone)]
struct SharedStore {
    /// Names this instance as the maintenance lease's holder.
    instance_id: String,
    /// How often the change log is followed.
    coherence: Duration,
}

/// How the last maintenance pass went, for `/health`.
#[derive(Debug, Clone, Default)]
struct MaintenanceStatus {
    /// When it ran and its error, if it failed.
    last: Option<(kms_core::UnixTime, Option<String>)>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    instance_listener: Option<tokio::net::TcpListener>,
    state: Arc<AppState>,
    tls: Option<Arc<ReloadableTls>>,
    maintenance_interval: Duration,
    limits: ConnectionLimits,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("instance_listener", &self.instance_listener)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

fn join_error(e: tokio::task::JoinError) -> ServerError {
    ServerError::Engine(KmsError::internal(e.to_string()))
}

impl Server {
    /// Opens the engine, the audit trail and the replay state, loads the TLS files, and binds
    /// the listen address.
    ///
    /// Errors: as [`open_engine`]; a malformed identity policy; TLS files that do not load;
    /// an audit trail or replay state that cannot be opened; the address cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self, ServerError> {
        let authorizer = Arc::new(PolicyAuthorizer::new());
        for (principal, document) in &settings.identity_policies {
            authorizer
                .attach_identity_policy(principal, document)
                .map_err(|e| {
                    ServerError::Config(ConfigError(format!(
                        "the identity policy of {principal}: {e}"
                    )))
                })?;
        }
        let engine = settings.engine.clone();
        let store_existed = engine.data_dir.join(STORE_FILE).exists();
        let kms = tokio::task::spawn_blocking(move || open_engine_with(&engine, authorizer))
            .await
            .map_err(join_error)??;
        if let Some(files) = &settings.tls {
            warn_if_exposed(&files.key, "the TLS private key");
        }
        let tls = match settings.tls.clone() {
            Some(files) => Some(Arc::new(
                tokio::task::spawn_blocking(move || ReloadableTls::load(files))
                    .await
                    .map_err(join_error)??,
            )),
            None => None,
        };
        let audit = match &settings.audit {
            Some(AuditSettings {
                path,
                fail_closed,
                sync,
            }) => {
                let log = AuditLog::open_with(path, crate::audit::AuditOptions { sync: *sync })?;
                Some(Arc::new(Audit {
                    log,
                    fail_closed: *fail_closed,
                    failing: AtomicBool::new(false),
                }))
            }
            None => None,
        };
        let capacity = settings.nonce_cache_capacity;
        let keys = settings.access_keys;
        let rate_limiter = settings.rate_limits.any().then(|| {
            crate::ratelimit::RateLimiter::new(settings.rate_limits, keys.ids(), Instant::now())
        });
        let replay = if settings.persist_replay_state {
            let (guard, previous) = ReplayGuard::open(
                &settings.engine.data_dir,
                keys.ids(),
                capacity,
                kms.now().secs(),
                store_existed,
            )?;
            match previous {
                PreviousStop::None => {}
                PreviousStop::Clean { loaded } => {
                    tracing::info!(
                        nonces = loaded,
                        "replay protection: nonces of the last run loaded"
                    )
                }
                PreviousStop::Unclean { floor } => tracing::warn!(
                    refused_through = %kms_core::UnixTime(floor),
                    "replay protection: the last run did not stop cleanly; requests signed at \
                     or before this time are refused"
                ),
            }
            guard
        } else {
            ReplayGuard::in_memory(keys.ids(), capacity)
        };
        raise_open_file_limit(settings.connections.max_connections);
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("bind {}", settings.listen),
                source,
            })?;
        let instance_listener =
            match settings.instance_listen {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                    |source| ServerError::Io {
                        context: format!("bind {addr} (the instance gateway)"),
                        source,
                    },
                )?),
                None => None,
            };
        Ok(Server {
            listener,
            instance_listener,
            state: Arc::new(AppState {
                kms: Arc::new(kms),
                auth: Authenticator::with_replay_guard(keys, replay),
                max_bytes: settings.max_body_bytes,
                body_read_timeout: settings.connections.body_read_timeout,
                max_header_bytes: settings.connections.max_header_bytes.max(8192),
                audit,
                rate_limiter,
                metrics: crate::metrics::Metrics::new(),
                serve_metrics: settings.metrics,
                inline_crypto: settings.engine.external_key_store.is_none()
                    && settings.engine.storage.is_none(),
                shared_store: settings.engine.storage.as_ref().map(|_| SharedStore {
                    instance_id: kms_core::new_request_id(),
                    coherence: settings.engine.cache_coherence,
                }),
                maintenance: std::sync::Mutex::new(MaintenanceStatus::default()),
            }),
            tls,
            maintenance_interval: settings.maintenance_interval,
            limits: settings.connections,
        })
    }

    /// The bound address (useful with port 0).
    ///
    /// Errors: the socket's address cannot be read.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener
            .local_addr()
            .map_err(|source| ServerError::Io {
                context: "read the listen address".into(),
                source,
            })
    }

    /// The instance gateway's bound address, when it is served.
    ///
    /// Errors: the socket's address cannot be read.
    pub fn instance_addr(&self) -> Result<Option<SocketAddr>, ServerError> {
        self.instance_listener
            .as_ref()
            .map(|l| {
                l.local_addr().map_err(|source| ServerError::Io {
                    context: "read the instance gateway's address".into(),
                    source,
                })
            })
            .transpose()
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight (for at most
    /// [`SHUTDOWN_GRACE`]), stops maintenance, saves the replay state and closes the store.
    ///
    /// Errors: none after start; a failing accept is logged and retried.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let maintenance = tokio::spawn(maintenance_loop(
            self.state.clone(),
            self.maintenance_interval,
            stop_rx.clone(),
        ));
        let coherence = tokio::spawn(coherence_loop(self.state.clone(), stop_rx.clone()));
        let reloads = tokio::spawn(reload_on_sighup(self.tls.clone(), stop_rx));
        let (closing_tx, closing_rx) = watch::channel(false);
        let max = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        let slots = Arc::new(tokio::sync::Semaphore::new(max as usize));
        let instance = self.instance_listener.map(|listener| {
            let mut closing = closing_rx.clone();
            let stop = async move {
                while !*closing.borrow() {
                    if closing.changed().await.is_err() {
                        break;
                    }
                }
            };
            tokio::spawn(accept_connections(
                listener,
                Listener::Instance,
                self.state.clone(),
                self.tls.clone(),
                self.limits,
                slots.clone(),
                closing_rx.clone(),
                stop,
            ))
        });
        accept_connections(
            self.listener,
            Listener::Api,
            self.state.clone(),
            self.tls.clone(),
            self.limits,
            slots.clone(),
            closing_rx,
            shutdown,
        )
        .await;
        tracing::info!("shutdown requested; finishing requests in flight");
        let _ = closing_tx.send(true);
        if let Some(task) = instance {
            let _ = task.await;
        }
        // Every connection holds a slot until it ends: all slots back means all closed.
        if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(max))
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
        }
        // Stop maintenance and wait for a pass in progress to finish its commit.
        let _ = stop_tx.send(true);
        let _ = maintenance.await;
        let _ = coherence.await;
        let _ = reloads.await;
        let state = self.state.clone();
        let saved = tokio::task::spawn_blocking(move || {
            state.auth.replay_guard().save(state.kms.now().secs())
        })
        .await;
        match saved {
            Ok(Ok(n)) => tracing::debug!(nonces = n, "replay protection state saved"),
            Ok(Err(e)) => tracing::warn!(error = %e, "replay protection state not saved"),
            Err(e) => tracing::warn!(error = %e, "replay protection state not saved"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Which API a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// The OpenAPI (RPC, JSON).
    Api,
    /// The instance gateway (protobuf, client keys).
    Instance,
}

/// Accepts connections until `stop` completes; the connections share `slots` (one
/// `max_connections` over every listener).
#[allow(clippy::too_many_arguments)]
async fn accept_connections(
    listener: tokio::net::TcpListener,
    kind: Listener,
    state: Arc<AppState>,
    tls: Option<Arc<ReloadableTls>>,
    limits: ConnectionLimits,
    slots: Arc<tokio::sync::Semaphore>,
    closing_rx: watch::Receiver<bool>,
    stop: impl Future<Output = ()>,
) {
    let mut refused: u64 = 0;
    let mut last_refusal_log: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: close it at once rather than leave it waiting in the backlog.
            drop(stream);
            state.metrics.refused_connection();
            refused += 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection refused: the server holds its maximum of connections"
                );
                last_refusal_log = Some(Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let closing = closing_rx.clone();
        match &tls {
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(tls_stream, peer, kind, state, limits, closing).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
            None => {
                tokio::spawn(async move {
                    let _slot = slot;
                    serve_connection(stream, peer, kind, state, limits, closing).await;
                });
            }
        }
    }
}

/// What a connection's watchdog knows of it.
///
/// The watchdog sleeps until the earliest time the connection could be due for closing and
/// then looks again; it is woken early only when a deadline moves before that time (the
/// first bytes of a request's head arrive on an idle connection). Requests starting and
/// ending move the deadline later, which the next look finds, so a busy keep-alive connection
/// costs the watchdog nothing per request.
#[derive(Debug)]
struct Activity {
    state: std::sync::Mutex<ActivityState>,
    /// Wakes the watchdog when its deadline moved before the time it sleeps until.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    /// Requests being handled.
    in_flight: usize,
    /// When the connection last became idle (accepted, or its last request handled).
    idle_since: Instant,
    /// When the first byte of the next request arrived, while idle.
    head_started: Option<Instant>,
    /// When the watchdog looks next (`None` before its first look).
    armed: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: std::sync::Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                armed: None,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ActivityState) -> R) -> R {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s)
    }

    fn bytes_read(&self, limits: &ConnectionLimits) {
        let earlier = self.with(|s| {
            if s.in_flight == 0 && s.head_started.is_none() {
                let now = Instant::now();
                s.head_started = Some(now);
                s.armed
                    .is_some_and(|t| now + limits.header_read_timeout < t)
            } else {
                false
            }
        });
        if earlier {
            self.changed.notify_one();
        }
    }

    /// A request's head is complete and its handling starts.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.with(|s| {
            s.in_flight += 1;
            s.head_started = None;
        });
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing changes: headers that take too long,
    /// or too long idle. `None` while a request is being handled.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        self.with(|s| Self::deadline_of(s, limits))
    }

    fn deadline_of(s: &ActivityState, limits: &ConnectionLimits) -> Option<Instant> {
        if s.in_flight > 0 {
            return None;
        }
        Some(match s.head_started {
            Some(t) => t + limits.header_read_timeout,
            None => s.idle_since + limits.idle_timeout,
        })
    }

    /// When the watchdog should look next, recorded so that only an earlier deadline wakes
    /// it: the deadline, or while a request is handled, the earliest the connection could
    /// fall idle for too long.
    fn arm(&self, limits: &ConnectionLimits) -> Instant {
        self.with(|s| {
            let at = Self::deadline_of(s, limits)
                .unwrap_or_else(|| Instant::now() + limits.idle_timeout);
            s.armed = Some(at);
            at
        })
    }
}

/// A request being handled; dropping it (the handler finished or was cancelled) makes the
/// connection idle again when it was the last.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The idle deadline this starts is at least idle_timeout away, no earlier than the
        // watchdog's next look (armed while the request ran): no need to wake it.
        self.0.with(|s| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.head_started = None;
            }
        });
    }
}

/// A connection's stream that tells its [`Activity`] when bytes arrive.
struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read(&self.limits);
        }
        polled
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves one connection's HTTP/1.1 requests (keep-alive) until it closes, stays idle or
/// sends its headers too slowly, or the server shuts down.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    kind: Listener,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let metrics_state = state.clone();
    let _open = metrics_state.metrics.connection();
    let activity = Arc::new(Activity::new());
    let io = TrackedIo {
        inner: io,
        activity: activity.clone(),
        limits,
    };
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let in_flight = requests.begin();
        async move {
            let response = match kind {
                Listener::Api => handle(state, peer, req.map(Body::new)).await,
                Listener::Instance => {
                    crate::instance::handle(state, peer, req.map(Body::new)).await
                }
            };
            drop(in_flight);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // A backstop: the watchdog below closes slow or idle connections first.
        .header_read_timeout(limits.header_read_timeout + limits.idle_timeout)
        .max_header_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut close_by: Option<Instant> = None;
    loop {
        let wake = Some(tokio::time::Instant::from_std(
            close_by.unwrap_or_else(|| activity.arm(&limits)),
        ));
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            // A deadline moved before the armed look (a request's head started): recompute.
            () = activity.changed.notified() => {}
            changed = closing.changed(), if close_by.is_none() => {
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
            () = sleep_until_or_forever(wake) => {
                if close_by.is_some_and(|t| Instant::now() >= t) {
                    tracing::debug!(peer = %peer, "connection dropped");
                    return;
                }
                if activity
                    .deadline(&limits)
                    .is_some_and(|t| Instant::now() >= t)
                {
                    tracing::debug!(peer = %peer, "closing a slow or idle connection");
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(Instant::now() + CLOSE_GRACE);
                }
            }
        }
    }
}

async fn sleep_until_or_forever(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Raises the open-file limit to the hard limit, and warns when it is still below what
/// `max_connections` needs.
fn raise_open_file_limit(max_connections: usize) {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let needed = max_connections as u64 + 64;
            if limit < needed {
                tracing::warn!(
                    open_file_limit = limit,
                    max_connections,
                    "the open-file limit is below max_connections: raise it (ulimit -n) or \
                     lower max_connections"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}

/// Reloads the TLS files on each SIGHUP until `stop`.
async fn reload_on_sighup(tls: Option<Arc<ReloadableTls>>, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; certificates reload only on restart");
            return;
        };
        loop {
            tokio::select! {
                received = hup.recv() => {
                    if received.is_none() {
                        return;
                    }
                }
                _ = stop.changed() => return,
            }
            let Some(tls) = tls.clone() else {
                tracing::info!("SIGHUP: nothing to reload (no TLS)");
                continue;
            };
            match tokio::task::spawn_blocking(move || tls.reload()).await {
                Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificate")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tls;
        let _ = stop.changed().await;
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn maintenance_loop(state: Arc<AppState>, every: Duration, mut stop: watch::Receiver<bool>) {
    let kms = state.kms.clone();
    let audit = state.audit.clone();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some(a) = audit.as_ref().filter(|a| a.fail_closed) {
            if a.failing.load(Ordering::Acquire) {
                tracing::warn!("maintenance skipped: the audit trail cannot be written");
                continue;
            }
        }
        if let Some(shared) = &state.shared_store {
            // One instance at a time; the lease outlives a few missed passes, then moves.
            let ttl = every.saturating_mul(3).max(Duration::from_secs(10));
            let (engine, holder) = (kms.clone(), shared.instance_id.clone());
            let held =
                tokio::task::spawn_blocking(move || engine.try_lease("maintenance", &holder, ttl))
                    .await;
            match held {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::debug!("maintenance: another instance holds the lease");
                    // What this instance noted for ListKeyAssociations is written all the same.
                    let engine = kms.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || engine.flush_key_associations()).await
                    {
                        tracing::warn!(code = e.code(), error = %e, "key associations not written");
                    }
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(code = e.code(), error = %e, "maintenance: the lease cannot be read");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "maintenance lease task failed");
                    continue;
                }
            }
        }
        let engine = kms.clone();
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || engine.run_maintenance(engine.now())).await {
            Ok(Ok(report)) => {
                let work = report.purged_keys.len()
                    + report.rotated_keys.len()
                    + report.expired_material_keys.len()
                    + report.expired_import_tokens;
                if work == 0 {
                    tracing::debug!(latency_us = elapsed_us(started), "maintenance: nothing due");
                } else {
                    tracing::info!(
                        purged = report.purged_keys.len(),
                        rotated = report.rotated_keys.len(),
                        expired_material = report.expired_material_keys.len(),
                        expired_import_tokens = report.expired_import_tokens,
                        latency_us = elapsed_us(started),
                        "maintenance"
                    );
                }
                if let Some(audit) = &audit {
                    for event in maintenance_events(&kms, &report) {
                        let _ = audit.record(&event, kms.now());
                    }
                }
                for (key, code) in &report.failed_keys {
                    tracing::warn!(key_id = %key, code, "maintenance: a key could not be looked after; retried next pass");
                }
                if report.corrupt_records > 0 {
                    tracing::warn!(
                        records = report.corrupt_records,
                        "records fail to open and are skipped; kms fsck lists them"
                    );
                }
                state.metrics.maintenance(true, report.corrupt_records);
                set_maintenance(&state, None);
            }
            Ok(Err(e)) => {
                tracing::warn!(code = e.code(), error = %e, "maintenance failed");
                state.metrics.maintenance(false, 0);
                set_maintenance(&state, Some(format!("{}: {e}", e.code())));
            }
            Err(e) => {
                tracing::warn!(error = %e, "maintenance task failed");
                state.metrics.maintenance(false, 0);
                set_maintenance(&state, Some(format!("the maintenance task failed: {e}")));
            }
        }
    }
}

/// Follows a shared database's change log, so that what other instances change leaves this
/// instance's caches within `cache_coherence_ms` (plus one read of the log).
async fn coherence_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let Some(shared) = state.shared_store.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(shared.coherence);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Past this since the start of the last read of the log that succeeded, nothing cached is
    // trusted: what another instance changed meanwhile is unknown. A read that hangs (the
    // database unreachable) counts as failing from its start.
    let stale_after = shared
        .coherence
        .saturating_mul(5)
        .max(Duration::from_secs(1));
    let mut fresh_as_of = Instant::now();
    let mut reading: Option<(Instant, tokio::task::JoinHandle<Result<usize, KmsError>>)> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some((started, handle)) = reading.take() {
            if !handle.is_finished() {
                reading = Some((started, handle));
            } else {
                match handle.await {
                    Ok(Ok(_)) => {
                        fresh_as_of = started;
                        if std::mem::take(&mut failing) {
                            tracing::info!("the change log is followed again");
                        }
                    }
                    Ok(Err(e)) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(code = e.code(), error = %e, "the change log cannot be read; retrying");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "change log task failed"),
                }
            }
        }
        if reading.is_none() {
            let engine = state.kms.clone();
            reading = Some((
                Instant::now(),
                tokio::task::spawn_blocking(move || engine.follow_changes()),
            ));
        }
        if fresh_as_of.elapsed() >= stale_after {
            state.kms.clear_caches();
        }
    }
}

fn set_maintenance(state: &AppState, error: Option<String>) {
    let mut m = state
        .maintenance
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.last = Some((state.kms.now(), error));
}

/// `GET /health`: 200 `{"status":"ok",...}` when the store answers, the root key is loaded
/// (the engine could not run without it) and the last maintenance pass succeeded; 503 with the
/// reasons otherwise. No authentication, no secrets.
fn health(state: &AppState) -> (u16, Vec<u8>) {
    let mut problems = Vec::new();
    let store = match state.kms.check_storage() {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            problems.push(format!("the store does not answer: {}", e.code()));
            "unreachable".to_owned()
        }
    };
    let last = state
        .maintenance
        .lock()
        .map(|m| m.last.clone())
        .unwrap_or_default();
    let maintenance = match &last {
        None => serde_json::json!({"lastRun": null}),
        Some((at, None)) => serde_json::json!({"lastRun": at.to_string(), "ok": true}),
        Some((at, Some(error))) => {
            problems.push(format!("the last maintenance pass failed: {error}"));
            serde_json::json!({"lastRun": at.to_string(), "ok": false, "error": error})
        }
    };
    let cache = state.kms.cache_stats();
    let body = serde_json::json!({
        "status": if problems.is_empty() { "ok" } else { "unavailable" },
        "store": store,
        "rootKey": "loaded",
        "maintenance": maintenance,
        "cachedKeys": cache.keys,
        // Isolated, not fatal: lists skip them; `kms fsck` lists them.
        "corruptRecords": state.kms.corrupt_records().len(),
        "problems": problems,
    });
    let status = if problems.is_empty() { 200 } else { 503 };
    (status, body.to_string().into_bytes())
}

/// One audit event per maintenance action of a pass.
fn maintenance_events(kms: &Kms, report: &kms_core::api::MaintenanceReport) -> Vec<AuditEvent> {
    let scope = kms.scope();
    let event = |name: &str, resource: String, error: Option<&str>| AuditEvent {
        event_name: name.to_owned(),
        event_type: EventType::ServiceEvent,
        request_id: new_request_id(),
        region: scope.region.clone(),
        resources: vec![resource],
        error_code: error.map(str::to_owned),
        ..AuditEvent::default()
    };
    let mut out = Vec::new();
    for k in &report.purged_keys {
        out.push(event("PurgeKey", scope.key_arn(k), None));
    }
    for k in &report.rotated_keys {
        out.push(event("RotateKey", scope.key_arn(k), None));
    }
    for k in &report.expired_material_keys {
        out.push(event("ExpireKeyMaterial", scope.key_arn(k), None));
    }
    for s in &report.purged_secrets {
        out.push(event("PurgeSecret", scope.secret_arn(s), None));
    }
    for s in &report.rotated_secrets {
        out.push(event("RotateSecret", scope.secret_arn(s), None));
    }
    for (s, code) in &report.failed_secret_rotations {
        out.push(event("RotateSecret", scope.secret_arn(s), Some(code)));
    }
    if report.expired_import_tokens > 0 {
        let mut e = event("ExpireImportTokens", "*".to_owned(), None);
        e.resources.clear();
        e.request_parameters.insert(
            "Count".into(),
            serde_json::Value::from(report.expired_import_tokens),
        );
        out.push(e);
    }
    out
}

fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A caller-supplied name (action, access key id) made safe for a log line: at most 64
/// characters, anything but ASCII letters, digits and `-_.:/` replaced by `?`, so a request
/// cannot forge log lines.
fn loggable(value: Option<&str>) -> String {
    match value {
        None | Some("") => "-".to_owned(),
        Some(v) => v
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.:/".contains(c) {
                    c
                } else {
                    '?'
                }
            })
            .collect(),
    }
}

/// What the request log line and the audit line say about a request besides its outcome.
#[derive(Default)]
struct LogFields {
    action: Option<String>,
    access_key_id: Option<String>,
    identity: Option<Identity>,
    /// The non-secret parameters and the resources they name (only with an audit trail).
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
    resources: Vec<String>,
    /// The RequestId an error answer carries (and its audit line).
    error_request_id: String,
    /// The eventId of the `Started` line of a fail-closed request.
    started_event_id: Option<String>,
}

async fn handle(state: Arc<AppState>, peer: SocketAddr, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let host_id = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("kms")
        .to_owned();
    if parts.method == Method::GET {
        let path = parts.uri.path();
        if path == "/health" {
            // A store read: on the blocking pool, like every other one that may wait.
            let probe = state.clone();
            let (status, body) = tokio::task::spawn_blocking(move || health(&probe))
                .await
                .unwrap_or_else(|_| (500, b"{\"status\":\"unavailable\"}".to_vec()));
            return plain_response(status, "application/json;charset=utf-8", body);
        }
        if path == "/metrics" && state.serve_metrics {
            let text = state.metrics.render(state.kms.cache_stats());
            return plain_response(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text.into_bytes(),
            );
        }
    }
    let mut log = LogFields {
        error_request_id: state.kms.request_id(),
        ..LogFields::default()
    };
    let outcome = process(&state, &parts, body, &mut log, peer).await;
    if let Some(audit) = &state.audit {
        let event = audit_event(&state.kms, &parts, peer, &log, &outcome);
        // Fail-closed requests were recorded before they were carried out; a failure to
        // record the outcome is logged, and the answer stays the truth.
        let _ = audit.record(&event, state.kms.now());
    }
    let (status, request_id, code, body) = match outcome {
        Ok(Reply { request_id, body }) => (200, request_id, None, body),
        Err(e) => {
            if e.status >= 500 {
                // What failed, for the operator: server-side faults carry no caller secrets.
                tracing::error!(code = %e.code, status = e.status, message = %e.message, "request failed");
            }
            let id = log.error_request_id.clone();
            let body = e.body(&id, &host_id);
            (e.status, id, Some(e.code), body)
        }
    };
    let action_label = match log.action.as_deref() {
        Some(a) if dispatch::is_action(a) => a,
        _ => "unknown",
    };
    state.metrics.request(
        action_label,
        code.as_deref().unwrap_or("OK"),
        started.elapsed().as_secs_f64(),
    );
    tracing::info!(
        action = %loggable(log.action.as_deref()),
        status,
        code = %code.as_deref().unwrap_or("-"),
        latency_us = elapsed_us(started),
        request_id = %request_id,
        access_key_id = %loggable(log.access_key_id.as_deref()),
        "request"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-acs-request-id", v);
    }
    response
}

fn plain_response(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The audit line of one request.
fn audit_event(
    kms: &Kms,
    parts: &axum::http::request::Parts,
    peer: SocketAddr,
    log: &LogFields,
    outcome: &Result<Reply, ApiError>,
) -> AuditEvent {
    let scope = kms.scope();
    let identity = log.identity.as_ref().map(user_identity);
    // Before authentication only the outcome is recorded: an anonymous client chooses neither
    // the parameters nor the resources the trail shows, and costs it little.
    let authenticated = identity.is_some();
    let mut resources = if authenticated {
        log.resources.clone()
    } else {
        Vec::new()
    };
    let (request_id, error_code, error_message) = match outcome {
        Ok(reply) => {
            for arn in response_resources(kms, &reply.body) {
                if !resources.contains(&arn) {
                    resources.push(arn);
                }
            }
            (reply.request_id.clone(), None, None)
        }
        Err(e) => (
            log.error_request_id.clone(),
            Some(e.code.to_string()),
            Some(e.message.clone()),
        ),
    };
    AuditEvent {
        event_name: log.action.clone().unwrap_or_default(),
        event_type: EventType::ApiCall,
        request_id,
        region: scope.region.clone(),
        identity,
        source_ip: Some(peer.ip().to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        request_parameters: if authenticated {
            log.parameters.clone().unwrap_or_default()
        } else {
            serde_json::Map::new()
        },
        resources,
        error_code,
        error_message,
        event_phase: None,
        related_event_id: log.started_event_id.clone(),
    }
}

/// ActionTrail's userIdentity of an authenticated caller.
pub fn user_identity(identity: &Identity) -> UserIdentity {
    caller_identity(&identity.caller, &identity.access_key_id)
}

/// ActionTrail's userIdentity of a caller authenticated with `access_key_id` (an access key,
/// or an application's client key).
pub fn caller_identity(caller: &Caller, access_key_id: &str) -> UserIdentity {
    let (kind, principal, user_name) = match &caller.principal {
        Principal::Root => (IdentityType::RootAccount, caller.account_id.clone(), None),
        Principal::User(n) => (IdentityType::RamUser, n.clone(), Some(n.clone())),
        Principal::Role(n) => (IdentityType::AssumedRole, n.clone(), Some(n.clone())),
        Principal::AccessPoint(a) => (
            IdentityType::AccessPoint,
            a.name.clone(),
            Some(a.name.clone()),
        ),
    };
    UserIdentity {
        kind,
        account_id: caller.account_id.clone(),
        principal_id: principal,
        access_key_id: Some(access_key_id.to_owned()),
        user_name,
    }
}

/// The ARNs a request's parameters name.
fn request_resources(kms: &Kms, params: &Params) -> Vec<String> {
    let scope = kms.scope();
    let mut out = Vec::new();
    let mut add = |arn: String| {
        if !out.contains(&arn) {
            out.push(arn);
        }
    };
    for name in [
        "KeyId",
        "TargetKeyId",
        "DestinationKeyId",
        "EncryptionKeyId",
    ] {
        if let Some(v) = params.get(name).filter(|v| !v.is_empty()) {
            add(key_ref_arn(scope, v));
        }
    }
    if let Some(v) = params.get("AliasName").filter(|v| !v.is_empty()) {
        add(scope.alias_arn(v));
    }
    if let Some(v) = params.get("SecretName").filter(|v| !v.is_empty()) {
        add(scope.secret_arn(v));
    }
    if let Some(v) = params.get("CertificateId").filter(|v| !v.is_empty()) {
        add(scope.certificate_arn(v));
    }
    out
}

/// A key reference (id, ARN, alias, alias ARN) as an ARN.
fn key_ref_arn(scope: &kms_core::ArnScope, reference: &str) -> String {
    if reference.starts_with("acs:") {
        reference.to_owned()
    } else if reference.starts_with("alias/") {
        scope.alias_arn(reference)
    } else {
        scope.key_arn(reference)
    }
}

/// The ARNs a successful response names (Decrypt's KeyId, CreateKey's key...).
fn response_resources(kms: &Kms, body: &[u8]) -> Vec<String> {
    let scope = kms.scope();
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let key_id = map
        .get("KeyId")
        .or_else(|| map.get("KeyMetadata").and_then(|m| m.get("KeyId")));
    if let Some(serde_json::Value::String(k)) = key_id {
        out.push(key_ref_arn(scope, k));
    }
    if let Some(serde_json::Value::String(s)) = map.get("SecretName") {
        out.push(scope.secret_arn(s));
    }
    if let Some(serde_json::Value::String(c)) = map.get("CertificateId") {
        out.push(scope.certificate_arn(c));
    }
    out
}

async fn process(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
    log: &mut LogFields,
    peer: SocketAddr,
) -> Result<Reply, ApiError> {
    // hyper bounds a head that arrives in pieces; this bounds one that arrived whole.
    let head_bytes = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + parts
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_bytes > state.max_header_bytes {
        return Err(ApiError::new(
            431,
            "RequestHeaderFieldsTooLarge",
            format!(
                "the request line and headers are {head_bytes} bytes; at most {} are accepted",
                state.max_header_bytes
            ),
        ));
    }
    if parts.method != Method::POST && parts.method != Method::GET {
        return Err(ApiError::method_not_allowed(parts.method.as_str()));
    }
    if parts.uri.path() != "/" {
        return Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!(
                "there is no API at {}; send requests to /",
                parts.uri.path()
            ),
        ));
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let query_limit = state.max_bytes.min(MAX_QUERY_BYTES);
    if raw_query.len() > query_limit {
        return Err(ApiError::too_large("query string", query_limit));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_bytes as u64) {
        return Err(ApiError::too_large("body", state.max_bytes));
    }
    let bytes = match tokio::time::timeout(
        state.body_read_timeout,
        axum::body::to_bytes(body, state.max_bytes),
    )
    .await
    {
        Ok(read) => read.map_err(|_| ApiError::too_large("body", state.max_bytes))?,
        Err(_) => {
            return Err(ApiError::new(
                408,
                "RequestTimeout",
                format!(
                    "the request body did not arrive within {} s",
                    state.body_read_timeout.as_secs()
                ),
            ))
        }
    };
    let query = request::parse_form("QueryString", raw_query.as_bytes())?;
    let form = if bytes.is_empty() {
        Params::default()
    } else {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/x-www-form-urlencoded");
        if !content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return Err(ApiError::invalid(
                "Content-Type",
                "a request body must be application/x-www-form-urlencoded",
            ));
        }
        request::parse_form("Body", &bytes)?
    };
    let params = request::merge(&query, form)?;

    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let action = one_of("Action", header_text("x-acs-action"), params.get("Action"))?
        .ok_or_else(|| ApiError::missing("Action"))?;
    log.action = Some(action.clone());
    if state.audit.is_some() {
        log.parameters = Some(audit::safe_parameters(params.iter()));
        log.resources = request_resources(&state.kms, &params);
    }
    let version = one_of(
        "Version",
        header_text("x-acs-version"),
        params.get("Version"),
    )?
    .ok_or_else(|| ApiError::missing("Version"))?;
    if version != API_VERSION {
        return Err(ApiError::invalid_version(&version));
    }
    if !dispatch::is_action(&action) {
        return Err(ApiError::unknown_action(&action));
    }

    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers: &headers,
        query: &query,
        params: &params,
        body: &bytes,
    };
    log.access_key_id = crate::auth::claimed_access_key_id(&signed);
    let identity = state.auth.authenticate(&signed, state.kms.now())?;
    log.identity = Some(identity.clone());
    if let Some(limiter) = &state.rate_limiter {
        limiter.check(&identity.access_key_id, &action, Instant::now())?;
    }
    if let Some(audit) = state.audit.as_ref().filter(|a| a.fail_closed) {
        // Fail-closed: nothing is carried out that is not already in the trail. The line
        // written now holds who asks what; the outcome follows in a second line with the
        // same RequestId.
        let mut started = audit_event(
            &state.kms,
            parts,
            peer,
            log,
            &Ok(Reply {
                request_id: log.error_request_id.clone(),
                body: Vec::new(),
            }),
        );
        started.event_phase = Some("Started");
        started.request_id = String::new();
        match audit.record(&started, state.kms.now()) {
            Ok(id) => log.started_event_id = Some(id),
            Err(()) => {
                return Err(ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "the request could not be recorded in the audit trail, so it was not carried \
                 out; try again later",
                ))
            }
        }
    }

    let json = params.into_operation_json();
    if state.inline_crypto && runs_inline(&action) {
        // Symmetric cryptography on cached keys takes microseconds and writes nothing: run it
        // here rather than pay a thread hop per request.
        return dispatch::call(&state.kms, &identity.caller, &action, json).map_err(ApiError::from);
    }
    // Everything that may commit (fsync), generate RSA keys, or wait on an external key
    // manager runs on the blocking pool, off the async workers.
    let kms = state.kms.clone();
    tokio::task::spawn_blocking(move || dispatch::call(&kms, &identity.caller, &action, json))
        .await
        .map_err(|e| ApiError::from(KmsError::internal(format!("the call failed: {e}"))))?
        .map_err(ApiError::from)
}

/// Actions cheap enough to run on the async worker: symmetric cryptography, which reads at
/// most a key record on a cache miss and commits nothing.
fn runs_inline(action: &str) -> bool {
    matches!(
        action,
        "Encrypt"
            | "Decrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateMac"
    )
}

/// The value of a protocol parameter that may come as a header or a parameter; both must
/// agree when both are given.
fn one_of(
    name: &'static str,
    header: Option<String>,
    param: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match (header, param) {
        (Some(h), Some(p)) if h != p => Err(ApiError::invalid(
            name,
            "the header and the parameter disagree",
        )),
        (Some(h), _) => Ok(Some(h)),
        (None, Some(p)) => Ok(Some(p.to_owned())),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_maintenance_action_becomes_one_service_event() {
        let kms = Kms::builder()
            .storage(kms_storage::MemoryStorage::new())
            .root_key(kms_core::RootKey::generate().unwrap())
            .account_id("42")
            .build()
            .unwrap();
        let report = kms_core::api::MaintenanceReport {
            purged_keys: vec!["k1".into()],
            rotated_keys: vec!["k2".into()],
            rotated_secrets: vec!["db".into()],
            failed_secret_rotations: vec![("api".into(), "Rejected.Unavailable")],
            expired_import_tokens: 3,
            ..Default::default()
        };
        let events = maintenance_events(&kms, &report);
        let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "PurgeKey",
                "RotateKey",
                "RotateSecret",
                "RotateSecret",
                "ExpireImportTokens"
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.event_type == EventType::ServiceEvent));
        assert_eq!(events[0].resources, ["acs:kms:cn-hangzhou:42:key/k1"]);
        assert_eq!(events[2].resources, ["acs:kms:cn-hangzhou:42:secret/db"]);
        assert_eq!(
            events[3].error_code.as_deref(),
            Some("Rejected.Unavailable")
        );
        assert_eq!(events[4].request_parameters["Count"], 3);
    }

    #[test]
    fn log_fields_cannot_forge_lines() {
        assert_eq!(loggable(Some("Encrypt")), "Encrypt");
        assert_eq!(loggable(Some("x\nINFO fake=1")), "x?INFO?fake?1");
        assert_eq!(loggable(None), "-");
        assert_eq!(loggable(Some(&"a".repeat(100))).len(), 64);
    }
}
