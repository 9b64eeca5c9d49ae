//! The audit trail: an append-only, hash-chained file of events shaped like Alibaba Cloud
//! ActionTrail's.
//!
//! Each event is one line of JSON (keys in a fixed order, see [`AuditLog::record`]), and each
//! line's `previousHash` is the lowercase hex SHA-256 of the previous line's exact bytes
//! (without its newline); the first line's is [`GENESIS_HASH`]. Changing, inserting or
//! removing a line therefore breaks the chain at the next line, which [`verify`] reports.
//! Removing lines from the end of the file keeps a valid (shorter) chain: detecting that
//! needs the last hash kept somewhere else.
//!
//! Request parameters are recorded through an allowlist ([`safe_parameters`]): key material,
//! plaintexts, ciphertexts, secret values, signatures and MACs never reach the file.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kms_core::UnixTime;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use crate::signature::sha256_hex;
use serde_json::{Map, Value};

/// The `previousHash` of a trail's first line: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest recorded value, in bytes, of a request parameter, user agent or error message;
/// longer values are cut (at a character boundary) and marked, see [`safe_parameters`].
pub const MAX_VALUE_BYTES: usize = 2048;

/// Longest line, in bytes without its newline, that [`AuditLog::record`] writes and that
/// [`AuditLog::open`] and [`verify`] read.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// The `eventVersion` of every line.
pub const EVENT_VERSION: &str = "1";

/// The `eventSource` of every line.
pub const EVENT_SOURCE: &str = "kms.aliyuncs.com";

/// The request parameters [`safe_parameters`] records (exact, case-sensitive names); every
/// other parameter is left out.
///
/// None of them carries key material, a plaintext, a ciphertext, a secret value, a digest, a
/// signature or a MAC. Flattened lists of these names (`ResourceId.1`, `Tag.1.TagKey`) are
/// recorded too, see [`safe_parameters`].
pub const SAFE_PARAMETER_NAMES: &[&str] = &[
    "AapName",
    "AccessControlRules",
    "Algorithm",
    "AliasName",
    "All",
    "AuthenticationMethod",
    "AutomaticRotation",
    "BypassPolicyLockoutSafetyCheck",
    "CertificateId",
    "ClientKeyId",
    "DKMSInstanceId",
    "DeletionProtectionDescription",
    "Description",
    "DestinationEncryptionContext",
    "DestinationKeyId",
    "DryRun",
    "EnableAutomaticRotation",
    "EnableDeletionProtection",
    "EncryptionContext",
    "EncryptionKeyId",
    "ExcludeCharacters",
    "ExcludeLowercase",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExportablePrivateKey",
    "ExtendedConfig",
    "ExternalKeyId",
    "FetchExtendedConfig",
    "FetchTags",
    "Filters",
    "ForceDeleteWithoutRecovery",
    "IncludeDeprecated",
    "IsVerbose",
    "KeyFormat",
    "KeyId",
    "KeyMaterialExpireTime",
    "KeyMaterialExpireUnix",
    "KeyPairSpec",
    "KeySpec",
    "KeyUsage",
    "KeyVersionId",
    "KmsInstance",
    "KmsInstanceId",
    "Length",
    "MaxResults",
    "MessageType",
    "MoveToVersion",
    "Name",
    "NextToken",
    "NotAfter",
    "NotBefore",
    "NumberOfBytes",
    "Origin",
    "PaddingMode",
    "PageNumber",
    "PageSize",
    "PasswordLength",
    "PendingWindowInDays",
    "Permissions",
    "Policies",
    "Policy",
    "PolicyName",
    "ProtectedResourceArn",
    "ProtectionLevel",
    "RecoveryWindowInDays",
    "RemoveFromVersion",
    "RequireEachIncludedType",
    "ResourceArns",
    "ResourceId",
    "ResourceType",
    "Resources",
    "RotationInterval",
    "SecretName",
    "SecretType",
    "SourceEncryptionAlgorithm",
    "SourceEncryptionContext",
    "SourceKeyId",
    "SourceKeyVersionId",
    "SourcePrivateIp",
    "Status",
    "Subject",
    "SubjectAlternativeNames",
    "Tag",
    "TagKey",
    "TagKeys",
    "Tags",
    "TargetKeyId",
    "Type",
    "VersionId",
    "VersionStage",
    "VersionStages",
    "WrappingAlgorithm",
    "WrappingKeySpec",
];

