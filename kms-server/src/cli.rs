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
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP service (Alibaba KMS RPC API 2016-01-20, V3 and V1 signatures).
    ///
    /// The owner's access key comes from KMS_ACCESS_KEY_ID / KMS_ACCESS_KEY_SECRET, or from
    /// [[access_keys]] in --config.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Seconds between maintenance passes (rotations, purges, material expiry)
        /// [default: 60].
        #[arg(long, value_name = "SECS")]
        maintenance_interval: Option<u64>,
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
        region: cli.global.region.clone(),
        account_id: cli.global.account_id.clone(),
        ..Overrides::default()
    };
    let (action, params) = match cli.command {
        Command::Serve {
            listen,
            maintenance_interval,
        } => {
            overrides.listen = listen;
            overrides.maintenance_interval_secs = maintenance_interval;
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
    let kms = open_engine(&engine)?;
    let caller = Caller::account_root(engine.account_id.clone());
    let reply = dispatch::call(&kms, &caller, &action, Value::Object(params))?;
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
        | Command::RunMaintenance => "",
    };
    (action.to_owned(), p)
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
        tracing::info!(%addr, data_dir, access_keys = keys, "listening");
        server.run(server::shutdown_signal()).await?;
        Ok(())
    })
}
