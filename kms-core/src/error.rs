//! The engine's one error type.
//!
//! Every failure a caller can cause is a variant carrying the Alibaba KMS error code
//! ([`KmsError::code`]) and HTTP status ([`KmsError::http_status`]), and a message naming the
//! parameter or resource involved. Messages never contain key material or plaintext.

use std::borrow::Cow;

use crate::storage::StorageError;

/// A failed engine operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// A required parameter was absent.
    #[error("the parameter {name} is required")]
    MissingParameter {
        /// Wire name of the parameter.
        name: Cow<'static, str>,
    },
    /// A parameter had a value out of range or of the wrong form.
    #[error("the parameter {name} is invalid: {reason}")]
    InvalidParameter {
        /// Wire name of the parameter.
        name: Cow<'static, str>,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// No such key, or a key past its deletion date.
    #[error("the key {key_id} is not found")]
    KeyNotFound {
        /// The key id or alias as given.
        key_id: String,
    },
    /// No such version of the key.
    #[error("the key version {version_id} of key {key_id} is not found")]
    KeyVersionNotFound {
        /// The key id.
        key_id: String,
        /// The version id as given.
        version_id: String,
    },
    /// No such alias.
    #[error("the alias {alias} is not found")]
    AliasNotFound {
        /// The alias name as given.
        alias: String,
    },
    /// No such secret (or other named resource).
    #[error("the resource {resource} is not found")]
    ResourceNotFound {
        /// The resource name as given.
        resource: String,
    },
    /// No such certificate.
    #[error("the certificate {certificate_id} is not found")]
    CertificateNotFound {
        /// The certificate id as given.
        certificate_id: String,
    },
    /// The key is Disabled.
    #[error("the key {key_id} is disabled")]
    Disabled {
        /// The key id.
        key_id: String,
    },
    /// The key is PendingDeletion.
    #[error("the key {key_id} is pending deletion")]
    PendingDeletion {
        /// The key id.
        key_id: String,
    },
    /// The key is PendingImport (it has no key material).
    #[error("the key {key_id} is pending import of key material")]
    PendingImport {
        /// The key id.
        key_id: String,
    },
    /// The state transition is not allowed from the key's current state.
    #[error("{operation} is not allowed for the key {key_id} in state {state}")]
    StateModifiedFailed {
        /// The key id.
        key_id: String,
        /// The key's current state (wire name).
        state: &'static str,
        /// The refused operation (wire name).
        operation: &'static str,
    },
    /// The key has deletion protection enabled.
    #[error("the key {key_id} has deletion protection enabled")]
    DeletionProtection {
        /// The key id.
        key_id: String,
    },
    /// A resource with that name (or version with other data) already exists.
    #[error("the resource {resource} already exists")]
    ResourceExist {
        /// The resource as given.
        resource: String,
    },
    /// An alias with that name already exists.
    #[error("the alias {alias} already exists")]
    AliasAlreadyExists {
        /// The alias name.
        alias: String,
    },
    /// The secret is pending deletion.
    #[error("the resource {resource} is pending deletion")]
    ResourceInDeleteWindow {
        /// The resource name.
        resource: String,
    },
    /// The resource is in use (e.g. RestoreSecret on a secret that is not pending deletion).
    #[error("the resource {resource} is in use: {reason}")]
    ResourceInUse {
        /// The resource name.
        resource: String,
        /// Why the operation is refused.
        reason: String,
    },
    /// A limit on tags, aliases or versions would be exceeded.
    #[error("limit exceeded: {what}")]
    LimitExceeded {
        /// Which limit, with its value.
        what: String,
    },
    /// The key's type or usage does not allow the operation.
    #[error("unsupported operation: {reason}")]
    UnsupportedOperation {
        /// Why.
        reason: String,
    },
    /// A BYOK operation on a key whose origin is not EXTERNAL.
    #[error("the key {key_id} does not have Origin EXTERNAL")]
    UnsupportedOrigin {
        /// The key id.
        key_id: String,
    },
    /// The import token is malformed, for another key, or already used.
    #[error("invalid import token: {reason}")]
    InvalidImportToken {
        /// Why.
        reason: String,
    },
    /// The import token has expired.
    #[error("the import token has expired")]
    ExpiredImportToken,
    /// The imported key material is malformed or differs from the key's material.
    #[error("invalid key material: {reason}")]
    InvalidKeyMaterial {
        /// Why.
        reason: String,
    },
    /// A ciphertext blob that does not parse, fails authentication, or whose context differs.
    #[error("the ciphertext is invalid: {reason}")]
    InvalidCiphertext {
        /// Why (never reveals which byte or key material).
        reason: &'static str,
    },
    /// No such KMS instance.
    #[error("the KMS instance {instance_id} is not found")]
    InstanceNotFound {
        /// The instance id as given.
        instance_id: String,
    },
    /// An application's client key is outside its validity window (`Unauthorized`, 401, as
    /// the instance gateway answers a credential it does not accept).
    #[error("the client key {client_key_id} is not valid now: {reason}")]
    ClientKeyNotValid {
        /// The client key.
        client_key_id: String,
        /// Its window and the time.
        reason: String,
    },
    /// The authorizer denied the call.
    #[error("{principal} is not allowed to perform {action} on {resource}")]
    NoPermission {
        /// The action (e.g. `kms:Encrypt`).
        action: String,
        /// The caller's principal.
        principal: String,
        /// The resource ARN.
        resource: String,
    },
    /// The same tag key appears twice in one batch tagging call.
    #[error("the tag key {tag_key} is given more than once")]
    DuplicateTagKey {
        /// The repeated tag key.
        tag_key: String,
    },
    /// A tag key breaks the tag rules (batch tagging).
    #[error("the tag key {tag_key:?} is invalid: {reason}")]
    InvalidTagKey {
        /// The tag key.
        tag_key: String,
        /// What is wrong.
        reason: String,
    },
    /// A tag value breaks the tag rules (batch tagging).
    #[error("the tag value {tag_value:?} is invalid: {reason}")]
    InvalidTagValue {
        /// The tag value.
        tag_value: String,
        /// What is wrong.
        reason: String,
    },
    /// A resource named in a batch tagging call does not exist.
    #[error("the resource {resource_id} of type {resource_type} is not found")]
    InvalidResourceIdNotFound {
        /// The resource type (`key` or `secret`).
        resource_type: String,
        /// The resource id as given.
        resource_id: String,
    },
    /// The external key store (its proxy) cannot be reached, timed out, or answered
    /// something malformed. Nothing changed.
    #[error("the external key store is unavailable: {reason}")]
    ExternalKeyStoreUnavailable {
        /// What failed (no secrets).
        reason: String,
    },
    /// The store cannot be reached now (an I/O fault it is recovering from, a database that
    /// is down). A read changed nothing; a write that failed this way may or may not have
    /// been applied (an I/O error can strike after the commit reached the disk), so check
    /// before retrying one that is not idempotent.
    #[error("the store is unavailable: {reason}")]
    StorageUnavailable {
        /// What failed (no secrets).
        reason: String,
    },
    /// The key provider (the HSM) cannot be reached or failed: a token that is gone, a
    /// session that broke. Nothing changed; retry later.
    #[error("the key provider is unavailable: {reason}")]
    KeyProviderUnavailable {
        /// What failed (no secrets).
        reason: String,
    },
    /// The external key store reports the external key missing or unusable.
    #[error("the external key {external_key_id} is unusable: {reason}")]
    ExternalKeyUnusable {
        /// The External Key ID.
        external_key_id: String,
        /// What the store reported.
        reason: String,
    },
    /// A DryRun request that would have succeeded.
    #[error("the request would have succeeded, but DryRun is set")]
    DryRunOperation,
    /// A DryRun request whose parameters or state would have failed.
    #[error("DryRun validation failed: {reason}")]
    Validation {
        /// The error the real call would have returned.
        reason: String,
    },
    /// A DryRun request the caller is not allowed to make.
    #[error("DryRun access denied: {reason}")]
    AccessDenied {
        /// The denial the real call would have returned.
        reason: String,
    },
    /// A stored record does not open: its seal does not verify (a flipped bit, a record moved
    /// under another key, another root key) or its content does not parse. It is never used.
    #[error("internal failure: {reason}")]
    RecordCorrupt {
        /// Which record and what failed (no content of the record).
        reason: String,
    },
    /// A storage or internal failure; the operation left no partial state.
    #[error("internal failure: {reason}")]
    InternalFailure {
        /// What failed (no secrets).
        reason: String,
    },
}

