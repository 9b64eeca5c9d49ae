//! The command line: `kms serve`, and one-off operations on a data directory.
//!
//! Every one-off command is an API action run through the server's own dispatch table as the
//! account owner, so `kms encrypt ...` answers exactly what `Encrypt` answers over HTTP. Results
//! are JSON on stdout; errors go to stderr as `error: Code: message` with exit status 1.
//! `kms call ACTION --param Name=Value ...` reaches every action; the named commands are
//! shorthands for the common ones.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kms_core::Caller;
use serde_json::{Map, Value};

use crate::config::{self, EngineSettings, FileConfig, Overrides, Settings};
use crate::dispatch;
use crate::server::{self, open_engine, Server, ServerError};

/// `kms`: an Alibaba Cloud KMS-compatible key management service.
#[derive(Debug, Parser)]
#[command(name = "kms", version, about, long_about = None)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML): listen address, data directory, region, account, access keys.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory holding the store (kms.redb) and, by default, the root key
    /// [default: ./kms-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Root key file (32 raw bytes) instead of <DATA_DIR>/root.key.
    #[arg(long, global = true, value_name = "FILE")]
    pub root_key_file: Option<PathBuf>,
    /// A PostgreSQL database shared by several servers (postgres://USER@HOST:PORT/DB) instead
    /// of the embedded store in --data-dir; needs --root-key-file (config: storage).
    #[arg(long, global = true, value_name = "URL")]
    pub storage: Option<String>,
    /// Region in ARNs [default: cn-hangzhou].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The account that owns the keys [default: 1234567890].
    #[arg(long, global = true)]
    pub account_id: Option<String>,
    /// Log level: error, warn, info, debug, trace [default: info for serve, warn otherwise].
    #[arg(long, global = true)]
    pub log_level: Option<tracing::Level>,
    /// Logs as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Audit trail: appends one hash-chained JSON line per request, maintenance action and
    /// one-off command (config: audit_log).
    #[arg(long, global = true, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP service (Alibaba KMS RPC API 2016-01-20, V3 and V1 signatures).
    ///
    /// The owner's access key comes from KMS_ACCESS_KEY_ID / KMS_ACCESS_KEY_SECRET, or from
    /// `[[access_keys]]` in --config.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Also serve the KMS 3.0 instance gateway (the instance API applications call with a
        /// client key) on this address, with the same TLS certificate.
        #[arg(long, value_name = "ADDR")]
        instance_listen: Option<String>,
        /// Seconds between maintenance passes (rotations, purges, material expiry)
        /// [default: 60].
        #[arg(long, value_name = "SECS")]
        maintenance_interval: Option<u64>,
        /// Serve HTTPS with this certificate chain (PEM); reloaded on SIGHUP.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM: PKCS#8, SEC1 or PKCS#1).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by a CA in this PEM file (mTLS).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
        /// Allow plain HTTP on a non-loopback address (plaintexts and data keys then cross the
        /// network in clear).
        #[arg(long)]
        insecure_http: bool,
        /// Serve Prometheus metrics at GET /metrics (unauthenticated, like GET /health).
        #[arg(long)]
        metrics: bool,
    },
    /// Opens every record of the store and lists those that fail to open (exit status 1 when
    /// there are any); with --quarantine moves them to <DATA_DIR>/quarantine/ (still sealed)
    /// so that the rest serves cleanly (rebuilding the list indexes when an index record was
    /// among them).
    Fsck {
        /// Move the records that fail to open aside.
        #[arg(long)]
        quarantine: bool,
        /// Rebuild the list and due-date indexes from the records.
        #[arg(long)]
        reindex: bool,
    },
    /// Creates a new data directory: a root key (0600) and an empty store (0600) in a 0700
    /// directory. Refuses a directory that already holds a store or a root key.
    Init,
    /// Writes a development TLS set: ca.pem (a local CA), cert.pem and key.pem (a server
    /// certificate for localhost, 127.0.0.1 and ::1), client-cert.pem and client-key.pem
    /// (for trying mTLS). The CA's key is not kept.
    DevCert {
        /// Directory to write to (created, mode 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Break-glass: gives a key or secret its default policy back, whatever its policy says
    /// (the account owner regains full control). Runs on the data directory, so only whoever
    /// holds the store and its root key can do it; recorded in the audit trail.
    ResetPolicy {
        /// A key id, key ARN or alias; otherwise a secret name.
        resource: String,
    },
    /// The audit trail.
    Audit {
        /// What to do with it.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Calls any API action: `kms call Encrypt -p KeyId=alias/app -p Plaintext=hello`.
    Call {
        /// The action, e.g. DescribeKey.
        action: String,
        /// A parameter as Name=Value (repeatable); JSON values (Tags, EncryptionContext) as
        /// JSON text.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Lists the API actions `kms call` and the server accept.
    Actions,
    /// Creates a key (CreateKey).
    CreateKey {
        /// Aliyun_AES_256 (default), Aliyun_AES_128, Aliyun_AES_192, RSA_2048, RSA_3072,
        /// RSA_4096, EC_P256, EC_P256K.
        #[arg(long)]
        key_spec: Option<String>,
        /// ENCRYPT/DECRYPT or SIGN/VERIFY.
        #[arg(long)]
        key_usage: Option<String>,
        /// Aliyun_KMS (default) or EXTERNAL.
        #[arg(long)]
        origin: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Turns on automatic rotation with this interval (e.g. 30d, 604800s).
        #[arg(long)]
        rotation_interval: Option<String>,
    },
    /// Describes a key (DescribeKey).
    DescribeKey {
        /// Key id, ARN or alias.
        key_id: String,
    },
    /// Lists keys (ListKeys).
    ListKeys {
        /// Page number, from 1.
        #[arg(long)]
        page_number: Option<u32>,
        /// Page size, 1 to 100.
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Enables a key (EnableKey).
    EnableKey {
        /// Key id, ARN or alias.
        key_id: String,
    },
    /// Disables a key (DisableKey).
    DisableKey {
        /// Key id, ARN or alias.
        key_id: String,
    },
    /// Schedules a key's deletion (ScheduleKeyDeletion).
    ScheduleKeyDeletion {
        /// Key id, ARN or alias.
        key_id: String,
        /// Days until the key is purged, 7 to 366.
        #[arg(long, default_value_t = 30)]
        pending_window_in_days: u32,
    },
    /// Cancels a scheduled deletion (CancelKeyDeletion).
    CancelKeyDeletion {
        /// Key id, ARN or alias.
        key_id: String,
    },
    /// Encrypts a string (Encrypt).
    Encrypt {
        /// Key id, ARN or alias.
        #[arg(long)]
        key_id: String,
        /// The text to encrypt.
        #[arg(long)]
        plaintext: String,
        /// EncryptionContext as a JSON object of strings.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
    },
    /// Decrypts a ciphertext blob (Decrypt).
    Decrypt {
        /// The Base64 blob from Encrypt or GenerateDataKey.
        #[arg(long)]
        ciphertext_blob: String,
        /// The EncryptionContext given at encryption.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
    },
    /// Generates a data key (GenerateDataKey).
    GenerateDataKey {
        /// Key id, ARN or alias of the wrapping key.
        #[arg(long)]
        key_id: String,
        /// AES_256 (default) or AES_128.
        #[arg(long)]
        key_spec: Option<String>,
        /// 1 to 1024 bytes; overrides --key-spec.
        #[arg(long)]
        number_of_bytes: Option<u32>,
        /// EncryptionContext as a JSON object of strings.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
    },
    /// Creates an alias (CreateAlias).
    CreateAlias {
        /// The alias, `alias/...`.
        alias_name: String,
        /// The key it names.
        key_id: String,
    },
    /// Lists aliases (ListAliases).
    ListAliases {
        /// Page number, from 1.
        #[arg(long)]
        page_number: Option<u32>,
        /// Page size, 1 to 100.
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Runs one maintenance pass now: due rotations, purges, material expiry.
    RunMaintenance,
}

/// `kms audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Checks that every line of a trail chains to the one before it; exits non-zero naming
    /// the first line that does not.
    Verify {
        /// The trail file.
        file: PathBuf,
    },
}

/// A CLI failure: an API error or a start-up problem, printed on stderr.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{}: {}", .0.code(), .0)]
    Api(#[from] kms_core::KmsError),
    #[error("{0}")]
    Usage(String),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let serving = matches!(cli.command, Command::Serve { .. });
    init_tracing(
        cli.global.log_level.unwrap_or(if serving {
            tracing::Level::INFO
        } else {
            tracing::Level::WARN
        }),
        cli.global.log_json,
    );
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: tracing::Level, json: bool) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .with_target(false);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn execute(cli: Cli) -> Result<(), CliError> {
    let file = match &cli.global.config {
        Some(path) => FileConfig::load(path).map_err(ServerError::from)?,
        None => FileConfig::default(),
    };
    let mut overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
        root_key_file: cli.global.root_key_file.clone(),
        storage: cli.global.storage.clone().map(crate::config::DatabaseUrl),
        region: cli.global.region.clone(),
        account_id: cli.global.account_id.clone(),
        ..Overrides::default()
    };
    let (action, params) = match cli.command {
        Command::Serve {
            listen,
            instance_listen,
            maintenance_interval,
            tls_cert,
            tls_key,
            tls_client_ca,
            insecure_http,
            metrics,
        } => {
            overrides.metrics = metrics;
            overrides.listen = listen;
            overrides.instance_listen = instance_listen;
            overrides.maintenance_interval_secs = maintenance_interval;
            overrides.tls_cert = tls_cert;
            overrides.tls_key = tls_key;
            overrides.tls_client_ca = tls_client_ca;
            overrides.insecure_http = insecure_http;
            overrides.audit_log = cli.global.audit_log.clone();
            let env = config::env_access_key().map_err(ServerError::from)?;
            let settings = Settings::resolve(file, &overrides, env).map_err(ServerError::from)?;
            return serve(settings);
        }
        Command::Actions => {
            for action in dispatch::ACTIONS {
                println!("{action}");
            }
            return Ok(());
        }
        Command::Fsck {
            quarantine,
            reindex,
        } => {
            let engine = EngineSettings::resolve(&file, &overrides);
            let kms = open_engine(&engine)?;
            let (checked, corrupt) = kms.fsck()?;
            let mut moved = Vec::new();
            let mut reindexed = None;
            if quarantine && !corrupt.is_empty() {
                let dir = engine.data_dir.join("quarantine");
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(&dir).map_err(|source| ServerError::Io {
                    context: format!("create {}", dir.display()),
                    source,
                })?;
                // Index records first: the indexes are then rebuilt from the records that
                // open, so the records moved after them have no index entries left to fix.
                let mut order: Vec<&kms_core::CorruptRecord> = corrupt.iter().collect();
                order.sort_by_key(|r| !r.is_index());
                let mut index_moved = false;
                for record in order {
                    if !record.is_index() && std::mem::take(&mut index_moved) {
                        reindexed = Some(kms.rebuild_indexes()?);
                    }
                    index_moved |= record.is_index();
                    let name = crate::signature::hex(&record.key);
                    let path = dir.join(format!("{}-{name}", kms.now().secs()));
                    // The bytes are on disk (synced) before the record leaves the store.
                    kms.quarantine(&record.key, |raw| {
                        write_private(&path, raw)
                            .map_err(|e| kms_core::KmsError::internal(e.to_string()))
                    })?;
                    moved.push(path);
                }
                if index_moved {
                    reindexed = Some(kms.rebuild_indexes()?);
                }
            }
            if reindex && reindexed.is_none() {
                reindexed = Some(kms.rebuild_indexes()?);
            }
            let list: Vec<Value> = corrupt
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "Record": String::from_utf8_lossy(&r.key),
                        "Error": r.reason,
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "Checked": checked,
                "Corrupt": list,
                "Quarantined": moved,
                "Reindexed": reindexed,
            }));
            if !corrupt.is_empty() && !quarantine {
                return Err(CliError::Usage(format!(
                    "{} records fail to open; kms fsck --quarantine moves them aside",
                    corrupt.len()
                )));
            }
            return Ok(());
        }
        Command::Init => {
            let engine = EngineSettings::resolve(&file, &overrides);
            if server::check_data_dir(&engine)? == server::DataDir::Existing {
                return Err(CliError::Usage(format!(
                    "{} already holds a store; init creates new data directories only",
                    engine.data_dir.display()
                )));
            }
            open_engine(&engine)?;
            print_json(&serde_json::json!({
                "DataDir": engine.data_dir,
                "Store": engine.data_dir.join(config::STORE_FILE),
                "RootKey": engine.root_key_file.clone().unwrap_or_else(|| engine.data_dir.join("root.key")),
            }));
            return Ok(());
        }
        Command::DevCert { out, force } => {
            let paths = crate::tls::write_dev_cert(&out, force)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            print_json(&serde_json::json!({
                "CaCertificate": paths.ca,
                "Certificate": paths.cert,
                "PrivateKey": paths.key,
                "ClientCertificate": paths.client_cert,
                "ClientPrivateKey": paths.client_key,
            }));
            return Ok(());
        }
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => {
            let lines = crate::audit::verify(&file).map_err(|e| {
                CliError::Usage(format!(
                    "{}: the audit trail is broken at {e}",
                    file.display()
                ))
            })?;
            println!("{}: {lines} lines, chain intact", file.display());
            return Ok(());
        }
        Command::ResetPolicy { resource } => {
            let engine = EngineSettings::resolve(&file, &overrides);
            let audit = open_cli_audit(&cli.global, &file)?;
            let kms = open_engine(&engine)?;
            let outcome = reset_policy(&kms, &resource);
            if let Some(audit) = &audit {
                let (resources, error) = match &outcome {
                    Ok((arn, _)) => (vec![arn.clone()], None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                let mut event = host_event(&kms, "ResetPolicy", resources, error);
                event
                    .request_parameters
                    .insert("Resource".into(), Value::String(resource.clone()));
                audit.record(&event, kms.now()).map_err(|e| {
                    CliError::Usage(format!("the policy was reset but not audited: {e}"))
                })?;
            }
            let (arn, had_policy) = outcome?;
            print_json(&serde_json::json!({
                "Resource": arn,
                "Reset": had_policy,
                "Policy": "default",
            }));
            return Ok(());
        }
        Command::RunMaintenance => {
            let engine = EngineSettings::resolve(&file, &overrides);
            let kms = open_engine(&engine)?;
            let report = kms.run_maintenance(kms.now())?;
            print_json(&serde_json::json!({
                "PurgedKeys": report.purged_keys,
                "RotatedKeys": report.rotated_keys,
                "ExpiredMaterialKeys": report.expired_material_keys,
                "ExpiredImportTokens": report.expired_import_tokens,
            }));
            return Ok(());
        }
        Command::Call { action, params } => {
            let mut map = Map::new();
            for p in params {
                let (name, value) = p
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--param {p:?} is not NAME=VALUE")))?;
                if map
                    .insert(name.to_owned(), Value::String(value.to_owned()))
                    .is_some()
                {
                    return Err(CliError::Usage(format!("--param {name} is given twice")));
                }
            }
            (action, map)
        }
        named => named_call(named),
    };
    if !dispatch::is_action(&action) {
        return Err(CliError::Usage(format!(
            "unknown action {action:?}; `kms actions` lists them"
        )));
    }
    let engine = EngineSettings::resolve(&file, &overrides);
    let audit = open_cli_audit(&cli.global, &file)?;
    let kms = open_engine(&engine)?;
    let caller = Caller::account_root(engine.account_id.clone());
    let safe = crate::audit::safe_parameters(
        params
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))),
    );
    let result = dispatch::call(&kms, &caller, &action, Value::Object(params));
    if let Some(audit) = &audit {
        let mut event = host_event(&kms, &action, Vec::new(), result.as_ref().err());
        event.request_parameters = safe;
        if let Ok(reply) = &result {
            event.request_id = reply.request_id.clone();
        }
        audit
            .record(&event, kms.now())
            .map_err(|e| CliError::Usage(format!("the call was made but not audited: {e}")))?;
    }
    let reply = result?;
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) => print_json(&v),
        Err(_) => println!("{}", String::from_utf8_lossy(&reply.body)),
    }
    Ok(())
}