/// Parameters whose value is JSON text: recorded parsed when it is a JSON object or list,
/// else as the string.
const JSON_TEXT_PARAMETERS: &[&str] = &[
    "DestinationEncryptionContext",
    "EncryptionContext",
    "ExtendedConfig",
    "Filters",
    "ResourceArns",
    "SourceEncryptionContext",
    "SubjectAlternativeNames",
    "TagKeys",
    "Tags",
    "VersionStages",
];

/// Lists whose flattened items may name a field (`Tag.1.TagKey`), and the fields they may name.
const FIELD_LISTS: &[&str] = &["Filters", "Tag", "Tags"];
const SAFE_FIELDS: &[&str] = &["Key", "TagKey", "TagValue", "Value"];

/// What kind of event a line records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A call of the HTTP API.
    #[default]
    ApiCall,
    /// Background maintenance by the service itself (rotation, deletion of keys past their
    /// pending window...).
    ServiceEvent,
    /// An offline command run on the host (the CLI, such as `reset-policy`).
    HostCommand,
}

impl EventType {
    /// The `eventType` value: `ApiCall`, `ServiceEvent` or `HostCommand`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ApiCall => "ApiCall",
            EventType::ServiceEvent => "ServiceEvent",
            EventType::HostCommand => "HostCommand",
        }
    }
}

/// ActionTrail's `userIdentity.type` values, plus `system` for the service's own maintenance
/// and `host` for the offline CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityType {
    /// `root-account`: the account itself.
    RootAccount,
    /// `ram-user`: a RAM user of the account.
    RamUser,
    /// `assumed-role`: a RAM role's session.
    AssumedRole,
    /// `system`: the service itself.
    System,
    /// `host`: someone with access to the host, through the CLI.
    Host,
    /// `aap`: an application, through a client key of an application access point (the
    /// instance API).
    AccessPoint,
}

impl IdentityType {
    /// The `userIdentity.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityType::RootAccount => "root-account",
            IdentityType::RamUser => "ram-user",
            IdentityType::AssumedRole => "assumed-role",
            IdentityType::System => "system",
            IdentityType::Host => "host",
            IdentityType::AccessPoint => "aap",
        }
    }
}

/// Who made a call: the line's `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// `type`.
    pub kind: IdentityType,
    /// `accountId`: the account the principal belongs to.
    pub account_id: String,
    /// `principalId`: the user's or role session's id.
    pub principal_id: String,
    /// `accessKeyId`: the access key id that signed the request (never its secret).
    pub access_key_id: Option<String>,
    /// `userName`.
    pub user_name: Option<String>,
}

/// One audited event.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// `eventName`: the action, such as `Encrypt`, or a maintenance action such as
    /// `RotateKey`.
    pub event_name: String,
    /// `eventType`.
    pub event_type: EventType,
    /// `requestId`.
    pub request_id: String,
    /// `acsRegion`.
    pub region: String,
    /// `userIdentity`. When `None`, a [`EventType::ServiceEvent`] is recorded as
    /// `{"type":"system"}`, a [`EventType::HostCommand`] as `{"type":"host"}`, and an
    /// [`EventType::ApiCall`] (one that failed before its caller was known) without
    /// `userIdentity`.
    pub identity: Option<UserIdentity>,
    /// `sourceIpAddress`.
    pub source_ip: Option<String>,
    /// `userAgent` (cut at [`MAX_VALUE_BYTES`]).
    pub user_agent: Option<String>,
    /// `requestParameters`, already filtered: build it with [`safe_parameters`].
    pub request_parameters: Map<String, Value>,
    /// `resources`: the ARNs the call acted on, each written as `{"ARN": ...}`.
    pub resources: Vec<String>,
    /// `errorCode`, for a failed call.
    pub error_code: Option<String>,
    /// `errorMessage`, for a failed call (cut at [`MAX_VALUE_BYTES`]).
    pub error_message: Option<String>,
    /// `eventPhase`: `Started` for the line a fail-closed server writes before it acts (the
    /// outcome follows in a second line whose `relatedEventId` names it); absent otherwise.
    pub event_phase: Option<&'static str>,
    /// `relatedEventId`: on the outcome line of a fail-closed request, the `eventId` of its
    /// `Started` line.
    pub related_event_id: Option<String>,
}

