//! The HTTP service: one handler for Alibaba's RPC protocol, background maintenance and
//! graceful shutdown.
//!
//! A request goes through: method and path check, size limits, query and form decoding
//! ([`crate::request`]), Action and Version, authentication ([`crate::auth`]), and then the
//! engine call ([`crate::dispatch`]) on the blocking pool, since redb commits fsync and RSA key
//! generation takes a while. The engine's storage commit is durable before the engine returns,
//! so an answered request survives a crash.
//!
//! Every request is logged as one line with its action, status, error code, latency, request id
//! and access key id; never parameter values, plaintext, key material or secrets.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use kms_core::{Kms, KmsError, StorageError};
use kms_storage::{root_key_file, RedbStorage};
use tokio::sync::watch;

use crate::auth::{Authenticator, SignedRequest};
use crate::config::{ConfigError, EngineSettings, Settings, STORE_FILE};
use crate::dispatch::{self, Reply};
use crate::request::{self, Params};
use crate::response::{new_request_id, ApiError, API_VERSION};

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
/// ([`kms_policy::PolicyAuthorizer`]: without a policy, the owning account has full control).
///
/// Blocking (file I/O); call it from a blocking context.
///
/// Errors: the data directory, key file or store cannot be opened (the store is locked while
/// another process has it open), or the root key does not open the store's keyring.
pub fn open_engine(settings: &EngineSettings) -> Result<Kms, ServerError> {
    let root_key = match &settings.root_key_file {
        Some(path) => {
            create_private_dir(&settings.data_dir)?;
            root_key_file::load(path)?
        }
        None => root_key_file::load_or_create(&settings.data_dir)?,
    };
    let storage = RedbStorage::open(settings.data_dir.join(STORE_FILE))?;
    let mut builder = Kms::builder()
        .storage(storage)
        .authorizer(kms_policy::PolicyAuthorizer::new())
        .root_key(root_key)
        .region(settings.region.clone())
        .account_id(settings.account_id.clone());
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

/// What every request handler shares.
struct AppState {
    kms: Arc<Kms>,
    auth: Authenticator,
    max_bytes: usize,
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    maintenance_interval: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the engine and binds the listen address.
    ///
    /// Errors: as [`open_engine`], or the address cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self, ServerError> {
        let engine = settings.engine.clone();
        let kms = tokio::task::spawn_blocking(move || open_engine(&engine))
            .await
            .map_err(|e| ServerError::Engine(KmsError::internal(e.to_string())))??;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("bind {}", settings.listen),
                source,
            })?;
        Ok(Server {
            listener,
            state: Arc::new(AppState {
                kms: Arc::new(kms),
                auth: Authenticator::new(settings.access_keys, settings.nonce_cache_capacity),
                max_bytes: settings.max_body_bytes,
            }),
            maintenance_interval: settings.maintenance_interval,
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

    /// Serves until `shutdown` completes, then finishes the requests in flight, stops
    /// maintenance and closes the store.
    ///
    /// Errors: the listener fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let maintenance = tokio::spawn(maintenance_loop(
            self.state.kms.clone(),
            self.maintenance_interval,
            stop_rx,
        ));
        let app = Router::new().fallback(handle).with_state(self.state);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ServerError::Io {
                context: "serve".into(),
                source,
            });
        // Stop maintenance and wait for a pass in progress to finish its commit.
        let _ = stop_tx.send(true);
        let _ = maintenance.await;
        tracing::info!("stopped");
        served
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
    tracing::info!("shutdown requested; finishing requests in flight");
}

async fn maintenance_loop(kms: Arc<Kms>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
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
            }
            Ok(Err(e)) => tracing::warn!(code = e.code(), error = %e, "maintenance failed"),
            Err(e) => tracing::warn!(error = %e, "maintenance task failed"),
        }
    }
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

/// What the request log line says about a request besides its outcome.
#[derive(Default)]
struct LogFields {
    action: Option<String>,
    access_key_id: Option<String>,
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let host_id = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("kms")
        .to_owned();
    let mut log = LogFields::default();
    let (status, request_id, code, body) = match process(&state, &parts, body, &mut log).await {
        Ok(Reply { request_id, body }) => (200, request_id, None, body),
        Err(e) => {
            let id = new_request_id();
            let body = e.body(&id, &host_id);
            (e.status, id, Some(e.code), body)
        }
    };
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

async fn process(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: Body,
    log: &mut LogFields,
) -> Result<Reply, ApiError> {
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
    let bytes = axum::body::to_bytes(body, state.max_bytes)
        .await
        .map_err(|_| ApiError::too_large("body", state.max_bytes))?;
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
    let params = request::merge(&query, &form)?;

    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let action = one_of("Action", header_text("x-acs-action"), params.get("Action"))?
        .ok_or_else(|| ApiError::missing("Action"))?;
    log.action = Some(action.clone());
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

    let kms = state.kms.clone();
    let json = params.operation_json();
    tokio::task::spawn_blocking(move || dispatch::call(&kms, &identity.caller, &action, json))
        .await
        .map_err(|e| ApiError::from(KmsError::internal(format!("the call failed: {e}"))))?
        .map_err(ApiError::from)
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
    fn log_fields_cannot_forge_lines() {
        assert_eq!(loggable(Some("Encrypt")), "Encrypt");
        assert_eq!(loggable(Some("x\nINFO fake=1")), "x?INFO?fake?1");
        assert_eq!(loggable(None), "-");
        assert_eq!(loggable(Some(&"a".repeat(100))).len(), 64);
    }
}