/// The action and parameters of a named shorthand command.
fn named_call(command: Command) -> (String, Map<String, Value>) {
    let mut p = Map::new();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            p.insert(name.to_owned(), Value::String(v));
        }
    };
    let action = match command {
        Command::CreateKey {
            key_spec,
            key_usage,
            origin,
            description,
            rotation_interval,
        } => {
            set("KeySpec", key_spec);
            set("KeyUsage", key_usage);
            set("Origin", origin);
            set("Description", description);
            set(
                "EnableAutomaticRotation",
                rotation_interval.as_ref().map(|_| "true".to_owned()),
            );
            set("RotationInterval", rotation_interval);
            "CreateKey"
        }
        Command::DescribeKey { key_id } => {
            set("KeyId", Some(key_id));
            "DescribeKey"
        }
        Command::ListKeys {
            page_number,
            page_size,
        } => {
            set("PageNumber", page_number.map(|n| n.to_string()));
            set("PageSize", page_size.map(|n| n.to_string()));
            "ListKeys"
        }
        Command::EnableKey { key_id } => {
            set("KeyId", Some(key_id));
            "EnableKey"
        }
        Command::DisableKey { key_id } => {
            set("KeyId", Some(key_id));
            "DisableKey"
        }
        Command::ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
        } => {
            set("KeyId", Some(key_id));
            set(
                "PendingWindowInDays",
                Some(pending_window_in_days.to_string()),
            );
            "ScheduleKeyDeletion"
        }
        Command::CancelKeyDeletion { key_id } => {
            set("KeyId", Some(key_id));
            "CancelKeyDeletion"
        }
        Command::Encrypt {
            key_id,
            plaintext,
            context,
        } => {
            set("KeyId", Some(key_id));
            set("Plaintext", Some(plaintext));
            set("EncryptionContext", context);
            "Encrypt"
        }
        Command::Decrypt {
            ciphertext_blob,
            context,
        } => {
            set("CiphertextBlob", Some(ciphertext_blob));
            set("EncryptionContext", context);
            "Decrypt"
        }
        Command::GenerateDataKey {
            key_id,
            key_spec,
            number_of_bytes,
            context,
        } => {
            set("KeyId", Some(key_id));
            set("KeySpec", key_spec);
            set("NumberOfBytes", number_of_bytes.map(|n| n.to_string()));
            set("EncryptionContext", context);
            "GenerateDataKey"
        }
        Command::CreateAlias { alias_name, key_id } => {
            set("AliasName", Some(alias_name));
            set("KeyId", Some(key_id));
            "CreateAlias"
        }
        Command::ListAliases {
            page_number,
            page_size,
        } => {
            set("PageNumber", page_number.map(|n| n.to_string()));
            set("PageSize", page_size.map(|n| n.to_string()));
            "ListAliases"
        }
        // Handled by `execute` before it gets here.
        Command::Serve { .. }
        | Command::Call { .. }
        | Command::Actions
        | Command::DevCert { .. }
        | Command::Init
        | Command::Fsck { .. }
        | Command::ResetPolicy { .. }
        | Command::Audit { .. }
        | Command::RunMaintenance => "",
    };
    (action.to_owned(), p)
}