/// Keeps only the request parameters that are safe to record, from the request's parameter
/// list (name, value) as the server decoded it (such as [`crate::request::Params::iter`]).
///
/// An allowlist, [`SAFE_PARAMETER_NAMES`]: every other name is left out, among them
/// `Plaintext`, `CiphertextBlob`, `SecretData`, `EncryptedKeyMaterial`, `ImportToken`,
/// `PublicKeyBlob`, `Digest`, `Message`, `Value`, `Signature`, `Mac`, and the protocol's own
/// parameters (`Action`, `AccessKeyId`, `Timestamp`...). A flattened list item is kept when its
/// list is allowed and its index is a number (`ResourceId.1`); an item naming a field only for
/// tag and filter lists and the fields `Key`, `Value`, `TagKey`, `TagValue` (`Tag.1.TagKey`).
///
/// Values are strings, except that JSON-text parameters (`EncryptionContext`, `Tags`,
/// `Filters`...) holding a JSON object or list are recorded parsed. A value longer than
/// [`MAX_VALUE_BYTES`] bytes is recorded as a string cut at that length and followed by
/// `...[truncated, N bytes]`, N being the original length.
pub fn safe_parameters<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in params {
        if !is_safe_name(name) {
            continue;
        }
        let recorded = if value.len() > MAX_VALUE_BYTES {
            Value::String(cap(value).into_owned())
        } else if JSON_TEXT_PARAMETERS.contains(&name) {
            match serde_json::from_str::<Value>(value) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
                _ => Value::String(value.to_owned()),
            }
        } else {
            Value::String(value.to_owned())
        };
        out.insert(name.to_owned(), recorded);
    }
    out
}

fn is_safe_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let base = parts.next().unwrap_or_default();
    if !SAFE_PARAMETER_NAMES.contains(&base) {
        return false;
    }
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => true,
        (Some(index), field, None) if is_index(index) => match field {
            None => true,
            Some(field) => FIELD_LISTS.contains(&base) && SAFE_FIELDS.contains(&field),
        },
        _ => false,
    }
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `s`, or its first [`MAX_VALUE_BYTES`] bytes (at a character boundary) and a marker.
fn cap(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_VALUE_BYTES {
        return Cow::Borrowed(s);
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let kept = s.get(..end).unwrap_or_default();
    Cow::Owned(format!("{kept}...[truncated, {} bytes]", s.len()))
}

/// Errors of [`AuditLog`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Opening, reading, writing or syncing the trail failed.
    #[error("audit trail {}: {op}: {source}", path.display())]
    Io {
        /// The trail.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The existing trail does not end with a complete JSON line, so the chain cannot be
    /// continued (a torn write, or not a trail at all).
    #[error(
        "audit trail {}: the last line is not a complete audit line: {reason}",
        path.display()
    )]
    MalformedTail {
        /// The trail.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write or sync failed after part of a line may have reached the file: the
    /// chain's state is unknown, and nothing more is appended through this handle. Reopening
    /// refuses a torn last line, so an operator has to look at the file.
    #[error(
        "audit trail {}: an earlier write failed part way; refusing to append more",
        path.display()
    )]
    Broken {
        /// The trail.
        path: PathBuf,
    },
    /// The event's line would be longer than [`MAX_LINE_BYTES`].
    #[error(
        "audit trail {}: the event's line would be {len} bytes, more than {max}",
        path.display(),
        max = MAX_LINE_BYTES
    )]
    LineTooLong {
        /// The trail.
        path: PathBuf,
        /// The line's length.
        len: usize,
    },
    /// Serializing the event failed.
    #[error("audit event: {0}")]
    Json(#[from] serde_json::Error),
    /// The system's random source failed (for the eventId).
    #[error("audit event: the system random source failed")]
    Random,
}