impl KmsError {
    /// Shorthand for [`KmsError::InvalidParameter`].
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        KmsError::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`KmsError::MissingParameter`].
    pub fn missing(name: impl Into<Cow<'static, str>>) -> Self {
        KmsError::MissingParameter { name: name.into() }
    }

    /// Shorthand for [`KmsError::InternalFailure`].
    pub fn internal(reason: impl Into<String>) -> Self {
        KmsError::InternalFailure {
            reason: reason.into(),
        }
    }

    /// The Alibaba KMS error code sent on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::MissingParameter { .. } => "MissingParameter",
            KmsError::InvalidParameter { .. } => "InvalidParameter",
            KmsError::KeyNotFound { .. } => "Forbidden.KeyNotFound",
            KmsError::KeyVersionNotFound { .. } => "Forbidden.KeyVersionNotFound",
            KmsError::AliasNotFound { .. } => "Forbidden.AliasNotFound",
            KmsError::ResourceNotFound { .. } => "Forbidden.ResourceNotFound",
            KmsError::CertificateNotFound { .. } => "Certificate.NotFound",
            KmsError::Disabled { .. } => "Rejected.Disabled",
            KmsError::PendingDeletion { .. } => "Rejected.PendingDeletion",
            KmsError::PendingImport { .. } => "Rejected.PendingImport",
            KmsError::StateModifiedFailed { .. } => "Rejected.StateModifiedFailed",
            KmsError::DeletionProtection { .. } => "Rejected.DeletionProtection",
            KmsError::ResourceExist { .. } => "Rejected.ResourceExist",
            KmsError::AliasAlreadyExists { .. } => "AliasAlreadyExists",
            KmsError::ResourceInDeleteWindow { .. } => "Rejected.ResourceInDeleteWindow",
            KmsError::ResourceInUse { .. } => "Rejected.ResourceInUse",
            KmsError::LimitExceeded { .. } => "Rejected.LimitExceeded",
            KmsError::UnsupportedOperation { .. } => "Rejected.UnsupportedOperation",
            KmsError::UnsupportedOrigin { .. } => "Unsupported.Origin",
            KmsError::InvalidImportToken { .. } => "InvalidImportToken",
            KmsError::ExpiredImportToken => "ExpiredImportToken",
            KmsError::InvalidKeyMaterial { .. } => "InvalidKeyMaterial",
            KmsError::InvalidCiphertext { .. } => "InvalidCiphertext",
            KmsError::NoPermission { .. } => "Forbidden.NoPermission",
            KmsError::InstanceNotFound { .. } => "Forbidden.DKMSInstanceNotFound",
            KmsError::ClientKeyNotValid { .. } => "Unauthorized",
            KmsError::DuplicateTagKey { .. } => "Duplicate.TagKey",
            KmsError::InvalidTagKey { .. } => "InvalidParameter.TagKey",
            KmsError::InvalidTagValue { .. } => "InvalidParameter.TagValue",
            KmsError::InvalidResourceIdNotFound { .. } => "InvalidResourceId.NotFound",
            KmsError::ExternalKeyStoreUnavailable { .. } => "Rejected.Unavailable",
            KmsError::StorageUnavailable { .. } => "ServiceUnavailable",
            KmsError::KeyProviderUnavailable { .. } => "ServiceUnavailable",
            KmsError::ExternalKeyUnusable { .. } => "Rejected.ExternalKeyUnusable",
            KmsError::DryRunOperation => "DryRunOperationError",
            KmsError::Validation { .. } => "ValidationError",
            KmsError::AccessDenied { .. } => "AccessDeniedError",
            KmsError::InternalFailure { .. } | KmsError::RecordCorrupt { .. } => "InternalFailure",
        }
    }

    /// The HTTP status the server answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            KmsError::KeyNotFound { .. }
            | KmsError::KeyVersionNotFound { .. }
            | KmsError::AliasNotFound { .. }
            | KmsError::ResourceNotFound { .. }
            | KmsError::CertificateNotFound { .. }
            | KmsError::InstanceNotFound { .. }
            | KmsError::InvalidResourceIdNotFound { .. } => 404,
            KmsError::Disabled { .. }
            | KmsError::PendingDeletion { .. }
            | KmsError::PendingImport { .. }
            | KmsError::StateModifiedFailed { .. }
            | KmsError::DeletionProtection { .. }
            | KmsError::ResourceExist { .. }
            | KmsError::ResourceInDeleteWindow { .. }
            | KmsError::ResourceInUse { .. } => 409,
            KmsError::NoPermission { .. } | KmsError::AccessDenied { .. } => 403,
            KmsError::ClientKeyNotValid { .. } => 401,
            KmsError::DryRunOperation => 412,
            KmsError::InternalFailure { .. } | KmsError::RecordCorrupt { .. } => 500,
            KmsError::ExternalKeyStoreUnavailable { .. } => 503,
            KmsError::StorageUnavailable { .. } => 503,
            KmsError::KeyProviderUnavailable { .. } => 503,
            KmsError::ExternalKeyUnusable { .. } => 409,
            _ => 400,
        }
    }
}

impl From<StorageError> for KmsError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(reason) => KmsError::StorageUnavailable { reason },
            other => KmsError::internal(other.to_string()),
        }
    }
}