/// Writes a file readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let io = |source| ServerError::Io {
        context: format!("write {}", path.display()),
        source,
    };
    let mut f = options.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// The audit trail of a one-off command: `--audit-log`, else the configuration's.
fn open_cli_audit(
    global: &GlobalArgs,
    file: &FileConfig,
) -> Result<Option<crate::audit::AuditLog>, CliError> {
    match global.audit_log.as_ref().or(file.audit_log.as_ref()) {
        Some(path) => Ok(Some(
            crate::audit::AuditLog::open(path).map_err(ServerError::from)?,
        )),
        None => Ok(None),
    }
}

/// The audit event of a one-off command run on the host.
fn host_event(
    kms: &kms_core::Kms,
    name: &str,
    resources: Vec<String>,
    error: Option<&kms_core::KmsError>,
) -> crate::audit::AuditEvent {
    crate::audit::AuditEvent {
        event_name: name.to_owned(),
        event_type: crate::audit::EventType::HostCommand,
        request_id: crate::response::new_request_id(),
        region: kms.scope().region.clone(),
        resources,
        error_code: error.map(|e| e.code().to_owned()),
        error_message: error.map(ToString::to_string),
        ..Default::default()
    }
}

/// Resets a key's policy, or else a secret's: (the resource's ARN, whether it had a policy).
fn reset_policy(kms: &kms_core::Kms, resource: &str) -> Result<(String, bool), kms_core::KmsError> {
    match kms.reset_key_policy(resource) {
        Ok((key_id, had)) => Ok((kms.scope().key_arn(&key_id), had)),
        Err(e)
            if matches!(
                e.code(),
                "Forbidden.KeyNotFound" | "Forbidden.AliasNotFound" | "InvalidParameter"
            ) =>
        {
            match kms.reset_secret_policy(resource) {
                Ok(had) => Ok((kms.scope().secret_arn(resource), had)),
                // Neither a key nor a secret: report it as a key, what was tried first.
                Err(s) if s.code() == "Forbidden.ResourceNotFound" => Err(e),
                Err(s) => Err(s),
            }
        }
        Err(e) => Err(e),
    }
}

fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{value}"),
    }
}

fn serve(settings: Settings) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Io {
            context: "start the async runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let keys = settings.access_keys.len();
        let data_dir = settings.engine.data_dir.display().to_string();
        let server = Server::bind(settings).await?;
        let addr = server.local_addr()?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        tracing::info!(%addr, scheme, data_dir, access_keys = keys, "listening");
        if let Some(addr) = server.instance_addr()? {
            tracing::info!(%addr, scheme, "instance gateway listening");
        }
        server.run(server::shutdown_signal()).await?;
        Ok(())
    })
}