/// How [`AuditLog::open_with`] opens a trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// `fdatasync` after each line (and sync the directory after creating the file), so a
    /// recorded event survives a power loss. Off: each line reaches the OS (survives the
    /// process, not the machine) before [`AuditLog::record`] returns.
    pub sync: bool,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Lowercase hex SHA-256 of the last line.
    previous_hash: String,
    broken: bool,
}

/// An append-only, hash-chained trail file; [`AuditLog::record`] may be called from many
/// threads (lines are written one at a time, in the chain's order).
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    options: AuditOptions,
    rng: SystemRandom,
    inner: Mutex<Inner>,
}

impl AuditLog {
    /// Opens the trail at `path` for appending with default [`AuditOptions`] (no fsync).
    ///
    /// See [`AuditLog::open_with`].
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(path, AuditOptions::default())
    }

    /// Opens the trail at `path` for appending, creating it when missing with mode 0600 (set
    /// explicitly after creation, whatever the umask; the parent directory must exist).
    ///
    /// An existing file's last line is read, seeking back from the end (the work is in the
    /// length of the last line, not of the file), to continue the chain.
    ///
    /// The file is locked (`flock`) while the log is open, so a second process (a server, or
    /// a one-off command) cannot append to it at the same time.
    ///
    /// Errors: [`AuditError::Io`] naming the path (also when another process holds the
    /// trail); [`AuditError::MalformedTail`] naming the path when the file does not end with a
    /// newline, or its last line is not a JSON object
    /// with a string `previousHash` or is longer than [`MAX_LINE_BYTES`].
    pub fn open_with(path: &Path, options: AuditOptions) -> Result<Self, AuditError> {
        let io_err = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| AuditError::Io { path, op, source }
        };
        let mut create = OpenOptions::new();
        create.read(true).append(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
        let (mut file, created) = match create.open(path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(path)
                    .map_err(io_err("open"))?;
                (file, false)
            }
            Err(e) => return Err(io_err("create")(e)),
        };
        // One writer per trail: a second process appending would fork the chain.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Io {
                    path: path.to_path_buf(),
                    op: "lock (another process is writing this trail)",
                    source: io::Error::from(io::ErrorKind::WouldBlock),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err("lock")(e)),
        }
        if created {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(io_err("set mode 0600"))?;
            }
            if options.sync {
                file.sync_all().map_err(io_err("sync"))?;
                sync_parent(path).map_err(io_err("sync directory"))?;
            }
        }
        let previous_hash = match last_line(&mut file).map_err(io_err("read the last line"))? {
            Tail::Empty => GENESIS_HASH.to_owned(),
            Tail::Malformed(reason) => {
                return Err(AuditError::MalformedTail {
                    path: path.to_path_buf(),
                    reason,
                })
            }
            Tail::Line(line) => match check_line(&line) {
                Ok(_) => sha256_hex(&line),
                Err(reason) => {
                    return Err(AuditError::MalformedTail {
                        path: path.to_path_buf(),
                        reason,
                    })
                }
            },
        };
        Ok(AuditLog {
            path: path.to_path_buf(),
            options,
            rng: SystemRandom::new(),
            inner: Mutex::new(Inner {
                file,
                previous_hash,
                broken: false,
            }),
        })
    }

    /// Appends one line for `event` at time `now` and returns its `eventId`.
    ///
    /// The line is one JSON object, keys in this order: `eventId` (a random UUID v4),
    /// `eventVersion` (`"1"`), `eventSource` (`"kms.aliyuncs.com"`), `eventType`,
    /// `eventTime` (ISO 8601, seconds, `Z`), `eventName`, `requestId`, `acsRegion`,
    /// `userIdentity` (`type`, `accountId`, `principalId`, `accessKeyId`, `userName`),
    /// `sourceIpAddress`, `userAgent`, `requestParameters`, `resources` (a list of
    /// `{"ARN": ...}`), `errorCode`, `errorMessage`, `previousHash`. Optional fields that are
    /// absent are left out of the line (never written as `null`). Every string is JSON-escaped,
    /// so no value can end the line or forge another.
    ///
    /// The whole line and its newline are handed to one write call, then flushed to the OS;
    /// with [`AuditOptions::sync`] also `fdatasync`ed.
    ///
    /// Errors: [`AuditError::Io`]; [`AuditError::Broken`] after a write that failed part
    /// way; [`AuditError::LineTooLong`]; [`AuditError::Random`].
    pub fn record(&self, event: &AuditEvent, now: UnixTime) -> Result<String, AuditError> {
        let event_id = new_event_id(&self.rng)?;
        let mut line = render_without_hash(event, &event_id, now)?;
        // Everything but the hash is rendered outside the lock.
        let len = line.len() + r#","previousHash":""}"#.len() + GENESIS_HASH.len();
        if len > MAX_LINE_BYTES {
            return Err(AuditError::LineTooLong {
                path: self.path.clone(),
                len,
            });
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
            });
        }
        line.push_str(r#","previousHash":""#);
        line.push_str(&inner.previous_hash);
        line.push_str("\"}");
        let hash = sha256_hex(line.as_bytes());
        line.push('\n');
        let io_err = |op: &'static str| {
            let path = self.path.clone();
            move |source| AuditError::Io { path, op, source }
        };
        if let Err((partial, e)) = write_once(&mut inner.file, line.as_bytes()) {
            inner.broken = partial;
            return Err(io_err("append")(e));
        }
        inner.previous_hash = hash;
        let flushed = inner.file.flush().and_then(|()| {
            if self.options.sync {
                inner.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = flushed {
            // The line is written but may not be durable: stop rather than build on it.
            inner.broken = true;
            return Err(io_err("sync")(e));
        }
        Ok(event_id)
    }

    /// The trail's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the trail was opened with.
    pub fn options(&self) -> AuditOptions {
        self.options
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LineFields<'a> {
    event_id: &'a str,
    event_version: &'static str,
    event_source: &'static str,
    event_type: &'static str,
    event_time: String,
    event_name: &'a str,
    request_id: &'a str,
    acs_region: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_identity: Option<IdentityFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_ip_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    request_parameters: &'a Map<String, Value>,
    resources: Vec<ResourceFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_phase: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    related_event_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityFields<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
}

#[derive(Serialize)]
struct ResourceFields<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
}

/// The event's line up to, not including, `,"previousHash":...}`.
fn render_without_hash(
    event: &AuditEvent,
    event_id: &str,
    now: UnixTime,
) -> Result<String, AuditError> {
    let user_identity = match (&event.identity, event.event_type) {
        (Some(id), _) => Some(IdentityFields {
            kind: id.kind.as_str(),
            account_id: Some(&id.account_id),
            principal_id: Some(&id.principal_id),
            access_key_id: id.access_key_id.as_deref(),
            user_name: id.user_name.as_deref(),
        }),
        (None, EventType::ServiceEvent) => Some(bare_identity(IdentityType::System)),
        (None, EventType::HostCommand) => Some(bare_identity(IdentityType::Host)),
        (None, EventType::ApiCall) => None,
    };
    let fields = LineFields {
        event_id,
        event_version: EVENT_VERSION,
        event_source: EVENT_SOURCE,
        event_type: event.event_type.as_str(),
        event_time: now.to_string(),
        event_name: &event.event_name,
        request_id: &event.request_id,
        acs_region: &event.region,
        user_identity,
        source_ip_address: event.source_ip.as_deref(),
        user_agent: event.user_agent.as_deref().map(cap),
        request_parameters: &event.request_parameters,
        resources: event
            .resources
            .iter()
            .map(|arn| ResourceFields { arn })
            .collect(),
        error_code: event.error_code.as_deref(),
        error_message: event.error_message.as_deref().map(cap),
        event_phase: event.event_phase,
        related_event_id: event.related_event_id.as_deref(),
    };
    let mut line = serde_json::to_string(&fields)?;
    // A struct serializes as `{...}`: drop the closing brace to append the hash.
    line.pop();
    Ok(line)
}

fn bare_identity(kind: IdentityType) -> IdentityFields<'static> {
    IdentityFields {
        kind: kind.as_str(),
        account_id: None,
        principal_id: None,
        access_key_id: None,
        user_name: None,
    }
}

/// Writes `buf`, starting with one write call for all of it. Errors carry whether part of
/// `buf` reached the file.
fn write_once(file: &mut File, mut buf: &[u8]) -> Result<(), (bool, io::Error)> {
    let total = buf.len();
    while !buf.is_empty() {
        match file.write(buf) {
            Ok(0) => {
                return Err((
                    buf.len() != total,
                    io::Error::new(io::ErrorKind::WriteZero, "wrote no bytes"),
                ))
            }
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((buf.len() != total, e)),
        }
    }
    Ok(())
}

/// A random UUID version 4, lowercase.
fn new_event_id(rng: &SystemRandom) -> Result<String, AuditError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| AuditError::Random)?;
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let mut id = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

enum Tail {
    Empty,
    /// The last line, without its newline.
    Line(Vec<u8>),
    Malformed(String),
}

/// Reads the file's last line by seeking back from the end in chunks.
fn last_line(file: &mut File) -> io::Result<Tail> {
    const CHUNK: u64 = 8 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(Tail::Empty);
    }
    // `tail` holds the bytes from `pos` to the end of the file.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    loop {
        let step = CHUNK.min(pos);
        pos -= step;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        let Some((&last, body)) = tail.split_last() else {
            return Ok(Tail::Malformed("empty read".to_owned()));
        };
        if last != b'\n' {
            return Ok(Tail::Malformed(
                "it does not end with a newline (a torn write?)".to_owned(),
            ));
        }
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(Tail::Line(body.get(i + 1..).unwrap_or_default().to_vec()));
        }
        if pos == 0 {
            return Ok(Tail::Line(body.to_vec()));
        }
        if body.len() > MAX_LINE_BYTES {
            return Ok(Tail::Malformed(format!(
                "it is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
    }
}

/// Checks that `line` is a JSON object with a string `previousHash`, and returns that hash.
fn check_line(line: &[u8]) -> Result<String, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("longer than {MAX_LINE_BYTES} bytes"));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("not a JSON object".to_owned());
    };
    match object.remove("previousHash") {
        Some(Value::String(hash)) => Ok(hash),
        Some(_) => Err("previousHash is not a string".to_owned()),
        None => Err("no previousHash".to_owned()),
    }
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Why [`verify`] rejected a trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct VerifyError {
    /// The first bad line, from 1; 0 when the file itself could not be read.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks the trail at `path`, see [`verify_reader`].
///
/// Errors: as [`verify_reader`]; line 0 when the file cannot be opened.
pub fn verify(path: &Path) -> Result<u64, VerifyError> {
    let file = File::open(path).map_err(|e| VerifyError {
        line: 0,
        reason: format!("cannot open {}: {e}", path.display()),
    })?;
    verify_reader(BufReader::new(file))
}

/// Checks a trail: every line ends with a newline and is a JSON object, and each line's
/// `previousHash` is the lowercase hex SHA-256 of the previous line's exact bytes (without
/// its newline), the first line's [`GENESIS_HASH`]. Returns the number of lines.
///
/// An empty trail has 0 lines. Lines removed from the end cannot be detected from the file
/// alone: compare the last line's hash with one kept elsewhere.
///
/// Errors: the first bad line (from 1) and why; a read failure names the line being read.
pub fn verify_reader(mut r: impl BufRead) -> Result<u64, VerifyError> {
    let mut expected = GENESIS_HASH.to_owned();
    let mut number: u64 = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX) + 1;
        let read = (&mut r)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| VerifyError {
                line: number + 1,
                reason: format!("read failed: {e}"),
            })?;
        if read == 0 {
            return Ok(number);
        }
        number += 1;
        let fail = |reason: String| VerifyError {
            line: number,
            reason,
        };
        if line.last() != Some(&b'\n') {
            return Err(fail(if line.len() > MAX_LINE_BYTES {
                format!("longer than {MAX_LINE_BYTES} bytes")
            } else {
                "incomplete: no newline at the end of the file (a torn write?)".to_owned()
            }));
        }
        line.pop();
        let previous = check_line(&line).map_err(fail)?;
        if previous != expected {
            return Err(fail(if number == 1 {
                format!("previousHash is {previous:?}, not {GENESIS_HASH:?} (the first line's)")
            } else {
                format!(
                    "previousHash {previous:?} is not the SHA-256 of line {} ({expected:?}): \
                     a line before this one was changed, removed or inserted",
                    number - 1
                )
            }));
        }
        expected = sha256_hex(&line);
    }
}
